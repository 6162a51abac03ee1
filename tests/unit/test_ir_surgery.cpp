// Graph surgery (ir/surgery.h): reorder_nodes, remove_nodes and take_over_consumer keep node ids
// and every value's producer right. Plain graphs (no ops needed: surgery never looks at them).
#include <catch2/catch.hpp>

#include "ir/surgery.h"

using namespace mithril;

namespace {

Value named(const std::string& name, ValueKind kind = ValueKind::Temp) {
  Value v;
  v.name = name;
  v.kind = kind;
  return v;
}

// A chain x -> n0 -> v1 -> n1 -> v2 -> n2 -> v3 (one input port and one output port each).
Graph chain() {
  Graph g;
  int v = g.add_value(named("x", ValueKind::Input));
  for (int k = 0; k < 3; ++k) {
    int out = g.add_value(named("v" + std::to_string(k + 1)));
    Node n;
    n.name = "n" + std::to_string(k);
    n.inputs = {{v}};
    n.outputs = {{out}};
    int id = g.add_node(n);
    g.value(out).producer = id;
    v = out;
  }
  g.outputs = {v};
  return g;
}

}  // namespace

TEST_CASE("reorder_nodes renumbers the nodes and their outputs' producers") {
  Graph g = chain();
  reorder_nodes(g, {2, 0, 1});
  REQUIRE(g.nodes.size() == 3);
  CHECK(g.nodes[0].name == "n2");
  CHECK(g.nodes[1].name == "n0");
  for (auto& n : g.nodes) {
    CHECK(n.id == &n - g.nodes.data());
    CHECK(g.value(n.outputs[0][0]).producer == n.id);
  }
  reorder_nodes(g, {1, 2});  // n2 dropped: the caller orphans its output
  CHECK(g.nodes.size() == 2);
  CHECK(g.nodes[0].name == "n0");
  CHECK(g.value(g.nodes[1].outputs[0][0]).producer == 1);
}

TEST_CASE("remove_nodes drops nodes and leaves their outputs orphans") {
  Graph g = chain();
  remove_nodes(g, {true, false, true});
  REQUIRE(g.nodes.size() == 2);
  CHECK(g.nodes[1].name == "n2");
  CHECK(g.nodes[1].id == 1);
  CHECK(g.value(2).producer == -1);  // v2, n1's output
  CHECK(g.value(3).producer == 1);   // v3, n2's output
  CHECK(g.value(1).producer == 0);
}

TEST_CASE("take_over_consumer: the producer writes the consumer's output, the value between is orphaned") {
  Graph g = chain();
  std::vector<bool> keep(g.nodes.size(), true);
  take_over_consumer(g, 1, 2, keep);  // n1 absorbs n2
  CHECK(keep == std::vector<bool>{true, true, false});
  CHECK(g.nodes[1].outputs[0] == std::vector<int>{3});
  CHECK(g.nodes[2].outputs[0].empty());
  CHECK(g.value(2).producer == -1);
  remove_nodes(g, keep);
  REQUIRE(g.nodes.size() == 2);
  CHECK(g.value(3).producer == 1);  // the model output keeps a producer: n1
  CHECK(g.outputs == std::vector<int>{3});
  // Nodes with more than one output value cannot be merged this way.
  Graph h = chain();
  h.nodes[0].outputs[0].push_back(h.add_value(named("extra")));
  std::vector<bool> k2(h.nodes.size(), true);
  CHECK_THROWS_AS(take_over_consumer(h, 0, 1, k2), std::logic_error);
}
