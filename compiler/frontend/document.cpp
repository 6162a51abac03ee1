#include "frontend/document.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <set>

#include "support/limits.h"

namespace mithril {

std::string excerpt(const std::string& text, size_t max) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max) return out + "...";
    if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

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
      if (scalar.is_string()) return fmt::format("the string '{}'", excerpt(scalar.get<std::string>()));
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
  if (std::regex_match(s, float_re)) {
    // strtod, not stod: a subnormal (1e-320) is a number; past double's range (1e400) the text
    // stays a string, which no size or argument accepts.
    double v = std::strtod(s.c_str(), nullptr);
    if (std::isinf(v)) return s;
    return v;
  }
  if (s == ".inf" || s == "+.inf") return std::numeric_limits<double>::infinity();
  if (s == "-.inf") return -std::numeric_limits<double>::infinity();
  return s;
}

// The index of the first byte that is not part of valid UTF-8 (shortest forms, no surrogates,
// at most U+10FFFF), or npos.
size_t invalid_utf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 && c >= 0xc2 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e && c <= 0xf4 ? 4 : 0;
    bool ok = len > 0 && i + len <= text.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (ok && len >= 3) {
      unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0) && !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (!ok) return i;
    i += len;
  }
  return std::string::npos;
}

// Every string of a model file is UTF-8 text (YAML and JSON say so): checked once here, so
// messages and JSON output can print any of them.
void check_utf8(const std::string& text, const SourceLoc& loc) {
  size_t at = invalid_utf8(text);
  if (at != std::string::npos)
    fail(loc, "'{}' is not valid UTF-8 text (byte {} is \\x{:02x})", excerpt(text.substr(0, at)) + "...", at,
         static_cast<unsigned char>(text[at]));
}

// yaml-cpp shares the node of an alias with its anchor, so the tree it loads stays small while
// the tree converted here (and anything that walks it) could grow exponentially: a "billion
// laughs" file. Depth and size are counted while converting.
struct Budget {
  int64_t nodes = 0;
  int64_t depth = 0;
};

Doc convert(const YAML::Node& n, const std::string& file, Budget& budget) {
  Doc d;
  d.loc = loc_of(n.Mark(), file);
  if (++budget.nodes > limits().doc_nodes)
    fail(d.loc, "the file holds more than {} values once YAML aliases are expanded (raise the limit with --limit doc_nodes=N)",
         limits().doc_nodes);
  struct Deeper {
    Budget& b;
    ~Deeper() { --b.depth; }
  } deeper{budget};
  if (++budget.depth > limits().doc_depth)
    fail(d.loc, "lists and mappings are nested more than {} deep (raise the limit with --limit doc_depth=N)", limits().doc_depth);
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: d.kind = Doc::Kind::Null; break;
    case YAML::NodeType::Scalar:
      d.kind = Doc::Kind::Scalar;
      check_utf8(n.Scalar(), d.loc);
      d.scalar = n.Tag() == "!" ? json(n.Scalar()) : plain_scalar(n.Scalar());
      break;
    case YAML::NodeType::Sequence:
      d.kind = Doc::Kind::Seq;
      for (const auto& item : n) d.items.push_back(convert(item, file, budget));
      break;
    case YAML::NodeType::Map: {
      d.kind = Doc::Kind::Map;
      std::set<std::string> seen;
      for (const auto& kv : n) {
        SourceLoc kloc = loc_of(kv.first.Mark(), file);
        if (!kv.first.IsScalar()) fail(kloc, "mapping keys must be plain names");
        std::string key = kv.first.Scalar();
        check_utf8(key, kloc);
        if (!seen.insert(key).second) fail(kloc, "duplicate key '{}'", excerpt(key));
        d.entries.push_back({key, kloc, convert(kv.second, file, budget)});
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
  } catch (const nlohmann::json::out_of_range& e) {  // a number past double's range (1e400)
    fail(SourceLoc{name, 0, 0}, "malformed JSON: {}", std::string(e.what()).substr(std::string(e.what()).find(']') + 2));
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
  } catch (const YAML::DeepRecursion& e) {
    fail(loc_of(e.mark, name), "lists and mappings are nested more than {} deep", e.depth() - 1);
  } catch (const YAML::Exception& e) {
    fail(loc_of(e.mark, name), "malformed {}: {}", is_json ? "JSON" : "YAML", e.msg);
  }
  Budget budget;
  return convert(root, name, budget);
}

// The bytes of a model file; `what` names it in errors.
static std::string read_model_text(const std::string& path, const SourceLoc& from, const std::string& what) {
  // Only a regular file, its size checked before reading: a device, a FIFO or /proc file could
  // block or never end, and a directory "opens" as an empty stream.
  SourceLoc at = from.file.empty() ? SourceLoc{path, 0, 0} : from;
  std::string shown = from.file.empty() ? "" : fmt::format(" '{}'", path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(at, "cannot read {}{}: {}", what, shown, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail(at, "cannot read {}{}: it is a directory, not a file", what, shown);
  if (!S_ISREG(st.st_mode)) fail(at, "cannot read {}{}: it is not a regular file (a device, FIFO or socket)", what, shown);
  if (st.st_size > limits().file_bytes)
    fail(at, "cannot read {}{}: it has {} bytes, past the limit of {} (raise it with --limit file_bytes=N)", what, shown, st.st_size,
         limits().file_bytes);
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(at, "cannot read {}{}: {}", what, shown, std::strerror(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      fail(at, "cannot read {}{}: {}", what, shown, std::strerror(err));
    }
    if (n == 0) break;
    if (static_cast<int64_t>(text.size()) + n > limits().file_bytes) {  // it grew while being read
      ::close(fd);
      fail(at, "cannot read {}{}: past the limit of {} bytes (raise it with --limit file_bytes=N)", what, shown, limits().file_bytes);
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

Doc load_document(const std::string& path, const SourceLoc& from) {
  std::string text = read_model_text(path, from, from.file.empty() ? "the model file" : "the imported file");
  bool is_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  return parse_document(text, path, is_json);
}

}  // namespace mithril
