#include "driver/check.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include "codegen/plan.h"
#include "driver/train.h"
#include "ops/registry.h"
#include "support/checked.h"
#include "support/limits.h"

namespace mithril {

Graph check_program(const Program& prog, const CheckOptions& opts) {
  Graph g = flatten(prog, opts.flatten);
  g = run_passes(std::move(g), frontend_passes(opts.pipeline), opts.pipeline);
  verify_graph(g);
  return g;
}

Graph check_model(const std::string& path, const CheckOptions& opts) { return check_program(load_program(path), opts); }

Graph training_graph(const std::string& path, CheckOptions opts) {
  TrainSettings st = load_train_settings(path, {});
  for (auto& sh : st.shapes) parse_shape_binding(sh, opts.pipeline.shapes);
  TrainSpec spec = st.spec;
  spec.clip = st.values.count("clip_norm") && st.values.at("clip_norm").get<double>() > 0;
  opts.pipeline.train = &spec;
  opts.pipeline.codegen = true;
  opts.pipeline.grad = GradOptions{true, {}, st.freeze, {"loss"}};
  return check_model(path, opts);
}

std::string opt_ir(const std::string& text, const std::string& file, const OptOptions& opts) {
  PipelineOptions popts;
  popts.training = opts.training;
  popts.verify_each = true;
  std::vector<Pass> passes;
  for (auto& name : opts.passes) passes.push_back(find_opt_pass(name, popts));
  Graph g = parse_ir(text, file);
  // The input must hold the invariants the passes rely on (sorted nodes unless `order` comes first).
  Graph probe = g;
  if (!passes.empty() && passes.front().name == "order") probe.nodes.clear();
  try {
    verify_graph(probe);
  } catch (const std::logic_error& e) {
    fail(SourceLoc{file, 0, 0}, "the input IR breaks an invariant: {}", e.what());
  }
  bool packs = false;
  for (auto& p : passes) {
    g = run_passes(std::move(g), {p}, popts);
    if (p.name == "pack-weights") packs = true;
  }
  std::string out = print_ir(g);
  if (packs) {
    std::map<std::string, int64_t> max = opts.max;
    for (auto& [k, v] : g.bindings) max.emplace(k, v);
    for (auto& v : g.values)
      for (auto& d : v.shape)
        for (auto& s : d.symbols()) max.emplace(s, 64);
    ProgramPlan plan = plan_program(g, max, true);
    for (auto& q : plan.packed) out += fmt::format("# pack-weights: %{} packed\n", q.id);
    if (plan.packed.empty()) out += "# pack-weights: no weight packed\n";
  }
  return out;
}

std::string opt_ir_file(const std::string& path, const OptOptions& opts) {
  SourceLoc at{path, 0, 0};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(at, "cannot read the IR file: no such file");
  if (!S_ISREG(st.st_mode)) fail(at, "cannot read the IR file: not a regular file");
  if (st.st_size > limits().file_bytes)
    fail(at, "cannot read the IR file: it has {} bytes, past the limit of {} (raise it with --limit file_bytes=N)", st.st_size,
         limits().file_bytes);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(at, "cannot read the IR file");
  std::stringstream ss;
  ss << f.rdbuf();
  return opt_ir(ss.str(), path, opts);
}

static int64_t count_of(const Value& v) {
  int64_t n = 1;
  for (auto& d : v.shape) n = checked_mul(n, d.value());
  return n;
}

ParamCounts count_params(const Graph& g) {
  ParamCounts c;
  try {
    for (int id : g.values_of_kind(ValueKind::Param)) c.trainable = checked_add(c.trainable, count_of(g.value(id)));
    for (int id : g.values_of_kind(ValueKind::State)) c.state = checked_add(c.state, count_of(g.value(id)));
  } catch (const SizeOverflow& e) {
    fail(SourceLoc{}, "the model's parameters do not fit in 64 bits: {}", e.what());
  }
  return c;
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return (n < 0 ? "-" : "") + s;
}

static std::string value_type(const Value& v) {
  std::string s = shape_str(v.shape);
  if (v.dtype != DType::f32) s += std::string(" ") + dtype_name(v.dtype);
  return s;
}

namespace {
struct Row {
  std::string layer, op, ins, outs;
  int64_t params;
};

// Per node: its data inputs and outputs, and the parameters it is the first user of.
std::vector<Row> rows_of(const Graph& g, std::vector<std::vector<int>>* params_per_node = nullptr) {
  std::vector<Row> rows;
  std::vector<bool> counted(g.values.size());
  for (auto& n : g.nodes) {
    Row r{n.name, n.op->name, "", "", 0};
    std::vector<int> params;
    for (size_t p = 0; p < n.inputs.size(); ++p)
      for (int v : n.inputs[p]) {
        const Value& val = g.value(v);
        if (val.kind == ValueKind::Param || val.kind == ValueKind::State) {
          if (!counted[v]) {
            counted[v] = true;
            params.push_back(v);
            if (val.kind == ValueKind::Param) r.params = checked_add(r.params, count_of(val));
          }
          if (n.op->inputs[p].kind != PortKind::Data) continue;
        }
        r.ins += (r.ins.empty() ? "" : ", ") + value_type(val);
      }
    for (auto& port : n.outputs)
      for (int v : port) r.outs += (r.outs.empty() ? "" : ", ") + value_type(g.value(v));
    rows.push_back(r);
    if (params_per_node) params_per_node->push_back(params);
  }
  return rows;
}
}  // namespace

std::string memory_summary(const Graph& g, const std::map<std::string, int64_t>& max, bool pack_weights) {
  std::string out;
  if (g.forward_nodes >= 0) {
    out += fmt::format("\nbackward pass: {} nodes after the {} of the forward pass\n", g.nodes.size() - g.forward_nodes, g.forward_nodes);
    for (size_t i = 0; i < g.grads.size(); ++i)
      out += fmt::format("  gradient  {}: {}\n", g.value(g.grad_of[i]).name, value_type(g.value(g.grads[i])));
    for (size_t i = 0; i < g.outputs.size(); ++i)
      if (g.output_grads[i] >= 0) out += fmt::format("  takes     d({}): {}\n", g.output_names[i], value_type(g.value(g.output_grads[i])));
  }
  std::set<std::string> syms;
  for (auto& v : g.values)
    for (auto& d : v.shape)
      for (auto& s : d.symbols()) syms.insert(s);
  std::vector<std::string> missing;
  for (auto& s : syms)
    if (!max.count(s)) missing.push_back(s);
  if (!missing.empty())
    return out + fmt::format("\nplanned memory: bound {} with --max (e.g. --max {}=64) or --shape to see it\n", fmt::join(missing, ", "),
                             missing[0]);
  ProgramPlan p = plan_program(g, max, pack_weights);
  int64_t live = 0;  // every intermediate at once, what a plan without reuse would need
  for (auto& v : p.graph.values)
    if (v.kind == ValueKind::Temp && v.producer >= 0) live = checked_add(live, p.bytes[v.id]);
  out += fmt::format("\nplanned memory{}: arena {} bytes for {} intermediates{} ({} bytes without reuse), weights {} bytes\n",
                     syms.empty() ? "" : " at the --max bounds", with_commas(p.arena_bytes),
                     g.forward_nodes >= 0 ? "forward and backward" : "the forward pass's",
                     g.forward_nodes >= 0 ? " and gradients" : "", with_commas(live), with_commas(p.weight_bytes));
  if (!p.packed.empty()) {
    int64_t floats = 0;
    for (auto& q : p.packed) floats = checked_add(floats, q.spec.estimate);
    out += fmt::format("packed copies of {} weights: about {} bytes more (pack-weights: GEMM panels, Winograd "
                       "transforms; switch off with --no-pass pack-weights)\n",
                       p.packed.size(), with_commas(checked_mul(floats, 4)));
  }
  return out;
}

std::string summary_table(const Graph& g) {
  std::vector<Row> rows = rows_of(g);
  if (g.forward_nodes >= 0) rows.resize(g.forward_nodes);
  std::vector<std::string> head = {"layer", "op", "input shapes", "output shapes", "params"};
  size_t w[5];
  for (size_t i = 0; i < 5; ++i) w[i] = head[i].size();
  for (auto& r : rows) {
    w[0] = std::max(w[0], r.layer.size());
    w[1] = std::max(w[1], r.op.size());
    w[2] = std::max(w[2], r.ins.size());
    w[3] = std::max(w[3], r.outs.size());
    w[4] = std::max(w[4], with_commas(r.params).size());
  }
  std::string out = fmt::format("model {}\n", g.name);
  auto line = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d, const std::string& e) {
    out += fmt::format("  {:<{}}  {:<{}}  {:<{}}  {:<{}}  {:>{}}\n", a, w[0], b, w[1], c, w[2], d, w[3], e, w[4]);
  };
  line(head[0], head[1], head[2], head[3], head[4]);
  line(std::string(w[0], '-'), std::string(w[1], '-'), std::string(w[2], '-'), std::string(w[3], '-'), std::string(w[4], '-'));
  for (auto& r : rows) line(r.layer, r.op, r.ins, r.outs, r.params ? with_commas(r.params) : "");
  out += "\n";
  for (int id : g.inputs) out += fmt::format("input   {}: {}\n", g.value(id).name, value_type(g.value(id)));
  for (size_t i = 0; i < g.outputs.size(); ++i)
    out += fmt::format("output  {}: {}\n", g.output_names[i], value_type(g.value(g.outputs[i])));
  if (!g.bindings.empty()) {
    std::string b;
    for (auto& [k, v] : g.bindings) b += fmt::format("{}{}={}", b.empty() ? "" : ", ", k, v);
    out += fmt::format("bound   {}\n", b);
  }
  ParamCounts c = count_params(g);
  out += fmt::format("\nlayers: {}\ntrainable parameters: {}\n", rows.size(), with_commas(c.trainable));
  if (c.state) out += fmt::format("non-trainable state: {} (running statistics, not counted above)\n", with_commas(c.state));
  return out;
}

