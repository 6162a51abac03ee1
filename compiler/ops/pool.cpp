// Pooling: MaxPool1d, MaxPool2d, AvgPool2d and GlobalAvgPool2d, with
// PyTorch's arguments and output sizes.
//
// Output size (PyTorch, aten/src/ATen/native/Pool.h, pooling_output_shape):
//   out = floor((in + 2*padding - dilation*(kernel-1) - 1 + (ceil_mode ? stride-1 : 0)) / stride) + 1
//   and with ceil_mode, one less when the last window would start in the right
//   padding: if (out-1)*stride >= in + padding then out -= 1.
// PyTorch also requires padding <= kernel/2 (pool2d_shape_check: "pad should be
// smaller than or equal to half of kernel size").
//
// With a symbolic input size the ceil_mode correction can be decided only when
// it can never apply. Let E = in + 2p - d(k-1) - 1 and out-1 = ceil(E/s); then
// (out-1)*s - E lies in [0, s-1] and the condition reads (out-1)*s - E >= d(k-1)+1-p.
// So when s-1 < d(k-1)+1-p (s + p <= d(k-1)+1: the usual k=3,s=2,p=1 or
// k=2,s=2) the correction never applies and out = floor((E + s-1)/s) + 1 for all
// sizes; otherwise a symbolic size is an error asking for a known one.
#include "ops/emit.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {
namespace {

void pool_rule(InferContext& c, size_t spatial, bool has_dilation) {
  c.expect_float("input");
  if (c.rank("input") != spatial + 2) {
    std::string layout = spatial == 1 ? "[N, C, L]" : "[N, C, H, W]";
    c.fail("'input' must have rank {} ({}), found rank {}: {}", spatial + 2, layout, c.rank("input"),
           type_str(c.dtype("input"), c.shape("input")));
  }
  auto kernel = c.ints("kernel_size", spatial);
  auto stride = c.is_null("stride") ? kernel : c.ints("stride", spatial);
  auto padding = c.ints("padding", spatial);
  auto dilation = has_dilation ? c.ints("dilation", spatial) : std::vector<int64_t>(spatial, 1);
  bool ceil_mode = c.b("ceil_mode");
  for (size_t i = 0; i < spatial; ++i) {
    if (kernel[i] <= 0) c.fail_arg("kernel_size", "'kernel_size' must be positive, found {}", ints_str(kernel));
    if (stride[i] <= 0) c.fail_arg("stride", "'stride' must be positive, found {}", ints_str(stride));
    if (dilation[i] <= 0) c.fail_arg("dilation", "'dilation' must be positive, found {}", ints_str(dilation));
    if (padding[i] < 0) c.fail_arg("padding", "'padding' must be non-negative, found {}", ints_str(padding));
    if (padding[i] > kernel[i] / 2)
      c.fail_arg("padding", "'padding' must be at most half the kernel size, found padding {} with kernel_size {}",
                 ints_str(padding), ints_str(kernel));
  }
  Shape in = c.shape("input");
  Shape out = {in[0], in[1]};
  for (size_t i = 0; i < spatial; ++i) {
    const Dim& size = in[2 + i];
    int64_t k = kernel[i], s = stride[i], p = padding[i], d = dilation[i];
    int64_t effective = d * (k - 1) + 1;
    Dim span = size + 2 * p - effective;  // E above
    Dim o;
    if (!ceil_mode) {
      o = Dim::floordiv(span, s) + 1;
    } else if (auto n = size.as_const()) {
      int64_t v = Dim::floordiv(span + (s - 1), s).value() + 1;
      if ((v - 1) * s >= *n + p) --v;  // the last window would start in the padding
      o = Dim(v);
    } else if (s + p <= effective) {
      o = Dim::floordiv(span + (s - 1), s) + 1;
    } else {
      c.fail_arg("ceil_mode",
                 "ceil_mode needs a known input {} here, found symbolic {}: with kernel_size {}, stride {} and "
                 "padding {} the output size depends on whether the last window starts in the padding (bind it "
                 "with --shape)",
                 spatial_axis_name(spatial, i), size.str(), k, s, p);
    }
    if (auto v = o.as_const(); v && *v <= 0)
      c.fail("the output would be empty: input {} {} plus padding 2*{} is smaller than the effective kernel {} "
             "(kernel_size {}, dilation {}); input {}",
             spatial_axis_name(spatial, i), size.str(), p, effective, k, d, type_str(c.dtype("input"), in));
    out.push_back(o);
  }
  c.out("output", c.dtype("input"), out);
}

// The arguments of MaxPool (max_pool) or AvgPool, shared with their gradient ops.
OpDef& pool_args(OpDef& d, bool max_pool) {
  d.arg("kernel_size", ArgType::IntOrList, std::nullopt, "window size, one value or one per spatial axis")
      .arg("stride", ArgType::IntOrList, json(nullptr), "step between windows (default: kernel_size)")
      .arg("padding", ArgType::IntOrList, json(0),
           max_pool ? "implicit -inf added on both sides, at most kernel_size/2"
                    : "implicit zeros added on both sides, at most kernel_size/2");
  if (max_pool) d.arg("dilation", ArgType::IntOrList, json(1), "spacing between window elements");
  d.arg("ceil_mode", ArgType::Bool, json(false), "round the output size up instead of down");
  if (!max_pool)
    d.arg("count_include_pad", ArgType::Bool, json(true), "count padding zeros in the averaging divisor");
  return d;
}

OpDef pool_def(const char* name, const char* summary, bool max_pool) {
  OpDef d(name, "pool", summary);
  d.in("input").out().trait("pool");
  return pool_args(d, max_pool);
}


// ---- CPU code generation -------------------------------------------------

// An IntOrList argument as `n` values (one int repeats).
std::vector<int64_t> ints_of(const json& j, size_t n) {
  if (j.is_number_integer()) return std::vector<int64_t>(n, j.get<int64_t>());
  auto v = j.get<std::vector<int64_t>>();
  if (v.size() == 1 && n > 1) v.assign(n, v[0]);
  return v;
}

// A pooling node's geometry, declared as the local `geom` (rt::k::Pool2dGeom, kernels/common.h):
// x [N, C, H, W] -> y [N, C, OH, OW], the window, and for max pooling its dilation, for average
// pooling count_include_pad. 1-D as 2-D with height 1 (as max_pool1d is max_pool2d).
void emit_pool_geom(EmitContext& e, const Shape& x, const Shape& y, bool max_pool) {
  const size_t spatial = x.size() - 2;
  auto k = ints_of(e.arg("kernel_size"), spatial);
  auto s = e.arg("stride").is_null() ? k : ints_of(e.arg("stride"), spatial);
  auto p = ints_of(e.arg("padding"), spatial);
  auto d = max_pool ? ints_of(e.arg("dilation"), spatial) : std::vector<int64_t>(spatial, 1);
  if (spatial == 1)  // height 1
    for (auto* v : {&k, &s, &d}) v->insert(v->begin(), 1);
  if (spatial == 1) p.insert(p.begin(), 0);
  auto D = [](const Dim& v) { return EmitContext::dim(v); };
  std::string H = spatial == 2 ? D(x[2]) : "1", OH = spatial == 2 ? D(y[2]) : "1";
  e.line("const rt::k::Pool2dGeom geom{{.n = {}, .c = {}, .h = {}, .w = {}, .kernel_h = {}, .kernel_w = {},", D(x[0]),
         D(x[1]), H, D(x[spatial + 1]), k[0], k[1]);
  e.line("                             .stride_h = {}, .stride_w = {}, .pad_h = {}, .pad_w = {}, .dil_h = {}, .dil_w = {},", s[0],
         s[1], p[0], p[1], d[0], d[1]);
  e.line("                             .out_h = {}, .out_w = {}{}}};", OH, D(y[spatial + 1]),
         max_pool ? "" : fmt::format(", .count_include_pad = {}", e.b("count_include_pad") ? "true" : "false"));
}

// `like` gives only a shape; its pointer is declared all the same.
void mark_shape_only(EmitContext& e) { e.line("(void){};  // only its shape is used", e.x("like")); }

// MaxPool1d/2d and AvgPool2d. The output shape already holds the ceil_mode
// size; the kernels clip windows at the borders as PyTorch does.
void emit_pool(EmitContext& e, size_t spatial, bool max_pool) {
  const Shape& in = e.in("input").shape;
  const Shape& out = e.out().shape;
  emit_pool_geom(e, in, out, max_pool);
  (void)spatial;
  if (e.cuda()) {  // one thread per output element (cuda/kernels.cuh)
    if (e.out().dtype != DType::f32) e.unsupported("float64");
    e.line("rt::cuda::{}_pool2d(device_, {}, {}, geom, {});", max_pool ? "max" : "avg", e.y(), e.x("input"), e.layer());
    return;
  }
  if (max_pool)
    e.line("rt::k::max_pool2d({}, static_cast<int64_t*>(nullptr), {}, geom);", e.y(), e.x("input"));
  else
    e.line("rt::k::avg_pool2d({}, {}, geom);", e.y(), e.x("input"));
}

// ---- gradients -------------------------------------------------------------
// Dedicated kernels (kernels/pool.h) that zero dx and scatter dy into it in one
// pass per plane. MaxPoolGrad finds each window's maximum again from the input
// instead of storing indices in the forward pass.

void register_pool_grads() {
  OpDef mg("MaxPoolGrad", "pool", "gradient of MaxPool1d/2d: grad routed to the first maximum of each window of input");
  mg.in("grad").in("input").out().trait("internal");
  register_op(pool_args(mg, true)
                  .emit("cpu", [](EmitContext& e) {
                    emit_pool_geom(e, e.in("input").shape, e.in("grad").shape, true);
                    e.line("rt::k::max_pool2d_grad({}, {}, {}, geom);", e.y(), e.x("grad"), e.x("input"));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    emit_pool_geom(e, e.in("input").shape, e.in("grad").shape, true);
                    e.line("rt::cuda::max_pool2d_backward(device_, {}, {}, {}, geom, {});", e.y(), e.x("grad"), e.x("input"), e.layer());
                  })
                  .rule([](InferContext& c) { c.out("output", c.dtype("input"), c.shape("input")); }));

  OpDef ag("AvgPoolGrad", "pool", "gradient of AvgPool2d: grad spread over each window to the shape of like");
  ag.in("grad").in("like").out().trait("internal");
  register_op(pool_args(ag, false)
                  .emit("cpu", [](EmitContext& e) {
                    mark_shape_only(e);
                    emit_pool_geom(e, e.in("like").shape, e.in("grad").shape, false);
                    e.line("rt::k::avg_pool2d_grad({}, {}, geom);", e.y(), e.x("grad"));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    mark_shape_only(e);
                    emit_pool_geom(e, e.in("like").shape, e.in("grad").shape, false);
                    e.line("rt::cuda::avg_pool2d_backward(device_, {}, {}, geom, {});", e.y(), e.x("grad"), e.layer());
                  })
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("like")); }));

  register_op(OpDef("GlobalAvgPoolGrad", "pool", "gradient of GlobalAvgPool2d: grad / (H*W) over each plane of like")
                  .in("grad").in("like").out().trait("internal")
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& s = e.in("like").shape;
                    mark_shape_only(e);
                    e.line("rt::k::global_avg_pool2d_grad({}, {}, {}, {});", e.y(), e.x("grad"),
                           EmitContext::numel(s, 0, 2), EmitContext::numel(s, 2, 4));
                  })
                  .emit("cuda", [](EmitContext& e) {  // dx = grad[plane] / (H W)
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    const Shape& s = e.in("like").shape;
                    mark_shape_only(e);
                    std::string hw = EmitContext::numel(s, 2, 4);
                    e.line("rt::cuda::for_each(device_, {} * {}, [=] __device__ (int64_t i) {{ {}[i] = {}[i / {}] / static_cast<float>({}); }}, {});",
                           EmitContext::numel(s, 0, 2), hw, e.y(), e.x("grad"), hw, hw, e.layer());
                  })
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("like")); }));
}

