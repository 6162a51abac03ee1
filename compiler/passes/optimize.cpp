// The optimizing passes (passes/optimize.h): simplify, fold, cse, dce.
//
// Each walks the forward graph once in topological order. A node whose result turns out to be
// another value is bypassed: `alias` sends its readers to that value as they come up, and the
// node is dropped at the end (`remove_nodes`), its output left an orphan (producer -1), as the
// autodiff pass does. A node rewritten into another op (Permute, Reshape, LogSoftmax, Constant,
// Identity) keeps its output value and has its shape rule run again, which must give the same type.
#include "passes/optimize.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>

#include "ir/surgery.h"
#include "ops/fold.h"
#include "ops/registry.h"

namespace mithril {
namespace {

using Ports = std::vector<std::vector<int>>;

const OpDef& op_named(const std::string& name) {
  const OpDef* d = find_op(name);
  if (!d) throw std::logic_error("optimize: unknown op " + name);
  return *d;
}

// Input ports of `op` bound to one value each, the others empty.
Ports bind(const std::string& op, const std::vector<std::pair<std::string, int>>& given) {
  const OpDef& def = op_named(op);
  Ports ports(def.inputs.size());
  for (auto& [port, v] : given) ports.at(static_cast<size_t>(def.input_index(port))) = {v};
  return ports;
}

bool is_model_output(const Graph& g, int v) {
  return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
}

// The node's only output value; -1 when it has several.
int single_output(const Node& n) { return n.outputs.size() == 1 && n.outputs[0].size() == 1 ? n.outputs[0][0] : -1; }

// The one value bound to an input port; -1 when the port is unbound or a list.
int input_of(const Node& n, const std::string& port) {
  int p = n.op->input_index(port);
  return p >= 0 && n.inputs[static_cast<size_t>(p)].size() == 1 ? n.inputs[static_cast<size_t>(p)][0] : -1;
}

bool same_type(const Value& a, const Value& b) { return a.dtype == b.dtype && a.shape == b.shape; }

bool reads_kind(const Graph& g, const Node& n, ValueKind k) {
  for (auto& port : n.inputs)
    for (int v : port)
      if (g.value(v).kind == k) return true;
  return false;
}

// Nodes that update state when they run (BatchNorm's running statistics in training) or
// parameters (optimizer steps): never merged, never dropped.
bool has_side_effects(const Graph& g, const Node& n) {
  for (size_t p = 0; p < n.inputs.size(); ++p)
    if (n.op->inputs[p].kind == PortKind::State && !n.inputs[p].empty()) return true;
  return reads_kind(g, n, ValueKind::State) || n.op->has_trait("optimizer");
}


// Turns node k into `op` with these arguments and inputs; its output values stay. Runs the op's
// shape rule; when it fails or types an output differently, the node is left as it was and the
// answer is false.
bool rewrite(Graph& g, int k, const std::string& op, const json& attrs, Ports inputs) {
  const OpDef& def = op_named(op);
  Node before = g.nodes[static_cast<size_t>(k)];
  if (def.outputs.size() != before.outputs.size() || def.inputs.size() != inputs.size()) return false;
  std::vector<Value> outs;
  for (auto& port : before.outputs)
    for (int v : port) outs.push_back(g.value(v));
  Node& n = g.nodes[static_cast<size_t>(k)];
  bool ok = true;
  try {
    n.op = &def;
    n.attrs = resolve_args(def, attrs, {}, n.loc, n.name);
    n.attr_locs.clear();
    n.inputs = std::move(inputs);
    InferContext ctx(g, k);
    def.infer(ctx);
  } catch (const CompileError&) {
    ok = false;
  }
  size_t i = 0;
  for (auto& port : before.outputs)
    for (int v : port) ok = ok && g.value(v).typed && same_type(g.value(v), outs[i++]);
  if (!ok) {
    g.nodes[static_cast<size_t>(k)] = std::move(before);
    i = 0;
    for (auto& port : g.nodes[static_cast<size_t>(k)].outputs)
      for (int v : port) g.value(v) = outs[i++];
  }
  return ok;
}

// ---- simplify ------------------------------------------------------------------------------

// The number a value holds everywhere: a Constant whose elements are all equal, or a broadcast
// (BroadcastLike, Expand) of one.
std::optional<double> uniform_constant(const Graph& g, int v) {
  while (v >= 0 && g.value(v).producer >= 0) {
    const Node& n = g.nodes[static_cast<size_t>(g.value(v).producer)];
    if (n.op->name == "Constant") {
      auto e = constant_elements(n.attrs.at("value"));
      if (!e || e->empty() || std::any_of(e->begin(), e->end(), [&](double x) { return x != (*e)[0]; }))
        return std::nullopt;
      return (*e)[0];
    }
    if (n.op->name != "BroadcastLike" && n.op->name != "Expand") return std::nullopt;
    v = input_of(n, "input");
  }
  return std::nullopt;
}

// The axis order of a Permute or Transpose node (output axis j is input axis perm[j]).
std::optional<std::vector<int64_t>> permutation(const Graph& g, const Node& n) {
  if (n.op->name != "Permute" && n.op->name != "Transpose") return std::nullopt;
  int x = input_of(n, "input");
  if (x < 0) return std::nullopt;
  const int64_t r = static_cast<int64_t>(g.value(x).shape.size());
  auto norm = [r](int64_t a) { return a < 0 ? a + r : a; };
  std::vector<int64_t> perm(static_cast<size_t>(r));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  if (n.op->name == "Permute") {
    perm = n.attrs.at("dims").get<std::vector<int64_t>>();
    for (auto& a : perm) a = norm(a);
  } else {
    std::swap(perm.at(static_cast<size_t>(norm(n.attrs.at("dim0").get<int64_t>()))),
              perm.at(static_cast<size_t>(norm(n.attrs.at("dim1").get<int64_t>()))));
  }
  return perm;
}

bool is_identity(const std::vector<int64_t>& perm) {
  for (size_t j = 0; j < perm.size(); ++j)
    if (perm[j] != static_cast<int64_t>(j)) return false;
  return true;
}

// Ops that keep the elements in order and only change the shape.
bool is_reshape(const Node& n) {
  const std::string& op = n.op->name;
  return op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze";
}

// Reshape's `shape` argument taking `from` to `to`: known sizes as they are, a symbolic size as 0
// (copy the input's) where the input has it at the same position, else -1 (at most one).
std::optional<std::vector<int64_t>> reshape_spec(const Shape& from, const Shape& to) {
  std::vector<int64_t> spec;
  bool inferred = false;
  for (size_t k = 0; k < to.size(); ++k) {
    auto c = to[k].as_const();
    bool copy = k < from.size() && from[k] == to[k];
    if (c && *c > 0) spec.push_back(*c);
    else if (copy) spec.push_back(0);
    else if (!inferred && !c) spec.push_back(-1), inferred = true;
    else return std::nullopt;
  }
  return spec;
}

class Simplifier {
 public:
  explicit Simplifier(Graph& g) : g_(g), alias_(g.values.size()), keep_(g.nodes.size(), true) {
    std::iota(alias_.begin(), alias_.end(), 0);
  }

