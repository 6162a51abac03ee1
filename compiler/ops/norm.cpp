// Normalization: BatchNorm2d, LayerNorm and GroupNorm, with PyTorch's
// arguments, parameter names and initializers (weight ones, bias zeros;
// BatchNorm's running_mean zeros and running_var ones, kept as state).
// Gradients: one internal backward op per norm (LayerNormGrad, GroupNormGrad,
// BatchNorm2dGrad) whose kernel gives the wanted gradients of input, weight and
// bias together; running statistics are state and get none.
#include <algorithm>

#include "ops/emit.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {
namespace {

json ones() { return {{"kind", "ones"}}; }
json zeros() { return {{"kind", "zeros"}}; }

void check_eps(InferContext& c) {
  if (c.f("eps") < 0) c.fail_arg("eps", "'eps' must be non-negative, found {}", c.f("eps"));
}

// weight and bias of shape `s` when `affine`, else neither may be bound.
void affine_params(InferContext& c, bool affine, bool bias, const Shape& s, const std::string& why_not) {
  if (affine) {
    c.param("weight", c.dtype("input"), s, ones());
    if (bias) c.param("bias", c.dtype("input"), s, zeros());
    else c.no_param("bias", "bias is false");
  } else {
    c.no_param("weight", why_not);
    c.no_param("bias", why_not);
  }
}


// ---- CPU code generation -------------------------------------------------

std::string opt_param(EmitContext& e, const char* port) { return e.has(port) ? e.x(port) : "nullptr"; }

// A double as a C++ literal that reads back exactly.
std::string literal(double v) { return cpp_number(v); }

// ---- gradients -----------------------------------------------------------

const char* const kGradPorts[] = {"input", "weight", "bias"};

// A norm's gradient rule: one `grad_op` node computes the wanted gradients of input, weight and
// bias (flagged grad_input / grad_weight / grad_bias in `attrs`) as its list output, in that order.
// It reads dy, the input and the weight (plus `extra` inputs).
void norm_grad(GradContext& g, const std::string& grad_op, json attrs,
               const std::vector<std::pair<std::string, std::vector<int>>>& extra = {}) {
  std::vector<std::string> wanted;
  for (const char* port : kGradPorts) {
    bool w = g.has(port) && g.wants(port);
    attrs[std::string("grad_") + port] = w;
    if (w) wanted.push_back(port);
  }
  if (wanted.empty()) return;
  std::vector<std::pair<std::string, std::vector<int>>> inputs = {{"grad", {g.dout()}}, {"input", {g.in("input")}}};
  if (g.has("weight")) inputs.push_back({"weight", {g.in("weight")}});
  inputs.insert(inputs.end(), extra.begin(), extra.end());
  auto outs = g.add(grad_op, inputs, attrs, static_cast<int>(wanted.size()));
  for (size_t k = 0; k < wanted.size(); ++k) g.grad(wanted[k], outs[k]);
}

// The backward ops' common ports and flags; the list output holds the flagged gradients.
OpDef norm_grad_op(const std::string& name, const std::string& summary) {
  OpDef d(name, "norm", summary);
  d.in("grad").in("input").in("weight", true)
      .out_list("output", [](const json& a) {
        return static_cast<int>(a.at("grad_input").get<bool>()) + a.at("grad_weight").get<bool>() +
               a.at("grad_bias").get<bool>();
      })
      .trait("internal")
      .arg("eps", ArgType::Float, json(1e-5), "added to the variance for stability")
      .arg("grad_input", ArgType::Bool, json(true), "compute the input's gradient")
      .arg("grad_weight", ArgType::Bool, json(false), "compute the weight's gradient")
      .arg("grad_bias", ArgType::Bool, json(false), "compute the bias's gradient");
  d.rule([](InferContext& c) {
    size_t k = 0;
    if (c.b("grad_input")) c.out("output", c.dtype("input"), c.shape("input"), k++);
    if (c.b("grad_weight") || c.b("grad_bias")) {
      if (!c.has("weight")) c.fail("the weight and bias gradients need the weight bound");
      for (const char* f : {"grad_weight", "grad_bias"})
        if (c.b(f)) c.out("output", c.dtype("input"), c.shape("weight"), k++);
    }
  });
  return d;
}

// The output pointers for the kernel's (dx, dweight, dbias), "nullptr" where not flagged.
std::vector<std::string> grad_outputs(EmitContext& e) {
  std::vector<std::string> r;
  size_t k = 0;
  for (const char* port : kGradPorts) r.push_back(e.b(std::string("grad_") + port) ? e.y("output", k++) : "nullptr");
  return r;
}

// Number of trailing dims LayerNorm normalizes over.
size_t normalized_rank(const json& ns) { return ns.is_null() || ns.is_number() ? 1 : ns.size(); }

}  // namespace

