#include "ir/surgery.h"

#include <stdexcept>

namespace mithril {

void reorder_nodes(Graph& g, const std::vector<size_t>& order) {
  std::vector<Node> nodes;
  nodes.reserve(order.size());
  for (size_t k : order) {
    Node n = std::move(g.nodes[k]);
    n.id = static_cast<int>(nodes.size());
    for (auto& port : n.outputs)
      for (int v : port) g.value(v).producer = n.id;
    nodes.push_back(std::move(n));
  }
  g.nodes = std::move(nodes);
}

void remove_nodes(Graph& g, const std::vector<bool>& keep) {
  std::vector<size_t> order;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (keep[k]) {
      order.push_back(k);
      continue;
    }
    for (auto& port : g.nodes[k].outputs)
      for (int v : port) g.value(v).producer = -1;  // an orphan value: never read, never planned
  }
  reorder_nodes(g, order);
}

void take_over_consumer(Graph& g, size_t producer, size_t consumer, std::vector<bool>& keep) {
  Node& p = g.nodes.at(producer);
  Node& c = g.nodes.at(consumer);
  if (p.outputs.empty() || p.outputs[0].size() != 1 || c.outputs.empty() || c.outputs[0].size() != 1)
    throw std::logic_error("take_over_consumer: " + p.name + " and " + c.name + " need one output each");
  const int between = p.outputs[0][0];
  p.outputs[0][0] = c.outputs[0][0];
  c.outputs[0].clear();            // the output is the producer's now: dropping the node must not orphan it
  g.value(between).producer = -1;  // an orphan value: never read, never planned
  keep.at(consumer) = false;
}

}  // namespace mithril
