#include "driver/build.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "codegen/cpu_target.h"
#include "driver/process.h"

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
  name = project_name(opts.name.empty() ? g.name : opts.name);
  ProgramPlan plan = plan_program(std::move(g), opts.max, packs_weights(opts.check.pipeline));
  plan.training = opts.training;
  plan.source_dir = fs::absolute(model_path).parent_path().string();  // comments name files relative to it
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

static fs::path cache_root() {
  auto env = [](const char* name) -> const char* {
    const char* v = std::getenv(name);
    return v && *v ? v : nullptr;  // set to "" counts as not set
  };
  if (const char* d = env("MITHRIL_CACHE_DIR")) return d;
  if (const char* x = env("XDG_CACHE_HOME")) return fs::path(x) / "mithril";
  if (const char* h = env("HOME")) return fs::path(h) / ".cache" / "mithril";
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

// The build cache holds one folder per generated project, ROOT/NAME-HASH: its sources, build/
// (CMake's build folder, with the binary), build.log, and the marker `complete`, written last. A
// folder without the marker is never used: a build that failed or was killed left it, and the next
// build removes it. A build holds the lock ROOT/NAME-HASH.lock from start to end, so two processes
// never build one project at once; the folder keeps its name while it is built because CMake's
// build folder records its absolute path.
namespace {

class CacheLock {
 public:
  CacheLock(const fs::path& path, const std::string& name) {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) fail(SourceLoc{path.string(), 0, 0}, "cannot open the build cache's lock file: {}", std::strerror(errno));
    int rc = flock(fd_, LOCK_EX | LOCK_NB);
    if (rc != 0 && errno == EWOULDBLOCK) {
      std::cerr << "mithril: waiting for another build of " << name << " to finish (lock " << path.string() << ")\n";
      while ((rc = flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {
      }
    }
    if (rc != 0) {
      const int err = errno;
      close(fd_);
      fail(SourceLoc{path.string(), 0, 0}, "cannot lock the build cache's lock file: {}", std::strerror(err));
    }
  }
  ~CacheLock() { close(fd_); }
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

 private:
  int fd_;
};

}  // namespace

std::string build_project_cached(const std::string& model_path, const std::string& name, const std::vector<GeneratedFile>& files,
                                 const std::string& blas) {
  check_blas_choice(blas);
  // The BLAS library is in the key twice over: by name here, and in CMakeLists.txt's MITHRIL_BLAS.
  uint64_t h = stable_hash("blas=" + blas + ";", stable_hash(name));
  for (auto& f : files) h = stable_hash(f.text, stable_hash(f.path, h));
  const fs::path root = cache_root();
  const std::string entry = fmt::format("{}-{:016x}", name, h);
  const fs::path dir = root / entry, binary = dir / "build" / name, marker = dir / "complete";
  std::error_code ec;
  auto complete = [&] { return fs::exists(marker, ec) && fs::exists(binary, ec); };
  if (complete()) return binary.string();

  fs::create_directories(root, ec);
  if (ec)
    fail(SourceLoc{root.string(), 0, 0}, "cannot create the build cache folder: {} (MITHRIL_CACHE_DIR sets another)",
         ec.message());
  CacheLock lock(root / (entry + ".lock"), name);
  if (complete()) return binary.string();  // built by the process we waited for
  if (fs::exists(dir, ec)) {
    fs::remove_all(dir, ec);
    if (ec) fail(SourceLoc{dir.string(), 0, 0}, "cannot remove this unfinished build: {}", ec.message());
  }
  std::cerr << "mithril: building " << name << " (first run of this model; cached in " << dir.string() << ")\n";
  write_project(dir.string(), files);
  fs::path log = dir / "build.log";
  // In a process group of its own, which ends whole (compilers included) when mithril is stopped or dies.
  auto step = [&](const std::vector<std::string>& argv, bool append) {
    const int status = run_child(argv, ChildOptions{log.string(), append, true});
    if (int sig = last_child_interrupt()) throw Interrupted(sig);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  };
  const std::string build_dir = (dir / "build").string(), jobs = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  const bool built = step({"cmake", "-S", dir.string(), "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"}, false) &&
                     step({"cmake", "--build", build_dir, "-j", jobs}, true);
  if (!built || !fs::exists(binary, ec)) {
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
  const int fd = open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) fail(SourceLoc{marker.string(), 0, 0}, "cannot mark the build complete: {}", std::strerror(errno));
  close(fd);
  return binary.string();
}

}  // namespace mithril
