#include "frontend/model.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <regex>
#include <set>

#include "frontend/expr.h"
#include "ops/registry.h"
#include "support/limits.h"

namespace mithril {

namespace fs = std::filesystem;

const Binding* LayerDef::binding(const std::string& port) const {
  for (auto& b : bindings)
    if (b.port == port) return &b;
  return nullptr;
}

std::vector<std::string> ModelDef::input_names() const {
  if (!inputs_declared) return {"input"};
  std::vector<std::string> out;
  for (auto& i : inputs) out.push_back(i.name);
  return out;
}

std::vector<std::string> ModelDef::output_names() const { return outputs.empty() ? std::vector<std::string>{"output"} : outputs; }

const ModelDef* ModelDef::find_model(const std::string& n) const {
  for (auto& [k, m] : models)
    if (k == n) return m.get();
  return nullptr;
}

const ModelDef* Program::find_library_model(const std::string& n) const {
  auto it = library.find(n);
  return it == library.end() ? nullptr : it->second.get();
}

// ---- parsing ---------------------------------------------------------------

namespace {

const std::vector<std::string> kModelKeys = {"name", "args", "inputs", "outputs", "params", "models",
                                             "layers", "import", "train", "doc"};

std::string expect_string(const Doc& d, const std::string& what) {
  if (!d.is_string()) fail(d.loc, "{} must be a string, found {}", what, d.describe());
  return d.scalar.get<std::string>();
}

// Names (of models, layers, terminals, parameters, arguments) are printable text (UTF-8, as every
// string of a model file: load_document checks): no line breaks or other control characters,
// which have no place in a name and could break a terminal. Everything is escaped where code is
// generated.
const std::string& check_name(const std::string& name, const SourceLoc& loc, const std::string& what) {
  if (name.size() > 1000) fail(loc, "{} is {} bytes long; names have at most 1000", what, name.size());
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) fail(loc, "{} '{}' contains a control character (\\x{:02x}); names are printable text", what, excerpt(name), c);
  return name;
}

std::string expect_name(const Doc& d, const std::string& what) { return check_name(expect_string(d, what), d.loc, what); }

// `init:` of a declared parameter: {kind: normal, std: 0.02}, {kind: ones}, ... (the runtime's initializers).
json init_spec(const Doc& d, const std::string& where) {
  static const std::vector<std::string> kinds = {"normal", "ones", "zeros", "kaiming_uniform", "uniform_fan_in"};
  if (!d.is_map()) fail(d.loc, "'init' of {} must be a mapping like {{kind: normal, std: 0.02}}, found {}", where, d.describe());
  json out = json::object();
  for (auto& e : d.entries) {
    if (e.key == "kind") {
      std::string k = expect_string(e.value, "'kind'");
      if (std::find(kinds.begin(), kinds.end(), k) == kinds.end())
        fail(e.value.loc, "unknown initializer '{}' for {}{}; expected one of {}", excerpt(k), where, did_you_mean(k, kinds), fmt::join(kinds, ", "));
      out["kind"] = k;
    } else if (e.key == "std" || e.key == "fan_in") {
      if (!e.value.is_scalar() || !e.value.scalar.is_number() || e.value.scalar.is_boolean())
        fail(e.value.loc, "'{}' of the initializer of {} must be a number, found {}", e.key, where, e.value.describe());
      out[e.key] = e.value.scalar.get<double>();
    } else {
      fail(e.key_loc, "unknown key '{}' in the initializer of {}; expected kind, std, fan_in", excerpt(e.key), where);
    }
  }
  return out;
}

json shape_of(const Doc& d, const std::string& what) {
  if (!d.is_seq()) fail(d.loc, "the shape of {} must be a list of sizes, e.g. [N, 784], found {}", what, d.describe());
  json out = json::array();
  for (auto& item : d.items) {
    bool ok = item.is_scalar() && (item.scalar.is_number_integer() || item.scalar.is_string());
    if (!ok) fail(item.loc, "a size in the shape of {} must be an integer or a symbol name like N, found {}", what, item.describe());
    if (item.scalar.is_number_integer() && item.scalar.get<int64_t>() < 0)
      fail(item.loc, "a size in the shape of {} must not be negative, found {}", what, item.scalar.dump());
    out.push_back(item.scalar);
  }
  return out;
}

TensorDecl tensor_decl(const std::string& name, const SourceLoc& key_loc, const Doc& spec, const std::string& what,
                       bool is_param) {
  TensorDecl t;
  t.name = check_name(name, key_loc, what + " name");
  t.loc = key_loc;
  if (spec.kind == Doc::Kind::Null) return t;
  if (!spec.is_map()) fail(spec.loc, "{} '{}' must be a mapping like {{shape: [N, 784]}}, found {}", what, name, spec.describe());
  for (auto& e : spec.entries) {
    if (e.key == "shape") {
      t.shape = shape_of(e.value, fmt::format("{} '{}'", what, name));
    } else if (e.key == "dtype") {
      t.dtype = expect_string(e.value, "dtype");
      auto parsed = parse_dtype(t.dtype);
      if (!parsed)
        fail(e.value.loc, "unknown dtype '{}' for {} '{}'; expected one of {}", t.dtype, what, name, fmt::join(dtype_names(), ", "));
      t.dtype = dtype_name(*parsed);  // canonical spelling: float32, not f32
    } else if (e.key == "init" && is_param) {
      t.init = init_spec(e.value, fmt::format("{} '{}'", what, name));
    } else {
      std::vector<std::string> keys = {"shape", "dtype"};
      if (is_param) keys.push_back("init");
      fail(e.key_loc, "unknown key '{}' in {} '{}'{}; expected {}", e.key, what, name, did_you_mean(e.key, keys), fmt::join(keys, ", "));
    }
  }
  return t;
}

void parse_binding(LayerDef& l, const Doc::Entry& e) {
  Binding b;
  b.port = e.key;
  b.loc = e.value.loc;
  if (e.value.is_string()) {
    b.names.push_back(e.value.scalar.get<std::string>());
  } else if (e.value.is_seq()) {
    b.is_list = true;
    for (auto& item : e.value.items) b.names.push_back(expect_name(item, fmt::format("a connection name for port '{}'", e.key)));
  } else {
    fail(e.value.loc, "port '{}' must be bound to a connection name (or a list of names), found {}", e.key, e.value.describe());
  }
  for (auto& n : b.names)
    if (n.empty()) fail(e.value.loc, "port '{}' is bound to an empty name", e.key);
  l.bindings.push_back(std::move(b));
}

void parse_args_map(const Doc& d, json& args, std::map<std::string, SourceLoc>& locs, const std::string& what,
                    std::map<std::string, SourceLoc>* key_locs = nullptr) {
  if (d.kind == Doc::Kind::Null) return;
  if (!d.is_map()) fail(d.loc, "the arguments of {} must be a mapping like {{dimension: 512}}, found {}", what, d.describe());
  for (auto& e : d.entries) {
    args[e.key] = e.value.to_json();
    locs[e.key] = e.value.loc;
    if (key_locs) (*key_locs)[e.key] = e.key_loc;
  }
}

LayerDef parse_layer(const Doc& d) {
  LayerDef l;
  l.loc = d.loc;
  if (d.is_string()) {  // `- Relu`
    l.op = d.scalar.get<std::string>();
    l.op_loc = d.loc;
    return l;
  }
  if (!d.is_map())
    fail(d.loc, "a layer must be an op name (Relu), {{Op: {{args}}}} or a mapping with 'op', found {}", d.describe());
  if (!d.get("op")) {
    if (d.entries.size() != 1)
      fail(d.loc, "a layer written as a mapping needs an 'op' key (or exactly one key, the op name, as in {{Linear: {{dimension: 10}}}})");
    auto& e = d.entries[0];  // `- Linear: {dimension: 512}`
    l.op = e.key;
    l.op_loc = e.key_loc;
    parse_args_map(e.value, l.args, l.arg_locs, "layer " + e.key, &l.arg_key_locs);
    return l;
  }
  for (auto& e : d.entries) {
    if (e.key == "op") {
      l.op = expect_string(e.value, "'op'");
      l.op_loc = e.value.loc;
    } else if (e.key == "args") {
      parse_args_map(e.value, l.args, l.arg_locs, "this layer", &l.arg_key_locs);
    } else if (e.key == "name") {
      l.name = expect_name(e.value, "layer name");
      if (l.name.empty() || l.name.find('.') != std::string::npos)
        fail(e.value.loc, "layer name '{}' must be non-empty and must not contain '.'", l.name);
    } else if (e.key == "repeat") {
      l.repeat = e.value.to_json();
      if (!(l.repeat.is_number_integer() || is_expression(l.repeat)))
        fail(e.value.loc, "'repeat' must be an integer or a $ expression, found {}", e.value.describe());
    } else if (e.key == "if") {
      l.when = e.value.to_json();
      if (!(l.when.is_boolean() || is_expression(l.when)))
        fail(e.value.loc, "'if' must be true, false or a $ expression such as $downsample, found {}", e.value.describe());
    } else {
      parse_binding(l, e);
    }
  }
  return l;
}

}  // namespace

