#include "support/limits.h"

#include <charconv>

#include "support/diag.h"

namespace mithril {

Limits& limits() {
  static Limits l;
  return l;
}

namespace {

struct Field {
  const char* name;
  int64_t Limits::*field;
  const char* what;
};

const std::vector<Field>& fields() {
  static const std::vector<Field> f = {
      {"file_bytes", &Limits::file_bytes, "bytes of one model file or import"},
      {"doc_depth", &Limits::doc_depth, "lists and mappings nested in a model file"},
      {"doc_nodes", &Limits::doc_nodes, "values in a model file, YAML aliases expanded"},
      {"imports", &Limits::imports, "files one program imports"},
      {"layers", &Limits::layers, "primitive layers after repeat and composites expand"},
      {"model_depth", &Limits::model_depth, "composites nested inside composites"},
      {"expr_depth", &Limits::expr_depth, "nesting in a $ expression"},
      {"tensor_elements", &Limits::tensor_elements, "elements of one tensor at the bounds of its dims"},
  };
  return f;
}

}  // namespace

std::vector<Limit> limit_table() {
  std::vector<Limit> out;
  for (auto& f : fields()) out.push_back({f.name, limits().*f.field, f.what});
  return out;
}

void set_limit(const std::string& text) {
  SourceLoc where{"--limit " + text, 0, 0};
  auto eq = text.find('=');
  std::string name = text.substr(0, eq);
  std::vector<std::string> names;
  for (auto& f : fields()) names.push_back(f.name);
  for (auto& f : fields()) {
    if (name != f.name) continue;
    if (eq == std::string::npos) fail(where, "expected NAME=VALUE, e.g. --limit {}={}", f.name, limits().*f.field);
    std::string v = text.substr(eq + 1);
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (v.empty() || ec != std::errc() || ptr != v.data() + v.size() || value < 1)
      fail(where, "the limit must be a positive integer, found '{}'", v);
    limits().*f.field = value;
    return;
  }
  fail(where, "unknown limit '{}'{}; limits: {}", name, did_you_mean(name, names), fmt::join(names, ", "));
}

}  // namespace mithril
