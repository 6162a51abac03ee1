// The target-independent part of code generation, done once for every target:
// C++-safe names for values, the run-time dimensions and their bounds, and a
// static memory plan (one arena for every intermediate and output, one block
// for the weights). An emitter only prints what the plan says.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "codegen/cpp_text.h"
#include "ir/graph.h"
#include "ops/registry.h"
#include "passes/passes.h"

namespace mithril {

struct ProgramPlan {
  Graph graph;
  std::string source_dir;               // the model file's folder: comments name source files relative to it
  bool training = false;               // --mode train: BatchNorm uses batch statistics, Dropout masks
  std::vector<std::string> ident;      // per value: a unique C++ identifier (`fc1_weight`, `block1_conv2`)
  std::vector<int64_t> offset;         // per value: byte offset in the arena (Temp) or weight block (Param/State); -1 for inputs
  std::vector<int64_t> bytes;          // per value: size in bytes at the dims' upper bounds
  int64_t arena_bytes = 0;             // planned peak of intermediates and outputs
  int64_t weight_bytes = 0;
  std::vector<std::string> symbols;    // dims left to run time, sorted
  std::map<std::string, int64_t> max;  // each run-time dim's upper bound
  std::map<std::string, std::string> dim_field;  // each run-time dim's member of the generated Dims (`N`; `EOF_v`)
  std::vector<int> weights;            // parameters then state, in first-use order
  std::vector<int64_t> scratch_offset; // per node: arena offset of its working memory, -1 when none
  std::vector<Dim> scratch_elems;      // per node: its size in elements (of the first output's dtype)
  // Parameters kept packed (OpDef::packed_param, OpDef::pack), programs without gradients only,
  // float32. Their sizes may depend on the target's vector width, so the generated code computes
  // the offsets from PackSpec::floats.
  struct Packed {
    int id;
    PackSpec spec;
  };
  std::vector<Packed> packed;
  bool is_packed(int value) const;
};

// Plans `g` (checked, ordered). Every symbolic dim still in the graph needs a bound in `max`;
// a missing one is a CompileError naming it (`--max N=256`). `pack_weights` false keeps every
// product on the BLAS (`--no-pass pack-weights`).
ProgramPlan plan_program(Graph g, const std::map<std::string, int64_t>& max, bool pack_weights = true);

// False when `--no-pass pack-weights` (or all) switched weight packing off.
bool packs_weights(const PipelineOptions& opts);


}  // namespace mithril
