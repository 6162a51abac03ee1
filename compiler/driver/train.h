// `mithril train`, `mithril evaluate` and `mithril compile --train`: the training
// settings (the model file's `train:` section, overridden by command-line flags)
// and the generated training program.
//
//   train:
//     data: data/digits.csv.gz     # relative to the model file
//     label: -1                     # CSV label column (name or index)
//     loss: CrossEntropy            # or {op: CrossEntropy, label_smoothing: 0.1}, or a list per output
//     optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.01}
//     schedule: {kind: cosine, warmup: 100}
//     regularize: [{l2: 0.0001, params: ["*.weight"]}]
//     epochs: 20
//     batch_size: 64
//
// See docs/training.md for every key.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "driver/build.h"
#include "passes/training.h"

namespace mithril {

struct TrainSettings {
  TrainSpec spec;                              // what is compiled in: losses, regularizers, optimizer kind, clipping
  std::map<std::string, json> values;          // run-time settings by key (data, lr, epochs, ...), for the program's defaults
  std::map<std::string, SourceLoc> where;      // where each value came from
  std::vector<std::string> shapes;             // `shape:` bindings ("T=64")
  std::vector<std::string> freeze;             // parameters not trained
};

// The keys a `train:` section (and the matching flags) may set.
const std::vector<std::string>& train_keys();

// Reads the `train:` section of the model file's main model (if any); `flags` (key -> text, from
// the command line) override it. Paths (data, labels) are made absolute relative to the model file
// (from the file) or to the working directory (from flags).
TrainSettings load_train_settings(const std::string& model_path, const std::map<std::string, std::string>& flags);

struct TrainProject {
  std::string name;         // project and binary name
  std::string fingerprint;  // identifies the model (architecture and shapes) in checkpoints
};

// Generates the training program (two model classes and the loop) into `dir`.
TrainProject compile_training(const std::string& model_path, const std::string& dir, const CompileOptions& opts,
                              const TrainSettings& settings);
// Builds it (cached like `mithril run`) and returns the binary's path.
std::string build_training_cached(const std::string& model_path, const CompileOptions& opts, const TrainSettings& settings);

}  // namespace mithril
