// Helpers of the ops' constant-folding rules (OpDef::fold, FoldFn in ops/registry.h), which the
// `fold` pass (passes/optimize.h) runs.
#pragma once

#include <optional>
#include <vector>

#include "ir/graph.h"

namespace mithril {

// For fold rules: the elements of a tensor of constant shape `from` broadcast (NumPy rules) to
// the constant shape `to`, row-major.
std::vector<double> broadcast_elements(const std::vector<double>& x, const Shape& from, const Shape& to);
// A Constant's `value` (a number, a bool or nested lists) as its elements, row-major; nullopt
// when an element is not a number or bool.
std::optional<std::vector<double>> constant_elements(const json& value);

}  // namespace mithril
