#include "support/checked.h"

#include <fmt/format.h>

#include <cmath>

namespace mithril {

void throw_size_overflow(int64_t a, char op, int64_t b) {
  throw SizeOverflow(fmt::format("{} {} {} does not fit in a 64-bit integer", a, op, b));
}

int64_t checked_floordiv(int64_t a, int64_t b) {
  if (b == 0) throw SizeOverflow(fmt::format("{} // 0: division by zero", a));
  if (a == INT64_MIN && b == -1) throw_size_overflow(a, '/', b);
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t checked_floormod(int64_t a, int64_t b) {
  if (b == 0) throw SizeOverflow(fmt::format("{} % 0: division by zero", a));
  if (b == -1) return 0;  // also INT64_MIN % -1, which traps on x86
  return a - checked_floordiv(a, b) * b;
}

bool double_is_int64(double v) {
  // [-2^63, 2^63): both bounds are exact doubles.
  return std::isfinite(v) && v == std::floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0;
}

}  // namespace mithril
