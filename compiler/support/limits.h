// Limits on what a model file may ask of the compiler. Model files are untrusted
// input: each limit bounds the time and memory one file can make the compiler
// spend, and hitting one is a clear error at the file, layer or value, never a
// crash. Every limit can be raised on the command line (`--limit layers=500000`);
// docs/security.md lists them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mithril {

struct Limit {
  const char* name;
  int64_t value;
  const char* what;  // "bytes of a model file"
};

struct Limits {
  int64_t file_bytes = 16ll << 20;         // one model file or import, read only when it is a regular file
  int64_t doc_depth = 256;                 // lists and mappings nested in a model file
  int64_t doc_nodes = 1'000'000;           // values in a model file, YAML aliases expanded
  int64_t imports = 1'000;                 // files one program imports, all told
  int64_t layers = 200'000;                // primitive layers after `repeat:` and composites expand
  int64_t model_depth = 64;                // composites used inside composites
  int64_t expr_depth = 100;                // nesting of parentheses and operators in a `$` expression
  int64_t tensor_elements = 1ll << 40;     // elements of one tensor, at the bounds of its dims
};

// The limits in force (process-wide; the command line sets them before compiling).
Limits& limits();
// Every limit: name, value and meaning, in a stable order (for --help and the docs test).
std::vector<Limit> limit_table();
// `NAME=VALUE` from --limit; a CompileError for an unknown name or a value that is not a positive integer.
void set_limit(const std::string& text);

}  // namespace mithril
