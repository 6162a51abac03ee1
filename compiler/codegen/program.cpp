#include "codegen/project.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "mithril/rt/safetensors.h"
#include "ops/emit.h"

namespace mithril {

extern const char* const kTemplates[][2];
extern const size_t kTemplatesCount;
extern const char* const kRuntimeFiles[][2];
extern const size_t kRuntimeFilesCount;

namespace fs = std::filesystem;

std::string fill_template(const std::string& template_path, const std::map<std::string, std::string>& values) {
  const char* text = nullptr;
  for (size_t i = 0; i < kTemplatesCount; ++i)
    if (template_path == kTemplates[i][0]) text = kTemplates[i][1];
  if (!text) throw std::logic_error("no code template " + template_path);
  std::string out = text;
  for (auto& [k, v] : values) {
    std::string hole = "{{" + k + "}}";
    for (size_t p = out.find(hole); p != std::string::npos; p = out.find(hole, p + v.size())) out.replace(p, hole.size(), v);
  }
  if (auto p = out.find("{{"); p != std::string::npos && out.find("}}", p) != std::string::npos &&
                               out.substr(p, out.find("}}", p) - p).find_first_of(" \n;") == std::string::npos)
    throw std::logic_error("unfilled hole in " + template_path + ": " + out.substr(p, out.find("}}", p) - p + 2));
  return out;
}

std::string project_name(const std::string& name) {
  // Not a file of the project (main.cpp, the runtime/ folder) nor a target name CMake reserves.
  static const std::set<std::string> taken = {"main", "runtime", "mithril_runtime", "all", "clean", "help", "install", "test",
                                              "package", "package_source", "edit_cache", "rebuild_cache", "depend",
                                              "list_install_components", "CMakeLists", "CMakeFiles", "build"};
  std::string id = c_identifier(name);
  std::string lower = id;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool clash = taken.count(id) || taken.count(lower) || lower.rfind("cmake", 0) == 0;
  return clash ? id + "_model" : id;
}

namespace {

std::string class_name(const std::string& name) {
  std::string out;
  bool up = true;
  for (char ch : c_identifier(name)) {
    if (ch == '_') {
      up = true;
      continue;
    }
    out += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(ch))) : ch;
    up = false;
  }
  // Not the name of a member class (Dims, Weight, Port) nor a macro (`e_o_f` -> `EOF`).
  if (out.empty() || out == "Dims" || out == "Weight" || out == "Port" || cpp_reserved(out)) out += "Model";
  return out;
}

const char* rt_dtype(DType t) {
  switch (t) {
    case DType::f32: return "mithril::rt::DType::Float32";
    case DType::f64: return "mithril::rt::DType::Float64";
    case DType::i32: return "mithril::rt::DType::Int32";
    case DType::i64: return "mithril::rt::DType::Int64";
    case DType::boolean: return "mithril::rt::DType::Bool";
  }
  return "?";
}

std::string shape_comment(const Value& v) { return fmt::format("{}{}", dtype_name(v.dtype), shape_str(v.shape)); }

// `const int64_t N = d.N;` for every run-time dim, so dim expressions read as in the model.
// Where a layer was written, as comments give it: the file relative to the model file's folder
// (`lenet.yaml:6:5`, `blocks/attn.yaml:3:5`), so the same model compiled from any working
// directory, by a relative or an absolute path, gives the same bytes. A file that is not on
// disk (`<stdlib>/...`) keeps its name.
std::string source_label(const SourceLoc& loc, const std::string& model_dir) {
  if (loc.file.empty() || loc.file[0] == '<') return loc.str();
  std::error_code ec;
  const fs::path file = fs::absolute(loc.file, ec).lexically_normal();
  std::string rel;
  if (!ec && !model_dir.empty()) {
    const fs::path dir = fs::absolute(model_dir, ec).lexically_normal();
    if (!ec) rel = file.lexically_relative(dir).generic_string();
  }
  if (rel.empty()) rel = fs::path(loc.file).filename().generic_string();
  return loc.known() ? fmt::format("{}:{}:{}", rel, loc.line, loc.col) : rel;
}

std::string dim_locals(const ProgramPlan& p, const std::string& from) {
  std::string out = fmt::format("  (void){};\n", from);
  for (auto& s : p.symbols)
    out += fmt::format("  const int64_t {2}{0} = {1}.{3};\n  (void){2}{0};\n", s, from, kDimPrefix, p.dim_field.at(s));
  return out;
}

std::string shape_vector(const Shape& s) {
  std::vector<std::string> dims;
  for (auto& d : s) dims.push_back(EmitContext::dim(d));
  return fmt::format("{{{}}}", fmt::join(dims, ", "));
}

// The program's skeleton, the same for every target (class and interface, dims and bounds, weights
// table, ports, bind, the forward / backward / train_step order); each layer's body comes from its
// op's record for the plan's target. A target with device memory (CUDA) keeps the weights on the host
// as well (initialization, files, optimizers' host view) and copies them to the device when they
// change; inputs and outputs cross at run().
struct Printer {
  const ProgramPlan& p;
  const Graph& g;
  std::string cls;
  bool device = false;  // Target::device_memory

