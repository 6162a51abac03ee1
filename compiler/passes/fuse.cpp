// The `fuse-elementwise` pass (passes/fuse.h).
//
// One walk in topological order. Every node with an element expression starts as a group of one
// step; a group is a list of steps whose operands are graph values (external) or earlier steps.
// At a consumer, each external value that a mergeable producer made is replaced by the producer's
// steps; since producers come first, their groups are complete by then. Groups of more than one
// step become FusedElementwise nodes at the consumer's place; the merged producers are dropped.
#include "passes/fuse.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "ir/surgery.h"
#include "ops/registry.h"

namespace mithril {
namespace {

struct Operand {
  bool step = false;  // an earlier step of the group, else a graph value
  int index = -1;     // the step, or the value id
};

struct Step {
  std::string op, name;
  json args;
  std::vector<std::pair<std::string, Operand>> inputs;  // per bound port, in port order
};

using Group = std::vector<Step>;

bool is_fused(const Node& n) { return n.op->name == "FusedElementwise"; }

// The node as a group: one step, or the body of a FusedElementwise node made earlier.
std::optional<Group> group_of(const Node& n) {
  if (n.outputs.size() != 1 || n.outputs[0].size() != 1) return std::nullopt;
  Group g;
  if (is_fused(n)) {
    for (auto& s : parse_fused_body(n.attrs.at("body"))) {
      Step step{s.op, s.name, s.args, {}};
      for (auto& [port, ref] : s.inputs) {
        bool is_step = ref[0] == 't';
        int k = std::stoi(ref.substr(is_step ? 1 : 2));
        Operand o = is_step ? Operand{true, k} : Operand{false, n.inputs.at(0).at(static_cast<size_t>(k))};
        step.inputs.push_back({port, o});
      }
      g.push_back(std::move(step));
    }
    return g;
  }
  if (!n.op->scalar) return std::nullopt;
  Step step{n.op->name, n.name, n.attrs, {}};
  for (size_t p = 0; p < n.inputs.size(); ++p) {
    if (n.inputs[p].empty()) continue;
    if (n.inputs[p].size() != 1) return std::nullopt;  // elementwise ops bind one value per port
    step.inputs.push_back({n.op->inputs[p].name, Operand{false, n.inputs[p][0]}});
  }
  g.push_back(std::move(step));
  return g;
}

// The external values a group reads, in order of first use.
std::vector<int> externals(const Group& g) {
  std::vector<int> out;
  for (auto& s : g)
    for (auto& [port, o] : s.inputs)
      if (!o.step && std::find(out.begin(), out.end(), o.index) == out.end()) out.push_back(o.index);
  return out;
}

// How many nodes read each value (a node reading it at several ports counts once), the last of
// them, and the values that must stay in memory (model outputs, gradients).
struct Reads {
  std::vector<int> readers, reader;
  std::vector<bool> kept;
};
Reads reads_of(const Graph& g) {
  Reads r{std::vector<int>(g.values.size(), 0), std::vector<int>(g.values.size(), -1),
          std::vector<bool>(g.values.size(), false)};
  for (auto& node : g.nodes) {
    std::set<int> seen;
    for (auto& port : node.inputs)
      for (int v : port)
        if (seen.insert(v).second) {
          ++r.readers[static_cast<size_t>(v)];
          r.reader[static_cast<size_t>(v)] = node.id;
        }
  }
  for (int v : g.outputs) r.kept[static_cast<size_t>(v)] = true;
  for (int v : g.grads) r.kept[static_cast<size_t>(v)] = true;
  return r;
}

// Parameters and state a node may write when it runs: an optimizer update's inputs, the values
// bound to state ports (BatchNorm's running statistics in training).
std::vector<int> writes(const Graph& g, const Node& n) {
  std::vector<int> out;
  for (size_t p = 0; p < n.inputs.size(); ++p)
    for (int v : n.inputs[p]) {
      ValueKind k = g.value(v).kind;
      bool written = n.op->has_trait("optimizer") || n.op->inputs[p].kind == PortKind::State;
      if (written && (k == ValueKind::Param || k == ValueKind::State)) out.push_back(v);
    }
  return out;
}

}  // namespace

Graph fuse_elementwise(Graph g) {
  const size_t n = g.nodes.size();
  const size_t forward = g.forward_nodes < 0 ? n : static_cast<size_t>(g.forward_nodes);
  const Reads reads = reads_of(g);
  const std::vector<int>& readers = reads.readers;
  const std::vector<bool>& kept = reads.kept;
  // The nodes that write parameters or state, in order, with what they write.
  std::vector<std::pair<size_t, std::vector<int>>> writers;
  for (size_t k = 0; k < n; ++k)
    if (auto w = writes(g, g.nodes[k]); !w.empty()) writers.push_back({k, std::move(w)});
  auto written_between = [&](size_t from, size_t to, const std::vector<int>& values) {
    auto it = std::upper_bound(writers.begin(), writers.end(), from, [](size_t k, const auto& w) { return k < w.first; });
    for (; it != writers.end() && it->first < to; ++it)
      for (int v : it->second)
        if (std::find(values.begin(), values.end(), v) != values.end()) return true;
    return false;
  };

  // Where each parameter and state tensor is first read: the weight table lists them in that order
  // (Graph::values_of_kind), so a read moved later must not pass another one's first read.
  std::vector<int> weights = g.values_of_kind(ValueKind::Param), state = g.values_of_kind(ValueKind::State);
  weights.insert(weights.end(), state.begin(), state.end());
  std::map<int, std::multiset<size_t>> read_at;  // per parameter or state: the places of the nodes reading it
  for (size_t k = 0; k < n; ++k) {
    std::set<int> seen;
    for (auto& port : g.nodes[k].inputs)
      for (int v : port)
        if (std::find(weights.begin(), weights.end(), v) != weights.end() && seen.insert(v).second) read_at[v].insert(k);
  }
  auto reorders_weights = [&](size_t from, size_t to, const std::vector<int>& values) {
    bool moves_first_read = false;
    for (int v : values) moves_first_read |= read_at.count(v) && *read_at.at(v).begin() == from;
    if (!moves_first_read) return false;
    for (auto& [v, at] : read_at)
      if (*at.begin() > from && *at.begin() < to) return true;
    return false;
  };

  std::vector<std::optional<Group>> groups(n);
  std::vector<bool> merged_away(n, false), grew(n, false);
  for (size_t c = 0; c < n; ++c) {
    groups[c] = group_of(g.nodes[c]);
    if (!groups[c]) continue;
    const Value& out = g.value(g.nodes[c].outputs[0][0]);
    // The producers merged into this node, in node order.
    std::vector<size_t> producers;
    for (int v : externals(*groups[c])) {
      const Value& val = g.value(v);
      const size_t vi = static_cast<size_t>(v);
      if (val.producer < 0 || readers[vi] != 1 || kept[vi] || !(val.shape == out.shape)) continue;
      size_t p = static_cast<size_t>(val.producer);
      if (!groups[p] || (p < forward) != (c < forward)) continue;
      const std::vector<int> reads = externals(*groups[p]);
      if (written_between(p, c, reads)) continue;  // it would read them after the update
      if (reorders_weights(p, c, reads)) continue;
      producers.push_back(p);
    }
    if (producers.empty()) continue;
    std::sort(producers.begin(), producers.end());
    // The producers' steps first, then this node's, which read the producers' last steps.
    Group merged;
    std::map<int, int> result_of;  // a producer's output value -> its last step in `merged`
    for (size_t p : producers) {
      const int base = static_cast<int>(merged.size());
      for (Step s : *groups[p]) {
        for (auto& [port, o] : s.inputs)
          if (o.step) o.index += base;
        merged.push_back(std::move(s));
      }
      result_of[g.nodes[p].outputs[0][0]] = static_cast<int>(merged.size()) - 1;
      for (int v : externals(*groups[p]))  // its reads now happen here
        if (auto it = read_at.find(v); it != read_at.end()) {
          it->second.erase(it->second.find(p));
          it->second.insert(c);
        }
      merged_away[p] = true;
      groups[p].reset();
    }
    const int base = static_cast<int>(merged.size());
    for (Step s : *groups[c]) {
      for (auto& [port, o] : s.inputs) {
        if (o.step) o.index += base;
        else if (auto it = result_of.find(o.index); it != result_of.end()) o = Operand{true, it->second};
      }
      merged.push_back(std::move(s));
    }
    groups[c] = std::move(merged);
    grew[c] = true;
  }

  // The new node list: merged producers dropped, grown groups as FusedElementwise nodes.
  const OpDef* fused = find_op("FusedElementwise");
  if (!fused) throw std::logic_error("fuse-elementwise: no FusedElementwise op");
  std::vector<Node> nodes;
  int forward_kept = 0;
  for (size_t k = 0; k < n; ++k) {
    Node& old = g.nodes[k];
    if (merged_away[k]) {
      g.value(old.outputs[0][0]).producer = -1;  // an orphan value: never read, never planned
      continue;
    }
    Node node = std::move(old);
    if (grew[k]) {
      const Group& grp = *groups[k];
      std::vector<int> ins = externals(grp);
      std::vector<FusedStep> steps;
      std::string name;
      for (auto& s : grp) {
        FusedStep fs{s.op, s.name, s.args, {}};
        for (auto& [port, o] : s.inputs) {
          size_t at = static_cast<size_t>(std::find(ins.begin(), ins.end(), o.index) - ins.begin());
          fs.inputs.push_back({port, o.step ? "t" + std::to_string(o.index) : "in" + std::to_string(at)});
        }
        steps.push_back(std::move(fs));
        if (!s.name.empty()) name += (name.empty() ? "" : "+") + s.name;
      }
      Node f;
      f.op = fused;
      f.name = name;
      f.loc = node.loc;
      f.attrs = json::object();
      f.attrs["body"] = fused_body_json(steps);
      f.inputs = {ins};
      f.outputs = {node.outputs.at(0)};
      node = std::move(f);
    }
    node.id = static_cast<int>(nodes.size());
    for (auto& port : node.outputs)
      for (int v : port) g.value(v).producer = node.id;
    if (k < forward) ++forward_kept;
    nodes.push_back(std::move(node));
  }
  g.nodes = std::move(nodes);
  if (g.forward_nodes >= 0) g.forward_nodes = forward_kept;

  // The fused nodes' own rule must give the type the group's last op gave.
  for (auto& node : g.nodes) {
    if (!is_fused(node)) continue;
    Value before = g.value(node.outputs[0][0]);
    InferContext ctx(g, node.id);
    node.op->infer(ctx);
    const Value& after = g.value(node.outputs[0][0]);
    if (after.dtype != before.dtype || !(after.shape == before.shape))
      throw std::logic_error(fmt::format("fuse-elementwise: {} is typed {} fused, {} unfused", node.name,
                                         type_str(after.dtype, after.shape), type_str(before.dtype, before.shape)));
  }
  return g;
}

namespace {

bool is_weight(const Value& v) { return v.kind == ValueKind::Param || v.kind == ValueKind::State; }

}  // namespace

Graph fold_batchnorm(Graph g) {
  if (g.forward_nodes >= 0) return g;  // programs without gradients only
  const size_t n = g.nodes.size();
  const Reads reads = reads_of(g);
  const std::vector<int>& readers = reads.readers;
  const std::vector<bool>& kept = reads.kept;
  // The node that first reads each parameter or state tensor (the weight table's order).
  std::map<int, size_t> first_read;
  for (size_t k = 0; k < n; ++k)
    for (auto& port : g.nodes[k].inputs)
      for (int v : port)
        if (is_weight(g.value(v))) first_read.emplace(v, k);
  std::vector<bool> keep(n, true);
  for (size_t b = 0; b < n; ++b) {
    Node& bn = g.nodes[b];
    if (bn.op->name != "BatchNorm2d" || bn.outputs.size() != 1 || bn.outputs[0].size() != 1) continue;
    auto port = [&](const char* name) -> int {
      const auto& vals = bn.inputs.at(static_cast<size_t>(bn.op->input_index(name)));
      return vals.empty() ? -1 : vals[0];
    };
    const int v = port("input");
    const size_t vi = static_cast<size_t>(v);
    if (kept[vi] || readers[vi] != 1 || g.value(v).producer < 0) continue;
    const size_t p = static_cast<size_t>(g.value(v).producer);
    Node& conv = g.nodes[p];
    if (conv.op->name != "Conv2d" || conv.attrs.contains("batchnorm") || conv.attrs.contains("epilogue")) continue;
    // Its parameters are read at the convolution now: no other one may be read first in between.
    bool between = false;
    for (auto& [w, at] : first_read) between |= at > p && at < b;
    if (between) continue;
    const int weight = port("weight"), bias = port("bias");
    conv.attrs["batchnorm"] = {{"name", bn.name},
                               {"eps", bn.attrs.value("eps", 1e-5)},
                               {"weight", weight >= 0},
                               {"bias", bias >= 0}};
    auto& list = conv.inputs.at(static_cast<size_t>(conv.op->input_index("epilogue_inputs")));
    for (int w : {weight, bias, port("running_mean"), port("running_var")})
      if (w >= 0) {
        list.push_back(w);
        if (first_read.at(w) == b) first_read[w] = p;
      }
    take_over_consumer(g, p, b, keep);  // the output is the convolution's now
  }
  remove_nodes(g, keep);
  return g;
}

Graph fuse_epilogue(Graph g) {
  if (g.forward_nodes >= 0) return g;  // programs without gradients only
  const size_t n = g.nodes.size();
  const Reads reads = reads_of(g);
  const std::vector<int>& readers = reads.readers;
  const std::vector<int>& reader = reads.reader;
  const std::vector<bool>& kept = reads.kept;
  std::vector<bool> keep(n, true);
  for (size_t k = 0; k < n; ++k) {
    Node& op = g.nodes[k];
    if (!op.op->has_trait("epilogue") || op.attrs.contains("epilogue")) continue;
    if (op.outputs.size() != 1 || op.outputs[0].size() != 1) continue;
    const int v = op.outputs[0][0];
    const size_t vi = static_cast<size_t>(v);
    if (kept[vi] || readers[vi] != 1) continue;
    const size_t c = static_cast<size_t>(reader[vi]);
    if (!keep[c]) continue;
    std::optional<Group> grp = group_of(g.nodes[c]);
    if (!grp) continue;
    const int w = g.nodes[c].outputs[0][0];
    if (g.value(w).dtype != g.value(v).dtype || !(g.value(w).shape == g.value(v).shape)) continue;
    // The chain's other operands ("in1", ...): only for ops that read them element by element,
    // of the result's type, computed before the op (which stays where it is), and not weights (the
    // weight table lists them in order of first read).
    std::vector<int> others;
    for (int x : externals(*grp))
      if (x != v) others.push_back(x);
    if (!others.empty()) {
      if (!op.op->has_trait("epilogue_inputs")) continue;
      bool ok = true;
      for (int x : others) {
        const Value& xv = g.value(x);
        ok &= !is_weight(xv) && xv.dtype == g.value(v).dtype && xv.shape == g.value(v).shape &&
              xv.producer < static_cast<int>(k);
      }
      if (!ok) continue;
    }
    std::vector<FusedStep> steps;
    for (auto& st : *grp) {
      FusedStep fs{st.op, st.name, st.args, {}};
      for (auto& [port, o] : st.inputs) {
        std::string ref = "in0";
        if (o.step) ref = "t" + std::to_string(o.index);
        else if (o.index != v)
          ref = "in" + std::to_string(std::find(others.begin(), others.end(), o.index) - others.begin() + 1);
        fs.inputs.push_back({port, ref});
      }
      steps.push_back(std::move(fs));
    }
    if (!others.empty()) {
      auto& list = op.inputs.at(static_cast<size_t>(op.op->input_index("epilogue_inputs")));
      list.insert(list.end(), others.begin(), others.end());
    }
    op.attrs["epilogue"] = fused_body_json(steps);
    take_over_consumer(g, k, c, keep);  // w is the op's now
  }
  remove_nodes(g, keep);
  return g;
}

// The largest plane (height * width of the convolution's result) fuse-pool takes: 16 KiB of
// float32, well inside a core's first-level data cache. Larger ones gain nothing, as measured:
// ResNet-18's stem (112 x 112 planes, 3x3 max pooling) ran 5% slower fused.
constexpr int64_t kFusePoolPlane = 4096;

Graph fuse_pool(Graph g) {
  if (g.forward_nodes >= 0) return g;  // programs without gradients only
  const Reads reads = reads_of(g);
  std::vector<bool> keep(g.nodes.size(), true);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    Node& conv = g.nodes[k];
    if (conv.op->name != "Conv2d" || conv.attrs.contains("pool") || conv.outputs[0].size() != 1) continue;
    const int v = conv.outputs[0][0];
    const size_t vi = static_cast<size_t>(v);
    if (reads.kept[vi] || reads.readers[vi] != 1) continue;
    const size_t c = static_cast<size_t>(reads.reader[vi]);
    Node& pool = g.nodes[c];
    if ((pool.op->name != "MaxPool2d" && pool.op->name != "AvgPool2d") || pool.outputs.size() != 1 ||
        pool.outputs[0].size() != 1)
      continue;
    // Only planes the pooling reads from the first-level cache right after the epilogue wrote them.
    const Shape& plane = g.value(v).shape;
    const auto h = plane[2].as_const(), w = plane[3].as_const();
    if (!h || !w || *h * *w > kFusePoolPlane) continue;
    conv.attrs["pool"] = {{"op", pool.op->name}, {"name", pool.name}, {"args", pool.attrs}};
    take_over_consumer(g, k, c, keep);  // the output is the convolution's now
  }
  remove_nodes(g, keep);
  return g;
}

}  // namespace mithril
