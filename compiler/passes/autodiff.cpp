#include "passes/autodiff.h"

#include <set>

#include "ops/grad.h"

namespace mithril {

bool freeze_matches(const std::string& pattern, const std::string& name) {
  // Glob with `*` (any run, dots included) and `?`.
  std::function<bool(size_t, size_t)> m = [&](size_t p, size_t n) -> bool {
    if (p == pattern.size()) return n == name.size();
    if (pattern[p] == '*') {
      for (size_t k = n; k <= name.size(); ++k)
        if (m(p + 1, k)) return true;
      return false;
    }
    if (n == name.size()) return false;
    return (pattern[p] == '?' || pattern[p] == name[n]) && m(p + 1, n + 1);
  };
  if (m(0, 0)) return true;
  bool plain = pattern.find_first_of("*?") == std::string::npos;
  return plain && name.size() > pattern.size() && name.compare(0, pattern.size(), pattern) == 0 && name[pattern.size()] == '.';
}

namespace {

// Sums the contributions to `v` into one value (a chain of Adds named after it).
// A contribution made by an op with an `accumulate` input (EmbeddingGradWeight: rows scattered
// into a table) is instead remade last, adding into the sum of the others (in place, by the
// memory plan), so a tied embedding's gradient needs one table-sized buffer, not three; the
// first node is left unread and pruned.
int total_of(Graph& g, GradState& st, int v) {
  std::vector<int> parts = st.parts[v];
  if (parts.empty()) return -1;
  int accumulating = -1;
  if (parts.size() > 1)
    for (size_t k = 0; k < parts.size(); ++k) {
      int producer = g.value(parts[k]).producer;
      if (producer < 0) continue;
      const Node& n = g.nodes[producer];
      int port = n.op->input_index("accumulate");
      if (port >= 0 && n.inputs[port].empty() && n.outputs.size() == 1 && n.outputs[0].size() == 1) accumulating = static_cast<int>(k);
    }
  int into = -1;
  if (accumulating >= 0) {
    into = parts[static_cast<size_t>(accumulating)];
    parts.erase(parts.begin() + accumulating);
  }
  int acc = parts[0];
  for (size_t k = 1; k < parts.size(); ++k) {
    std::string name = g.value(v).name + ".grad_sum" + (k > 1 ? "_" + std::to_string(k) : "");
    acc = add_typed_node(g, "Add", name, g.value(v).loc, {{"left", {acc}}, {"right", {parts[k]}}}).at(0);
  }
  if (into >= 0) {
    const Node n = g.nodes[static_cast<size_t>(g.value(into).producer)];
    std::vector<std::pair<std::string, std::vector<int>>> inputs;
    for (size_t p = 0; p < n.inputs.size(); ++p)
      inputs.push_back({n.op->inputs[p].name, n.op->inputs[p].name == "accumulate" ? std::vector<int>{acc} : n.inputs[p]});
    acc = add_typed_node(g, n.op->name, g.value(v).name + ".grad_sum", n.loc, inputs, n.attrs).at(0);
  }
  st.wants.resize(g.values.size(), false);
  st.total.resize(g.values.size(), -1);
  st.parts.resize(g.values.size());
  return acc;
}

// An extra node copying (or zero-filling, when src < 0) into a fresh value named `name`.
int fresh_copy(Graph& g, int src, int like, const std::string& name) {
  const SourceLoc loc = g.value(like).loc;
  if (src >= 0) return add_typed_node(g, "Identity", name, loc, {{"input", {src}}}).at(0);
  int zero = add_typed_node(g, "Constant", name + ".zero", loc, {}, {{"value", 0.0}, {"dtype", dtype_name(g.value(like).dtype)}}).at(0);
  return add_typed_node(g, "BroadcastLike", name, loc, {{"input", {zero}}, {"like", {like}}}).at(0);
}

// Drops backward nodes whose results no gradient needs (rules may build more than is used).
void prune_backward(Graph& g) {
  const size_t F = static_cast<size_t>(g.forward_nodes);
  std::vector<bool> live_value(g.values.size(), false), keep(g.nodes.size(), false);
  for (int v : g.grads) live_value[v] = true;
  for (size_t k = g.nodes.size(); k-- > F;) {
    const Node& n = g.nodes[k];
    bool needed = false;
    for (auto& port : n.outputs)
      for (int v : port) needed |= live_value[v];
    if (!needed) continue;
    keep[k] = true;
    for (auto& port : n.inputs)
      for (int v : port) live_value[v] = true;
  }
  std::vector<Node> nodes;
  for (size_t k = 0; k < g.nodes.size(); ++k)
    if (k < F || keep[k]) {
      Node n = std::move(g.nodes[k]);
      n.id = static_cast<int>(nodes.size());
      for (auto& port : n.outputs)
        for (int v : port) g.value(v).producer = n.id;
      nodes.push_back(std::move(n));
    } else {
      for (auto& port : g.nodes[k].outputs)
        for (int v : port) g.value(v).producer = -1;  // an orphan value: never read, never planned
    }
  g.nodes = std::move(nodes);
}

}  // namespace

Graph autodiff(Graph g, const GradOptions& o) {
  if (!o.enabled) return g;
  if (g.forward_nodes >= 0) throw std::logic_error("autodiff ran twice");
  const size_t nv = g.values.size();
  GradState st;
  st.wants.assign(nv, false);
  st.parts.assign(nv, {});
  st.total.assign(nv, -1);

  // Sources: trainable parameters, then requested inputs.
  std::vector<int> sources;
  std::vector<bool> frozen_used(o.freeze.size(), false);
  std::vector<std::string> param_names;
  for (int id : g.values_of_kind(ValueKind::Param)) {
    const Value& v = g.value(id);
    param_names.push_back(v.name);
    bool frozen = false;
    for (size_t k = 0; k < o.freeze.size(); ++k)
      if (freeze_matches(o.freeze[k], v.name)) frozen = frozen_used[k] = true;
    if (!frozen && is_float(v.dtype)) sources.push_back(id);
  }
  for (size_t k = 0; k < o.freeze.size(); ++k)
    if (!frozen_used[k])
      fail(SourceLoc{"--freeze " + o.freeze[k], 0, 0}, "'{}' matches no parameter{}; the parameters: {}", o.freeze[k],
           did_you_mean(o.freeze[k], param_names), param_names.empty() ? "(none)" : fmt::format("{}", fmt::join(param_names, ", ")));
  for (auto& name : o.inputs) {
    int found = -1;
    std::vector<std::string> names;
    for (int id : g.inputs) {
      names.push_back(g.value(id).name);
      if (g.value(id).name == name) found = id;
    }
    SourceLoc where{"--grad-inputs " + name, 0, 0};
    if (found < 0) fail(where, "the model has no input '{}'{}; its inputs: {}", name, did_you_mean(name, names), fmt::join(names, ", "));
    if (!is_float(g.value(found).dtype))
      fail(where, "input '{}' is {}: only float inputs have gradients", name, dtype_name(g.value(found).dtype));
    if (std::find(sources.begin(), sources.end(), found) == sources.end()) sources.push_back(found);
  }
  for (int s : sources) st.wants[s] = true;

  // Forward reach: which values depend on a source through float values.
  for (auto& n : g.nodes) {
    if (!n.op->gradient && n.op->has_trait("no_gradient")) continue;
    bool any = false;
    for (auto& port : n.inputs)
      for (int v : port) any |= st.wants[v];
    if (!any) continue;
    for (auto& port : n.outputs)
      for (int v : port)
        if (is_float(g.value(v).dtype)) st.wants[v] = true;
  }

  // Seeds: one gradient input per float output that depends on a source.
  g.output_grads.assign(g.outputs.size(), -1);
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    const Value& out = g.value(g.outputs[i]);
    if (!is_float(out.dtype)) continue;
    if (!o.seeds.empty() && std::find(o.seeds.begin(), o.seeds.end(), g.output_names[i]) == o.seeds.end()) continue;
    Value seed;
    seed.name = g.output_names[i] + ".grad";
    seed.kind = ValueKind::Input;
    seed.dtype = out.dtype;
    seed.shape = out.shape;
    seed.typed = true;
    seed.loc = out.loc;
    int id = g.add_value(std::move(seed));
    g.output_grads[i] = id;
    st.wants.resize(g.values.size(), false);
    st.total.resize(g.values.size(), -1);
    st.parts.resize(g.values.size());
    if (st.wants[g.outputs[i]]) st.parts[g.outputs[i]].push_back(id);
  }

