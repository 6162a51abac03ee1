// The optimizing passes (passes/optimize.h), each alone on small graphs checked up to
// infer-shapes: what each removes, rewrites or keeps, that model outputs keep their names, that
// the graph stays ordered and typed, and that a second run changes nothing. Then the pipeline:
// order, --no-pass, gradients built from the optimized graph, and every sample with and without.
// (Generated code with the passes on is covered by the e2e tests.)
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "frontend/document.h"
#include "helpers.h"
#include "ops/fold.h"

using namespace mithril;

namespace {

const std::vector<std::string> kOptimizing = {"simplify", "fold", "cse", "dce"};

// Checked through infer-shapes only (the optimizing passes off).
Graph unoptimized(const std::string& text) {
  Program prog = program_from_model(parse_model(parse_document(text, "test.yaml", false), "test"));
  CheckOptions opts;
  opts.pipeline.disabled = kOptimizing;
  return check_program(prog, opts);
}

std::vector<std::string> output_value_names(const Graph& g) {
  std::vector<std::string> out;
  for (int v : g.outputs) out.push_back(g.value(v).name);
  return out;
}

// Verified, typed, outputs under their names, and a fixed point: a second run changes nothing.
Graph run_pass(Graph (*pass)(Graph), const Graph& in) {
  Graph g = pass(in);
  verify_graph(g);
  for (auto& n : g.nodes) {
    for (auto& port : n.inputs)
      for (int v : port) CHECK(g.value(v).typed);
    for (auto& port : n.outputs)
      for (int v : port) CHECK(g.value(v).typed);
  }
  CHECK(g.output_names == in.output_names);
  CHECK(output_value_names(g) == output_value_names(in));
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    CHECK(g.value(g.outputs[i]).shape == in.value(in.outputs[i]).shape);
    CHECK(g.value(g.outputs[i]).dtype == in.value(in.outputs[i]).dtype);
  }
  CHECK(dump_ir(pass(g)) == dump_ir(g));
  return g;
}

int count_op(const Graph& g, const std::string& op) {
  auto is_op = [&](const Node& n) { return n.op->name == op; };
  return static_cast<int>(std::count_if(g.nodes.begin(), g.nodes.end(), is_op));
}

const Node& node_named(const Graph& g, const std::string& name) {
  for (auto& n : g.nodes)
    if (n.name == name) return n;
  FAIL("no node " << name);
  throw std::logic_error("unreachable");
}

bool has_node(const Graph& g, const std::string& name) {
  return std::any_of(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.name == name; });
}

// The node producing the value a node reads at `port`.
const Node& producer_of(const Graph& g, const Node& n, const std::string& port) {
  int v = n.inputs.at(static_cast<size_t>(n.op->input_index(port))).at(0);
  REQUIRE(g.value(v).producer >= 0);
  return g.nodes[static_cast<size_t>(g.value(v).producer)];
}

int input_value(const Node& n, const std::string& port) {
  return n.inputs.at(static_cast<size_t>(n.op->input_index(port))).at(0);
}

int input_id(const Graph& g, const std::string& name) {
  for (int v : g.inputs)
    if (g.value(v).name == name) return v;
  FAIL("no input " << name);
  return -1;
}

std::vector<std::string> kind_names(const Graph& g, ValueKind k) {
  std::vector<std::string> out;
  for (int id : g.values_of_kind(k))
    out.push_back(g.value(id).name + ": " + type_str(g.value(id).dtype, g.value(id).shape));
  return out;
}

}  // namespace

// ---- simplify ----------------------------------------------------------------------------------