ModelDef parse_model(const Doc& node, const std::string& default_name) {
  ModelDef m;
  m.file = node.loc.file;
  m.loc = node.loc;
  m.name = default_name;
  if (!node.is_map()) fail(node.loc, "a model must be a mapping with 'layers', found {}", node.describe());
  for (auto& e : node.entries) {
    const Doc& v = e.value;
    if (e.key == "name") {
      m.name = expect_name(v, "model name");
    } else if (e.key == "args") {
      if (v.is_seq()) {
        for (auto& item : v.items) {
          std::string n = expect_name(item, "an argument name");
          m.args[n] = nullptr;
          m.arg_locs[n] = item.loc;
        }
      } else {
        parse_args_map(v, m.args, m.arg_locs, "model " + m.name);
      }
    } else if (e.key == "inputs") {
      m.inputs_declared = true;
      if (v.is_seq()) {
        for (auto& item : v.items) m.inputs.push_back(tensor_decl(expect_name(item, "an input name"), item.loc, Doc{}, "input", false));
      } else if (v.is_map()) {
        for (auto& in : v.entries) m.inputs.push_back(tensor_decl(in.key, in.key_loc, in.value, "input", false));
      } else {
        fail(v.loc, "'inputs' must be a mapping like {{input: {{shape: [N, 784]}}}} or a list of names, found {}", v.describe());
      }
      if (m.inputs.empty()) fail(v.loc, "'inputs' is empty");
    } else if (e.key == "outputs") {
      m.outputs_loc = v.loc;
      if (v.is_string()) {
        m.outputs.push_back(v.scalar.get<std::string>());
      } else if (v.is_seq()) {
        for (auto& item : v.items) m.outputs.push_back(expect_name(item, "an output name"));
      } else {
        fail(v.loc, "'outputs' must be a list of terminal names, found {}", v.describe());
      }
      if (m.outputs.empty()) fail(v.loc, "'outputs' is empty");
    } else if (e.key == "params") {
      if (!v.is_map()) fail(v.loc, "'params' must be a mapping of parameter names to {{shape, dtype, init}}, found {}", v.describe());
      for (auto& p : v.entries) m.params.push_back(tensor_decl(p.key, p.key_loc, p.value, "parameter", true));
    } else if (e.key == "models") {
      if (!v.is_map()) fail(v.loc, "'models' must be a mapping of model names to definitions, found {}", v.describe());
      for (auto& sub : v.entries) {
        check_name(sub.key, sub.key_loc, "model name");
        if (find_op(sub.key)) fail(sub.key_loc, "model '{}' has the name of a primitive op; choose another name", sub.key);
        if (m.find_model(sub.key)) fail(sub.key_loc, "model '{}' is defined twice", sub.key);
        auto def = std::make_shared<ModelDef>(parse_model(sub.value, sub.key));
        def->loc = sub.key_loc;
        m.models.emplace_back(sub.key, std::move(def));
      }
    } else if (e.key == "layers") {
      if (!v.is_seq()) fail(v.loc, "'layers' must be a list, found {}", v.describe());
      for (auto& item : v.items) m.layers.push_back(parse_layer(item));
    } else if (e.key == "import") {
      auto add = [&](const Doc& item) {
        m.imports.push_back(expect_string(item, "an import path"));
        m.import_locs.push_back(item.loc);
      };
      if (v.is_seq()) for (auto& item : v.items) add(item);
      else add(v);
    } else if (e.key == "train" || e.key == "doc") {
      m.extra[e.key] = v.to_json();
      if (e.key == "train") m.train_doc = std::make_shared<Doc>(v);
    } else {
      fail(e.key_loc, "unknown key '{}' in model '{}'{}; expected one of {}", e.key, m.name, did_you_mean(e.key, kModelKeys),
           fmt::join(kModelKeys, ", "));
    }
  }
  return m;
}

