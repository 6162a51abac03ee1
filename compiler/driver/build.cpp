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
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "codegen/project.h"
#include "codegen/target.h"
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
  const Target& target = find_target(opts.target);
  if (!target.gradients && opts.check.pipeline.grad.enabled)
    fail(SourceLoc{"--grad", 0, 0}, "the {} target does not generate backward passes yet (the cpu target does)", target.name);
  check_blas_choice(opts.blas);
  CheckOptions check = opts.check;
  check.pipeline.codegen = true;
  check.pipeline.training = opts.training;
  check.pipeline.late_passes = target.late_passes;
  Graph g = check_model(model_path, check);
  if (opts.require_all_inputs)
    for (int id : g.inputs)
      if (!opts.check.pipeline.shapes.inputs.count(g.value(id).name))
        fail(SourceLoc{model_path, 0, 0}, "missing input '{}': pass --input {}=FILE.npy", g.value(id).name, g.value(id).name);
  name = project_name(opts.name.empty() ? g.name : opts.name);
  ProgramPlan plan = plan_program(std::move(g), opts.max, packs_weights(check.pipeline), target.name);
  plan.training = opts.training;
  plan.source_dir = fs::absolute(model_path).parent_path().string();  // comments name files relative to it
  CpuOptions co{name, fs::path(model_path).filename().string(), opts.weights, opts.embed_weights};
  co.blas = opts.blas;
  return target.project(plan, co);
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

static std::string build_cuda_cached(const std::string& model_path, const std::string& name, const std::vector<GeneratedFile>& files,
                                     bool emulate, const std::string& blas);

std::string build_cached(const std::string& model_path, const CompileOptions& opts) {
  std::string name;
  auto files = generate(model_path, opts, name);
  return build_files_cached(model_path, name, files, opts);
}

std::string build_files_cached(const std::string& model_path, const std::string& name, const std::vector<GeneratedFile>& files,
                               const CompileOptions& opts) {
  if (find_target(opts.target).device_memory) return build_cuda_cached(model_path, name, files, opts.emulate_gpu, opts.blas);
  if (opts.emulate_gpu) fail(SourceLoc{"--emulate-gpu", 0, 0}, "only GPU targets are emulated (--target cuda); the {} target runs here as it is", opts.target);
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

static std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The build cache holds one folder per build, ROOT/NAME-HASH: a generated model's program or a
// runtime (runtime-BLAS-KEY). Each has its build.log and, written last, the marker `complete`. A
// folder without the marker is never used: a build that failed or was killed left it, and the next
// build removes it. A build holds the lock ROOT/NAME-HASH.lock from start to end, so two processes
// never build one entry at once; the folder keeps its name while it is built because CMake's
// build folder records its absolute path. A model build that needs the runtime built takes the
// runtime's lock while it holds its own (always in this order, so they never deadlock).
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

// One cache entry: ROOT/ENTRY, usable once `complete` exists and `product` (what the build
// makes) too.
struct CacheEntry {
  fs::path root, dir, product;
  std::string entry, what;  // what: for messages ("mlp", "the runtime")

  CacheEntry(const std::string& entry_name, const std::string& what_, const fs::path& product_in_dir)
      : root(cache_root()), dir(root / entry_name), product(dir / product_in_dir), entry(entry_name), what(what_) {}

  bool complete() const {
    std::error_code ec;
    return fs::exists(dir / "complete", ec) && fs::exists(product, ec);
  }

  // Takes the lock (waiting for another build of this entry) and clears what an unfinished build
  // left. Returns null when the entry became complete meanwhile (built by the process we waited for).
  std::unique_ptr<CacheLock> lock_for_build() const {
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec)
      fail(SourceLoc{root.string(), 0, 0}, "cannot create the build cache folder: {} (MITHRIL_CACHE_DIR sets another)",
           ec.message());
    auto lock = std::make_unique<CacheLock>(root / (entry + ".lock"), what);
    if (complete()) return nullptr;
    if (fs::exists(dir, ec)) {
      fs::remove_all(dir, ec);
      if (ec) fail(SourceLoc{dir.string(), 0, 0}, "cannot remove this unfinished build: {}", ec.message());
    }
    return lock;
  }

  void mark_complete() const {
    const fs::path marker = dir / "complete";
    const int fd = open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) fail(SourceLoc{marker.string(), 0, 0}, "cannot mark the build complete: {}", std::strerror(errno));
    close(fd);
  }
};

