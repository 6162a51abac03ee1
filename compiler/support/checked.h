// Checked 64-bit arithmetic for sizes that come from model files: dims, element
// counts, parameter counts, the memory plan. Overflow throws SizeOverflow, never
// wraps; the caller that knows the layer or value turns it into a CompileError
// at its location (see infer-shapes and the memory plan).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace mithril {

class SizeOverflow : public std::overflow_error {
 public:
  using std::overflow_error::overflow_error;
};

[[noreturn]] void throw_size_overflow(int64_t a, char op, int64_t b);

inline int64_t checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw_size_overflow(a, '+', b);
  return r;
}

inline int64_t checked_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) throw_size_overflow(a, '-', b);
  return r;
}

inline int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw_size_overflow(a, '*', b);
  return r;
}

// Floor division (Python's //) and its remainder; division by zero and INT64_MIN / -1 throw.
int64_t checked_floordiv(int64_t a, int64_t b);
int64_t checked_floormod(int64_t a, int64_t b);

// True for a double that is an integer in int64_t's range (3.0, -2e9); false for 1e300, NaN or
// 2.5, whose cast to int64_t would be undefined behaviour.
bool double_is_int64(double v);

}  // namespace mithril