TEST_CASE("simplify: x*1, 1*x, x+0, 0+x, x-0, x/1 and Identity go", "[optimize]") {
  Graph in = unoptimized(R"(
name: s
inputs:
  x: {shape: [N, 4]}
outputs: [y]
layers:
  - {op: Constant, name: one, args: {value: 1.0}, output: one}
  - {op: Constant, name: zero, args: {value: 0.0}, output: zero}
  - {op: Constant, name: row, args: {value: [[1.0, 1.0, 1.0, 1.0]]}, output: row}
  - {op: Expand, name: wide, input: one, args: {shape: [4]}, output: wide}
  - {op: Relu, name: r, input: x, output: a}
  - {op: Multiply, name: m1, left: a, right: one, output: b}
  - {op: Multiply, name: m2, left: one, right: b, output: c}
  - {op: Add, name: a1, left: c, right: zero, output: d}
  - {op: Add, name: a2, left: zero, right: d, output: e}
  - {op: Subtract, name: s1, left: e, right: zero, output: f}
  - {op: Divide, name: d1, left: f, right: one, output: h}
  - {op: Identity, name: id, input: h, output: i}
  - {op: Multiply, name: m3, left: i, right: row, output: j}
  - {op: Multiply, name: m4, left: wide, right: j, output: k}
  - {op: Tanh, name: t, input: k, output: y}
)");
  Graph g = run_pass(simplify, in);
  for (auto op : {"Multiply", "Add", "Subtract", "Divide", "Identity"}) CHECK(count_op(g, op) == 0);
  CHECK(g.nodes.size() == in.nodes.size() - 9);
  // Tanh reads Relu's result directly; the constants stay for dce.
  CHECK(producer_of(g, node_named(g, "t"), "input").name == "r");
  CHECK(count_op(g, "Constant") == 3);
}

TEST_CASE("simplify: only where the result is x itself", "[optimize]") {
  Graph in = unoptimized(R"(
name: s
inputs:
  x: {shape: [4]}
outputs: [y1, y2, y3, y4, y5]
layers:
  - {op: Constant, name: one, args: {value: 1.0}, output: one}
  - {op: Constant, name: zero, args: {value: 0.0}, output: zero}
  - {op: Constant, name: two, args: {value: 2.0}, output: two}
  - {op: Constant, name: ones, args: {value: [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]}, output: ones}
  - {op: Constant, name: mixed, args: {value: [1.0, 1.0, 2.0, 1.0]}, output: mixed}
  - {op: Multiply, name: broadcasts, left: x, right: ones, output: y1}
  - {op: Subtract, name: zero_minus, left: zero, right: x, output: y2}
  - {op: Multiply, name: times_two, left: x, right: two, output: y3}
  - {op: Divide, name: one_over, left: one, right: x, output: y4}
  - {op: Multiply, name: not_uniform, left: x, right: mixed, output: y5}
)");
  Graph g = run_pass(simplify, in);
  CHECK(dump_ir(g) == dump_ir(in));
}

TEST_CASE("simplify: model outputs keep their names", "[optimize]") {
  Graph in = unoptimized(R"(
name: s
inputs:
  x: {shape: [N, 4]}
outputs: [y, z, w]
layers:
  - {op: Constant, name: one, args: {value: 1.0}, output: one}
  - {op: Relu, name: r, input: x, output: h}
  - {op: Identity, name: out_y, input: h, output: y}
  - {op: Identity, name: out_z, input: x, output: z}
  - {op: Multiply, name: out_w, left: x, right: one, output: w}
)");
  Graph g = run_pass(simplify, in);
  // y: Relu's value takes the output's place and name; z and w read the model input, so an Identity stays.
  CHECK_FALSE(has_node(g, "out_y"));
  CHECK(g.nodes[static_cast<size_t>(g.value(g.outputs[0]).producer)].name == "r");
  CHECK(node_named(g, "out_z").op->name == "Identity");
  CHECK(node_named(g, "out_w").op->name == "Identity");
  CHECK(input_value(node_named(g, "out_w"), "input") == input_id(g, "x"));
}