// Runs one build step with its output appended to `log`, in a process group of its own that ends
// whole (compilers included) when mithril is stopped or dies. True when it succeeded.
bool build_step(const std::vector<std::string>& argv, const fs::path& log, bool append = true) {
  const int status = run_child(argv, ChildOptions{log.string(), append, true});
  if (int sig = last_child_interrupt()) throw Interrupted(sig);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string jobs() { return std::to_string(std::max(1u, std::thread::hardware_concurrency())); }

bool have_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::error_code ec;
  for (std::string d; std::getline(dirs, d, ':');)
    if (!d.empty() && access((fs::path(d) / name).c_str(), X_OK) == 0) return true;
  return false;
}

// What a program prints (stdout and stderr), or "" with ok == false when it fails.
std::string program_output(const std::vector<std::string>& argv, bool& ok) {
  const fs::path out = fs::temp_directory_path() / fmt::format("mithril-probe-{}-{}.txt", getpid(), stable_hash(argv[0] + argv.back()));
  int status = -1;
  try {
    status = run_child(argv, ChildOptions{out.string(), false, false});
  } catch (const CompileError&) {  // not installed
  }
  std::string text = read_text(out);
  std::error_code ec;
  fs::remove(out, ec);
  ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return ok ? text : "";
}

}  // namespace

// --- The runtime, built once per key ------------------------------------------------------------

// How the runtime is built (the CMake arguments below); change it when they change.
static constexpr const char* kRuntimeRecipe = "cmake Release; project flags of runtime/CMakeLists.txt; v1";

// The C++ compiler CMake will pick: $CXX, else c++ on PATH.
static std::string cxx_command() {
  const char* cxx = std::getenv("CXX");
  return cxx && *cxx ? cxx : "c++";
}

// What -march=native means here: GCC's resolved target options, else (clang) the CPU's flags.
static std::string native_target(const std::string& cxx) {
  bool ok = false;
  std::string text = program_output({cxx, "-march=native", "-Q", "--help=target"}, ok);
  if (ok && !text.empty()) return text;
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0) return line;
  return "unknown";
}

std::string runtime_key(const std::string& blas) {
  check_blas_choice(blas);
  static std::map<std::string, std::string> known;  // one process asks once per BLAS
  if (auto it = known.find(blas); it != known.end()) return it->second;
  const std::string cxx = cxx_command();
  bool ok = false;
  const std::string version = program_output({cxx, "--version"}, ok);
  if (!ok)
    fail(SourceLoc{cxx, 0, 0}, "the C++ compiler '{}' does not run ({} --version failed); install g++ or set CXX", cxx, cxx);
  uint64_t h = stable_hash("sources=" + cpu_runtime_hash() + ";");
  h = stable_hash("blas=" + blas + ";", h);
  h = stable_hash("cxx=" + cxx + ";" + version + ";", h);
  h = stable_hash(std::string("recipe=") + kRuntimeRecipe + ";", h);
  h = stable_hash("native=" + native_target(cxx) + ";", h);
  return known[blas] = fmt::format("{:016x}", h);
}

// A runtime's runtime.record (runtime/CMakeLists.txt writes it): the flags and libraries that
// compile and link a model against it.
struct RuntimeRecord {
  fs::path prefix;
  std::map<std::string, std::vector<std::string>> fields;
  std::string one(const std::string& f) const {
    auto it = fields.find(f);
    return it == fields.end() || it->second.empty() ? "" : it->second.front();
  }
  const std::vector<std::string>& list(const std::string& f) const {
    static const std::vector<std::string> none;
    auto it = fields.find(f);
    return it == fields.end() ? none : it->second;
  }
};

static fs::path record_path(const fs::path& prefix) { return prefix / "lib" / "mithril_runtime" / "runtime.record"; }

static bool read_record(const fs::path& prefix, RuntimeRecord& r) {
  std::ifstream in(record_path(prefix));
  if (!in) return false;
  r.prefix = prefix;
  for (std::string line; std::getline(in, line);) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) continue;  // a field left empty ("key " of a hand-made build)
    r.fields[line.substr(0, sp)].push_back(line.substr(sp + 1));
  }
  return true;
}

