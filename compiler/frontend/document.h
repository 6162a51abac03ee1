// A parsed model file as a tree of located nodes.
//
// YAML and JSON files load into the same tree, and every node remembers the
// line and column it came from, so later stages can point at the exact spot.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"  // json
#include "support/diag.h"

namespace mithril {

struct Doc {
  enum class Kind { Null, Scalar, Seq, Map };
  struct Entry;
  Kind kind = Kind::Null;
  json scalar;               // Scalar: string, integer, float or bool
  std::vector<Doc> items;    // Seq
  std::vector<Entry> entries;  // Map, in file order
  SourceLoc loc;

  bool is_map() const { return kind == Kind::Map; }
  bool is_seq() const { return kind == Kind::Seq; }
  bool is_scalar() const { return kind == Kind::Scalar; }
  bool is_string() const { return kind == Kind::Scalar && scalar.is_string(); }
  const Doc* get(const std::string& key) const;  // map lookup, nullptr when absent
  std::string describe() const;                  // "a mapping", "the string 'x'", ...
  json to_json() const;                          // drops locations
};

struct Doc::Entry {
  std::string key;
  SourceLoc key_loc;
  Doc value;
};

// Load a .yaml/.yml/.json file (a regular file within limits().file_bytes). Syntax errors and
// duplicate keys throw CompileError at their location; `from` is the import that names the file, if any.
Doc load_document(const std::string& path, const SourceLoc& from = {});
// Text from a model file for a message: at most `max` bytes, control characters as \xNN.
std::string excerpt(const std::string& text, size_t max = 60);
// Parse text (for tests and the C++ API); `name` is used in locations, `is_json` picks the syntax checker.
Doc parse_document(const std::string& text, const std::string& name, bool is_json);

}  // namespace mithril