// ---- serialization ---------------------------------------------------------

static json layer_to_json(const LayerDef& l) {
  bool plain = l.name.empty() && l.bindings.empty() && l.repeat == json(1) && l.when == json(true);
  if (plain && l.args.empty()) return l.op;
  if (plain) return json{{l.op, l.args}};
  json o = json::object();
  o["op"] = l.op;
  if (!l.name.empty()) o["name"] = l.name;
  if (!l.args.empty()) o["args"] = l.args;
  if (l.repeat != json(1)) o["repeat"] = l.repeat;
  if (l.when != json(true)) o["if"] = l.when;
  for (auto& b : l.bindings) o[b.port] = b.is_list ? json(b.names) : json(b.names[0]);
  return o;
}

static json tensor_to_json(const TensorDecl& t) {
  json o = json::object();
  if (!t.shape.is_null()) o["shape"] = t.shape;
  if (t.dtype != "float32") o["dtype"] = t.dtype;
  if (!t.init.is_null()) o["init"] = t.init;
  return o;
}

json model_to_json(const ModelDef& m) {
  json o = json::object();
  o["name"] = m.name;
  if (!m.imports.empty()) o["import"] = m.imports;
  if (!m.args.empty()) o["args"] = m.args;
  if (m.inputs_declared) {
    bool names_only = std::all_of(m.inputs.begin(), m.inputs.end(), [](auto& t) { return t.shape.is_null() && t.dtype == "float32"; });
    if (names_only) {
      json l = json::array();
      for (auto& t : m.inputs) l.push_back(t.name);
      o["inputs"] = l;
    } else {
      json in = json::object();
      for (auto& t : m.inputs) in[t.name] = tensor_to_json(t);
      o["inputs"] = in;
    }
  }
  if (!m.outputs.empty()) o["outputs"] = m.outputs;
  if (!m.params.empty()) {
    json p = json::object();
    for (auto& t : m.params) p[t.name] = tensor_to_json(t);
    o["params"] = p;
  }
  if (!m.models.empty()) {
    json ms = json::object();
    for (auto& [k, sub] : m.models) {
      json s = model_to_json(*sub);
      s.erase("name");
      ms[k] = s;
    }
    o["models"] = ms;
  }
  json layers = json::array();
  for (auto& l : m.layers) layers.push_back(layer_to_json(l));
  o["layers"] = layers;
  for (auto& [k, v] : m.extra.items()) o[k] = v;
  return o;
}

