#include "ops/registry.h"

#include "support/checked.h"

#include <algorithm>
#include <map>
#include <memory>

namespace mithril {

// ---- registry --------------------------------------------------------------

static std::map<std::string, std::unique_ptr<OpDef>>& table() {
  static std::map<std::string, std::unique_ptr<OpDef>> ops;
  return ops;
}

void register_op(OpDef def) {
  auto name = def.name;
  if (table().count(name)) throw std::logic_error("op registered twice: " + name);
  table()[name] = std::make_unique<OpDef>(std::move(def));
}

const OpDef* find_op(const std::string& name) {
  auto it = table().find(name);
  return it == table().end() ? nullptr : it->second.get();
}

std::vector<const OpDef*> all_ops() {
  std::vector<const OpDef*> out;
  for (auto& [n, d] : table()) out.push_back(d.get());
  std::stable_sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->family < b->family; });
  return out;
}

std::vector<std::string> op_names() {
  std::vector<std::string> out;
  for (auto& [n, d] : table()) out.push_back(n);
  return out;
}

const Shape& input_shape(const Node& n, const Graph& g, const std::string& port) {
  return g.value(n.inputs.at(static_cast<size_t>(n.op->input_index(port))).at(0)).shape;
}

const Shape& output_shape(const Node& n, const Graph& g, size_t i) { return g.value(n.outputs.at(i).at(0)).shape; }

Dim product_flops(const Shape& out, const Dim& depth) { return Dim(2) * numel(out) * depth; }

int OpDef::input_index(const std::string& port) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == port) return static_cast<int>(i);
  return -1;
}

int OpDef::output_index(const std::string& port) const {
  for (size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].name == port) return static_cast<int>(i);
  return -1;
}

const ArgSpec* OpDef::find_arg(const std::string& n) const {
  for (auto& a : args)
    if (a.name == n) return &a;
  return nullptr;
}

int OpDef::chain_input() const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].kind == PortKind::Data) return static_cast<int>(i);
  return -1;
}

const char* arg_type_name(ArgType t) {
  switch (t) {
    case ArgType::Int: return "an integer";
    case ArgType::Float: return "a number";
    case ArgType::Bool: return "true or false";
    case ArgType::String: return "a string";
    case ArgType::IntList: return "a list of integers";
    case ArgType::IntOrList: return "an integer or a list of integers";
    case ArgType::Dtype: return "a dtype name";
    case ArgType::Any: return "a value";
  }
  return "?";
}

// ---- argument checking -----------------------------------------------------

static std::string json_kind(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return fmt::format("boolean {}", v.dump());
  if (v.is_number_integer()) return fmt::format("integer {}", v.dump());
  if (v.is_number()) return fmt::format("number {}", v.dump());
  if (v.is_string()) return fmt::format("string {}", v.dump());
  if (v.is_array()) return fmt::format("list {}", v.dump());
  return fmt::format("mapping {}", v.dump());
}

static bool is_int_value(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
  if (v.is_number_integer()) return true;
  // 3.0 written in a file is an integer value (1e300 is not: it has no int64_t)
  return v.is_number_float() && double_is_int64(v.get<double>());
}

static int64_t int_value(const json& v) { return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>()); }

static bool arg_matches(const ArgSpec& spec, json& v) {
  auto int_list = [&](json& l) {
    if (!l.is_array()) return false;
    for (auto& e : l) {
      if (!is_int_value(e)) return false;
      e = int_value(e);
    }
    return true;
  };
  switch (spec.type) {
    case ArgType::Int:
      if (!is_int_value(v) || v.is_boolean()) return false;
      v = int_value(v);
      return true;
    case ArgType::Float:
      if (!v.is_number() || v.is_boolean()) return false;  // infinities and NaN too: cpp_number prints them
      v = v.get<double>();
      return true;
    case ArgType::Bool: return v.is_boolean();
    case ArgType::String:
      return v.is_string() &&
             (spec.choices.empty() ||
              std::find(spec.choices.begin(), spec.choices.end(), v.get<std::string>()) != spec.choices.end());
    case ArgType::IntList: return int_list(v);
    case ArgType::IntOrList:
      if (v.is_array()) return int_list(v);
      if (!is_int_value(v) || v.is_boolean()) return false;
      v = int_value(v);
      return true;
    case ArgType::Dtype: return v.is_string() && parse_dtype(v.get<std::string>()).has_value();
    case ArgType::Any: return true;
  }
  return false;
}

