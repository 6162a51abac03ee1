// Element types of IR values.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace mithril {

enum class DType { f32, f64, i32, i64, boolean };

const char* dtype_name(DType t);                          // "float32", ...
std::optional<DType> parse_dtype(const std::string& s);   // accepts "float32", "f32", "int64", ...
const std::vector<std::string>& dtype_names();
inline bool is_float(DType t) { return t == DType::f32 || t == DType::f64; }
inline bool is_int(DType t) { return t == DType::i32 || t == DType::i64; }
size_t dtype_size(DType t);

}  // namespace mithril