  void run() {
    for (size_t k = 0; k < g_.nodes.size(); ++k) {
      for (auto& port : g_.nodes[k].inputs)
        for (int& v : port) v = alias_[static_cast<size_t>(v)];
      if (single_output(g_.nodes[k]) >= 0) visit(static_cast<int>(k));
    }
    remove_nodes(g_, keep_);
  }

 private:
  const Value& val(int v) const { return g_.value(v); }

  // Node k's result is the existing value x (of the same type): its readers read x and the node
  // goes. A model output keeps its name: an intermediate x that is not already an output takes
  // the output's place and name; otherwise the node stays, as Identity(x). So does a node reading
  // a parameter or state: its first reader fixes its place in the weight table.
  void bypass(int k, int x) {
    Node& n = g_.nodes[static_cast<size_t>(k)];
    int y = single_output(n);
    if (!same_type(val(x), val(y))) return;
    const Value& xv = val(x);
    const bool weight = xv.kind == ValueKind::Param || xv.kind == ValueKind::State;
    const bool stays_output = xv.kind != ValueKind::Temp || xv.producer < 0 || is_model_output(g_, x);
    if (weight || (is_model_output(g_, y) && stays_output)) {
      if (n.op->name != "Identity") rewrite(g_, k, "Identity", json::object(), bind("Identity", {{"input", x}}));
      return;
    }
    if (is_model_output(g_, y)) {
      for (int& o : g_.outputs)
        if (o == y) o = x;
      g_.value(x).name = val(y).name;
    }
    alias_[static_cast<size_t>(y)] = x;
    keep_[static_cast<size_t>(k)] = false;
  }

