#include "ops/fold.h"

#include <algorithm>
#include <functional>

namespace mithril {

std::vector<double> broadcast_elements(const std::vector<double>& x, const Shape& from, const Shape& to) {
  const size_t r = to.size(), lead = r - from.size();
  std::vector<int64_t> sizes(r), strides(r, 0);
  int64_t stride = 1;
  for (size_t i = r; i-- > 0;) {
    sizes[i] = to[i].value();
    if (i >= lead) {
      int64_t d = from[i - lead].value();
      strides[i] = d == 1 ? 0 : stride;
      stride *= d;
    }
  }
  std::vector<double> out(static_cast<size_t>(numel(to).value()));
  std::vector<int64_t> idx(r, 0);
  int64_t src = 0;
  for (auto& y : out) {
    y = x.at(static_cast<size_t>(src));
    for (size_t i = r; i-- > 0;) {  // next index, last axis fastest
      src += strides[i];
      if (++idx[i] < sizes[i]) break;
      src -= strides[i] * idx[i];
      idx[i] = 0;
    }
  }
  return out;
}

std::optional<std::vector<double>> constant_elements(const json& value) {
  std::vector<double> out;
  std::function<bool(const json&)> walk = [&](const json& v) {
    if (v.is_array()) return std::all_of(v.begin(), v.end(), walk);
    if (v.is_boolean()) out.push_back(v.get<bool>() ? 1 : 0);
    else if (v.is_number()) out.push_back(v.get<double>());
    else return false;
    return true;
  };
  if (!walk(value)) return std::nullopt;
  return out;
}

}  // namespace mithril
