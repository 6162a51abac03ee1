// Neural-network building blocks: Embedding, Dropout, Softmax, LogSoftmax and
// ScaledDotProductAttention, with PyTorch's semantics.
#include <algorithm>
#include <cmath>

#include "codegen/emit.h"
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

// Scores L*S, plus room for the mask broadcast to [B, L, S] when it is not already that shape.
Dim attention_scratch(const Node& n, const Graph& g) {
  const Shape& out = g.value(n.outputs[0][0]).shape;
  const Shape& key = port_value(n, g, "key").shape;
  Shape scores = scores_shape(out, key);
  Dim elems = scores[scores.size() - 2] * scores.back();
  int m = n.op->input_index("mask");
  if (!n.inputs[m].empty() && padded(g.value(n.inputs[m][0]).shape, scores.size()) != scores)
    elems = elems + numel(scores);  // in elements of the output type: enough for a bool mask too
  return elems;
}

void emit_attention(EmitContext& e) {
  const Shape &q = e.in("query").shape, &k = e.in("key").shape, &v = e.in("value").shape, &out = e.out().shape;
  Shape batch(out.begin(), out.end() - 2);
  for (auto port : {"query", "key", "value"}) {
    const Shape& s = e.in(port).shape;
    if (Shape(s.begin(), s.end() - 2) != batch)
      e.unsupported(fmt::format("'{}' {} with batch dimensions broadcast to {}", port, shape_str(s), shape_str(batch)));
  }
  auto D = [](const Dim& d) { return EmitContext::dim(d); };
  std::string B = EmitContext::numel(batch), L = D(q[q.size() - 2]), S = D(k[k.size() - 2]), E = D(q.back()),
              Ev = D(v.back());
  const char* T = EmitContext::ctype(e.out().dtype);
  std::string scale = e.arg("scale").is_null() ? fmt::format("1.0 / std::sqrt(static_cast<double>({}))", E)
                                                : fmt::format("{}", e.f("scale"));
  std::string mask = "nullptr", bias = "nullptr";
  e.line("{}* scores = {};", T, e.scratch());
  if (e.has("mask")) {
    const Value& m = e.in("mask");
    bool is_bool = m.dtype == DType::boolean;
    Shape scores = scores_shape(out, k);
    std::string ptr = is_bool ? fmt::format("reinterpret_cast<const std::uint8_t*>({})", e.x("mask")) : e.x("mask");
    if (padded(m.shape, scores.size()) != scores) {  // broadcast the mask into scratch after the scores
      if (scores.size() > 8) e.unsupported("a broadcast attention mask of rank above 8");
      std::string at = fmt::format("scores + {} * {}", L, S);
      std::string full = is_bool ? fmt::format("reinterpret_cast<std::uint8_t*>({})", at) : at;
      e.line("const int64_t mask_shape[] = {};", shape_list(padded(m.shape, scores.size())));
      e.line("const int64_t scores_shape[] = {};", shape_list(scores));
      e.line("rt::k::expand({}, {}, {}, mask_shape, scores_shape);", full, ptr, scores.size());
      ptr = full;
    }
    (is_bool ? mask : bias) = ptr;
  }
  e.line("rt::k::scaled_dot_product_attention({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, scores);", e.y(),
         e.x("query"), e.x("key"), e.x("value"), mask, bias, B, L, S, E, Ev, scale, e.b("causal") ? "true" : "false");
}

}  // namespace