json resolve_args(const OpDef& op, const json& given, const std::map<std::string, SourceLoc>& locs,
                  const SourceLoc& layer_loc, const std::string& where, const std::map<std::string, SourceLoc>& key_locs) {
  auto loc_of = [&](const std::string& k) {
    auto it = locs.find(k);
    return it == locs.end() ? layer_loc : it->second;
  };
  auto key_loc_of = [&](const std::string& k) {
    auto it = key_locs.find(k);
    return it == key_locs.end() ? loc_of(k) : it->second;
  };
  std::vector<std::string> names;
  for (auto& a : op.args) names.push_back(a.name);
  if (!given.is_null() && !given.is_object())
    fail(layer_loc, "{}: arguments of {} must be a mapping, found {}", where, op.name, json_kind(given));
  if (given.is_object())
    for (auto& [k, v] : given.items())
      if (!op.find_arg(k)) {
        std::string known = names.empty() ? "it takes no arguments" : "known arguments: " + fmt::format("{}", fmt::join(names, ", "));
        fail(key_loc_of(k), "{}: unknown argument '{}' for {}{}; {}", where, k, op.name, did_you_mean(k, names), known);
      }
  json out = json::object();
  for (auto& spec : op.args) {
    if (given.is_object() && given.contains(spec.name)) {
      json v = given[spec.name];
      if (v.is_null() && spec.default_value && spec.default_value->is_null()) {
        out[spec.name] = nullptr;
        continue;
      }
      if (!arg_matches(spec, v)) {
        std::string expected = arg_type_name(spec.type);
        if (!spec.choices.empty()) expected = fmt::format("one of {}", fmt::join(spec.choices, ", "));
        if (spec.type == ArgType::Dtype) expected = fmt::format("one of {}", fmt::join(dtype_names(), ", "));
        fail(loc_of(spec.name), "{}: argument '{}' of {} expects {}, found {}", where, spec.name, op.name, expected,
             json_kind(given[spec.name]));
      }
      out[spec.name] = v;
    } else if (spec.default_value) {
      out[spec.name] = *spec.default_value;
    } else {
      fail(layer_loc, "{}: {} requires argument '{}' ({}){}", where, op.name, spec.name, arg_type_name(spec.type),
           spec.doc.empty() ? "" : ": " + spec.doc);
    }
  }
  return out;
}

// ---- inference context -----------------------------------------------------

std::string type_str(DType t, const Shape& s) { return fmt::format("{}{}", dtype_name(t), shape_str(s)); }

std::string ints_str(const std::vector<int64_t>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }

std::string spatial_axis_name(size_t spatial, size_t i) {
  if (spatial == 1) return "length";
  if (spatial == 2) return i == 0 ? "height" : "width";
  return fmt::format("spatial axis {}", i);
}

InferContext::InferContext(Graph& g, int node_id) : g_(g), node_(node_id) {}

void InferContext::raise(const std::string& msg, const std::string& arg) const {
  const Node& n = node();
  SourceLoc loc = n.loc;
  if (!arg.empty())
    if (auto it = n.attr_locs.find(arg); it != n.attr_locs.end()) loc = it->second;
  throw CompileError(loc, fmt::format("layer '{}' ({}): {}", n.name, n.op->name, msg));
}

const json& InferContext::arg(const std::string& name) const {
  const auto& a = node().attrs;
  if (!a.contains(name)) throw std::logic_error(fmt::format("op {} reads undeclared argument {}", op().name, name));
  return a[name];
}

