// What an op's gradient rule sees of one forward node, and how it builds the
// backward pass: rules add ordinary IR nodes (MatMul, Multiply, Sum, ...) or a
// dedicated backward op (Conv2dGradInput, SoftmaxGrad, ...), then hand each
// input's gradient to `grad()`. Rules live with their op (OpDef::grad), in the
// op's family file; the `autodiff` pass (passes/autodiff.cpp) walks the graph
// backwards, calls them, and sums gradients that reach a value more than once.
//
// A rule for y = f(x, w):
//
//   .grad([](GradContext& g) {
//     int dy = g.dout();                                  // dL/dy, the incoming gradient
//     if (g.wants("input")) g.grad("input", g.mul(dy, g.in("weight")));
//   })
//
// Rules only run when some output has a gradient and some input wants one.
// An input that gets no gradient from its rule gets zero (Floor, Sign, ...).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ops/registry.h"

namespace mithril {

// The autodiff pass's bookkeeping (passes/autodiff.cpp), shared with GradContext.
struct GradState {
  std::vector<bool> wants;               // per value: a gradient is needed
  std::vector<std::vector<int>> parts;   // per value: gradient contributions, summed on use
  std::vector<int> total;                // per value: the summed gradient, -1 when none
  std::map<int, int> counter;            // per forward node: backward nodes named after it so far
};

// Appends a node of `op` to `g` (named `name`, at `loc`), binds its input ports, fills in the
// default arguments and infers its outputs' types at once. Returns its output value ids, port by
// port. Passes that build IR (autodiff, the training head, the optimizer) all go through it.
std::vector<int> add_typed_node(Graph& g, const std::string& op, const std::string& name, const SourceLoc& loc,
                                const std::vector<std::pair<std::string, std::vector<int>>>& inputs,
                                const json& attrs = json::object(), int outputs_of_variadic = -1);

class GradContext {
 public:
  GradContext(Graph& g, int node_id, GradState& state);

  // The forward node.
  const Node& node() const { return g_.nodes[node_]; }
  const OpDef& op() const { return *node().op; }
  const json& arg(const std::string& name) const { return node().attrs.at(name); }
  bool is_null(const std::string& name) const { return arg(name).is_null(); }
  int64_t i(const std::string& name) const { return arg(name).get<int64_t>(); }
  double f(const std::string& name) const { return arg(name).get<double>(); }
  bool b(const std::string& name) const { return arg(name).get<bool>(); }
  std::string s(const std::string& name) const { return arg(name).get<std::string>(); }

  // Value ids of the forward node's inputs and outputs (forward values may be read by the backward pass).
  bool has(const std::string& port) const;
  size_t count(const std::string& port) const;
  int in(const std::string& port, size_t i = 0) const;
  int out(const std::string& port = "output", size_t i = 0) const;
  const Value& value(int id) const { return g_.value(id); }
  const Shape& shape(int id) const { return g_.value(id).shape; }
  DType dtype(int id) const { return g_.value(id).dtype; }

  // The gradient of an output (same shape and dtype), or -1 when none flows into it.
  int dout(const std::string& port = "output", size_t i = 0) const;
  // Whether an input needs a gradient (it leads to a trainable parameter or a requested input).
  bool wants(const std::string& port, size_t i = 0) const;
  // Hands over the gradient of an input; its shape must be the input's (use sum_to after broadcasting).
  void grad(const std::string& port, int value, size_t i = 0);

  // Building the backward pass. `inputs` binds op ports to value ids; `attrs` are the op's
  // arguments (defaults are filled in). The new node is named after the forward node and
  // typed at once; returns its output value ids, port by port (one per value).
  std::vector<int> add(const std::string& op, const std::vector<std::pair<std::string, std::vector<int>>>& inputs,
                       const json& attrs = json::object(), int outputs_of_variadic = -1);
  // The first output of add().
  int op1(const std::string& op, const std::vector<std::pair<std::string, int>>& inputs, const json& attrs = json::object());

  // Shorthands for the common elementwise and shape ops.
  int add2(int a, int b) { return op1("Add", {{"left", a}, {"right", b}}); }
  int sub(int a, int b) { return op1("Subtract", {{"left", a}, {"right", b}}); }
  int mul(int a, int b) { return op1("Multiply", {{"left", a}, {"right", b}}); }
  int div(int a, int b) { return op1("Divide", {{"left", a}, {"right", b}}); }
  int neg(int a) { return op1("Neg", {{"input", a}}); }
  int unary(const std::string& op, int a, const json& attrs = json::object()) { return op1(op, {{"input", a}}, attrs); }
  // A scalar constant of `t` (float by default).
  int scalar(double v, DType t = DType::f32);
  // A scalar constant with the dtype of value `like`.
  int scalar_like(double v, int like) { return scalar(v, dtype(like)); }
  // `a` reshaped to the shape of value `like` (same element count; sizes may be symbolic).
  int reshape_like(int a, int like);
  // Sums a gradient that was broadcast back to the shape of `like` (NumPy broadcasting: extra
  // leading axes, and axes where `like` has size 1). Returns `a` when the shapes already agree.
  int sum_like(int a, int like);
  // Broadcasts `a` up to the shape of `like` (the adjoint of sum_like); `a` when they agree.
  int broadcast_like(int a, int like);

 private:
  std::string fresh_name(const std::string& hint);
  Graph& g_;
  int node_;
  GradState& st_;
};

}  // namespace mithril
