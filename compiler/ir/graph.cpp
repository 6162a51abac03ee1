#include "ir/graph.h"

#include "ops/registry.h"

namespace mithril {

const char* value_kind_name(ValueKind k) {
  switch (k) {
    case ValueKind::Input: return "input";
    case ValueKind::Param: return "param";
    case ValueKind::State: return "state";
    case ValueKind::Temp: return "temp";
  }
  return "?";
}

int Graph::add_value(Value v) {
  v.id = static_cast<int>(values.size());
  values.push_back(std::move(v));
  return values.back().id;
}

int Graph::add_node(Node n) {
  n.id = static_cast<int>(nodes.size());
  nodes.push_back(std::move(n));
  return nodes.back().id;
}

std::vector<int> Graph::values_of_kind(ValueKind k) const {
  std::vector<int> out;
  std::vector<bool> seen(values.size());
  for (auto& n : nodes)
    for (auto& port : n.inputs)
      for (int v : port)
        if (values[v].kind == k && !seen[v]) seen[v] = true, out.push_back(v);
  return out;
}

}  // namespace mithril