  std::string header(const CpuOptions& o) {
    std::string legend, fields;
    for (auto& s : p.symbols) {
      legend += fmt::format("//   {}: given at run time, at most {}\n", s, p.max.at(s));
      fields += fmt::format("    int64_t {} = 0;  // at most {}\n", p.dim_field.at(s), p.max.at(s));
    }
    if (legend.empty()) legend = "//   every size is fixed at compile time\n";
    std::string args;
    for (int id : g.inputs) args += fmt::format("const {}* {}, ", EmitContext::ctype(g.value(id).dtype), p.ident[id]);
    std::string io_doc;
    for (int id : g.inputs) io_doc += fmt::format("//   input  {}: {}\n", cpp_comment(g.value(id).name), shape_comment(g.value(id)));
    for (size_t i = 0; i < g.outputs.size(); ++i)
      io_doc += fmt::format("//   output {}: {}\n", cpp_comment(g.output_names[i]), shape_comment(g.value(g.outputs[i])));
    std::string s;
    s += fmt::format("// {}.h: generated by mithril {} from {}. Do not edit.\n//\n", o.name, MITHRIL_VERSION, cpp_comment(o.source));
    s += fmt::format("// Model `{}`: {} layers, one arena of {} bytes for every intermediate and output,\n", cpp_comment(g.name), g.nodes.size(),
                     p.arena_bytes);
    s += fmt::format("// {} bytes of weights.\n//\n// Dimensions:\n{}//\n{}", p.weight_bytes, legend, io_doc);
    s += R"CPP(#pragma once

#include <cstdint>
#include <string>
#include <vector>

)CPP";
    s += device ? "#include \"mithril/rt/cuda/device.h\"\n#include \"mithril/rt/program.h\"\n" : "#include \"mithril/rt/runtime.h\"\n";
    if (device && optimizer()) s += "#include \"mithril/rt/kernels/optim.h\"  // OptimHyper\n";
    s += "\n";
    s += fmt::format("class {} {{\n public:\n", cls);
    s += fmt::format("  // Sizes left to run time.\n  struct Dims {{\n{}  }};\n", fields);
    s += fmt::format("  static constexpr int64_t kArenaBytes = {};\n  static constexpr int64_t kWeightBytes = {};\n", p.arena_bytes,
                     p.weight_bytes);
    s += fmt::format("  static constexpr bool kEmbeddedWeights = {};  // weights compiled into the binary (--embed-weights)\n",
                     o.embed_weights ? "true" : "false");
    s += fmt::format("  static constexpr bool kTraining = {};  // compiled with --mode {}\n\n", p.training ? "true" : "false",
                     p.training ? "train" : "eval");
    s += fmt::format("  {}();\n\n", cls);
    s += R"CPP(  // Parameters and state, named as in the model (PyTorch layouts and names).
  struct Weight {
    const char* name;
    mithril::rt::DType dtype;
    std::vector<int64_t> shape;
    int64_t offset;      // in the weight block
    const char* init;    // PyTorch's default initializer for it
    double init_arg;     // fan_in, or std for "normal"
    bool optimizer;      // optimizer state (momentum, Adam moments): checkpoints keep it, exported weights do not
  };
  static const std::vector<Weight>& weights();
  void init_weights(uint64_t seed);
  // Every weight from a safetensors file; a missing one is an error unless init_missing.
  void load_weights(const std::string& path, bool init_missing = false, uint64_t seed = 0);
  void save_weights(const std::string& path) const;
  void load_embedded_weights();  // only when kEmbeddedWeights

