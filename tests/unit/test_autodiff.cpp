// The autodiff pass on its own: which values get gradients, accumulation,
// freezing, integer inputs, errors, and that the memory plan spans both passes.
// (Numbers are checked end to end: tests/e2e/grad_*.py.)
#include "codegen/plan.h"
#include "frontend/document.h"
#include "helpers.h"
#include "passes/autodiff.h"

using namespace mithril;
using Catch::Contains;

namespace {

Graph grad_graph(const std::string& text, GradOptions o = {}, const std::vector<std::string>& shapes = {}) {
  Program prog = program_from_model(parse_model(parse_document(text, "test.yaml", false), "test"));
  CheckOptions opts;
  for (auto& s : shapes) parse_shape_binding(s, opts.pipeline.shapes);
  o.enabled = true;
  opts.pipeline.grad = o;
  return check_program(prog, opts);
}

std::string grad_error(const std::string& text, GradOptions o = {}) {
  try {
    grad_graph(text, o);
  } catch (const CompileError& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> grad_names(const Graph& g) {
  std::vector<std::string> out;
  for (int id : g.grad_of) out.push_back(g.value(id).name);
  return out;
}

int count_op(const Graph& g, const std::string& op, int from) {
  int n = 0;
  for (size_t k = static_cast<size_t>(from); k < g.nodes.size(); ++k) n += g.nodes[k].op->name == op;
  return n;
}

const char* kMlp = R"(
name: m
inputs:
  x: {shape: [N, 4]}
layers:
  - {op: Linear, args: {dimension: 3}, name: fc1}
  - Relu
  - {op: Linear, args: {dimension: 2}, name: fc2}
)";

}  // namespace

TEST_CASE("autodiff: every parameter gets a gradient, shaped like it", "[autodiff]") {
  Graph g = grad_graph(kMlp);
  CHECK(grad_names(g) == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"});
  for (size_t i = 0; i < g.grads.size(); ++i) {
    CHECK(g.value(g.grads[i]).shape == g.value(g.grad_of[i]).shape);
    CHECK(g.value(g.grads[i]).producer >= g.forward_nodes);
  }
  REQUIRE(g.output_grads.size() == 1);
  CHECK(g.value(g.output_grads[0]).kind == ValueKind::Input);
  CHECK(shape_str(g.value(g.output_grads[0]).shape) == "[N, 2]");
  CHECK(g.forward_nodes == 3);
  verify_graph(g);
  // fc1's input gradient is not needed: no MatMul for it.
  CHECK(count_op(g, "MatMul", g.forward_nodes) == 1);
}

TEST_CASE("autodiff: without --grad the graph has no backward pass", "[autodiff]") {
  Graph g = mithril::test::check_text(kMlp);
  CHECK(g.forward_nodes == -1);
  CHECK(g.grads.empty());
}

TEST_CASE("autodiff: inputs on request, integer inputs are refused by name", "[autodiff]") {
  GradOptions o;
  o.inputs = {"x"};
  Graph g = grad_graph(kMlp, o);
  CHECK(grad_names(g).back() == "x");
  CHECK(count_op(g, "MatMul", g.forward_nodes) == 2);

  const char* emb = R"(
name: e
inputs:
  tokens: {shape: [N], dtype: int64}
layers:
  - {op: Embedding, args: {num_embeddings: 10, dimension: 4}, name: wte}
)";
  o.inputs = {"tokens"};
  CHECK_THAT(grad_error(emb, o), Contains("input 'tokens' is int64: only float inputs have gradients"));
  o.inputs = {"tokenz"};
  CHECK_THAT(grad_error(emb, o), Contains("no input 'tokenz'"));
  CHECK_THAT(grad_error(emb, o), Contains("did you mean 'tokens'"));
}

TEST_CASE("autodiff: a value read twice sums its gradients", "[autodiff]") {
  const char* twice = R"(
name: t
inputs:
  x: {shape: [3]}
outputs: [sq]
layers:
  - {op: Tanh, input: x, output: a}
  - {op: Multiply, left: a, right: a, output: sq}
)";
  GradOptions o;
  o.inputs = {"x"};
  Graph g = grad_graph(twice, o);
  // d(a*a)/da = dy*a + dy*a: two contributions to `a`, one Add.
  CHECK(count_op(g, "Add", g.forward_nodes) == 1);
  CHECK(grad_names(g) == std::vector<std::string>{"x"});
}

