#include "codegen/plan.h"

#include "ops/emit.h"
#include "ops/registry.h"
#include "support/checked.h"
#include "support/limits.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace mithril {

namespace {

constexpr int64_t kAlign = 64;
int64_t align_up(int64_t n) { return checked_add(n, kAlign - 1) / kAlign * kAlign; }

// First-fit allocator over a byte range; freed blocks merge with their neighbours.
class Arena {
 public:
  int64_t alloc(int64_t size) {
    size = align_up(std::max<int64_t>(size, 1));
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->second >= size) {
        int64_t at = it->first;
        int64_t rest = it->second - size;
        free_.erase(it);
        if (rest) free_[at + size] = rest;
        return at;
      }
    // grow: reuse a free block at the end if there is one
    int64_t at = end_;
    if (!free_.empty() && free_.rbegin()->first + free_.rbegin()->second == end_) {
      at = free_.rbegin()->first;
      free_.erase(std::prev(free_.end()));
    }
    end_ = checked_add(at, size);
    return at;
  }
  void release(int64_t at, int64_t size) {
    size = align_up(std::max<int64_t>(size, 1));
    auto [it, ok] = free_.emplace(at, size);
    if (auto next = std::next(it); next != free_.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_.erase(it);
      }
    }
  }
  int64_t peak() const { return end_; }

 private:
  std::map<int64_t, int64_t> free_;  // offset -> size
  int64_t end_ = 0;
};

// The C++ name of a value, before it is made unique, read as llm.c's buffers are: an inputs,
// parameter or state keeps its own name (`fc1_weight`); an intermediate that no terminal names
// is named after the layer that makes it (`conv1_out`, `h_0_attn_out`; a node with several
// outputs adds the port: `drop_out_rng_state`); a gradient reads `d_<name>` (`d_fc1_weight`).
// A terminal the model names (`logits`, `h.0.x1`) keeps that name. Deterministic (it depends
// on the graph alone) and at most kMaxIdent characters.
class ValueNamer {
 public:
  static constexpr size_t kMaxIdent = 48;

