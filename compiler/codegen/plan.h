// The target-independent part of code generation, done once for every target:
// C++-safe names for values, the run-time dimensions and their bounds, and a
// static memory plan (one arena for every intermediate and output, one block
// for the weights). An emitter only prints what the plan says.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/emit.h"
#include "ops/registry.h"
#include "passes/passes.h"
#include "support/cpp_text.h"

namespace mithril {

// The plan: what emitters read (EmitPlan, ops/emit.h: the graph, C++ names, offsets, scratch,
// packed parameters) and the sizes and bounds around it.
struct ProgramPlan : EmitPlan {
  std::string source_dir;               // the model file's folder: comments name source files relative to it
  std::vector<int64_t> bytes;          // per value: size in bytes at the dims' upper bounds
  int64_t arena_bytes = 0;             // planned peak of intermediates and outputs
  int64_t weight_bytes = 0;
  std::vector<std::string> symbols;    // dims left to run time, sorted
  std::map<std::string, int64_t> max;  // each run-time dim's upper bound
  std::map<std::string, std::string> dim_field;  // each run-time dim's member of the generated Dims (`N`; `EOF_v`)
  std::vector<int> weights;            // parameters then state, in first-use order
  std::vector<Dim> scratch_elems;      // per node: its size in elements (of the first output's dtype)
};

// Plans `g` (checked, ordered) for `target` (codegen/target.h: its ops' working memory and packed
// parameters). Every symbolic dim still in the graph needs a bound in `max`; a missing one is a
// CompileError naming it (`--max N=256`). `pack_weights` false keeps every product on the BLAS
// (`--no-pass pack-weights`).
ProgramPlan plan_program(Graph g, const std::map<std::string, int64_t>& max, bool pack_weights = true,
                         const std::string& target = "cpu");

// False when `--no-pass pack-weights` (or all) switched weight packing off.
bool packs_weights(const PipelineOptions& opts);


}  // namespace mithril