  // Inputs and outputs in declaration order.
  struct Port {
    const char* name;
    mithril::rt::DType dtype;
  };
  static const std::vector<Port>& inputs();
  static const std::vector<Port>& outputs();
  // Checks the inputs' shapes against the model and reads the run-time sizes from them.
  Dims bind(const std::vector<mithril::rt::Tensor>& inputs) const;
  std::vector<int64_t> output_shape(size_t i, const Dims& d) const;

)CPP";
    if (device)
      s += fmt::format("  // The forward pass on device pointers, asynchronous on the program's stream; outputs stay in the\n"
                       "  // device arena until the next call. run() takes host tensors and copies the outputs back (output()).\n"
                       "  void forward({}const Dims& d);\n",
                       args);
    else
      s += fmt::format("  // The forward pass; outputs stay in the arena until the next call (see output()).\n  void forward({}const Dims& d);\n",
                       args);
    s += R"CPP(  const void* output(size_t i) const;
  void run(const std::vector<mithril::rt::Tensor>& inputs, const Dims& d);

  // Gradients (compiled with --grad): one per trainable parameter, then per input named with
  // --grad-inputs. backward() takes dL/d(output) for each output (ignored for integer outputs) and
  // uses the inputs and sizes of the last forward(), which must still hold the same data.
)CPP";
    s += fmt::format("  static constexpr bool kGradients = {};\n", backward() ? "true" : "false");
    s += R"CPP(  static const std::vector<Port>& gradients();
  const void* gradient(size_t i) const;
  std::vector<int64_t> gradient_shape(size_t i, const Dims& d) const;
  void run_backward(const std::vector<mithril::rt::Tensor>& output_grads);
  // The weight block (layout in weights()): optimizers and gradient checks update it in place.
  // Taking it marks the weights changed (copies made from them, such as packed GEMM weights, are
  // made again on the next forward()); after writing through an older pointer, call weights_changed().
)CPP";
    if (device)  // the device's copy is the newer one after training steps: fetched first
      s += R"CPP(  std::byte* weight_data() {
    download_weights();
    weights_.touch();
    return weights_.data();
  }
  void weights_changed() { weights_.touch(); }
  const mithril::rt::Arena& weight_block() const {
    download_weights();
    return weights_;
  }
)CPP";
    else
      s += R"CPP(  std::byte* weight_data() {
    weights_.touch();
    return weights_.data();
  }
  void weights_changed() { weights_.touch(); }
  const mithril::rt::Arena& weight_block() const { return weights_; }
)CPP";
    s += R"CPP(  // Reads its weights from another program's block from now on (the training step's, when that
  // block places every weight of this one at the same offset: mithril::rt::share_weights).
  void share_weights(const mithril::rt::Arena& block) { weights_ = block.alias(); }
)CPP";
    if (backward()) {
      std::string seeds;
      for (int id : g.output_grads)
        if (id >= 0) seeds += fmt::format("const {}* {}, ", EmitContext::ctype(g.value(id).dtype), p.ident[id]);
      s += fmt::format("  void backward({}const Dims& d);\n", seeds);
      s += fmt::format("  // forward() then backward(): one training step's gradients.\n  void forward_backward({}{}const Dims& d);\n", args, seeds);
    }
    if (optimizer()) {
      s += fmt::format(R"CPP(
  // Training (compiled with --train): one step is forward(), backward() from dL/dloss = 1 and the
  // optimizer's update of every trained parameter; returns the loss (output 0). The training loop
  // sets the hyperparameters (learning rate, step count) in hyper() before each step.
  double train_step({}const Dims& d);
  double run_train_step(const std::vector<mithril::rt::Tensor>& inputs, const Dims& d);
  mithril::rt::OptimHyper& hyper() {{ return hyper_; }}
)CPP", args);
    }
    if (device) s += "  // The GPU the program runs on (--bench prints it).\n  const std::string& device_description() const { return device_.description(); }\n";
    s += R"CPP(  // Reseeds the random ops (Dropout masks), e.g. once per epoch so a resumed run repeats them.
  void reseed(uint64_t seed) { rng_ = mithril::rt::Rng(seed); }
)CPP";
    s += "\n private:\n";
    if (device)
      s += "  mithril::rt::cuda::Device device_;  // the GPU, the program's stream and cuBLAS handle (first: it checks there is a GPU)\n";
    s += R"CPP(  mithril::rt::Arena arena_;
  mithril::rt::Arena weights_;
  mithril::rt::Rng rng_{0};  // random ops in training code (Dropout masks); reseeded by init/load
)CPP";
    if (!p.packed.empty())
      s += "  mithril::rt::Arena packed_;            // weights packed for the kernels (pack_weights())\n"
           "  std::uint64_t packed_generation_ = 0;  // the weights_.generation() they were packed from\n"
           "  void pack_weights();\n";
    if (device)
      s += "  mithril::rt::Arena device_weights_;     // the weights on the device, copied from weights_ when it changes\n"
           "  std::uint64_t device_weights_generation_ = 0;  // the weights_.generation() copied\n"
           "  mithril::rt::Arena device_inputs_;      // run()'s inputs on the device\n"
           "  mithril::rt::Arena host_outputs_;       // run()'s outputs copied back (output())\n"
           "  void upload_weights();\n"
           "  // Training updates the weights (and batch norm's running statistics) on the device: then the host's\n"
           "  // copy is stale until download_weights() (weight_data(), weight_block(), save_weights()).\n"
           "  mutable bool device_newer_ = false;\n"
           "  void download_weights() const;\n";
    if (device && backward())
      s += "  mithril::rt::Arena device_seeds_;       // run_backward()'s output gradients on the device\n"
           "  mithril::rt::Arena host_grads_;         // run_backward()'s gradients copied back (gradient())\n";
    if (optimizer()) s += "  mithril::rt::OptimHyper hyper_;  // read by the optimizer updates at the end of backward()\n";
    if (backward())
      s += fmt::format("  const void* saved_inputs_[{}] = {{}};  // the last forward()'s inputs, read by backward()\n  Dims saved_dims_;\n",
                       std::max<size_t>(1, g.inputs.size()));
    s += "};\n";
    return s;
  }

  // The weight block as it will sit in memory, read from a safetensors file; every
  // parameter must be there with its exact dtype and shape (errors name it).
  std::string weight_block(const std::string& path) {
    std::string block(static_cast<size_t>(p.weight_bytes), '\0');
    try {
      mithril::rt::SafetensorsFile file(path);
      for (int id : p.weights) {
        const Value& v = g.value(id);
        if (!file.has(v.name)) fail(SourceLoc{path, 0, 0}, "the weights file has no parameter '{}'", v.name);
        mithril::rt::Shape shape;
        for (auto& d : v.shape) shape.push_back(d.value());
        mithril::rt::DType t = v.dtype == DType::f64 ? mithril::rt::DType::Float64 : mithril::rt::DType::Float32;
        file.load_into(v.name, block.data() + p.offset[id], t, shape);
      }
    } catch (const mithril::rt::Error& e) {
      fail(SourceLoc{path, 0, 0}, "{}", e.what());
    }
    return block;
  }

  std::string embedded_source(const CpuOptions& o, const std::string& block) {
    std::string s = fmt::format("// {}_weights.cpp: generated by mithril {} from {}: the weights, compiled in. Do not edit.\n",
                                o.name, MITHRIL_VERSION, cpp_comment(fs::path(o.weights).filename().string()));
    s += fmt::format("#include <cstring>\n\n#include \"{0}.h\"\n\n// {1} bytes (the literal adds a final NUL)\nalignas(64) static const char kWeights[] =\n",
                     o.name, block.size());
    static const char* hex = "0123456789abcdef";
    for (size_t i = 0; i < block.size(); i += 32) {
      s += "    \"";
      for (size_t j = i; j < std::min(block.size(), i + 32); ++j) {
        unsigned char c = static_cast<unsigned char>(block[j]);
        s += "\\x";
        s += hex[c >> 4];
        s += hex[c & 15];
      }
      s += "\"\n";
    }
    if (block.empty()) s += "    \"\"\n";
    s += fmt::format(";\n\nvoid {0}::load_embedded_weights() {{\n  std::memcpy(weights_.data(), kWeights, {1});\n  weights_.touch();\n}}\n", cls,
                     block.size());
    return s;
  }

  std::string source(const CpuOptions& o) {
    std::string s = fmt::format("// {}{}: generated by mithril {} from {}. Do not edit.\n", o.name, device ? ".cu" : ".cpp", MITHRIL_VERSION,
                                cpp_comment(o.source));
    s += fmt::format("#include \"{}.h\"\n\n#include <algorithm>\n#include <cmath>\n#include <cstring>\n#include <limits>\n\n", o.name);
    if (device) s += "#include \"mithril/rt/cuda/kernels.cuh\"\n\n";
    s += "namespace rt = mithril::rt;\n\n";
    s += packed_offsets();
    if (device)
      s += device_members();
    else
      s += fmt::format("{0}::{0}() : arena_(std::max<int64_t>(kArenaBytes, 64)), weights_(std::max<int64_t>(kWeightBytes, 64)){1} {{}}\n\n", cls,
                       p.packed.empty() ? "" : ", packed_(std::max<int64_t>(kPackedFloats * 4, 64))");
    s += pack_fn() + weights_table() + ports_tables() + bind_fn() + output_shape_fn() + forward_fn() + run_fn() + gradient_fns();
    if (!o.embed_weights)
      s += fmt::format("\nvoid {}::load_embedded_weights() {{ throw rt::Error(\"no weights were embedded (compile with --embed-weights)\"); }}\n", cls);
    return s;
  }

  // Packed weights (ProgramPlan::packed): their offsets in packed_, in floats. The sizes may
  // depend on the vector width of the build (mithril::rt::k::packed_b_size), so C++ computes them.
  std::string packed_offsets() {
    if (p.packed.empty()) return "";
    std::string s = "namespace {\n// Packed weights: offsets in floats in packed_, sized for this build's vector width.\n";
    std::string prev;
    for (auto& [id, spec] : p.packed) {
      s += fmt::format("constexpr int64_t kPacked_{} = {};\n", p.ident[id], prev.empty() ? "0" : prev);
      prev = fmt::format("kPacked_{} + {}", p.ident[id], spec.floats);
    }
    s += fmt::format("constexpr int64_t kPackedFloats = rt::k::kPackedGemm ? {} : 0;\n}}  // namespace\n\n", prev);
    return s;
  }

  std::string pack_fn() {
    if (p.packed.empty()) return "";
    std::string s = fmt::format("void {}::pack_weights() {{\n  const std::byte* const weights = weights_.data();\n", cls);
    s += "  float* const packed = reinterpret_cast<float*>(packed_.data());\n  (void)weights;\n  (void)packed;\n";
    s += "  if constexpr (rt::k::kPackedGemm) {\n";
    for (auto& [id, spec] : p.packed) {
      std::string make = fmt::format(fmt::runtime(spec.make), fmt::arg("dst", "packed + kPacked_" + p.ident[id]),
                                     fmt::arg("src", fmt::format("reinterpret_cast<const float*>(weights + {})", p.offset[id])));
      s += fmt::format("    {};  // {}\n", make, cpp_comment(g.value(id).name));
    }
    return s + "  }\n  packed_generation_ = weights_.generation();\n}\n\n";
  }

  std::string weights_table() {
    std::string s = fmt::format("const std::vector<{0}::Weight>& {0}::weights() {{\n  static const std::vector<Weight> w = {{\n", cls);
    for (int id : p.weights) {
      const Value& v = g.value(id);
      std::string kind = v.init.value("kind", std::string(v.kind == ValueKind::State ? "zeros" : "normal"));
      double arg = v.init.contains("fan_in") ? v.init["fan_in"].get<double>() : v.init.value("std", 1.0);
      std::vector<std::string> dims;
      for (auto& d : v.shape) dims.push_back(std::to_string(d.value()));
      s += fmt::format("      {{{}, {}, {{{}}}, {}, {}, {}, {}}},\n", cpp_string(v.name), rt_dtype(v.dtype), fmt::join(dims, ", "), p.offset[id],
                       cpp_string(kind), cpp_number(arg), v.init.value("optimizer", false) ? "true" : "false");
    }
    s += "  };\n  return w;\n}\n\n";
    s += fmt::format(R"CPP(void {0}::init_weights(uint64_t seed) {{
  rt::Rng rng(seed);
  rng_ = rt::Rng(seed ^ 0x9E3779B97F4A7C15ull);
  for (auto& w : weights()) {{
    int64_t n = 1;
    for (int64_t d : w.shape) n *= d;
    if (w.dtype == rt::DType::Float64) rt::init_values(weights_.at<double>(w.offset, n), n, w.init, w.init_arg, rng);
    else rt::init_values(weights_.at<float>(w.offset, n), n, w.init, w.init_arg, rng);
  }}
  weights_.touch();
}}

