#include "support/cpp_text.h"

#include <fmt/format.h>

#include <cctype>
#include <algorithm>
#include <cmath>
#include <set>

namespace mithril {

std::string cpp_string(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '?': out += "\\?"; break;  // no trigraph (`??/`) can form
      default:
        // Octal escapes are three digits at most, so a digit after one is never read as part of it.
        if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
        else out += fmt::format("\\{:03o}", c);
    }
  }
  return out + "\"";
}

std::string cpp_comment(std::string_view text) {
  std::string out;
  char prev = 0;
  for (unsigned char c : text) {
    // A backslash is always followed by 'x' here, so it never splices a line; `??` is broken up.
    if (c == '\\' || c < 0x20 || c >= 0x7f || (c == '?' && prev == '?')) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
    prev = static_cast<char>(c);
  }
  return out;
}

bool cpp_reserved(const std::string& s) {
  static const std::set<std::string> words = {
      // keywords (C++20) and alternative tokens
      "alignas", "alignof", "asm", "auto", "bool", "break", "case", "catch", "char", "char8_t", "char16_t", "char32_t", "class",
      "concept", "const", "consteval", "constexpr", "constinit", "const_cast", "continue", "co_await", "co_return", "co_yield",
      "decltype", "default", "delete", "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false",
      "float", "for", "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "nullptr",
      "operator", "private", "protected", "public", "register", "reinterpret_cast", "requires", "return", "short", "signed",
      "sizeof", "static", "static_assert", "static_cast", "struct", "switch", "template", "this", "thread_local", "throw",
      "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t",
      "while", "and", "and_eq", "bitand", "bitor", "compl", "not", "not_eq", "or", "or_eq", "xor", "xor_eq",
      // identifiers with special meaning, and lower-case macros of the C library and GNU mode
      "final", "override", "import", "module", "main", "errno", "stdin", "stdout", "stderr", "assert", "offsetof", "setjmp",
      "va_arg", "va_start", "va_end", "va_copy", "linux", "unix", "i386", "math_errhandling", "complex", "imaginary",
      "alloca", "major", "minor", "makedev",
      // upper-case macros without an underscore from <cstdio>, <cmath>, <cerrno>, <climits>, <csignal>
      "EOF", "NULL", "BUFSIZ", "NAN", "INFINITY", "HUGE_VAL", "I", "SIGINT", "SIGTERM", "SIGKILL", "SIGSEGV", "SIGABRT",
      "SIGFPE", "SIGILL", "SIGHUP", "SIGPIPE", "SIGALRM", "SIGCHLD", "SIGUSR1", "SIGUSR2", "DOMAIN", "SING", "OVERFLOW",
      "UNDERFLOW", "TLOSS", "PLOSS"};
  if (words.count(s)) return true;
  if (s.empty() || s[0] == '_' || s.find("__") != std::string::npos) return true;  // reserved for the implementation
  bool lower = false;
  for (char c : s) lower |= std::islower(static_cast<unsigned char>(c)) != 0;
  if (lower) return false;
  // All upper case: the style of macros. Names with an underscore (INT_MAX, M_PI, FP_NAN, SIZE_MAX) and
  // errno codes (EINVAL, ENOENT: E and three or more letters) are left to the headers.
  if (s.find('_') != std::string::npos) return true;
  return s.size() >= 4 && s[0] == 'E' && std::all_of(s.begin(), s.end(), [](char c) { return std::isupper(static_cast<unsigned char>(c)); });
}

std::string c_identifier(const std::string& name) {
  std::string out;
  for (char ch : name) {
    char c = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
    if (c == '_' && (out.empty() || out.back() == '_')) continue;  // no leading or doubled underscore
    out += c;
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out = "v" + out;
  if (cpp_reserved(out)) out += "_v";
  return out;
}

std::string cpp_number(double v) {
  if (std::isnan(v)) return "std::numeric_limits<double>::quiet_NaN()";
  if (std::isinf(v)) return v < 0 ? "(-std::numeric_limits<double>::infinity())" : "std::numeric_limits<double>::infinity()";
  return fmt::format("{}", v);  // the shortest text that reads back as v: 0.01, 1e+30, -2
}

}  // namespace mithril
