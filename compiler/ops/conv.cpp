// Convolutions: Conv1d, Conv2d and ConvTranspose2d, with PyTorch's argument
// names, defaults and parameter layouts, so a PyTorch state dict maps 1:1.
//
// Output sizes (PyTorch docs, torch.nn.Conv2d / ConvTranspose2d, "Shape"):
//   conv:       out = floor((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1
//   transposed: out = (in-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1
// Symbolic spatial sizes stay symbolic (Dim::floordiv); channel counts fix the
// parameter shapes and must be known.
//
// Initializers (torch.nn.modules.conv._ConvNd.reset_parameters): the weight is
// kaiming_uniform(a=sqrt(5)) and the bias uniform(+-1/sqrt(fan_in)), with fan_in
// computed by torch.nn.init._calculate_fan_in_and_fan_out(weight), i.e.
// weight.size(1) * prod(kernel). For ConvTranspose that is out_channels/groups *
// prod(kernel) (the weight is [in, out/groups, k...]), which is what PyTorch does.
#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "ops/cpu_kernels.h"
#include "ops/emit.h"
#include "ops/fused.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {
namespace {

struct ConvGeometry {
  std::vector<int64_t> kernel, stride, padding, dilation;
};

// Reads and checks kernel_size, stride, padding and dilation for `spatial` axes.
ConvGeometry read_geometry(InferContext& c, size_t spatial) {
  ConvGeometry g{c.ints("kernel_size", spatial), c.ints("stride", spatial), c.ints("padding", spatial),
                 c.ints("dilation", spatial)};
  for (size_t i = 0; i < spatial; ++i) {
    if (g.kernel[i] <= 0) c.fail_arg("kernel_size", "'kernel_size' must be positive, found {}", ints_str(g.kernel));
    if (g.stride[i] <= 0) c.fail_arg("stride", "'stride' must be positive, found {}", ints_str(g.stride));
    if (g.padding[i] < 0) c.fail_arg("padding", "'padding' must be non-negative, found {}", ints_str(g.padding));
    if (g.dilation[i] <= 0) c.fail_arg("dilation", "'dilation' must be positive, found {}", ints_str(g.dilation));
  }
  return g;
}

// Input checks shared by all convolutions: float [N, C, spatial...], C known.
int64_t conv_input_channels(InferContext& c, size_t spatial) {
  c.expect_float("input");
  if (c.rank("input") != spatial + 2) {
    std::string layout = spatial == 1 ? "[N, C, L]" : "[N, C, H, W]";
    c.fail("'input' must have rank {} ({}), found rank {}: {}", spatial + 2, layout, c.rank("input"),
           type_str(c.dtype("input"), c.shape("input")));
  }
  return c.const_dim(c.shape("input")[1], "the input channel count (dimension 1 of 'input')");
}

void check_groups(InferContext& c, int64_t in_channels, int64_t out_channels) {
  int64_t groups = c.i("groups");
  if (groups <= 0) c.fail_arg("groups", "'groups' must be positive, found {}", groups);
  if (out_channels <= 0) c.fail_arg("out_channels", "'out_channels' must be positive, found {}", out_channels);
  if (in_channels % groups != 0)
    c.fail_arg("groups", "the input channel count {} is not divisible by groups {} (input {})", in_channels, groups,
               type_str(c.dtype("input"), c.shape("input")));
  if (out_channels % groups != 0)
    c.fail_arg("groups", "out_channels {} is not divisible by groups {}", out_channels, groups);
}

// Weight [dim0, dim1, kernel...] and optional bias [out_ch], with PyTorch's default
// initializers; fan_in is weight.size(1) * prod(kernel), as PyTorch computes it.
void add_conv_params(InferContext& c, int64_t dim0, int64_t dim1, const std::vector<int64_t>& kernel, int64_t out_ch) {
  int64_t fan_in = dim1;
  Shape w = {Dim(dim0), Dim(dim1)};
  for (int64_t k : kernel) {
    w.push_back(Dim(k));
    fan_in *= k;
  }
  c.param("weight", c.dtype("input"), w, {{"kind", "kaiming_uniform"}, {"fan_in", fan_in}});
  if (c.b("bias")) c.param("bias", c.dtype("input"), {Dim(out_ch)}, {{"kind", "uniform_fan_in"}, {"fan_in", fan_in}});
  else c.no_param("bias", "bias is false");
}

// An IntOrList argument as `n` values (one int repeats).
std::vector<int64_t> ints_of(const json& j, size_t n) {
  if (j.is_number_integer()) return std::vector<int64_t>(n, j.get<int64_t>());
  auto v = j.get<std::vector<int64_t>>();
  if (v.size() == 1 && n > 1) v.assign(n, v[0]);
  return v;
}

// The output shape of a convolution of `in` [N, C, spatial...] into `out_ch` channels (the
// formula in the header).
Shape conv_output(const Shape& in, int64_t out_ch, const ConvGeometry& g) {
  Shape out = {in[0], Dim(out_ch)};
  for (size_t i = 0; i + 2 < in.size(); ++i) {
    int64_t effective = g.dilation[i] * (g.kernel[i] - 1) + 1;
    out.push_back(Dim::floordiv(in[2 + i] + 2 * g.padding[i] - effective, g.stride[i]) + 1);
  }
  return out;
}

// What a convolution node computes before a pooling the fuse-pool pass gave it (attribute `pool`):
// its output's shape, or without the pooling.
Shape conv_result(const Node& n, const Graph& g) {
  const Shape& out = g.value(n.outputs[0][0]).shape;
  if (!n.attrs.contains("pool")) return out;
  const Shape& in = g.value(n.inputs[n.op->input_index("input")][0]).shape;
  const size_t spatial = in.size() - 2;
  ConvGeometry q{ints_of(n.attrs.at("kernel_size"), spatial), ints_of(n.attrs.at("stride"), spatial),
                 ints_of(n.attrs.at("padding"), spatial), ints_of(n.attrs.at("dilation"), spatial)};
  return conv_output(in, *out[1].as_const(), q);
}

// Whether the layout pass moved this convolution to channels-last (attribute `layout`: "NHWC";
// passes/layout.h): its input is [N, H, W, C] and its output [N, OH, OW, K].
bool is_nhwc(const Node& n) { return n.attrs.contains("layout") && n.attrs.at("layout") == "NHWC"; }

// An [N, H, W, C] shape in [N, C, H, W] order (the convolution's sizes in conv2d's names).
Shape nchw_of(const Shape& s) { return {s[0], s[3], s[1], s[2]}; }

void conv_rule(InferContext& c, size_t spatial) {
  if (c.count("epilogue_inputs") > 0 && !c.node().attrs.contains("batchnorm") && !c.node().attrs.contains("epilogue"))
    c.fail("'epilogue_inputs' is bound by the fold-batchnorm and fuse-epilogue passes only");
  int64_t in_ch = conv_input_channels(c, spatial);
  int64_t out_ch = c.i("out_channels");
  check_groups(c, in_ch, out_ch);
  ConvGeometry g = read_geometry(c, spatial);
  Shape in = c.shape("input");  // a copy: creating parameters may move the graph's values
  Shape out = conv_output(in, out_ch, g);
  for (size_t i = 0; i < spatial; ++i)
    if (auto v = out[2 + i].as_const(); v && *v <= 0)
      c.fail("the output would be empty: input {} {} plus padding 2*{} is smaller than the effective kernel {} "
             "(kernel_size {}, dilation {}); input {}",
             spatial_axis_name(spatial, i), in[2 + i].str(), g.padding[i], g.dilation[i] * (g.kernel[i] - 1) + 1,
             g.kernel[i], g.dilation[i], type_str(c.dtype("input"), in));
  int64_t groups = c.i("groups");
  add_conv_params(c, out_ch, in_ch / groups, g.kernel, out_ch);
  c.out("output", c.dtype("input"), out);
}

void conv_transpose_rule(InferContext& c, size_t spatial) {
  int64_t in_ch = conv_input_channels(c, spatial);
  int64_t out_ch = c.i("out_channels");
  check_groups(c, in_ch, out_ch);
  ConvGeometry g = read_geometry(c, spatial);
  auto output_padding = c.ints("output_padding", spatial);
  for (size_t i = 0; i < spatial; ++i) {
    if (output_padding[i] < 0)
      c.fail_arg("output_padding", "'output_padding' must be non-negative, found {}", ints_str(output_padding));
    // PyTorch (Convolution.cpp): output padding must be smaller than either stride or dilation.
    if (output_padding[i] >= g.stride[i] && output_padding[i] >= g.dilation[i])
      c.fail_arg("output_padding",
                 "'output_padding' must be smaller than either stride or dilation, found output_padding {} with "
                 "stride {} and dilation {} along the {}",
                 output_padding[i], g.stride[i], g.dilation[i], spatial_axis_name(spatial, i));
  }
  Shape in = c.shape("input");  // a copy: creating parameters may move the graph's values
  Shape out = {in[0], Dim(out_ch)};
  for (size_t i = 0; i < spatial; ++i) {
    const Dim& size = in[2 + i];
    Dim o = (size - 1) * g.stride[i] - 2 * g.padding[i] + g.dilation[i] * (g.kernel[i] - 1) + output_padding[i] + 1;
    if (auto v = o.as_const(); v && *v <= 0)
      c.fail("the output would be empty: {} {} = ({}-1)*{} - 2*{} + {}*({}-1) + {} + 1 for input {}", spatial_axis_name(spatial, i),
             *v, size.str(), g.stride[i], g.padding[i], g.dilation[i], g.kernel[i], output_padding[i],
             type_str(c.dtype("input"), in));
    out.push_back(o);
  }
  int64_t groups = c.i("groups");
  add_conv_params(c, in_ch, out_ch / groups, g.kernel, out_ch);
  c.out("output", c.dtype("input"), out);
}

// The FLOPs of a convolution, forward or either gradient: every element of the side with K
// channels (`y_side`: a forward convolution's output, a transposed one's input) is a sum of
// (C/groups) * prod(kernel) products, the elements of one filter (`filter`: a weight or its
// gradient, [K, C/groups, kernel...]).
Dim conv_flops(const Shape& y_side, const Shape& filter) {
  return product_flops(y_side, numel(Shape(filter.begin() + 1, filter.end())));
}

OpDef conv_def(const char* name, const char* summary, bool transposed) {
  OpDef d(name, "conv", summary);
  d.in("input").param("weight").param("bias", true);
  // Bound only by the fold-batchnorm and fuse-epilogue passes (programs without gradients): the
  // values the epilogue reads (passes/fuse.h).
  if (!transposed) d.internal_list("epilogue_inputs").trait("epilogue").trait("epilogue_inputs");
  d.out().trait("conv");
  d.arg("out_channels", ArgType::Int, std::nullopt, "output channels")
      .arg("kernel_size", ArgType::IntOrList, std::nullopt, "window size, one value or one per spatial axis")
      .arg("stride", ArgType::IntOrList, json(1), "step between windows")
      .arg("padding", ArgType::IntOrList, json(0), "zeros added on both sides of each spatial axis");
  if (transposed)
    d.arg("output_padding", ArgType::IntOrList, json(0),
          "extra size added to one side of the output; smaller than stride or dilation");
  d.arg("dilation", ArgType::IntOrList, json(1), "spacing between kernel elements")
      .arg("groups", ArgType::Int, json(1), "split channels into groups convolved separately (in and out divisible)")
      .arg("bias", ArgType::Bool, json(true), "add a learned bias");
  d.flop_count([transposed](const Node& n, const Graph& g) {
    return conv_flops(transposed ? input_shape(n, g, "input") : conv_result(n, g), input_shape(n, g, "weight"));
  });
  return d;
}


// ---- CPU code generation -------------------------------------------------

const Value& port_value(const Node& n, const Graph& g, const std::string& port) {
  return g.value(n.inputs[n.op->input_index(port)][0]);
}

// Working memory of one image and group's im2col columns (or of the gemm result
// before col2im, its adjoint): (channels of `img` / groups) * prod(kernel) *
// (spatial size of `cols`), where `img` is the [N, C, ...] side the windows slide
// over and `cols` the side with one column per window position. None when the
// columns are the image itself: 1x1, stride 1, no padding, the same spatial size
// (`same_size`; the kernels check it again at run time, so a symbolic size that
// cannot be proven equal only costs memory).
Dim columns_scratch(const Node& n, const Shape& img, const Shape& cols, bool same_size) {
  const size_t spatial = img.size() - 2;
  auto k = ints_of(n.attrs.at("kernel_size"), spatial), s = ints_of(n.attrs.at("stride"), spatial),
       p = ints_of(n.attrs.at("padding"), spatial);
  bool pointwise = same_size;
  for (size_t i = 0; i < spatial; ++i) pointwise &= k[i] == 1 && s[i] == 1 && p[i] == 0;
  if (pointwise) return Dim(0);
  Dim r = Dim(*img[1].as_const() / n.attrs.at("groups").get<int64_t>());
  for (size_t i = 0; i < spatial; ++i) r = r * Dim(k[i]) * cols[2 + i];
  return r;
}

bool same_spatial(const Shape& a, const Shape& b) { return std::equal(a.begin() + 2, a.end(), b.begin() + 2, b.end()); }

// The geometry of a conv node in conv2d's terms (1-D as 2-D with height 1).
struct Geometry2d {
  int64_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
};
Geometry2d geometry2d(const json& attrs, size_t spatial) {
  auto k = ints_of(attrs.at("kernel_size"), spatial), s = ints_of(attrs.at("stride"), spatial),
       p = ints_of(attrs.at("padding"), spatial), d = ints_of(attrs.at("dilation"), spatial);
  const size_t w = spatial - 1;
  const bool two = spatial == 2;
  return {two ? k[0] : 1, k[w], two ? s[0] : 1, s[w], two ? p[0] : 0, p[w], two ? d[0] : 1, d[w],
          attrs.at("groups").get<int64_t>()};
}

// Height and width of an [N, C, spatial...] shape (height 1 for 1-D), when known.
std::optional<std::pair<int64_t, int64_t>> hw_of(const Shape& s) {
  auto w = s.back().as_const();
  auto h = s.size() == 4 ? s[2].as_const() : std::optional<int64_t>(1);
  if (!h || !w) return std::nullopt;
  return std::make_pair(*h, *w);
}

// The conv kernels get rt::k::ConvAlgo::Auto (the images of a batch spread over
// threads or batched per gemm, kernels/conv.h) when the spatial sizes of x (`a`)
// and y (`b`) are known; the scratch then follows the kernels' plan. Otherwise
// they keep their per-image algorithms, whose scratch is columns_scratch.
bool auto_algo(const Shape& a, const Shape& b) { return hw_of(a) && hw_of(b); }
const char* algo_arg(bool a) { return a ? "rt::k::ConvAlgo::Auto" : "rt::k::ConvAlgo::PerImage"; }

// The scratch of a kernel whose plan depends on the batch size N (f(N) elements):
// f itself for a known batch; for a symbolic one the most any batch can need.
// The plans stop changing once N reaches their clamps (at most a few hundred
// images, kernels/conv.h), but not monotonically (Winograd starts at a number of
// tiles and needs its own scratch), so every batch size up to past the clamps
// is asked, and the largest.
template <class F>
int64_t batch_scratch(const Dim& n, const F& f) {
  if (auto c = n.as_const()) return static_cast<int64_t>(f(*c));
  size_t most = f(std::numeric_limits<int64_t>::max());
  for (int64_t b = 1; b <= 1024; ++b) most = std::max(most, static_cast<size_t>(f(b)));
  return static_cast<int64_t>(most);
}

Dim elems(size_t n) { return Dim(static_cast<int64_t>(n)); }

// Conv1d/Conv2d: im2col of the input, one column per output position (a pointwise
// convolution's output always has the input's size), per image or per thread, or
// the columns of a group of images and their gemm result (kernels/conv.h).
Dim conv_own_scratch(const Node& n, const Graph& g) {
  if (is_nhwc(n)) {
    const Shape in = nchw_of(port_value(n, g, "input").shape);
    Geometry2d q = geometry2d(n.attrs, 2);
    return elems(cpu_kernels::conv2d_nhwc_scratch(*in[1].as_const(), n.attrs.at("out_channels").get<int64_t>(), q.kh,
                                                  q.kw, q.groups));
  }
  const Shape& in = port_value(n, g, "input").shape;
  const Shape out = conv_result(n, g);
  if (!auto_algo(in, out)) return columns_scratch(n, in, out, true);
  auto o = hw_of(out);
  Geometry2d q = geometry2d(n.attrs, in.size() - 2);
  return elems(batch_scratch(in[0], [&](int64_t nb) {
    return cpu_kernels::conv2d_scratch(*in[1].as_const(), q.kh, q.kw, q.sh, q.sw, q.ph, q.pw, q.groups, o->first,
                                       o->second, nb, *out[1].as_const(), cpu_kernels::ConvAlgo::Auto, q.dh, q.dw);
  }));
}

// Where a fused pooling's input starts in the scratch: after the convolution's own, at a multiple
// of 16 elements (64 bytes for float).
Dim unpooled_offset(const Dim& own) { return Dim::floordiv(own + 15, 16) * 16; }

// With a pooling fused in (attribute `pool`), the convolution's result before the pooling
// follows its own scratch: the epilogue pools each row of it into the output.
Dim conv_scratch(const Node& n, const Graph& g) {
  Dim own = conv_own_scratch(n, g);
  if (!n.attrs.contains("pool")) return own;
  return unpooled_offset(own) + numel(conv_result(n, g));
}

// ConvTranspose2d: the gemm result before col2im into the output, one column per input position.
Dim conv_transpose_scratch(const Node& n, const Graph& g) {
  const Shape& in = port_value(n, g, "input").shape;
  const Shape& out = g.value(n.outputs[0][0]).shape;
  return columns_scratch(n, out, in, same_spatial(in, out));
}

// The scratch pointer, typed even when the node has none (the kernels deduce T from it).
std::string scratch_arg(EmitContext& e, const std::string& port = "input") {
  std::string s = e.scratch();
  return s == "nullptr" ? fmt::format("static_cast<{}*>(nullptr)", e.ctype_of(port)) : s;
}

// `like` gives only a shape; its pointer is declared all the same.
void mark_shape_only(EmitContext& e) { e.line("(void){};  // only its shape is used", e.x("like")); }

// The geometry every conv kernel takes, declared as the local `geom` (rt::k::Conv2dGeom,
// kernels/common.h) in conv2d's names: x [N, C, H, W] (the side the windows slide over),
// y [N, K, OH, OW], then kernel, stride, padding, dilation and groups; 1-D as 2-D with height 1.
void emit_conv_geom(EmitContext& e, const Shape& x, const Shape& y) {
  const size_t spatial = x.size() - 2, w = spatial - 1;
  auto k = ints_of(e.arg("kernel_size"), spatial), s = ints_of(e.arg("stride"), spatial),
       p = ints_of(e.arg("padding"), spatial), d = ints_of(e.arg("dilation"), spatial);
  auto D = [](const Dim& v) { return EmitContext::dim(v); };
  std::string H = spatial == 2 ? D(x[2]) : "1", OH = spatial == 2 ? D(y[2]) : "1";
  int64_t kh = spatial == 2 ? k[0] : 1, sh = spatial == 2 ? s[0] : 1, ph = spatial == 2 ? p[0] : 0,
          dh = spatial == 2 ? d[0] : 1;
  e.line("const rt::k::Conv2dGeom geom{{.n = {}, .c_in = {}, .h = {}, .w = {}, .c_out = {},", D(x[0]), D(x[1]), H,
         D(x[spatial + 1]), D(y[1]));
  e.line("                             .kernel_h = {}, .kernel_w = {}, .stride_h = {}, .stride_w = {}, .pad_h = {}, .pad_w = {},",
         kh, k[w], sh, s[w], ph, p[w]);
  e.line("                             .dil_h = {}, .dil_w = {}, .groups = {}, .out_h = {}, .out_w = {}}};", dh, d[w],
         e.i("groups"), OH, D(y[spatial + 1]));
}

// What the fold-batchnorm and fuse-epilogue passes gave a convolution (attributes `batchnorm`:
// {eps, weight, bias}, whose parameters and running statistics come first in `epilogue_inputs`,
// and `epilogue`, whose steps read the result as "in0" and the rest of `epilogue_inputs`, each of
// the output's shape, as "in1", ...), emitted as the lambda `epilogue` that conv2d applies to each
// output row (kernels/conv.h): BatchNorm's per-channel scale and shift, then the steps. False
// (nothing emitted) when the node has neither. With a pooling fused in (attribute `pool`: the
// pooling layer's op, name and arguments), the convolution writes `unpooled` (`result` its shape)
// and the lambda ends by pooling the row into the output.
bool emit_conv_epilogue(EmitContext& e, const Shape& result) {
  const json& attrs = e.node().attrs;
  const bool bn = attrs.contains("batchnorm"), steps = attrs.contains("epilogue"), pool = attrs.contains("pool");
  if (!bn && !steps && !pool) return false;
  const Value& y = e.out();
  const bool nhwc = is_nhwc(e.node());
  const std::string T = EmitContext::ctype(y.dtype), K = EmitContext::dim(y.shape[nhwc ? 3 : 1]);
  const size_t bound = e.node().inputs.at(static_cast<size_t>(e.op().input_index("epilogue_inputs"))).size();
  size_t next = 0;
  if (bn) {
    // BatchNorm in evaluation: y = x * scale[k] + shift[k] (kernels/norm.h), from the running statistics.
    const json& b = attrs.at("batchnorm");
    std::string w = b.at("weight").get<bool>() ? e.x("epilogue_inputs", next++) : "nullptr";
    std::string bb = b.at("bias").get<bool>() ? e.x("epilogue_inputs", next++) : "nullptr";
    std::string mean = e.x("epilogue_inputs", next++), var = e.x("epilogue_inputs", next++);
    e.line("{} bn_scale[{}], bn_shift[{}];  // {} folded in", T, K, K, b.at("name").get<std::string>());
    e.line("for (int64_t k = 0; k < {}; ++k)", K);
    e.line("  rt::k::batch_norm_scale_shift(bn_scale[k], bn_shift[k], k, {}, {}, {}, {}, {});", mean, var, w, bb,
           fmt::format("{}", b.at("eps").get<double>()));
  }
  std::vector<const Value*> inputs = {&y};
  std::vector<std::string> elems = {"v"};
  for (size_t j = next; j < bound; ++j) {
    inputs.push_back(&e.in("epilogue_inputs", j));
    elems.push_back(fmt::format("in{}_[{}]", inputs.size() - 1, nhwc ? "k" : "p"));
  }
  const bool reads = inputs.size() > 1;
  if (nhwc) {
    // Channels-last (kernels/conv_nhwc.h): `count` pixels from pixel p0, K channels each; the
    // other inputs are channels-last too (the layout pass gave them the output's layout).
    e.line("const auto epilogue = [&]({}* rows, int64_t{}, int64_t count) {{", T, reads ? " p0" : "");
    e.line("  for (int64_t i = 0; i < count; ++i) {{");
    e.line("    {}* row = rows + i * {};", T, K);
    for (size_t j = 1; j < inputs.size(); ++j)
      e.line("    const {}* in{}_ = {} + (p0 + i) * {};", T, j, e.name(*inputs[j]), K);
    e.line("    for (int64_t k = 0; k < {}; ++k) {{", K);
    e.line("      const {} v = {};", T, bn ? "row[k] * bn_scale[k] + bn_shift[k]" : "row[k]");
    const std::string last = steps ? epilogue_statements(e, inputs, elems, "      ") : "v";
    e.line("      row[k] = {};", last);
    e.line("    }}");
    e.line("  }}");
    e.line("}};");
    return true;
  }
  if (pool) {
    // The pooling layer's geometry (kernels/pool.h) on one plane of the result: `pool_geom`.
    const json& a = attrs.at("pool").at("args");
    auto k = ints_of(a.at("kernel_size"), 2);
    auto s = a.at("stride").is_null() ? k : ints_of(a.at("stride"), 2);
    auto p = ints_of(a.at("padding"), 2);
    const bool max_pool = attrs.at("pool").at("op").get<std::string>() == "MaxPool2d";
    auto d = max_pool ? ints_of(a.at("dilation"), 2) : std::vector<int64_t>{1, 1};
    e.line("const rt::k::Pool2dGeom pool_geom{{.h = {}, .w = {}, .kernel_h = {}, .kernel_w = {}, .stride_h = {}, .stride_w = {},",
           EmitContext::dim(result[2]), EmitContext::dim(result[3]), k[0], k[1], s[0], s[1]);
    e.line("                                  .pad_h = {}, .pad_w = {}, .dil_h = {}, .dil_w = {}, .out_h = {}, .out_w = {}{}}};",
           p[0], p[1], d[0], d[1], EmitContext::dim(y.shape[2]), EmitContext::dim(y.shape[3]),
           max_pool ? "" : fmt::format(", .count_include_pad = {}", a.at("count_include_pad").get<bool>() ? "true" : "false"));
  }
  e.line("const auto epilogue = [&]({}* row, int64_t{}, int64_t{}, int64_t P) {{", T, reads || pool ? " n" : "",
         reads || bn || pool ? " k" : "");
  for (size_t j = 1; j < inputs.size(); ++j)
    e.line("  const {}* in{}_ = {} + (n * {} + k) * P;", T, j, e.name(*inputs[j]), K);
  if (bn) e.line("  const {} scale = bn_scale[k], shift = bn_shift[k];", T);
  if (bn || steps) {
    e.line("  for (int64_t p = 0; p < P; ++p) {{");
    e.line("    const {} v = {};", T, bn ? "row[p] * scale + shift" : "row[p]");
    const std::string last = steps ? epilogue_statements(e, inputs, elems, "    ") : "v";
    e.line("    row[p] = {};", last);
    e.line("  }}");
  }
  if (pool) {
    // One plane of the pooling layer's kernel (kernels/pool.h) on the row, still in cache, on this
    // thread (the convolution's threads call the epilogue).
    const json& pl = attrs.at("pool");
    const std::string op = pl.at("op").get<std::string>();
    const std::string out = fmt::format("{} + (n * {} + k) * {}", e.y(), K, EmitContext::numel(y.shape, 2, 4));
    e.line("  {}// {} ({}) pools the row:", bn || steps ? "" : "(void)P;  ", pl.at("name").get<std::string>(), op);
    e.line("  rt::k::{}_pool2d_plane({}, row, pool_geom);", op == "MaxPool2d" ? "max" : "avg", out);
  }
  e.line("}};");
  return true;
}

// CUDA: the direct convolution (cuda/kernels.cuh), then what fold-batchnorm and fuse-epilogue gave
// the node in one elementwise kernel over the output: BatchNorm's (x - mean) / sqrt(var + eps) *
// weight + bias per channel, then the steps, which read the other epilogue inputs at the same index.
void emit_conv_cuda(EmitContext& e) {
  const Node& n = e.node();
  if (e.out().dtype != DType::f32) e.unsupported("float64");
  if (n.attrs.contains("pool") || is_nhwc(n)) e.unsupported("a pooling or channels-last layout fused by a CPU pass");
  const Value& y = e.out();
  emit_conv_geom(e, e.in("input").shape, y.shape);
  e.line("rt::cuda::conv2d(device_, {}, {}, {}, {}, geom, {});", e.y(), e.x("input"), e.x("weight"),
         e.has("bias") ? e.x("bias") : "nullptr", e.layer());
  const bool bn = n.attrs.contains("batchnorm"), steps = n.attrs.contains("epilogue");
  if (!bn && !steps) return;
  const size_t bound = n.inputs.at(static_cast<size_t>(e.op().input_index("epilogue_inputs"))).size();
  size_t next = 0;
  e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", EmitContext::numel(y.shape));
  if (bn) {
    const json& b = n.attrs.at("batchnorm");
    std::string w = b.at("weight").get<bool>() ? e.x("epilogue_inputs", next++) : "";
    std::string bb = b.at("bias").get<bool>() ? e.x("epilogue_inputs", next++) : "";
    std::string mean = e.x("epilogue_inputs", next++), var = e.x("epilogue_inputs", next++);
    e.line("  const int64_t k = i / {} % {};  // the channel", EmitContext::numel(y.shape, 2, y.shape.size()), EmitContext::dim(y.shape[1]));
    e.line("  const float v = ({}[i] - {}[k]) / sqrtf({}[k] + {}){}{};  // {} folded in", e.y(), mean, var,
           fmt::format("{}f", b.at("eps").get<double>()), w.empty() ? "" : " * " + w + "[k]", bb.empty() ? "" : " + " + bb + "[k]",
           b.at("name").get<std::string>());
  } else {
    e.line("  const float v = {}[i];", e.y());
  }
  std::vector<const Value*> inputs = {&y};
  std::vector<std::string> elems = {"v"};
  for (size_t j = next; j < bound; ++j) {
    inputs.push_back(&e.in("epilogue_inputs", j));
    elems.push_back(e.x("epilogue_inputs", j) + "[i]");
  }
  const std::string last = steps ? epilogue_statements(e, inputs, elems, "  ") : "v";
  e.line("  {}[i] = {};", e.y(), last);
  e.line("}}, {});", e.layer());
}

void emit_conv(EmitContext& e, bool transposed) {
  std::string bias = e.has("bias") ? e.x("bias") : "nullptr";
  if (transposed) {
    emit_conv_geom(e, e.in("input").shape, e.out().shape);
    e.line("rt::k::conv_transpose2d({}, {}, {}, {}, geom, {});", e.y(), e.x("input"), e.x("weight"), bias, scratch_arg(e));
    return;
  }
  // The algorithm decides the scratch size: as conv_scratch.
  const Shape result = conv_result(e.node(), e.plan().graph);
  const bool epilogue = emit_conv_epilogue(e, result);
  if (is_nhwc(e.node())) {
    // Channels-last (the layout pass): depthwise or pointwise, kernels/conv_nhwc.h.
    const std::string packed = e.packed("weight");
    std::string extra = epilogue ? ", epilogue" : packed.empty() ? "" : ", rt::k::NoPixelEpilogue{}";
    if (!packed.empty()) extra += fmt::format(", rt::k::kPackedGemm ? {} : nullptr", packed);
    emit_conv_geom(e, nchw_of(e.in("input").shape), nchw_of(result));
    e.line("rt::k::conv2d_nhwc({}, {}, {}, {}, geom, {}{});  // channels-last", e.y(), e.x("input"), e.x("weight"), bias,
           scratch_arg(e), extra);
    return;
  }
  std::string y = e.y();
  if (e.node().attrs.contains("pool")) {
    y = "unpooled";
    e.line("{}* const unpooled = {} + {};  // before the pooling", e.ctype_of("input"), e.scratch(),
           EmitContext::dim(unpooled_offset(conv_own_scratch(e.node(), e.plan().graph))));
  }
  // Weights transformed for Winograd once (winograd_pack_spec), where the build packs weights.
  const std::string packed = e.packed("weight");
  std::string extra = epilogue ? ", epilogue" : packed.empty() ? "" : ", rt::k::NoEpilogue{}";
  if (!packed.empty()) extra += fmt::format(", rt::k::kPackedGemm ? {} : nullptr", packed);
  emit_conv_geom(e, e.in("input").shape, result);
  e.line("rt::k::conv2d({}, {}, {}, {}, geom, {}, {}{});", y, e.x("input"), e.x("weight"), bias, scratch_arg(e),
         algo_arg(auto_algo(e.in("input").shape, result)), extra);
}

// Conv2d's packed weight: a channels-last pointwise convolution's gemm panels, or the Winograd
// transform, made once, for the shapes that take it
// (cpu_kernels::winograd_packs: Winograd suits them, but their batch is too small to transform
// the weights on every call). Every size must be known.
std::optional<PackSpec> conv2d_pack_spec(const Node& n, const Graph& g) {
  if (is_nhwc(n)) {
    // A channels-last pointwise convolution is a Linear over the pixels: its weight [K, C, 1, 1]
    // packed as a Linear's [K, C] (kernels/gemm.h pack_b).
    Geometry2d q = geometry2d(n.attrs, 2);
    const Shape x = nchw_of(port_value(n, g, "input").shape);
    const int64_t K = n.attrs.at("out_channels").get<int64_t>(), C = *x[1].as_const();
    if (cpu_kernels::conv_nhwc_depthwise(C, K, q.groups)) return std::nullopt;
    return PackSpec{fmt::format("rt::k::packed_b_size({}, {})", K, C),
                    fmt::format("rt::k::pack_b({{dst}}, {{src}}, {}, {}, {}, true)", K, C, C),
                    (K + 15) / 16 * 16 * C};
  }
  const Shape& x = port_value(n, g, "input").shape;
  const Shape y = conv_result(n, g);
  for (const Shape* s : {&x, &y})
    for (const Dim& d : *s)
      if (!d.is_const()) return std::nullopt;
  Geometry2d q = geometry2d(n.attrs, 2);
  const int64_t N = x[0].value(), C = x[1].value(), K = y[1].value();
  if (!cpu_kernels::winograd_packs(N, C, K, q.kh, q.kw, q.sh, q.sw, q.dh, q.dw, q.groups, y[2].value(), y[3].value()))
    return std::nullopt;
  const int64_t OH = y[2].value(), OW = y[3].value();
  return PackSpec{fmt::format("rt::k::winograd_packed_size({}, {}, {}, {})", K, C, OH, OW),
                  fmt::format("rt::k::winograd_pack({{dst}}, {{src}}, {}, {}, {}, {})", K, C, OH, OW),
                  cpu_kernels::winograd_packed_size(K, C, OH, OW)};
}

// ---- gradients -------------------------------------------------------------
//
// In conv2d's names (x [N, C, H, W] -> y [N, K, OH, OW], weight [K, C/groups, k...]):
//   dx = conv_transpose(dy, weight)                     ConvGradInput (im2col's adjoint)
//   dweight = sum over images of dy * im2col(x)^T       ConvGradWeight (one gemm per image and group)
//   dbias = dy summed over N and space                  ConvGradBias
// A transposed convolution is the same pair with x and y swapped (its input is y,
// its output x, its weight [C_in, out/groups, k...] has the layout of conv2d's
// [K, C/groups, k...] in these names), so its data gradient is a forward
// convolution of dy (ConvTransposeGradInput) and its weight gradient
// ConvGradWeight with the gradient of its output as `input` and its input as `grad`.

const char* const kGeometryArgs[] = {"kernel_size", "stride", "padding", "dilation", "groups"};

OpDef& geometry_args(OpDef& d) {
  return d.arg("kernel_size", ArgType::IntOrList, std::nullopt, "window size")
      .arg("stride", ArgType::IntOrList, json(1), "step between windows")
      .arg("padding", ArgType::IntOrList, json(0), "zeros on both sides")
      .arg("dilation", ArgType::IntOrList, json(1), "spacing between kernel elements")
      .arg("groups", ArgType::Int, json(1), "channel groups");
}

void conv_grad(GradContext& g, bool transposed) {
  json geometry = json::object();
  for (const char* a : kGeometryArgs) geometry[a] = g.arg(a);
  int dy = g.dout(), x = g.in("input"), w = g.in("weight");
  if (g.wants("input"))
    g.grad("input", g.op1(transposed ? "ConvTransposeGradInput" : "ConvGradInput",
                          {{"grad", dy}, {"weight", w}, {"like", x}}, geometry));
  if (g.wants("weight")) {
    int y_side = transposed ? x : dy, x_side = transposed ? dy : x;
    g.grad("weight", g.op1("ConvGradWeight", {{"grad", y_side}, {"input", x_side}}, geometry));
  }
  if (g.has("bias") && g.wants("bias")) g.grad("bias", g.op1("ConvGradBias", {{"grad", dy}}));
}

// The scratch of a data gradient: ConvGradInput, or ConvTransposeGradInput when `transposed`
// (dx is `like`'s side, dy `grad`'s). With known sizes, the planned kernel's; otherwise per image the
// columns of the side the windows slide over: dx for a convolution, dy for a transposed one.
std::function<Dim(const Node&, const Graph&)> grad_input_scratch(bool transposed) {
  return [transposed](const Node& n, const Graph& g) {
    const Shape& dx = port_value(n, g, "like").shape;
    const Shape& dy = port_value(n, g, "grad").shape;
    if (!auto_algo(dx, dy))
      return transposed ? columns_scratch(n, dy, dx, same_spatial(dx, dy)) : columns_scratch(n, dx, dy, same_spatial(dx, dy));
    auto i = hw_of(dx), o = hw_of(dy);
    Geometry2d q = geometry2d(n.attrs, dx.size() - 2);
    auto scratch =
        transposed ? cpu_kernels::conv_transpose2d_grad_input_scratch : cpu_kernels::conv2d_grad_input_scratch;
    return elems(batch_scratch(dx[0], [&](int64_t nb) {
      return scratch(nb, *dx[1].as_const(), i->first, i->second, *dy[1].as_const(), q.kh, q.kw, q.sh, q.sw, q.ph, q.pw,
                     q.dh, q.dw, q.groups, o->first, o->second, cpu_kernels::ConvAlgo::Auto);
    }));
  };
}

void register_conv_grads() {
  OpDef gi("ConvGradInput", "conv",
           "data gradient of Conv1d/Conv2d: a transposed convolution of grad to the size of like");
  gi.in("grad").in("weight").in("like").out().trait("internal");
  register_op(geometry_args(gi)
                  .flop_count([](const Node& n, const Graph& g) {
                    return conv_flops(input_shape(n, g, "grad"), input_shape(n, g, "weight"));
                  })
                  .scratch_elems("cpu", grad_input_scratch(false))
                  .emit("cpu", [](EmitContext& e) {
                    mark_shape_only(e);
                    const Shape& dx = e.in("like").shape;
                    const Shape& dy = e.in("grad").shape;
                    emit_conv_geom(e, dx, dy);
                    e.line("rt::k::conv2d_grad_input({}, {}, {}, geom, {}, {});", e.y(), e.x("grad"), e.x("weight"),
                           scratch_arg(e, "grad"), algo_arg(auto_algo(dx, dy)));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    mark_shape_only(e);
                    emit_conv_geom(e, e.in("like").shape, e.in("grad").shape);
                    e.line("rt::cuda::conv2d_grad_input(device_, {}, {}, {}, geom, {});", e.y(), e.x("grad"), e.x("weight"), e.layer());
                  })
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("like")); }));

  OpDef gt("ConvTransposeGradInput", "conv",
           "data gradient of ConvTranspose2d: a convolution of grad to the size of like");
  gt.in("grad").in("weight").in("like").out().trait("internal");
  register_op(geometry_args(gt)
                  .flop_count([](const Node& n, const Graph& g) {
                    return conv_flops(input_shape(n, g, "like"), input_shape(n, g, "weight"));
                  })
                  .scratch_elems("cpu", grad_input_scratch(true))
                  .emit("cpu", [](EmitContext& e) {
                    // In conv2d's names the transposed convolution's output gradient is x.
                    mark_shape_only(e);
                    const Shape& dx = e.in("like").shape;
                    const Shape& dy = e.in("grad").shape;
                    emit_conv_geom(e, dx, dy);
                    e.line("rt::k::conv_transpose2d_grad_input({}, {}, {}, geom, {}, {});", e.y(), e.x("grad"),
                           e.x("weight"), scratch_arg(e, "grad"), algo_arg(auto_algo(dx, dy)));
                  })
                  .emit("cuda", [](EmitContext& e) {  // a forward convolution of grad (dy -> dx), weight [C, K/g, kh, kw]
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    mark_shape_only(e);
                    emit_conv_geom(e, e.in("grad").shape, e.in("like").shape);
                    e.line("rt::cuda::conv2d(device_, {}, {}, {}, nullptr, geom, {});", e.y(), e.x("grad"), e.x("weight"), e.layer());
                  })
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("like")); }));

  OpDef gw("ConvGradWeight", "conv",
           "weight gradient of a convolution: sum over images of grad [N, K, ...] times im2col(input [N, C, ...])^T");
  gw.in("grad").in("input").out().trait("internal");
  register_op(geometry_args(gw)
                  .flop_count([](const Node& n, const Graph& g) {
                    return conv_flops(input_shape(n, g, "grad"), output_shape(n, g));
                  })
                  .scratch_elems("cpu", [](const Node& n, const Graph& g) {
                    const Shape& x = port_value(n, g, "input").shape;
                    const Shape& dy = port_value(n, g, "grad").shape;
                    if (!auto_algo(x, dy)) return columns_scratch(n, x, dy, same_spatial(x, dy));
                    auto i = hw_of(x), o = hw_of(dy);
                    Geometry2d q = geometry2d(n.attrs, x.size() - 2);
                    return elems(batch_scratch(x[0], [&](int64_t nb) {
                      return cpu_kernels::conv2d_grad_weight_scratch(
                          *x[1].as_const(), i->first, i->second, q.kh, q.kw, q.sh, q.sw, q.ph, q.pw, q.groups,
                          o->first, o->second, nb, *dy[1].as_const(), cpu_kernels::ConvAlgo::Auto, q.dh, q.dw);
                    }));
                  })
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& x = e.in("input").shape;
                    const Shape& dy = e.in("grad").shape;
                    emit_conv_geom(e, x, dy);
                    e.line("rt::k::conv2d_grad_weight({}, {}, {}, geom, {}, {});", e.y(), e.x("grad"), e.x("input"),
                           scratch_arg(e), algo_arg(auto_algo(x, dy)));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    emit_conv_geom(e, e.in("input").shape, e.in("grad").shape);
                    e.line("rt::cuda::conv2d_grad_weight(device_, {}, {}, {}, geom, {});", e.y(), e.x("grad"), e.x("input"), e.layer());
                  })
                  .rule([](InferContext& c) {
                    size_t spatial = c.rank("input") - 2;
                    int64_t groups = c.i("groups");
                    int64_t in_ch = c.const_dim(c.shape("input")[1], "the input channel count");
                    Shape w = {c.shape("grad")[1], Dim(in_ch / groups)};
                    for (int64_t k : c.ints("kernel_size", spatial)) w.push_back(Dim(k));
                    c.out("output", c.dtype("input"), w);
                  }));

  register_op(OpDef("ConvGradBias", "conv", "bias gradient of a convolution: grad [N, K, ...] summed to [K]")
                  .in("grad").out().trait("internal")
                  .emit("cpu", [](EmitContext& e) {
                    const Shape& s = e.in("grad").shape;
                    e.line("rt::k::conv_grad_bias({}, {}, {}, {}, {});", e.y(), e.x("grad"), EmitContext::dim(s[0]),
                           EmitContext::dim(s[1]), EmitContext::numel(s, 2, s.size()));
                  })
                  .emit("cuda", [](EmitContext& e) {
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    const Shape& s = e.in("grad").shape;
                    e.line("rt::cuda::conv_grad_bias(device_, {}, {}, {}, {}, {}, {});", e.y(), e.x("grad"), EmitContext::dim(s[0]),
                           EmitContext::dim(s[1]), EmitContext::numel(s, 2, s.size()), e.layer());
                  })
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), {c.shape("grad")[1]}); }));
}

}  // namespace