void {0}::load_weights(const std::string& path, bool init_missing, uint64_t seed) {{
  rt::SafetensorsFile file(path);
  rt::Rng rng(seed);
  rng_ = rt::Rng(seed ^ 0x9E3779B97F4A7C15ull);
  for (auto& w : weights()) {{
    int64_t n = 1;
    for (int64_t d : w.shape) n *= d;
    if (file.has(w.name)) {{
      file.load_into(w.name, weights_.data() + w.offset, w.dtype, w.shape);
    }} else if (init_missing || w.optimizer) {{  // optimizer state starts at zero
      if (w.dtype == rt::DType::Float64) rt::init_values(weights_.at<double>(w.offset, n), n, w.init, w.init_arg, rng);
      else rt::init_values(weights_.at<float>(w.offset, n), n, w.init, w.init_arg, rng);
    }} else {{
      throw rt::Error("weights file " + path + " has no parameter '" + w.name + "' (pass --init-missing to initialize missing ones)");
    }}
  }}
  weights_.touch();
}}

void {0}::save_weights(const std::string& path) const {{
  std::vector<std::pair<std::string, rt::Tensor>> tensors;
  auto& self = const_cast<{0}&>(*this);
  for (auto& w : weights()) tensors.emplace_back(w.name, rt::Tensor::borrow(self.weights_.data() + w.offset, w.dtype, w.shape));
  rt::save_safetensors(path, tensors, {{{{"format", "pt"}}, {{"generator", "mithril"}}}});
}}

)CPP",
                     cls);
    if (device) {  // the host's copy is the newer one after init/load; save_weights() fetches the device's first
      auto replace_all = [&](const std::string& from, const std::string& to) {
        for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
      };
      replace_all("  weights_.touch();\n}\n", "  weights_.touch();\n  device_newer_ = false;\n}\n");
      replace_all(fmt::format("  auto& self = const_cast<{}&>(*this);\n", cls),
                  fmt::format("  download_weights();\n  auto& self = const_cast<{}&>(*this);\n", cls));
    }
    return s;
  }

  std::string ports_tables() {
    auto table = [&](const char* fn, const std::vector<int>& ids, const std::vector<std::string>& names) {
      std::string s = fmt::format("const std::vector<{0}::Port>& {0}::{1}() {{\n  static const std::vector<Port> ports = {{\n", cls, fn);
      for (size_t i = 0; i < ids.size(); ++i) s += fmt::format("      {{{}, {}}},\n", cpp_string(names[i]), rt_dtype(g.value(ids[i]).dtype));
      return s + "  };\n  return ports;\n}\n\n";
    };
    std::vector<std::string> in_names;
    for (int id : g.inputs) in_names.push_back(g.value(id).name);
    return table("inputs", g.inputs, in_names) + table("outputs", g.outputs, g.output_names);
  }

  std::string bind_fn() {
    std::string s = fmt::format(R"CPP(namespace {{
[[noreturn, maybe_unused]] void wrong_shape(const char* input, const char* declared, const rt::Tensor& t) {{
  throw rt::Error(std::string("input '") + input + "': expected shape " + declared + ", got " + t.type_str());
}}
[[maybe_unused]] void bind_dim(int64_t value, int64_t& slot, bool& bound, int64_t max, const char* dim, const char* input, const char* declared,
              const rt::Tensor& t) {{
  if (bound && slot != value) wrong_shape(input, declared, t);
  if (value > max)
    throw rt::Error(std::string("input '") + input + "': dimension " + dim + " = " + std::to_string(value) +
                    " exceeds the bound compiled in, " + std::to_string(max) + " (recompile with --max " + dim + "=" +
                    std::to_string(value) + ")");
  slot = value;
  bound = true;
}}
}}  // namespace

