// `$` argument references in model files.
//
// A string value starting with `$` is an expression over the enclosing
// model's arguments: `$channels`, `$dim * 4`, `$dim // $heads`, `$(width + 1)`.
// Operators: + - * / // %, comparisons == != < <= > >=, and/or/not, true/false
// and parentheses; `/` of integers that divide exactly stays an integer.
// Lists and mappings are resolved element by element.
#pragma once

#include <string>

#include "ir/graph.h"

namespace mithril {

bool is_expression(const json& v);
// Resolve every `$` expression in v (recursively through lists and mappings).
// Throws CompileError at `loc` for unknown names or malformed expressions;
// `scope` names the model whose arguments are in `env` (for the message).
json resolve_expressions(const json& v, const json& env, const SourceLoc& loc, const std::string& scope);

}  // namespace mithril