MITHRIL_REGISTER_OPS(conv) {
  register_conv_grads();
  register_op(conv_def("Conv1d",
                       "1-D convolution (cross-correlation) over [N, C, L]; weight [out_channels, C/groups, k] as in PyTorch",
                       false)
                  .scratch_elems("cpu", conv_scratch)
                  .emit("cpu", [](EmitContext& e) { emit_conv(e, false); })
                  .emit("cuda", emit_conv_cuda)
                  .grad([](GradContext& g) { conv_grad(g, false); })
                  .rule([](InferContext& c) { conv_rule(c, 1); }));
  register_op(conv_def("Conv2d",
                       "2-D convolution (cross-correlation) over [N, C, H, W]; weight [out_channels, C/groups, kh, kw] "
                       "as in PyTorch",
                       false)
                  .scratch_elems("cpu", conv_scratch)
                  .packs("cpu", "weight", conv2d_pack_spec)
                  .emit("cpu", [](EmitContext& e) { emit_conv(e, false); })
                  .emit("cuda", emit_conv_cuda)
                  .grad([](GradContext& g) { conv_grad(g, false); })
                  .rule([](InferContext& c) { conv_rule(c, 2); }));
  register_op(conv_def("ConvTranspose2d",
                       "2-D transposed convolution (the gradient of Conv2d) over [N, C, H, W]; weight [C, "
                       "out_channels/groups, kh, kw] as in PyTorch",
                       true)
                  .scratch_elems("cpu", conv_transpose_scratch)
                  .emit("cpu", [](EmitContext& e) { emit_conv(e, true); })
                  .emit("cuda", [](EmitContext& e) {
                    // The data gradient of the convolution that maps the output's shape to the input's
                    // (its geometry with x and y swapped), then the bias.
                    if (e.out().dtype != DType::f32) e.unsupported("float64");
                    const Shape& y = e.out().shape;
                    emit_conv_geom(e, y, e.in("input").shape);
                    e.line("rt::cuda::conv2d_grad_input(device_, {}, {}, {}, geom, {});", e.y(), e.x("input"), e.x("weight"), e.layer());
                    if (e.has("bias"))
                      e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{ {}[i] += {}[i / {} % {}]; }}, {});",
                             EmitContext::numel(y), e.y(), e.x("bias"), EmitContext::numel(y, 2, y.size()), EmitContext::dim(y[1]),
                             e.layer());
                  })
                  .grad([](GradContext& g) { conv_grad(g, true); })
                  .rule([](InferContext& c) { conv_transpose_rule(c, 2); }));
}

}  // namespace mithril