{0}::Dims {0}::bind(const std::vector<rt::Tensor>& in) const {{
  if (in.size() != {1}) throw rt::Error("expected {1} inputs, got " + std::to_string(in.size()));
  Dims d;
)CPP",
                                cls, g.inputs.size());
    for (auto& sym : p.symbols) s += fmt::format("  bool bound_{} = false;\n", sym);
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const Value& v = g.value(g.inputs[i]);
      std::string decl = shape_str(v.shape);
      s += fmt::format("  if (in[{}].ndim() != {}) wrong_shape({}, {}, in[{}]);\n", i, v.shape.size(), cpp_string(v.name), cpp_string(decl), i);
      for (size_t k = 0; k < v.shape.size(); ++k) {
        const Dim& dd = v.shape[k];
        if (auto c = dd.as_const())
          s += fmt::format("  if (in[{}].dim({}) != {}) wrong_shape({}, {}, in[{}]);\n", i, k, *c, cpp_string(v.name), cpp_string(decl), i);
        else
          s += fmt::format("  bind_dim(in[{0}].dim({1}), d.{6}, bound_{2}, {3}, {7}, {4}, {5}, in[{0}]);\n", i, k, dd.str(),
                           p.max.at(dd.str()), cpp_string(v.name), cpp_string(decl), p.dim_field.at(dd.str()), cpp_string(dd.str()));
      }
    }
    return s + "  return d;\n}\n\n";
  }

  std::string output_shape_fn() {
    std::string s = fmt::format("std::vector<int64_t> {}::output_shape(size_t i, const Dims& d) const {{\n{}", cls, dim_locals(p, "d"));
    for (size_t i = 0; i < g.outputs.size(); ++i)
      s += fmt::format("  if (i == {}) return {};\n", i, shape_vector(g.value(g.outputs[i]).shape));
    return s + "  throw rt::Error(\"no output \" + std::to_string(i));\n}\n\n";
  }

  bool backward() const { return g.forward_nodes >= 0; }
  bool optimizer() const {
    for (auto& n : g.nodes)
      if (n.op->has_trait("optimizer")) return true;
    return false;
  }
  int forward_end() const { return backward() ? g.forward_nodes : static_cast<int>(g.nodes.size()); }

  // Locals for the values nodes [from, to) read or write: weights and arena slots (and, in the
  // backward pass, the saved inputs), then each node's code in order.
  std::string body(int from, int to, bool saved_inputs) {
    std::set<int> used;
    for (int k = from; k < to; ++k) {
      for (auto& port : g.nodes[k].inputs) used.insert(port.begin(), port.end());
      for (auto& port : g.nodes[k].outputs) used.insert(port.begin(), port.end());
    }
    std::string s;
    bool updates = false, packed = false;
    for (int k = from; k < to; ++k) updates = updates || g.nodes[k].op->has_trait("optimizer");
    for (auto& q : p.packed) packed = packed || used.count(q.id);
    if (updates && !device) s += "  weights_.touch();  // the optimizer's updates below change the weights\n";
    if (packed)
      s += "  if constexpr (rt::k::kPackedGemm)\n    if (packed_generation_ != weights_.generation()) pack_weights();  // weights changed since\n";
    if (device)
      s += "  if (device_weights_generation_ != weights_.generation()) upload_weights();  // weights changed since\n"
           "  std::byte* const arena = arena_.data();\n  std::byte* const weights = device_weights_.data();\n";
    else
      s += "  std::byte* const arena = arena_.data();\n  std::byte* const weights = weights_.data();\n";
    if (device && (updates || p.training))
      s += "  device_newer_ = true;  // the updates (or batch norm's running statistics) below change the device's weights\n";
    s += "  (void)arena;\n  (void)weights;\n";
    if (saved_inputs)
      for (size_t i = 0; i < g.inputs.size(); ++i)
        if (used.count(g.inputs[i])) {
          const char* T = EmitContext::ctype(g.value(g.inputs[i]).dtype);
          s += fmt::format("  const {0}* const {1} = static_cast<const {0}*>(saved_inputs_[{2}]);\n", T, p.ident[g.inputs[i]], i);
        }
    s += "\n  // Weights.\n";
    for (int id : p.weights) {
      if (!used.count(id)) continue;
      const Value& v = g.value(id);
      const char* T = EmitContext::ctype(v.dtype);
      std::string cv = v.kind == ValueKind::State && p.training ? "" : "const ";  // training updates state
      s += fmt::format("  {5}{0}* const {1} = reinterpret_cast<{5}{0}*>(weights + {2});  // {3} {4}\n", T, p.ident[id], p.offset[id],
                       cpp_comment(v.name), shape_comment(v), cv);
      if (p.is_packed(id))
        s += fmt::format("  const float* const {0}__packed = reinterpret_cast<const float*>(packed_.data()) + kPacked_{0};\n", p.ident[id]);
    }
    s += "\n  // Intermediates and outputs, placed in the arena by the memory plan.\n";
    for (auto& v : g.values)
      if (v.kind == ValueKind::Temp && used.count(v.id))
        s += fmt::format("  {0}* const {1} = reinterpret_cast<{0}*>(arena + {2});  // {3}\n", EmitContext::ctype(v.dtype), p.ident[v.id],
                         p.offset[v.id], shape_comment(v));
    for (int k = from; k < to; ++k) {
      const Node& n = g.nodes[k];
      std::string ins, outs;
      for (size_t q = 0; q < n.inputs.size(); ++q)
        for (int v : n.inputs[q])
          if (n.op->inputs[q].kind == PortKind::Data) ins += (ins.empty() ? "" : ", ") + shape_str(g.value(v).shape);
      for (auto& port : n.outputs)
        for (int v : port) outs += (outs.empty() ? "" : ", ") + shape_str(g.value(v).shape);
      s += fmt::format("\n  // {} ({}) at {}: {} -> {}\n  {{\n", cpp_comment(n.name), n.op->name, cpp_comment(source_label(n.loc, p.source_dir)), ins, outs);
      // --profile: the layer's time (and FLOPs); one branch while profiling is off.
      const char* pass = g.forward_nodes < 0 || k < g.forward_nodes ? "forward" : n.op->has_trait("optimizer") ? "update" : "backward";
      // (Device targets: events on the stream around the layer's launches, read at the next wait.)
      s += fmt::format("    static constexpr rt::ProfileNode profile_node_{{{}, \"{}\", \"{}\"}};\n", cpp_string(n.name), n.op->name, pass);
      s += fmt::format("    const rt::{} profile_({}profile_node_, {});\n", device ? "cuda::DeviceProfileScope" : "ProfileScope",
                       device ? "device_, " : "",
                       n.op->flops ? fmt::format("static_cast<double>({})", EmitContext::dim(n.op->flops(n, g))) : "0");
      const OpDef::TargetRecord* rec = n.op->target(p.target);
      if (!rec)
        fail(n.loc, "layer '{}' ({}): the {} target does not support {} yet (`mithril targets` lists what each target supports)", n.name,
             n.op->name, p.target == "cpu" ? "CPU" : p.target == "cuda" ? "CUDA" : p.target, n.op->name);
      std::string code;
      EmitContext e(p, n, code);
      rec->emit(e);
      s += code + "  }\n";
    }
    return s;
  }

  std::string forward_fn() {
    std::string args;
    for (int id : g.inputs) args += fmt::format("const {}* {}, ", EmitContext::ctype(g.value(id).dtype), p.ident[id]);
    std::string s = fmt::format("void {}::forward({}const Dims& d) {{\n{}", cls, args, dim_locals(p, "d"));
    for (int id : g.inputs) s += fmt::format("  (void){};\n", p.ident[id]);
    if (backward()) {
      for (size_t i = 0; i < g.inputs.size(); ++i) s += fmt::format("  saved_inputs_[{}] = {};\n", i, p.ident[g.inputs[i]]);
      s += "  saved_dims_ = d;\n";
    }
    s += body(0, forward_end(), false);
    return s + "}\n\n";
  }

  std::string gradient_fns() {
    std::string s = fmt::format("const std::vector<{0}::Port>& {0}::gradients() {{\n  static const std::vector<Port> ports = {{\n", cls);
    for (size_t i = 0; i < g.grads.size(); ++i)
      s += fmt::format("      {{{}, {}}},\n", cpp_string(g.value(g.grad_of[i]).name), rt_dtype(g.value(g.grads[i]).dtype));
    s += "  };\n  return ports;\n}\n\n";
    s += fmt::format("const void* {}::gradient(size_t i) const {{\n", cls);
    int64_t grad_total = 0;
    std::vector<int64_t> grad_at = staging(g.grads, grad_total);
    for (size_t i = 0; i < g.grads.size(); ++i)
      if (device)  // run_backward() copied them back
        s += fmt::format("  if (i == {}) return host_grads_.data() + {};\n", i, grad_at[i]);
      else
        s += fmt::format("  if (i == {}) return const_cast<rt::Arena&>(arena_).data() + {};\n", i, p.offset[g.grads[i]]);
    s += "  throw rt::Error(\"no gradient \" + std::to_string(i));\n}\n\n";
    s += fmt::format("std::vector<int64_t> {}::gradient_shape(size_t i, const Dims& d) const {{\n{}", cls, dim_locals(p, "d"));
    for (size_t i = 0; i < g.grads.size(); ++i)
      s += fmt::format("  if (i == {}) return {};\n", i, shape_vector(g.value(g.grads[i]).shape));
    s += "  throw rt::Error(\"no gradient \" + std::to_string(i));\n}\n\n";
    if (!backward()) {
      s += fmt::format("void {}::run_backward(const std::vector<rt::Tensor>&) {{\n  throw rt::Error(\"this program was compiled without "
                       "gradients (compile with --grad)\");\n}}\n", cls);
      return s;
    }
    std::string seeds, seed_names;
    for (int id : g.output_grads)
      if (id >= 0) {
        seeds += fmt::format("const {}* {}, ", EmitContext::ctype(g.value(id).dtype), p.ident[id]);
        seed_names += p.ident[id] + ", ";
      }
    s += fmt::format("void {}::backward({}const Dims& d) {{\n{}", cls, seeds, dim_locals(p, "d"));
    for (int id : g.output_grads)
      if (id >= 0) s += fmt::format("  (void){};\n", p.ident[id]);
    s += body(g.forward_nodes, static_cast<int>(g.nodes.size()), true) + "}\n\n";
    std::string args, arg_names;
    for (int id : g.inputs) {
      args += fmt::format("const {}* {}, ", EmitContext::ctype(g.value(id).dtype), p.ident[id]);
      arg_names += p.ident[id] + ", ";
    }
    s += fmt::format("void {0}::forward_backward({1}{2}const Dims& d) {{\n  forward({3}d);\n  backward({4}d);\n}}\n\n", cls, args, seeds,
                     arg_names, seed_names);
    if (optimizer()) {
      int seed = g.output_grads.at(0);
      if (seed < 0 || g.output_names.at(0) != "loss") throw std::logic_error("a training program's first output is its loss");
      const char* T = EmitContext::ctype(g.value(seed).dtype);
      std::vector<std::string> cast;
      for (size_t i = 0; i < g.inputs.size(); ++i)
        cast.push_back(fmt::format("static_cast<const {}*>(in[{}].raw_data())", EmitContext::ctype(g.value(g.inputs[i]).dtype), i));
      if (device) {
        // The seed dL/dloss = 1 and the inputs go to the device; the loss comes back (one value per step).
        s += fmt::format(
            "double {0}::train_step({1}const Dims& d) {{\n  static const {2} one = 1;\n  hyper_.step += 1;\n  forward({3}d);\n"
            "  device_.to_device(device_seeds_.data(), &one, sizeof one);\n"
            "  backward(reinterpret_cast<const {2}*>(device_seeds_.data()), d);\n"
            "  {2} loss = 0;\n  device_.to_host(&loss, arena_.data() + {4}, sizeof loss);\n  device_.check_status();\n"
            "  device_.flush_profile();\n"
            "  return static_cast<double>(loss);\n}}\n\n",
            cls, args, T, arg_names, p.offset[g.outputs[0]]);
        int64_t total = 0;
        std::vector<int64_t> in_at = staging(g.inputs, total);
        std::string copies;
        std::vector<std::string> dev_args;
        for (size_t i = 0; i < g.inputs.size(); ++i) {
          copies += fmt::format("  device_.to_device(device_inputs_.data() + {}, in[{}].raw_data(), in[{}].nbytes());\n", in_at[i], i, i);
          dev_args.push_back(fmt::format("reinterpret_cast<const {}*>(device_inputs_.data() + {})",
                                         EmitContext::ctype(g.value(g.inputs[i]).dtype), in_at[i]));
        }
        s += fmt::format("double {0}::run_train_step(const std::vector<rt::Tensor>& in, const Dims& d) {{\n{1}  return train_step({2}{3}d);\n}}\n\n",
                         cls, copies, fmt::join(dev_args, ", "), dev_args.empty() ? "" : ", ");
      } else {
        s += fmt::format(
            "double {0}::train_step({1}const Dims& d) {{\n  static const {2} one = 1;\n  hyper_.step += 1;\n  forward({3}d);\n"
            "  backward(&one, d);\n  return static_cast<double>(static_cast<const {2}*>(output(0))[0]);\n}}\n\n",
            cls, args, T, arg_names);
        s += fmt::format("double {0}::run_train_step(const std::vector<rt::Tensor>& in, const Dims& d) {{\n  return train_step({1}{2}d);\n}}\n\n",
                         cls, fmt::join(cast, ", "), cast.empty() ? "" : ", ");
      }
    }
    // Tensors: one per output, checked against the output's shape.
    // A device target copies them to the device first, and the gradients back after.
    std::vector<std::string> call;
    std::string checks;
    int64_t seed_total = 0;
    std::vector<int64_t> seed_at = staging(seed_ids(), seed_total);
    size_t seed_k = 0;
    for (size_t i = 0; i < g.output_grads.size(); ++i) {
      int id = g.output_grads[i];
      if (id < 0) continue;
      const char* T = EmitContext::ctype(g.value(id).dtype);
      checks += fmt::format(
          "  if (g[{0}].dtype() != {1} || g[{0}].shape() != output_shape({0}, saved_dims_))\n"
          "    throw rt::Error(std::string(\"gradient of output '\") + {2} + \"': expected \" + rt::type_str({1}, output_shape({0}, saved_dims_)) + \", got \" + g[{0}].type_str());\n",
          i, rt_dtype(g.value(id).dtype), cpp_string(g.output_names[i]));
      if (device) {
        checks += fmt::format("  device_.to_device(device_seeds_.data() + {0}, g[{1}].raw_data(), g[{1}].nbytes());\n", seed_at[seed_k], i);
        call.push_back(fmt::format("reinterpret_cast<const {}*>(device_seeds_.data() + {})", T, seed_at[seed_k]));
      } else {
        call.push_back(fmt::format("static_cast<const {}*>(g[{}].raw_data())", T, i));
      }
      ++seed_k;
    }
    std::string copy_back;
    if (device) {
      copy_back = "  const std::byte* const arena = arena_.data();\n  (void)arena;\n";
      for (size_t i = 0; i < g.grads.size(); ++i)
        copy_back += fmt::format("  {{\n    int64_t n = 1;\n    for (int64_t k : gradient_shape({}, saved_dims_)) n *= k;\n"
                                 "    device_.to_host(host_grads_.data() + {}, arena + {}, static_cast<size_t>(n) * sizeof({}));\n  }}\n",
                                 i, grad_at[i], p.offset[g.grads[i]], EmitContext::ctype(g.value(g.grads[i]).dtype));
      copy_back += "  device_.check_status();\n  device_.flush_profile();\n";
    }
    s += fmt::format("void {}::run_backward(const std::vector<rt::Tensor>& g) {{\n"
                     "  if (g.size() != {}) throw rt::Error(\"expected {} output gradients, got \" + std::to_string(g.size()));\n{}"
                     "  backward({}{}saved_dims_);\n{}}}\n",
                     cls, g.outputs.size(), g.outputs.size(), checks, fmt::join(call, ", "), call.empty() ? "" : ", ", copy_back);
    return s;
  }

  // Device targets: the constructor, the weights' upload, and byte offsets of the inputs and outputs in
  // their staging blocks (each at its size at the dims' upper bounds, 256-byte aligned).
  std::vector<int64_t> staging(const std::vector<int>& ids, int64_t& total) const {
    std::vector<int64_t> at;
    total = 0;
    for (int id : ids) {
      at.push_back(total);
      total += (p.bytes[id] + 255) / 256 * 256;
    }
    return at;
  }
  std::vector<int> seed_ids() const {
    std::vector<int> ids;
    for (int id : g.output_grads)
      if (id >= 0) ids.push_back(id);
    return ids;
  }
  std::string device_members() {
    int64_t in_bytes = 0, out_bytes = 0, seed_bytes = 0, grad_bytes = 0;
    staging(g.inputs, in_bytes);
    staging(g.outputs, out_bytes);
    std::string grads;
    if (backward()) {
      staging(seed_ids(), seed_bytes);
      staging(g.grads, grad_bytes);
      grads = fmt::format(",\n      device_seeds_({}, rt::cuda::device_allocator()),\n      host_grads_({})", std::max<int64_t>(seed_bytes, 64),
                          std::max<int64_t>(grad_bytes, 64));
    }
    std::string s = fmt::format(
        "{0}::{0}()\n    : arena_(std::max<int64_t>(kArenaBytes, 64), rt::cuda::device_allocator()),\n"
        "      weights_(std::max<int64_t>(kWeightBytes, 64)),\n"
        "      device_weights_(std::max<int64_t>(kWeightBytes, 64), rt::cuda::device_allocator()),\n"
        "      device_inputs_({1}, rt::cuda::device_allocator()),\n      host_outputs_({2}){3} {{}}\n\n",
        cls, std::max<int64_t>(in_bytes, 64), std::max<int64_t>(out_bytes, 64), grads);
    s += fmt::format("void {}::upload_weights() {{\n  device_.to_device(device_weights_.data(), weights_.data(), kWeightBytes);\n"
                     "  device_weights_generation_ = weights_.generation();\n  device_newer_ = false;\n}}\n\n", cls);
    s += fmt::format("void {}::download_weights() const {{\n  if (!device_newer_) return;\n"
                     "  device_.to_host(const_cast<std::byte*>(weights_.data()), device_weights_.data(), kWeightBytes);\n"
                     "  device_newer_ = false;\n}}\n\n", cls);
    return s;
  }

  std::string run_fn() {
    if (device) return device_run_fn();
    std::string s = fmt::format("const void* {}::output(size_t i) const {{\n", cls);
    for (size_t i = 0; i < g.outputs.size(); ++i)
      s += fmt::format("  if (i == {}) return const_cast<rt::Arena&>(arena_).data() + {};\n", i, p.offset[g.outputs[i]]);
    s += "  throw rt::Error(\"no output \" + std::to_string(i));\n}\n\n";
    std::vector<std::string> args;
    for (size_t i = 0; i < g.inputs.size(); ++i)
      args.push_back(fmt::format("static_cast<const {}*>(in[{}].raw_data())", EmitContext::ctype(g.value(g.inputs[i]).dtype), i));
    s += fmt::format("void {}::run(const std::vector<rt::Tensor>& in, const Dims& d) {{ forward({}{}d); }}\n", cls,
                     fmt::join(args, ", "), args.empty() ? "" : ", ");
    return s;
  }

  // run() on a device: the inputs copied into device_inputs_, forward(), the outputs copied into
  // host_outputs_ (which output() returns), then any bad data a kernel reported (an index out of range).
  std::string device_run_fn() {
    int64_t total = 0;
    std::vector<int64_t> in_at = staging(g.inputs, total), out_at = staging(g.outputs, total);
    std::string s = fmt::format("const void* {}::output(size_t i) const {{\n", cls);
    for (size_t i = 0; i < g.outputs.size(); ++i)
      s += fmt::format("  if (i == {}) return host_outputs_.data() + {};\n", i, out_at[i]);
    s += "  throw rt::Error(\"no output \" + std::to_string(i));\n}\n\n";
    s += fmt::format("void {}::run(const std::vector<rt::Tensor>& in, const Dims& d) {{\n", cls);
    std::vector<std::string> args;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const char* T = EmitContext::ctype(g.value(g.inputs[i]).dtype);
      s += fmt::format("  device_.to_device(device_inputs_.data() + {}, in[{}].raw_data(), in[{}].nbytes());\n", in_at[i], i, i);
      args.push_back(fmt::format("reinterpret_cast<const {}*>(device_inputs_.data() + {})", T, in_at[i]));
    }
    s += fmt::format("  forward({}{}d);\n", fmt::join(args, ", "), args.empty() ? "" : ", ");
    s += "  const std::byte* const arena = arena_.data();\n";
    for (size_t i = 0; i < g.outputs.size(); ++i) {
      const Value& v = g.value(g.outputs[i]);
      s += fmt::format("  {{\n    int64_t n = 1;\n    for (int64_t k : output_shape({}, d)) n *= k;\n", i);
      s += fmt::format("    device_.to_host(host_outputs_.data() + {}, arena + {}, static_cast<size_t>(n) * sizeof({}));\n  }}\n", out_at[i],
                       p.offset[g.outputs[i]], EmitContext::ctype(v.dtype));
    }
    s += "  device_.check_status();\n  device_.flush_profile();\n}\n";
    return s;
  }
};

}  // namespace