  explicit ValueNamer(const Graph& g) : g_(g) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      node_of_.emplace(g.nodes[i].name, i);
      for (auto& port : g.nodes[i].outputs)
        for (int v : port) producer_of_.emplace(v, i);
    }
    for (auto& n : g.nodes)
      for (auto& part : split(n.name, '+')) {  // a fused node is named `a+b+c` after its steps
        for (size_t at = part.find('.'); at != std::string::npos; at = part.find('.', at + 1)) layers_.insert(part.substr(0, at));
        layers_.insert(part);
      }
  }

  std::string base(const Value& v) const {
    if (v.name.empty()) return "t" + std::to_string(v.id);
    std::string name = v.name;
    if (size_t at = grad_mark(name); at != std::string::npos) {  // `x.grad`, `node.grad_2.port`
      std::string of = name.substr(0, at);
      if (auto it = node_of_.find(of); it != node_of_.end() && anonymous(last_part(of))) of = label(g_.nodes[it->second]);  // `d_relu_4`
      return bounded("d_" + c_identifier(of + name.substr(at + 5)));
    }
    auto made = producer_of_.find(v.id);  // (from the nodes: Value::producer may be stale after passes)
    if (v.kind != ValueKind::Temp || made == producer_of_.end()) return bounded(c_identifier(name));
    std::string suffix;  // a copy in another layout (passes/layout.cpp): `conv1_out_nhwc`
    if (name.size() > 5 && name.ends_with("_nhwc")) name.resize(name.size() - 5), suffix = "_nhwc";
    const Node& producer = g_.nodes[made->second];
    std::string stem;
    if (layers_.count(name)) {  // `conv1`, `h.0`: the output of that layer (`2`: of unnamed layer 2)
      auto it = node_of_.find(name);
      stem = it != node_of_.end() && anonymous(last_part(name)) ? label(g_.nodes[it->second]) : name;
    } else if (anonymous(last_part(name))) {  // of an unnamed layer fused into another
      stem = label(producer);
    } else {
      return bounded(c_identifier(name) + suffix);  // a terminal the model names
    }
    return bounded(c_identifier(stem + "_out" + port_suffix(producer, v.id)) + suffix);
  }

 private:
  static std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    size_t from = 0;
    for (size_t at; (at = s.find(sep, from)) != std::string::npos; from = at + 1) parts.push_back(s.substr(from, at - from));
    parts.push_back(s.substr(from));
    return parts;
  }
  static std::string last_part(const std::string& s) {
    size_t dot = s.rfind('.');
    return dot == std::string::npos ? s : s.substr(dot + 1);
  }
  static bool anonymous(const std::string& part) {  // layers without a name are numbered
    return part.empty() || std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  }
  // Where `.grad` marks a gradient: followed by the end, `_` or `.`.
  static size_t grad_mark(const std::string& s) {
    for (size_t at = s.find(".grad"); at != std::string::npos; at = s.find(".grad", at + 1))
      if (at + 5 == s.size() || s[at + 5] == '_' || s[at + 5] == '.') return at;
    return std::string::npos;
  }
  // `MaxPool2d` -> `max_pool2d`.
  static std::string snake(const std::string& op) {
    std::string out;
    for (size_t i = 0; i < op.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(op[i]);
      if (std::isupper(c) && i > 0 && !std::isupper(static_cast<unsigned char>(op[i - 1]))) out += '_';
      out += static_cast<char>(std::tolower(c));
    }
    return out;
  }
  // A node's name for its outputs: the last step of a fused node; an unnamed layer by its op
  // and number (`h.0.relu_3`).
  static std::string label(const Node& n) {
    std::string name = split(n.name, '+').back();
    std::string last = last_part(name);
    if (!anonymous(last)) return name;
    std::string prefix = name.substr(0, name.size() - last.size());
    return prefix + snake(n.op->name) + (last.empty() ? "" : "_" + last);
  }
  // `_rng_state` for an output other than the main one of a node with several; `_1` for the
  // second value of a variadic port.
  static std::string port_suffix(const Node& n, int value) {
    size_t count = 0;
    for (auto& port : n.outputs) count += port.size();
    if (count < 2) return "";
    for (size_t p = 0; p < n.outputs.size(); ++p)
      for (size_t k = 0; k < n.outputs[p].size(); ++k)
        if (n.outputs[p][k] == value) {
          const std::string& port = p < n.op->outputs.size() ? n.op->outputs[p].name : std::to_string(p);
          std::string s = port == "output" ? "" : "_" + port;
          if (n.outputs[p].size() > 1) s += "_" + std::to_string(k);
          return s;
        }
    return "";
  }
  // At most kMaxIdent characters: the head and the tail (which tells siblings apart), kept whole.
  static std::string bounded(std::string s) {
    if (s.size() <= kMaxIdent) return s;
    const size_t tail = kMaxIdent / 2;
    std::string head = s.substr(0, kMaxIdent - tail - 1);
    while (!head.empty() && head.back() == '_') head.pop_back();
    std::string rest = s.substr(s.size() - tail);
    while (!rest.empty() && rest.front() == '_') rest.erase(rest.begin());
    return c_identifier(head + "_" + rest);
  }

  const Graph& g_;
  std::map<int, size_t> producer_of_;      // value id -> index of the node that writes it
  std::map<std::string, size_t> node_of_;  // node name -> index (the first of that name)
  std::set<std::string> layers_;  // every layer instance name and its enclosing ones (`h.0.attn`, `h.0`, `h`)
};

}  // namespace

