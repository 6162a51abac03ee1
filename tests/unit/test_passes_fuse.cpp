// The fuse-elementwise pass on its own: what fuses and what must not (values read twice, model
// outputs, gradients, the forward/backward boundary, parameters updated in between, the weight
// table's order), the FusedElementwise node's rule, and its generated loop.
// (Numbers: tests/e2e/fuse_elementwise.py.)
#include "codegen/project.h"
#include "codegen/plan.h"
#include "frontend/document.h"
#include "helpers.h"
#include "ops/grad.h"
#include "passes/fuse.h"

using namespace mithril;
using Catch::Contains;

namespace {

// The front end without the pass (and, with `grad`, the backward pass for --grad-inputs x).
Graph unfused(const std::string& text, bool grad = false) {
  Program prog = program_from_model(parse_model(parse_document(text, "test.yaml", false), "test"));
  CheckOptions opts;
  opts.pipeline.disabled = {"fuse-elementwise"};
  if (grad) {
    opts.pipeline.grad.enabled = true;
    opts.pipeline.grad.inputs = {"x"};
  }
  return check_program(prog, opts);
}

Graph fused(const std::string& text, bool grad = false) {
  Graph g = fuse_elementwise(unfused(text, grad));
  verify_graph(g);
  return g;
}

std::vector<const Node*> nodes_of(const Graph& g, const std::string& op, size_t from = 0, size_t to = SIZE_MAX) {
  std::vector<const Node*> out;
  for (size_t k = from; k < std::min(to, g.nodes.size()); ++k)
    if (g.nodes[k].op->name == op) out.push_back(&g.nodes[k]);
  return out;
}

std::vector<std::string> step_ops(const Node& n) {
  std::vector<std::string> out;
  for (auto& s : parse_fused_body(n.attrs.at("body"))) out.push_back(s.op);
  return out;
}

std::vector<std::string> input_names(const Graph& g, const Node& n) {
  std::vector<std::string> out;
  for (int v : n.inputs.at(0)) out.push_back(g.value(v).name);
  return out;
}

// The model's generated NAME.cpp (N bound to 2); fails the test when there is none.
std::string generated_cpp(const Graph& g, const std::string& name) {
  return test::generated_source(plan_program(g, {{"N", 2}}), name);
}

const char* kChain = R"(
name: chain
inputs:
  x: {shape: [N, 4]}
  shift: {shape: [4]}
outputs: [y]
layers:
  - {op: Linear, args: {dimension: 4}, name: fc, input: x, output: h}
  - {op: Constant, args: {value: 2.0}, name: two, output: two}
  - {op: Multiply, left: h, right: two, name: scale, output: s}
  - {op: Add, left: s, right: shift, name: offset, output: a}
  - {op: Relu, input: a, name: act, output: r}
  - {op: Tanh, input: r, name: squash, output: y}
)";

}  // namespace