std::vector<GeneratedFile> cpu_runtime_files() {
  std::vector<GeneratedFile> files;
  for (size_t i = 0; i < kRuntimeFilesCount; ++i) files.push_back({std::string("runtime/") + kRuntimeFiles[i][0], kRuntimeFiles[i][1]});
  return files;
}

std::string cpu_runtime_hash() {
  static const std::string hash = [] {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over every path and text, each ended by a 0 byte
  for (const auto& f : cpu_runtime_files())
    for (const std::string* t : {&f.path, &f.text}) {
      for (unsigned char c : *t) h = (h ^ c) * 1099511628211ull;
      h = h * 1099511628211ull;
    }
  return fmt::format("{:016x}", h);
  }();
  return hash;
}

namespace {

void add_runtime(std::vector<GeneratedFile>& files) {
  for (auto& f : cpu_runtime_files()) files.push_back(std::move(f));
}

// One inference (or --grad) program: the same skeleton for every target; `device` picks the CUDA
// project's memory, its CMakeLists.txt and its .cu source.
std::vector<GeneratedFile> emit_program_project(const ProgramPlan& plan, const CpuOptions& opts, bool device) {
  Printer pr{plan, plan.graph, class_name(opts.name), device};
  if (opts.embed_weights && opts.weights.empty())
    fail(SourceLoc{"--embed-weights", 0, 0}, "--embed-weights needs the weights: add --weights FILE.safetensors");
  std::string block = opts.weights.empty() ? "" : pr.weight_block(opts.weights);  // checked even when not embedded
  std::map<std::string, std::string> holes = {
      {"NAME", opts.name}, {"CLASS", pr.cls}, {"VERSION", MITHRIL_VERSION}, {"SOURCE", cpp_comment(opts.source)}, {"BLAS", opts.blas},
      {"EXTRA_SOURCES", opts.embed_weights ? " " + opts.name + "_weights.cpp" : ""}, {"RUNTIME_SOURCES", cpu_runtime_hash()},
      {"DEVICE", device ? "model->device_description().c_str()" : "rt::cpu_device().describe().c_str()"}, {"EXTRA_LIBRARIES", ""}};
  std::vector<GeneratedFile> files = {
      {"CMakeLists.txt", fill_template(device ? "cuda/CMakeLists.txt.in" : "cpu/CMakeLists.txt.in", holes)},
      {"main.cpp", fill_template("cpu/main.cpp.in", holes)},
      {opts.name + ".h", pr.header(opts)},
      {opts.name + (device ? ".cu" : ".cpp"), pr.source(opts)},
  };
  if (opts.embed_weights) files.push_back({opts.name + "_weights.cpp", pr.embedded_source(opts, block)});
  add_runtime(files);
  return files;
}

}  // namespace

