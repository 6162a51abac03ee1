// The memory plan: buffers that are live at the same time never overlap, and
// space is reused once a buffer is dead.
#include "codegen/plan.h"
#include "driver/check.h"
#include "helpers.h"

using namespace mithril;
using Catch::Contains;

static void check_no_live_overlap(const ProgramPlan& p) {
  const Graph& g = p.graph;
  std::vector<int> last(g.values.size(), -1);
  for (auto& n : g.nodes)
    for (auto& port : n.inputs)
      for (int v : port) last[v] = n.id;
  for (int v : g.outputs) last[v] = static_cast<int>(g.nodes.size());
  std::vector<int> temps;
  for (auto& v : g.values)
    if (v.kind == ValueKind::Temp) temps.push_back(v.id);
  for (int a : temps)
    for (int b : temps) {
      if (a >= b) continue;
      int sa = g.value(a).producer, sb = g.value(b).producer;
      int ea = std::max(last[a], sa), eb = std::max(last[b], sb);
      bool live_together = sa <= eb && sb <= ea;
      // An op writing in place of its input (a view) takes the buffer over at its last reader.
      auto handover = [&](int from, int to, int end_from, int start_to) {
        return end_from == start_to && p.offset[from] == p.offset[to] && !g.nodes[start_to].op->in_place.empty();
      };
      if (handover(a, b, ea, sb) || handover(b, a, eb, sa)) live_together = false;
      bool overlap = p.offset[a] < p.offset[b] + p.bytes[b] && p.offset[b] < p.offset[a] + p.bytes[a];
      INFO(g.value(a).name << " and " << g.value(b).name);
      CHECK_FALSE((live_together && overlap));
    }
  for (auto& v : g.values)
    if (v.kind == ValueKind::Temp) CHECK(p.offset[v.id] + p.bytes[v.id] <= p.arena_bytes);
}

TEST_CASE("the plan reuses dead buffers and never overlaps live ones", "[plan]") {
  ProgramPlan p = plan_program(check_model(std::string(MITHRIL_SOURCE_DIR) + "/samples/mlp.yaml"), {{"N", 4}});
  check_no_live_overlap(p);
  // five [4, 512]-sized values at most; with reuse two slots suffice (8 KiB each)
  CHECK(p.arena_bytes == 2 * 4 * 512 * 4);
  CHECK(p.weight_bytes >= 669706 * 4);
  CHECK(p.symbols == std::vector<std::string>{"N"});
}

TEST_CASE("plans of the branching samples are sound", "[plan]") {
  for (auto name : {"two_tower", "tiny_resnet", "lenet"}) {
    INFO(name);
    ProgramPlan p = plan_program(check_model(std::string(MITHRIL_SOURCE_DIR) + "/samples/" + name + ".yaml"), {{"N", 3}});
    check_no_live_overlap(p);
  }
}

TEST_CASE("every run-time dim needs a bound", "[plan]") {
  Graph g = check_model(std::string(MITHRIL_SOURCE_DIR) + "/samples/mlp.yaml");
  CHECK_THROWS_WITH(plan_program(g, {}), Contains("add --max N=VALUE"));
  CHECK(c_identifier("block1.conv2") == "block1_conv2");
  CHECK(c_identifier("0.weight") == "v0_weight");
}

#include "codegen/project.h"

TEST_CASE("run-time dims never collide with names in generated code", "[plan]") {
  // A dim named like the elementwise loop's index: generated code refers to it as dim_i.
  Graph g = test::check_text("name: t\ninputs: {x: {shape: [i, 4]}}\nlayers:\n  - Relu\n  - Tanh\n");
  ProgramPlan p = plan_program(g, {{"i", 8}});
  auto files = emit_cpu_project(p, {"t", "t.yaml", "", false});
  std::string src;
  for (auto& f : files)
    if (f.path == "t.cpp") src = f.text;
  CHECK_THAT(src, Contains("const int64_t dim_i = d.i;"));
  CHECK_THAT(src, Contains("for (int64_t i = 0; i < (int64_t{4} * dim_i); ++i)"));
}

TEST_CASE("a scalar input's shape can be given on the command line", "[plan]") {
  ShapeBindings b;
  parse_shape_binding("s=", b);
  CHECK(b.inputs.at("s").empty());
  Graph g = test::check_text("name: t\ninputs: {s: {shape: []}, x: {shape: [N]}}\nlayers:\n  - {op: Multiply, left: x, right: s}\n", {"s=", "x=3"});
  CHECK(test::output_type(g) == "float32[3]");
}

