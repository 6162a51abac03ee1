#include "driver/train.h"

#include <filesystem>

#include "codegen/project.h"
#include "codegen/target.h"
#include "codegen/plan.h"
#include "frontend/document.h"
#include "ops/registry.h"

namespace mithril {

namespace fs = std::filesystem;

namespace {

enum class Kind { Path, String, Int, Float, Bool };

struct KeyDef {
  const char* key;
  Kind kind;
  const char* field;  // the TrainConfig member the program's default sets
};

// Run-time settings: they become the training program's defaults (flags of the program override them).
const std::vector<KeyDef>& key_defs() {
  static const std::vector<KeyDef> defs = {
      {"data", Kind::Path, "data"},          {"labels", Kind::Path, "labels"},          {"label", Kind::String, "label"},
      {"format", Kind::String, "format"},    {"token_dtype", Kind::String, "token_dtype"}, {"val_split", Kind::Float, "val_split"},
      {"epochs", Kind::Int, "epochs"},       {"batch_size", Kind::Int, "batch_size"},   {"seed", Kind::Int, "seed"},
      {"steps_per_epoch", Kind::Int, "steps_per_epoch"}, {"val_batches", Kind::Int, "val_batches"},
      {"lr", Kind::Float, "hyper.lr"},       {"momentum", Kind::Float, "hyper.momentum"}, {"dampening", Kind::Float, "hyper.dampening"},
      {"nesterov", Kind::Bool, "hyper.nesterov"}, {"weight_decay", Kind::Float, "hyper.weight_decay"},
      {"beta1", Kind::Float, "hyper.beta1"}, {"beta2", Kind::Float, "hyper.beta2"},     {"eps", Kind::Float, "hyper.eps"},
      {"clip_norm", Kind::Float, "hyper.clip_norm"}, {"schedule", Kind::String, "schedule"}, {"warmup", Kind::Int, "warmup"},
      {"step_size", Kind::Int, "step_size"}, {"gamma", Kind::Float, "gamma"},           {"min_lr", Kind::Float, "min_lr"},
      {"keep", Kind::Int, "keep"},           {"top_k", Kind::Int, "top_k"},
  };
  return defs;
}

const KeyDef* find_key(const std::string& k) {
  for (auto& d : key_defs())
    if (k == d.key) return &d;
  return nullptr;
}

// Section keys besides the run-time settings.
const std::vector<std::string> kStructural = {"optimizer", "loss", "regularize", "freeze", "shape"};

json typed_value(const KeyDef& d, const json& v, const SourceLoc& loc) {
  switch (d.kind) {
    case Kind::Path:
    case Kind::String:
      if (v.is_string()) return v;
      if (d.kind == Kind::String && (v.is_number_integer())) return json(std::to_string(v.get<int64_t>()));
      break;
    case Kind::Int:
      if (v.is_number_integer()) return v;
      break;
    case Kind::Float:
      if (v.is_number()) return json(v.get<double>());
      break;
    case Kind::Bool:
      if (v.is_boolean()) return v;
      break;
  }
  const char* want[] = {"a path", "a string", "an integer", "a number", "true or false"};
  fail(loc, "train: '{}' must be {}, found {}", d.key, want[static_cast<int>(d.kind)], v.dump());
}

json parse_flag(const KeyDef& d, const std::string& text, const SourceLoc& loc) {
  switch (d.kind) {
    case Kind::Path:
    case Kind::String: return json(text);
    case Kind::Bool:
      if (text == "true" || text == "1" || text.empty()) return json(true);
      if (text == "false" || text == "0") return json(false);
      break;
    default:
      try {
        size_t used = 0;
        if (d.kind == Kind::Int) {
          long long v = std::stoll(text, &used);
          if (used == text.size()) return json(v);
        } else {
          double v = std::stod(text, &used);
          if (used == text.size()) return json(v);
        }
      } catch (...) {
      }
  }
  fail(loc, "expected {} for {}, got '{}'", d.kind == Kind::Int ? "an integer" : d.kind == Kind::Bool ? "true or false" : "a number",
       loc.file, text);
}

std::vector<std::string> all_keys() {
  std::vector<std::string> keys;
  for (auto& d : key_defs()) keys.push_back(d.key);
  keys.insert(keys.end(), kStructural.begin(), kStructural.end());
  return keys;
}

void set_value(TrainSettings& s, const std::string& key, const Doc& v, const SourceLoc& key_loc, const std::string& base) {
  const KeyDef* d = find_key(key);
  if (!d) {
    auto keys = all_keys();
    fail(key_loc, "unknown key '{}' in train:{}; expected one of {}", key, did_you_mean(key, keys), fmt::join(keys, ", "));
  }
  if (!v.is_scalar()) fail(v.loc, "train: '{}' must be a single value, found {}", key, v.describe());
  json val = typed_value(*d, v.scalar, v.loc);
  // Absolute, as a path given on the command line: the program built from it reads the same
  // file, and its generated text is the same, from whatever folder the model was compiled.
  if (d->kind == Kind::Path) val = fs::absolute(fs::path(base) / val.get<std::string>()).lexically_normal().string();
  s.values[key] = val;
  s.where[key] = v.loc;
}

std::string loss_name_check(const std::string& op, const SourceLoc& loc) {
  const OpDef* def = find_op(op);
  if (!def || !def->has_trait("loss") || def->has_trait("internal")) {
    std::vector<std::string> losses;
    for (auto* o : all_ops())
      if (o->has_trait("loss") && !o->has_trait("internal")) losses.push_back(o->name);
    fail(loc, "unknown loss '{}'{}; the losses: {}", op, did_you_mean(op, losses), fmt::join(losses, ", "));
  }
  return op;
}

LossSpec parse_loss(const Doc& v) {
  LossSpec L;
  L.loc = v.loc;
  if (v.is_string()) {
    L.op = loss_name_check(v.scalar.get<std::string>(), v.loc);
    return L;
  }
  if (!v.is_map()) fail(v.loc, "train: a loss is an op name (CrossEntropy) or a mapping {{op: CrossEntropy, output: logits, weight: 1}}, found {}", v.describe());
  for (auto& e : v.entries) {
    if (e.key == "op") L.op = loss_name_check(e.value.is_string() ? e.value.scalar.get<std::string>() : "", e.value.loc);
    else if (e.key == "output") {
      if (!e.value.is_string()) fail(e.value.loc, "train: a loss's 'output' must be an output name");
      L.output = e.value.scalar.get<std::string>();
    } else if (e.key == "weight") {
      if (!e.value.is_scalar() || !e.value.scalar.is_number()) fail(e.value.loc, "train: a loss's 'weight' must be a number");
      L.weight = e.value.scalar.get<double>();
    } else if (e.key == "args") {
      if (!e.value.is_map()) fail(e.value.loc, "train: a loss's 'args' must be a mapping");
      for (auto& a : e.value.entries) L.args[a.key] = a.value.to_json();
    } else {
      L.args[e.key] = e.value.to_json();  // reduction, label_smoothing, ... directly
    }
  }
  // Check the arguments against the op now, at their location.
  const OpDef* def = find_op(L.op);
  for (auto& [k, val] : L.args.items())
    if (!def->find_arg(k)) {
      std::vector<std::string> names;
      for (auto& a : def->args) names.push_back(a.name);
      fail(v.loc, "train: {} has no argument '{}'{}; its arguments: {}", L.op, k, did_you_mean(k, names), fmt::join(names, ", "));
    }
  return L;
}

void parse_section(TrainSettings& s, const Doc& doc, const std::string& base) {
  if (!doc.is_map()) fail(doc.loc, "'train' must be a mapping of settings (data:, epochs:, ...), found {}", doc.describe());
  for (auto& e : doc.entries) {
    const Doc& v = e.value;
    if (e.key == "optimizer") {
      if (v.is_string()) {
        s.spec.optimizer = v.scalar.get<std::string>();
        s.where["optimizer"] = v.loc;
      } else if (v.is_map()) {
        for (auto& o : v.entries) {
          if (o.key == "kind") {
            if (!o.value.is_string()) fail(o.value.loc, "train: optimizer kind must be sgd, adam or adamw");
            s.spec.optimizer = o.value.scalar.get<std::string>();
            s.where["optimizer"] = o.value.loc;
          } else if (o.key == "betas") {
            if (!o.value.is_seq() || o.value.items.size() != 2) fail(o.value.loc, "train: betas must be a list of two numbers");
            set_value(s, "beta1", o.value.items[0], o.key_loc, base);
            set_value(s, "beta2", o.value.items[1], o.key_loc, base);
          } else {
            set_value(s, o.key, o.value, o.key_loc, base);
          }
        }
      } else {
        fail(v.loc, "train: optimizer must be a name (sgd, adam, adamw) or a mapping {{kind: adamw, lr: 0.001}}, found {}", v.describe());
      }
    } else if (e.key == "schedule") {
      if (v.is_map()) {
        for (auto& o : v.entries) set_value(s, o.key == "kind" ? "schedule" : o.key, o.value, o.key_loc, base);
      } else {
        set_value(s, "schedule", v, e.key_loc, base);
      }
    } else if (e.key == "loss") {
      s.spec.losses.clear();
      if (v.is_seq()) for (auto& item : v.items) s.spec.losses.push_back(parse_loss(item));
      else s.spec.losses.push_back(parse_loss(v));
    } else if (e.key == "regularize") {
      if (!v.is_seq()) fail(v.loc, "train: regularize must be a list like [{{l2: 0.0001, params: ['*.weight']}}]");
      for (auto& item : v.items) {
        if (!item.is_map()) fail(item.loc, "train: a regularizer is a mapping like {{l2: 0.0001, params: ['*.weight']}}");
        RegularizerSpec r;
        r.loc = item.loc;
        for (auto& o : item.entries) {
          if (o.key == "l1" || o.key == "l2") {
            if (!o.value.is_scalar() || !o.value.scalar.is_number()) fail(o.value.loc, "train: the {} coefficient must be a number", o.key);
            r.kind = o.key;
            r.coefficient = o.value.scalar.get<double>();
          } else if (o.key == "params") {
            if (o.value.is_string()) r.params.push_back(o.value.scalar.get<std::string>());
            else if (o.value.is_seq())
              for (auto& p : o.value.items) r.params.push_back(p.is_string() ? p.scalar.get<std::string>() : p.to_json().dump());
            else fail(o.value.loc, "train: params must be a pattern or a list of patterns");
          } else {
            fail(o.key_loc, "unknown key '{}' in a regularizer; expected l1 or l2 (the coefficient) and params", o.key);
          }
        }
        if (r.kind.empty()) fail(item.loc, "train: a regularizer needs l1: or l2: with its coefficient");
        s.spec.regularizers.push_back(r);
      }
    } else if (e.key == "freeze") {
      if (v.is_string()) s.freeze.push_back(v.scalar.get<std::string>());
      else if (v.is_seq())
        for (auto& p : v.items) s.freeze.push_back(p.is_string() ? p.scalar.get<std::string>() : p.to_json().dump());
      else fail(v.loc, "train: freeze must be a pattern or a list of patterns");
    } else if (e.key == "shape") {
      if (v.is_map())
        for (auto& o : v.entries) s.shapes.push_back(o.key + "=" + (o.value.is_scalar() ? o.value.to_json().dump() : "?"));
      else if (v.is_seq())
        for (auto& p : v.items) s.shapes.push_back(p.is_string() ? p.scalar.get<std::string>() : p.to_json().dump());
      else fail(v.loc, "train: shape binds symbolic dims, e.g. {{T: 64}}");
    } else {
      set_value(s, e.key, v, e.key_loc, base);
    }
  }
}

std::string cpp_literal(const json& v) {
  if (v.is_string()) return cpp_string(v.get<std::string>());
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return cpp_number(v.get<double>());
}

std::string shape_literal(const Shape& s) {
  std::vector<std::string> d;
  for (auto& x : s) d.push_back(std::to_string(x.value()));
  return fmt::format("{{{}}}", fmt::join(d, ", "));
}

struct Plans {
  ProgramPlan train, eval;
  std::string name, defaults, fingerprint;
};

Plans plan_training(const std::string& model_path, const CompileOptions& opts, const TrainSettings& st) {
  Plans p;
  CompileOptions base = opts;
  for (auto& sh : st.shapes) parse_shape_binding(sh, base.check.pipeline.shapes);
  base.check.pipeline.train = &st.spec;
  base.check.pipeline.codegen = true;
  // The evaluation pass: forward and loss.
  CheckOptions ec = base.check;
  ec.pipeline.grad = GradOptions{};
  Graph eg = check_model(model_path, ec);
  // The batch dimension: the first input's first dim, left symbolic so the last batch may be partial.
  const Value& in0 = eg.value(eg.inputs.at(0));
  const int64_t batch = st.values.count("batch_size") ? st.values.at("batch_size").get<int64_t>() : 32;
  if (in0.shape.empty() || in0.shape[0].as_const())
    fail(in0.loc, "input '{}' is {}: a training program needs a symbolic batch dimension first, e.g. [N, ...]", in0.name,
         type_str(in0.dtype, in0.shape));
  std::string batch_sym = in0.shape[0].str();
  Shape sample(in0.shape.begin() + 1, in0.shape.end());
  for (auto& d : sample)
    if (!d.as_const())
      fail(in0.loc, "input '{}' is {}: bind '{}' for training (train: shape: {{{}: 64}}, or --shape {}=64)", in0.name,
           type_str(in0.dtype, in0.shape), d.str(), d.str(), d.str());
  std::map<std::string, int64_t> max = opts.max;
  max[batch_sym] = std::max<int64_t>(batch, max.count(batch_sym) ? max[batch_sym] : 0);
  // The target: the input the loss pass added (all targets are fed the same labels).
  int target = -1;
  for (int id : eg.inputs)
    if (eg.value(id).name.rfind("target", 0) == 0 && id != eg.inputs[0]) {
      target = id;
      break;
    }
  if (eg.inputs.size() != 2 && !(target >= 0 && eg.inputs.size() >= 2)) {
    std::vector<std::string> names;
    for (int id : eg.inputs) names.push_back(eg.value(id).name);
    fail(SourceLoc{model_path, 0, 0}, "the training loop feeds one model input and its targets; this model takes {}", fmt::join(names, ", "));
  }
  for (size_t k = 1; k < eg.inputs.size(); ++k)
    if (eg.value(eg.inputs[k]).name.rfind("target", 0) != 0)
      fail(eg.value(eg.inputs[k]).loc, "the training loop feeds one model input; '{}' would get no data", eg.value(eg.inputs[k]).name);
  const Value& tv = eg.value(target);
  Shape tsample(tv.shape.begin() + 1, tv.shape.end());
  for (size_t k = 2; k < eg.inputs.size(); ++k)
    if (eg.value(eg.inputs[k]).shape != tv.shape || eg.value(eg.inputs[k]).dtype != tv.dtype)
      fail(SourceLoc{model_path, 0, 0}, "the losses need different targets ({} and {}); the training loop feeds one label per sample",
           type_str(tv.dtype, tv.shape), type_str(eg.value(eg.inputs[k]).dtype, eg.value(eg.inputs[k]).shape));
  const Value& scores = eg.value(eg.outputs.at(1));
  const int64_t classes = scores.shape.empty() || !scores.shape.back().as_const() ? 0 : scores.shape.back().value();

  // The training step: loss, backward pass, optimizer.
  CheckOptions tc = base.check;
  tc.pipeline.grad = GradOptions{true, {}, st.freeze, {"loss"}};
  TrainSpec spec = st.spec;
  spec.clip = st.values.count("clip_norm") && st.values.at("clip_norm").get<double>() > 0;
  tc.pipeline.train = &spec;
  Graph tg = check_model(model_path, tc);
  p.name = project_name(opts.name.empty() ? eg.name : opts.name);
  p.train = plan_program(std::move(tg), max, true, opts.target);
  p.train.training = true;
  p.eval = plan_program(std::move(eg), max, packs_weights(base.check.pipeline), opts.target);
  p.eval.training = false;
  p.train.source_dir = p.eval.source_dir = fs::absolute(model_path).parent_path().string();  // comments name files relative to it

  // The program's defaults.
  std::string d;
  auto set = [&](const std::string& field, const std::string& value) { d += fmt::format("  cfg.{} = {};\n", field, value); };
  set("model_name", cpp_string(p.name));
  set("optimizer", cpp_string(st.spec.optimizer));
  set("sample_shape", shape_literal(sample));
  set("target_shape", shape_literal(tsample));
  set("class_targets", is_int(tv.dtype) ? "true" : "false");
  set("classes", std::to_string(classes));
  set("batch_size", std::to_string(batch));
  for (auto& k : key_defs())
    if (st.values.count(k.key) && std::string(k.key) != "batch_size") set(k.field, cpp_literal(st.values.at(k.key)));
  p.defaults = d;
  return p;
}

}  // namespace

const std::vector<std::string>& train_keys() {
  static const std::vector<std::string> keys = all_keys();
  return keys;
}

TrainSettings load_train_settings(const std::string& model_path, const std::map<std::string, std::string>& flags) {
  TrainSettings s;
  Program prog = load_program(model_path);
  std::string base = fs::absolute(model_path).parent_path().string();
  if (prog.main->train_doc) parse_section(s, *prog.main->train_doc, base);
  for (auto& [key, text] : flags) {
    SourceLoc loc{"--" + key, 0, 0};
    for (auto& c : loc.file)
      if (c == '_') c = '-';
    if (key == "optimizer") {
      s.spec.optimizer = text;
    } else if (key == "loss") {
      LossSpec L;
      L.op = loss_name_check(text, loc);
      L.loc = loc;
      if (s.spec.losses.size() == 1) L.args = s.spec.losses[0].args, L.output = s.spec.losses[0].output;
      s.spec.losses = {L};
    } else if (const KeyDef* d = find_key(key)) {
      json v = parse_flag(*d, text, loc);
      if (d->kind == Kind::Path) v = fs::absolute(text).lexically_normal().string();
      s.values[key] = v;
      s.where[key] = loc;
    } else {
      throw std::logic_error("unknown train flag " + key);
    }
  }
  if (s.spec.optimizer != "sgd" && s.spec.optimizer != "adam" && s.spec.optimizer != "adamw")
    fail(s.where.count("optimizer") ? s.where["optimizer"] : SourceLoc{"--optimizer", 0, 0},
         "unknown optimizer '{}'; expected sgd, adam or adamw", s.spec.optimizer);
  if (s.values.count("schedule")) {
    std::string k = s.values["schedule"].get<std::string>();
    if (k != "constant" && k != "step" && k != "cosine")
      fail(s.where["schedule"], "unknown schedule '{}'; expected constant, step or cosine", k);
  }
  return s;
}

static std::vector<GeneratedFile> training_files(const std::string& model_path, const CompileOptions& opts, const TrainSettings& st,
                                                 TrainProject& out) {
  const Target& target = find_target(opts.target);
  if (!target.training_project)
    fail(SourceLoc{"--target " + opts.target, 0, 0}, "the {} target does not generate training programs yet (the cpu target does)",
         target.name);
  check_blas_choice(opts.blas);
  Plans p = plan_training(model_path, opts, st);
  CpuOptions co{p.name, fs::path(model_path).filename().string(), opts.weights, false};
  co.blas = opts.blas;
  // The fingerprint: the model's name and its weights' names, dtypes and shapes.
  uint64_t h = stable_hash(p.name);
  for (int id : p.eval.weights) {
    const Value& v = p.eval.graph.value(id);
    h = stable_hash(v.name + ":" + type_str(v.dtype, v.shape) + ";", h);
  }
  out.name = p.name;
  out.fingerprint = fmt::format("{:016x}", h);
  std::string defaults = p.defaults + fmt::format("  cfg.fingerprint = {};\n", cpp_string(out.fingerprint));
  return target.training_project(p.train, p.eval, co, defaults);
}

TrainProject compile_training(const std::string& model_path, const std::string& dir, const CompileOptions& opts,
                              const TrainSettings& settings) {
  TrainProject out;
  write_project(dir, training_files(model_path, opts, settings, out));
  return out;
}

std::string build_training_cached(const std::string& model_path, const CompileOptions& opts, const TrainSettings& settings) {
  TrainProject out;
  auto files = training_files(model_path, opts, settings, out);
  return build_files_cached(model_path, out.name, files, opts);
}

}  // namespace mithril
