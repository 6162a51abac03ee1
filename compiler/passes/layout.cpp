// The `layout` pass (passes/layout.h).
#include "passes/layout.h"

#include <functional>
#include <map>
#include <set>

#include "ir/surgery.h"
#include "ops/cpu_kernels.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {
namespace {

// Transposes move float32 tensors at about this many bytes per nanosecond, read and write counted
// (kernels/data.h permute in 32 x 32 tiles, 2 threads, tensors of 0.2-3 MB: 8-12 GB/s here).
constexpr double kTransposeBytesPerNs = 8.0;

struct Candidate {
  size_t node;
  bool depthwise, pointwise;
  double macs;
  int input;                  // the value the convolution slides over
  std::vector<int> residual;  // epilogue inputs read element by element (not BatchNorm's)
  int output;
};

std::vector<int64_t> ints_of(const json& j, size_t n) {
  if (j.is_number_integer()) return std::vector<int64_t>(n, j.get<int64_t>());
  auto v = j.get<std::vector<int64_t>>();
  if (v.size() == 1 && n > 1) v.assign(n, v[0]);
  return v;
}

// Channels and spatial sizes known ([N, C, H, W]: all but N); a symbolic batch is fine.
bool known(const Shape& s) {
  for (size_t i = 1; i < s.size(); ++i)
    if (!s[i].is_const()) return false;
  return true;
}

// Elements of a tensor for the estimate, a symbolic batch counted as 1 (every term scales with it).
double elements(const Shape& s) {
  double n = 1;
  for (const Dim& d : s) n *= d.is_const() ? static_cast<double>(d.value()) : 1.0;
  return n;
}

std::optional<Candidate> candidate(const Graph& g, const Node& n) {
  if (n.op->name != "Conv2d" || n.attrs.contains("pool") || n.attrs.contains("layout")) return std::nullopt;
  if (n.outputs.size() != 1 || n.outputs[0].size() != 1) return std::nullopt;
  const int x = n.inputs.at(static_cast<size_t>(n.op->input_index("input")))[0];
  const int y = n.outputs[0][0];
  const Shape &xs = g.value(x).shape, &ys = g.value(y).shape;
  if (xs.size() != 4 || !known(xs) || !known(ys) || g.value(x).dtype != DType::f32) return std::nullopt;
  auto k = ints_of(n.attrs.at("kernel_size"), 2), s = ints_of(n.attrs.at("stride"), 2),
       p = ints_of(n.attrs.at("padding"), 2);
  const int64_t C = xs[1].value(), K = ys[1].value(), groups = n.attrs.at("groups").get<int64_t>();
  if (!cpu_kernels::conv2d_nhwc_supports(C, K, k[0], k[1], s[0], s[1], p[0], p[1], groups)) return std::nullopt;
  Candidate c;
  c.node = static_cast<size_t>(n.id);
  c.depthwise = cpu_kernels::conv_nhwc_depthwise(C, K, groups);
  c.pointwise = !c.depthwise;
  c.macs = elements(ys) * static_cast<double>(C / groups * k[0] * k[1]);
  c.input = x;
  c.output = y;
  const auto& list = n.inputs.at(static_cast<size_t>(n.op->input_index("epilogue_inputs")));
  size_t bn = 0;
  if (n.attrs.contains("batchnorm")) {
    const json& b = n.attrs.at("batchnorm");
    bn = 2 + (b.at("weight").get<bool>() ? 1 : 0) + (b.at("bias").get<bool>() ? 1 : 0);
  }
  c.residual.assign(list.begin() + static_cast<std::ptrdiff_t>(std::min(bn, list.size())), list.end());
  return c;
}

struct Layouts {
  const Graph& g;
  std::vector<Candidate> convs;
  std::map<int, size_t> conv_of_node;              // node id -> index in convs
  std::map<int, std::vector<int>> readers;         // value -> reading node ids (once each)
  std::set<int> outputs;                           // model outputs

  // The layout a value has where it is made: channels-last for a channels-last convolution's output.
  bool made_nhwc(int v, const std::vector<bool>& nhwc) const {
    auto it = conv_of_node.find(g.value(v).producer);
    return it != conv_of_node.end() && nhwc[it->second];
  }
  // Whether reader node r wants v channels-last.
  bool wants_nhwc(int r, const std::vector<bool>& nhwc) const {
    auto it = conv_of_node.find(r);
    return it != conv_of_node.end() && nhwc[it->second];
  }