TEST_CASE("every op can be generated for the CPU", "[plan]") {
  for (auto* op : all_ops()) {
    INFO(op->name);
    CHECK(op->target("cpu") != nullptr);
  }
}

TEST_CASE("packed weights: Linear panels, Winograd transforms where the batch has few tiles", "[plan]") {
  auto model = [](int batch) {
    return "name: small\ninputs: {x: {shape: [" + std::to_string(batch) + ", 32, 8, 8]}}\nlayers:\n"
           "  - {op: Conv2d, name: c3, args: {out_channels: 32, kernel_size: 3, padding: 1}}\n"
           "  - {op: Conv2d, name: down, args: {out_channels: 32, kernel_size: 3, stride: 2, padding: 1}}\n"
           "  - Flatten\n"
           "  - {op: Linear, name: fc, args: {dimension: 10}}\n";
  };
  auto packed = [](const ProgramPlan& p) {
    std::map<std::string, std::string> out;
    for (auto& q : p.packed) out[p.graph.value(q.id).name] = q.spec.floats;
    return out;
  };
  // Batch 1: 4 Winograd F(4x4, 3x3) tiles, too few to transform the weights on every call, so the
  // plan keeps them transformed; the strided convolution has no Winograd form.
  ProgramPlan one = plan_program(test::check_text(model(1)), {});
  CHECK(packed(one) == std::map<std::string, std::string>{{"c3.weight", "rt::k::winograd_packed_size(32, 32, 8, 8)"},
                                                          {"fc.weight", "rt::k::packed_b_size(10, 512)"}});
  const std::string small = test::generated_source(one, "small");
  CHECK_THAT(small, Contains("rt::k::winograd_pack(packed + kPacked_c3_weight, "));
  CHECK_THAT(small, Contains(", rt::k::NoEpilogue{}, rt::k::kPackedGemm ? c3_weight__packed : nullptr);"));
  // Batch 64: enough tiles, the weights are transformed per call; switched off: nothing packed.
  CHECK(packed(plan_program(test::check_text(model(64)), {})) ==
        std::map<std::string, std::string>{{"fc.weight", "rt::k::packed_b_size(10, 512)"}});
  CHECK(plan_program(test::check_text(model(1)), {}, false).packed.empty());
  // `mithril check` reports them: 36*32*32 floats of Winograd transform, 10 columns of 512 as 16.
  CHECK_THAT(memory_summary(test::check_text(model(1)), {}),
             Contains("packed copies of 2 weights: about 180,224 bytes more"));
  CHECK_THAT(memory_summary(test::check_text(model(1)), {}, false), !Contains("packed copies"));
}

TEST_CASE("Reshape and Flatten are views where they are their input's last reader", "[plan]") {
  const char* text = R"(
name: views
inputs: {x: {shape: [2, 3, 4]}}
outputs: [y, z, w]
layers:
  - {op: Flatten, name: fx, input: x, output: f}
  - {op: Relu, name: act, input: f, output: h}
  - {op: Reshape, name: rh, args: {shape: [2, 3, 4]}, input: h, output: r}
  - {op: Exp, name: ex, input: r, output: y}
  - {op: Reshape, name: again, args: {shape: [6, 4]}, input: y, output: z}
  - {op: Tanh, name: th, input: r, output: w}
)";
  ProgramPlan p = plan_program(test::check_text(text), {});
  check_no_live_overlap(p);
  auto id = [&](const std::string& name) {
    for (auto& v : p.graph.values)
      if (v.name == name) return v.id;
    FAIL("no value " << name);
    return -1;
  };
  // fx reads the model input (not the arena's): a copy. rh is h's last reader: a view; r is read
  // twice afterwards, from the same buffer. again reads y, a model output that stays: a copy.
  CHECK(p.offset[id("r")] == p.offset[id("h")]);
  CHECK(p.offset[id("z")] != p.offset[id("y")]);
  const std::string code = test::generated_source(p, "views");
  CHECK_THAT(code, Contains("std::copy(x, x + 24, "));
  CHECK_THAT(code, Contains("// a view: "));
  CHECK_THAT(code, Contains("std::copy(y, y + 24, z);"));
}
