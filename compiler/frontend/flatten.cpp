#include "frontend/flatten.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "frontend/document.h"
#include "frontend/expr.h"
#include "ops/registry.h"
#include "support/limits.h"

namespace mithril {
namespace {

// What a layer refers to: a primitive op or a composite model.
struct Target {
  const OpDef* op = nullptr;
  const ModelDef* model = nullptr;
};

// One layer after expanding `repeat`, with its connections decided.
struct Plan {
  const LayerDef* layer;
  std::string name;  // local instance name
  Target target;
  std::vector<std::pair<std::string, std::vector<std::string>>> ins;   // port -> connection names
  std::vector<std::pair<std::string, std::vector<std::string>>> outs;  // port -> connection names
};

struct Scope {
  const ModelDef* def;
  const Scope* parent;
};

class Flattener {
 public:
  Flattener(const Program& prog, Graph& g) : prog_(prog), g_(g) {}

  void run(const FlattenOptions& opts) {
    const ModelDef& m = *prog_.main;
    g_.name = m.name;
    if (m.layers.empty()) fail(m.loc, "model '{}' is empty: it has no layers", m.name);
    if (!m.inputs_declared || m.inputs.empty())
      fail(m.loc, "model '{}' declares no inputs; add e.g. `inputs: {{input: {{shape: [N, 784]}}}}`", m.name);
    json env = model_env(m, opts.args, {}, m.loc, "the command line");
    std::map<std::string, int> in_terms, out_terms;
    for (auto& decl : m.inputs) {
      if (decl.shape.is_null()) fail(decl.loc, "input '{}' of the main model needs a shape, e.g. {{shape: [N, 784]}}", decl.name);
      Value v;
      v.name = decl.name;
      v.kind = ValueKind::Input;
      v.dtype = *parse_dtype(decl.dtype);
      v.shape = to_shape(resolve_expressions(decl.shape, env, decl.loc, m.name), decl.loc, "input '" + decl.name + "'");
      v.typed = true;
      v.loc = decl.loc;
      int id = g_.add_value(std::move(v));
      in_terms[decl.name] = id;
      g_.inputs.push_back(id);
    }
    for (auto& out : m.output_names()) {
      Value v;
      v.name = out;
      v.loc = m.outputs_loc.known() ? m.outputs_loc : m.loc;
      int id = g_.add_value(std::move(v));
      out_terms[out] = id;
      g_.outputs.push_back(id);
      g_.output_names.push_back(out);
    }
    Scope scope{&m, nullptr};
    instantiate(m, scope, env, "", in_terms, out_terms);
  }

 private:
  // ---- helpers -------------------------------------------------------------

