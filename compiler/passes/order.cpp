// The `order` pass: data-dependency analysis of the flat graph.
#include <algorithm>
#include <queue>

#include "ops/registry.h"
#include "passes/passes.h"

namespace mithril {

static std::vector<std::vector<int>> consumers_of(const Graph& g) {
  std::vector<std::vector<int>> users(g.values.size());
  for (auto& n : g.nodes)
    for (auto& port : n.inputs)
      for (int v : port) users[v].push_back(n.id);
  return users;
}

[[noreturn]] static void report_cycle(const Graph& g, const std::vector<int>& indegree) {
  // Walk producer edges among the nodes left over until a node repeats.
  auto pred_in_cycle = [&](int node) {
    for (auto& port : g.nodes[node].inputs)
      for (int v : port) {
        int p = g.value(v).producer;
        if (p >= 0 && indegree[p] > 0) return p;
      }
    return -1;
  };
  int start = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (indegree[i] > 0) { start = static_cast<int>(i); break; }
  std::vector<int> path;
  std::vector<int> pos(g.nodes.size(), -1);
  int cur = start;
  while (cur >= 0 && pos[cur] < 0) {
    pos[cur] = static_cast<int>(path.size());
    path.push_back(cur);
    cur = pred_in_cycle(cur);
  }
  std::vector<int> cycle(path.begin() + (cur >= 0 ? pos[cur] : 0), path.end());
  std::reverse(cycle.begin(), cycle.end());  // data-flow order
  std::string text;
  for (int n : cycle) text += fmt::format("'{}' ({}) -> ", g.nodes[n].name, g.nodes[n].op->name);
  text += fmt::format("'{}'", g.nodes[cycle[0]].name);
  fail(g.nodes[cycle[0]].loc, "cycle in the data flow: {}", text);
}

Graph order_nodes(Graph g) {
  const size_t n = g.nodes.size();
  std::vector<int> indegree(n, 0);
  for (auto& node : g.nodes)
    for (auto& port : node.inputs)
      for (int v : port) {
        if (g.value(v).kind == ValueKind::Temp && g.value(v).producer < 0)
          fail(node.loc, "layer '{}' ({}) reads '{}', which no layer produces", node.name, node.op->name, g.value(v).name);
        if (g.value(v).producer >= 0) ++indegree[node.id];
      }
  auto users = consumers_of(g);
  // Kahn's algorithm, smallest id first: file order wherever the data flow allows it.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t i = 0; i < n; ++i)
    if (indegree[i] == 0) ready.push(static_cast<int>(i));
  std::vector<int> order;
  while (!ready.empty()) {
    int id = ready.top();
    ready.pop();
    order.push_back(id);
    for (auto& port : g.nodes[id].outputs)
      for (int v : port)
        for (int u : users[v])
          if (--indegree[u] == 0) ready.push(u);
  }
  if (order.size() != n) report_cycle(g, indegree);

  // Renumber nodes in order.
  std::vector<Node> sorted;
  sorted.reserve(n);
  for (int id : order) sorted.push_back(std::move(g.nodes[id]));
  g.nodes = std::move(sorted);
  for (size_t i = 0; i < n; ++i) {
    g.nodes[i].id = static_cast<int>(i);
    for (auto& port : g.nodes[i].outputs)
      for (int v : port) g.value(v).producer = static_cast<int>(i);
  }

  // Dead layers: outputs that nothing reads and that are not model outputs.
  users = consumers_of(g);
  std::vector<bool> is_output(g.values.size());
  for (int v : g.outputs) is_output[v] = true;
  for (auto& node : g.nodes)
    for (auto& port : node.outputs)
      for (int v : port)
        if (users[v].empty() && !is_output[v]) {
          bool secondary = &port != &node.outputs[0];
          if (secondary) continue;  // an unused second output (e.g. of Split) is not a dead layer
          g.warnings.push_back({node.loc, fmt::format("layer '{}' ({}) is dead: its output '{}' is never used", node.name,
                                                      node.op->name, g.value(v).name)});
        }
  for (int v : g.inputs)
    if (users[v].empty())
      g.warnings.push_back({g.value(v).loc, fmt::format("input '{}' is never used", g.value(v).name)});
  return g;
}

void verify_graph(const Graph& g) {
  auto check = [](bool ok, const std::string& what) {
    if (!ok) throw std::logic_error("IR verifier: " + what);
  };
  for (size_t i = 0; i < g.values.size(); ++i) check(g.values[i].id == static_cast<int>(i), "value ids are dense");
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    auto& n = g.nodes[i];
    check(n.id == static_cast<int>(i), "node ids are dense");
    check(n.op != nullptr, "node has an op");
    check(n.inputs.size() == n.op->inputs.size() && n.outputs.size() == n.op->outputs.size(), "ports match the op");
    for (auto& port : n.inputs)
      for (int v : port) {
        check(v >= 0 && v < static_cast<int>(g.values.size()), "input ids are valid");
        check(g.value(v).producer < static_cast<int>(i), "nodes are topologically ordered at " + n.name);
      }
    for (auto& port : n.outputs)
      for (int v : port) check(g.value(v).producer == static_cast<int>(i), "outputs point back to their producer");
  }
}

}  // namespace mithril