  double transposes(int v, const std::vector<bool>& nhwc) const {
    const bool made = made_nhwc(v, nhwc);
    bool other = made && outputs.count(v);
    auto it = readers.find(v);
    if (it != readers.end())
      for (int r : it->second) other |= wants_nhwc(r, nhwc) != made;
    return other ? elements(g.value(v).shape) * 8.0 / kTransposeBytesPerNs : 0.0;
  }

  double cost(const std::vector<bool>& nhwc) const {
    double t = 0;
    std::set<int> tensors;
    for (size_t i = 0; i < convs.size(); ++i) {
      const Candidate& c = convs[i];
      t += c.macs / layout_rate(nhwc[i], c.depthwise, c.pointwise);
      tensors.insert(c.input);
      tensors.insert(c.output);
      tensors.insert(c.residual.begin(), c.residual.end());
    }
    for (int v : tensors) t += transposes(v, nhwc);
    return t;
  }
};

}  // namespace

double layout_rate(bool nhwc, bool depthwise, bool pointwise) {
  // Multiply-adds per ns on 2 threads (AVX2 EPYC, MobileNet-v1's layers at batch 1; docs/passes.md).
  // Channels-first depthwise adds shifted input rows into each output row, one tap at a time
  // (kernels/conv.h conv2d_depthwise): 1.4-8.6 per ns, short rows (14 x 14 planes) the slowest.
  // Channels-last depthwise keeps 64 channels of a pixel in registers over the taps: 6-22.
  if (depthwise) return nhwc ? 12.0 : 3.0;
  if (pointwise) return 55.0;  // one gemm either way
  return 40.0;
}

