// The layout pass on its own: which convolutions go channels-last, where the transposes go, what it
// leaves alone (convolutions without a channels-last kernel, programs with gradients), and the
// generated calls. (Numbers against PyTorch, and passes on and off: tests/e2e/layout.py.)
#include "codegen/project.h"
#include "codegen/plan.h"
#include "frontend/document.h"
#include "helpers.h"
#include "passes/fuse.h"
#include "passes/layout.h"

using namespace mithril;
using Catch::Contains;

namespace {

// The graph as code generation has it before the layout pass (fold-batchnorm, fuse-elementwise,
// fuse-epilogue, fuse-pool), with `grad`: the backward pass for --grad-inputs x.
Graph before_layout(const std::string& text, bool grad = false) {
  Program prog = program_from_model(parse_model(parse_document(text, "test.yaml", false), "test"));
  CheckOptions opts;
  if (grad) {
    opts.pipeline.grad.enabled = true;
    opts.pipeline.grad.inputs = {"x"};
  }
  Graph g = fuse_pool(fuse_epilogue(fuse_elementwise(fold_batchnorm(check_program(prog, opts)))));
  verify_graph(g);
  return g;
}

const Node* layer(const Graph& g, const std::string& op, const std::string& name) {
  for (auto& n : g.nodes)
    if (n.op->name == op && n.name == name) return &n;
  return nullptr;
}

bool nhwc(const Node* n) { return n && n->attrs.contains("layout") && n->attrs.at("layout") == "NHWC"; }

std::vector<std::string> permutes(const Graph& g) {
  std::vector<std::string> out;
  for (auto& n : g.nodes)
    if (n.op->name == "Permute") out.push_back(n.name);
  return out;
}

const char* kSeparable = R"(
name: separable
inputs: {x: {shape: [N, 16, 14, 14]}}
outputs: [y, z]
layers:
  - {op: Conv2d, name: dense, args: {out_channels: 32, kernel_size: 3, padding: 1}, input: x, output: h0}
  - {op: Relu, input: h0, output: a0}
  - {op: Conv2d, name: side, args: {out_channels: 32, kernel_size: 1, stride: 2}, input: a0, output: h5}
  - {op: Conv2d, name: dw1, args: {out_channels: 32, kernel_size: 3, padding: 1, groups: 32}, input: a0, output: h1}
  - {op: BatchNorm2d, name: bn1, input: h1, output: b1}
  - {op: Relu, input: b1, output: a1}
  - {op: Conv2d, name: pw1, args: {out_channels: 96, kernel_size: 1}, input: a1, output: h2}
  - {op: Relu, input: h2, output: a2}
  - {op: Conv2d, name: dw2, args: {out_channels: 96, kernel_size: 3, stride: 2, padding: 1, groups: 96}, input: a2, output: h3}
  - {op: Conv2d, name: pw2, args: {out_channels: 32, kernel_size: 1}, input: h3, output: h4}
  - {op: Add, left: h4, right: h5, output: y}
  - {op: GlobalAvgPool2d, name: gap, input: y, output: z}
)";

}  // namespace

TEST_CASE("layout: depthwise and pointwise chains go channels-last, transposes only at their ends", "[layout]") {
  Graph g = choose_layouts(before_layout(kSeparable));
  verify_graph(g);
  // dense (3x3 groups 1) and side (strided 1x1) have no channels-last kernel.
  CHECK_FALSE(nhwc(layer(g, "Conv2d", "dense")));
  CHECK_FALSE(nhwc(layer(g, "Conv2d", "side")));
  for (const char* name : {"dw1", "pw1", "dw2", "pw2"}) {
    INFO(name);
    CHECK(nhwc(layer(g, "Conv2d", name)));
  }
  // Shapes: channels-last in and out.
  const Node* dw2 = layer(g, "Conv2d", "dw2");
  REQUIRE(dw2);
  CHECK(g.value(dw2->inputs[0][0]).shape == Shape{Dim::symbol("N"), Dim(14), Dim(14), Dim(96)});
  CHECK(g.value(dw2->outputs[0][0]).shape == Shape{Dim::symbol("N"), Dim(7), Dim(7), Dim(96)});
  // dense's output transposed once for dw1; pw2 (with side's result as its residual, transposed for
  // it) gives y back channels-first for the model output and gap. Nothing between dw1 and pw2.
  // (Channels-first pw2 would transpose dw2's 96 channels instead of side's and y's 32 + 32.)
  auto p = permutes(g);
  std::sort(p.begin(), p.end());
  CHECK(p == std::vector<std::string>{"dense.to_nhwc", "pw2.to_nchw", "side.to_nhwc"});
  const Node* pw2 = layer(g, "Conv2d", "pw2");
  REQUIRE(pw2);
  CHECK(g.value(pw2->outputs[0][0]).name == "y_nhwc");
  const Node* back = layer(g, "Permute", "pw2.to_nchw");
  REQUIRE(back);
  CHECK(g.value(back->outputs[0][0]).name == "y");
  CHECK(back->attrs.at("dims") == json({0, 3, 1, 2}));
  // Every Permute runs right before its first reader or right after its writer.
  CHECK(back->id == pw2->id + 1);
  const Node* side = layer(g, "Permute", "side.to_nhwc");
  REQUIRE(side);
  CHECK(side->id + 1 == pw2->id);

  // The generated code: the channels-last kernel, the pixel epilogue, pw's weights packed as gemm panels.
  const std::string cpp = test::generated_source(plan_program(g, {{"N", 2}}), "separable");
  CHECK_THAT(cpp, Contains("rt::k::conv2d_nhwc("));
  CHECK_THAT(cpp, Contains("int64_t count) {"));
  CHECK_THAT(cpp, Contains("rt::k::permute<float>(dense_to_nhwc"));
}