void max_pool_grad(GradContext& g) {
  g.grad("input", g.op1("MaxPoolGrad", {{"grad", g.dout()}, {"input", g.in("input")}}, g.node().attrs));
}

}  // namespace

MITHRIL_REGISTER_OPS(pool) {
  register_pool_grads();
  register_op(pool_def("MaxPool1d", "maximum over sliding windows of [N, C, L]", true)
                  .emit("cpu", [](EmitContext& e) { emit_pool(e, 1, true); })
                  .emit("cuda", [](EmitContext& e) { emit_pool(e, 1, true); })
                  .grad(max_pool_grad)
                  .rule([](InferContext& c) { pool_rule(c, 1, true); }));
  register_op(pool_def("MaxPool2d", "maximum over sliding windows of [N, C, H, W]", true)
                  .emit("cpu", [](EmitContext& e) { emit_pool(e, 2, true); })
                  .emit("cuda", [](EmitContext& e) { emit_pool(e, 2, true); })
                  .grad(max_pool_grad)
                  .rule([](InferContext& c) { pool_rule(c, 2, true); }));
  register_op(pool_def("AvgPool2d", "average over sliding windows of [N, C, H, W]", false)
                  .emit("cpu", [](EmitContext& e) { emit_pool(e, 2, false); })
                  .emit("cuda", [](EmitContext& e) { emit_pool(e, 2, false); })
                  .grad([](GradContext& g) {
                    // The average does not depend on the input's values: `like` gives only the shape.
                    int dx = g.op1("AvgPoolGrad", {{"grad", g.dout()}, {"like", g.in("input")}}, g.node().attrs);
                    g.grad("input", dx);
                  })
                  .rule([](InferContext& c) { pool_rule(c, 2, false); }));
  register_op(OpDef("GlobalAvgPool2d", "pool",
                    "average over all of H and W: [N, C, H, W] -> [N, C, 1, 1] (AdaptiveAvgPool2d(1))")
                  .in("input").out().trait("pool")
                  .grad([](GradContext& g) {
                    g.grad("input", g.op1("GlobalAvgPoolGrad", {{"grad", g.dout()}, {"like", g.in("input")}}));
                  })
                  .emit("cuda", [](EmitContext& e) {  // one block per plane
                    const Shape& in = e.in("input").shape;
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    e.line("rt::cuda::global_avg_pool2d(device_, {}, {}, {}, {}, {});", e.y(), e.x("input"),
                           EmitContext::numel(in, 0, 2), EmitContext::numel(in, 2, 4), e.layer());
                  })
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& in = e.in("input").shape;
                    e.line("rt::k::global_avg_pool2d({}, {}, {}, {});", e.y(), e.x("input"), EmitContext::numel(in, 0, 2),
                           EmitContext::numel(in, 2, 4));
                  })
                  .rule([](InferContext& c) {
                    c.expect_float("input");
                    if (c.rank("input") != 4)
                      c.fail("'input' must have rank 4 ([N, C, H, W]), found rank {}: {}", c.rank("input"),
                             type_str(c.dtype("input"), c.shape("input")));
                    Shape in = c.shape("input");
                    c.out("output", c.dtype("input"), {in[0], in[1], Dim(1), Dim(1)});
                  }));
}

}  // namespace mithril