TEST_CASE("fuse-elementwise: a chain becomes one node, broadcast operands stay inputs", "[fuse]") {
  Graph before = unfused(kChain);
  Graph g = fused(kChain);
  auto f = nodes_of(g, "FusedElementwise");
  REQUIRE(f.size() == 1);
  CHECK(f[0]->name == "scale+offset+act+squash");
  CHECK(step_ops(*f[0]) == std::vector<std::string>{"Multiply", "Add", "Relu", "Tanh"});
  // The Linear's output, the scalar constant and the [4] shift (broadcast against [N, 4]) are read
  // from memory; the intermediates s, a and r are not.
  CHECK(input_names(g, *f[0]) == std::vector<std::string>{"h", "two", "shift"});
  CHECK(g.nodes.size() == before.nodes.size() - 3);
  CHECK(g.value(g.outputs[0]).producer == f[0]->id);
  CHECK(test::output_type(g, "y") == "float32[N, 4]");
  for (auto& v : g.values)
    if (v.name == "s" || v.name == "a" || v.name == "r") CHECK(v.producer == -1);
  // The body names the layers and reads "inK" / "tJ".
  auto body = parse_fused_body(f[0]->attrs.at("body"));
  CHECK(body[1].name == "offset");
  CHECK(body[1].inputs == std::vector<std::pair<std::string, std::string>>{{"left", "t0"}, {"right", "in2"}});
  // A second run finds nothing more to do.
  Graph again = fuse_elementwise(g);
  CHECK(dump_ir(again) == dump_ir(g));
  // The pipeline of code generation runs it after autodiff and the optimizer, followed only by
  // fuse-epilogue, fuse-pool and pack-weights; --no-pass switches it off (`unfused`). `mithril
  // check` (no codegen) shows the layers as written.
  PipelineOptions opts;
  opts.grad.enabled = true;
  CHECK(frontend_passes(opts).back().name == "autodiff");
  opts.codegen = true;
  auto passes = frontend_passes(opts);
  REQUIRE(passes.size() >= 5);
  CHECK(passes[passes.size() - 5].name == "fuse-elementwise");
  CHECK(passes[passes.size() - 4].name == "fuse-epilogue");
  CHECK(passes[passes.size() - 3].name == "fuse-pool");
  CHECK(passes[passes.size() - 2].name == "layout");
  CHECK(passes.back().name == "pack-weights");
  for (size_t k = passes.size() - 5; k < passes.size(); ++k) CHECK(passes[k].optional);
  const std::vector<std::string> optional = {"simplify",         "fold",          "cse",       "dce", "fold-batchnorm",
                                             "fuse-elementwise", "fuse-epilogue", "fuse-pool", "layout",
                                             "pack-weights"};
  CHECK(resolve_disabled_passes({"all"}, opts) == optional);
  CHECK(optional_passes() == optional);
  CHECK_THROWS_AS(resolve_disabled_passes({"autodiff"}, opts), CompileError);
  CHECK_THROWS_AS(resolve_disabled_passes({"fusion"}, opts), CompileError);
  CHECK(nodes_of(before, "FusedElementwise").empty());
}

TEST_CASE("fuse-elementwise: a value read twice is not fused into either reader", "[fuse]") {
  const char* twice = R"(
name: twice
inputs:
  x: {shape: [N, 4]}
layers:
  - {op: Tanh, input: x, name: t, output: a}
  - {op: Relu, input: a, name: r, output: b}
  - {op: Sigmoid, input: a, name: s, output: c}
  - {op: Multiply, left: b, right: c, name: m}
)";
  Graph g = fused(twice);
  CHECK(nodes_of(g, "Tanh").size() == 1);
  auto f = nodes_of(g, "FusedElementwise");
  REQUIRE(f.size() == 1);
  CHECK(step_ops(*f[0]) == std::vector<std::string>{"Relu", "Sigmoid", "Multiply"});
  CHECK(input_names(g, *f[0]) == std::vector<std::string>{"a"});

  // One node reading a value at two ports is one reader: x*x after Tanh fuses.
  const char* square = R"(
name: square
inputs:
  x: {shape: [3]}
layers:
  - {op: Tanh, input: x, name: t, output: a}
  - {op: Multiply, left: a, right: a, name: sq}
)";
  Graph s = fused(square);
  REQUIRE(s.nodes.size() == 1);
  auto body = parse_fused_body(s.nodes[0].attrs.at("body"));
  CHECK(body[1].inputs == std::vector<std::pair<std::string, std::string>>{{"left", "t0"}, {"right", "t0"}});
}

TEST_CASE("fuse-elementwise: model outputs and gradients stay in memory", "[fuse]") {
  const char* outputs = R"(
name: outs
inputs:
  x: {shape: [N, 4]}
outputs: [h, y]
layers:
  - {op: Relu, input: x, name: r, output: h}
  - {op: Tanh, input: h, name: t, output: y}
)";
  Graph g = fused(outputs);
  CHECK(nodes_of(g, "FusedElementwise").empty());
  CHECK(g.nodes.size() == 2);

  // A gradient read by an elementwise node (here made so by hand) is not swallowed either.
  Graph plain = unfused("name: p\ninputs: {x: {shape: [4]}}\nlayers:\n  - {op: Relu, name: r}\n  - {op: Tanh, name: t}\n");
  CHECK(fuse_elementwise(plain).nodes.size() == 1);
  plain.grads = {plain.nodes[0].outputs[0][0]};
  plain.grad_of = {plain.inputs[0]};
  Graph kept = fuse_elementwise(plain);
  CHECK(kept.nodes.size() == 2);
  CHECK(nodes_of(kept, "FusedElementwise").empty());

  // Shapes differ: an intermediate that would be broadcast is not fused.
  const char* widen = R"(
