#include "passes/training.h"

#include <algorithm>
#include <map>

#include "ir/surgery.h"
#include "ops/grad.h"
#include "passes/autodiff.h"

namespace mithril {

namespace {

bool class_loss(const std::string& op) { return op == "CrossEntropy" || op == "NLL"; }

int add_input(Graph& g, const std::string& name, DType t, Shape s, const SourceLoc& loc) {
  Value v;
  v.name = name;
  v.kind = ValueKind::Input;
  v.dtype = t;
  v.shape = std::move(s);
  v.typed = true;
  v.loc = loc;
  int id = g.add_value(std::move(v));
  g.inputs.push_back(id);
  return id;
}

int scalar(Graph& g, const std::string& name, double value, DType t, const SourceLoc& loc) {
  return add_typed_node(g, "Constant", name, loc, {}, {{"value", value}, {"dtype", dtype_name(t)}}).at(0);
}

}  // namespace

std::string target_name(const TrainSpec& spec, size_t k, const std::string& output) {
  return spec.losses.size() <= 1 ? "target" : fmt::format("target{}_{}", k, output);
}

Graph add_loss(Graph g, const TrainSpec& in) {
  TrainSpec spec = in;
  if (spec.losses.empty()) spec.losses.push_back(LossSpec{});
  for (auto& name : g.output_names)
    if (name == "loss") fail(g.value(g.outputs[0]).loc, "the model already has an output named 'loss'; rename it to train it");
  for (int id : g.inputs)
    if (g.value(id).name == "loss" || g.value(id).name.rfind("target", 0) == 0)
      fail(g.value(id).loc, "the model's input '{}' clashes with the training program's names (loss, target...); rename it",
           g.value(id).name);

  std::vector<int> terms;
  std::vector<double> weights;
  for (size_t k = 0; k < spec.losses.size(); ++k) {
    const LossSpec& L = spec.losses[k];
    SourceLoc loc = L.loc.file.empty() ? g.value(g.outputs.at(0)).loc : L.loc;
    size_t oi = 0;
    if (!L.output.empty()) {
      auto it = std::find(g.output_names.begin(), g.output_names.end(), L.output);
      if (it == g.output_names.end())
        fail(loc, "loss on '{}': the model has no output '{}'{}; its outputs: {}", L.output, L.output,
             did_you_mean(L.output, g.output_names), fmt::join(g.output_names, ", "));
      oi = static_cast<size_t>(it - g.output_names.begin());
    }
    const std::string& out_name = g.output_names.at(oi);
    int out = g.outputs.at(oi);
    const OpDef* op = find_op(L.op);
    if (!op || !op->has_trait("loss")) {
      std::vector<std::string> losses;
      for (auto* o : all_ops())
        if (o->has_trait("loss") && !o->has_trait("internal")) losses.push_back(o->name);
      fail(loc, "unknown loss '{}'{}; the losses: {}", L.op, did_you_mean(L.op, losses), fmt::join(losses, ", "));
    }
    const Value& o = g.value(out);
    if (!is_float(o.dtype)) fail(loc, "loss on output '{}': it is {}, a loss needs float scores", out_name, type_str(o.dtype, o.shape));
    std::string lname = spec.losses.size() == 1 ? "loss" : "loss_" + out_name;
    int scores = out, target = -1;
    std::string tname = target_name(spec, k, out_name);
    if (class_loss(L.op)) {
      if (o.shape.size() < 2)
        fail(loc, "{} on output '{}': expected class scores [N, C] or [N, T, C], found {}", L.op, out_name, type_str(o.dtype, o.shape));
      Shape ts(o.shape.begin(), o.shape.end() - 1);
      target = add_input(g, tname, DType::i64, ts, loc);
      if (o.shape.size() > 2) {  // [N, T, C] -> rows [N*T, C] against [N*T]
        std::vector<int64_t> rows = {-1, o.shape.back().value()};
        if (!o.shape.back().as_const()) fail(loc, "{} on output '{}': the class dimension must be fixed, found {}", L.op, out_name, shape_str(o.shape));
        scores = add_typed_node(g, "Reshape", lname + ".rows", loc, {{"input", {out}}}, {{"shape", rows}}).at(0);
        target = add_typed_node(g, "Reshape", lname + ".targets", loc, {{"input", {target}}}, {{"shape", std::vector<int64_t>{-1}}}).at(0);
      }
    } else {
      target = add_input(g, tname, o.dtype, o.shape, loc);
    }
    json args = L.args.is_null() ? json::object() : L.args;
    if (args.contains("reduction") && args["reduction"] == "none")
      fail(loc, "loss on '{}': training needs a scalar loss: reduction mean or sum, not none", out_name);
    terms.push_back(add_typed_node(g, L.op, lname, loc, {{"input", {scores}}, {"target", {target}}}, args).at(0));
    weights.push_back(L.weight);
  }

  // Weighted sum of the losses, then the regularization terms.
  int total = -1;
  DType t = g.value(terms[0]).dtype;
  SourceLoc loc0 = g.value(terms[0]).loc;
  for (size_t k = 0; k < terms.size(); ++k) {
    int term = terms[k];
    if (weights[k] != 1.0) {
      int w = scalar(g, g.value(term).name + ".weight", weights[k], t, loc0);
      term = add_typed_node(g, "Multiply", g.value(term).name + ".weighted", loc0, {{"left", {term}}, {"right", {w}}}).at(0);
    }
    total = total < 0 ? term : add_typed_node(g, "Add", fmt::format("loss.sum{}", k), loc0, {{"left", {total}}, {"right", {term}}}).at(0);
  }
  std::vector<int> params = g.values_of_kind(ValueKind::Param);
  for (size_t r = 0; r < spec.regularizers.size(); ++r) {
    const RegularizerSpec& R = spec.regularizers[r];
    std::vector<std::string> pats = R.params.empty() ? std::vector<std::string>{"*.weight", "weight"} : R.params;
    std::vector<int> chosen;
    std::vector<std::string> names;
    for (int id : params) {
      names.push_back(g.value(id).name);
      for (auto& p : pats)
        if (freeze_matches(p, g.value(id).name) && is_float(g.value(id).dtype)) {
          chosen.push_back(id);
          break;
        }
    }
    if (chosen.empty())
      fail(R.loc, "{} regularization: the patterns {} match no parameter; the parameters: {}", R.kind, fmt::join(pats, ", "),
           fmt::join(names, ", "));
    for (int id : chosen) {
      std::string base = fmt::format("{}.{}", g.value(id).name, R.kind);
      int x = R.kind == "l1" ? add_typed_node(g, "Abs", base + ".abs", R.loc, {{"input", {id}}}).at(0)
                             : add_typed_node(g, "Multiply", base + ".square", R.loc, {{"left", {id}}, {"right", {id}}}).at(0);
      int s = add_typed_node(g, "Sum", base + ".sum", R.loc, {{"input", {x}}}).at(0);
      if (g.value(s).dtype != t) fail(R.loc, "regularization of '{}': its dtype differs from the loss's", g.value(id).name);
      int c = scalar(g, base + ".coefficient", R.coefficient, t, R.loc);
      int term = add_typed_node(g, "Multiply", base, R.loc, {{"left", {s}}, {"right", {c}}}).at(0);
      total = add_typed_node(g, "Add", base + ".added", R.loc, {{"left", {total}}, {"right", {term}}}).at(0);
    }
  }
  if (g.value(total).name != "loss") {
    total = add_typed_node(g, "Identity", "loss", loc0, {{"input", {total}}}).at(0);
  }
  g.outputs.insert(g.outputs.begin(), total);
  g.output_names.insert(g.output_names.begin(), "loss");
  return g;
}

Graph add_optimizer(Graph g, const TrainSpec& spec) {
  if (g.forward_nodes < 0) throw std::logic_error("the optimizer pass needs the backward pass");
  const std::string& kind = spec.optimizer;
  if (kind != "sgd" && kind != "adam" && kind != "adamw")
    fail(SourceLoc{"--optimizer " + kind, 0, 0}, "unknown optimizer '{}'; expected sgd, adam or adamw", kind);
  int norm = -1;
  std::vector<int> grads;
  for (size_t i = 0; i < g.grads.size(); ++i)
    if (g.value(g.grad_of[i]).kind == ValueKind::Param) grads.push_back(g.grads[i]);
  if (spec.clip && !grads.empty())
    norm = add_typed_node(g, "GradNorm", "grad_norm", SourceLoc{}, {{"input", grads}}).at(0);
  for (size_t i = 0; i < g.grads.size(); ++i) {
    const Value p = g.value(g.grad_of[i]);
    if (p.kind != ValueKind::Param) continue;
    std::vector<std::string> names = kind == "sgd" ? std::vector<std::string>{"momentum_buffer"}
                                                   : std::vector<std::string>{"exp_avg", "exp_avg_sq"};
    std::vector<int> state;
    for (auto& n : names) {
      Value s;
      s.name = p.name + "." + n;
      s.kind = ValueKind::State;
      s.dtype = p.dtype;
      s.shape = p.shape;
      s.typed = true;
      s.init = {{"kind", "zeros"}, {"optimizer", true}};
      s.loc = p.loc;
      state.push_back(g.add_value(std::move(s)));
    }
    std::vector<std::pair<std::string, std::vector<int>>> ins = {{"param", {p.id}}, {"grad", {g.grads[i]}}, {"state", state}};
    if (norm >= 0) ins.push_back({"grad_norm", {norm}});
    add_typed_node(g, "OptimizerStep", p.name + ".update", p.loc, ins, {{"kind", kind}});
  }
  if (norm >= 0) return g;  // clipping needs every gradient first: the updates stay at the end
  // Without clipping, each update runs right after the node that finishes its gradient: the
  // gradient is still in cache, and its buffer is free for the rest of the backward pass.
  const size_t first_update = g.nodes.size() - static_cast<size_t>(std::count_if(g.nodes.begin(), g.nodes.end(), [](const Node& n) {
                                return n.op->has_trait("optimizer");
                              }));
  // An update may run once its gradient is final and no later node reads the parameter (the
  // backward pass reads weights: dx = dy W).
  std::vector<int> last_reader(g.values.size(), -1);
  for (size_t k = 0; k < first_update; ++k)
    for (auto& port : g.nodes[k].inputs)
      for (int v : port) last_reader[v] = static_cast<int>(k);
  std::map<int, std::vector<int>> after;  // node -> the updates that run right after it
  for (size_t k = first_update; k < g.nodes.size(); ++k) {
    const Node& u = g.nodes[k];
    int grad = u.inputs[u.op->input_index("grad")].at(0);
    int param = u.inputs[u.op->input_index("param")].at(0);
    after[std::max(g.value(grad).producer, last_reader[param])].push_back(static_cast<int>(k));
  }
  std::vector<size_t> order;
  order.reserve(g.nodes.size());
  for (size_t k = 0; k < first_update; ++k) {
    order.push_back(k);
    if (auto it = after.find(static_cast<int>(k)); it != after.end())
      for (int u : it->second) order.push_back(static_cast<size_t>(u));
  }
  reorder_nodes(g, order);
  return g;
}

}  // namespace mithril