// The runtime installed beside this mithril (PREFIX/bin/mithril, PREFIX/lib/...), when it has `key`.
static bool installed_runtime(const std::string& key, RuntimeRecord& r) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return false;
  return read_record(exe.parent_path().parent_path(), r) && r.one("key") == key;
}

// Configures, builds and installs the runtime (sources from this mithril) into `prefix`, with
// `build_dir` as CMake's build folder and the output in `log`. Fails with the log's tail.
static void build_runtime_into(const fs::path& src, const fs::path& build_dir, const fs::path& prefix, const fs::path& log,
                               const std::string& blas, const std::string& key) {
  write_project(src.string(), [] {
    auto files = cpu_runtime_files();
    for (auto& f : files) f.path = f.path.substr(std::string("runtime/").size());
    return files;
  }());
  std::vector<std::string> configure = {"cmake", "-S", src.string(), "-B", build_dir.string(), "-DCMAKE_BUILD_TYPE=Release",
                                        "-DMITHRIL_BLAS=" + blas, "-DMITHRIL_RUNTIME_KEY=" + key,
                                        "-DMITHRIL_RUNTIME_SOURCES=" + cpu_runtime_hash()};
  if (have_program("ninja")) configure.insert(configure.begin() + 1, {"-G", "Ninja"});
  const bool built = build_step(configure, log, false) && build_step({"cmake", "--build", build_dir.string(), "-j", jobs()}, log) &&
                     build_step({"cmake", "--install", build_dir.string(), "--prefix", prefix.string()}, log);
  RuntimeRecord r;
  if (built && read_record(prefix, r)) return;
  std::string text = read_text(log);
  // runtime/CMakeLists.txt's message when MITHRIL_BLAS=blis finds no BLIS: one clear error instead of the log.
  if (blas == "blis" && one_line(text).find("install libblis-dev") != std::string::npos)
    fail(SourceLoc{"--blas blis", 0, 0},
         "BLIS is not installed: install the package libblis-dev (apt-get install libblis-dev), or use --blas openblas "
         "(build log: {})",
         log.string());
  if (text.size() > 3000) text = "..." + text.substr(text.size() - 3000);
  fail(SourceLoc{src.string(), 0, 0}, "building the Mithril runtime failed (full log: {}):\n{}", log.string(), text);
}

// The runtime for `blas`: the one installed beside mithril when it has the key, else the cache's
// entry ROOT/runtime-BLAS-KEY (PREFIX = its prefix/ folder), built now if needed.
static RuntimeRecord ensure_runtime(const std::string& blas) {
  const std::string key = runtime_key(blas);
  RuntimeRecord r;
  if (installed_runtime(key, r)) return r;
  CacheEntry e(fmt::format("runtime-{}-{}", blas, key), "the runtime (" + blas + ")",
               fs::path("prefix") / "lib" / "mithril_runtime" / "runtime.record");
  if (!e.complete()) {
    if (auto lock = e.lock_for_build()) {
      std::cerr << "mithril: building the runtime (" << blas << "; once for every model; cached in " << e.dir.string() << ")\n";
      fs::create_directories(e.dir);
      build_runtime_into(e.dir / "runtime", e.dir / "build", e.dir / "prefix", e.dir / "build.log", blas, key);
      e.mark_complete();
    }
  }
  if (!read_record(e.dir / "prefix", r))
    fail(SourceLoc{e.dir.string(), 0, 0}, "the cached runtime has no readable record (remove this folder to rebuild it)");
  return r;
}

std::string build_runtime(const std::string& blas, const std::string& prefix) {
  if (prefix.empty()) return ensure_runtime(blas).prefix.string();
  const std::string key = runtime_key(blas);
  const fs::path p = fs::absolute(prefix);
  RuntimeRecord r;
  if (read_record(p, r) && r.one("key") == key) return p.string();  // already there
  const fs::path work = fs::temp_directory_path() / fmt::format("mithril-runtime-{}-{}", getpid(), key);
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work);
  std::cerr << "mithril: building the runtime (" << blas << ") into " << p.string() << "\n";
  build_runtime_into(work / "runtime", work / "build", p, work / "build.log", blas, key);  // on failure the log stays
  fs::remove_all(work, ec);
  return p.string();
}