MITHRIL_REGISTER_OPS(nn) {
  // torch.nn.Embedding: weight [num_embeddings, dimension] drawn from N(0, 1)
  // (reset_parameters: init.normal_), then the padding_idx row zeroed.
  register_op(OpDef("Embedding", "nn", "look up rows of a [num_embeddings, dimension] table by integer index; "
                                       "output is the input's shape + [dimension]")
                  .in("input").param("weight").out()
                  .emit("cpu", [](EmitContext& e) {
                    e.line("rt::k::embedding({}, {}, {}, {}, {}, {});", e.y(), e.x("input"), e.x("weight"),
                           EmitContext::numel(e.in("input").shape), e.i("dimension"), e.i("num_embeddings"));
                  })
                  .arg("num_embeddings", ArgType::Int, std::nullopt, "size of the table (valid indices 0..num_embeddings-1)")
                  .arg("dimension", ArgType::Int, std::nullopt, "width of each embedding vector")
                  .arg("padding_idx", ArgType::Int, json(nullptr),
                       "index whose row starts at zero and gets no gradient; negative counts from the end")
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
                    c.param("weight", DType::f32, {Dim(n), Dim(dim)}, init);
                    Shape s = c.shape("input");
                    s.push_back(Dim(dim));
                    c.out("output", DType::f32, s);
                  }));

  register_op(OpDef("Dropout", "nn", "in training, zero each element with probability p and scale the rest by 1/(1-p); "
                                     "identity in evaluation")
                  .in("input").out().trait("random")
                  .arg("p", ArgType::Float, json(0.5), "probability of zeroing an element, in [0, 1)")
                  .emit("cpu", [](EmitContext& e) {
                    std::string n = EmitContext::numel(e.out().shape);
                    double p = e.f("p");
                    if (!e.training() || p == 0) {  // evaluation (or p = 0): the identity
                      e.line("std::copy({0}, {0} + {1}, {2});", e.x("input"), n, e.y());
                      return;
                    }
                    // Training: keep each element with probability 1 - p (one draw of the model's rng_ per element,
                    // in order, so a seed gives the same mask) and scale the survivors by 1/(1-p), as PyTorch.
                    const char* T = EmitContext::ctype(e.out().dtype);
                    e.line("const {0} keep_scale = static_cast<{0}>(1.0 / (1.0 - {1}));", T, fmt::format("{}", p));
                    e.line("for (int64_t i = 0; i < {}; ++i)", n);
                    e.line("  {0}[i] = rng_.uniform() < {1} ? {2}(0) : {3}[i] * keep_scale;", e.y(), fmt::format("{}", p), T,
                           e.x("input"));
                  })
                  .rule([](InferContext& c) {
                    c.expect_float("input");
                    double p = c.f("p");
                    if (!(p >= 0 && p < 1)) c.fail_arg("p", "'p' must be in [0, 1), found {}", p);
                    c.out("output", c.dtype("input"), c.shape("input"));
                  }));

  for (auto [name, summary] : {std::pair{"Softmax", "exp(x) / sum(exp(x)) along axis (numerically stable)"},
                               std::pair{"LogSoftmax", "x - log(sum(exp(x))) along axis (numerically stable)"}}) {
    register_op(OpDef(name, "nn", summary)
                    .in("input").out()
                    .arg("axis", ArgType::Int, json(-1), "the axis to normalize along; negative counts from the end")
                    .emit("cpu", [log = std::string(name) == "LogSoftmax"](EmitContext& e) {
                      const Shape& in = e.in("input").shape;
                      int64_t r = static_cast<int64_t>(in.size()), a = e.i("axis");
                      size_t axis = static_cast<size_t>(a < 0 ? a + r : a);
                      e.line("rt::k::{}({}, {}, {}, {}, {});", log ? "log_softmax" : "softmax", e.y(), e.x("input"),
                             EmitContext::numel(in, 0, axis), EmitContext::dim(in[axis]),
                             EmitContext::numel(in, axis + 1, in.size()));
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
                  .arg("causal", ArgType::Bool, json(false), "query i attends to keys 0..i only (no mask allowed)")
                  .arg("scale", ArgType::Float, json(nullptr), "factor on the scores (default: 1/sqrt(E))")
                  .scratch_elems(attention_scratch)
                  .emit("cpu", emit_attention)
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
}

}  // namespace mithril
