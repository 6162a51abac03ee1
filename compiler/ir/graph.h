// The flat graph IR.
//
// A Graph is a list of Values (typed tensors: inputs, parameters, state,
// constants, intermediates) and a list of Nodes (one primitive op each).
// Every node keeps its hierarchical instance name (`block1.conv2`) and the
// source location of the layer it came from. After the `order` pass the node
// list is topologically sorted. Passes take a graph and return a graph.
#pragma once

#include <nlohmann/json.hpp>

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/dtype.h"
#include "support/diag.h"

namespace mithril {

struct OpDef;
using json = nlohmann::ordered_json;

enum class ValueKind { Input, Param, State, Temp };
const char* value_kind_name(ValueKind k);

struct Value {
  int id = -1;
  std::string name;  // terminal or parameter name, hierarchical (`block1.conv1`, `block1.conv2.weight`)
  ValueKind kind = ValueKind::Temp;
  DType dtype = DType::f32;
  Shape shape;
  bool typed = false;  // dtype and shape known (set by declaration or inference)
  int producer = -1;   // node id for Temp values
  json init;           // parameters: initializer spec, e.g. {"kind":"kaiming_uniform","fan_in":784}
  SourceLoc loc;       // where declared or first produced
};

struct Node {
  int id = -1;
  const OpDef* op = nullptr;
  std::string name;  // hierarchical instance name
  json attrs;        // resolved arguments, defaults filled in, in the op's declared order
  std::map<std::string, SourceLoc> attr_locs;
  std::vector<std::vector<int>> inputs;   // per op input port: value ids (empty = unbound)
  std::vector<std::vector<int>> outputs;  // per op output port
  SourceLoc loc;
};

struct Graph {
  std::string name;
  std::deque<Value> values;  // a deque: references stay valid while passes add values
  std::vector<Node> nodes;
  std::vector<int> inputs;   // model inputs in declaration order
  std::vector<int> outputs;  // model outputs in declaration order
  std::vector<std::string> output_names;
  std::map<std::string, int64_t> bindings;  // symbolic dims bound by --shape
  // The backward pass (set by the `autodiff` pass): nodes [0, forward_nodes) are the forward
  // pass, the rest the backward pass; -1 when the graph has no backward pass.
  int forward_nodes = -1;
  std::vector<int> output_grads;  // per output: the Input value carrying dL/d(output), -1 when not float
  std::vector<int> grads;         // the gradients computed, one per differentiated parameter or input
  std::vector<int> grad_of;       // per gradient: the parameter or input it belongs to
  std::vector<Warning> warnings;

  int add_value(Value v);
  int add_node(Node n);
  Value& value(int id) { return values.at(id); }
  const Value& value(int id) const { return values.at(id); }
  // Parameters and state in order of first use.
  std::vector<int> values_of_kind(ValueKind k) const;
};

}  // namespace mithril