name: widen
inputs:
  x: {shape: [4]}
  m: {shape: [3, 4]}
layers:
  - {op: Exp, input: x, name: e, output: a}
  - {op: Multiply, left: a, right: m, name: w}
)";
  CHECK(nodes_of(fused(widen), "FusedElementwise").empty());
}

TEST_CASE("fuse-elementwise: the forward/backward boundary", "[fuse]") {
  // Forward: Multiply -> Tanh fuses (Tanh's gradient reads its output, not its input). Backward:
  // TanhGrad -> the Multiply's input gradient (dy * 2) fuse; nothing crosses the boundary.
  const char* model = R"(
name: fb
inputs:
  x: {shape: [N, 4]}
layers:
  - {op: Constant, args: {value: 2.0}, name: two, output: two}
  - {op: Multiply, left: x, right: two, name: scale, output: s}
  - {op: Tanh, input: s, name: act}
)";
  Graph before = unfused(model, true);
  Graph g = fused(model, true);
  REQUIRE(before.forward_nodes == 3);
  CHECK(g.forward_nodes == 2);
  auto fwd = nodes_of(g, "FusedElementwise", 0, static_cast<size_t>(g.forward_nodes));
  auto bwd = nodes_of(g, "FusedElementwise", static_cast<size_t>(g.forward_nodes));
  REQUIRE(fwd.size() == 1);
  REQUIRE(bwd.size() == 1);
  CHECK(step_ops(*fwd[0]) == std::vector<std::string>{"Multiply", "Tanh"});
  CHECK(step_ops(*bwd[0]) == std::vector<std::string>{"TanhGrad", "Multiply"});
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    INFO(g.nodes[k].name);
    CHECK((g.nodes[k].name.find(".grad") == std::string::npos) == (k < static_cast<size_t>(g.forward_nodes)));
  }
  // The gradient of x is the fused node's output.
  REQUIRE(g.grads.size() == 1);
  CHECK(g.value(g.grads[0]).producer == bwd[0]->id);

  // A chain split by the boundary (set here by hand) stays split.
  Graph plain = unfused("name: p\ninputs: {x: {shape: [4]}}\nlayers:\n  - {op: Relu, name: r}\n  - {op: Tanh, name: t}\n");
  plain.forward_nodes = 1;
  Graph split = fuse_elementwise(plain);
  CHECK(split.nodes.size() == 2);
  CHECK(split.forward_nodes == 1);
  plain.forward_nodes = 2;
  Graph joined = fuse_elementwise(plain);
  CHECK(joined.nodes.size() == 1);
  CHECK(joined.forward_nodes == 1);
}

TEST_CASE("fuse-elementwise: a producer is not moved past an update of what it reads", "[fuse]") {
  // m = x * w; an optimizer step updates w; y = Relu(m). Fused at Relu's place, the Multiply would
  // read the updated w.
  auto build = [](bool update_between) {
    Graph g;
    g.name = "upd";
    Value x;
    x.name = "x";
    x.kind = ValueKind::Input;
    x.shape = {Dim(4)};
    x.typed = true;
    g.inputs = {g.add_value(x)};
    Value w = x;
    w.name = "w";
    w.kind = ValueKind::Param;
    int wid = g.add_value(w);
    Value st = x;
    st.name = "w.momentum";
    st.kind = ValueKind::State;
    int sid = g.add_value(st);
    auto update = [&] {
      add_typed_node(g, "OptimizerStep", "w.update", {}, {{"param", {wid}}, {"grad", {g.inputs[0]}}, {"state", {sid}}},
                     {{"kind", "sgd"}});
    };
    int m = add_typed_node(g, "Multiply", "m", {}, {{"left", {g.inputs[0]}}, {"right", {wid}}}).at(0);
    if (update_between) update();
    int y = add_typed_node(g, "Relu", "y", {}, {{"input", {m}}}).at(0);
    if (!update_between) update();
    g.outputs = {y};
    g.output_names = {"y"};
    verify_graph(g);
    return g;
  };
  Graph between = fuse_elementwise(build(true));
  CHECK(nodes_of(between, "FusedElementwise").empty());
  Graph after = fuse_elementwise(build(false));
  verify_graph(after);
  CHECK(nodes_of(after, "FusedElementwise").size() == 1);
}

