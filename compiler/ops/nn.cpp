// Neural-network building blocks: Embedding, Dropout, Softmax, LogSoftmax and
// ScaledDotProductAttention, with PyTorch's semantics.
#include <cmath>

#include "codegen/emit.h"
#include "ops/registry.h"

namespace mithril {

MITHRIL_REGISTER_OPS(nn) {
  // torch.nn.Embedding: weight [num_embeddings, dimension] drawn from N(0, 1)
  // (reset_parameters: init.normal_), then the padding_idx row zeroed.
  register_op(OpDef("Embedding", "nn", "look up rows of a [num_embeddings, dimension] table by integer index; "
                                       "output is the input's shape + [dimension]")
                  .in("input").param("weight").out()
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
                  .emit("cpu", [](EmitContext& e) {  // inference: the identity (training masks come with the training target)
                    e.line("std::copy({0}, {0} + {1}, {2});", e.x("input"), EmitContext::numel(e.out().shape), e.y());
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