  void visit(int k) {
    const Node& n = g_.nodes[static_cast<size_t>(k)];
    const std::string& op = n.op->name;
    const int y = single_output(n);
    if (op == "Identity") return bypass(k, input_of(n, "input"));

    if (op == "Multiply" || op == "Divide" || op == "Add" || op == "Subtract") {
      const int l = input_of(n, "left"), r = input_of(n, "right");
      const double unit = op == "Multiply" || op == "Divide" ? 1 : 0;  // x*1, x/1, x+0, x-0
      auto is_unit = [&](int v) {
        auto c = uniform_constant(g_, v);
        return c && *c == unit;
      };
      if (is_unit(r) && same_type(val(l), val(y))) return bypass(k, l);
      if ((op == "Multiply" || op == "Add") && is_unit(l) && same_type(val(r), val(y))) return bypass(k, r);
      return;
    }

    if (auto perm = permutation(g_, n)) {  // compose with a Permute/Transpose before it
      int x = input_of(n, "input");
      std::vector<int64_t> dims = *perm;
      bool composed = false;
      if (int p = val(x).producer; p >= 0)
        if (auto inner = permutation(g_, g_.nodes[static_cast<size_t>(p)])) {
          for (size_t j = 0; j < dims.size(); ++j) dims[j] = (*inner)[static_cast<size_t>((*perm)[j])];
          x = input_of(g_.nodes[static_cast<size_t>(p)], "input");
          composed = true;
        }
      if (is_identity(dims)) return bypass(k, x);
      if (composed) rewrite(g_, k, "Permute", {{"dims", dims}}, bind("Permute", {{"input", x}}));
      return;
    }

    if (is_reshape(n)) {  // a reshape to the same shape goes; a reshape of a reshape becomes one Reshape
      int x = input_of(n, "input");
      if (same_type(val(x), val(y))) return bypass(k, x);
      int p = val(x).producer;
      if (p < 0 || !is_reshape(g_.nodes[static_cast<size_t>(p)])) return;
      int z = input_of(g_.nodes[static_cast<size_t>(p)], "input");
      if (same_type(val(z), val(y))) return bypass(k, z);
      if (auto spec = reshape_spec(val(z).shape, val(y).shape))
        rewrite(g_, k, "Reshape", {{"shape", *spec}}, bind("Reshape", {{"input", z}}));
      return;
    }

    if (op == "Log") {  // Log(Softmax(x)) -> LogSoftmax(x): one pass, no log of an underflowed 0
      int p = val(input_of(n, "input")).producer;
      if (p < 0 || g_.nodes[static_cast<size_t>(p)].op->name != "Softmax") return;
      const Node& s = g_.nodes[static_cast<size_t>(p)];
      const int x = input_of(s, "input");
      rewrite(g_, k, "LogSoftmax", {{"axis", s.attrs.at("axis")}}, bind("LogSoftmax", {{"input", x}}));
    }
  }

  Graph& g_;
  std::vector<int> alias_;  // per value: the value its readers read instead
  std::vector<bool> keep_;  // per node
};

// ---- fold ----------------------------------------------------------------------------------

constexpr int64_t kMaxFoldElems = 4096;
constexpr double kMaxFoldInt = 2147483648.0;  // integer constants beyond 2^31 are not folded (exactness in double)

// Elements as a constant of dtype t holds them (floats rounded to float32, integers truncated as
// a C++ cast does, bools 0 or 1); nullopt when one is not finite or does not fit.
std::optional<std::vector<double>> round_to(std::vector<double> x, DType t) {
  for (double& v : x) {
    if (!std::isfinite(v)) return std::nullopt;
    switch (t) {
      case DType::f32:
        v = static_cast<float>(v);
        if (!std::isfinite(v)) return std::nullopt;
        break;
      case DType::f64: break;
      case DType::i32:
      case DType::i64:
        v = std::trunc(v);
        if (v >= kMaxFoldInt || v < -kMaxFoldInt) return std::nullopt;
        break;
      case DType::boolean: v = v != 0 ? 1 : 0; break;
    }
  }
  return x;
}

json element_json(double v, DType t) {
  if (t == DType::boolean) return json(v != 0);
  if (is_int(t)) return json(static_cast<int64_t>(v));
  // float32: the shortest decimal that reads back as the same float (0.1, not 0.100000001490116)
  if (t == DType::f32) return json(std::stod(fmt::format("{}", static_cast<float>(v))));
  return json(v);
}

// Nested lists of the shape's sizes (a number for a scalar), as Constant's `value`.
json nested(const std::vector<double>& x, DType t, const Shape& s, size_t axis, size_t& at) {
  if (axis == s.size()) return element_json(x[at++], t);
  json list = json::array();
  for (int64_t i = 0; i < s[axis].value(); ++i) list.push_back(nested(x, t, s, axis + 1, at));
  return list;
}

}  // namespace

Graph simplify(Graph g) {
  if (g.forward_nodes >= 0) return g;
  Simplifier(g).run();
  return g;
}

Graph fold_constants(Graph g) {
  if (g.forward_nodes >= 0) return g;
  const OpDef* constant = &op_named("Constant");
  std::vector<std::optional<std::vector<double>>> known(g.values.size());
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const Node& n = g.nodes[k];
    const int y = single_output(n);
    if (y < 0 || !shape_is_const(g.value(y).shape)) continue;
    const Value& out = g.value(y);
    if (n.op == constant) {
      auto small = [](double v) { return std::fabs(v) < kMaxFoldInt; };
      if (auto e = constant_elements(n.attrs.at("value")))
        if (!is_int(out.dtype) || std::all_of(e->begin(), e->end(), small))
          known[static_cast<size_t>(y)] = round_to(std::move(*e), out.dtype);
      continue;
    }
    if (!n.op->fold || n.op->has_trait("random") || has_side_effects(g, n)) continue;
    const int64_t count = numel(out.shape).value();
    FoldArgs args(n.inputs.size());
    size_t largest = 0;
    bool any = false;
    for (size_t p = 0; p < n.inputs.size(); ++p)
      for (int v : n.inputs[p]) {
        const auto& data = known[static_cast<size_t>(v)];
        args[p].push_back({&g.value(v), data ? &*data : nullptr});
        if (data) largest = std::max(largest, data->size()), any = true;
      }
    // Only small results, and none much larger than its inputs (a broadcast of a scalar stays a loop).
    const int64_t limit = std::min(kMaxFoldElems, std::max<int64_t>(64, static_cast<int64_t>(largest)));
    if (!any || count < 1 || count > limit) continue;
    auto result = n.op->fold(n, args, out);
    if (!result || static_cast<int64_t>(result->size()) != count) continue;
    auto stored = round_to(std::move(*result), out.dtype);
    if (!stored) continue;
    size_t at = 0;
    json value = nested(*stored, out.dtype, out.shape, 0, at);
    if (rewrite(g, static_cast<int>(k), "Constant", {{"value", value}, {"dtype", dtype_name(out.dtype)}}, {}))
      known[static_cast<size_t>(y)] = std::move(stored);
  }
  return g;
}