TEST_CASE("fuse-elementwise: the weight table keeps its order", "[fuse]") {
  // Parameters are listed in order of first read; moving x * s past fc would list s after fc's.
  auto names = [](const Graph& g) {
    std::vector<std::string> out;
    for (int v : g.values_of_kind(ValueKind::Param)) out.push_back(g.value(v).name);
    return out;
  };
  const char* model = R"(
name: order
inputs:
  x: {shape: [2, 4]}
params:
  s: {shape: [4]}
layers:
  - {op: Multiply, left: x, right: s, name: m, output: m}
  - {op: Linear, args: {dimension: 4}, input: x, name: fc, output: h}
  - {op: Add, left: m, right: h, name: y}
)";
  Graph g = fused(model);
  CHECK(nodes_of(g, "FusedElementwise").empty());
  CHECK(names(g) == std::vector<std::string>{"s", "fc.weight", "fc.bias"});
  // With the Linear first, nothing is reordered: the Multiply fuses into the Add.
  std::string linear_first = model;
  auto at = linear_first.find("  - {op: Multiply");
  auto end = linear_first.find("  - {op: Add");
  std::string mul = linear_first.substr(at, linear_first.find("\n", at) + 1 - at);
  linear_first.erase(at, mul.size());
  linear_first.insert(end - mul.size(), mul);
  Graph h = fused(linear_first);
  CHECK(nodes_of(h, "FusedElementwise").size() == 1);
  CHECK(names(h) == std::vector<std::string>{"fc.weight", "fc.bias", "s"});
  CHECK(names(h) == names(unfused(linear_first)));
}

