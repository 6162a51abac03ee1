// Losses: CrossEntropy, NLL, BinaryCrossEntropy (on logits), MSE, L1, Huber
// and KLDivergence, with PyTorch's semantics (torch.nn.functional.*_loss).
// Every loss takes `input` and `target` and a `reduction`: mean or sum give a
// scalar, none keeps one loss per element (per sample for the class losses).
#include <map>

#include "ops/emit.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {
namespace {

OpDef loss_def(const char* name, const char* summary, bool batchmean = false) {
  OpDef d(name, "loss", summary);
  d.in("input").in("target").out().trait("loss");
  std::vector<std::string> choices = {"mean", "sum", "none"};
  if (batchmean) choices.push_back("batchmean");
  d.arg("reduction", ArgType::String, json("mean"),
        batchmean ? "mean or sum to a scalar, none (one loss per element) or batchmean (sum / batch size, the "
                    "mathematical KL divergence)"
                  : "mean or sum to a scalar, or none (one loss per element; per sample for class losses)",
        choices);
  return d;
}

// The output: the per-element losses of shape `unreduced` with reduction none, else a scalar.
void reduced_out(InferContext& c, const Shape& unreduced) {
  c.out("output", c.dtype("input"), c.s("reduction") == "none" ? unreduced : Shape{});
}

// Float input and target of one shape and dtype.
void same_type(InferContext& c) {
  c.expect_float("input");
  if (c.shape("input") != c.shape("target"))
    c.fail("shape mismatch: 'input' {} and 'target' {} must have the same shape", shape_str(c.shape("input")),
           shape_str(c.shape("target")));
  c.expect_same_dtype("input", "target");
}

// Class-score input [N, C, d1, ...]; returns the batch shape [N, d1, ...].
Shape class_input(InferContext& c, const char* what) {
  c.expect_float("input");
  if (c.rank("input") < 2)
    c.fail("'input' must be {} of shape [N, C] or [N, C, d1, ...], found {}", what,
           type_str(c.dtype("input"), c.shape("input")));
  Shape batch = c.shape("input");
  batch.erase(batch.begin() + 1);
  return batch;
}

// Integer class indices [N, d1, ...] for an input [N, C, d1, ...].
void class_target(InferContext& c, const Shape& batch) {
  if (c.shape("target") != batch)
    c.fail("shape mismatch: class indices 'target' {} must have the shape of 'input' {} without the class dimension "
           "1, i.e. {}",
           shape_str(c.shape("target")), shape_str(c.shape("input")), shape_str(batch));
}


// ---- CPU code: the loss kernels (mithril::rt::k, kernels/loss.h) -------------

std::string reduction(const EmitContext& e) {
  std::string r = e.s("reduction");
  if (r == "none") return "mithril::rt::k::Reduction::None";
  if (r == "sum") return "mithril::rt::k::Reduction::Sum";
  if (r == "batchmean") return "mithril::rt::k::Reduction::BatchMean";
  return "mithril::rt::k::Reduction::Mean";
}

// N, C and the product of the extra dims of a class-score input [N, C, d1, ...].
struct ClassDims {
  std::string N, C, inner;
};
ClassDims class_dims(const EmitContext& e) {
  const Shape& s = e.in("input").shape;
  return {EmitContext::dim(s[0]), EmitContext::dim(s[1]), EmitContext::numel(s, 2, s.size())};
}

void emit_cross_entropy(EmitContext& e) {
  ClassDims d = class_dims(e);
  std::string T = e.ctype_of("input");
  if (is_int(e.in("target").dtype)) {
    e.line("mithril::rt::k::cross_entropy<{}, {}>({}, {}, {}, nullptr, {}, {}, {}, {}, {}, {});", T, e.ctype_of("target"), e.y(),
           e.x("input"), e.x("target"), d.N, d.C, d.inner, e.i("ignore_index"), cpp_number(e.f("label_smoothing")),
           reduction(e));
  } else {
    e.line("mithril::rt::k::cross_entropy_probs<{}>({}, {}, {}, nullptr, {}, {}, {}, {}, {});", T, e.y(), e.x("input"),
           e.x("target"), d.N, d.C, d.inner, cpp_number(e.f("label_smoothing")), reduction(e));
  }
}

void emit_nll(EmitContext& e) {
  ClassDims d = class_dims(e);
  e.line("mithril::rt::k::nll_loss<{}, {}>({}, {}, {}, nullptr, {}, {}, {}, {}, {});", e.ctype_of("input"), e.ctype_of("target"),
         e.y(), e.x("input"), e.x("target"), d.N, d.C, d.inner, e.i("ignore_index"), reduction(e));
}

void emit_bce(EmitContext& e) {
  e.line("mithril::rt::k::bce_with_logits<{}>({}, {}, {}, nullptr, nullptr, {}, 1, {});", e.ctype_of("input"), e.y(),
         e.x("input"), e.x("target"), EmitContext::numel(e.in("input").shape), reduction(e));
}

// mse_loss, l1_loss, huber_loss: pointwise, input and target of one shape.
EmitFn emit_pointwise(const char* kernel, bool delta) {
  return [kernel, delta](EmitContext& e) {
    e.line("mithril::rt::k::{}<{}>({}, {}, {}, {}, {}{});", kernel, e.ctype_of("input"), e.y(), e.x("input"), e.x("target"),
           EmitContext::numel(e.in("input").shape), delta ? cpp_number(e.f("delta")) + ", " : "", reduction(e));
  };
}

void emit_kl(EmitContext& e) {
  const Shape& s = e.in("input").shape;
  e.line("mithril::rt::k::kl_div<{}>({}, {}, {}, {}, {}, {}, {});", e.ctype_of("input"), e.y(), e.x("input"), e.x("target"),
         EmitContext::numel(s), s.empty() ? "1" : EmitContext::dim(s[0]), e.b("log_target") ? "true" : "false", reduction(e));
}

// ---- Gradients ----------------------------------------------------------------
// Each loss has an internal <Name>Grad op: dL/d(input), or dL/d(target) with wrt: target, from
// dL/d(loss) `grad`, one pass of a backward kernel in kernels/loss.h. Integer targets
// (class indices) get no gradient.

std::string wrt_target(const EmitContext& e) { return e.s("wrt") == "target" ? "true" : "false"; }

void emit_cross_entropy_grad(EmitContext& e) {
  ClassDims d = class_dims(e);
  std::string T = e.ctype_of("input");
  std::string ls = cpp_number(e.f("label_smoothing"));
  if (is_int(e.in("target").dtype)) {
    e.line("mithril::rt::k::cross_entropy_backward<{}, {}>({}, {}, {}, {}, {}, {}, {}, {}, {}, {});", T, e.ctype_of("target"),
           e.y(), e.x("grad"), e.x("input"), e.x("target"), d.N, d.C, d.inner, e.i("ignore_index"), ls, reduction(e));
  } else {
    e.line("mithril::rt::k::cross_entropy_probs_backward<{}>({}, {}, {}, {}, {}, {}, {}, {}, {}, {});", T, e.y(), e.x("grad"),
           e.x("input"), e.x("target"), d.N, d.C, d.inner, ls, reduction(e), wrt_target(e));
  }
}

void emit_nll_grad(EmitContext& e) {
  ClassDims d = class_dims(e);
  e.line("(void){};  // only its shape matters", e.x("input"));
  e.line("mithril::rt::k::nll_loss_backward<{}, {}>({}, {}, {}, {}, {}, {}, {}, {});", e.ctype_of("input"), e.ctype_of("target"),
         e.y(), e.x("grad"), e.x("target"), d.N, d.C, d.inner, e.i("ignore_index"), reduction(e));
}

// bce_with_logits, mse_loss, l1_loss, huber_loss: (d, dy, x, y, n[, delta], reduction, wrt_target).
EmitFn emit_pointwise_grad(const char* kernel, bool delta) {
  return [kernel, delta](EmitContext& e) {
    e.line("mithril::rt::k::{}<{}>({}, {}, {}, {}, {}, {}{}, {});", kernel, e.ctype_of("input"), e.y(), e.x("grad"), e.x("input"),
           e.x("target"), EmitContext::numel(e.in("input").shape), delta ? cpp_number(e.f("delta")) + ", " : "", reduction(e),
           wrt_target(e));
  };
}

void emit_kl_grad(EmitContext& e) {
  const Shape& s = e.in("input").shape;
  e.line("mithril::rt::k::kl_div_backward<{}>({}, {}, {}, {}, {}, {}, {}, {}, {});", e.ctype_of("input"), e.y(), e.x("grad"),
         e.x("input"), e.x("target"), EmitContext::numel(s), s.empty() ? "1" : EmitContext::dim(s[0]),
         e.b("log_target") ? "true" : "false", reduction(e), wrt_target(e));
}

// ---- CUDA code (cuda/backward.cuh): cross entropy with class-index targets --------------------------

int cuda_reduction(EmitContext& e) {
  std::string r = e.s("reduction");
  return r == "none" ? 0 : r == "mean" ? 1 : 2;
}

void emit_cross_entropy_cuda(EmitContext& e) {
  if (!is_int(e.in("target").dtype)) e.unsupported("class-probability targets");
  if (e.in("input").dtype != DType::f32) e.unsupported("float64");
  ClassDims d = class_dims(e);
  e.line("rt::cuda::cross_entropy(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("input"), e.x("target"), e.scratch(),
         d.N, d.C, d.inner, e.i("ignore_index"), cpp_number(e.f("label_smoothing")), cuda_reduction(e), e.layer());
}

void emit_cross_entropy_grad_cuda(EmitContext& e) {
  if (!is_int(e.in("target").dtype)) e.unsupported("class-probability targets");
  if (e.in("input").dtype != DType::f32) e.unsupported("float64");
  ClassDims d = class_dims(e);
  e.line("rt::cuda::cross_entropy_backward(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("grad"), e.x("input"),
         e.x("target"), e.scratch(), d.N, d.C, d.inner, e.i("ignore_index"), cpp_number(e.f("label_smoothing")), cuda_reduction(e),
         e.layer());
}

// NLL: a loss and a weight per row, then the mean over the weights or the sum (cuda/backward.cuh).
void emit_nll_cuda(EmitContext& e) {
  if (e.in("input").dtype != DType::f32) e.unsupported("float64");
  ClassDims d = class_dims(e);
  e.line("rt::cuda::nll_loss(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("input"), e.x("target"), e.scratch(), d.N, d.C,
         d.inner, e.i("ignore_index"), cuda_reduction(e), e.layer());
}
void emit_nll_grad_cuda(EmitContext& e) {
  if (e.in("input").dtype != DType::f32) e.unsupported("float64");
  ClassDims d = class_dims(e);
  e.line("(void){};  // only its shape matters", e.x("input"));
  e.line("rt::cuda::nll_loss_backward(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("grad"), e.x("target"), e.scratch(),
         d.N, d.C, d.inner, e.i("ignore_index"), cuda_reduction(e), e.layer());
}

// The pointwise losses on CUDA, from the element's loss and derivative as C++ of x_ (input) and t_
// (target) in float: one thread per element writes the loss (reduction none) or a scratch value that
// one block then sums and scales (mean: 1/n; batchmean: 1/batch); the gradient is g * f'(x, t) per
// element, g = dy[i] (none) or dy[0] times the same scale.
struct PointwiseLossCuda {
  std::function<std::string(const EmitContext&)> loss;  // of x_, t_
  std::function<std::string(const EmitContext&)> dx;    // d loss / d x_
  std::function<std::string(const EmitContext&)> dt;    // d loss / d t_
};
std::string delta_f(const EmitContext& e) { return fmt::format("{}f", cpp_number(e.f("delta"))); }
std::map<std::string, PointwiseLossCuda> pointwise_cuda() {
  return {
      {"MSE", {[](auto&) { return std::string("(x_ - t_) * (x_ - t_)"); }, [](auto&) { return std::string("2.f * (x_ - t_)"); },
               [](auto&) { return std::string("-2.f * (x_ - t_)"); }}},
      {"L1", {[](auto&) { return std::string("fabsf(x_ - t_)"); }, [](auto&) { return std::string("static_cast<float>((t_ < x_) - (x_ < t_))"); },
              [](auto&) { return std::string("-static_cast<float>((t_ < x_) - (x_ < t_))"); }}},
      {"Huber", {[](auto& e) { return fmt::format("fabsf(x_ - t_) < {0} ? 0.5f * (x_ - t_) * (x_ - t_) : {0} * (fabsf(x_ - t_) - 0.5f * {0})", delta_f(e)); },
                 [](auto& e) { return fmt::format("fminf(fmaxf(x_ - t_, -{0}), {0})", delta_f(e)); },
                 [](auto& e) { return fmt::format("-fminf(fmaxf(x_ - t_, -{0}), {0})", delta_f(e)); }}},
      {"BinaryCrossEntropy", {[](auto&) { return std::string("(1.f - t_) * x_ + log1pf(expf(-fabsf(x_))) + fmaxf(-x_, 0.f)"); },
                              [](auto&) { return std::string("(x_ >= 0.f ? 1.f / (1.f + expf(-fabsf(x_))) : expf(-fabsf(x_)) / (1.f + expf(-fabsf(x_)))) - t_"); },
                              [](auto&) { return std::string("-x_"); }}},
      {"KLDivergence", {[](auto& e) { return std::string(e.b("log_target") ? "expf(t_) * (t_ - x_)" : "(t_ == 0.f ? 0.f : t_ * logf(t_)) - t_ * x_"); },
                        [](auto& e) { return std::string(e.b("log_target") ? "-expf(t_)" : "-t_"); },
                        [](auto& e) { return std::string(e.b("log_target") ? "expf(t_) * (t_ - x_ + 1.f)" : "logf(t_) + 1.f - x_"); }}},
  };
}
// The reduction's scale as C++: 1/n (mean), 1/batch (batchmean), 1 (sum).
std::string pointwise_scale(EmitContext& e, const std::string& n) {
  std::string r = e.s("reduction");
  const Shape& s = e.in("input").shape;
  if (r == "mean") return fmt::format("1.0 / static_cast<double>({})", n);
  if (r == "batchmean") return fmt::format("1.0 / static_cast<double>({})", s.empty() ? "1" : EmitContext::dim(s[0]));
  return "1.0";
}
EmitFn emit_pointwise_cuda(const std::string& op) {
  return [op](EmitContext& e) {
    if (e.in("input").dtype != DType::f32) e.unsupported("float64");
    const PointwiseLossCuda& f = pointwise_cuda().at(op);
    std::string n = EmitContext::numel(e.in("input").shape);
    const bool none = e.s("reduction") == "none";
    std::string into = none ? e.y() : e.scratch();
    e.line("{{");
    e.line("  float* const losses_ = {};", into);
    e.line("  rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", n);
    e.line("    const float x_ = {}[i], t_ = {}[i];", e.x("input"), e.x("target"));
    e.line("    losses_[i] = {};", f.loss(e));
    e.line("  }}, {});", e.layer());
    if (!none) e.line("  rt::cuda::sum_scaled(device_, {}, losses_, {}, {}, {});", e.y(), n, pointwise_scale(e, n), e.layer());
    e.line("}}");
  };
}
EmitFn emit_pointwise_grad_cuda(const std::string& op) {
  return [op](EmitContext& e) {
    if (e.in("input").dtype != DType::f32) e.unsupported("float64");
    const PointwiseLossCuda& f = pointwise_cuda().at(op);
    std::string n = EmitContext::numel(e.in("input").shape);
    const bool none = e.s("reduction") == "none";
    e.line("{{");
    e.line("  const float scale_ = static_cast<float>({});", pointwise_scale(e, n));
    e.line("  (void)scale_;");
    e.line("  rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", n);
    e.line("    const float x_ = {}[i], t_ = {}[i];", e.x("input"), e.x("target"));
    e.line("    (void)x_;");
    e.line("    (void)t_;");
    e.line("    {}[i] = {} * ({});", e.y(), none ? e.x("grad") + "[i]" : e.x("grad") + "[0] * scale_",
           e.s("wrt") == "target" ? f.dt(e) : f.dx(e));
    e.line("  }}, {});", e.layer());
    e.line("}}");
  };
}
// Their scratch: one value per element (mean and sum).
Dim pointwise_scratch(const Node& n, const Graph& g) { return numel(g.value(n.inputs[0][0]).shape); }

// Its scratch: a loss and a weight per row for the forward pass, the count of targets for the gradient.
Dim cross_entropy_scratch(const Node& n, const Graph& g) {
  if (n.op->name != "CrossEntropy" && n.op->name != "NLL") return Dim(1);
  Shape batch = g.value(n.inputs[0][0]).shape;  // logits [N, C, ...] -> rows [N, ...]
  batch.erase(batch.begin() + 1);
  return Dim(2) * numel(batch);
}

// Registers `fwd` with its gradient rule and its internal <Name>Grad op (the forward's arguments
// plus `wrt`). `target_grad`: float targets get a gradient too. `cuda_grad`: the gradient's code on the
// CUDA target, where it has one.
void register_loss(OpDef fwd, EmitFn grad_emit, bool target_grad, EmitFn cuda_grad = nullptr,
                   std::function<Dim(const Node&, const Graph&)> cuda_scratch = nullptr) {
  const std::string grad_op = fwd.name + "Grad";
  OpDef gd(grad_op, "loss", "gradient of " + fwd.name + " w.r.t. 'input', or 'target' with wrt: target");
  gd.in("grad").in("input").in("target").out().trait("internal");
  gd.args = fwd.args;
  gd.arg("wrt", ArgType::String, json("input"), "the input the gradient is of", {"input", "target"});
  gd.emit("cpu", std::move(grad_emit));
  if (cuda_grad) {
    gd.emit("cuda", std::move(cuda_grad));
    if (cuda_scratch) gd.scratch_elems("cuda", cuda_scratch);
  }
  gd.rule([](InferContext& c) {
    std::string w = c.s("wrt");
    c.out("output", c.dtype(w), c.shape(w));
  });
  fwd.grad([grad_op, target_grad](GradContext& g) {
    for (const char* port : {"input", "target"}) {
      bool target = std::string(port) == "target";
      if (target && (!target_grad || !is_float(g.dtype(g.in("target"))))) continue;  // class indices
      if (!g.wants(port)) continue;
      json attrs = g.node().attrs;
      attrs["wrt"] = port;
      g.grad(port, g.op1(grad_op, {{"grad", g.dout()}, {"input", g.in("input")}, {"target", g.in("target")}}, attrs));
    }
  });
  register_op(std::move(gd));
  register_op(std::move(fwd));
}

}  // namespace

