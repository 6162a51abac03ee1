// Neural-network building blocks: Embedding, Dropout, Softmax, LogSoftmax and
// ScaledDotProductAttention, with PyTorch's semantics.
#include <algorithm>
#include <cmath>

#include "ops/emit.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {

namespace {

// ---- CPU code generation -------------------------------------------------

std::string shape_list(const Shape& s) {
  std::vector<std::string> d;
  for (auto& v : s) d.push_back(EmitContext::dim(v));
  return fmt::format("{{{}}}", fmt::join(d, ", "));
}

// The attention scores' shape [batch..., L, S] and the mask's shape left-padded with 1s to it.
Shape scores_shape(const Shape& out, const Shape& key) {
  Shape s(out.begin(), out.end() - 1);
  s.push_back(key[key.size() - 2]);
  return s;
}
Shape padded(const Shape& s, size_t rank) {
  Shape p(rank - std::min(rank, s.size()), Dim(1));
  p.insert(p.end(), s.begin(), s.end());
  return p;
}

const Value& port_value(const Node& n, const Graph& g, const std::string& port) {
  return g.value(n.inputs[n.op->input_index(port)][0]);
}

// `buffers` L*S score matrices (the forward pass needs one, the backward two), plus room for the
// mask broadcast to [B, L, S] when it is not already that shape. The first output is [..., L, *]
// (the forward output, or the backward's query gradient).
Dim attention_scratch(const Node& n, const Graph& g, int buffers) {
  const Shape& out = g.value(n.outputs[0][0]).shape;
  const Shape& key = port_value(n, g, "key").shape;
  Shape scores = scores_shape(out, key);
  Dim elems = Dim(buffers) * scores[scores.size() - 2] * scores.back();
  int m = n.op->input_index("mask");
  if (!n.inputs[m].empty() && padded(g.value(n.inputs[m][0]).shape, scores.size()) != scores)
    elems = elems + numel(scores);  // in elements of the output type: enough for a bool mask too
  return elems;
}

// The forward kernel, or with `backward` the backward one (ScaledDotProductAttentionGrad: same
// inputs plus `grad`; its outputs query, key and value are their gradients).
void emit_attention(EmitContext& e, bool backward) {
  const Shape &q = e.in("query").shape, &k = e.in("key").shape, &v = e.in("value").shape;
  const Shape& out = e.out(backward ? "query" : "output").shape;  // [..., L, *]
  Shape batch(out.begin(), out.end() - 2);
  for (auto port : {"query", "key", "value"}) {
    const Shape& s = e.in(port).shape;
    if (Shape(s.begin(), s.end() - 2) != batch)
      e.unsupported(fmt::format("'{}' {} with batch dimensions broadcast to {}", port, shape_str(s), shape_str(batch)));
  }
  auto D = [](const Dim& d) { return EmitContext::dim(d); };
  std::string B = EmitContext::numel(batch), L = D(q[q.size() - 2]), S = D(k[k.size() - 2]), E = D(q.back()),
              Ev = D(v.back());
  const char* T = EmitContext::ctype(e.in("query").dtype);
  std::string scale = e.arg("scale").is_null() ? fmt::format("1.0 / std::sqrt(static_cast<double>({}))", E)
                                                : cpp_number(e.f("scale"));
  std::string mask = "nullptr", bias = "nullptr";
  e.line("{}* scores = {};", T, e.scratch());
  if (e.has("mask")) {
    const Value& m = e.in("mask");
    bool is_bool = m.dtype == DType::boolean;
    Shape scores = scores_shape(out, k);
    std::string ptr = is_bool ? fmt::format("reinterpret_cast<const std::uint8_t*>({})", e.x("mask")) : e.x("mask");
    if (padded(m.shape, scores.size()) != scores) {  // broadcast the mask into scratch after the scores
      if (scores.size() > 8) e.unsupported("a broadcast attention mask of rank above 8");
      std::string at = fmt::format("scores + {}{} * {}", backward ? "2 * " : "", L, S);
      std::string full = is_bool ? fmt::format("reinterpret_cast<std::uint8_t*>({})", at) : at;
      e.line("const int64_t mask_shape[] = {};", shape_list(padded(m.shape, scores.size())));
      e.line("const int64_t scores_shape[] = {};", shape_list(scores));
      e.line("rt::k::expand({}, {}, {}, mask_shape, scores_shape);", full, ptr, scores.size());
      ptr = full;
    }
    (is_bool ? mask : bias) = ptr;
  }
  const char* causal = e.b("causal") ? "true" : "false";
  e.line("const rt::k::AttentionGeom geom{{.batch = {}, .len_q = {}, .len_kv = {}, .dim_qk = {}, .dim_v = {},", B, L, S, E, Ev);
  e.line("                                .scale = {}, .causal = {}}};", scale, causal);
  if (backward) {
    e.line("rt::k::scaled_dot_product_attention_backward({}, {}, {}, {}, {}, {}, {}, {}, {}, geom, scores);", e.y("query"),
           e.y("key"), e.y("value"), e.x("grad"), e.x("query"), e.x("key"), e.x("value"), mask, bias);
    return;
  }
  e.line("rt::k::scaled_dot_product_attention({}, {}, {}, {}, {}, {}, geom, scores);", e.y(), e.x("query"), e.x("key"),
         e.x("value"), mask, bias);
}

// What both CUDA attention kernels take (cuda/kernels.cuh, cuda/backward.cuh): the sizes, the scale and
// the mask as C++, after checking that `ports` share the batch dimensions `batch` and that the mask, if
// any, is a bool [L, S] one shared by the batch.
struct CudaAttention {
  std::string L, S, E, Ev, scale, mask;
};
CudaAttention cuda_attention(EmitContext& e, const Shape& batch, std::initializer_list<const char*> ports, DType dtype) {
  const Shape &q = e.in("query").shape, &k = e.in("key").shape, &v = e.in("value").shape;
  for (auto port : ports) {
    const Shape& s = e.in(port).shape;
    if (Shape(s.begin(), s.end() - 2) != batch)
      e.unsupported(fmt::format("'{}' {} with batch dimensions broadcast to {}", port, shape_str(s), shape_str(batch)));
  }
  if (dtype != DType::f32) e.unsupported("float64");
  auto D = [](const Dim& d) { return EmitContext::dim(d); };
  CudaAttention a{D(q[q.size() - 2]), D(k[k.size() - 2]), D(q.back()), D(v.back()), "", "nullptr"};
  a.scale = e.arg("scale").is_null() ? fmt::format("1.0 / std::sqrt(static_cast<double>({}))", a.E) : cpp_number(e.f("scale"));
  if (e.has("mask")) {
    const Value& m = e.in("mask");
    if (m.dtype != DType::boolean || m.shape.size() != 2 || m.shape[0] != q[q.size() - 2] || m.shape[1] != k[k.size() - 2])
      e.unsupported(fmt::format("a mask other than a bool [L, S] one (here {})", type_str(m.dtype, m.shape)));
    a.mask = fmt::format("reinterpret_cast<const std::uint8_t*>({})", e.x("mask"));
  }
  return a;
}

// CUDA: one block per query row (cuda/kernels.cuh, attention_rows).
void emit_attention_cuda(EmitContext& e) {
  const Shape& out = e.out().shape;
  Shape batch(out.begin(), out.end() - 2);
  CudaAttention a = cuda_attention(e, batch, {"query", "key", "value"}, e.out().dtype);
  e.line("rt::cuda::attention_rows(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("query"), e.x("key"),
         e.x("value"), a.mask, EmitContext::numel(batch), a.L, a.S, a.E, a.Ev, a.scale, e.b("causal") ? "true" : "false", e.layer());
}

// ScaledDotProductAttentionGrad on the CUDA target: two passes, one over query rows and one over key
// rows, that recompute the probabilities (cuda/backward.cuh); the scratch keeps two floats per query.
void emit_attention_backward_cuda(EmitContext& e) {
  const Shape& q = e.in("query").shape;
  Shape batch(q.begin(), q.end() - 2);
  CudaAttention a = cuda_attention(e, batch, {"key", "value", "grad"}, e.in("query").dtype);
  e.line("rt::cuda::attention_backward(device_, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});",
         e.y("query"), e.y("key"), e.y("value"), e.x("grad"), e.x("query"), e.x("key"), e.x("value"), a.mask, EmitContext::numel(batch),
         a.L, a.S, a.E, a.Ev, a.scale, e.b("causal") ? "true" : "false", e.scratch(), e.layer());
}

}  // namespace