TEST_CASE("fuse-elementwise: FusedElementwise's rule and its one loop", "[fuse]") {
  // The rule types the body with the steps' own rules, and refuses a malformed one.
  CHECK(test::infer_op("FusedElementwise",
                       R"({body: [{op: Greater, inputs: {left: in0, right: in1}}, {op: Not, inputs: {input: t0}}]})",
                       {{"inputs", "float32[N, 3]"}, {"inputs", "float32[3]"}}) == std::vector<std::string>{"bool[N, 3]"});
  CHECK_THAT(test::infer_op_error("FusedElementwise", "{body: [{op: Relu, inputs: {input: t0}}]}",
                                  {{"inputs", "float32[3]"}}),
             Contains("neither an input of the node nor an earlier step"));
  CHECK_THAT(test::infer_op_error("FusedElementwise", "{body: [{op: MatMul, inputs: {left: in0, right: in0}}]}",
                                  {{"inputs", "float32[3, 3]"}}),
             Contains("MatMul is not an op with an element expression"));
  CHECK_THAT(test::infer_op_error("FusedElementwise", "{body: [{op: Add, name: a, inputs: {left: in0, right: in1}}]}",
                                  {{"inputs", "float32[3]"}, {"inputs", "float32[4]"}}),
             Contains("'left' and 'right' of shapes"));

  // One loop, one local per step, named after the layers; the broadcast shift indexed by its axis.
  ProgramPlan p = plan_program(fused(kChain), {{"N", 8}});
  auto files = emit_cpu_project(p, {"chain", "chain.yaml", "", false});
  std::string src;
  for (auto& f : files)
    if (f.path == "chain.cpp") src = f.text;
  CHECK_THAT(src, Contains("// scale+offset+act+squash (FusedElementwise)"));
  // (`two` is the output of the layer named two: generated code calls it two_out, as conv1_out.)
  CHECK_THAT(src, Contains("const float t0 = h[i] * two_out[0];  // scale (Multiply)"));
  CHECK_THAT(src, Contains("const float t1 = t0 + shift[i1 * 1];  // offset (Add)"));
  CHECK_THAT(src, Contains("const float t3 = std::tanh(t2);  // squash (Tanh)"));
  CHECK_THAT(src, Contains("y[i] = t3;"));
  // Locals never shadow the loop's arrays: values named t0 and t1 push them to t_0, t_1.
  ProgramPlan named = plan_program(fused(R"(
name: names
inputs: {t0: {shape: [4]}}
outputs: [t1]
layers:
  - {op: Relu, input: t0, name: r, output: a}
  - {op: Tanh, input: a, name: s, output: t1}
)"), {});
  for (auto& f : emit_cpu_project(named, {"names", "names.yaml", "", false}))
    if (f.path == "names.cpp") {
      CHECK_THAT(f.text, Contains("const float t_0 = (t0[i] < float(0) ? float(0) : t0[i]);  // r (Relu)"));
      CHECK_THAT(f.text, Contains("t1[i] = t_1;"));
    }
  // Unfused ops keep their one-line loops.
  ProgramPlan q = plan_program(unfused(kChain), {{"N", 8}});
  for (auto& f : emit_cpu_project(q, {"chain", "chain.yaml", "", false}))
    if (f.path == "chain.cpp")
      CHECK_THAT(f.text, Contains("for (int64_t i = 0; i < (int64_t{4} * dim_N); ++i) y[i] = std::tanh(r[i]);"));
}

TEST_CASE("fuse-epilogue: an activation read only from a Linear goes into its epilogue", "[fuse]") {
  const char* text = R"(
name: head
inputs: {x: {shape: [N, 8]}}
outputs: [y, z, w]
layers:
  - {op: Linear, name: fc1, args: {dimension: 6}, input: x, output: h}
  - {op: Gelu, name: act1, input: h, output: a}
  - {op: Tanh, name: squash, input: a, output: b}
  - {op: Linear, name: fc2, args: {dimension: 4}, input: b, output: p}
  - {op: Relu, name: act2, input: p, output: y}
  - {op: Linear, name: fc3, args: {dimension: 4}, input: b, output: q}
  - {op: Sigmoid, name: s, input: q, output: z}
  - {op: Add, name: twice, left: q, right: z, output: w}
)";
  Graph g = fuse_epilogue(fused(text));
  verify_graph(g);
  // fc1 takes the fused Gelu+Tanh chain, fc2 its Relu (the model output y is the Relu's); fc3's
  // output is read twice (Sigmoid and Add): it stays as it is.
  auto linears = nodes_of(g, "Linear");
  REQUIRE(linears.size() == 3);
  REQUIRE(linears[0]->attrs.contains("epilogue"));
  std::vector<std::string> ops;
  for (auto& s : parse_fused_body(linears[0]->attrs.at("epilogue"))) ops.push_back(s.op);
  CHECK(ops == std::vector<std::string>{"Gelu", "Tanh"});
  CHECK(g.value(linears[0]->outputs[0][0]).name == "b");
  REQUIRE(linears[1]->attrs.contains("epilogue"));
  CHECK(g.value(linears[1]->outputs[0][0]).name == "y");
  CHECK_FALSE(linears[2]->attrs.contains("epilogue"));
  CHECK(nodes_of(g, "Relu").empty());
  CHECK(nodes_of(g, "Sigmoid").size() == 1);
  CHECK(nodes_of(g, "FusedElementwise").empty());

  // The generated Linear applies it as it writes; with gradients the pass leaves the graph alone.
  const std::string head = generated_cpp(g, "head");
  CHECK_THAT(head, Contains("const auto epilogue = [](float v) {"));
  CHECK_THAT(head, Contains("const float t1 = std::tanh(t0);  // squash (Tanh)"));
  CHECK_THAT(head, Contains(", epilogue);"));
  Graph with_grad = fused(R"(
name: g
inputs: {x: {shape: [2, 8]}}
layers:
  - {op: Linear, name: fc, args: {dimension: 4}}
  - {op: Relu, name: act}
)", true);
  Graph same = fuse_epilogue(with_grad);
  CHECK(same.nodes.size() == with_grad.nodes.size());
}

namespace {

std::vector<std::string> value_names(const Graph& g, const std::vector<int>& values) {
  std::vector<std::string> out;
  for (int v : values) out.push_back(g.value(v).name);
  return out;
}

const std::vector<int>& epilogue_inputs(const Node& n) {
  return n.inputs.at(static_cast<size_t>(n.op->input_index("epilogue_inputs")));
}

std::vector<std::string> epilogue_ops(const Node& n) {
  std::vector<std::string> ops;
  for (auto& s : parse_fused_body(n.attrs.at("epilogue"))) ops.push_back(s.op);
  return ops;
}

// The passes in the pipeline's order, as code generation runs them.
Graph conv_fused(const std::string& text) {
  Graph g = fuse_epilogue(fuse_elementwise(fold_batchnorm(unfused(text))));
  verify_graph(g);
  return g;
}

}  // namespace