MITHRIL_REGISTER_OPS(norm) {
  register_op(OpDef("BatchNorm2d", "norm",
                    "normalize each channel of [N, C, H, W] over N, H and W; batch statistics in training, "
                    "running statistics in evaluation")
                  .in("input").param("weight", true).param("bias", true).state("running_mean").state("running_var")
                  .out().trait("norm")
                  .grad([](GradContext& g) {
                    norm_grad(g, "BatchNorm2dGrad", {{"eps", g.f("eps")}},
                              {{"running_mean", {g.in("running_mean")}}, {"running_var", {g.in("running_var")}}});
                  })
                  .arg("eps", ArgType::Float, json(1e-5), "added to the variance for stability")
                  .arg("momentum", ArgType::Float, json(0.1), "weight of the new batch in the running statistics")
                  .arg("affine", ArgType::Bool, json(true), "learn a per-channel scale (weight) and shift (bias)")
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& in = e.in("input").shape;
                    if (e.training()) {
                      // Training (as PyTorch's train mode): normalize with the batch mean and biased variance, and
                      // update the running statistics in place with momentum (unbiased variance for running_var).
                      // The batch statistics are not kept (nothing reads them: the kernel takes null for them).
                      e.line("rt::k::batch_norm_training({}, nullptr, nullptr, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});",
                             e.y(), e.x("running_mean"), e.x("running_var"), e.x("input"), opt_param(e, "weight"),
                             opt_param(e, "bias"), EmitContext::dim(in[0]), EmitContext::dim(in[1]),
                             EmitContext::numel(in, 2, 4), literal(e.f("eps")), literal(e.f("momentum")));
                      return;
                    }
                    // Inference: the running statistics.
                    e.line("rt::k::batch_norm_inference({}, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("input"),
                           e.x("running_mean"), e.x("running_var"), opt_param(e, "weight"), opt_param(e, "bias"),
                           EmitContext::dim(in[0]), EmitContext::dim(in[1]), EmitContext::numel(in, 2, 4),
                           literal(e.f("eps")));
                  })
                  .emit("cuda", [](EmitContext& e) {  // evaluation: the running statistics, per element
                    const Shape& in = e.in("input").shape;
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    if (e.training()) {  // the batch's statistics, one block per channel (cuda/train.cuh)
                      e.line("rt::cuda::batch_norm_training(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(),
                             e.x("running_mean"), e.x("running_var"), e.x("input"), opt_param(e, "weight"), opt_param(e, "bias"),
                             EmitContext::dim(in[0]), EmitContext::dim(in[1]), EmitContext::numel(in, 2, 4), literal(e.f("eps")),
                             literal(e.f("momentum")), e.layer());
                      return;
                    }
                    e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", EmitContext::numel(in));
                    e.line("  const int64_t k = i / {} % {};  // the channel", EmitContext::numel(in, 2, 4), EmitContext::dim(in[1]));
                    e.line("  {}[i] = ({}[i] - {}[k]) / sqrtf({}[k] + {}f){}{};", e.y(), e.x("input"), e.x("running_mean"),
                           e.x("running_var"), e.f("eps"), e.has("weight") ? " * " + e.x("weight") + "[k]" : "",
                           e.has("bias") ? " + " + e.x("bias") + "[k]" : "");
                    e.line("}}, {});", e.layer());
                  })
                  .rule([](InferContext& c) {
                    c.expect_float("input");
                    if (c.rank("input") != 4)
                      c.fail("'input' must have rank 4 ([N, C, H, W]), found rank {}: {}", c.rank("input"),
                             type_str(c.dtype("input"), c.shape("input")));
                    check_eps(c);
                    double m = c.f("momentum");
                    if (m < 0 || m > 1) c.fail_arg("momentum", "'momentum' must be between 0 and 1, found {}", m);
                    int64_t ch = c.const_dim(c.shape("input")[1], "the channel count (dimension 1 of 'input')");
                    Shape s = {Dim(ch)};
                    affine_params(c, c.b("affine"), true, s, "affine is false");
                    c.state("running_mean", c.dtype("input"), s, zeros());
                    c.state("running_var", c.dtype("input"), s, ones());
                    c.out("output", c.dtype("input"), c.shape("input"));
                  }));

  register_op(OpDef("LayerNorm", "norm", "normalize over the trailing dimensions given by normalized_shape")
                  .in("input").param("weight", true).param("bias", true).out().trait("norm")
                  .grad([](GradContext& g) {
                    norm_grad(g, "LayerNormGrad", {{"eps", g.f("eps")}, {"normalized_shape", g.arg("normalized_shape")}});
                  })
                  .arg("normalized_shape", ArgType::IntOrList, json(nullptr),
                       "the trailing dimensions to normalize over (default: the last dimension)")
                  .arg("eps", ArgType::Float, json(1e-5), "added to the variance for stability")
                  .arg("elementwise_affine", ArgType::Bool, json(true), "learn a scale (weight) and shift (bias)")
                  .arg("bias", ArgType::Bool, json(true), "learn the shift (with elementwise_affine)")
                  .emit("cpu", [](EmitContext& e) {
                    // rows x cols, cols = the product of the normalized trailing dims.
                    const Shape& in = e.in("input").shape;
                    const json& ns = e.arg("normalized_shape");
                    size_t trailing = normalized_rank(ns);
                    e.line("rt::k::layer_norm({}, nullptr, nullptr, {}, {}, {}, {}, {}, {});", e.y(), e.x("input"),
                           opt_param(e, "weight"), opt_param(e, "bias"), EmitContext::numel(in, 0, in.size() - trailing),
                           EmitContext::numel(in, in.size() - trailing, in.size()), literal(e.f("eps")));
                  })
                  .emit("cuda", [](EmitContext& e) {  // one block per row (cuda/kernels.cuh)
                    const Shape& in = e.in("input").shape;
                    size_t trailing = normalized_rank(e.arg("normalized_shape"));
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    e.line("rt::cuda::layer_norm_rows(device_, {}, nullptr, nullptr, {}, {}, {}, {}, {}, {}, {});", e.y(),
                           e.x("input"), opt_param(e, "weight"), opt_param(e, "bias"),
                           EmitContext::numel(in, 0, in.size() - trailing),
                           EmitContext::numel(in, in.size() - trailing, in.size()), literal(e.f("eps")), e.layer());
                  })
                  .rule([](InferContext& c) {
                    c.expect_float("input");
                    check_eps(c);
                    Shape in = c.shape("input");  // a copy: creating parameters may move the graph's values
                    Shape norm;
                    if (c.is_null("normalized_shape")) {
                      if (in.empty()) c.fail("'input' must have rank 1 or more, found a scalar");
                      norm = {Dim(c.const_dim(in.back(), "the normalized size (last dimension of 'input')"))};
                    } else {
                      auto ns = c.int_list("normalized_shape");
                      if (ns.empty()) c.fail_arg("normalized_shape", "'normalized_shape' must not be empty");
                      for (int64_t v : ns) {
                        if (v <= 0)
                          c.fail_arg("normalized_shape", "'normalized_shape' must be positive, found [{}]",
                                     fmt::join(ns, ", "));
                        norm.push_back(Dim(v));
                      }
                      bool match = in.size() >= norm.size() && std::equal(norm.begin(), norm.end(), in.end() - norm.size());
                      if (!match)
                        c.fail_arg("normalized_shape",
                                   "the trailing dimensions of 'input' must equal normalized_shape {}, found input {}",
                                   shape_str(norm), type_str(c.dtype("input"), in));
                    }
                    affine_params(c, c.b("elementwise_affine"), c.b("bias"), norm, "elementwise_affine is false");
                    c.out("output", c.dtype("input"), in);
                  }));

  register_op(OpDef("GroupNorm", "norm", "split the channels of [N, C, ...] into num_groups groups and normalize each group")
                  .in("input").param("weight", true).param("bias", true).out().trait("norm")
                  .grad([](GradContext& g) {
                    norm_grad(g, "GroupNormGrad", {{"eps", g.f("eps")}, {"num_groups", g.i("num_groups")}});
                  })
                  .arg("num_groups", ArgType::Int, std::nullopt, "number of channel groups; divides C")
                  .arg("eps", ArgType::Float, json(1e-5), "added to the variance for stability")
                  .arg("affine", ArgType::Bool, json(true), "learn a per-channel scale (weight) and shift (bias)")
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& in = e.in("input").shape;
                    e.line("rt::k::group_norm({}, nullptr, nullptr, {}, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("input"),
                           opt_param(e, "weight"), opt_param(e, "bias"), EmitContext::dim(in[0]), EmitContext::dim(in[1]),
                           EmitContext::numel(in, 2, in.size()), e.i("num_groups"), literal(e.f("eps")));
                  })
                  .emit("cuda", [](EmitContext& e) {  // one block per (sample, group) (cuda/backward.cuh)
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    const Shape& in = e.in("input").shape;
                    e.line("rt::cuda::group_norm(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("input"),
                           opt_param(e, "weight"), opt_param(e, "bias"), EmitContext::dim(in[0]), EmitContext::dim(in[1]),
                           EmitContext::numel(in, 2, in.size()), e.i("num_groups"), literal(e.f("eps")), e.layer());
                  })
                  .rule([](InferContext& c) {
                    c.expect_float("input");
                    if (c.rank("input") < 2)
                      c.fail("'input' must have rank 2 or more ([N, C, ...]), found rank {}: {}", c.rank("input"),
                             type_str(c.dtype("input"), c.shape("input")));
                    check_eps(c);
                    int64_t groups = c.i("num_groups");
                    if (groups <= 0) c.fail_arg("num_groups", "'num_groups' must be positive, found {}", groups);
                    int64_t ch = c.const_dim(c.shape("input")[1], "the channel count (dimension 1 of 'input')");
                    if (ch % groups != 0)
                      c.fail_arg("num_groups", "the channel count {} is not divisible by num_groups {} (input {})", ch,
                                 groups, type_str(c.dtype("input"), c.shape("input")));
                    affine_params(c, c.b("affine"), true, {Dim(ch)}, "affine is false");
                    c.out("output", c.dtype("input"), c.shape("input"));
                  }));

  // ---- backward ops (internal) ----

  register_op(norm_grad_op("LayerNormGrad", "LayerNorm's backward: the gradients of input, weight and bias, one kernel")
                  .arg("normalized_shape", ArgType::IntOrList, json(nullptr), "as LayerNorm's")
                  .scratch_elems("cpu", [](const Node& n, const Graph& g) {  // the row statistics
                    const Shape& in = g.value(n.inputs[1][0]).shape;
                    size_t lead = in.size() - normalized_rank(n.attrs.at("normalized_shape"));
                    return Dim(2) * numel(Shape(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(lead)));
                  })
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& in = e.in("input").shape;
                    size_t lead = in.size() - normalized_rank(e.arg("normalized_shape"));
                    auto d = grad_outputs(e);
                    e.line("rt::k::layer_norm_backward({}, {}, {}, {}, {}, {}, {}, {}, {}, {});", d[0], d[1], d[2],
                           e.x("grad"), e.x("input"), opt_param(e, "weight"), EmitContext::numel(in, 0, lead),
                           EmitContext::numel(in, lead, in.size()), literal(e.f("eps")), e.scratch());
                  })
                  .scratch_elems("cuda", [](const Node& n, const Graph& g) {  // each row's mean and rstd
                    const Shape& in = g.value(n.inputs[1][0]).shape;
                    size_t lead = in.size() - normalized_rank(n.attrs.at("normalized_shape"));
                    return Dim(2) * numel(Shape(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(lead)));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.in("input").dtype != DType::f32) e.unsupported("float64");
                    const Shape& in = e.in("input").shape;
                    size_t lead = in.size() - normalized_rank(e.arg("normalized_shape"));
                    auto d = grad_outputs(e);
                    e.line("rt::cuda::layer_norm_backward(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", d[0], d[1], d[2],
                           e.x("grad"), e.x("input"), opt_param(e, "weight"), EmitContext::numel(in, 0, lead),
                           EmitContext::numel(in, lead, in.size()), literal(e.f("eps")), e.scratch(), e.layer());
                  }));

  register_op(norm_grad_op("GroupNormGrad", "GroupNorm's backward: the gradients of input, weight and bias, one kernel")
                  .arg("num_groups", ArgType::Int, std::nullopt, "as GroupNorm's")
                  .scratch_elems("cpu", [](const Node& n, const Graph& g) {  // per-(sample, channel) sums
                    const Shape& in = g.value(n.inputs[1][0]).shape;
                    return Dim(2) * in[0] * in[1];
                  })
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& in = e.in("input").shape;
                    auto d = grad_outputs(e);
                    e.line("rt::k::group_norm_backward({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", d[0], d[1], d[2],
                           e.x("grad"), e.x("input"), opt_param(e, "weight"), EmitContext::dim(in[0]),
                           EmitContext::dim(in[1]), EmitContext::numel(in, 2, in.size()), e.i("num_groups"),
                           literal(e.f("eps")), e.scratch());
                  })
                  .scratch_elems("cuda", [](const Node& n, const Graph& g) {  // each group's mean and rstd
                    const Shape& in = g.value(n.inputs[1][0]).shape;
                    return Dim(2) * in[0] * Dim(n.attrs.at("num_groups").get<int64_t>());
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.in("input").dtype != DType::f32) e.unsupported("float64");
                    const Shape& in = e.in("input").shape;
                    auto d = grad_outputs(e);
                    e.line("rt::cuda::group_norm_backward(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", d[0], d[1],
                           d[2], e.x("grad"), e.x("input"), opt_param(e, "weight"), EmitContext::dim(in[0]), EmitContext::dim(in[1]),
                           EmitContext::numel(in, 2, in.size()), e.i("num_groups"), literal(e.f("eps")), e.scratch(), e.layer());
                  }));

  register_op(norm_grad_op("BatchNorm2dGrad",
                           "BatchNorm2d's backward: through the batch statistics in training, the running ones "
                           "(constants) in evaluation; the gradients of input, weight and bias, one kernel")
                  .in("running_mean").in("running_var")
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& in = e.in("input").shape;
                    auto d = grad_outputs(e);
                    std::string sizes = fmt::format("{}, {}, {}", EmitContext::dim(in[0]), EmitContext::dim(in[1]),
                                                    EmitContext::numel(in, 2, 4));
                    if (e.training()) {  // the forward pass normalized with the batch statistics
                      e.line("static_cast<void>({}), static_cast<void>({});  // running statistics: unused in training",
                             e.x("running_mean"), e.x("running_var"));
                      e.line("rt::k::batch_norm_training_backward({}, {}, {}, {}, {}, {}, {}, {});", d[0], d[1], d[2],
                             e.x("grad"), e.x("input"), opt_param(e, "weight"), sizes, literal(e.f("eps")));
                      return;
                    }
                    e.line("rt::k::batch_norm_inference_backward({}, {}, {}, {}, {}, {}, {}, {}, {}, {});", d[0], d[1],
                           d[2], e.x("grad"), e.x("input"), e.x("running_mean"), e.x("running_var"),
                           opt_param(e, "weight"), sizes, literal(e.f("eps")));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.in("input").dtype != DType::f32) e.unsupported("float64");
                    const Shape& in = e.in("input").shape;
                    auto d = grad_outputs(e);
                    if (e.training()) {  // through the batch statistics
                      e.line("static_cast<void>({}), static_cast<void>({});  // running statistics: unused in training",
                             e.x("running_mean"), e.x("running_var"));
                      e.line("rt::cuda::batch_norm_training_backward(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", d[0], d[1],
                             d[2], e.x("grad"), e.x("input"), opt_param(e, "weight"), EmitContext::dim(in[0]), EmitContext::dim(in[1]),
                             EmitContext::numel(in, 2, 4), literal(e.f("eps")), e.layer());
                      return;
                    }
                    e.line("rt::cuda::batch_norm_inference_backward(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", d[0],
                           d[1], d[2], e.x("grad"), e.x("input"), e.x("running_mean"), e.x("running_var"), opt_param(e, "weight"),
                           EmitContext::dim(in[0]), EmitContext::dim(in[1]), EmitContext::numel(in, 2, 4), literal(e.f("eps")),
                           e.layer());
                  }));
}

}  // namespace mithril