TEST_CASE("simplify: parameters keep their first reader, so the weight table keeps its order", "[optimize]") {
  Graph in = unoptimized(R"(
name: w
inputs:
  x: {shape: [4]}
params:
  w: {shape: [4]}
  v: {shape: [4]}
  u: {shape: [4]}
outputs: [y]
layers:
  - {op: Identity, name: wi, input: w, output: wv}
  - {op: Constant, name: one, args: {value: 1.0}, output: one}
  - {op: Multiply, name: ui, left: u, right: one, output: uv}
  - {op: Multiply, name: vx, left: x, right: v, output: xv}
  - {op: Multiply, name: w1, left: wv, right: one, output: w1}
  - {op: Add, name: s, left: xv, right: w1, output: s}
  - {op: Add, name: y, left: s, right: uv, output: y}
)");
  Graph g = run_pass(simplify, in);
  CHECK(kind_names(g, ValueKind::Param) == kind_names(in, ValueKind::Param));
  CHECK(node_named(g, "wi").op->name == "Identity");
  CHECK(node_named(g, "ui").op->name == "Identity");  // u * 1: an Identity where u was first read
  CHECK_FALSE(has_node(g, "w1"));                      // Identity(w) * 1 is Identity(w)
}

TEST_CASE("simplify: Permute and Transpose chains compose", "[optimize]") {
  Graph in = unoptimized(R"(
name: p
inputs:
  x: {shape: [2, 3, 4, 5]}
outputs: [a, b, c, d]
layers:
  - {op: Permute, name: p1, input: x, args: {dims: [0, 2, 3, 1]}, output: p1}
  - {op: Permute, name: back, input: p1, args: {dims: [0, 3, 1, 2]}, output: q}
  - {op: Relu, name: ra, input: q, output: a}
  - {op: Transpose, name: t1, input: p1, args: {dim0: 1, dim1: 2}, output: t1}
  - {op: Exp, name: rb, input: t1, output: b}
  - {op: Transpose, name: u1, input: x, output: u1}
  - {op: Transpose, name: u2, input: u1, output: u2}
  - {op: Permute, name: same, input: u2, args: {dims: [0, 1, 2, -1]}, output: s}
  - {op: Neg, name: rc, input: s, output: c}
  - {op: Permute, name: p2, input: p1, args: {dims: [3, 2, 1, 0]}, output: p2}
  - {op: Permute, name: p3, input: p2, args: {dims: [1, 0, 2, 3]}, output: d}
)");
  Graph g = run_pass(simplify, in);
  const int x = input_id(g, "x");
  CHECK(input_value(node_named(g, "ra"), "input") == x);  // the two permutations cancel
  CHECK(input_value(node_named(g, "rc"), "input") == x);  // two swaps and an identity permutation
  const Node& t1 = node_named(g, "t1");                   // a swap of a permutation: one Permute of x
  CHECK(t1.op->name == "Permute");
  CHECK(t1.attrs["dims"] == json({0, 3, 2, 1}));
  CHECK(input_value(t1, "input") == x);
  const Node& p3 = node_named(g, "p3");  // three permutations in a row: one
  CHECK(p3.op->name == "Permute");
  CHECK(input_value(p3, "input") == x);
  CHECK(p3.attrs["dims"] == json({3, 1, 2, 0}));
  CHECK(shape_str(g.value(g.outputs[3]).shape) == "[5, 3, 4, 2]");
}

TEST_CASE("simplify: reshapes of reshapes collapse, reshapes to the same shape go", "[optimize]") {
  Graph in = unoptimized(R"(
name: r
inputs:
  x: {shape: [N, 4, 6]}
outputs: [a, b, c, d]
layers:
  - {op: Reshape, name: flat, input: x, args: {shape: [0, 24]}, output: flat}
  - {op: Reshape, name: split, input: flat, args: {shape: [0, 2, 12]}, output: a}
  - {op: Reshape, name: same, input: x, args: {shape: [0, 4, 6]}, output: same}
  - {op: Flatten, name: flat_again, input: flat, output: fa}
  - {op: Add, name: b, left: same, right: x, output: b}
  - {op: Reshape, name: back, input: flat, args: {shape: [0, 4, 6]}, output: back}
  - {op: Relu, name: c, input: back, output: c}
  - {op: Reshape, name: all, input: x, args: {shape: [-1]}, output: all}
  - {op: Reshape, name: rows, input: all, args: {shape: [-1, 6]}, output: rows}
  - {op: Tanh, name: d, input: rows, output: d}
  - {op: Sigmoid, name: e, input: fa, output: e}
)");
  Graph g = run_pass(simplify, in);
  const int x = input_id(g, "x");
  const Node& split = node_named(g, "split");
  CHECK(input_value(split, "input") == x);
  CHECK(split.attrs["shape"] == json({0, 2, 12}));
  CHECK(input_value(node_named(g, "b"), "left") == x);
  CHECK(input_value(node_named(g, "c"), "input") == x);
  CHECK(producer_of(g, node_named(g, "e"), "input").name == "flat");  // Flatten of [N, 24] changed nothing
  const Node& rows = node_named(g, "rows");
  CHECK(input_value(rows, "input") == x);
  CHECK(rows.attrs["shape"] == json({-1, 6}));
  CHECK(shape_str(g.value(rows.outputs[0][0]).shape) == "[N*4, 6]");
  CHECK_FALSE(has_node(g, "same"));
  CHECK_FALSE(has_node(g, "back"));
  CHECK_FALSE(has_node(g, "flat_again"));
}

