// The `bind-shapes` and `infer-shapes` passes.
#include <algorithm>
#include <charconv>

#include "ops/registry.h"
#include "passes/fuse.h"
#include "passes/layout.h"
#include "passes/passes.h"
#include "support/checked.h"
#include "support/limits.h"

namespace mithril {

void parse_shape_binding(const std::string& text, ShapeBindings& out) {
  auto eq = text.find('=');
  SourceLoc where{"--shape " + text, 0, 0};
  auto bad = [&](const std::string& why) {
    fail(where, "{}; expected NAME=D1,D2,... (an input's shape, e.g. input=64,784) or SYMBOL=VALUE (e.g. N=64)", why);
  };
  if (eq == std::string::npos || eq == 0) bad("missing '='");
  std::string name = text.substr(0, eq);
  std::vector<int64_t> dims;
  std::string rest = text.substr(eq + 1);
  size_t p = rest.empty() ? 1 : 0;  // "NAME=" is a scalar: no sizes
  while (p <= rest.size()) {
    size_t q = rest.find(',', p);
    if (q == std::string::npos) q = rest.size();
    std::string tok = rest.substr(p, q - p);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (tok.empty() || ec != std::errc() || ptr != tok.data() + tok.size() || v < 0) bad(fmt::format("'{}' is not a size", tok));
    dims.push_back(v);
    p = q + 1;
  }
  out.inputs[name] = dims;
  out.where[name] = where;
}

Graph bind_shapes(Graph g, const ShapeBindings& b) {
  std::map<std::string, int64_t> env = b.symbols;
  std::map<std::string, std::string> bound_by;
  auto bind = [&](const std::string& sym, int64_t v, const std::string& by, const SourceLoc& loc) {
    auto it = env.find(sym);
    if (it != env.end() && it->second != v)
      fail(loc, "dimension {} is bound to {} by {} and to {} by {}", sym, it->second, bound_by[sym], v, by);
    env[sym] = v;
    bound_by[sym] = by;
  };
  for (auto& [name, dims] : b.inputs) {
    SourceLoc loc = b.where.count(name) ? b.where.at(name) : SourceLoc{};
    Value* input = nullptr;
    for (int id : g.inputs)
      if (g.value(id).name == name) input = &g.value(id);
    if (!input) {
      bool is_symbol = false;
      for (int id : g.inputs)
        for (auto& d : g.value(id).shape) is_symbol |= d.symbols().count(name) > 0;
      if (is_symbol && dims.size() == 1) {
        bind(name, dims[0], "--shape " + name, loc);
        continue;
      }
      std::vector<std::string> names;
      for (int id : g.inputs) names.push_back(g.value(id).name);
      fail(loc, "the model has no input or dimension '{}'{}; its inputs: {}", name, did_you_mean(name, names), fmt::join(names, ", "));
    }
    Shape given;
    for (auto v : dims) given.push_back(Dim(v));
    if (dims.size() != input->shape.size())
      fail(loc, "input '{}' has rank {} ({}), but the given shape {} has {} sizes", name, input->shape.size(),
           shape_str(input->shape), shape_str(given), dims.size());
    for (size_t i = 0; i < dims.size(); ++i) {
      const Dim& d = input->shape[i];
      if (auto c = d.as_const()) {
        if (*c != dims[i])
          fail(loc, "input '{}' is declared as {}, but the given shape is {} (dimension {} differs)", name,
               shape_str(input->shape), shape_str(given), i);
      } else if (d.symbols().size() == 1 && d == Dim::symbol(*d.symbols().begin())) {
        bind(*d.symbols().begin(), dims[i], "--shape " + name, loc);
      }
    }
  }
  for (int id : g.inputs) {
    Value& v = g.value(id);
    for (auto& d : v.shape) d = d.substitute(env);
  }
  for (auto& v : g.values)
    if (v.kind == ValueKind::Param && v.typed)
      for (auto& d : v.shape) d = d.substitute(env);
  for (auto& [k, val] : env) g.bindings[k] = val;
  return g;
}

// A tensor's elements, where its shape is known now, within limits().tensor_elements (symbolic
// dims are checked again against their bounds by the memory plan).
static void check_size(const Value& v, const Node& n) {
  int64_t elems = 1;
  bool over = false;
  for (auto& d : v.shape)
    if (auto c = d.as_const()) over = over || __builtin_mul_overflow(elems, std::max<int64_t>(*c, 0), &elems);
  if (over || elems > limits().tensor_elements)
    fail(n.loc, "layer '{}' ({}): '{}' {} has more than {} elements (raise the limit with --limit tensor_elements=N)", n.name,
         n.op->name, v.name, shape_str(v.shape), limits().tensor_elements);
}

Graph infer_shapes(Graph g) {
  for (auto& n : g.nodes) {
    for (size_t p = 0; p < n.inputs.size(); ++p)
      for (int v : n.inputs[p])
        if (!g.value(v).typed && n.op->inputs[p].kind == PortKind::Data) {  // parameter ports: the op gives the shape
          const Value& val = g.value(v);
          if (val.kind == ValueKind::Param)
            fail(n.loc, "layer '{}' ({}): the shape of parameter '{}' is unknown; declare it under `params:` with a shape",
                 n.name, n.op->name, val.name);
          fail(n.loc, "layer '{}' ({}): the type of '{}' is unknown", n.name, n.op->name, val.name);
        }
    InferContext ctx(g, n.id);
    try {
      n.op->infer(ctx);
    } catch (const SizeOverflow& e) {  // from Dim arithmetic in the rule: a size past 64 bits
      fail(n.loc, "layer '{}' ({}): a size does not fit in 64 bits: {}", n.name, n.op->name, e.what());
    }
    for (auto& port : g.nodes[n.id].outputs)
      for (int v : port)
        if (!g.value(v).typed) throw std::logic_error(fmt::format("op {} left output '{}' untyped", n.op->name, g.value(v).name));
    // Every value the node typed (outputs, and parameters it created) within the element limit.
    for (size_t p = 0; p < n.inputs.size(); ++p)
      for (int v : n.inputs[p]) check_size(g.value(v), n);
    for (auto& port : n.outputs)
      for (int v : port) check_size(g.value(v), n);
  }
  return g;
}

std::vector<Pass> frontend_passes(const PipelineOptions& opts) {
  ShapeBindings shapes = opts.shapes;
  std::vector<Pass> passes = {
      {"bind-shapes", "bind symbolic input dims given with --shape", false, [shapes](Graph g) { return bind_shapes(std::move(g), shapes); }},
      {"order", "topological order; cycles and dead layers", false, [](Graph g) { return order_nodes(std::move(g)); }},
      {"infer-shapes", "shapes, dtypes and parameter shapes", false, [](Graph g) { return infer_shapes(std::move(g)); }},
      // Optimizing passes on the forward graph (passes/optimize.h): the backward pass is built from the result.
      {"simplify", "algebraic identities: x*1, x+0, Identity, Permute and Reshape chains, Log(Softmax)", true,
       [](Graph g) { return simplify(std::move(g)); }},
      {"fold", "constant folding: nodes of constant inputs become Constants", true,
       [](Graph g) { return fold_constants(std::move(g)); }},
      {"cse", "common subexpressions: identical nodes computed once", true, [](Graph g) { return cse(std::move(g)); }},
      {"dce", "dead code: nodes no output needs (parameters and state are kept)", true,
       [](Graph g) { return dce(std::move(g)); }},
  };
  if (opts.train)
    passes.push_back({"loss", "the training loss: targets, loss layers, weights, regularization", false,
                      [spec = *opts.train](Graph g) { return add_loss(std::move(g), spec); }});
  passes.push_back({"autodiff", "the backward pass (with --grad)", false, [grad = opts.grad](Graph g) { return autodiff(std::move(g), grad); }});
  if (opts.train && opts.grad.enabled)
    passes.push_back({"optimizer", "the parameter updates of the training step", false,
                      [spec = *opts.train](Graph g) { return add_optimizer(std::move(g), spec); }});
  // Last, so that the backward pass and the optimizer's chains fuse too (passes/fuse.h). Only for
  // code generation (and when asked to dump one of them, with those before it): `mithril check`
  // summarizes the layers as written.
  const std::vector<std::string> late = {"fold-batchnorm", "fuse-elementwise", "fuse-epilogue", "fuse-pool", "layout"};
  auto dumped_at = std::find(late.begin(), late.end(), opts.dump_after);
  auto wanted = [&](const std::string& name) {
    const auto& mine = opts.late_passes;  // the target's (codegen/target.h)
    if (std::find(mine.begin(), mine.end(), name) == mine.end()) return false;
    return opts.codegen ||
           (dumped_at != late.end() && std::find(late.begin(), dumped_at + 1, name) != dumped_at + 1);
  };
  if (wanted("fold-batchnorm"))
    passes.push_back({"fold-batchnorm", "BatchNorm2d into the preceding Conv2d (programs without gradients, eval mode)",
                      true, [training = opts.training](Graph g) { return training ? g : fold_batchnorm(std::move(g)); }});
  if (wanted("fuse-elementwise"))
    passes.push_back({"fuse-elementwise", "chains of elementwise ops in one loop", true,
                      [](Graph g) { return fuse_elementwise(std::move(g)); }});
  if (wanted("fuse-epilogue"))
    passes.push_back({"fuse-epilogue", "activations (and residual adds) into the epilogue of a Linear or convolution (programs without gradients)", true,
                      [](Graph g) { return fuse_epilogue(std::move(g)); }});
  if (wanted("fuse-pool"))
    passes.push_back({"fuse-pool", "a max or average pooling into the Conv2d whose output only it reads (programs without gradients)",
                      true, [](Graph g) { return fuse_pool(std::move(g)); }});
  if (wanted("layout"))
    passes.push_back({"layout", "channels-last (NHWC) for the convolutions whose kernels gain more than the transposes cost (programs without gradients)",
                      true, [](Graph g) { return choose_layouts(std::move(g)); }});
  // Applied by the memory plan (codegen/plan.h), not to the graph: listed so that it can be switched off.
  if (opts.codegen && wanted("pack-weights"))
    passes.push_back({"pack-weights", "GEMM weights kept packed for the CPU kernel (programs without gradients)", true,
                      [](Graph g) { return g; }});
  return passes;
}

std::vector<std::string> optional_passes() {
  PipelineOptions opts;
  opts.codegen = true;  // every pass there is
  TrainSpec spec;
  opts.train = &spec;
  opts.grad.enabled = true;
  std::vector<std::string> out;
  for (auto& p : frontend_passes(opts))
    if (p.optional) out.push_back(p.name);
  return out;
}

std::vector<std::string> resolve_disabled_passes(const std::vector<std::string>& names, PipelineOptions opts) {
  opts.codegen = true;  // every pass there is
  TrainSpec spec;
  if (!opts.train) opts.train = &spec;
  opts.grad.enabled = true;
  std::vector<std::string> all, optional, out;
  for (auto& p : frontend_passes(opts)) {
    all.push_back(p.name);
    if (p.optional) optional.push_back(p.name);
  }
  for (auto& n : names) {
    if (n == "all") {
      out.insert(out.end(), optional.begin(), optional.end());
      continue;
    }
    if (std::find(all.begin(), all.end(), n) == all.end())
      fail(SourceLoc{"--no-pass " + n, 0, 0}, "no pass named '{}'; passes that can be switched off: {} (or all)", n,
           fmt::join(optional, ", "));
    if (std::find(optional.begin(), optional.end(), n) == optional.end())
      fail(SourceLoc{"--no-pass " + n, 0, 0}, "pass '{}' cannot be switched off; those that can: {} (or all)", n,
           fmt::join(optional, ", "));
    out.push_back(n);
  }
  return out;
}

Graph run_passes(Graph g, const std::vector<Pass>& passes, const PipelineOptions& opts) {
  const bool verify = opts.verify_each || verify_each_from_env();
  // Before `order` the nodes are in the model file's order: the verifier checks from `order` on.
  bool ordered = std::none_of(passes.begin(), passes.end(), [](const Pass& p) { return p.name == "order"; });
  for (auto& p : passes) {
    bool off = std::find(opts.disabled.begin(), opts.disabled.end(), p.name) != opts.disabled.end();
    if (off && p.optional) continue;
    g = p.run(std::move(g));
    if (p.name == "order") ordered = true;
    if (verify && ordered) verify_after(g, p.name);
    if (opts.dump_after == p.name && opts.on_dump) opts.on_dump(p.name, g);
  }
  return g;
}

}  // namespace mithril
