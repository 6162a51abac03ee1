// Generated projects: a standalone CMake project of readable source for a planned graph, per target
// (codegen/target.h), printed by codegen/program.cpp.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "codegen/plan.h"

namespace mithril {

struct GeneratedFile {
  std::string path;  // relative to the project folder
  std::string text;
};

struct CpuOptions {
  std::string name;    // project, binary and file stem (a C identifier)
  std::string source;  // the model file, for comments
  std::string weights;  // a safetensors file checked against the model at compile time
  bool embed_weights = false;  // and embedded into the generated source (<name>_weights.cpp)
  std::string blas = "openblas";  // the BLAS library the project links: openblas or blis (CMake's MITHRIL_BLAS)
};

// Every file of the project, runtime included. Deterministic: the same plan gives the same bytes.
std::vector<GeneratedFile> emit_cpu_project(const ProgramPlan& plan, const CpuOptions& opts);

// The CUDA target's project (--target cuda): the same class and main program, the model's source a
// .cu file for nvcc, its memory on the GPU (codegen/target.h). Forward programs only, for now.
std::vector<GeneratedFile> emit_cuda_project(const ProgramPlan& plan, const CpuOptions& opts);
std::vector<GeneratedFile> emit_cuda_training_project(const ProgramPlan& train, const ProgramPlan& eval, const CpuOptions& opts,
                                                      const std::string& defaults);

// A training program (`mithril compile --train`): `train` (the step: loss, backward pass and
// optimizer updates, --mode train) as class <Name>Train in <name>_train.{h,cpp}, `eval` (forward and
// loss, --mode eval, for validation and `--evaluate`) as class <Name> in <name>.{h,cpp}, and a main
// (codegen_templates/cpu/train_main.cpp.in) running the runtime's training loop (rt/trainer.h) with
// `defaults` (C++ statements setting `cfg`, a mithril::rt::TrainConfig) as its default options.
std::vector<GeneratedFile> emit_cpu_training_project(const ProgramPlan& train, const ProgramPlan& eval, const CpuOptions& opts,
                                                     const std::string& defaults);

// The runtime's files as a generated project bundles them (paths "runtime/..."), and a hash of
// them (FNV-1a, hex): the runtime's identity in build cache keys and in generated CMakeLists.txt,
// which uses an installed runtime only when its sources have this hash.
std::vector<GeneratedFile> cpu_runtime_files();
std::string cpu_runtime_hash();

// The name of a generated project, its files and its binary: the model's name as an identifier
// that is no file of the project (main, runtime) and no target name CMake reserves (test, all).
std::string project_name(const std::string& name);

// Writes the project into `dir` (its parents are created if needed) whole or not at all: the files
// go into a new folder beside it, which then takes its place; a project generated there before is
// replaced (its build/ folder kept), any other folder that is not empty gets the files added.
// Defined in compiler/driver/project_io.cpp.
void write_project(const std::string& dir, const std::vector<GeneratedFile>& files);

// Fills {{KEY}} holes of a template from codegen_templates/ (by its path there, e.g. "cpu/main.cpp.in").
std::string fill_template(const std::string& template_path, const std::map<std::string, std::string>& values);

}  // namespace mithril
