// Code generation targets: what `--target NAME` selects. A target declares its language settings
// (the kind of source the model's code is, where its memory lives), the late passes only it runs,
// the ops it has code for (OpDef::TargetRecord under its name: emitter, working memory, packed
// parameters) and the program kinds it can make. The program's skeleton (the class and its
// interface, dims and bounds, the weights table, ports, bind, the run / backward / train_step order,
// the main programs) is printed once for every target (codegen/program.cpp); a target prints only
// the bodies of its layers. Adding a target: docs/architecture.md, "Adding a target".
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "codegen/project.h"
#include "codegen/plan.h"

namespace mithril {

struct Target {
  std::string name;     // "cpu", "cuda": the key of its OpDef::TargetRecord
  std::string summary;  // one line for `mithril targets`
  std::string language;  // "C++20", "CUDA C++20 (nvcc)"
  // Language settings the skeleton printer reads.
  std::string source_ext;  // the model's source: ".cpp", ".cu"
  bool device_memory = false;  // arena and weights in device memory: inputs, outputs and weights
                               // cross between host and device at the program's edges only
  // Pipeline passes after the common ones that only this target runs (passes/passes.h), in order.
  std::vector<std::string> late_passes;
  bool gradients = false;  // programs with a backward pass (--grad)
  bool training = false;   // training programs (compile --train, mithril train)
  bool runs_here = false;  // `mithril run` / `train` build it against the prebuilt runtime (else: a CMake build of the project)
  std::string build_needs;  // what building a generated project needs beyond CMake and a C++ compiler
  std::function<std::vector<GeneratedFile>(const ProgramPlan&, const CpuOptions&)> project;
  std::function<std::vector<GeneratedFile>(const ProgramPlan&, const ProgramPlan&, const CpuOptions&, const std::string&)>
      training_project;
};

// Every target, the CPU first.
const std::vector<Target>& targets();
// The target named `name`; an unknown name is a CompileError at `where` listing the targets.
const Target& find_target(const std::string& name, const std::string& where = "--target");
// The ops `target` has code for, sorted by family then name.
std::vector<const OpDef*> target_ops(const Target& target);

}  // namespace mithril