// --- Model programs: the model's own sources, compiled against the prebuilt runtime -------------

// A word for a POSIX shell (ninja runs its commands through /bin/sh): single-quoted.
static std::string shell_word(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
// Text for a ninja file: `$` escaped; in paths (build lines) also space and colon.
static std::string ninja_text(const std::string& s, bool path) {
  std::string out;
  for (char c : s) {
    if (c == '\n' || c == '\r') fail(SourceLoc{s, 0, 0}, "a path or flag of the build contains a line break");
    if (c == '$' || (path && (c == ' ' || c == ':'))) out += '$';
    out += c;
  }
  return out;
}

// Writes ENTRY/build.ninja: every .cpp compiled in parallel (ninja -j), then linked.
static void compile_model(const std::string& model_path, const fs::path& dir, const std::string& name, const std::vector<std::string>& sources,
                          const RuntimeRecord& rt) {
  const std::string cxx = rt.one("cxx").empty() ? cxx_command() : rt.one("cxx");
  std::vector<std::string> flags = rt.list("compile");
  flags.push_back("-I" + (rt.prefix / "include").string());
  std::vector<std::string> link;
  for (auto& lib : rt.list("lib")) link.push_back((rt.prefix / lib).string());
  for (auto& l : rt.list("link")) link.push_back(l);
  auto words = [](const std::vector<std::string>& ws) {
    std::string out;
    for (auto& w : ws) out += " " + ninja_text(shell_word(w), false);
    return out;
  };
  const fs::path out_dir = dir / "build", binary = out_dir / name, log = dir / "build.log";
  std::vector<std::string> objects;
  std::string ninja = "# The model's own sources, compiled against the runtime in " + rt.prefix.string() + "\n";
  ninja += "rule cxx\n  command = " + ninja_text(shell_word(cxx), false) + words(flags) + " -c $in -o $out\n" +
           "  description = Building CXX object $out\n";
  ninja += "rule link\n  command = " + ninja_text(shell_word(cxx), false) + words(flags) + " $in -o $out" + words(link) + "\n" +
           "  description = Linking CXX executable $out\n";
  for (auto& src : sources) {
    objects.push_back((out_dir / (src + ".o")).string());
    ninja += "build " + ninja_text(objects.back(), true) + ": cxx " + ninja_text((dir / src).string(), true) + "\n";
  }
  ninja += "build " + ninja_text(binary.string(), true) + ": link";
  for (auto& o : objects) ninja += " " + ninja_text(o, true);
  ninja += "\n";
  fs::create_directories(out_dir);
  std::ofstream(dir / "build.ninja") << ninja;
  bool built;
  if (have_program("ninja")) {
    built = build_step({"ninja", "-C", dir.string(), "-j", jobs()}, log, false);
  } else {  // one at a time without ninja
    built = true;
    std::ofstream(log, std::ios::trunc).close();
    for (size_t i = 0; built && i < sources.size(); ++i) {
      std::vector<std::string> argv = {cxx};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argv.insert(argv.end(), {"-c", (dir / sources[i]).string(), "-o", objects[i]});
      built = build_step(argv, log);
    }
    if (built) {
      std::vector<std::string> argv = {cxx};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argv.insert(argv.end(), objects.begin(), objects.end());
      argv.insert(argv.end(), {"-o", binary.string()});
      argv.insert(argv.end(), link.begin(), link.end());
      built = build_step(argv, log);
    }
  }
  std::error_code ec;
  if (!built || !fs::exists(binary, ec)) {
    std::string text = read_text(log);
    if (text.size() > 3000) text = "..." + text.substr(text.size() - 3000);
    fail(SourceLoc{model_path, 0, 0}, "building the generated code failed (full log: {}):\n{}", log.string(), text);
  }
}

std::string build_project_cached(const std::string& model_path, const std::string& name, const std::vector<GeneratedFile>& files,
                                 const std::string& blas) {
  check_blas_choice(blas);
  // The key: the model's own files and the runtime's key (its sources, compiler, flags, BLAS, CPU).
  uint64_t h = stable_hash("runtime=" + runtime_key(blas) + ";", stable_hash(name));
  std::vector<GeneratedFile> own;
  for (auto& f : files)
    if (f.path.rfind("runtime/", 0) != 0 && f.path != "CMakeLists.txt") own.push_back(f);
  for (auto& f : own) h = stable_hash(f.text, stable_hash(f.path, h));
  CacheEntry e(fmt::format("{}-{:016x}", name, h), name, fs::path("build") / name);
  if (e.complete()) return e.product.string();
  auto lock = e.lock_for_build();
  if (!lock) return e.product.string();  // built by the process we waited for
  const RuntimeRecord rt = ensure_runtime(blas);
  std::cerr << "mithril: building " << name << " (first run of this model; cached in " << e.dir.string() << ")\n";
  write_project(e.dir.string(), own);
  std::vector<std::string> sources;
  for (auto& f : own)
    if (fs::path(f.path).extension() == ".cpp") sources.push_back(f.path);
  compile_model(model_path, e.dir, name, sources, rt);
  e.mark_complete();
  return e.product.string();
}

// `mithril run --target cuda`: the whole generated project (its bundled runtime included) built with
// CMake into the cache, keyed on every file and on nvcc's version. The device code is built for the
// GPU nvidia-smi reports, else sm_90 (the project's own choice, codegen_templates/cuda). With
// `emulate` (--emulate-gpu) the project is built for the CPU's emulation of CUDA instead (no nvcc).
// The runtime's host part is the cached runtime for `blas` (built once, as for CPU programs): the
// project then builds only its CUDA part.
static std::string build_cuda_cached(const std::string& model_path, const std::string& name, const std::vector<GeneratedFile>& files,
                                     bool emulate, const std::string& blas) {
  bool ok = false;
  const std::string nvcc = fs::exists("/usr/local/cuda/bin/nvcc") ? "/usr/local/cuda/bin/nvcc" : "nvcc";
  const std::string version = emulate ? "emulated" : program_output({nvcc, "--version"}, ok);
  if (!emulate && !ok)
    fail(SourceLoc{"--target cuda", 0, 0}, "building CUDA code needs nvcc (the CUDA Toolkit; looked in /usr/local/cuda/bin and on PATH)");
  if (!have_program("cmake")) fail(SourceLoc{"--target cuda", 0, 0}, "building CUDA code needs CMake");
  uint64_t h = stable_hash("cuda;nvcc=" + version + ";", stable_hash(name));
  for (auto& f : files) h = stable_hash(f.text, stable_hash(f.path, h));
  CacheEntry e(fmt::format("{}-cuda{}-{:016x}", name, emulate ? "-emulated" : "", h), name, fs::path("build") / name);
  if (e.complete()) return e.product.string();
  auto lock = e.lock_for_build();
  if (!lock) return e.product.string();
  std::cerr << "mithril: building " << name << (emulate ? " for the CPU's emulation of CUDA" : " for CUDA")
            << " (first run of this model; cached in " << e.dir.string() << ")\n";
  write_project(e.dir.string(), files);
  const fs::path log = e.dir / "build.log";
  const std::string runtime = build_runtime(blas);
  std::vector<std::string> configure = {"cmake", "-S", e.dir.string(), "-B", (e.dir / "build").string(),
                                        emulate ? "-DMITHRIL_CUDA_EMULATE=ON" : "-DCMAKE_CUDA_COMPILER=" + nvcc,
                                        "-DCMAKE_PREFIX_PATH=" + runtime};
  if (have_program("ninja")) configure.insert(configure.end(), {"-G", "Ninja"});
  bool built = build_step(configure, log, false) &&
               build_step({"cmake", "--build", (e.dir / "build").string(), "-j", jobs(), "--target", name}, log);
  std::error_code ec;
  if (!built || !fs::exists(e.product, ec)) {
    std::string text = read_text(log);
    if (text.size() > 3000) text = "..." + text.substr(text.size() - 3000);
    fail(SourceLoc{model_path, 0, 0}, "building the generated CUDA code failed (full log: {}):\n{}", log.string(), text);
  }
  e.mark_complete();
  return e.product.string();
}

}  // namespace mithril
