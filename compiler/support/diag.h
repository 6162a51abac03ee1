// Diagnostics: source locations and the one error type the compiler throws.
//
// Every user-facing error carries a location in the model file and prints as
// `FILE:LINE:COL: error: MESSAGE`. Library code throws CompileError; only the
// command-line driver catches it, prints it and exits non-zero.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace mithril {

struct SourceLoc {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  int col = 0;   // 1-based
  bool known() const { return line > 0; }
  std::string str() const;  // "file:line:col", "file" or "<unknown>"
};

class CompileError : public std::runtime_error {
 public:
  CompileError(SourceLoc loc, std::string message);
  const SourceLoc& loc() const { return loc_; }
  const std::string& message() const { return message_; }

 private:
  SourceLoc loc_;
  std::string message_;
};

// `FILE:LINE:COL: error: MESSAGE` (or `FILE: error: ...` / `error: ...`).
std::string format_diagnostic(const SourceLoc& loc, const std::string& severity, const std::string& message);

template <typename... Args>
[[noreturn]] void fail(const SourceLoc& loc, fmt::format_string<Args...> f, Args&&... args) {
  throw CompileError(loc, fmt::format(f, std::forward<Args>(args)...));
}

// Warnings are collected rather than printed, so library users decide where they go.
struct Warning {
  SourceLoc loc;
  std::string message;
};

// " (did you mean 'x'?)" for the closest candidate within a small edit distance, else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace mithril
