// The `fuse-elementwise` pass: chains of elementwise ops become one loop.
//
// Every elementwise op with an element expression (OpDef::scalar: the unary ops and their <Name>Grad
// ops, the binary ops, Not, Where, Cast) writes its own loop and its result to memory. The pass
// merges a producer into its consumer when the producer's one output is read by that consumer
// only (in the forward and the backward pass), is neither a model output nor a gradient, has the
// consumer's output shape (the intermediate is never broadcast), and both are on the same side of
// the forward/backward boundary. The merged group is one FusedElementwise node (ops/fused.cpp) at
// the consumer's place: its inputs are the group's external values (which may broadcast against the
// output, as any elementwise input), its `body` the steps, each computed by the op's own element
// expression into a local, so results are those of the unfused code (up to the compiler contracting
// a multiply and an add across steps into one FMA). The intermediates are left orphans (no
// producer): the memory plan never sees them. A producer is not moved past a node that writes a
// value it reads (an optimizer update of a parameter, BatchNorm's running statistics), nor past
// another parameter's first reader when it reads a parameter first (the weight table lists
// parameters in order of first read: it stays the same).
//
// It runs last, after `autodiff` and `optimizer`, so the backward pass's chains fuse too.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace mithril {

Graph fuse_elementwise(Graph g);

// The `fuse-epilogue` pass, after fuse-elementwise, in programs without gradients: an op with the
// trait "epilogue" (Linear) whose one output is read only by an elementwise node (or a
// FusedElementwise one) that reads nothing else and gives the same type, takes that node's steps
// as its `epilogue` attribute (a FusedElementwise body whose "in0" is the op's raw result) and its
// output; the elementwise node goes. The op's emitter applies the steps to each result as it is
// written (emit_epilogue): one pass over memory fewer.
Graph fuse_epilogue(Graph g);

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

class EmitContext;
// For a node with an `epilogue` attribute: emits `const auto NAME = [](float v) { ...; return tJ; };`
// (the steps on one element) and returns true; false (nothing emitted) without one.
bool emit_epilogue(EmitContext& e, const std::string& name);

}  // namespace mithril