static void emit_yaml(YAML::Emitter& out, const json& v, bool flow) {
  if (v.is_object()) {
    if (flow) out << YAML::Flow;
    out << YAML::BeginMap;
    for (auto& [k, e] : v.items()) {
      out << YAML::Key << k << YAML::Value;
      bool child_flow = flow || k == "shape" || k == "args" || k == "inputs" || k == "outputs";
      emit_yaml(out, e, child_flow);
    }
    out << YAML::EndMap;
  } else if (v.is_array()) {
    bool scalars = std::all_of(v.begin(), v.end(), [](const json& e) { return !e.is_structured(); });
    if (flow || scalars) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (auto& e : v) emit_yaml(out, e, flow || e.is_object());  // layers print one per line
    out << YAML::EndSeq;
  } else if (v.is_string()) {
    // A string that would read back as a number, bool or null ("0", "true") is quoted.
    static const std::regex non_string(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|true|True|TRUE|false|False|FALSE|null|Null|NULL|~|[-+]?\.inf|\.nan|)");
    const std::string& str = v.get<std::string>();
    if (std::regex_match(str, non_string)) out << YAML::DoubleQuoted;
    out << str;
  } else if (v.is_boolean()) {
    out << v.get<bool>();
  } else if (v.is_number_integer()) {
    out << v.get<int64_t>();
  } else if (v.is_number()) {
    out << v.get<double>();
  } else {
    out << YAML::Null;
  }
}

