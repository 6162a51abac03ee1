// Passes: functions from graph to graph, each usable alone, run in a named
// pipeline so that any can be dumped after (`--dump-ir NAME`) or, for the
// optional ones, switched off (`--no-pass NAME`).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/text.h"
#include "passes/autodiff.h"
#include "passes/optimize.h"
#include "passes/training.h"

namespace mithril {

// --shape bindings: an input name to its full shape, or a symbol to its value.
struct ShapeBindings {
  std::map<std::string, std::vector<int64_t>> inputs;
  std::map<std::string, int64_t> symbols;
  std::map<std::string, SourceLoc> where;  // for error messages ("--shape input=...")
};
// Parse "input=64,784" or "N=64"; throws CompileError with a usage hint.
void parse_shape_binding(const std::string& text, ShapeBindings& out);

// Bind symbolic dims of the inputs; errors when a binding contradicts a declared size or another binding.
Graph bind_shapes(Graph g, const ShapeBindings& b);
// Topological order of the nodes. A cycle is an error that prints it; values
// nobody reads (dead layers) become warnings.
Graph order_nodes(Graph g);
// Shape and dtype of every value, and the parameters the ops imply. Expects ordered nodes.
Graph infer_shapes(Graph g);
// Checks the IR's invariants (ids, producers, order, typed values); throws std::logic_error.
void verify_graph(const Graph& g);

struct Pass {
  std::string name;
  std::string summary;
  bool optional;  // may be switched off with --no-pass
  std::function<Graph(Graph)> run;
};

struct PipelineOptions {
  ShapeBindings shapes;
  std::vector<std::string> disabled;    // --no-pass
  GradOptions grad;                     // --grad, --grad-inputs, --freeze: the autodiff pass
  const TrainSpec* train = nullptr;     // a training program: the loss pass (and, with grad, the optimizer pass)
  bool codegen = false;                 // the graph goes on to code generation: adds fuse-elementwise
  bool training = false;                // --mode train: BatchNorm normalizes with batch statistics (not folded)
  // The late passes the code generation target runs (codegen/target.h; these are the CPU's).
  std::vector<std::string> late_passes = {"fold-batchnorm", "fuse-elementwise", "fuse-epilogue", "fuse-pool", "layout",
                                          "pack-weights"};
  bool verify_each = false;             // --verify-each (or MITHRIL_VERIFY_EACH=1): verify_graph after every pass
  std::string dump_after;               // --dump-ir
  std::function<void(const std::string& pass, const Graph&)> on_dump;
};

// The pipeline up to a checked graph: bind-shapes, order, infer-shapes, the optimizing passes
// simplify, fold, cse and dce (optional; passes/optimize.h), then autodiff (which leaves the
// graph alone unless gradients were asked for). Training programs add
// `loss` before autodiff and `optimizer` after it (passes/training.h).
std::vector<Pass> frontend_passes(const PipelineOptions& opts);
// Runs the passes that are not switched off, in order. With opts.verify_each, or the environment
// variable MITHRIL_VERIFY_EACH set (not "0"; the test suite sets it), verify_graph runs after every
// pass from `order` on (earlier the nodes are not yet sorted); a broken invariant is a
// std::logic_error naming the pass and the invariant.
Graph run_passes(Graph g, const std::vector<Pass>& passes, const PipelineOptions& opts);
// verify_graph, its failure reported as "pass 'NAME' broke the IR: ..." (a std::logic_error).
void verify_after(const Graph& g, const std::string& pass);
bool verify_each_from_env();
// The passes --no-pass can switch off, in pipeline order.
std::vector<std::string> optional_passes();
// `--no-pass` values checked against the pipeline's optional passes, `all` standing for every one
// of them; an unknown name is a CompileError listing the passes.
std::vector<std::string> resolve_disabled_passes(const std::vector<std::string>& names, PipelineOptions opts);

// The passes `mithril opt --pass NAME` runs, by name: every pass of the pipeline that works on a graph
// alone (bind-shapes needs --shape and loss/optimizer a training spec: not listed), with `opts`
// (autodiff uses opts.grad, fold-batchnorm opts.training). Unknown names are a CompileError listing them.
std::vector<std::string> opt_pass_names();
Pass find_opt_pass(const std::string& name, const PipelineOptions& opts);

// The IR as text (ir/text.h) with the compiler's op registry.
const OpTable& op_table();
std::string print_ir(const Graph& g);
std::string dump_ir(const Graph& g);  // the same as print_ir
Graph parse_ir(const std::string& text, const std::string& file);

}  // namespace mithril