std::vector<GeneratedFile> emit_cpu_project(const ProgramPlan& plan, const CpuOptions& opts) {
  return emit_program_project(plan, opts, false);
}

std::vector<GeneratedFile> emit_cpu_training_project(const ProgramPlan& train, const ProgramPlan& eval, const CpuOptions& opts,
                                                     const std::string& defaults) {
  Printer ev{eval, eval.graph, class_name(opts.name)};
  Printer tr{train, train.graph, class_name(opts.name) + "Train"};
  CpuOptions topts = opts;
  topts.name = opts.name + "_train";
  topts.embed_weights = false;
  CpuOptions eopts = opts;
  eopts.embed_weights = false;
  if (!opts.weights.empty()) ev.weight_block(opts.weights);  // checked now: every parameter, exact shapes
  std::map<std::string, std::string> holes = {{"NAME", opts.name},       {"CLASS", ev.cls},     {"TRAIN_CLASS", tr.cls},
                                              {"VERSION", MITHRIL_VERSION}, {"SOURCE", cpp_comment(opts.source)}, {"DEFAULTS", defaults},
                                              {"EXTRA_SOURCES", " " + topts.name + ".cpp"}, {"BLAS", opts.blas},
                                              {"RUNTIME_SOURCES", cpu_runtime_hash()}, {"DEVICE", "rt::cpu_device().describe().c_str()"}};
  std::vector<GeneratedFile> files = {
      {"CMakeLists.txt", fill_template("cpu/CMakeLists.txt.in", holes)},
      {"main.cpp", fill_template("cpu/train_main.cpp.in", holes)},
      {opts.name + ".h", ev.header(eopts)},
      {opts.name + ".cpp", ev.source(eopts)},
      {topts.name + ".h", tr.header(topts)},
      {topts.name + ".cpp", tr.source(topts)},
  };
  add_runtime(files);
  return files;
}