json summary_json(const Graph& g) {
  std::vector<std::vector<int>> params;
  std::vector<Row> rows = rows_of(g, &params);
  auto tensor = [&](const Value& v) {
    json shape = json::array();
    for (auto& d : v.shape) {
      if (auto c = d.as_const()) shape.push_back(*c);
      else shape.push_back(d.str());
    }
    return json{{"name", v.name}, {"shape", shape}, {"dtype", dtype_name(v.dtype)}};
  };
  json j;
  j["model"] = g.name;
  j["inputs"] = json::array();
  for (int id : g.inputs) j["inputs"].push_back(tensor(g.value(id)));
  j["outputs"] = json::array();
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    json t = tensor(g.value(g.outputs[i]));
    t["name"] = g.output_names[i];
    j["outputs"].push_back(t);
  }
  j["layers"] = json::array();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    json l{{"name", n.name}, {"op", n.op->name}, {"args", n.attrs}, {"source", n.loc.str()}};
    l["inputs"] = json::array();
    for (size_t p = 0; p < n.inputs.size(); ++p)
      for (int v : n.inputs[p])
        if (n.op->inputs[p].kind == PortKind::Data) {
          json t = tensor(g.value(v));
          t["port"] = n.op->inputs[p].name;
          l["inputs"].push_back(t);
        }
    l["outputs"] = json::array();
    for (size_t p = 0; p < n.outputs.size(); ++p)
      for (int v : n.outputs[p]) {
        json t = tensor(g.value(v));
        t["port"] = n.op->outputs[p].name;
        l["outputs"].push_back(t);
      }
    l["params"] = json::array();
    for (int v : params[i]) {
      json t = tensor(g.value(v));
      t["kind"] = value_kind_name(g.value(v).kind);
      t["count"] = count_of(g.value(v));
      l["params"].push_back(t);
    }
    l["param_count"] = rows[i].params;
    j["layers"].push_back(l);
  }
  ParamCounts c = count_params(g);
  j["trainable_parameters"] = c.trainable;
  j["state_values"] = c.state;
  j["bindings"] = g.bindings;
  j["warnings"] = json::array();
  for (auto& w : g.warnings) j["warnings"].push_back(format_diagnostic(w.loc, "warning", w.message));
  return j;
}

}  // namespace mithril
