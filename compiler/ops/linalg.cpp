// Linear algebra: MatMul (batched, broadcasting, NumPy semantics) and Linear.
#include "codegen/emit.h"
#include "ops/registry.h"

namespace mithril {

MITHRIL_REGISTER_OPS(linalg) {
  register_op(OpDef("MatMul", "linalg", "matrix product with NumPy semantics: batched, broadcasting, 1-D promoted")
                  .in("left").in("right").out().trait("gemm")
                  .rule([](InferContext& c) {
                    c.expect_numeric("left");
                    c.expect_same_dtype("left", "right");
                    Shape a = c.shape("left"), b = c.shape("right");
                    if (a.empty() || b.empty()) c.fail("MatMul needs inputs of rank 1 or more, found {} and {}", shape_str(a), shape_str(b));
                    bool a_vec = a.size() == 1, b_vec = b.size() == 1;
                    if (a_vec) a.insert(a.begin(), Dim(1));
                    if (b_vec) b.push_back(Dim(1));
                    const Dim& k_left = a[a.size() - 1];
                    const Dim& k_right = b[b.size() - 2];
                    if (k_left != k_right)
                      c.fail("shape mismatch: left {} and right {} do not agree on the contracted dimension ({} vs {})",
                             shape_str(c.shape("left")), shape_str(c.shape("right")), k_left.str(), k_right.str());
                    Shape batch_a(a.begin(), a.end() - 2), batch_b(b.begin(), b.end() - 2);
                    Shape out = c.broadcast(batch_a, batch_b, "the batch dimensions");
                    if (!a_vec) out.push_back(a[a.size() - 2]);
                    if (!b_vec) out.push_back(b[b.size() - 1]);
                    c.out("output", c.dtype("left"), out);
                  }));

  register_op(OpDef("Linear", "linalg", "y = x W^T + b over the last axis; W is [dimension, in] as in PyTorch")
                  .in("input").param("weight").param("bias", true).out().trait("gemm")
                  .arg("dimension", ArgType::Int, std::nullopt, "output features")
                  .arg("bias", ArgType::Bool, json(true), "add a learned bias")
                  .emit("cpu", [](EmitContext& e) {
                    // y[M, dim] = x[M, K] W[dim, K]^T (+ b): one gemm, or a gemv for a single row,
                    // which OpenBLAS runs several times faster than an M=1 gemm.
                    const Shape& s = e.in("input").shape;
                    std::string K = EmitContext::dim(s.back());
                    std::string M = EmitContext::numel(s, 0, s.size() - 1);
                    std::string D = std::to_string(e.i("dimension"));
                    bool bias = e.has("bias");
                    if (M == "1") {
                      e.line("mithril::rt::gemv(mithril::rt::Transpose::No, {}, {}, 1, {}, {}, {}, 1, 0, {}, 1);", D, K, e.x("weight"), K, e.x("input"), e.y());
                    } else {
                      e.line("mithril::rt::gemm(mithril::rt::Transpose::No, mithril::rt::Transpose::Yes, {}, {}, {}, 1, {}, {}, {}, {}, 0, {}, {});",
                             M, D, K, e.x("input"), K, e.x("weight"), K, e.y(), D);
                    }
                    if (bias) {
                      e.line("for (int64_t m = 0; m < {}; ++m)", M);
                      e.line("  for (int64_t j = 0; j < {}; ++j) {}[m * {} + j] += {}[j];", D, e.y(), D, e.x("bias"));
                    }
                  })
                  .rule([](InferContext& c) {
                    c.expect_float("input");
                    if (c.rank("input") < 1) c.fail("'input' must have rank 1 or more, found a scalar");
                    int64_t out = c.i("dimension");
                    if (out <= 0) c.fail_arg("dimension", "'dimension' must be positive, found {}", out);
                    Shape s = c.shape("input");
                    Dim in = s.back();
                    int64_t fan_in = c.const_dim(in, "the input feature size (last dimension)");
                    json init = {{"kind", "kaiming_uniform"}, {"fan_in", fan_in}};
                    c.param("weight", c.dtype("input"), {Dim(out), in}, init);
                    if (c.b("bias")) c.param("bias", c.dtype("input"), {Dim(out)}, {{"kind", "uniform_fan_in"}, {"fan_in", fan_in}});
                    else c.no_param("bias", "bias is false");
                    s.back() = Dim(out);
                    c.out("output", c.dtype("input"), s);
                  }));
}

}  // namespace mithril
