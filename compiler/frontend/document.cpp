#include "frontend/document.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace mithril {

const Doc* Doc::get(const std::string& key) const {
  for (auto& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

std::string Doc::describe() const {
  switch (kind) {
    case Kind::Null: return "nothing (null)";
    case Kind::Seq: return "a list";
    case Kind::Map: return "a mapping";
    case Kind::Scalar:
      if (scalar.is_string()) return fmt::format("the string '{}'", scalar.get<std::string>());
      if (scalar.is_boolean()) return fmt::format("the boolean {}", scalar.dump());
      return fmt::format("the number {}", scalar.dump());
  }
  return "?";
}

json Doc::to_json() const {
  switch (kind) {
    case Kind::Null: return nullptr;
    case Kind::Scalar: return scalar;
    case Kind::Seq: {
      json a = json::array();
      for (auto& i : items) a.push_back(i.to_json());
      return a;
    }
    case Kind::Map: {
      json o = json::object();
      for (auto& e : entries) o[e.key] = e.value.to_json();
      return o;
    }
  }
  return nullptr;
}

namespace {

SourceLoc loc_of(const YAML::Mark& m, const std::string& file) {
  if (m.line < 0) return {file, 0, 0};
  return {file, m.line + 1, m.column + 1};
}

// YAML 1.2 core schema for plain scalars; quoted scalars stay strings.
json plain_scalar(const std::string& s) {
  static const std::regex int_re(R"([-+]?[0-9]+)");
  static const std::regex float_re(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (std::regex_match(s, int_re)) {
    try {
      return std::stoll(s);
    } catch (...) {
      return s;
    }
  }
  if (std::regex_match(s, float_re)) return std::stod(s);
  if (s == ".inf" || s == "+.inf") return std::numeric_limits<double>::infinity();
  if (s == "-.inf") return -std::numeric_limits<double>::infinity();
  return s;
}

Doc convert(const YAML::Node& n, const std::string& file) {
  Doc d;
  d.loc = loc_of(n.Mark(), file);
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: d.kind = Doc::Kind::Null; break;
    case YAML::NodeType::Scalar:
      d.kind = Doc::Kind::Scalar;
      d.scalar = n.Tag() == "!" ? json(n.Scalar()) : plain_scalar(n.Scalar());
      break;
    case YAML::NodeType::Sequence:
      d.kind = Doc::Kind::Seq;
      for (const auto& item : n) d.items.push_back(convert(item, file));
      break;
    case YAML::NodeType::Map: {
      d.kind = Doc::Kind::Map;
      std::set<std::string> seen;
      for (const auto& kv : n) {
        SourceLoc kloc = loc_of(kv.first.Mark(), file);
        if (!kv.first.IsScalar()) fail(kloc, "mapping keys must be plain names");
        std::string key = kv.first.Scalar();
        if (!seen.insert(key).second) fail(kloc, "duplicate key '{}'", key);
        d.entries.push_back({key, kloc, convert(kv.second, file)});
      }
      break;
    }
  }
  return d;
}

// Strict JSON syntax check first: YAML accepts things JSON does not, and
// nlohmann's messages name the offending token.
void check_json_syntax(const std::string& text, const std::string& name) {
  try {
    auto parsed = nlohmann::json::parse(text);
    (void)parsed;
  } catch (const nlohmann::json::parse_error& e) {
    std::string msg = e.what();
    static const std::regex where(R"(parse error at line ([0-9]+), column ([0-9]+): (.*))");
    std::smatch m;
    if (std::regex_search(msg, m, where)) {
      fail(SourceLoc{name, std::stoi(m[1]), std::stoi(m[2])}, "malformed JSON: {}", m[3].str());
    }
    fail(SourceLoc{name, 1, 1}, "malformed JSON: {}", msg);
  }
}

}  // namespace

Doc parse_document(const std::string& text, const std::string& name, bool is_json) {
  if (is_json) check_json_syntax(text, name);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(loc_of(e.mark, name), "malformed {}: {}", is_json ? "JSON" : "YAML", e.msg);
  }
  return convert(root, name);
}

Doc load_document(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(SourceLoc{path, 0, 0}, "cannot open model file");
  std::stringstream ss;
  ss << f.rdbuf();
  bool is_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  return parse_document(ss.str(), path, is_json);
}

}  // namespace mithril
