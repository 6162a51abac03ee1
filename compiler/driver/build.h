// `mithril compile` and `mithril run`: from a model file to a generated
// project, and from there to a built, cached binary that is run.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "codegen/project.h"
#include "driver/check.h"

namespace mithril {

struct CompileOptions {
  CheckOptions check;
  std::map<std::string, int64_t> max;  // --max N=256
  std::string name;                    // --name; default: the model's name
  std::string target = "cpu";
  std::string weights;         // --weights: checked at compile time
  bool embed_weights = false;  // --embed-weights
  bool training = false;       // --mode train
  bool require_all_inputs = false;  // `run`: every model input must have been given (and so bound)
  std::string blas = "openblas";    // --blas: the BLAS library the project links, openblas or blis
  bool emulate_gpu = false;         // --emulate-gpu: build a device target's program for the CPU's emulation of it
};

// The BLAS libraries a generated project can link (--blas); the first is the default.
const std::vector<std::string>& blas_choices();
// Fails (`--blas NAME: error: ...`) unless `blas` is one of blas_choices().
void check_blas_choice(const std::string& blas);

// Checks, plans and writes the project into `dir`. Returns the project name.
std::string compile_model(const std::string& model_path, const std::string& dir, const CompileOptions& opts);

// Builds the project (cached by the hash of its sources) and returns the binary's path.
// Progress goes to stderr. A failed build is a CompileError carrying the build log's tail.
std::string build_cached(const std::string& model_path, const CompileOptions& opts);
// The same for files already generated (a training project): the target's build (CMake and nvcc for
// a device target, or its CPU emulation with opts.emulate_gpu), cached.
std::string build_files_cached(const std::string& model_path, const std::string& name, const std::vector<GeneratedFile>& files,
                               const CompileOptions& opts);

// Builds generated files and returns the path of the binary `name`. Only the model's own sources
// are compiled (the C++ compiler run directly, in parallel), against the runtime for `blas` built
// once (see build_runtime); the binary is cached by the hash of those sources and the runtime's
// key. When `blas` is missing on this machine the error says which package to install. Processes
// that need the same build at once share it: one builds, the others wait for it. A build that
// failed or was stopped is never used, but redone.
std::string build_project_cached(const std::string& model_path, const std::string& name, const std::vector<GeneratedFile>& files,
                                 const std::string& blas);

// The key of the runtime for `blas` on this machine: the runtime's sources, the C++ compiler
// ($CXX or c++) and its version, how the runtime is built, the BLAS library, and what
// -march=native means here. Runtimes are cached and installed under it.
std::string runtime_key(const std::string& blas);

// Makes sure the runtime for `blas` is built and returns its install prefix (include/, lib/,
// lib/cmake/mithril_runtime/, lib/mithril_runtime/runtime.record). Without `prefix`: the runtime
// installed beside this mithril when it has the key, else the build cache's entry
// ROOT/runtime-BLAS-KEY/prefix (built now if needed, with the cache's lock discipline). With
// `prefix`: built and installed there (`mithril runtime build --prefix`, `cmake --install`).
std::string build_runtime(const std::string& blas, const std::string& prefix = "");

// FNV-1a, stable across runs and machines (std::hash is not).
uint64_t stable_hash(const std::string& text, uint64_t h = 1469598103934665603ull);

}  // namespace mithril
