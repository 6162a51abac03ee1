// Linear algebra: MatMul (batched, broadcasting, NumPy semantics) and Linear.
#include "ops/emit.h"
#include "ops/fused.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {

namespace {

std::string dims_list(const Shape& s) {
  std::vector<std::string> v;
  for (auto& d : s) v.push_back(EmitContext::dim(d));
  if (v.empty()) v.push_back("1");  // no zero-length arrays; the rank passed is 0
  return fmt::format("{{{}}}", fmt::join(v, ", "));
}

// numpy.matmul: 1-D operands become [1, K] / [K, 1] (the output layout is the same);
// batch dims broadcast. Floats go to the matmul kernel (BLAS); integers get plain loops.
// CUDA: cuBLAS; a right operand of rank 2 shared by every batch entry is one product over all the
// left's rows, equal batch dimensions a strided batched product. (Broadcast batch dimensions and
// 1-D operands: not yet.)
void emit_matmul_cuda(EmitContext& e) {
  const Shape &a = e.in("left").shape, &b = e.in("right").shape;
  if (e.out().dtype != DType::f32) e.unsupported("a non-float32 product");
  if (a.size() < 2 || b.size() < 2) e.unsupported("a 1-D operand");
  auto D = [](const Dim& d) { return EmitContext::dim(d); };
  std::string M = D(a[a.size() - 2]), K = D(a.back()), N = D(b.back());
  Shape batch_a(a.begin(), a.end() - 2), batch_b(b.begin(), b.end() - 2);
  if (batch_b.empty() || mithril::numel(batch_b) == Dim(1)) {
    e.line("rt::cuda::gemm(device_, false, false, {} * {}, {}, {}, 1.f, {}, {}, {}, {}, 0.f, {}, {});", EmitContext::numel(batch_a), M, N,
           K, e.x("left"), K, e.x("right"), N, e.y(), N);
    return;
  }
  if (batch_a != batch_b) e.unsupported(fmt::format("batch dimensions broadcast ({} and {})", shape_str(a), shape_str(b)));
  e.line("rt::cuda::gemm_batched(device_, false, false, {0}, {1}, {2}, 1.f, {3}, {2}, {0} * {2}, {4}, {1}, {2} * {1}, 0.f, {5}, {1}, {0} * {1}, {6});",
         M, N, K, e.x("left"), e.x("right"), e.y(), EmitContext::numel(batch_a));
}

void emit_matmul(EmitContext& e) {
  Shape a = e.in("left").shape, b = e.in("right").shape;
  if (a.size() == 1) a.insert(a.begin(), Dim(1));
  if (b.size() == 1) b.push_back(Dim(1));
  std::string M = EmitContext::dim(a[a.size() - 2]), K = EmitContext::dim(a.back()), N = EmitContext::dim(b.back());
  Shape ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  size_t r = std::max(ab.size(), bb.size());
  ab.insert(ab.begin(), r - ab.size(), Dim(1));
  bb.insert(bb.begin(), r - bb.size(), Dim(1));
  Shape ob;
  for (size_t k = 0; k < r; ++k) ob.push_back(ab[k] == Dim(1) ? bb[k] : ab[k]);
  std::string T = e.ctype_of("left");
  DType t = e.in("left").dtype;
  e.line("const int64_t a_batch_[] = {};", dims_list(ab));
  e.line("const int64_t b_batch_[] = {};", dims_list(bb));
  e.line("const int64_t out_batch_[] = {};", dims_list(ob));
  if (t == DType::f32 || t == DType::f64) {
    e.line("mithril::rt::k::matmul<{}>({}, {}, {}, a_batch_, b_batch_, out_batch_, {}, {}, {}, {});", T, e.y(), e.x("left"),
           e.x("right"), r, M, K, N);
    return;
  }
  // Integers: one output matrix at a time, walking the output batch index (wrapping arithmetic).
  e.line("const int64_t M_ = {}, K_ = {}, N_ = {};", M, K, N);
  e.line("int64_t idx_[{}] = {{}};", std::max<size_t>(r, 1));
  e.line("for (int64_t t_ = 0; t_ < {}; ++t_) {{", EmitContext::numel(ob));
  e.line("  int64_t ao_ = 0, bo_ = 0;");
  e.line("  for (int64_t d_ = 0; d_ < {}; ++d_) {{", r);
  e.line("    ao_ = ao_ * a_batch_[d_] + (a_batch_[d_] == 1 ? 0 : idx_[d_]);");
  e.line("    bo_ = bo_ * b_batch_[d_] + (b_batch_[d_] == 1 ? 0 : idx_[d_]);");
  e.line("  }}");
  e.line("  const {0}* const A_ = {1} + ao_ * M_ * K_;", T, e.x("left"));
  e.line("  const {0}* const B_ = {1} + bo_ * K_ * N_;", T, e.x("right"));
  e.line("  {}* const C_ = {} + t_ * M_ * N_;", T, e.y());
  e.line("  for (int64_t i_ = 0; i_ < M_; ++i_)");
  e.line("    for (int64_t j_ = 0; j_ < N_; ++j_) {{");
  e.line("      uint64_t acc_ = 0;");
  e.line("      for (int64_t k_ = 0; k_ < K_; ++k_) acc_ += static_cast<uint64_t>(A_[i_ * K_ + k_]) * static_cast<uint64_t>(B_[k_ * N_ + j_]);");
  e.line("      C_[i_ * N_ + j_] = static_cast<{}>(acc_);", T);
  e.line("    }}");
  e.line("  for (int64_t d_ = {} - 1; d_ >= 0; --d_) {{", r);
  e.line("    if (++idx_[d_] < out_batch_[d_]) break;");
  e.line("    idx_[d_] = 0;");
  e.line("  }}");
  e.line("}}");
}

// MatMul's gradient: dl = dy r^T and dr = l^T dy over the broadcast batch, summed back to each
// operand's batch shape; 1-D operands are promoted as in the forward pass and squeezed back.
void matmul_grad(GradContext& g) {
  int l = g.in("left"), r = g.in("right"), dy = g.dout();
  int l2 = l, r2 = r, dy2 = dy;
  if (g.shape(l).size() == 1) {
    l2 = g.op1("Unsqueeze", {{"input", l}}, {{"axis", 0}});
    dy2 = g.op1("Unsqueeze", {{"input", dy2}}, {{"axis", g.shape(r).size() == 1 ? 0 : -2}});
  }
  if (g.shape(r).size() == 1) {
    r2 = g.op1("Unsqueeze", {{"input", r}}, {{"axis", -1}});
    dy2 = g.op1("Unsqueeze", {{"input", dy2}}, {{"axis", -1}});
  }
  if (g.wants("left")) {
    int d = g.op1("MatMul", {{"left", dy2}, {"right", g.op1("Transpose", {{"input", r2}})}});
    g.grad("left", g.reshape_like(g.sum_like(d, l2), l));
  }
  if (g.wants("right")) {
    int d = g.op1("MatMul", {{"left", g.op1("Transpose", {{"input", l2}})}, {"right", dy2}});
    g.grad("right", g.reshape_like(g.sum_like(d, r2), r));
  }
}

}  // namespace

