// Optimizer updates: internal ops the `optimizer` pass (passes/training.cpp)
// appends after the backward pass of a training program, one per trainable
// parameter, so the update is part of the generated step and its state
// (momentum buffers, Adam moments) lives in the weight block next to the
// parameter it belongs to. The hyperparameters are read at run time from the
// model's `hyper_` (mithril::rt::OptimHyper), which the training loop sets
// (learning-rate schedule, step count); the kernels are in kernels/optim.h.
#include "ops/emit.h"
#include "ops/registry.h"

namespace mithril {
namespace {

// `const float* p` -> a writable pointer: parameters are read-only in the forward code.
std::string writable(EmitContext& e, const std::string& port, size_t i = 0) {
  return fmt::format("const_cast<{}*>({})", EmitContext::ctype(e.in(port, i).dtype), e.x(port, i));
}

}  // namespace

MITHRIL_REGISTER_OPS(optim) {
  register_op(OpDef("GradNorm", "optim", "the global L2 norm of every gradient (for gradient-norm clipping), in float64")
                  .in_list("input").out().trait("internal").trait("no_gradient")
                  .rule([](InferContext& c) {
                    for (size_t i = 0; i < c.count("input"); ++i) c.expect_float("input");
                    c.out("output", DType::f64, Shape{});
                  })
                  .emit("cpu", [](EmitContext& e) {
                    e.line("double sum = 0;");
                    for (size_t i = 0; i < e.node().inputs[0].size(); ++i)
                      e.line("sum += rt::k::sum_squares({}, {});", e.x("input", i), EmitContext::numel(e.in("input", i).shape));
                    e.line("{}[0] = std::sqrt(sum);", e.y());
                  })
                  .emit("cuda", [](EmitContext& e) {  // on the device: a double, read there by the updates
                    e.line("rt::cuda::zero(device_, {}, sizeof(double), {});", e.y(), e.layer());
                    for (size_t i = 0; i < e.node().inputs[0].size(); ++i) {
                      if (e.in("input", i).dtype != DType::f32) e.unsupported("float64 gradients");
                      e.line("rt::cuda::add_sum_squares(device_, {}, {}, {}, {});", e.y(), e.x("input", i),
                             EmitContext::numel(e.in("input", i).shape), e.layer());
                    }
                    e.line("rt::cuda::finish_norm(device_, {}, {});", e.y(), e.layer());
                  }));

  register_op(OpDef("OptimizerStep", "optim",
                    "updates a parameter in place from its gradient: SGD (momentum, Nesterov, weight decay), Adam or "
                    "AdamW, as torch.optim; hyperparameters from the program's OptimHyper at run time")
                  .in("param").in("grad").in_list("state").in("grad_norm", true)
                  .arg("kind", ArgType::String, json("adam"), "the update rule", {"sgd", "adam", "adamw"})
                  .trait("internal").trait("no_gradient").trait("optimizer")
                  .rule([](InferContext& c) {
                    c.expect_float("param");
                    if (c.shape("param") != c.shape("grad") || c.dtype("param") != c.dtype("grad"))
                      c.fail("gradient {} does not match parameter {}", type_str(c.dtype("grad"), c.shape("grad")),
                             type_str(c.dtype("param"), c.shape("param")));
                    size_t want = c.s("kind") == "sgd" ? 1 : 2;
                    if (c.count("state") != want) c.fail("{} keeps {} state tensors, got {}", c.s("kind"), want, c.count("state"));
                  })
                  .emit("cpu", [](EmitContext& e) {
                    std::string n = EmitContext::numel(e.in("param").shape);
                    std::string scale = e.has("grad_norm") ? fmt::format("rt::k::clip_scale({}[0], hyper_.clip_norm)", e.x("grad_norm")) : "1.0";
                    if (e.s("kind") == "sgd")
                      e.line("rt::k::sgd_step(hyper_, {}, {}, {}, {}, {});", writable(e, "param"), e.x("grad"), writable(e, "state", 0), n,
                             scale);
                    else
                      e.line("rt::k::adam_step(hyper_, {}, {}, {}, {}, {}, {}, {});", e.s("kind") == "adamw" ? "true" : "false",
                             writable(e, "param"), e.x("grad"), writable(e, "state", 0), writable(e, "state", 1), n, scale);
                  })
                  .emit("cuda", [](EmitContext& e) {  // one kernel per parameter (cuda/train.cuh)
                    if (e.in("param").dtype != DType::f32) e.unsupported("float64 parameters");
                    std::string n = EmitContext::numel(e.in("param").shape);
                    std::string norm = e.has("grad_norm") ? e.x("grad_norm") : "nullptr";
                    if (e.s("kind") == "sgd")
                      e.line("rt::cuda::sgd_step(device_, hyper_, {}, {}, {}, {}, {}, {});", writable(e, "param"), e.x("grad"),
                             writable(e, "state", 0), n, norm, e.layer());
                    else
                      e.line("rt::cuda::adam_step(device_, hyper_, {}, {}, {}, {}, {}, {}, {}, {});", e.s("kind") == "adamw" ? "true" : "false",
                             writable(e, "param"), e.x("grad"), writable(e, "state", 0), writable(e, "state", 1), n, norm, e.layer());
                  }));
}

}  // namespace mithril
