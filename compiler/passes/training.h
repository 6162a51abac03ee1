// The training passes: what turns a model into a training program.
//
// `loss` (before autodiff) adds, for each loss of the training spec, an input
// for its target, the loss layer (an op of the loss family), its weight, and
// the regularization terms on the parameters chosen by name pattern, summed
// into one scalar output `loss`, placed first; the model's own outputs stay
// (metrics read them). Class losses (CrossEntropy, NLL) read the last axis of
// the output as the classes: [N, C] against class indices [N]; [N, T, V]
// (a language model) against [N, T], flattened to rows.
//
// `optimizer` (after autodiff) appends one OptimizerStep per trained
// parameter, with its state (SGD: `<param>.momentum_buffer`; Adam, AdamW:
// `<param>.exp_avg`, `<param>.exp_avg_sq`, PyTorch's names) as state values in
// the weight block, and a GradNorm first when gradients are clipped.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace mithril {

struct LossSpec {
  std::string output;            // a model output; empty: the first one
  std::string op = "CrossEntropy";
  double weight = 1.0;
  json args = json::object();    // the loss op's arguments (reduction, label_smoothing, ...)
  SourceLoc loc;
};

struct RegularizerSpec {
  std::string kind;              // "l1" or "l2": coefficient * sum |p| or coefficient * sum p^2
  double coefficient = 0.0;
  std::vector<std::string> params;  // name patterns as --freeze takes them; empty: every weight (`*.weight`)
  SourceLoc loc;
};

struct TrainSpec {
  std::vector<LossSpec> losses;  // empty: CrossEntropy on the first output
  std::vector<RegularizerSpec> regularizers;
  std::string optimizer = "adam";  // sgd, adam, adamw
  bool clip = false;               // compute the global gradient norm (clip_norm > 0)
};

// The name of the target input of loss `k` of `spec` for graph output `output`.
std::string target_name(const TrainSpec& spec, size_t k, const std::string& output);

Graph add_loss(Graph g, const TrainSpec& spec);
Graph add_optimizer(Graph g, const TrainSpec& spec);

}  // namespace mithril