TEST_CASE("simplify: Log(Softmax(x)) becomes LogSoftmax(x) along the same axis", "[optimize]") {
  Graph in = unoptimized(R"(
name: l
inputs:
  x: {shape: [N, 5]}
outputs: [y]
layers:
  - {op: Softmax, name: sm, input: x, args: {axis: 0}, output: p}
  - {op: Log, name: y, input: p, output: y}
)");
  Graph g = run_pass(simplify, in);
  const Node& y = node_named(g, "y");
  CHECK(y.op->name == "LogSoftmax");
  CHECK(y.attrs["axis"] == 0);
  CHECK(input_value(y, "input") == input_id(g, "x"));
}

// ---- fold --------------------------------------------------------------------------------------

TEST_CASE("fold: nodes of constants become Constants", "[optimize]") {
  Graph in = unoptimized(R"(
name: f
inputs:
  x: {shape: [N, 3]}
outputs: [y, k, i, bits, m, gt, ex]
layers:
  - {op: Constant, name: a, args: {value: [1.0, 2.0, 3.0]}, output: a}
  - {op: Constant, name: b, args: {value: 2.0}, output: b}
  - {op: Multiply, name: ab, left: a, right: b, output: ab}
  - {op: Exp, name: e, input: ab, output: e}
  - {op: Neg, name: ne, input: e, output: ne}
  - {op: Add, name: y, left: x, right: ne, output: y}
  - {op: Constant, name: c, args: {value: [[7, -7], [9, 1]], dtype: int32}, output: c}
  - {op: Constant, name: d, args: {value: 2, dtype: int32}, output: d}
  - {op: Divide, name: k, left: c, right: d, output: k}
  - {op: Constant, name: f, args: {value: [2.7, -2.7]}, output: f}
  - {op: Cast, name: i, input: f, args: {dtype: int32}, output: i}
  - {op: Constant, name: g, args: {value: [0.0, 0.5]}, output: g}
  - {op: Cast, name: bits, input: g, args: {dtype: bool}, output: bits}
  - {op: Constant, name: h, args: {value: [[1, 2, 3], [4, 5, 6]], dtype: int64}, output: h}
  - {op: Reshape, name: m, input: h, args: {shape: [3, 2]}, output: m}
  - {op: Greater, name: gt, left: a, right: b, output: gt}
  - {op: Expand, name: ex, input: b, args: {shape: [2, 3]}, output: ex}
)");
  Graph g = run_pass(fold_constants, in);
  CHECK(g.nodes.size() == in.nodes.size());  // the inputs of folded nodes are left to dce
  CHECK(node_named(g, "y").op->name == "Add");
  for (auto name : {"ab", "e", "ne", "k", "i", "bits", "m", "gt", "ex"}) {
    INFO(name);
    CHECK(node_named(g, name).op->name == "Constant");
  }
  CHECK(node_named(g, "ab").attrs["value"] == json({2.0, 4.0, 6.0}));
  const json& ne = node_named(g, "ne").attrs["value"];
  for (int i = 0; i < 3; ++i)  // rounded to float32 at every step, as the generated code would
    CHECK(static_cast<float>(ne[i].get<double>()) == -static_cast<float>(std::exp(2.0 * (i + 1))));
  CHECK(node_named(g, "k").attrs["value"] == json({{3, -3}, {4, 0}}));  // integer division truncates
  CHECK(node_named(g, "k").attrs["dtype"] == "int32");
  CHECK(node_named(g, "i").attrs["value"] == json({2, -2}));
  CHECK(node_named(g, "bits").attrs["value"] == json({false, true}));
  CHECK(node_named(g, "m").attrs["value"] == json({{1, 2}, {3, 4}, {5, 6}}));
  CHECK(node_named(g, "gt").attrs["value"] == json({false, false, true}));
  CHECK(node_named(g, "ex").attrs["value"] == json({{2.0, 2.0, 2.0}, {2.0, 2.0, 2.0}}));
}