MITHRIL_REGISTER_OPS(loss) {
  register_loss(loss_def("CrossEntropy", "cross entropy of logits [N, C, ...] against class indices [N, ...] or class "
                                       "probabilities [N, C, ...] (log-softmax over C, then NLL)")
                  .emit("cpu", emit_cross_entropy)
                  .emit("cuda", emit_cross_entropy_cuda)
                  .scratch_elems("cuda", cross_entropy_scratch)
                  .arg("label_smoothing", ArgType::Float, json(0.0),
                       "in [0, 1]: mix the target with the uniform distribution over classes")
                  .arg("ignore_index", ArgType::Int, json(-100),
                       "class-index targets equal to it add no loss and are left out of the mean")
                  .rule([](InferContext& c) {
                    Shape batch = class_input(c, "logits");
                    double ls = c.f("label_smoothing");
                    if (!(ls >= 0 && ls <= 1))
                      c.fail_arg("label_smoothing", "'label_smoothing' must be between 0 and 1, found {}", ls);
                    DType t = c.dtype("target");
                    if (is_int(t)) {
                      class_target(c, batch);
                    } else if (is_float(t)) {
                      if (c.shape("target") != c.shape("input"))
                        c.fail("shape mismatch: float 'target' holds class probabilities and must have the shape of "
                               "'input' {}, found {} (class indices must be int32 or int64)",
                               shape_str(c.shape("input")), shape_str(c.shape("target")));
                      c.expect_same_dtype("input", "target");
                      if (c.i("ignore_index") >= 0)  // as PyTorch
                        c.fail_arg("ignore_index", "'ignore_index' ({}) applies to class indices, not to float class "
                                   "probabilities", c.i("ignore_index"));
                    } else {
                      c.fail("'target' must be class indices (int32 or int64) or class probabilities (float), found {}",
                             type_str(t, c.shape("target")));
                    }
                    reduced_out(c, batch);
                  }),
                emit_cross_entropy_grad, true, emit_cross_entropy_grad_cuda, cross_entropy_scratch);

  register_loss(loss_def("NLL", "negative log likelihood: -input[n, target[n]] for log-probabilities [N, C, ...] and "
                              "class indices [N, ...]")
                  .emit("cpu", emit_nll)
                  .emit("cuda", emit_nll_cuda)
                  .scratch_elems("cuda", cross_entropy_scratch)
                  .arg("ignore_index", ArgType::Int, json(-100),
                       "targets equal to it add no loss and are left out of the mean")
                  .rule([](InferContext& c) {
                    Shape batch = class_input(c, "log-probabilities");
                    c.expect_int("target");
                    class_target(c, batch);
                    reduced_out(c, batch);
                  }),
                emit_nll_grad, false, emit_nll_grad_cuda, cross_entropy_scratch);

  register_loss(loss_def("BinaryCrossEntropy", "binary cross entropy on logits (sigmoid folded in, numerically stable: "
                                             "max(x, 0) - x*t + log(1 + e^-|x|)); target in [0, 1], same shape")
                  .emit("cpu", emit_bce)
                  .emit("cuda", emit_pointwise_cuda("BinaryCrossEntropy"))
                  .scratch_elems("cuda", pointwise_scratch)
                  .rule([](InferContext& c) {
                    same_type(c);
                    reduced_out(c, c.shape("input"));
                  }),
                emit_pointwise_grad("bce_with_logits_backward", false), true, emit_pointwise_grad_cuda("BinaryCrossEntropy"));

  register_loss(loss_def("MSE", "mean squared error: (input - target)^2")
                    .emit("cpu", emit_pointwise("mse_loss", false))
                    .emit("cuda", emit_pointwise_cuda("MSE"))
                    .scratch_elems("cuda", pointwise_scratch)
                    .rule([](InferContext& c) {
    same_type(c);
    reduced_out(c, c.shape("input"));
  }),
                emit_pointwise_grad("mse_loss_backward", false), true, emit_pointwise_grad_cuda("MSE"));

  register_loss(loss_def("L1", "mean absolute error: |input - target|")
                    .emit("cpu", emit_pointwise("l1_loss", false))
                    .emit("cuda", emit_pointwise_cuda("L1"))
                    .scratch_elems("cuda", pointwise_scratch)
                    .rule([](InferContext& c) {
    same_type(c);
    reduced_out(c, c.shape("input"));
  }),
                emit_pointwise_grad("l1_loss_backward", false), true, emit_pointwise_grad_cuda("L1"));

  register_loss(loss_def("Huber", "0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta), for d = input - target")
                  .emit("cpu", emit_pointwise("huber_loss", true))
                  .emit("cuda", emit_pointwise_cuda("Huber"))
                  .scratch_elems("cuda", pointwise_scratch)
                  .arg("delta", ArgType::Float, json(1.0), "where the loss turns from quadratic to linear; positive")
                  .rule([](InferContext& c) {
                    same_type(c);
                    if (!(c.f("delta") > 0)) c.fail_arg("delta", "'delta' must be positive, found {}", c.f("delta"));
                    reduced_out(c, c.shape("input"));
                  }),
                emit_pointwise_grad("huber_loss_backward", true), true, emit_pointwise_grad_cuda("Huber"));

  register_loss(loss_def("KLDivergence", "KL(target || exp(input)) pointwise: target * (log target - input), input "
                                       "log-probabilities",
                       true)
                  .emit("cpu", emit_kl)
                  .emit("cuda", emit_pointwise_cuda("KLDivergence"))
                  .scratch_elems("cuda", pointwise_scratch)
                  .arg("log_target", ArgType::Bool, json(false), "target holds log-probabilities too")
                  .rule([](InferContext& c) {
                    same_type(c);
                    if (c.s("reduction") == "batchmean" && c.rank("input") == 0)
                      c.fail_arg("reduction", "reduction batchmean needs a batch dimension, found a scalar 'input'");
                    reduced_out(c, c.shape("input"));
                  }),
                emit_kl_grad, true, emit_pointwise_grad_cuda("KLDivergence"));
}

}  // namespace mithril
