// `mithril check`: load, flatten, order and infer a model; summarize it.
#pragma once

#include <string>

#include "frontend/flatten.h"
#include "passes/passes.h"

namespace mithril {

struct CheckOptions {
  PipelineOptions pipeline;
  FlattenOptions flatten;
};

// The whole front end, from a model file to a checked graph. Throws CompileError.
Graph check_model(const std::string& path, const CheckOptions& opts = {});
Graph check_program(const Program& prog, const CheckOptions& opts = {});

struct ParamCounts {
  int64_t trainable = 0;
  int64_t state = 0;
};
ParamCounts count_params(const Graph& g);

std::string summary_table(const Graph& g);  // the human-readable report
json summary_json(const Graph& g);          // the same, for tools
std::string with_commas(int64_t n);         // 669706 -> "669,706"

// The training step's graph as `mithril train` compiles it (loss, backward pass, optimizer, fusion),
// with the model file's `train:` section: for `mithril check --train`.
Graph training_graph(const std::string& path, CheckOptions opts);

// `mithril opt FILE.mir --pass NAME[,NAME...]`: parses the IR (ir/text.h), verifies it, runs the
// named passes in order (the pipeline's Pass objects: find_opt_pass), verifying after each, and
// returns the resulting IR as text. With `max` (symbolic dim bounds, else the graph's bindings and
// 64 for the rest) and pack-weights among the passes, the weights the memory plan would keep
// packed are listed as comment lines after the graph.
struct OptOptions {
  std::vector<std::string> passes;
  bool training = false;  // --mode train: fold-batchnorm leaves BatchNorm alone
  std::map<std::string, int64_t> max;
};
std::string opt_ir_file(const std::string& path, const OptOptions& opts);
std::string opt_ir(const std::string& text, const std::string& file, const OptOptions& opts);
// The backward pass (when there is one) and the planned memory: arena and weight bytes, at the
// given upper bounds of the dims left to run time, and the packed copies of weights the
// generated program would keep (`pack_weights`: not switched off with --no-pass pack-weights).
std::string memory_summary(const Graph& g, const std::map<std::string, int64_t>& max, bool pack_weights = true);

}  // namespace mithril