TEST_CASE("fold: leaves what it cannot or should not fold", "[optimize]") {
  Graph in = unoptimized(R"(
name: f
inputs:
  x: {shape: [3]}
outputs: [log0, div0, sqrt_neg, big, wide, drop, sym]
layers:
  - {op: Constant, name: zero, args: {value: 0.0}, output: zero}
  - {op: Constant, name: izero, args: {value: 0, dtype: int32}, output: izero}
  - {op: Constant, name: ione, args: {value: 1, dtype: int32}, output: ione}
  - {op: Constant, name: neg, args: {value: -1.0}, output: neg}
  - {op: Log, name: log0, input: zero, output: log0}
  - {op: Divide, name: div0, left: ione, right: izero, output: div0}
  - {op: Sqrt, name: sqrt_neg, input: neg, output: sqrt_neg}
  - {op: Expand, name: big, input: zero, args: {shape: [100, 100]}, output: big}
  - {op: Expand, name: wide, input: zero, args: {shape: [10, 10]}, output: wide}
  - {op: Dropout, name: drop, input: zero, output: drop}
  - {op: Add, name: sym, left: x, right: zero, output: sym}
)");
  // -inf, a division by zero, NaN, 10000 elements, a scalar broadcast to 100, a random op, an input
  Graph g = run_pass(fold_constants, in);
  CHECK(dump_ir(g) == dump_ir(in));
}

