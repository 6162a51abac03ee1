// Text from a model file in generated C++: every name, path or string that
// reaches generated code goes through one of these, so a model file can never
// add code of its own (see docs/security.md).
//
// - cpp_string: a string literal, quotes included, that holds exactly the bytes given.
// - cpp_comment: text safe inside a `//` comment (no line break, no line splice).
// - c_identifier: a C++ identifier made from a name, never a keyword, an alternative
//   token (`and`, `or`), a reserved identifier or a macro of the headers generated
//   code includes; the planner makes it unique.
// - cpp_number: a double as a C++ expression, infinities and NaN included (as an argument:
//   `T(x)`, `f(x)`; a negative number prints with its sign).
#pragma once

#include <string>
#include <string_view>

namespace mithril {

std::string cpp_string(std::string_view text);
std::string cpp_comment(std::string_view text);
std::string c_identifier(const std::string& name);
// True for names c_identifier must not return: keywords, alternative tokens and names taken by
// macros of the C and C++ headers (EOF, NULL, errno, linux, INT_MAX, ...).
bool cpp_reserved(const std::string& ident);
std::string cpp_number(double v);

}  // namespace mithril
