// The IR's text form (ir/text.h): print, parse, print gives the same text; names escaped; parse
// errors at FILE:LINE:COL.
#include <algorithm>
#include <cstdlib>

#include "frontend/document.h"
#include "helpers.h"

using namespace mithril;
using namespace mithril::test;
using Catch::Matchers::Contains;

namespace {
// Every unit test runs the IR verifier after every pass (run_passes reads MITHRIL_VERIFY_EACH),
// as the CLI and e2e tests do (tests/CMakeLists.txt sets it for them).
const bool verify_each_in_tests = [] { return setenv("MITHRIL_VERIFY_EACH", "1", 0) == 0; }();

template <typename F>
std::string check_error_of(F f) {
  try {
    f();
  } catch (const CompileError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string parse_error(const std::string& text) {
  try {
    parse_ir(text, "t.mir");
  } catch (const CompileError& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("the IR prints, parses and prints the same", "[ir][text]") {
  CHECK(verify_each_in_tests);
  Graph g = check_text(
      "name: t\ninputs: {input: {shape: [N, 1, H, 9]}}\nlayers:\n  - Conv2d: {out_channels: 2, kernel_size: 3, stride: 2}\n"
      "  - BatchNorm2d\n  - Relu\n  - Flatten\n");
  std::string text = print_ir(g);
  CHECK_THAT(text, Contains("(H-3)//2+1"));
  Graph back = parse_ir(text, "t.mir");
  verify_graph(back);
  CHECK(print_ir(back) == text);
  CHECK(back.values.size() == g.values.size());
  CHECK(back.nodes.size() == g.nodes.size());
  for (size_t i = 0; i < g.values.size(); ++i) {
    CHECK(back.values[i].shape == g.values[i].shape);
    CHECK(back.values[i].name == g.values[i].name);
    CHECK(back.values[i].producer == g.values[i].producer);
    CHECK(back.values[i].init == g.values[i].init);
  }
}

TEST_CASE("names with quotes, backslashes, '#' and non-ASCII are escaped and read back", "[ir][text]") {
  Graph g = check_text("name: t\ninputs: {input: {shape: [N, 4]}}\nlayers:\n  - Linear: {dimension: 2}\n  - Relu\n");
  g.name = "we\"ird \\ näme";
  g.value(g.inputs[0]).name = "in \"put\" # x";
  g.nodes[0].name = " lead";
  g.nodes[1].name = "a \"b\" \\ c # d";
  g.output_names[0] = "out\nput";
  std::string text = print_ir(g);
  CHECK_THAT(text, Contains("graph \"we\\\"ird \\\\ näme\" {"));
  CHECK_THAT(text, Contains("= input \"in \\\"put\\\" # x\""));
  CHECK_THAT(text, Contains("# \" lead\""));
  CHECK_THAT(text, Contains("# a \"b\" \\ c # d\n"));  // bare to the end of the line: nothing to escape
  CHECK_THAT(text, Contains("return \"out\\nput\"=%"));
  Graph back = parse_ir(text, "t.mir");
  CHECK(back.name == g.name);
  CHECK(back.value(back.inputs[0]).name == "in \"put\" # x");
  CHECK(back.nodes[0].name == " lead");
  CHECK(back.nodes[1].name == "a \"b\" \\ c # d");
  CHECK(back.output_names[0] == "out\nput");
  CHECK(print_ir(back) == text);
}

TEST_CASE("the backward pass and gradients read back", "[ir][text]") {
  CheckOptions opts;
  opts.pipeline.grad.enabled = true;
  Graph g = check_program(
      program_from_model(parse_model(
          parse_document("name: t\ninputs: {input: {shape: [N, 4]}}\nlayers:\n  - Linear: {dimension: 2}\n  - Tanh\n", "t.yaml", false),
          "test")),
      opts);
  std::string text = print_ir(g);
  CHECK_THAT(text, Contains("// backward pass"));
  CHECK_THAT(text, Contains("output_grads %"));
  Graph back = parse_ir(text, "t.mir");
  CHECK(back.forward_nodes == g.forward_nodes);
  CHECK(back.grads == g.grads);
  CHECK(back.grad_of == g.grad_of);
  CHECK(back.output_grads == g.output_grads);
  CHECK(print_ir(back) == text);
}

TEST_CASE("IR parse errors point at FILE:LINE:COL", "[ir][text]") {
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x\" : [N, 4]\n  %1 = Relux(%0:input) : [N, 4]  # r\n  return y=%1\n}\n"),
             Contains("t.mir:3:8: error: unknown op 'Relux' (did you mean 'Relu'?)"));
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x\" : [N, 4]\n  %1 = Relu(%0:inptu) : [N, 4]  # r\n  return y=%1\n}\n"),
             Contains("t.mir:3:16: error: op Relu has no input port 'inptu'"));
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x\" : [N, 4]\n  %1 = Relu(%2:input) : [N, 4]  # r\n  return y=%1\n}\n"),
             Contains("t.mir:3:13: error: value %2 is used but never defined"));
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x : [N, 4]\n}\n"), Contains("t.mir:2:14: error: unterminated string"));
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x\" : [N, 4]\n  %1 = Relu(%0:input) {\"a\":} : [N, 4]  # r\n"),
             Contains("t.mir:3:"));
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x\" : [N, 4]\n  return y=%0\n"), Contains("expected '}' closing the graph"));
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x\" : float33[N]\n  return y=%0\n}\n"),
             Contains("t.mir:2:20: error: unknown dtype 'float33'"));
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x\" : [" + std::string(100000, '(') + "N]\n}\n"),
             Contains("t.mir:2:85: error: a dim nested more than 64 parentheses deep"));
  CHECK_THAT(parse_error("graph t {\n  %0 = input \"x\" : [N]\n  %1 = Dropout(%0:input) : [N]  # s\n  return y=%1\n}\n"),
             Contains("t.mir:3:3: error: op Dropout has 2 output ports: name the port of %1 (%1:output)"));
  CHECK_THAT(parse_error("graph t {\n  %1 = input \"x\" : [N]\n  return y=%1\n}\n"),
             Contains("error: value numbers must be dense: %0 is missing"));
}

TEST_CASE("verify-each (--verify-each) names the pass that broke an invariant", "[ir][text][passes]") {
  Graph g = check_text("name: t\ninputs: {input: {shape: [N, 4]}}\nlayers:\n  - Relu\n  - Tanh\n");
  std::vector<Pass> passes = {
      {"harmless", "", true, [](Graph x) { return x; }},
      {"swap", "", true, [](Graph x) {
         std::swap(x.nodes[0], x.nodes[1]);  // readers before writers, ids out of place
         return x;
       }},
  };
  PipelineOptions opts;
  opts.verify_each = true;
  try {
    run_passes(g, passes, opts);
    FAIL("no error");
  } catch (const std::logic_error& e) {
    CHECK_THAT(e.what(), Contains("pass 'swap' broke the IR: IR verifier: node ids are dense"));
  }
  // Switched off, the broken pass runs through.
  opts.disabled = {"swap"};
  CHECK_NOTHROW(run_passes(g, passes, opts));
}

TEST_CASE("mithril opt's passes are the pipeline's, by name", "[ir][text][passes]") {
  auto names = opt_pass_names();
  for (const char* n : {"order", "infer-shapes", "simplify", "fold", "cse", "dce", "autodiff", "fold-batchnorm",
                        "fuse-elementwise", "fuse-epilogue", "fuse-pool", "layout", "pack-weights"})
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
  CHECK_THAT(check_error_of([] { find_opt_pass("csee", {}); }), Contains("no pass named 'csee' (did you mean 'cse'?)"));
}