TEST_CASE("fold: every elementwise row has a fold rule", "[optimize]") {
  for (const OpDef* op : all_ops()) {
    if (op->family != "elementwise" || op->has_trait("internal") || op->name == "Where" || op->name == "Not") continue;
    INFO(op->name);
    CHECK(op->fold);
  }
  for (auto name : {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "ReshapeLike", "BroadcastLike"})
    CHECK(find_op(name)->fold);
  CHECK(broadcast_elements({1, 2, 3}, {Dim(3), Dim(1)}, {Dim(2), Dim(3), Dim(2)}) ==
        std::vector<double>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  CHECK(constant_elements(json({{1, 2}, {true, 0.5}})) == std::vector<double>{1, 2, 1, 0.5});
}

// ---- cse ---------------------------------------------------------------------------------------

TEST_CASE("cse: identical nodes are computed once, commutative ops in either order", "[optimize]") {
  Graph in = unoptimized(R"(
name: c
inputs:
  x: {shape: [N, 4]}
  z: {shape: [N, 4]}
outputs: [y]
layers:
  - {op: Relu, name: r1, input: x, output: r1}
  - {op: Relu, name: r2, input: x, output: r2}
  - {op: Exp, name: e1, input: r1, output: e1}
  - {op: Exp, name: e2, input: r2, output: e2}
  - {op: Add, name: s1, left: e1, right: z, output: s1}
  - {op: Add, name: s2, left: z, right: e2, output: s2}
  - {op: Multiply, name: y, left: s1, right: s2, output: y}
)");
  Graph g = run_pass(cse, in);
  CHECK(g.nodes.size() == 4);
  for (auto gone : {"r2", "e2", "s2"}) CHECK_FALSE(has_node(g, gone));
  const Node& y = node_named(g, "y");
  CHECK(input_value(y, "left") == input_value(y, "right"));
}

TEST_CASE("cse: different arguments, orders, random ops and outputs stay apart", "[optimize]") {
  Graph in = unoptimized(R"(
name: c
inputs:
  x: {shape: [N, 4]}
  z: {shape: [N, 4]}
outputs: [y, o1, o2]
layers:
  - {op: Subtract, name: d1, left: x, right: z, output: d1}
  - {op: Subtract, name: d2, left: z, right: x, output: d2}
  - {op: LeakyRelu, name: l1, input: x, args: {negative_slope: 0.1}, output: l1}
  - {op: LeakyRelu, name: l2, input: x, args: {negative_slope: 0.2}, output: l2}
  - {op: LeakyRelu, name: l3, input: x, args: {negative_slope: 0.1}, output: l3}
  - {op: Dropout, name: drop1, input: x, output: q1}
  - {op: Dropout, name: drop2, input: x, output: q2}
  - {op: Constant, name: c1, args: {value: 1.0}, output: c1}
  - {op: Constant, name: c2, args: {value: 1.0}, output: c2}
  - {op: Constant, name: c3, args: {value: 1.0, dtype: float64}, output: c3}
  - {op: Cast, name: c3f, input: c3, args: {dtype: float32}, output: c3f}
  - {op: Add, name: s1, left: d1, right: d2, output: s1}
  - {op: Add, name: s2, left: l1, right: l2, output: s2}
  - {op: Add, name: s3, left: l3, right: q1, output: s3}
  - {op: Add, name: s4, left: q2, right: c1, output: s4}
  - {op: Add, name: s5, left: c2, right: c3f, output: s5}
  - {op: Add, name: s6, left: s1, right: s2, output: s6}
  - {op: Add, name: s7, left: s3, right: s4, output: s7}
  - {op: Add, name: s8, left: s5, right: s6, output: s8}
  - {op: Add, name: y, left: s7, right: s8, output: y}
  - {op: Tanh, name: o1, input: x, output: o1}
  - {op: Tanh, name: o2, input: x, output: o2}
)");
  Graph g = run_pass(cse, in);
  // merged: l3 into l1, c2 into c1; everything else stays, including the second output's Tanh
  CHECK(g.nodes.size() == in.nodes.size() - 2);
  CHECK_FALSE(has_node(g, "l3"));
  CHECK_FALSE(has_node(g, "c2"));
  for (auto kept : {"d1", "d2", "l1", "l2", "drop1", "drop2", "c1", "c3", "o1", "o2"}) CHECK(has_node(g, kept));
}

// ---- dce ---------------------------------------------------------------------------------------

TEST_CASE("dce: unused nodes go; state, parameters and outputs stay", "[optimize]") {
  Graph in = unoptimized(R"(
name: d
inputs:
  x: {shape: [N, 4, 3, 3]}
outputs: [y]
layers:
  - {op: Relu, name: live, input: x, output: y}
  - {op: Tanh, name: dead1, input: x, output: t}
  - {op: Exp, name: dead2, input: t, output: u}
  - {op: Dropout, name: drop, input: x, output: dd}
  - {op: Constant, name: k, args: {value: 1.0}, output: k}
  - {op: Abs, name: feeds_bn, input: x, output: ax}
  - {op: BatchNorm2d, name: bn, input: ax, output: b}
  - {op: Neg, name: feeds_fc, input: x, output: nx}
  - {op: Linear, name: fc, args: {dimension: 2}, input: nx, output: l}
  - {op: Sigmoid, name: after_fc, input: l, output: s}
)");
  Graph g = run_pass(dce, in);
  std::vector<std::string> names;
  for (auto& n : g.nodes) names.push_back(n.name);
  CHECK(names == std::vector<std::string>{"live", "feeds_bn", "bn", "feeds_fc", "fc"});
  // BatchNorm updates its running statistics in training; the weight table keeps every parameter.
  CHECK(kind_names(g, ValueKind::Param) == kind_names(in, ValueKind::Param));
  CHECK(kind_names(g, ValueKind::State) == kind_names(in, ValueKind::State));
}

// ---- the pipeline ------------------------------------------------------------------------------

TEST_CASE("the optimizing passes run after infer-shapes, before loss and autodiff; --no-pass", "[optimize]") {
  TrainSpec spec;
  PipelineOptions o;
  o.train = &spec;
  std::vector<std::string> names;
  for (auto& p : frontend_passes(o)) {
    names.push_back(p.name);
    if (std::find(kOptimizing.begin(), kOptimizing.end(), p.name) != kOptimizing.end()) CHECK(p.optional);
  }
  auto at = std::find(names.begin(), names.end(), "infer-shapes");
  REQUIRE(names.end() - at >= 7);
  CHECK(std::vector<std::string>(at, at + 7) ==
        std::vector<std::string>{"infer-shapes", "simplify", "fold", "cse", "dce", "loss", "autodiff"});

  const char* text = R"(
name: m
inputs:
  x: {shape: [N, 4]}
layers:
  - {op: Linear, args: {dimension: 3}, name: fc}
  - Identity
  - {op: Softmax, name: sm}
  - {op: Log, name: out}
)";
  Program prog = program_from_model(parse_model(parse_document(text, "test.yaml", false), "test"));
  CheckOptions opts;
  std::string dumped;
  opts.pipeline.dump_after = "dce";
  opts.pipeline.on_dump = [&](const std::string& pass, const Graph& g) { dumped = pass + "\n" + dump_ir(g); };
  opts.pipeline.grad.enabled = true;
  Graph g = check_program(prog, opts);
  CHECK(dumped.rfind("dce\n", 0) == 0);
  // The backward pass is built from the optimized forward pass: Linear, LogSoftmax.
  CHECK(count_op(g, "LogSoftmax") == 1);
  CHECK(count_op(g, "Softmax") == 0);
  CHECK(count_op(g, "Log") == 0);
  CHECK(g.forward_nodes == 2);
  CHECK(g.grads.size() == 2);

  opts.pipeline.disabled = kOptimizing;
  Graph off = check_program(prog, opts);
  CHECK(count_op(off, "Softmax") == 1);
  CHECK(count_op(off, "Log") == 1);
  CHECK(off.grads.size() == 2);
}