std::vector<int64_t> InferContext::int_list(const std::string& name) const {
  const json& v = arg(name);
  if (v.is_array()) return v.get<std::vector<int64_t>>();
  return {v.get<int64_t>()};
}

std::vector<int64_t> InferContext::ints(const std::string& name, size_t n) const {
  const json& v = arg(name);
  if (!v.is_array()) return std::vector<int64_t>(n, v.get<int64_t>());
  auto l = v.get<std::vector<int64_t>>();
  if (l.size() != n) fail_arg(name, "argument '{}' needs {} values, found {}", name, n, l.size());
  return l;
}

size_t InferContext::count(const std::string& port) const {
  int p = op().input_index(port);
  if (p < 0) throw std::logic_error(fmt::format("op {} has no input port {}", op().name, port));
  return node().inputs[p].size();
}

const Value& InferContext::in(const std::string& port, size_t i) const {
  int p = op().input_index(port);
  if (p < 0 || i >= node().inputs[p].size())
    throw std::logic_error(fmt::format("op {} reads missing input {}[{}]", op().name, port, i));
  return g_.value(node().inputs[p][i]);
}

size_t InferContext::out_count(const std::string& port) const {
  int p = op().output_index(port);
  if (p < 0) throw std::logic_error(fmt::format("op {} has no output port {}", op().name, port));
  return node().outputs[p].size();
}

void InferContext::out(const std::string& port, DType t, Shape s, size_t i) {
  int p = op().output_index(port);
  if (p < 0 || i >= node().outputs[p].size())
    throw std::logic_error(fmt::format("op {} writes missing output {}[{}]", op().name, port, i));
  for (auto& d : s)
    if (auto c = d.as_const(); c && *c < 0) fail("output '{}' would have negative size {}", port, shape_str(s));
  Value& v = g_.value(node().outputs[p][i]);
  v.dtype = t;
  v.shape = std::move(s);
  v.typed = true;
}

void InferContext::bind_tensor(const std::string& port, DType t, Shape s, json init, ValueKind kind) {
  int p = op().input_index(port);
  if (p < 0) throw std::logic_error(fmt::format("op {} has no parameter port {}", op().name, port));
  Node& n = g_.nodes[node_];
  if (n.inputs[p].empty()) {
    for (auto& d : s)
      if (!d.is_const())
        fail("the shape of '{}' would be {}, which depends on a symbolic dimension; parameters need known sizes "
             "(bind the dimension with --shape)",
             port, shape_str(s));
    Value v;
    v.name = n.name.empty() ? port : n.name + "." + port;
    v.kind = kind;
    v.dtype = t;
    v.shape = std::move(s);
    v.typed = true;
    v.init = std::move(init);
    v.loc = n.loc;
    int id = g_.add_value(std::move(v));
    g_.nodes[node_].inputs[p].push_back(id);
    return;
  }
  Value& v = g_.value(n.inputs[p][0]);
  if (!v.typed) {  // a shared parameter seen for the first time, or declared without a shape
    v.dtype = t;
    v.shape = std::move(s);
    v.typed = true;
    if (v.init.empty()) v.init = std::move(init);
    return;
  }
  if (v.init.is_null() || v.init.empty()) v.init = init;  // a declared parameter without `init:` takes the op's default
  if (v.dtype != t || v.shape != s)
    fail("'{}' is bound to '{}' of type {}, but {} needs {} here", port, v.name, type_str(v.dtype, v.shape),
         op().name, type_str(t, s));
}

void InferContext::param(const std::string& port, DType t, Shape s, json init) {
  bind_tensor(port, t, std::move(s), std::move(init), ValueKind::Param);
}

void InferContext::state(const std::string& port, DType t, Shape s, json init) {
  bind_tensor(port, t, std::move(s), std::move(init), ValueKind::State);
}