MITHRIL_REGISTER_OPS(nn) {
  // Embedding's table gradient: the rows of `grad` scatter-added by index (repeated indices
  // accumulate), none for padding_idx (as torch.nn.functional.embedding). Indices were checked
  // by the forward pass. With `accumulate` (the other contributions to a tied table's gradient,
  // autodiff's total_of) the rows are added to it, in its own buffer when the plan allows.
  register_op(OpDef("EmbeddingGradWeight", "nn", "gradient of Embedding's table: rows of grad added up by index")
                  .in("grad").in("input").in("accumulate", true).out().trait("internal")
                  .writes_in_place_of("accumulate")
                  .arg("num_embeddings", ArgType::Int).arg("dimension", ArgType::Int).arg("padding_idx", ArgType::Int, json(nullptr))
                  .arg("dtype", ArgType::Dtype, json("float32"))
                  .emit("cpu", [](EmitContext& e) {
                    const char* T = EmitContext::ctype(e.out().dtype);
                    int64_t n = e.i("num_embeddings"), dim = e.i("dimension");
                    int64_t pad = e.arg("padding_idx").is_null() ? -1 : e.i("padding_idx");
                    if (pad < 0 && !e.arg("padding_idx").is_null()) pad += n;
                    if (e.has("accumulate"))  // nothing to copy when the plan put the result in its buffer
                      e.line("if ({0} != {1}) std::copy({1}, {1} + {2}, {0});", e.y(), e.x("accumulate"), n * dim);
                    else
                      e.line("std::fill({0}, {0} + {1}, {2}(0));", e.y(), n * dim, T);
                    e.line("for (int64_t i = 0; i < {}; ++i) {{", EmitContext::numel(e.in("input").shape));
                    e.line("  const int64_t row = static_cast<int64_t>({}[i]);", e.x("input"));
                    if (pad >= 0) e.line("  if (row == {}) continue;  // padding_idx: no gradient", pad);
                    e.line("  {0}* const MITHRIL_K_RESTRICT to = {1} + row * {2};", T, e.y(), dim);
                    e.line("  const {0}* const MITHRIL_K_RESTRICT from = {1} + i * {2};", T, e.x("grad"), dim);
                    e.line("  for (int64_t j = 0; j < {}; ++j) to[j] += from[j];", dim);
                    e.line("}}");
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.out().dtype != DType::f32) e.unsupported("a float64 table");
                    int64_t n = e.i("num_embeddings");
                    int64_t pad = e.arg("padding_idx").is_null() ? -1 : e.i("padding_idx");
                    if (pad < 0 && !e.arg("padding_idx").is_null()) pad += n;
                    e.line("rt::cuda::embedding_backward(device_, {}, {}, {}, {}, {}, {}, {}, {}, {});", e.y(),
                           e.has("accumulate") ? e.x("accumulate") : "nullptr", e.x("grad"), e.x("input"),
                           EmitContext::numel(e.in("input").shape), e.i("dimension"), n, pad, e.layer());
                  })
                  .rule([](InferContext& c) {
                    c.out("output", c.dtype("grad"), {Dim(c.i("num_embeddings")), Dim(c.i("dimension"))});
                  }));

  // torch.nn.Embedding: weight [num_embeddings, dimension] drawn from N(0, 1)
  // (reset_parameters: init.normal_), then the padding_idx row zeroed.
  register_op(OpDef("Embedding", "nn", "look up rows of a [num_embeddings, dimension] table by integer index; "
                                       "output is the input's shape + [dimension]")
                  .in("input").param("weight").out()
                  .emit("cpu", [](EmitContext& e) {
                    e.line("rt::k::embedding({}, {}, {}, {}, {}, {});", e.y(), e.x("input"), e.x("weight"),
                           EmitContext::numel(e.in("input").shape), e.i("dimension"), e.i("num_embeddings"));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.out().dtype != DType::f32) e.unsupported("a float64 table");
                    e.line("rt::cuda::embedding(device_, {}, {}, {}, {}, {}, {}, {});", e.y(), e.x("input"), e.x("weight"),
                           EmitContext::numel(e.in("input").shape), e.i("dimension"), e.i("num_embeddings"), e.layer());
                  })
                  .arg("num_embeddings", ArgType::Int, std::nullopt, "size of the table (valid indices 0..num_embeddings-1)")
                  .arg("dimension", ArgType::Int, std::nullopt, "width of each embedding vector")
                  .arg("padding_idx", ArgType::Int, json(nullptr),
                       "index whose row starts at zero and gets no gradient; negative counts from the end")
                  .arg("dtype", ArgType::Dtype, json("float32"), "float type of the table and the output")
                  .grad([](GradContext& g) {
                    if (g.wants("weight"))
                      g.grad("weight", g.op1("EmbeddingGradWeight", {{"grad", g.dout()}, {"input", g.in("input")}}, g.node().attrs));
                  })
                  .rule([](InferContext& c) {
                    c.expect_int("input");
                    int64_t n = c.i("num_embeddings"), dim = c.i("dimension");
                    if (n <= 0) c.fail_arg("num_embeddings", "'num_embeddings' must be positive, found {}", n);
                    if (dim <= 0) c.fail_arg("dimension", "'dimension' must be positive, found {}", dim);
                    json init = {{"kind", "normal"}, {"std", 1.0}};
                    if (!c.is_null("padding_idx")) {
                      int64_t p = c.i("padding_idx");
                      if (p < -n || p >= n)
                        c.fail_arg("padding_idx", "'padding_idx' {} is out of range for num_embeddings {} (valid: {}..{})",
                                   p, n, -n, n - 1);
                      init["padding_idx"] = p < 0 ? p + n : p;  // this row is zeroed after the normal draw
                    }
                    DType t = *parse_dtype(c.s("dtype"));
                    if (!is_float(t)) c.fail_arg("dtype", "'dtype' must be float32 or float64, found {}", c.s("dtype"));
                    c.param("weight", t, {Dim(n), Dim(dim)}, init);
                    Shape s = c.shape("input");
                    s.push_back(Dim(dim));
                    c.out("output", t, s);
                  }));

  // Dropout's gradient, dy * mask / (1-p): the mask is drawn again from the generator state the
  // forward pass saved in `rng_state`, so no mask is stored (32 bytes instead of one per element).
  register_op(OpDef("DropoutGrad", "nn", "gradient of Dropout: grad where the forward pass kept the element, times 1/(1-p)")
                  .in("grad").in("rng_state").out().trait("internal")
                  .arg("p", ArgType::Float, json(0.5))
                  .emit("cpu", [](EmitContext& e) {
                    std::string n = EmitContext::numel(e.out().shape);
                    double p = e.f("p");
                    if (!e.training() || p == 0) {  // the forward pass was the identity
                      e.line("(void){};", e.x("rng_state"));
                      e.line("std::copy({0}, {0} + {1}, {2});", e.x("grad"), n, e.y());
                      return;
                    }
                    const char* T = EmitContext::ctype(e.out().dtype);
                    e.line("rt::Rng rng(0);");
                    e.line("std::memcpy(static_cast<void*>(&rng), {}, sizeof rng);  // the forward pass's draws, replayed", e.x("rng_state"));
                    e.line("const {0} keep_scale = static_cast<{0}>(1.0 / (1.0 - {1}));", T, fmt::format("{}", p));
                    e.line("for (int64_t i = 0; i < {}; ++i)", n);
                    e.line("  {0}[i] = rng.uniform() < {1} ? {2}(0) : {3}[i] * keep_scale;", e.y(), fmt::format("{}", p), T, e.x("grad"));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    std::string n = EmitContext::numel(e.out().shape);
                    if (e.training() && e.f("p") != 0) {  // the forward pass's mask again, from its key in rng_state
                      e.line("rt::cuda::dropout_backward(device_, {}, {}, {}, {}, {}, {});", e.y(), e.x("grad"), e.x("rng_state"), n,
                             cpp_number(e.f("p")), e.layer());
                      return;
                    }
                    e.line("(void){};", e.x("rng_state"));
                    e.line("rt::cuda::copy(device_, {}, {}, {} * sizeof({}), {});", e.y(), e.x("grad"), EmitContext::numel(e.out().shape),
                           EmitContext::ctype(e.out().dtype), e.layer());
                  })
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("grad")); }));

  register_op(OpDef("Dropout", "nn", "in training, zero each element with probability p and scale the rest by 1/(1-p); "
                                     "identity in evaluation")
                  .in("input").out().out("rng_state").trait("random")
                  .arg("p", ArgType::Float, json(0.5), "probability of zeroing an element, in [0, 1)")
                  .grad([](GradContext& g) {
                    g.grad("input", g.op1("DropoutGrad", {{"grad", g.dout()}, {"rng_state", g.out("rng_state")}}, g.node().attrs));
                  })
                  .emit("cpu", [](EmitContext& e) {
                    std::string n = EmitContext::numel(e.out().shape);
                    double p = e.f("p");
                    if (!e.training() || p == 0) {  // evaluation (or p = 0): the identity
                      e.line("std::fill({0}, {0} + 4, int64_t{{0}});  // no draws", e.y("rng_state"));
                      e.line("std::copy({0}, {0} + {1}, {2});", e.x("input"), n, e.y());
                      return;
                    }
                    // The generator's state before the draws, for the gradient (DropoutGrad replays them).
                    e.line("static_assert(sizeof(rng_) == 4 * sizeof(int64_t), \"rng_state holds one rt::Rng\");");
                    e.line("std::memcpy({}, static_cast<const void*>(&rng_), sizeof rng_);", e.y("rng_state"));
                    // Training: keep each element with probability 1 - p (one draw of the model's rng_ per element,
                    // in order, so a seed gives the same mask) and scale the survivors by 1/(1-p), as PyTorch.
                    const char* T = EmitContext::ctype(e.out().dtype);
                    e.line("const {0} keep_scale = static_cast<{0}>(1.0 / (1.0 - {1}));", T, fmt::format("{}", p));
                    e.line("for (int64_t i = 0; i < {}; ++i)", n);
                    e.line("  {0}[i] = rng_.uniform() < {1} ? {2}(0) : {3}[i] * keep_scale;", e.y(), fmt::format("{}", p), T,
                           e.x("input"));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.training() && e.f("p") != 0) {
                      // Training: a counter-based mask keyed by one draw of the program's generator
                      // (cuda/train.cuh; the key is kept in rng_state for the backward pass).
                      if (e.out().dtype != DType::f32) e.unsupported("float64");
                      e.line("rt::cuda::dropout_forward(device_, {}, {}, {}, {}, {}, rng_.bits(), {});", e.y(), e.y("rng_state"),
                             e.x("input"), EmitContext::numel(e.out().shape), cpp_number(e.f("p")), e.layer());
                      return;
                    }
                    e.line("rt::cuda::zero(device_, {}, 4 * sizeof(int64_t), {});  // no draws", e.y("rng_state"), e.layer());
                    e.line("rt::cuda::copy(device_, {}, {}, {} * sizeof({}), {});", e.y(), e.x("input"),
                           EmitContext::numel(e.out().shape), EmitContext::ctype(e.out().dtype), e.layer());
                  })
                  .rule([](InferContext& c) {
                    c.expect_float("input");
                    double p = c.f("p");
                    if (!(p >= 0 && p < 1)) c.fail_arg("p", "'p' must be in [0, 1), found {}", p);
                    c.out("output", c.dtype("input"), c.shape("input"));
                    // The random generator's state before the mask was drawn (training only; zeros otherwise).
                    c.out("rng_state", DType::i64, {Dim(4)});
                  }));

  for (auto [name, summary] : {std::pair{"Softmax", "exp(x) / sum(exp(x)) along axis (numerically stable)"},
                               std::pair{"LogSoftmax", "x - log(sum(exp(x))) along axis (numerically stable)"}}) {
    // The backward reads only the forward output y: dx = y * (dy - sum(dy * y)) for Softmax,
    // dx = dy - exp(y) * sum(dy) for LogSoftmax, one kernel (<Name>Grad).
    std::string grad_op = std::string(name) + "Grad";
    bool log = std::string(name) == "LogSoftmax";
    register_op(OpDef(grad_op, "nn", std::string(name) + "'s backward from its output")
                    .in("grad").in("output").out().trait("internal")
                    .arg("axis", ArgType::Int, json(-1), "as the forward layer's")
                    .emit("cpu", [log](EmitContext& e) {
                      const Shape& in = e.in("output").shape;
                      int64_t r = static_cast<int64_t>(in.size()), a = e.i("axis");
                      size_t axis = static_cast<size_t>(a < 0 ? a + r : a);
                      e.line("rt::k::{}({}, {}, {}, {}, {}, {});", log ? "log_softmax_backward" : "softmax_backward",
                             e.y(), e.x("grad"), e.x("output"), EmitContext::numel(in, 0, axis),
                             EmitContext::dim(in[axis]), EmitContext::numel(in, axis + 1, in.size()));
                    })
                    .emit("cuda", [log](EmitContext& e) {
                      const Shape& in = e.in("output").shape;
                      int64_t r = static_cast<int64_t>(in.size()), a = e.i("axis");
                      size_t axis = static_cast<size_t>(a < 0 ? a + r : a);
                      if (axis + 1 != in.size()) e.unsupported("an axis other than the last");
                      if (e.out().dtype != DType::f32) e.unsupported("float64");
                      e.line("rt::cuda::softmax_backward<{}>(device_, {}, {}, {}, {}, {}, {});", log ? "true" : "false", e.y(), e.x("grad"),
                             e.x("output"), EmitContext::numel(in, 0, axis), EmitContext::dim(in[axis]), e.layer());
                    })
                    .rule([](InferContext& c) { c.out("output", c.dtype("output"), c.shape("output")); }));
    register_op(OpDef(name, "nn", summary)
                    .in("input").out()
                    .grad([grad_op](GradContext& g) {
                      g.grad("input", g.op1(grad_op, {{"grad", g.dout()}, {"output", g.out()}}, {{"axis", g.i("axis")}}));
                    })
                    .arg("axis", ArgType::Int, json(-1), "the axis to normalize along; negative counts from the end")
                    .emit("cpu", [log = std::string(name) == "LogSoftmax"](EmitContext& e) {
                      const Shape& in = e.in("input").shape;
                      int64_t r = static_cast<int64_t>(in.size()), a = e.i("axis");
                      size_t axis = static_cast<size_t>(a < 0 ? a + r : a);
                      e.line("rt::k::{}({}, {}, {}, {}, {});", log ? "log_softmax" : "softmax", e.y(), e.x("input"),
                             EmitContext::numel(in, 0, axis), EmitContext::dim(in[axis]),
                             EmitContext::numel(in, axis + 1, in.size()));
                    })
                    .emit("cuda", [log = std::string(name) == "LogSoftmax"](EmitContext& e) {
                      const Shape& in = e.in("input").shape;
                      int64_t r = static_cast<int64_t>(in.size()), a = e.i("axis");
                      size_t axis = static_cast<size_t>(a < 0 ? a + r : a);
                      if (axis + 1 != in.size()) e.unsupported("an axis other than the last");
                      if (e.out().dtype != DType::f32) e.unsupported("float64");
                      e.line("rt::cuda::softmax_rows<{}>(device_, {}, {}, {}, {}, {});", log ? "true" : "false", e.y(),
                             e.x("input"), EmitContext::numel(in, 0, axis), EmitContext::dim(in[axis]), e.layer());
                    })
                    .rule([](InferContext& c) {
                      c.expect_float("input");
                      c.axis(c.i("axis"), c.rank("input"), "axis");
                      c.out("output", c.dtype("input"), c.shape("input"));
                    }));
  }

  // torch.nn.functional.scaled_dot_product_attention:
  //   softmax(query @ key^T * scale + bias) @ value, bias from mask / causal.
  register_op(OpDef("ScaledDotProductAttention", "nn",
                    "softmax(query key^T * scale + mask) value over [..., L, E], [..., S, E], [..., S, Ev] -> "
                    "[..., L, Ev]; batch dimensions broadcast")
                  .in("query").in("key").in("value").in("mask", true).out().trait("attention")
                  .flop_count([](const Node& n, const Graph& g) {  // scores, then their product with value
                    const Shape &q = input_shape(n, g, "query"), &k = input_shape(n, g, "key");
                    return product_flops(q, k[k.size() - 2]) + product_flops(output_shape(n, g), k[k.size() - 2]);
                  })
                  .arg("causal", ArgType::Bool, json(false), "query i attends to keys 0..i only (no mask allowed)")
                  .arg("scale", ArgType::Float, json(nullptr), "factor on the scores (default: 1/sqrt(E))")
                  .scratch_elems("cpu", [](const Node& n, const Graph& g) { return attention_scratch(n, g, 1); })
                  .emit("cpu", [](EmitContext& e) { emit_attention(e, false); })
                  .emit("cuda", emit_attention_cuda)
                  .grad([](GradContext& g) {
                    // One backward node gives all three gradients (it recomputes the probabilities from
                    // query and key); the mask is a constant of the layer.
                    if (g.has("mask") && g.wants("mask"))
                      fail(g.node().loc,
                           "layer '{}' (ScaledDotProductAttention): no gradient flows into 'mask'; it must not depend "
                           "on trainable parameters or on inputs whose gradient is requested",
                           g.node().name);
                    std::vector<std::pair<std::string, std::vector<int>>> ins = {
                        {"grad", {g.dout()}}, {"query", {g.in("query")}}, {"key", {g.in("key")}},
                        {"value", {g.in("value")}}};
                    if (g.has("mask")) ins.push_back({"mask", {g.in("mask")}});
                    auto d = g.add("ScaledDotProductAttentionGrad", ins,
                                   {{"causal", g.b("causal")}, {"scale", g.arg("scale")}});
                    const char* ports[] = {"query", "key", "value"};
                    for (size_t k = 0; k < 3; ++k) g.grad(ports[k], d[k]);
                  })
                  .rule([](InferContext& c) {
                    for (auto port : {"query", "key", "value"}) {
                      c.expect_float(port);
                      if (c.rank(port) < 2)
                        c.fail("'{}' must have rank 2 or more ([..., length, features]), found {}", port,
                               type_str(c.dtype(port), c.shape(port)));
                    }
                    c.expect_same_dtype("query", "key");
                    c.expect_same_dtype("query", "value");
                    const Shape &q = c.shape("query"), &k = c.shape("key"), &v = c.shape("value");
                    if (q.back() != k.back())
                      c.fail("shape mismatch: 'query' {} and 'key' {} must have the same feature size (last dimension), "
                             "found {} and {}",
                             shape_str(q), shape_str(k), q.back().str(), k.back().str());
                    if (k[k.size() - 2] != v[v.size() - 2])
                      c.fail("shape mismatch: 'key' {} and 'value' {} must have the same length S (dimension -2), "
                             "found {} and {}",
                             shape_str(k), shape_str(v), k[k.size() - 2].str(), v[v.size() - 2].str());
                    Shape batch = c.broadcast(Shape(q.begin(), q.end() - 2), Shape(k.begin(), k.end() - 2),
                                              "the batch dimensions of 'query' and 'key'");
                    batch = c.broadcast(batch, Shape(v.begin(), v.end() - 2), "the batch dimensions of 'query'/'key' and 'value'");
                    if (c.has("mask")) {
                      if (c.b("causal"))
                        c.fail_arg("causal", "'mask' and causal: true cannot be combined; fold the causal mask into 'mask'");
                      DType mt = c.dtype("mask");
                      if (mt != DType::boolean && mt != c.dtype("query"))
                        c.fail("'mask' must be bool (true = attend) or {} like 'query' (added to the scores), found {}",
                               dtype_name(c.dtype("query")), type_str(mt, c.shape("mask")));
                      Shape scores = batch;
                      scores.push_back(q[q.size() - 2]);
                      scores.push_back(k[k.size() - 2]);
                      auto b = broadcast_shapes(c.shape("mask"), scores);
                      if (!b || *b != scores)
                        c.fail("shape mismatch: 'mask' {} does not broadcast to the attention scores [..., L, S] = {}",
                               shape_str(c.shape("mask")), shape_str(scores));
                    }
                    if (!c.is_null("scale") && !std::isfinite(c.f("scale")))
                      c.fail_arg("scale", "'scale' must be a finite number, found {}", c.f("scale"));
                    Shape out = batch;
                    out.push_back(q[q.size() - 2]);
                    out.push_back(v.back());
                    c.out("output", c.dtype("query"), out);
                  }));

  // Its backward: the gradients of query, key and value from the output's, in one kernel.
  register_op(OpDef("ScaledDotProductAttentionGrad", "nn",
                    "ScaledDotProductAttention's backward: the gradients of query, key and value, recomputing the "
                    "probabilities")
                  .in("grad").in("query").in("key").in("value").in("mask", true)
                  .out("query").out("key").out("value").trait("internal")
                  .flop_count([](const Node& n, const Graph& g) {  // the scores again, dP, dV, dQ and dK
                    const Shape &q = input_shape(n, g, "query"), &k = input_shape(n, g, "key");
                    const Dim& S = k[k.size() - 2];
                    return Dim(3) * product_flops(q, S) + Dim(2) * product_flops(input_shape(n, g, "grad"), S);
                  })
                  .arg("causal", ArgType::Bool, json(false), "as the forward layer's")
                  .arg("scale", ArgType::Float, json(nullptr), "as the forward layer's")
                  .scratch_elems("cpu", [](const Node& n, const Graph& g) { return attention_scratch(n, g, 2); })
                  .emit("cpu", [](EmitContext& e) { emit_attention(e, true); })
                  .scratch_elems("cuda", [](const Node& n, const Graph& g) {  // log-sum-exp and D per query row
                    const Shape& q = g.value(n.inputs[1][0]).shape;
                    return Dim(2) * numel(Shape(q.begin(), q.end() - 1));
                  })
                  .emit("cuda", emit_attention_backward_cuda)
                  .rule([](InferContext& c) {
                    for (auto port : {"query", "key", "value"})
                      c.out(port, c.dtype(port), c.shape(port));  // their gradients
                  }));
}

}  // namespace mithril