Graph choose_layouts(Graph g) {
  if (g.forward_nodes >= 0) return g;  // programs without gradients only
  Layouts L{g, {}, {}, {}, {}};
  for (const Node& n : g.nodes)
    if (auto c = candidate(g, n)) {
      L.conv_of_node[n.id] = L.convs.size();
      L.convs.push_back(*c);
    }
  if (L.convs.empty()) return g;
  for (const Node& n : g.nodes) {
    std::set<int> seen;
    for (auto& port : n.inputs)
      for (int v : port)
        if (seen.insert(v).second) L.readers[v].push_back(n.id);
  }
  L.outputs.insert(g.outputs.begin(), g.outputs.end());

  // Chains: convolutions joined by a tensor one writes and the other reads (input or residual).
  // Moving a whole chain at once removes the transposes inside it, which single flips from all
  // channels-first do not find when each one alone costs two transposes.
  std::vector<size_t> chain(L.convs.size());
  for (size_t i = 0; i < chain.size(); ++i) chain[i] = i;
  std::function<size_t(size_t)> root = [&](size_t i) { return chain[i] == i ? i : chain[i] = root(chain[i]); };
  for (size_t i = 0; i < L.convs.size(); ++i) {
    std::vector<int> reads = L.convs[i].residual;
    reads.push_back(L.convs[i].input);
    for (int v : reads)
      if (auto it = L.conv_of_node.find(g.value(v).producer); it != L.conv_of_node.end())
        chain[root(i)] = root(it->second);
  }

  // Local search from all channels-first: flip whole chains, then single convolutions, while a
  // flip lowers the estimate.
  std::vector<bool> nhwc(L.convs.size(), false);
  double best = L.cost(nhwc);
  auto try_flip = [&](const std::vector<size_t>& which) {
    for (size_t i : which) nhwc[i] = !nhwc[i];
    const double t = L.cost(nhwc);
    if (t < best * (1 - 1e-9)) {
      best = t;
      return true;
    }
    for (size_t i : which) nhwc[i] = !nhwc[i];
    return false;
  };
  for (int round = 0; round < 16; ++round) {
    bool changed = false;
    std::map<size_t, std::vector<size_t>> chains;
    for (size_t i = 0; i < nhwc.size(); ++i) chains[root(i)].push_back(i);
    for (auto& [r, members] : chains) {
      // The chain all channels-last (or all channels-first), whatever its members are now.
      std::vector<size_t> flip;
      const bool to = !nhwc[members[0]];
      for (size_t i : members)
        if (nhwc[i] != to) flip.push_back(i);
      changed |= try_flip(flip);
    }
    for (size_t i = 0; i < nhwc.size(); ++i) changed |= try_flip({i});
    if (!changed) break;
  }
  bool any = false;
  for (bool b : nhwc) any |= b;
  if (!any) return g;

  // The rewrite. New Permute nodes are appended (add_typed_node) and then put in place: `before[k]`
  // run right before node k, `after[k]` right after it.
  const size_t n0 = g.nodes.size();
  std::map<size_t, std::vector<int>> before, after;
  std::map<int, int> nhwc_of;  // a channels-first value -> its channels-last copy or original
  auto to_nhwc = [&](int v, size_t at) {
    if (auto it = nhwc_of.find(v); it != nhwc_of.end()) return it->second;
    const Value& val = g.value(v);
    const Node* p = val.producer >= 0 ? &g.nodes[static_cast<size_t>(val.producer)] : nullptr;
    const std::string name = (p ? p->name : val.name) + ".to_nhwc";
    const SourceLoc loc = p ? p->loc : val.loc;
    const int t = add_typed_node(g, "Permute", name, loc, {{"input", {v}}}, {{"dims", {0, 2, 3, 1}}})[0];
    before[at].push_back(g.value(t).producer);
    nhwc_of[v] = t;
    return t;
  };
  for (size_t i = 0; i < L.convs.size(); ++i) {
    if (!nhwc[i]) continue;
    const Candidate& c = L.convs[i];
    // Its output channels-last: a new value; the old one, if anyone still needs it, from a Permute back.
    Value out = g.value(c.output);
    out.shape = {out.shape[0], out.shape[2], out.shape[3], out.shape[1]};
    out.name += "_nhwc";
    out.producer = static_cast<int>(c.node);
    const int y = g.add_value(out);
    nhwc_of[c.output] = y;
  }
  for (size_t i = 0; i < L.convs.size(); ++i) {
    if (!nhwc[i]) continue;
    const Candidate& c = L.convs[i];
    g.nodes[c.node].attrs["layout"] = "NHWC";  // (no references into g.nodes: adding nodes moves them)
    const int x = to_nhwc(c.input, c.node);
    g.nodes[c.node].inputs.at(static_cast<size_t>(g.nodes[c.node].op->input_index("input")))[0] = x;
    for (int r : c.residual) {
      const int rn = to_nhwc(r, c.node);
      auto& list = g.nodes[c.node].inputs.at(static_cast<size_t>(g.nodes[c.node].op->input_index("epilogue_inputs")));
      for (int& v : list)
        if (v == r) v = rn;
    }
    const int y = nhwc_of.at(c.output);
    g.nodes[c.node].outputs[0][0] = y;
    // Readers that stay channels-first (and model outputs) get the old value back.
    bool needed = L.outputs.count(c.output) > 0;
    if (auto it = L.readers.find(c.output); it != L.readers.end())
      for (int r : it->second) needed |= !L.wants_nhwc(r, nhwc);
    if (needed) {
      const std::string name = g.nodes[c.node].name + ".to_nchw";
      const SourceLoc loc = g.nodes[c.node].loc;
      const int t = add_typed_node(g, "Permute", name, loc, {{"input", {y}}}, {{"dims", {0, 3, 1, 2}}})[0];
      Node& back = g.nodes[static_cast<size_t>(g.value(t).producer)];
      back.outputs[0][0] = c.output;  // the readers keep their value
      g.value(t).producer = -1;       // an orphan: never read, never planned
      after[c.node].push_back(back.id);
    } else {
      g.value(c.output).producer = -1;
    }
  }

  // Put the new nodes in place and renumber.
  std::vector<size_t> order;
  order.reserve(g.nodes.size());
  for (size_t k = 0; k < n0; ++k) {
    if (auto it = before.find(k); it != before.end())
      for (int b : it->second) order.push_back(static_cast<size_t>(b));
    order.push_back(k);
    if (auto it = after.find(k); it != after.end())
      for (int a : it->second) order.push_back(static_cast<size_t>(a));
  }
  reorder_nodes(g, order);
  return g;
}

}  // namespace mithril