TEST_CASE("fold-batchnorm and fuse-epilogue: BatchNorm, activation and residual add into a convolution", "[fuse]") {
  const char* text = R"(
name: block
inputs: {x: {shape: [N, 4, 8, 8]}}
outputs: [y, z]
layers:
  - {op: Conv2d, name: c1, args: {out_channels: 4, kernel_size: 3, padding: 1}, input: x, output: h}
  - {op: BatchNorm2d, name: bn1, input: h, output: b}
  - {op: Relu, name: act, input: b, output: r}
  - {op: Conv2d, name: c2, args: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}, input: r, output: h2}
  - {op: BatchNorm2d, name: bn2, args: {affine: false, eps: 0.001}, input: h2, output: b2}
  - {op: Add, name: skip, left: b2, right: x, output: s}
  - {op: Relu, name: out, input: s, output: y}
  - {op: Conv2d, name: c3, args: {out_channels: 4, kernel_size: 1}, input: y, output: h3}
  - {op: BatchNorm2d, name: bn3, input: h3, output: z}
)";
  Graph g = conv_fused(text);
  // Every BatchNorm went into its convolution (bn3's output is a model output: the convolution
  // writes it now), ReLU and the residual add into the epilogues: three nodes are left.
  auto convs = nodes_of(g, "Conv2d");
  REQUIRE(convs.size() == 3);
  CHECK(g.nodes.size() == 3);
  CHECK(convs[0]->attrs.at("batchnorm") == json{{"name", "bn1"}, {"eps", 1e-5}, {"weight", true}, {"bias", true}});
  CHECK(value_names(g, epilogue_inputs(*convs[0])) ==
        std::vector<std::string>{"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"});
  CHECK(epilogue_ops(*convs[0]) == std::vector<std::string>{"Relu"});
  CHECK(g.value(convs[0]->outputs[0][0]).name == "r");
  // c2: BatchNorm without affine parameters, then Add(x) and ReLU, x read as "in1".
  CHECK(convs[1]->attrs.at("batchnorm") == json{{"name", "bn2"}, {"eps", 0.001}, {"weight", false}, {"bias", false}});
  CHECK(value_names(g, epilogue_inputs(*convs[1])) ==
        std::vector<std::string>{"bn2.running_mean", "bn2.running_var", "x"});
  CHECK(epilogue_ops(*convs[1]) == std::vector<std::string>{"Add", "Relu"});
  auto add = parse_fused_body(convs[1]->attrs.at("epilogue"))[0];
  CHECK(add.inputs == std::vector<std::pair<std::string, std::string>>{{"left", "in0"}, {"right", "in1"}});
  CHECK(g.value(convs[1]->outputs[0][0]).name == "y");
  CHECK_FALSE(convs[2]->attrs.contains("epilogue"));
  CHECK(g.value(convs[2]->outputs[0][0]).name == "z");
  // The weight table keeps its order.
  Graph plain = unfused(text);
  CHECK(value_names(g, g.values_of_kind(ValueKind::Param)) == value_names(plain, plain.values_of_kind(ValueKind::Param)));
  CHECK(value_names(g, g.values_of_kind(ValueKind::State)) == value_names(plain, plain.values_of_kind(ValueKind::State)));

  // The generated convolution computes the scale and shift once and applies everything per row.
  const std::string block = generated_cpp(g, "block");
  CHECK_THAT(block, Contains("rt::k::batch_norm_scale_shift(bn_scale[k], bn_shift[k], k, "));
  CHECK_THAT(block, Contains("const auto epilogue = [&](float* row, int64_t n, int64_t k, int64_t P) {"));
  CHECK_THAT(block, Contains("const float v = row[p] * scale + shift;"));
  CHECK_THAT(block, Contains(", epilogue);"));

  // Not in training mode (batch statistics), nor with gradients.
  PipelineOptions train;
  train.codegen = true;
  train.training = true;
  for (auto& pass : frontend_passes(train))
    if (pass.name == "fold-batchnorm") CHECK(nodes_of(pass.run(unfused(text)), "BatchNorm2d").size() == 3);
  CHECK(nodes_of(fold_batchnorm(unfused(text, true)), "BatchNorm2d").size() == 3);
}