std::vector<GeneratedFile> emit_cuda_project(const ProgramPlan& plan, const CpuOptions& opts) {
  return emit_program_project(plan, opts, true);
}

// The CUDA training program: the same two classes and main program as the CPU's, each a .cu source;
// the training loop (the runtime's, on the host) drives the device programs.
std::vector<GeneratedFile> emit_cuda_training_project(const ProgramPlan& train, const ProgramPlan& eval, const CpuOptions& opts,
                                                      const std::string& defaults) {
  Printer ev{eval, eval.graph, class_name(opts.name), true};
  Printer tr{train, train.graph, class_name(opts.name) + "Train", true};
  CpuOptions topts = opts;
  topts.name = opts.name + "_train";
  topts.embed_weights = false;
  CpuOptions eopts = opts;
  eopts.embed_weights = false;
  if (!opts.weights.empty()) ev.weight_block(opts.weights);
  std::map<std::string, std::string> holes = {{"NAME", opts.name},       {"CLASS", ev.cls},     {"TRAIN_CLASS", tr.cls},
                                              {"VERSION", MITHRIL_VERSION}, {"SOURCE", cpp_comment(opts.source)}, {"DEFAULTS", defaults},
                                              {"EXTRA_SOURCES", " " + topts.name + ".cu"}, {"BLAS", opts.blas},
                                              {"EXTRA_LIBRARIES", "${MITHRIL_TRAIN_LIBRARY} "},
                                              {"RUNTIME_SOURCES", cpu_runtime_hash()}, {"DEVICE", "model->device_description().c_str()"}};
  std::vector<GeneratedFile> files = {
      {"CMakeLists.txt", fill_template("cuda/CMakeLists.txt.in", holes)},
      {"main.cpp", fill_template("cpu/train_main.cpp.in", holes)},
      {opts.name + ".h", ev.header(eopts)},
      {opts.name + ".cu", ev.source(eopts)},
      {topts.name + ".h", tr.header(topts)},
      {topts.name + ".cu", tr.source(topts)},
  };
  add_runtime(files);
  return files;
}

// write_project: compiler/driver/project_io.cpp.

}  // namespace mithril