MITHRIL_REGISTER_OPS(linalg) {
  register_op(OpDef("LinearGradWeight", "linalg", "dW = grad^T x over every leading axis: Linear's weight gradient, one gemm")
                  .in("grad").in("input").out().trait("internal")
                  .flop_count([](const Node& n, const Graph& g) {
                    return product_flops(input_shape(n, g, "grad"), input_shape(n, g, "input").back());
                  })
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& s = e.in("input").shape;
                    std::string K = EmitContext::dim(s.back()), M = EmitContext::numel(s, 0, s.size() - 1);
                    std::string D = EmitContext::dim(e.in("grad").shape.back());
                    e.line("mithril::rt::gemm(mithril::rt::Transpose::Yes, mithril::rt::Transpose::No, {}, {}, {}, 1, {}, {}, {}, {}, 0, {}, {});",
                           D, K, M, e.x("grad"), D, e.x("input"), K, e.y(), K);
                  })
                  .emit("cuda", [](EmitContext& e) {  // dW[D, K] = grad[M, D]^T x[M, K] through cuBLAS
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    const Shape& s = e.in("input").shape;
                    std::string K = EmitContext::dim(s.back()), M = EmitContext::numel(s, 0, s.size() - 1);
                    std::string D = EmitContext::dim(e.in("grad").shape.back());
                    e.line("rt::cuda::gemm(device_, true, false, {}, {}, {}, 1.f, {}, {}, {}, {}, 0.f, {}, {});", D, K, M, e.x("grad"), D,
                           e.x("input"), K, e.y(), K);
                  })
                  .rule([](InferContext& c) {
                    c.out("output", c.dtype("input"), {c.shape("grad").back(), c.shape("input").back()});
                  }));

  register_op(OpDef("MatMul", "linalg", "matrix product with NumPy semantics: batched, broadcasting, 1-D promoted")
                  .in("left").in("right").out().trait("gemm")
                  .flop_count([](const Node& n, const Graph& g) {
                    return product_flops(output_shape(n, g), input_shape(n, g, "left").back());
                  })
                  .grad(matmul_grad)
                  .emit("cpu", emit_matmul)
                  .emit("cuda", emit_matmul_cuda)
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
                  .in("input").param("weight").param("bias", true).out().trait("gemm").trait("epilogue")
                  .arg("dimension", ArgType::Int, std::nullopt, "output features")
                  .arg("bias", ArgType::Bool, json(true), "add a learned bias")
                  .flop_count([](const Node& n, const Graph& g) {
                    return product_flops(output_shape(n, g), input_shape(n, g, "input").back());
                  })
                  .grad([](GradContext& g) {
                    int dy = g.dout(), x = g.in("input");
                    if (g.wants("input")) g.grad("input", g.op1("MatMul", {{"left", dy}, {"right", g.in("weight")}}));
                    if (g.wants("weight")) g.grad("weight", g.op1("LinearGradWeight", {{"grad", dy}, {"input", x}}));
                    if (g.has("bias") && g.wants("bias")) g.grad("bias", g.sum_like(dy, g.in("bias")));
                  })
                  .packs("cpu", "weight", [](const Node& n, const Graph& g) -> std::optional<PackSpec> {
                    // Panels for k::gemm_packed (kernels/gemm.h), sized for the build's vector width.
                    const Shape& w = input_shape(n, g, "weight");
                    if (w.size() != 2 || !w[0].is_const() || !w[1].is_const()) return std::nullopt;
                    const int64_t N = w[0].value(), K = w[1].value();
                    // With AVX-512, whole panels of 32 columns, a last one of up to 16 as 16.
                    return PackSpec{fmt::format("rt::k::packed_b_size({}, {})", N, K),
                                    fmt::format("rt::k::pack_b({{dst}}, {{src}}, {}, {}, {}, true)", N, K, K),
                                    (N + 15) / 16 * 16 * K};
                  })
                  .emit("cpu", [](EmitContext& e) {
                    // y[M, dim] = x[M, K] W[dim, K]^T (+ b). Where the plan keeps W packed (programs
                    // without gradients), Mithril's GEMM kernel with the bias in its epilogue; else one
                    // BLAS gemm, or a gemv for a single row, which OpenBLAS runs several times faster
                    // than an M=1 gemm, and the bias in a second pass.
                    const Shape& s = e.in("input").shape;
                    std::string K = EmitContext::dim(s.back());
                    std::string M = EmitContext::numel(s, 0, s.size() - 1);
                    std::string D = std::to_string(e.i("dimension"));
                    bool bias = e.has("bias");
                    bool epilogue = emit_epilogue(e, "epilogue");  // activations fused by fuse-epilogue
                    std::string packed = e.packed("weight"), indent;
                    if (!packed.empty()) {
                      e.line("if constexpr (mithril::rt::k::kPackedGemm) {{");
                      e.line("  mithril::rt::k::gemm_packed({}, {}, {}, {}, {}, {}, {}, {}, {}{});", e.y(), e.x("input"), packed,
                             bias ? e.x("bias") : "nullptr", M, D, K, K, D, epilogue ? ", epilogue" : "");
                      e.line("}} else {{");
                      indent = "  ";
                    }
                    if (M == "1") {
                      e.line("{}mithril::rt::gemv(mithril::rt::Transpose::No, {}, {}, 1, {}, {}, {}, 1, 0, {}, 1);", indent, D, K, e.x("weight"), K,
                             e.x("input"), e.y());
                    } else {
                      e.line("{}mithril::rt::gemm(mithril::rt::Transpose::No, mithril::rt::Transpose::Yes, {}, {}, {}, 1, {}, {}, {}, {}, 0, {}, {});",
                             indent, M, D, K, e.x("input"), K, e.x("weight"), K, e.y(), D);
                    }
                    if (bias) {
                      e.line("{}for (int64_t m = 0; m < {}; ++m)", indent, M);
                      e.line("{}  for (int64_t j = 0; j < {}; ++j) {}[m * {} + j] += {}[j];", indent, D, e.y(), D, e.x("bias"));
                    }
                    if (epilogue) e.line("{}for (int64_t i = 0; i < {} * {}; ++i) {}[i] = epilogue({}[i]);", indent, M, D, e.y(), e.y());
                    if (!packed.empty()) e.line("}}");
                  })
                  .emit("cuda", [](EmitContext& e) {
                    // y[M, dim] = x[M, K] W[dim, K]^T through cuBLAS, then the bias and the fused
                    // activations (fuse-epilogue) in one elementwise kernel.
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    const Shape& s = e.in("input").shape;
                    std::string K = EmitContext::dim(s.back()), M = EmitContext::numel(s, 0, s.size() - 1);
                    std::string D = std::to_string(e.i("dimension"));
                    e.line("rt::cuda::gemm(device_, false, true, {}, {}, {}, 1.f, {}, {}, {}, {}, 0.f, {}, {});", M, D, K,
                           e.x("input"), K, e.x("weight"), K, e.y(), D);
                    const bool bias = e.has("bias"), epilogue = e.node().attrs.contains("epilogue");
                    if (!bias && !epilogue) return;
                    e.line("rt::cuda::for_each(device_, {} * {}, [=] __device__ (int64_t i) {{", M, D);
                    e.line("  const float v = {}[i]{};", e.y(), bias ? fmt::format(" + {}[i % {}]", e.x("bias"), D) : "");
                    std::string value = "v";
                    if (epilogue) value = epilogue_statements(e, {&e.out()}, {"v"}, "  ");
                    e.line("  {}[i] = {};", e.y(), value);
                    e.line("}}, {});", e.layer());
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
