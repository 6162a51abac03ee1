#include "ops/grad.h"

namespace mithril {

GradContext::GradContext(Graph& g, int node_id, GradState& state) : g_(g), node_(node_id), st_(state) {}

bool GradContext::has(const std::string& port) const { return count(port) > 0; }

size_t GradContext::count(const std::string& port) const {
  int p = op().input_index(port);
  if (p < 0) throw std::logic_error(fmt::format("gradient of {} reads unknown input port {}", op().name, port));
  return node().inputs[p].size();
}

int GradContext::in(const std::string& port, size_t i) const {
  int p = op().input_index(port);
  if (p < 0 || i >= node().inputs[p].size())
    throw std::logic_error(fmt::format("gradient of {} reads missing input {}[{}]", op().name, port, i));
  return node().inputs[p][i];
}

int GradContext::out(const std::string& port, size_t i) const {
  int p = op().output_index(port);
  if (p < 0 || i >= node().outputs[p].size())
    throw std::logic_error(fmt::format("gradient of {} reads missing output {}[{}]", op().name, port, i));
  return node().outputs[p][i];
}

int GradContext::dout(const std::string& port, size_t i) const {
  int v = out(port, i);
  return static_cast<size_t>(v) < st_.total.size() ? st_.total[v] : -1;
}

bool GradContext::wants(const std::string& port, size_t i) const {
  if (op().input_index(port) < 0 || i >= count(port)) return false;
  int v = in(port, i);
  return static_cast<size_t>(v) < st_.wants.size() && st_.wants[v];
}

void GradContext::grad(const std::string& port, int value, size_t i) {
  int v = in(port, i);
  if (!wants(port, i)) return;  // nobody asked: drop it (the node may stay dead and is removed below)
  const Value& x = g_.value(v);
  const Value& dx = g_.value(value);
  if (x.shape != dx.shape || x.dtype != dx.dtype)
    throw std::logic_error(fmt::format("gradient rule of {} gives {} a gradient of type {}, expected {}", op().name, port,
                                       type_str(dx.dtype, dx.shape), type_str(x.dtype, x.shape)));
  st_.parts[v].push_back(value);
}

std::string GradContext::fresh_name(const std::string& hint) {
  int k = st_.counter[node_]++;
  std::string base = node().name.empty() ? "t" + std::to_string(node_) : node().name;
  return base + ".grad" + (hint.empty() ? "" : "_" + hint) + (k ? "_" + std::to_string(k) : "");
}

std::vector<int> add_typed_node(Graph& g, const std::string& opname, const std::string& name, const SourceLoc& loc,
                                const std::vector<std::pair<std::string, std::vector<int>>>& inputs, const json& attrs,
                                int outputs_of_variadic) {
  const OpDef* def = find_op(opname);
  if (!def) throw std::logic_error("pass uses unknown op " + opname);
  Node n;
  n.op = def;
  n.name = name;
  n.loc = loc;
  n.attrs = resolve_args(*def, attrs, {}, n.loc, n.name);
  n.inputs.resize(def->inputs.size());
  for (auto& [port, ids] : inputs) {
    int p = def->input_index(port);
    if (p < 0) throw std::logic_error(fmt::format("pass binds unknown port {} of {}", port, opname));
    n.inputs[p] = ids;
  }
  const int nid = static_cast<int>(g.nodes.size());
  n.outputs.resize(def->outputs.size());
  for (size_t p = 0; p < def->outputs.size(); ++p) {
    int cnt = 1;
    if (def->outputs[p].variadic) cnt = outputs_of_variadic >= 0 ? outputs_of_variadic : def->output_count(n.attrs);
    for (int c = 0; c < cnt; ++c) {
      Value v;
      v.name = n.name;
      if (def->outputs.size() > 1) v.name += "." + def->outputs[p].name;
      if (cnt > 1) v.name += "." + std::to_string(c);
      v.kind = ValueKind::Temp;
      v.producer = nid;
      v.loc = n.loc;
      n.outputs[p].push_back(g.add_value(std::move(v)));
    }
  }
  std::vector<int> outs;
  for (auto& port : n.outputs) outs.insert(outs.end(), port.begin(), port.end());
  g.add_node(std::move(n));
  const size_t values_before = g.values.size();
  InferContext ctx(g, nid);
  def->infer(ctx);
  if (g.values.size() != values_before) throw std::logic_error(fmt::format("pass created parameters through {}", opname));
  return outs;
}

std::vector<int> GradContext::add(const std::string& opname, const std::vector<std::pair<std::string, std::vector<int>>>& inputs,
                                  const json& attrs, int outputs_of_variadic) {
  auto outs = add_typed_node(g_, opname, fresh_name(""), node().loc, inputs, attrs, outputs_of_variadic);
  st_.wants.resize(g_.values.size(), false);
  st_.total.resize(g_.values.size(), -1);
  st_.parts.resize(g_.values.size());
  return outs;
}

int GradContext::op1(const std::string& opname, const std::vector<std::pair<std::string, int>>& inputs, const json& attrs) {
  std::vector<std::pair<std::string, std::vector<int>>> ins;
  for (auto& [p, v] : inputs) ins.push_back({p, {v}});
  return add(opname, ins, attrs).at(0);
}

int GradContext::scalar(double v, DType t) { return op1("Constant", {}, {{"value", v}, {"dtype", dtype_name(t)}}); }

int GradContext::reshape_like(int a, int like) {
  if (shape(a) == shape(like)) return a;
  return op1("ReshapeLike", {{"input", a}, {"like", like}});
}

int GradContext::broadcast_like(int a, int like) {
  if (shape(a) == shape(like)) return a;
  return op1("BroadcastLike", {{"input", a}, {"like", like}});
}

int GradContext::sum_like(int a, int like) {
  const Shape& from = shape(a);
  const Shape to = shape(like);
  if (from == to) return a;
  if (to.size() > from.size()) throw std::logic_error("sum_like: target has a higher rank");
  const size_t lead = from.size() - to.size();
  std::vector<int64_t> axes;
  for (size_t k = 0; k < from.size(); ++k)
    if (k < lead || (to[k - lead] == Dim(1) && from[k] != Dim(1))) axes.push_back(static_cast<int64_t>(k));
  if (axes.empty()) return reshape_like(a, like);  // only leading size-1 axes to drop
  // Only leading axes: one Sum gives the shape; otherwise keep the dims and drop the leading ones.
  bool only_leading = axes.back() < static_cast<int64_t>(lead);
  int r = op1("Sum", {{"input", a}}, {{"axis", axes}, {"keepdim", !only_leading}});
  return reshape_like(r, like);
}

}  // namespace mithril
