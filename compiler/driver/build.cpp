#include "driver/build.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "codegen/cpu_target.h"

namespace mithril {

namespace fs = std::filesystem;

uint64_t stable_hash(const std::string& text, uint64_t h) {
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

const std::vector<std::string>& blas_choices() {
  static const std::vector<std::string> choices = {"openblas", "blis"};
  return choices;
}

void check_blas_choice(const std::string& blas) {
  const auto& c = blas_choices();
  if (std::find(c.begin(), c.end(), blas) == c.end())
    fail(SourceLoc{"--blas " + blas, 0, 0}, "unknown BLAS library '{}'; available: {}", blas, fmt::join(c, ", "));
}

static std::vector<GeneratedFile> generate(const std::string& model_path, const CompileOptions& opts, std::string& name) {
  if (opts.target != "cpu") fail(SourceLoc{"--target " + opts.target, 0, 0}, "unknown target '{}'; available: cpu", opts.target);
  check_blas_choice(opts.blas);
  CheckOptions check = opts.check;
  check.pipeline.codegen = true;
  check.pipeline.training = opts.training;
  Graph g = check_model(model_path, check);
  if (opts.require_all_inputs)
    for (int id : g.inputs)
      if (!opts.check.pipeline.shapes.inputs.count(g.value(id).name))
        fail(SourceLoc{model_path, 0, 0}, "missing input '{}': pass --input {}=FILE.npy", g.value(id).name, g.value(id).name);
  name = c_identifier(opts.name.empty() ? g.name : opts.name);
  ProgramPlan plan = plan_program(std::move(g), opts.max, packs_weights(opts.check.pipeline));
  plan.training = opts.training;
  CpuOptions co{name, fs::path(model_path).filename().string(), opts.weights, opts.embed_weights};
  co.blas = opts.blas;
  return emit_cpu_project(plan, co);
}

std::string compile_model(const std::string& model_path, const std::string& dir, const CompileOptions& opts) {
  std::string name;
  auto files = generate(model_path, opts, name);
  write_project(dir, files);
  return name;
}

static std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

static fs::path cache_root() {
  if (const char* d = std::getenv("MITHRIL_CACHE_DIR")) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME")) return fs::path(x) / "mithril";
  if (const char* h = std::getenv("HOME")) return fs::path(h) / ".cache" / "mithril";
  return fs::temp_directory_path() / "mithril-cache";
}

std::string build_cached(const std::string& model_path, const CompileOptions& opts) {
  std::string name;
  auto files = generate(model_path, opts, name);
  return build_project_cached(model_path, name, files, opts.blas);
}

// The build log with every run of whitespace made one space (CMake wraps its messages).
static std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space) out += c;
    else if (!out.empty() && out.back() != ' ') out += ' ';
  }
  return out;
}

std::string build_project_cached(const std::string& model_path, const std::string& name, const std::vector<GeneratedFile>& files,
                                 const std::string& blas) {
  check_blas_choice(blas);
  // The BLAS library is in the key twice over: by name here, and in CMakeLists.txt's MITHRIL_BLAS.
  uint64_t h = stable_hash("blas=" + blas + ";", stable_hash(name));
  for (auto& f : files) h = stable_hash(f.text, stable_hash(f.path, h));
  fs::path dir = cache_root() / fmt::format("{}-{:016x}", name, h);
  fs::path binary = dir / "build" / name;
  if (fs::exists(binary)) return binary.string();

  std::cerr << "mithril: building " << name << " (first run of this model; cached in " << dir.string() << ")\n";
  write_project(dir.string(), files);
  fs::path log = dir / "build.log";
  std::string cmd = fmt::format("cmake -S {0} -B {0}/build -DCMAKE_BUILD_TYPE=Release > {1} 2>&1 && cmake --build {0}/build -j {2} >> {1} 2>&1",
                                quote(dir.string()), quote(log.string()), std::max(1u, std::thread::hardware_concurrency()));
  if (std::system(cmd.c_str()) != 0 || !fs::exists(binary)) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    // runtime/CMakeLists.txt's message when MITHRIL_BLAS=blis finds no BLIS: one clear error instead of the log.
    if (blas == "blis" && one_line(text).find("install libblis-dev") != std::string::npos)
      fail(SourceLoc{"--blas blis", 0, 0},
           "BLIS is not installed: install the package libblis-dev (apt-get install libblis-dev), or use --blas openblas "
           "(build log: {})",
           log.string());
    if (text.size() > 3000) text = "..." + text.substr(text.size() - 3000);
    fail(SourceLoc{model_path, 0, 0}, "building the generated code failed (full log: {}):\n{}", log.string(), text);
  }
  return binary.string();
}

}  // namespace mithril