Graph cse(Graph g) {
  if (g.forward_nodes >= 0) return g;
  std::vector<int> alias(g.values.size());
  std::iota(alias.begin(), alias.end(), 0);
  std::vector<bool> keep(g.nodes.size(), true);
  std::map<std::string, int> first;  // op, arguments and inputs -> the first node computing them
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    Node& n = g.nodes[k];
    for (auto& port : n.inputs)
      for (int& v : port) v = alias[static_cast<size_t>(v)];
    if (n.op->has_trait("random") || has_side_effects(g, n)) continue;
    std::string key = n.op->name + "\n" + n.attrs.dump() + "\n";
    if (n.op->has_trait("commutative")) {
      std::vector<int> all;
      for (auto& port : n.inputs) all.insert(all.end(), port.begin(), port.end());
      std::sort(all.begin(), all.end());
      key += fmt::format("{}", fmt::join(all, ","));
    } else {
      for (auto& port : n.inputs) key += fmt::format("{};", fmt::join(port, ","));
    }
    auto [it, fresh] = first.emplace(key, static_cast<int>(k));
    if (fresh) continue;
    const Node& m = g.nodes[static_cast<size_t>(it->second)];
    bool mergeable = m.outputs.size() == n.outputs.size();
    for (size_t p = 0; mergeable && p < n.outputs.size(); ++p) {
      mergeable = m.outputs[p].size() == n.outputs[p].size();
      for (int v : n.outputs[p]) mergeable = mergeable && !is_model_output(g, v);  // outputs keep their values
    }
    if (!mergeable) continue;
    for (size_t p = 0; p < n.outputs.size(); ++p)
      for (size_t i = 0; i < n.outputs[p].size(); ++i) alias[static_cast<size_t>(n.outputs[p][i])] = m.outputs[p][i];
    keep[k] = false;
  }
  remove_nodes(g, keep);
  return g;
}

Graph dce(Graph g) {
  if (g.forward_nodes >= 0) return g;
  std::vector<bool> live(g.values.size(), false), keep(g.nodes.size(), false);
  for (int v : g.outputs) live[static_cast<size_t>(v)] = true;
  for (size_t k = g.nodes.size(); k-- > 0;) {
    const Node& n = g.nodes[k];
    bool needed = has_side_effects(g, n) || reads_kind(g, n, ValueKind::Param);  // parameters stay in the weight table
    for (auto& port : n.outputs)
      for (int v : port) needed = needed || live[static_cast<size_t>(v)];
    if (!needed) continue;
    keep[k] = true;
    for (auto& port : n.inputs)
      for (int v : port) live[static_cast<size_t>(v)] = true;
  }
  remove_nodes(g, keep);
  return g;
}

}  // namespace mithril
