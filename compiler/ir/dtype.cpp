#include "ir/dtype.h"

namespace mithril {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::boolean: return "bool";
  }
  return "?";
}

const std::vector<std::string>& dtype_names() {
  static const std::vector<std::string> names = {"float32", "float64", "int32", "int64", "bool"};
  return names;
}

std::optional<DType> parse_dtype(const std::string& s) {
  if (s == "float32" || s == "f32" || s == "float") return DType::f32;
  if (s == "float64" || s == "f64" || s == "double") return DType::f64;
  if (s == "int32" || s == "i32") return DType::i32;
  if (s == "int64" || s == "i64" || s == "long") return DType::i64;
  if (s == "bool" || s == "boolean") return DType::boolean;
  return std::nullopt;
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::f64: case DType::i64: return 8;
    case DType::boolean: return 1;
  }
  return 0;
}

}  // namespace mithril
