// Passes: functions from graph to graph, each usable alone, run in a named
// pipeline so that any can be dumped after (`--dump-ir NAME`) or, for the
// optional ones, switched off (`--no-pass NAME`).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
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
  std::string dump_after;               // --dump-ir
  std::function<void(const std::string& pass, const Graph&)> on_dump;
};

// The pipeline up to a checked graph: bind-shapes, order, infer-shapes, the optimizing passes
// simplify, fold, cse and dce (optional; passes/optimize.h), then autodiff (which leaves the
// graph alone unless gradients were asked for). Training programs add
// `loss` before autodiff and `optimizer` after it (passes/training.h).
std::vector<Pass> frontend_passes(const PipelineOptions& opts);
Graph run_passes(Graph g, const std::vector<Pass>& passes, const PipelineOptions& opts);
// The passes --no-pass can switch off, in pipeline order.
std::vector<std::string> optional_passes();
// `--no-pass` values checked against the pipeline's optional passes, `all` standing for every one
// of them; an unknown name is a CompileError listing the passes.
std::vector<std::string> resolve_disabled_passes(const std::vector<std::string>& names, PipelineOptions opts);

}  // namespace mithril