  const int F = static_cast<int>(g.nodes.size());
  g.forward_nodes = F;
  for (int k = F - 1; k >= 0; --k) {
    bool has_dout = false, wants_in = false;
    for (auto& port : g.nodes[k].outputs)
      for (int v : port)
        if (!st.parts[v].empty()) {
          st.total[v] = total_of(g, st, v);
          has_dout = true;
        }
    for (auto& port : g.nodes[k].inputs)
      for (int v : port) wants_in |= st.wants[v];
    if (!has_dout || !wants_in) continue;
    const Node& n = g.nodes[k];
    if (!n.op->gradient) {
      if (n.op->has_trait("no_gradient")) continue;
      fail(n.loc, "layer '{}' ({}): {} has no gradient rule yet, so nothing before it can be trained; freeze the parameters "
                  "that feed it (--freeze) or cut the path with StopGradient",
           n.name, n.op->name, n.op->name);
    }
    const OpDef* op = n.op;
    GradContext ctx(g, k, st);
    op->gradient(ctx);
  }

  // One distinct gradient value per source, produced in the backward pass.
  std::set<int> taken;
  for (int s : sources) {
    int total = total_of(g, st, s);
    std::string name = g.value(s).name + ".grad";
    bool own = total >= 0 && g.value(total).kind == ValueKind::Temp && g.value(total).producer >= F && !taken.count(total);
    if (!own) total = fresh_copy(g, total, s, name);
    else g.value(total).name = name;
    taken.insert(total);
    g.grads.push_back(total);
    g.grad_of.push_back(s);
  }
  prune_backward(g);
  return g;
}

}  // namespace mithril