TEST_CASE("layout: left alone without channels-last kernels, with gradients, or when a transpose costs more", "[layout]") {
  // Only dense convolutions: nothing changes.
  const char* dense = R"(
name: dense
inputs: {x: {shape: [2, 8, 10, 10]}}
outputs: [y]
layers:
  - {op: Conv2d, args: {out_channels: 8, kernel_size: 3, padding: 1}, input: x}
  - Relu
  - {op: Conv2d, args: {out_channels: 8, kernel_size: 3, padding: 1}, output: y}
)";
  Graph d = before_layout(dense);
  CHECK(dump_ir(choose_layouts(d)) == dump_ir(d));
  // A program with gradients: its convolutions keep the layout the backward pass expects.
  Graph gr = before_layout(kSeparable, true);
  CHECK(dump_ir(choose_layouts(gr)) == dump_ir(gr));
  // A lone pointwise convolution between two dense ones: as fast either way, so two transposes do not pay.
  const char* lone = R"(
name: lone
inputs: {x: {shape: [2, 8, 10, 10]}}
outputs: [y]
layers:
  - {op: Conv2d, args: {out_channels: 8, kernel_size: 3, padding: 1}, input: x}
  - {op: Conv2d, args: {out_channels: 8, kernel_size: 1}}
  - {op: Conv2d, args: {out_channels: 8, kernel_size: 3, padding: 1}, output: y}
)";
  Graph l = before_layout(lone);
  CHECK(dump_ir(choose_layouts(l)) == dump_ir(l));
  // The rates behind the choice: depthwise gains channels-last, pointwise is the same gemm either way.
  CHECK(layout_rate(true, true, false) > 2 * layout_rate(false, true, false));
  CHECK(layout_rate(true, false, true) == layout_rate(false, false, true));
}

TEST_CASE("layout: a chain moves as a whole where no single convolution would", "[layout]") {
  // Depthwise 2x2 convolutions gain (1/3 - 1/12) * 4 = 1 ns per output element channels-last, a
  // transpose costs 1 ns per element (layout_rate, 8 bytes per ns): alone, each would pay two
  // transposes for one element's gain; the chain of five pays two transposes for three.
  const char* text = R"(
name: chain
inputs: {x: {shape: [1, 16, 20, 20]}}
outputs: [y]
layers:
  - {op: Conv2d, name: entry, args: {out_channels: 64, kernel_size: 3, padding: 1}, input: x}
  - {op: Conv2d, name: dw1, args: {out_channels: 64, kernel_size: 2, padding: 1, groups: 64}}
  - {op: Conv2d, name: pw1, args: {out_channels: 64, kernel_size: 1}}
  - {op: Conv2d, name: dw2, args: {out_channels: 64, kernel_size: 2, groups: 64}}
  - {op: Conv2d, name: pw2, args: {out_channels: 64, kernel_size: 1}}
  - {op: Conv2d, name: dw3, args: {out_channels: 64, kernel_size: 2, padding: 1, groups: 64}}
  - {op: Conv2d, name: exit, args: {out_channels: 16, kernel_size: 3, padding: 1}, output: y}
)";
  REQUIRE(layout_rate(true, true, false) == 12.0);
  REQUIRE(layout_rate(false, true, false) == 3.0);
  Graph g = choose_layouts(before_layout(text));
  verify_graph(g);
  for (const char* name : {"dw1", "pw1", "dw2", "pw2", "dw3"}) {
    INFO(name);
    CHECK(nhwc(layer(g, "Conv2d", name)));
  }
  CHECK_FALSE(nhwc(layer(g, "Conv2d", "entry")));
  CHECK_FALSE(nhwc(layer(g, "Conv2d", "exit")));
  auto p = permutes(g);
  std::sort(p.begin(), p.end());
  CHECK(p == std::vector<std::string>{"dw3.to_nchw", "entry.to_nhwc"});
}
