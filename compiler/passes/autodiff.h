// The `autodiff` pass: reverse-mode differentiation of the graph into more IR.
//
// It appends a backward pass to the forward nodes: starting from a gradient
// for each float output (an extra input of the program, `<output>.grad`), it
// visits the forward nodes in reverse order and calls each op's gradient rule
// (OpDef::grad, in the op's family file). Gradients reaching a value from
// several consumers are summed; broadcasting is undone by the rules (sum_like).
// What gets a gradient: every float parameter not frozen (`--freeze`), and the
// inputs named with `--grad-inputs`. The result is an ordinary graph, so the
// later passes, the memory plan (which then spans both passes, keeping forward
// values exactly as long as the backward pass reads them) and the emitters
// treat it like any other.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace mithril {

struct GradOptions {
  bool enabled = false;
  std::vector<std::string> inputs;  // --grad-inputs: model inputs to differentiate
  std::vector<std::string> freeze;  // --freeze: parameter name patterns (`*`, `?`; a plain name also freezes `name.*`)
  std::vector<std::string> seeds;   // outputs whose gradient is given (training: `loss`); empty: every float output
};

// Whether `name` matches a --freeze pattern.
bool freeze_matches(const std::string& pattern, const std::string& name);

Graph autodiff(Graph g, const GradOptions& opts);

}  // namespace mithril
