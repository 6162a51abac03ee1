// The steps of a FusedElementwise node (ops/fused.cpp) and of the `epilogue` of an op that
// applies them to each result it writes (Linear, Conv1d, Conv2d): their JSON form, and the
// emitter helpers the ops' CPU emitters share. The passes that make them (fuse-elementwise,
// fuse-epilogue, passes/fuse.h) build on the same types.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace mithril {

// One step of a FusedElementwise body: an op with an element expression, its arguments, and per
// bound input port (in port order) its operand: "inK" (the node's K-th input) or "tJ" (the result
// of step J, an earlier step). The last step's result is the node's output. As JSON:
// {"op": "Relu", "name": "act", "args": {}, "inputs": {"input": "t0"}}.
struct FusedStep {
  std::string op;
  std::string name;  // the layer it came from
  json args;
  std::vector<std::pair<std::string, std::string>> inputs;
};
// The `body` argument from and to JSON. Parsing checks the form only (a message on error: the op's
// shape rule reports it); the ops, ports and references are checked by FusedElementwise's rule.
std::vector<FusedStep> parse_fused_body(const json& body, std::string* error = nullptr);
json fused_body_json(const std::vector<FusedStep>& steps);

class EmitContext;  // ops/emit.h
// For a node with an `epilogue` attribute: emits `const auto NAME = [](float v) { ...; return tJ; };`
// (the steps on one element) and returns true; false (nothing emitted) without one.
bool emit_epilogue(EmitContext& e, const std::string& name);
// The same steps for ops whose epilogue also reads other values element by element (Conv2d:
// trait "epilogue_inputs"): emits, each line prefixed with `indent`, the statements computing one
// element into locals t0, t1, ... from `elems`, the C++ expressions of the steps' inputs "in0"
// (the op's result), "in1", ... (of types `inputs`); returns the last local's name.
std::string epilogue_statements(EmitContext& e, const std::vector<const Value*>& inputs,
                                const std::vector<std::string>& elems, const std::string& indent);

}  // namespace mithril