  static Shape to_shape(const json& spec, const SourceLoc& loc, const std::string& what) {
    Shape s;
    for (auto& d : spec) {
      if (d.is_number_integer()) {
        if (d.get<int64_t>() < 0) fail(loc, "the shape of {} has a negative size {}", what, d.get<int64_t>());
        s.push_back(Dim(d.get<int64_t>()));
      } else if (d.is_string()) {
        const std::string name = d.get<std::string>();
        bool ident = !name.empty() && (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') &&
                     std::all_of(name.begin(), name.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; });
        bool digits = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); });
        if (digits) fail(loc, "the shape of {} has the size {}, too large for a 64-bit integer", what, name);
        if (!ident)
          fail(loc, "the shape of {} has the size '{}'; a symbolic size must be a plain name such as N or T", what, excerpt(name));
        s.push_back(Dim::symbol(name));
      } else {
        fail(loc, "the shape of {} has a size {} that is neither an integer nor a symbol", what, d.dump());
      }
    }
    return s;
  }

  // A model's arguments: its defaults, overridden by the layer's args. Unknown or missing args are errors.
  json model_env(const ModelDef& m, const json& given, const std::map<std::string, SourceLoc>& locs,
                 const SourceLoc& use_loc, const std::string& where) {
    json env = m.args;
    std::vector<std::string> names;
    for (auto& [k, v] : m.args.items()) names.push_back(k);
    for (auto& [k, v] : given.items()) {
      if (!m.args.contains(k)) {
        auto it = locs.find(k);
        std::string known = names.empty() ? "it takes no arguments" : fmt::format("its arguments: {}", fmt::join(names, ", "));
        fail(it == locs.end() ? use_loc : it->second, "unknown argument '{}' for model '{}'{}; {}", k, m.name,
             did_you_mean(k, names), known);
      }
      env[k] = v;
    }
    for (auto& [k, v] : env.items())
      if (v.is_null()) fail(use_loc, "{}: model '{}' requires argument '{}'", where, m.name, k);
    return env;
  }

  Target lookup(const std::string& op, const Scope& scope, const SourceLoc& loc) {
    for (const Scope* s = &scope; s; s = s->parent)
      if (auto* m = s->def->find_model(op)) return {nullptr, m};
    if (auto* m = prog_.find_library_model(op)) return {nullptr, m};
    if (auto* d = find_op(op)) return {d, nullptr};
    std::vector<std::string> names = op_names();
    for (const Scope* s = &scope; s; s = s->parent)
      for (auto& [k, v] : s->def->models) names.push_back(k);
    for (auto& [k, v] : prog_.library) names.push_back(k);
    fail(loc, "unknown op '{}'{}; run `mithril ops` for the list of ops", op, did_you_mean(op, names));
  }

  // ---- one model instance --------------------------------------------------

  void instantiate(const ModelDef& def, const Scope& scope, const json& env, const std::string& prefix,
                   std::map<std::string, int> conn, const std::map<std::string, int>& out_terms) {
    if (depth_ >= limits().model_depth) {
      if (std::count(open_.begin(), open_.end(), &def))
        fail(def.loc, "model '{}' instantiates itself (directly or through others) more than {} levels deep", def.name,
             limits().model_depth);
      fail(def.loc, "model '{}' is nested {} composites deep, past the limit of {} (raise it with --limit model_depth=N)", def.name,
           depth_ + 1, limits().model_depth);
    }
    // Composites count against the layer limit too: one that only holds others (or only layers that
    // `if` leaves out) adds no node, and a few of them used twice each expand exponentially.
    if (++instances_ > limits().layers)
      fail(def.loc, "model '{}': more than {} layers and composites once repeats and composites expand (raise the limit with "
                    "--limit layers=N)", def.name, limits().layers);
    ++depth_;
    open_.push_back(&def);
    // Declared parameters not bound by the caller.
    for (auto& p : def.params) {
      if (auto bound = conn.find(p.name); bound != conn.end()) {  // bound by the caller: the declaration still holds
        Value& v = g_.value(bound->second);
        if (!p.shape.is_null()) {
          Shape s = to_shape(resolve_expressions(p.shape, env, p.loc, def.name), p.loc, "parameter '" + p.name + "'");
          DType t = *parse_dtype(p.dtype);
          if (!v.typed) {
            v.shape = s, v.dtype = t, v.typed = true;
            if (v.init.is_null()) v.init = p.init;
          } else if (v.shape != s || v.dtype != t) {
            fail(p.loc, "parameter '{}' of model '{}' is declared as {}, but it is bound to '{}' of type {}", p.name, def.name,
                 type_str(t, s), v.name, type_str(v.dtype, v.shape));
          }
        }
        continue;
      }
      Value v;
      v.name = prefix + p.name;
      v.kind = ValueKind::Param;
      v.dtype = *parse_dtype(p.dtype);
      v.init = p.init;
      v.loc = p.loc;
      if (!p.shape.is_null()) {
        v.shape = to_shape(resolve_expressions(p.shape, env, p.loc, def.name), p.loc, "parameter '" + p.name + "'");
        v.typed = true;
      }
      conn[p.name] = g_.add_value(std::move(v));
    }
    std::set<std::string> inputs_here;
    for (auto& [k, v] : conn) inputs_here.insert(k);

    std::vector<Plan> plans = plan_layers(def, scope, env);

    // Create one value per produced connection (model outputs use the caller's values).
    std::map<std::string, const Plan*> producer;
    for (auto& plan : plans)
      for (auto& [port, names] : plan.outs)
        for (auto& n : names) {
          if (inputs_here.count(n))
            fail(plan.layer->loc, "layer '{}' ({}): terminal '{}' is produced twice: it is already an input of model '{}'",
                 prefix + plan.name, plan.layer->op, n, def.name);
          if (auto it = producer.find(n); it != producer.end())
            fail(plan.layer->loc, "layer '{}' ({}): terminal '{}' is produced twice: also by layer '{}' at {}",
                 prefix + plan.name, plan.layer->op, n, prefix + it->second->name, it->second->layer->loc.str());
          producer[n] = &plan;
          if (auto it = out_terms.find(n); it != out_terms.end()) {
            conn[n] = it->second;
          } else {
            Value v;
            v.name = n[0] == '#' ? prefix + plan.name : prefix + n;
            v.loc = plan.layer->loc;
            conn[n] = g_.add_value(std::move(v));
          }
        }
    for (auto& out : def.output_names())
      if (!producer.count(out)) {
        SourceLoc loc = def.outputs_loc.known() ? def.outputs_loc : def.loc;
        std::vector<std::string> produced;
        for (auto& [k, v] : producer) if (k[0] != '#') produced.push_back(k);
        fail(loc, "model '{}': output '{}' is never produced by any layer{}", def.name, out, did_you_mean(out, produced));
      }

    for (auto& plan : plans) emit(def, scope, env, prefix, plan, conn);
    --depth_;
    open_.pop_back();
  }

  // Decide every layer's connections: defaults for sequences, explicit bindings otherwise.
  std::vector<Plan> plan_layers(const ModelDef& def, const Scope& scope, const json& env) {
    if (def.layers.empty()) fail(def.loc, "model '{}' is empty: it has no layers", def.name);
    std::vector<Plan> plans;
    auto inputs = def.input_names();
    // A sequence starts at `input`, or at the model's only input whatever its name.
    std::string prev = std::count(inputs.begin(), inputs.end(), "input") || inputs.size() != 1 ? "input" : inputs[0];
    auto outputs = def.output_names();
    bool output_bound = false;
    for (auto& l : def.layers)
      for (auto& b : l.bindings)
        for (auto& n : b.names)
          if (n == "output") output_bound = true;

    // Which layers `if` keeps, decided once (the last kept layer makes the model's output).
    std::vector<bool> kept(def.layers.size());
    size_t last_kept = def.layers.size();
    for (size_t i = 0; i < def.layers.size(); ++i) {
      const LayerDef& l = def.layers[i];
      json when = resolve_expressions(l.when, env, l.loc, def.name);
      if (!when.is_boolean())
        fail(l.loc, "layer '{}': 'if' must give true or false, found {}", l.name.empty() ? std::to_string(i) : l.name, when.dump());
      kept[i] = when.get<bool>();
      if (kept[i]) last_kept = i;
    }
    for (size_t i = 0; i < def.layers.size(); ++i) {
      const LayerDef& l = def.layers[i];
      std::string base = l.name.empty() ? std::to_string(i) : l.name;
      if (!kept[i]) continue;
      Target t = lookup(l.op, scope, l.op_loc);
      json rep = resolve_expressions(l.repeat, env, l.loc, def.name);
      if (!rep.is_number_integer() || rep.get<int64_t>() < 1)
        fail(l.loc, "layer '{}': 'repeat' must be a positive integer, found {}", base, rep.dump());
      int64_t count = rep.get<int64_t>();
      if (count > limits().layers)
        fail(l.loc, "layer '{}': 'repeat' is {}, past the limit of {} layers (raise it with --limit layers=N)", base, count,
             limits().layers);
      const bool last_layer = i == last_kept;  // the last layer that is not left out by `if`

      std::vector<std::string> in_ports, out_ports, param_ports;
      if (t.op) {
        for (auto& p : t.op->inputs) in_ports.push_back(p.name);
        for (auto& p : t.op->outputs) out_ports.push_back(p.name);
      } else {
        in_ports = t.model->input_names();
        for (auto& p : t.model->params) in_ports.push_back(p.name);
        out_ports = t.model->output_names();
      }
      for (auto& b : l.bindings) {
        bool known = std::count(in_ports.begin(), in_ports.end(), b.port) || std::count(out_ports.begin(), out_ports.end(), b.port);
        if (!known) {
          std::vector<std::string> all = in_ports;
          all.insert(all.end(), out_ports.begin(), out_ports.end());
          fail(b.loc, "layer '{}': {} has no port '{}'{}; its ports: {}", base, l.op, b.port, did_you_mean(b.port, all),
               fmt::join(all, ", "));
        }
      }
      std::string chain_port = t.op ? (t.op->chain_input() >= 0 ? t.op->inputs[t.op->chain_input()].name : "")
                                    : (in_ports.empty() ? "" : in_ports[0]);
      if (t.model) chain_port = std::count(in_ports.begin(), in_ports.end(), "input") ? "input" : chain_port;

      for (int64_t r = 0; r < count; ++r) {
        bool indexed = l.repeat != json(1);  // `repeat: $layers` names h.0 even when layers is 1
        Plan p{&l, indexed ? fmt::format("{}.{}", base, r) : base, t, {}, {}};
        for (auto& port : in_ports) {
          const Binding* b = l.binding(port);
          bool chained = port == chain_port && (!b || r > 0);
          if (chained) p.ins.push_back({port, {prev}});
          else if (b) p.ins.push_back({port, b->names});
        }
        for (size_t k = 0; k < out_ports.size(); ++k) {
          const std::string& port = out_ports[k];
          const Binding* b = l.binding(port);
          bool is_last_copy = r + 1 == count;
          if (b && is_last_copy) {
            p.outs.push_back({port, b->names});
          } else if (k == 0) {
            bool becomes_output = last_layer && is_last_copy && !output_bound &&
                                  std::count(outputs.begin(), outputs.end(), "output");
            p.outs.push_back({port, {becomes_output ? std::string("output") : fmt::format("#{}.{}.{}", i, r, port)}});
          } else if (t.op && t.op->outputs[k].variadic) {
            fail(l.loc, "layer '{}' ({}): name the outputs of port '{}', e.g. {}: [a, b]", base, l.op, port, port);
          } else {
            p.outs.push_back({port, {fmt::format("#{}.{}.{}", i, r, port)}});
          }
        }
        if (t.op && !t.op->outputs.empty() && t.op->outputs[0].variadic && !l.binding(t.op->outputs[0].name)) {
          json attrs = resolve_args(*t.op, resolve_expressions(l.args, env, l.loc, def.name), l.arg_locs, l.op_loc,
                                    "layer '" + base + "'");
          int n = t.op->output_count ? t.op->output_count(attrs) : 2;
          std::vector<std::string> names;
          for (int k = 0; k < n; ++k) names.push_back(fmt::format("part{}", k));
          fail(l.loc, "layer '{}' ({}): name its {} outputs, e.g. {}: [{}]", base, l.op, n, t.op->outputs[0].name,
               fmt::join(names, ", "));
        }
        if (!p.outs.empty() && !p.outs[0].second.empty()) prev = p.outs[0].second[0];
        plans.push_back(std::move(p));
      }
    }
    return plans;
  }

  int resolve_conn(const std::string& n, const PortKind kind, std::map<std::string, int>& conn, const Plan& plan,
                   const std::string& prefix, const std::string& port) {
    if (auto it = conn.find(n); it != conn.end()) return it->second;
    if (kind != PortKind::Data) {  // a parameter port bound to a fresh name: a shared parameter
      Value v;
      v.name = prefix + n;
      v.kind = kind == PortKind::State ? ValueKind::State : ValueKind::Param;
      v.loc = plan.layer->loc;
      return conn[n] = g_.add_value(std::move(v));
    }
    std::vector<std::string> known;
    for (auto& [k, v] : conn)
      if (k[0] != '#') known.push_back(k);
    const Binding* b = plan.layer->binding(port);
    SourceLoc loc = b ? b->loc : plan.layer->loc;
    std::string hint = did_you_mean(n, known);
    if (n == "input" && !b)
      fail(loc, "layer '{}' ({}) reads the model's 'input', but this model has no terminal 'input'; bind its '{}' port to one of: {}",
           prefix + plan.name, plan.layer->op, port, fmt::join(known, ", "));
    fail(loc, "layer '{}' ({}): undefined terminal '{}' for port '{}'{}", prefix + plan.name, plan.layer->op, n, port,
         hint.empty() ? fmt::format("; known terminals: {}", fmt::join(known, ", ")) : hint);
  }

  void emit(const ModelDef& def, const Scope& scope, const json& env, const std::string& prefix, const Plan& plan,
            std::map<std::string, int>& conn) {
    const LayerDef& l = *plan.layer;
    std::string full = prefix + plan.name;
    std::string where = fmt::format("layer '{}'", full);
    json args = json::object();
    for (auto& [k, v] : l.args.items()) {
      auto it = l.arg_locs.find(k);
      args[k] = resolve_expressions(v, env, it == l.arg_locs.end() ? l.loc : it->second, def.name);
    }
    if (plan.target.op) {
      const OpDef& op = *plan.target.op;
      Node n;
      n.op = &op;
      n.name = full;
      n.loc = l.loc;
      n.attrs = resolve_args(op, args, l.arg_locs, l.op_loc, where, l.arg_key_locs);
      n.attr_locs = l.arg_locs;
      n.inputs.resize(op.inputs.size());
      n.outputs.resize(op.outputs.size());
      for (auto& [port, names] : plan.ins) {
        int p = op.input_index(port);
        if (names.size() > 1 && !op.inputs[p].variadic)
          fail(l.loc, "{} ({}): port '{}' takes one value, found a list of {}", where, op.name, port, names.size());
        for (auto& nm : names) n.inputs[p].push_back(resolve_conn(nm, op.inputs[p].kind, conn, plan, prefix, port));
      }
      for (size_t p = 0; p < op.inputs.size(); ++p)
        if (n.inputs[p].empty() && op.inputs[p].kind == PortKind::Data && !op.inputs[p].optional)
          fail(l.loc, "{} ({}): input port '{}' is not bound; bind it with `{}: NAME`", where, op.name, op.inputs[p].name,
               op.inputs[p].name);
      for (auto& [port, names] : plan.outs) {
        int p = op.output_index(port);
        if (names.size() > 1 && !op.outputs[p].variadic)
          fail(l.loc, "{} ({}): output port '{}' produces one value, found a list of {}", where, op.name, port, names.size());
        for (auto& nm : names) n.outputs[p].push_back(conn.at(nm));
      }
      if (static_cast<int64_t>(g_.nodes.size()) >= limits().layers)
        fail(l.loc, "{}: the model has more than {} layers once repeats and composites expand (raise the limit with --limit "
                    "layers=N)", where, limits().layers);
      int id = g_.add_node(std::move(n));
      for (auto& port : g_.nodes[id].outputs)
        for (int v : port) g_.value(v).producer = id;
      return;
    }
    // A composite: bind its terminals and recurse.
    const ModelDef& sub = *plan.target.model;
    json sub_env = model_env(sub, args, l.arg_key_locs, l.loc, where);
    std::map<std::string, int> in_terms, out_terms;
    for (auto& [port, names] : plan.ins) {
      bool is_param = std::any_of(sub.params.begin(), sub.params.end(), [&port = port](auto& p) { return p.name == port; });
      if (names.size() != 1) fail(l.loc, "{}: terminal '{}' of model '{}' takes one connection", where, port, sub.name);
      in_terms[port] = resolve_conn(names[0], is_param ? PortKind::Param : PortKind::Data, conn, plan, prefix, port);
    }
    for (auto& term : sub.input_names())
      if (!in_terms.count(term))
        fail(l.loc, "{}: input '{}' of model '{}' is not bound; bind it with `{}: NAME`", where, term, sub.name, term);
    for (auto& [port, names] : plan.outs) {
      if (names.size() != 1) fail(l.loc, "{}: terminal '{}' of model '{}' takes one connection", where, port, sub.name);
      out_terms[port] = conn.at(names[0]);
    }
    // Names resolve in the composite's own `models:`, then outward through the callers' scopes,
    // then in the imports and the standard library.
    Scope inner{&sub, &scope};
    instantiate(sub, inner, sub_env, full + ".", in_terms, out_terms);
  }

  const Program& prog_;
  Graph& g_;
  int64_t depth_ = 0;
  int64_t instances_ = 0;  // composites instantiated so far
  std::vector<const ModelDef*> open_;  // the composites being instantiated, outermost first
};

}  // namespace

Graph flatten(const Program& prog, const FlattenOptions& opts) {
  Graph g;
  Flattener(prog, g).run(opts);
  return g;
}

}  // namespace mithril