std::string model_to_yaml(const ModelDef& m) {
  YAML::Emitter out;
  emit_yaml(out, model_to_json(m), false);
  return std::string(out.c_str()) + "\n";
}

// Equal models: the same canonical file, regardless of the order of keys within a mapping.
bool operator==(const ModelDef& a, const ModelDef& b) {
  return nlohmann::json::parse(model_to_json(a).dump()) == nlohmann::json::parse(model_to_json(b).dump());
}

// ---- programs: imports and the standard library ---------------------------

extern const char* const kStdlibSources[][2];  // generated from compiler/stdlib/*.yaml: {name, text}
extern const size_t kStdlibSourcesCount;

const std::vector<std::shared_ptr<const ModelDef>>& stdlib_models() {
  static const std::vector<std::shared_ptr<const ModelDef>> models = [] {
    std::vector<std::shared_ptr<const ModelDef>> out;
    for (size_t i = 0; i < kStdlibSourcesCount; ++i) {
      Doc doc = parse_document(kStdlibSources[i][1], std::string("<stdlib>/") + kStdlibSources[i][0], false);
      ModelDef lib = parse_model(doc, kStdlibSources[i][0]);
      for (auto& [n, m] : lib.models) out.push_back(m);
    }
    return out;
  }();
  return models;
}

namespace {

struct Importer {
  Program& prog;
  std::vector<std::string> stack;  // canonical paths being loaded, for cycles
  std::set<std::string> done;

  void add_definitions(const ModelDef& m, bool include_self) {
    auto add = [&](const std::string& n, std::shared_ptr<const ModelDef> def) {
      if (auto it = prog.library.find(n); it != prog.library.end() && it->second != def)
        fail(def->loc, "model '{}' is defined twice: also at {}", n, it->second->loc.str());
      prog.library[n] = std::move(def);
    };
    for (auto& [n, sub] : m.models) add(n, sub);
    if (include_self && !m.layers.empty()) add(m.name, std::make_shared<ModelDef>(m));
  }

  void import_file(const std::string& path, const SourceLoc& from) {
    std::error_code ec;
    if (!fs::exists(path, ec)) fail(from, "cannot import '{}': no such file", path);
    std::string canon = fs::weakly_canonical(path, ec).string();
    if (std::find(stack.begin(), stack.end(), canon) != stack.end()) {
      std::string chain;
      for (auto& s : stack) chain += fs::path(s).filename().string() + " -> ";
      fail(from, "cyclic import: {}{}", chain, fs::path(canon).filename().string());
    }
    if (!done.insert(canon).second) return;
    if (static_cast<int64_t>(done.size()) > limits().imports)
      fail(from, "more than {} imported files (raise the limit with --limit imports=N)", limits().imports);
    stack.push_back(canon);
    ModelDef m = parse_model(load_document(path, from), fs::path(path).stem().string());
    prog.files.push_back(path);
    import_all(m, path);
    add_definitions(m, true);
    stack.pop_back();
  }

  void import_all(const ModelDef& m, const std::string& file) {
    fs::path base = fs::path(file).parent_path();
    for (size_t i = 0; i < m.imports.size(); ++i) import_file((base / m.imports[i]).string(), m.import_locs[i]);
  }
};

}  // namespace

Program load_program(const std::string& path) {
  Program prog;
  Doc doc = load_document(path);
  prog.main = std::make_shared<ModelDef>(parse_model(doc, fs::path(path).stem().string()));
  prog.files.push_back(path);
  Importer imp{prog, {}, {}};
  std::error_code ec;
  imp.stack.push_back(fs::weakly_canonical(path, ec).string());
  imp.done.insert(imp.stack.back());
  imp.import_all(*prog.main, path);
  for (auto& m : stdlib_models()) prog.library.emplace(m->name, m);  // user definitions win
  return prog;
}

Program program_from_model(ModelDef main) {
  Program prog;
  prog.main = std::make_shared<ModelDef>(std::move(main));
  for (auto& m : stdlib_models()) prog.library.emplace(m->name, m);
  return prog;
}

}  // namespace mithril