// The graph right after pass `after` (the rest of the pipeline may change it further).
static Graph graph_after(const std::string& path, const std::string& after, bool optimize) {
  CheckOptions opts;
  if (!optimize) opts.pipeline.disabled = kOptimizing;
  Graph out;
  opts.pipeline.dump_after = after;
  opts.pipeline.on_dump = [&](const std::string&, const Graph& g) { out = g; };
  check_model(path, opts);
  return out;
}

TEST_CASE("every sample keeps its outputs and parameters through the optimizing passes", "[optimize]") {
  namespace fs = std::filesystem;
  for (auto& entry : fs::directory_iterator(std::string(MITHRIL_SOURCE_DIR) + "/samples")) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path().string());
    Graph in = graph_after(entry.path().string(), "infer-shapes", false);
    Graph g = graph_after(entry.path().string(), "dce", true);
    verify_graph(g);
    CHECK(g.nodes.size() <= in.nodes.size());
    CHECK(g.output_names == in.output_names);
    CHECK(output_value_names(g) == output_value_names(in));
    for (size_t i = 0; i < g.outputs.size(); ++i)
      CHECK(type_str(g.value(g.outputs[i]).dtype, g.value(g.outputs[i]).shape) ==
            type_str(in.value(in.outputs[i]).dtype, in.value(in.outputs[i]).shape));
    CHECK(kind_names(g, ValueKind::Param) == kind_names(in, ValueKind::Param));
    CHECK(kind_names(g, ValueKind::State) == kind_names(in, ValueKind::State));
    Graph again = dce(cse(fold_constants(simplify(g))));  // a fixed point
    CHECK(dump_ir(again) == dump_ir(g));
  }
}