TEST_CASE("fold-batchnorm and fuse-epilogue: what stays apart", "[fuse]") {
  // A BatchNorm whose input is also read elsewhere, or a model output, stays; a residual add
  // whose other operand is computed after the first convolution goes into the second one.
  const char* text = R"(
name: apart
inputs: {x: {shape: [N, 4, 6, 6]}}
outputs: [h, y, w]
layers:
  - {op: Conv2d, name: c0, args: {out_channels: 4, kernel_size: 1}, input: x, output: h}
  - {op: BatchNorm2d, name: bn0, input: h, output: hb}
  - {op: Conv2d, name: c1, args: {out_channels: 4, kernel_size: 3, padding: 1}, input: x, output: u}
  - {op: BatchNorm2d, name: bn1, input: u, output: ub}
  - {op: Sigmoid, name: gate, input: u, output: g}
  - {op: Conv2d, name: a, args: {out_channels: 4, kernel_size: 3, padding: 1}, input: hb, output: ha}
  - {op: Conv2d, name: d, args: {out_channels: 4, kernel_size: 1}, input: ub, output: hd}
  - {op: Add, name: join, left: ha, right: hd, output: s}
  - {op: Multiply, name: mix, left: s, right: g, output: y}
  - {op: Relu, name: act, input: g, output: w}
)";
  Graph g = conv_fused(text);
  CHECK(nodes_of(g, "BatchNorm2d").size() == 2);  // bn0 (h is an output), bn1 (u is read twice)
  auto convs = nodes_of(g, "Conv2d");
  REQUIRE(convs.size() == 4);
  for (const Node* c : convs) CHECK_FALSE(c->attrs.contains("batchnorm"));
  CHECK_FALSE(convs[2]->attrs.contains("epilogue"));  // a: hd comes later
  REQUIRE(convs[3]->attrs.contains("epilogue"));      // d: Add(ha, .) and Multiply(g), both earlier
  CHECK(epilogue_ops(*convs[3]) == std::vector<std::string>{"Add", "Multiply"});
  CHECK(value_names(g, epilogue_inputs(*convs[3])) == std::vector<std::string>{"ha", "g"});
  CHECK(g.value(convs[3]->outputs[0][0]).name == "y");
}