void InferContext::no_param(const std::string& port, const std::string& why) {
  if (has(port)) fail("port '{}' is bound to '{}', but {}", port, in(port).name, why);
}

int64_t InferContext::axis(int64_t a, size_t rank, const std::string& argname) const {
  int64_t r = static_cast<int64_t>(rank);
  if (a < -r || a >= r) {
    if (rank == 0) fail_arg(argname, "'{}': axis {} is out of range for a scalar input", argname, a);
    fail_arg(argname, "'{}': axis {} is out of range for rank {} (valid: {}..{})", argname, a, rank, -r, r - 1);
  }
  return a < 0 ? a + r : a;
}

std::vector<int64_t> InferContext::axes(const std::string& argname, size_t rank) const {
  std::vector<int64_t> given = int_list(argname), out;
  for (int64_t a : given) {
    int64_t k = axis(a, rank, argname);
    for (size_t j = 0; j < out.size(); ++j)
      if (out[j] == k) {
        int chain = op().chain_input();
        std::string of = chain >= 0 && has(op().inputs[chain].name)
                             ? " for input " + type_str(in(op().inputs[chain].name).dtype, in(op().inputs[chain].name).shape)
                             : "";
        fail_arg(argname, "'{}' {} names axis {} twice ({} and {}){}", argname, ints_str(given), k, given[j], a, of);
      }
    out.push_back(k);
  }
  return out;
}

void InferContext::expect_float(const std::string& port) const {
  if (!is_float(dtype(port)))
    fail("'{}' must be float32 or float64, found {}", port, type_str(dtype(port), shape(port)));
}

void InferContext::expect_int(const std::string& port) const {
  if (!is_int(dtype(port)))
    fail("'{}' must hold integer indices (int32 or int64), found {}", port, type_str(dtype(port), shape(port)));
}

void InferContext::expect_numeric(const std::string& port) const {
  if (dtype(port) == DType::boolean) fail("'{}' must be numeric, found {}", port, type_str(dtype(port), shape(port)));
}

void InferContext::expect_rank(const std::string& port, size_t r) const {
  if (rank(port) != r)
    fail("'{}' must have rank {}, found rank {}: {}", port, r, rank(port), type_str(dtype(port), shape(port)));
}

void InferContext::expect_rank_between(const std::string& port, size_t lo, size_t hi) const {
  if (rank(port) < lo || rank(port) > hi)
    fail("'{}' must have rank {} to {}, found rank {}: {}", port, lo, hi, rank(port),
         type_str(dtype(port), shape(port)));
}

void InferContext::expect_same_dtype(const std::string& a, const std::string& b) const {
  if (dtype(a) != dtype(b))
    fail("dtype mismatch: '{}' is {} but '{}' is {}", a, type_str(dtype(a), shape(a)), b,
         type_str(dtype(b), shape(b)));
}

Dim InferContext::expect_dim(const Dim& found, const Dim& expected, const std::string& what) const {
  if (found != expected) fail("{}: expected {}, found {}", what, expected.str(), found.str());
  return found;
}

int64_t InferContext::const_dim(const Dim& d, const std::string& what) const {
  auto c = d.as_const();
  if (!c) fail("{} must be a known size, found symbolic {} (bind it with --shape)", what, d.str());
  return *c;
}

std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    Dim da = i < r - a.size() ? Dim(1) : a[i - (r - a.size())];
    Dim db = i < r - b.size() ? Dim(1) : b[i - (r - b.size())];
    if (da == db || db == Dim(1)) out[i] = da;
    else if (da == Dim(1)) out[i] = db;
    else return std::nullopt;
  }
  return out;
}

Shape InferContext::broadcast(const Shape& a, const Shape& b, const std::string& what) const {
  auto s = broadcast_shapes(a, b);
  if (!s) fail("shape mismatch: {} {} and {} cannot be broadcast together", what, shape_str(a), shape_str(b));
  return *s;
}

}  // namespace mithril