ProgramPlan plan_program(Graph g, const std::map<std::string, int64_t>& max, bool pack_weights, const std::string& target) {
  ProgramPlan p;
  p.target = target;
  const size_t nv = g.values.size();
  p.ident.resize(nv);
  p.offset.assign(nv, -1);
  p.bytes.assign(nv, 0);

  // Run-time dims and their bounds.
  std::set<std::string> syms;
  for (auto& v : g.values)
    for (auto& d : v.shape)
      for (auto& s : d.symbols()) syms.insert(s);
  for (auto& s : syms) {
    auto it = max.find(s);
    if (it == max.end())
      fail(SourceLoc{}, "dimension {} is left to run time, so it needs an upper bound for the memory plan: "
                        "add --max {}=VALUE (or fix it with --shape)", s, s);
    if (it->second < 1) fail(SourceLoc{}, "--max {}={}: the bound must be at least 1", s, it->second);
    p.symbols.push_back(s);
    p.max[s] = it->second;
  }

  // Names: the terminal or layer name, made a unique C++ identifier (c_identifier keeps clear of
  // keywords and macros), never a name the generated functions or the op emitters' blocks declare
  // themselves (the locals of emitted code: `sum`, `row`, `i0`, `t1`), nor a dim's local.
  std::set<std::string> used = {"arena", "weights", "packed", "in", "g", "std", "rt", "mithril", "a", "b", "d", "i", "j",
                                "k", "m", "n", "p", "t", "v", "rest", "row", "from", "to", "scale", "scores", "sum",
                                "epilogue", "unpooled", "geom", "pool_geom", "profile_", "profile_node_"};
  auto taken = [&](const std::string& n) {  // i0, i1, ...: the index variables of broadcasting loops
    return used.count(n) > 0 || (n.size() > 1 && n[0] == 'i' &&
                                 std::all_of(n.begin() + 1, n.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }));
  };
  for (auto& s : syms) {
    used.insert(std::string(kDimPrefix) + s);
    p.dim_field[s] = cpp_reserved(s) ? s + "_v" : s;  // the member of Dims: `d.N`
  }
  const ValueNamer namer(g);
  for (auto& v : g.values) {
    std::string base = namer.base(v);
    std::string name = base;
    for (int k = 2; taken(name); ++k) name = base + "_" + std::to_string(k);
    used.insert(name);
    p.ident[v.id] = name;
  }
  for (auto& v : g.values) {
    std::string why;
    try {
      int64_t elems = 1;
      for (auto& d : v.shape) elems = checked_mul(elems, std::max<int64_t>(*d.eval(p.max), 0));
      if (elems > limits().tensor_elements)
        why = fmt::format("{} elements, past the limit of {} (raise it with --limit tensor_elements=N)", elems, limits().tensor_elements);
      p.bytes[v.id] = checked_mul(elems, static_cast<int64_t>(dtype_size(v.dtype)));
    } catch (const SizeOverflow& e) {
      why = e.what();
    }
    if (!why.empty()) {
      std::string bounds;
      for (auto& [sym, b] : p.max) bounds += fmt::format("{}{}={}", bounds.empty() ? " at " : ", ", sym, b);
      fail(v.loc, "'{}' {} is too large{}: {}", v.name, shape_str(v.shape), bounds, why);
    }
  }

  // Weights: one block, in first-use order.
  for (ValueKind k : {ValueKind::Param, ValueKind::State})
    for (int id : g.values_of_kind(k)) {
      p.weights.push_back(id);
      p.offset[id] = p.weight_bytes;
      p.weight_bytes = checked_add(p.weight_bytes, align_up(std::max<int64_t>(p.bytes[id], 1)));
    }

  // Intermediates and outputs: linear scan over the node order. A value is
  // placed when produced and released after its last reader; outputs live to the end.
  std::vector<int> last_use(nv, -1);
  // A `like` port (ReshapeLike, the gradient ops of pooling and convolution) takes only its
  // value's shape, which is known at compile time: reading it does not keep the buffer alive.
  for (auto& n : g.nodes)
    for (size_t p = 0; p < n.inputs.size(); ++p)
      if (n.op->inputs[p].name != "like")
        for (int v : n.inputs[p]) last_use[v] = n.id;
  for (int v : g.outputs) last_use[v] = static_cast<int>(g.nodes.size());
  // Gradients stay readable after backward() (gradient(i)), except in a training step, whose
  // optimizer updates consume them: there a gradient's buffer is free after its update.
  const bool training_step = std::any_of(g.nodes.begin(), g.nodes.end(), [](const Node& n) { return n.op->has_trait("optimizer"); });
  if (!training_step)
    for (int v : g.grads) last_use[v] = static_cast<int>(g.nodes.size());
  Arena arena;
  p.scratch_offset.assign(g.nodes.size(), -1);
  p.scratch_elems.assign(g.nodes.size(), Dim(0));
  for (auto& n : g.nodes) {
    // In place: the output takes over the buffer of the op's in-place input when this node is
    // that input's last reader (an accumulated gradient growing in its own buffer).
    int taken = -1;
    if (!n.op->in_place.empty()) {
      int port = n.op->input_index(n.op->in_place);
      int out = n.outputs.empty() || n.outputs[0].empty() ? -1 : n.outputs[0][0];
      if (port >= 0 && out >= 0 && n.inputs[port].size() == 1) {
        int v = n.inputs[port][0];
        bool once = std::count_if(n.inputs.begin(), n.inputs.end(), [&](const std::vector<int>& q) {
                      return std::count(q.begin(), q.end(), v) > 0;
                    }) == 1;
        if (g.value(v).kind == ValueKind::Temp && last_use[v] == n.id && p.bytes[v] == p.bytes[out] && once &&
            p.offset[out] < 0) {
          p.offset[out] = p.offset[v];
          taken = v;
        }
      }
    }
    for (auto& port : n.outputs)
      for (int v : port)
        if (p.offset[v] < 0) p.offset[v] = arena.alloc(p.bytes[v]);
    const OpDef::TargetRecord* rec = n.op->target(target);
    if (rec && rec->scratch) {  // live only while this node runs
      Dim elems = rec->scratch(n, g);
      int64_t bytes = checked_mul(std::max<int64_t>(*elems.eval(p.max), 0), static_cast<int64_t>(dtype_size(g.value(n.outputs[0][0]).dtype)));
      if (bytes > 0) {
        p.scratch_elems[n.id] = elems;
        p.scratch_offset[n.id] = arena.alloc(bytes);
        arena.release(p.scratch_offset[n.id], bytes);
      }
    }
    std::set<int> done;
    for (auto& port : n.inputs)
      for (int v : port)
        if (g.value(v).kind == ValueKind::Temp && last_use[v] == n.id && v != taken && done.insert(v).second)
          arena.release(p.offset[v], p.bytes[v]);
    for (auto& port : n.outputs)  // outputs nobody reads (dead values) are released at once
      for (int v : port)
        if (last_use[v] < 0) arena.release(p.offset[v], p.bytes[v]);
  }
  p.arena_bytes = arena.peak();

  // Packed copies of weights (the target's OpDef::TargetRecord::pack): only without a backward pass (so without optimizer
  // updates), where nothing changes the weights between runs. A parameter that two nodes want
  // packed differently stays unpacked.
  if (pack_weights && g.forward_nodes < 0) {
    std::set<int> conflicts;
    for (auto& n : g.nodes) {
      const OpDef::TargetRecord* rec = n.op->target(target);
      if (!rec || rec->packed_param.empty() || !rec->pack) continue;
      int port = n.op->input_index(rec->packed_param);
      if (port < 0 || n.inputs[port].size() != 1) continue;
      const Value& w = g.value(n.inputs[port][0]);
      if (w.kind != ValueKind::Param || w.dtype != DType::f32) continue;
      std::optional<PackSpec> spec = rec->pack(n, g);
      auto it = std::find_if(p.packed.begin(), p.packed.end(), [&](const EmitPlan::Packed& q) { return q.id == w.id; });
      if (!spec || (it != p.packed.end() && !(it->spec == *spec))) conflicts.insert(w.id);
      else if (it == p.packed.end()) p.packed.push_back({w.id, *spec});
    }
    std::erase_if(p.packed, [&](const EmitPlan::Packed& q) { return conflicts.count(q.id) > 0; });
  }
  p.graph = std::move(g);
  return p;
}

bool packs_weights(const PipelineOptions& opts) {
  return std::find(opts.late_passes.begin(), opts.late_passes.end(), "pack-weights") != opts.late_passes.end() &&
         std::find(opts.disabled.begin(), opts.disabled.end(), "pack-weights") == opts.disabled.end();
}

}  // namespace mithril