TEST_CASE("autodiff: --freeze by name, prefix or glob, a pattern matching nothing is an error", "[autodiff]") {
  CHECK(freeze_matches("fc1", "fc1.weight"));
  CHECK(freeze_matches("fc1", "fc1"));
  CHECK_FALSE(freeze_matches("fc1", "fc10.weight"));
  CHECK(freeze_matches("*.bias", "block1.conv.bias"));
  CHECK(freeze_matches("block?.conv.*", "block1.conv.weight"));
  CHECK_FALSE(freeze_matches("*.bias", "fc1.weight"));

  GradOptions o;
  o.freeze = {"fc1"};
  Graph g = grad_graph(kMlp, o);
  CHECK(grad_names(g) == std::vector<std::string>{"fc2.weight", "fc2.bias"});
  // Nothing before fc2 needs a gradient: the backward pass stops at fc2.
  CHECK(count_op(g, "ReluGrad", g.forward_nodes) == 0);
  o.freeze = {"*.bias"};
  CHECK(grad_names(grad_graph(kMlp, o)) == std::vector<std::string>{"fc1.weight", "fc2.weight"});
  o.freeze = {"fc3"};
  CHECK_THAT(grad_error(kMlp, o), Contains("--freeze fc3: error: 'fc3' matches no parameter"));
}

TEST_CASE("autodiff: StopGradient cuts the path, unreached parameters get zeros", "[autodiff]") {
  const char* stop = R"(
name: s
inputs:
  x: {shape: [2, 4]}
layers:
  - {op: Linear, args: {dimension: 4}, name: fc1}
  - StopGradient
  - {op: Linear, args: {dimension: 2}, name: fc2}
)";
  Graph g = grad_graph(stop);
  CHECK(grad_names(g) == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"});
  // fc1's gradients are zeros: Constant 0 broadcast to their shapes.
  CHECK(g.nodes[g.value(g.grads[0]).producer].op->name == "BroadcastLike");
  CHECK(count_op(g, "MatMul", g.forward_nodes) == 0);
}

TEST_CASE("autodiff: tied parameters accumulate, integer outputs take no gradient", "[autodiff]") {
  const char* tied = R"(
name: tied
inputs:
  x: {shape: [2, 4]}
outputs: [y, idx]
layers:
  - {op: Linear, args: {dimension: 4, bias: false}, weight: w, input: x, name: a, output: a}
  - {op: Linear, args: {dimension: 4, bias: false}, weight: w, input: a, name: y, output: y}
  - {op: ArgMax, args: {axis: 1}, input: y, name: idx, output: idx}
)";
  Graph g = grad_graph(tied);
  CHECK(grad_names(g) == std::vector<std::string>{"w"});
  CHECK(count_op(g, "LinearGradWeight", g.forward_nodes) == 2);
  CHECK(count_op(g, "Add", g.forward_nodes) == 1);
  REQUIRE(g.output_grads.size() == 2);
  CHECK(g.output_grads[0] >= 0);
  CHECK(g.output_grads[1] == -1);
}

TEST_CASE("autodiff: the memory plan spans both passes and keeps what backward reads", "[autodiff]") {
  ProgramPlan p = plan_program(grad_graph(kMlp), {{"N", 256}});
  const Graph& g = p.graph;
  // The ReLU's input is read by ReluGrad in the backward pass: it must not share memory with
  // anything produced between the two.
  std::vector<int> last(g.values.size(), -1);
  for (auto& n : g.nodes)
    for (auto& port : n.inputs)
      for (int v : port) last[v] = n.id;
  for (int v : g.grads) last[v] = static_cast<int>(g.nodes.size());
  for (int v : g.outputs) last[v] = static_cast<int>(g.nodes.size());
  for (auto& a : g.values)
    for (auto& b : g.values) {
      if (a.id >= b.id || a.kind != ValueKind::Temp || b.kind != ValueKind::Temp || a.producer < 0 || b.producer < 0) continue;
      int ea = std::max(last[a.id], a.producer), eb = std::max(last[b.id], b.producer);
      bool together = a.producer <= eb && b.producer <= ea;
      bool overlap = p.offset[a.id] < p.offset[b.id] + p.bytes[b.id] && p.offset[b.id] < p.offset[a.id] + p.bytes[a.id];
      INFO(a.name << " and " << b.name);
      CHECK_FALSE((together && overlap));
    }
  int64_t all = 0;
  for (auto& v : g.values)
    if (v.kind == ValueKind::Temp && v.producer >= 0) all += p.bytes[v.id];
  CHECK(p.arena_bytes < all);  // buffers are reused
  CHECK_THAT(memory_summary(g, {{"N", 256}}), Contains("backward pass:"));
  CHECK_THAT(memory_summary(g, {}), Contains("bound N with --max"));
}

TEST_CASE("autodiff: an op without a gradient rule names the layer", "[autodiff]") {
  // Every registered op either has a rule or says nothing flows through it, except the ones
  // listed here (none, once every family has its rules): keep this list honest.
  std::vector<std::string> missing;
  for (auto* op : all_ops())
    if (!op->gradient && !op->has_trait("no_gradient") && !op->has_trait("internal")) missing.push_back(op->name);
  INFO("ops without gradient rules: " << fmt::format("{}", fmt::join(missing, ", ")));
  CHECK(missing.empty());
}
