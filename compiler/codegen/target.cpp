#include "codegen/target.h"

#include <algorithm>

#include "support/diag.h"

namespace mithril {

const std::vector<Target>& targets() {
  static const std::vector<Target> all = [] {
    Target cpu;
    cpu.name = "cpu";
    cpu.summary = "C++ for the CPU: Mithril's kernels (packed GEMM, convolutions) and OpenBLAS or BLIS, OpenMP threads";
    cpu.language = "C++20";
    cpu.source_ext = ".cpp";
    cpu.late_passes = {"fold-batchnorm", "fuse-elementwise", "fuse-epilogue", "fuse-pool", "layout", "pack-weights"};
    cpu.gradients = cpu.training = cpu.runs_here = true;
    cpu.build_needs = "OpenBLAS or BLIS, zlib";
    cpu.project = emit_cpu_project;
    cpu.training_project = emit_cpu_training_project;

    Target cuda;
    cuda.name = "cuda";
    cuda.summary = "CUDA C++ for NVIDIA GPUs: one device arena, cuBLAS products, generated elementwise kernels, one stream";
    cuda.language = "CUDA C++20 (nvcc)";
    cuda.source_ext = ".cu";
    cuda.device_memory = true;
    cuda.gradients = cuda.training = true;
    cuda.late_passes = {"fold-batchnorm", "fuse-elementwise", "fuse-epilogue"};
    cuda.build_needs = "the CUDA Toolkit (nvcc, cuBLAS), and for the runtime's host part OpenBLAS or BLIS and zlib";
    cuda.project = emit_cuda_project;
    cuda.training_project = emit_cuda_training_project;
    return std::vector<Target>{cpu, cuda};
  }();
  return all;
}

const Target& find_target(const std::string& name, const std::string& where) {
  for (const Target& t : targets())
    if (t.name == name) return t;
  std::vector<std::string> names;
  for (const Target& t : targets()) names.push_back(t.name);
  fail(SourceLoc{where + " " + name, 0, 0}, "unknown target '{}'; available: {} (`mithril targets` describes them)", name,
       fmt::join(names, ", "));
}

std::vector<const OpDef*> target_ops(const Target& target) {
  std::vector<const OpDef*> out;
  for (const OpDef* op : all_ops())
    if (op->target(target.name)) out.push_back(op);
  return out;
}

}  // namespace mithril