TEST_CASE("fuse-pool: a pooling read only from a convolution goes into its epilogue", "[fuse]") {
  const char* text = R"(
name: pools
inputs: {x: {shape: [N, 3, 8, 8]}, big: {shape: [N, 2, 66, 64]}}
outputs: [pa, pb, hc, pc, pd, gd, pe]
layers:
  - {op: Conv2d, name: ca, args: {out_channels: 4, kernel_size: 3, padding: 1}, input: x, output: ha}
  - {op: Relu, name: ra, input: ha, output: qa}
  - {op: MaxPool2d, name: pool_a, args: {kernel_size: 2}, input: qa, output: pa}
  - {op: Conv2d, name: cb, args: {out_channels: 4, kernel_size: 1}, input: pa, output: hb}
  - {op: AvgPool2d, name: pool_b, args: {kernel_size: 3, stride: 2, padding: 1}, input: hb, output: pb}
  - {op: Conv2d, name: cc, args: {out_channels: 4, kernel_size: 1}, input: x, output: hc}
  - {op: MaxPool2d, name: pool_c, args: {kernel_size: 2}, input: hc, output: pc}
  - {op: Conv2d, name: cd, args: {out_channels: 4, kernel_size: 1}, input: x, output: hd}
  - {op: Sigmoid, name: sd, input: hd, output: gd}
  - {op: MaxPool2d, name: pool_d, args: {kernel_size: 2}, input: hd, output: pd0}
  - {op: Add, name: join, left: pd0, right: pc, output: pd}
  - {op: Conv2d, name: ce, args: {out_channels: 2, kernel_size: 3, padding: 1}, input: big, output: he}
  - {op: MaxPool2d, name: pool_e, args: {kernel_size: 2}, input: he, output: pe}
)";
  Graph g = fuse_pool(conv_fused(text));
  verify_graph(g);
  auto convs = nodes_of(g, "Conv2d");
  REQUIRE(convs.size() == 5);
  // ca: ReLU in the epilogue, then the pooling; cb: the average pooling alone.
  REQUIRE(convs[0]->attrs.contains("pool"));
  CHECK(convs[0]->attrs.at("pool").at("op") == "MaxPool2d");
  CHECK(convs[0]->attrs.at("pool").at("name") == "pool_a");
  CHECK(convs[0]->attrs.at("pool").at("args").at("kernel_size") == 2);
  CHECK(epilogue_ops(*convs[0]) == std::vector<std::string>{"Relu"});
  CHECK(g.value(convs[0]->outputs[0][0]).name == "pa");
  CHECK(g.value(convs[0]->outputs[0][0]).shape == Shape{Dim::symbol("N"), Dim(4), Dim(4), Dim(4)});
  REQUIRE(convs[1]->attrs.contains("pool"));
  CHECK(convs[1]->attrs.at("pool").at("op") == "AvgPool2d");
  CHECK(g.value(convs[1]->outputs[0][0]).name == "pb");
  // cc's result is a model output, cd's is read twice (pool_d and the sigmoid), ce's planes have
  // 66 * 64 > 4096 elements: their poolings stay layers.
  for (size_t i = 2; i < 5; ++i) CHECK_FALSE(convs[i]->attrs.contains("pool"));
  CHECK(nodes_of(g, "MaxPool2d").size() == 3);
  CHECK(nodes_of(g, "AvgPool2d").empty());
  // Not with gradients; a second run finds nothing more.
  Graph with_grad = unfused(text, true);
  CHECK(nodes_of(fuse_pool(with_grad), "MaxPool2d").size() == 4);
  CHECK(dump_ir(fuse_pool(g)) == dump_ir(g));

  // The generated convolution writes its result to its scratch, after its own working memory,
  // and pools each row in the epilogue on the calling thread; the FLOPs are the convolution's.
  ProgramPlan plan = plan_program(g, {{"N", 2}});
  const Graph& pg = plan.graph;
  const Node& ca = *nodes_of(pg, "Conv2d")[0];
  const std::map<std::string, int64_t> n2 = {{"N", 2}}, n3 = {{"N", 3}};
  CHECK(ca.op->flops(ca, pg).eval(n2) == 2 * 4 * 8 * 8 * 3 * 3 * 3 * 2);
  // The scratch grows by the convolution's result: 4 * 8 * 8 elements per image.
  const Dim& scratch = plan.scratch_elems[static_cast<size_t>(ca.id)];
  CHECK(*scratch.eval(n3) - *scratch.eval(n2) == 4 * 8 * 8);
  const std::string code = test::generated_source(plan, "pools");
  CHECK_THAT(code, Contains("float* const unpooled = "));
  CHECK_THAT(code, Contains("rt::k::conv2d(unpooled, x, ca_weight, ca_bias, "));
  // The pooling's geometry by name (rt::k::Pool2dGeom): 8x8 -> 4x4 by 2x2 windows, stride 2; 4x4 -> 2x2 by
  // 3x3 windows, stride 2, padding 1, counting the padding.
  CHECK_THAT(code, Contains("const rt::k::Pool2dGeom pool_geom{.h = 8, .w = 8, .kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2,"));
  CHECK_THAT(code, Contains(".pad_h = 0, .pad_w = 0, .dil_h = 1, .dil_w = 1, .out_h = 4, .out_w = 4};"));
  CHECK_THAT(code, Contains("rt::k::max_pool2d_plane(pa + (n * 4 + k) * 16, row, pool_geom);"));
  CHECK_THAT(code, Contains("const rt::k::Pool2dGeom pool_geom{.h = 4, .w = 4, .kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2,"));
  CHECK_THAT(code, Contains(".pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .out_h = 2, .out_w = 2, .count_include_pad = true};"));
  CHECK_THAT(code, Contains("rt::k::avg_pool2d_plane(pb + (n * 4 + k) * 4, row, pool_geom);"));
}
