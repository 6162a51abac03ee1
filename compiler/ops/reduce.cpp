// Reductions: Sum, Mean, Max, Min, Prod, Variance and LogSumExp over a set of
// axes (all axes by default), and ArgMax/ArgMin over one axis (the flattened
// input by default). The axis-set reductions share one rule and are a table,
// one row per op; the rows are where later targets add their accumulators and
// derivative rules.
#include "ops/emit.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {
namespace {

enum class Domain { Float, Numeric };  // dtypes an op accepts

struct ReduceRow {
  const char* name;
  Domain domain;
  bool needs_elements;  // no identity value: reducing over an empty axis is an error
  const char* summary;
  std::vector<ArgSpec> args;  // beyond axis and keepdim
};

const std::vector<ReduceRow>& reduce_rows() {
  static const std::vector<ReduceRow> rows = {
      {"Sum", Domain::Numeric, false, "sum of the elements over 'axis' (all axes when omitted); dtype kept", {}},
      {"Mean", Domain::Float, false, "arithmetic mean over 'axis' (all axes when omitted)", {}},
      {"Max", Domain::Numeric, true, "largest element over 'axis' (all axes when omitted); the values, not the indices (see ArgMax)", {}},
      {"Min", Domain::Numeric, true, "smallest element over 'axis' (all axes when omitted); the values, not the indices (see ArgMin)", {}},
      {"Prod", Domain::Numeric, false, "product of the elements over 'axis' (all axes when omitted); dtype kept", {}},
      {"Variance", Domain::Float, false,
       "variance over 'axis' (all axes when omitted), as torch.var: sum((x - mean)^2) / (count - correction); "
       "count must exceed correction",
       {{"correction", ArgType::Int, json(1), {},
         "subtracted from the element count in the divisor: 1 for the unbiased sample variance, "
         "0 for the population variance"}}},
      {"LogSumExp", Domain::Float, false,
       "log(sum(exp(x))) over 'axis' (all axes when omitted), computed stably (the max is subtracted first)", {}},
  };
  return rows;
}

const char* kAxisDoc = "axis or list of axes to reduce; negative counts from the end; omitted: every axis";
const char* kKeepdimDoc = "keep each reduced axis as a size-1 dimension, so the result broadcasts against the input";


// Which axes the 'axis' argument names (all of them when it is null), normalized.
std::vector<bool> reduced_axes(const InferContext& c, size_t rank) {
  if (c.is_null("axis")) return std::vector<bool>(rank, true);
  if (c.int_list("axis").empty()) c.fail_arg("axis", "'axis' is an empty list; omit 'axis' to reduce over every axis");
  std::vector<bool> mask(rank, false);
  for (int64_t k : c.axes("axis", rank)) mask[k] = true;
  return mask;
}

// An op without an identity element (Max, ArgMax, ...) has no result over zero elements.
void expect_elements(const InferContext& c, const Shape& in, const std::vector<bool>& mask) {
  for (size_t k = 0; k < in.size(); ++k)
    if (mask[k] && in[k] == Dim(0))
      c.fail("{} over axis {} of size 0 has no result: input {}", c.op().name, k, type_str(c.dtype("input"), in));
}

Shape reduced_shape(const Shape& in, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t k = 0; k < in.size(); ++k) {
    if (!mask[k]) out.push_back(in[k]);
    else if (keepdim) out.push_back(Dim(1));
  }
  return out;
}

// ---- CPU code ------------------------------------------------------------------

// The reduced axes from a node's resolved 'axis' argument (null: every axis), normalized.
std::vector<bool> node_axes(const json& axis, size_t rank) {
  std::vector<bool> mask(rank, axis.is_null());
  if (axis.is_null()) return mask;
  std::vector<int64_t> given = axis.is_array() ? axis.get<std::vector<int64_t>>() : std::vector<int64_t>{axis.get<int64_t>()};
  for (int64_t a : given) mask[static_cast<size_t>(a < 0 ? a + static_cast<int64_t>(rank) : a)] = true;
  return mask;
}

// Maximal runs [first, last) of adjacent reduced axes, in axis order.
std::vector<std::pair<size_t, size_t>> reduced_runs(const std::vector<bool>& mask) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t k = 0; k < mask.size(); ++k) {
    if (!mask[k]) continue;
    if (!runs.empty() && runs.back().second == k) runs.back().second = k + 1;
    else runs.push_back({k, k + 1});
  }
  return runs;
}

const char* reduce_kernel(const std::string& op) {
  if (op == "Sum") return "reduce_sum";
  if (op == "Mean") return "reduce_mean";
  if (op == "Max") return "reduce_max";
  if (op == "Min") return "reduce_min";
  if (op == "Prod") return "reduce_prod";
  if (op == "LogSumExp") return "reduce_logsumexp";
  return "reduce_var";
}

// Sum, Mean, Max, Min, Prod and LogSumExp compose over separate runs of axes
// (the mean of equal-sized means is the mean; logsumexp of logsumexps is the
// logsumexp), so runs are reduced one after another, the last run first,
// through two scratch buffers. Variance permutes the reduced axes to the end.
Dim stage_elems(const Shape& in, const std::vector<std::pair<size_t, size_t>>& runs) {
  // Elements left after reducing the last run (the largest intermediate).
  Shape left;
  for (size_t k = 0; k < in.size(); ++k)
    if (k < runs.back().first || k >= runs.back().second) left.push_back(in[k]);
  return numel(left);
}

Dim reduce_scratch(const Node& n, const Graph& g) {
  const Shape& in = g.value(n.inputs[0][0]).shape;
  std::vector<bool> mask = node_axes(n.attrs.at("axis"), in.size());
  auto runs = reduced_runs(mask);
  if (runs.size() <= 1) return Dim(0);
  if (n.op->name == "Variance") return numel(in);
  return stage_elems(in, runs) * Dim(2);
}

// CUDA: one thread per output element walks its reduced elements (any set of axes, in place: no
// staging), accumulating as the CPU kernels do (float in double). Correct for every shape; one block
// per output row is the faster form still to come.
void emit_reduce_cuda(EmitContext& e) {
  const Value& x = e.in("input");
  const Shape& in = x.shape;
  const std::string op = e.op().name;
  const char* T = EmitContext::ctype(x.dtype);
  const char* A = x.dtype == DType::f32 || x.dtype == DType::f64 ? "double" : T;  // as kernels' acc_t
  std::vector<bool> mask = node_axes(e.arg("axis"), in.size());
  std::vector<std::string> stride(in.size());
  Dim st(1), count(1);
  for (size_t k = in.size(); k-- > 0;) {
    stride[k] = EmitContext::dim(st);
    st = st * in[k];
    if (mask[k]) count = count * in[k];
  }
  e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", EmitContext::numel(e.out().shape));
  if (std::all_of(mask.begin(), mask.end(), [](bool m) { return m; })) {
    e.line("  const int64_t base = 0 * i;  // one output: every element reduced");
  } else {
    e.line("  int64_t rest = i, base = 0;  // the first input element of output i");
  }
  for (size_t k = in.size(); k-- > 0;)
    if (!mask[k]) {
      e.line("  base += rest % {} * {};", EmitContext::dim(in[k]), stride[k]);
      e.line("  rest /= {};", EmitContext::dim(in[k]));
    }
  // at(r): the input offset of the r-th reduced element.
  e.line("  const auto at = [&](int64_t r) {{");
  e.line("    int64_t off = base;");
  for (size_t k = in.size(); k-- > 0;)
    if (mask[k]) {
      e.line("    off += r % {} * {};", EmitContext::dim(in[k]), stride[k]);
      e.line("    r /= {};", EmitContext::dim(in[k]));
    }
  e.line("    return off;");
  e.line("  }};");
  const std::string n = EmitContext::dim(count), xs = e.x("input");
  if (op == "Max" || op == "Min") {  // NaN wins, as the CPU kernel's max_step / min_step
    const char* cmp = op == "Max" ? ">" : "<";
    e.line("  {} a = {}[at(0)];", T, xs);
    e.line("  for (int64_t r = 1; r < {}; ++r) {{", n);
    e.line("    const {} v = {}[at(r)];", T, xs);
    e.line("    if ((v {} a || v != v) && a == a) a = v;", cmp);
    e.line("  }}");
    e.line("  {}[i] = a;", e.y());
  } else if (op == "LogSumExp") {
    e.line("  double m = -INFINITY, s = 0;");
    e.line("  for (int64_t r = 0; r < {}; ++r) m = fmax(m, static_cast<double>({}[at(r)]));", n, xs);
    e.line("  for (int64_t r = 0; r < {}; ++r) s += exp(static_cast<double>({}[at(r)]) - m);", n, xs);
    e.line("  {}[i] = static_cast<{}>(m == -INFINITY ? m : m + log(s));", e.y(), T);
  } else if (op == "Variance") {
    e.line("  double mean = 0, q = 0;");
    e.line("  for (int64_t r = 0; r < {}; ++r) mean += {}[at(r)];", n, xs);
    e.line("  mean /= static_cast<double>({});", n);
    e.line("  for (int64_t r = 0; r < {}; ++r) {{ const double d = {}[at(r)] - mean; q += d * d; }}", n, xs);
    e.line("  {}[i] = static_cast<{}>(q / static_cast<double>({} - {}));", e.y(), T, n, e.i("correction"));
  } else {  // Sum, Mean, Prod
    const bool prod = op == "Prod";
    e.line("  {} a = {};", A, prod ? "1" : "0");
    e.line("  for (int64_t r = 0; r < {}; ++r) a {}= {}[at(r)];", n, prod ? "*" : "+", xs);
    e.line("  {}[i] = static_cast<{}>(a{});", e.y(), T, op == "Mean" ? fmt::format(" / static_cast<{}>({})", A, n) : "");
  }
  e.line("}}, {});", e.layer());
}

void emit_reduce(EmitContext& e) {
  const Value& x = e.in("input");
  const Shape& in = x.shape;
  const std::string op = e.op().name;
  const char* T = EmitContext::ctype(x.dtype);
  std::vector<bool> mask = node_axes(e.arg("axis"), in.size());
  auto runs = reduced_runs(mask);
  std::string extra = op == "Variance" ? fmt::format(", {}", e.i("correction")) : "";
  const char* kernel = reduce_kernel(op);
  if (runs.empty()) {  // a scalar input: one element, reduced by the kernel (Variance of it is 0 or NaN)
    e.line("mithril::rt::k::{}<{}>({}, {}, 1, 1, 1{});", kernel, T, e.y(), e.x("input"), extra);
    return;
  }
  if (runs.size() == 1) {
    auto [a, b] = runs[0];
    e.line("mithril::rt::k::{}<{}>({}, {}, {}, {}, {}{});", kernel, T, e.y(), e.x("input"), EmitContext::numel(in, 0, a),
           EmitContext::numel(in, a, b), EmitContext::numel(in, b, in.size()), extra);
    return;
  }
  if (e.scratch() == "nullptr") {  // no working memory planned: the input has no elements
    e.line("mithril::rt::k::{}<{}>({}, {}, {}, 0, 1{});", kernel, T, e.y(), e.x("input"), EmitContext::numel(e.out().shape), extra);
    return;
  }
  if (op == "Variance") {
    if (in.size() > 8) e.unsupported("Variance over separate axes of a tensor of rank above 8");
    std::vector<int64_t> perm;
    std::vector<std::string> dims;
    Shape kept, red;
    for (size_t k = 0; k < in.size(); ++k)
      if (!mask[k]) perm.push_back(static_cast<int64_t>(k)), kept.push_back(in[k]);
    for (size_t k = 0; k < in.size(); ++k)
      if (mask[k]) perm.push_back(static_cast<int64_t>(k)), red.push_back(in[k]);
    for (auto& d : in) dims.push_back(EmitContext::dim(d));
    e.line("const int64_t shape_[] = {{{}}};", fmt::join(dims, ", "));
    e.line("const int64_t perm_[] = {{{}}};", fmt::join(perm, ", "));
    e.line("{}* const moved_ = {};", T, e.scratch());
    e.line("mithril::rt::k::permute<{}>(moved_, {}, {}, shape_, perm_);", T, e.x("input"), in.size());
    e.line("mithril::rt::k::reduce_var<{}>({}, moved_, {}, {}, 1{});", T, e.y(), EmitContext::numel(kept),
           EmitContext::numel(red), extra);
    return;
  }
  // One run after another, the last first; stages alternate between two scratch buffers.
  e.line("{}* const stage_[2] = {{{}, {} + {}}};", T, e.scratch(), e.scratch(), EmitContext::dim(stage_elems(in, runs)));
  Shape cur = in;
  std::string src = e.x("input");
  for (size_t r = runs.size(); r-- > 0;) {
    auto [a, b] = runs[r];
    std::string dst = r == 0 ? e.y() : fmt::format("stage_[{}]", (runs.size() - 1 - r) % 2);
    e.line("mithril::rt::k::{}<{}>({}, {}, {}, {}, {});", kernel, T, dst, src, EmitContext::numel(cur, 0, a),
           EmitContext::numel(cur, a, b), EmitContext::numel(cur, b, cur.size()));
    cur.erase(cur.begin() + static_cast<long>(a), cur.begin() + static_cast<long>(b));
    src = dst;
  }
}

void emit_arg_extreme(EmitContext& e) {
  const Value& x = e.in("input");
  const Shape& in = x.shape;
  const char* kernel = e.op().name == "ArgMax" ? "argmax" : "argmin";
  std::string outer = "1", len = EmitContext::numel(in), inner = "1";
  if (!e.arg("axis").is_null()) {
    int64_t a = e.i("axis");
    size_t k = static_cast<size_t>(a < 0 ? a + static_cast<int64_t>(in.size()) : a);
    outer = EmitContext::numel(in, 0, k);
    len = EmitContext::dim(in[k]);
    inner = EmitContext::numel(in, k + 1, in.size());
  }
  if (e.cuda()) {  // one thread per result: the first extreme along the axis (NaN wins, as the CPU kernel)
    e.line("rt::cuda::for_each(device_, {0} * {1}, [=] __device__ (int64_t i) {{", outer, inner);
    e.line("  const int64_t o_ = i / {0}, r_ = i % {0};", inner);
    e.line("  const auto* x_ = {} + o_ * {} * {} + r_;", e.x("input"), len, inner);
    e.line("  auto best_ = x_[0];");
    e.line("  int64_t at_ = 0;");
    e.line("  for (int64_t l_ = 1; l_ < {}; ++l_) {{", len);
    e.line("    const auto v_ = x_[l_ * {}];", inner);
    e.line("    if (best_ == best_ && ({} || v_ != v_)) {{", e.op().name == "ArgMax" ? "v_ > best_" : "v_ < best_");
    e.line("      best_ = v_;");
    e.line("      at_ = l_;");
    e.line("    }}");
    e.line("  }}");
    e.line("  {}[i] = at_;", e.y());
    e.line("}}, {});", e.layer());
    return;
  }
  e.line("mithril::rt::k::{}<{}>({}, {}, {}, {}, {});", kernel, EmitContext::ctype(x.dtype), e.y(), e.x("input"), outer, len,
         inner);
}

// ---- Gradients -------------------------------------------------------------------
//
// Every rule first brings the output gradient (and the output, where it is read) to the
// keepdim shape, so that it broadcasts against the input; then one elementwise backward
// op (MeanGrad, VarianceGrad, ...) makes dx in one pass over the input. Counts are taken
// from the shapes at run time, so symbolic sizes keep working.

// `v` (a result of the node) with the reduced axes kept as size 1.
int keep_dims(GradContext& g, int v) {
  const size_t rank = g.shape(g.in("input")).size();
  if (g.b("keepdim") || g.shape(v).size() == rank) return v;
  std::vector<bool> mask = node_axes(g.arg("axis"), rank);
  std::vector<int64_t> axes;
  for (size_t k = 0; k < rank; ++k)
    if (mask[k]) axes.push_back(static_cast<int64_t>(k));
  return g.op1("Unsqueeze", {{"input", v}}, {{"axis", axes}});
}

// A reduction of the node's kind over the node's axes, keepdim (tie counts, zero counts).
int reduce_keep(GradContext& g, const std::string& op, int v) {
  return g.op1(op, {{"input", v}}, {{"axis", g.arg("axis")}, {"keepdim", true}});
}

int as_dtype_of(GradContext& g, int v, int like) {
  return g.op1("Cast", {{"input", v}}, {{"dtype", dtype_name(g.dtype(like))}});
}

void reduce_grad(GradContext& g) {
  const std::string op = g.op().name;
  const int x = g.in("input");
  const int dy = keep_dims(g, g.dout());
  if (op == "Sum") {
    g.grad("input", g.broadcast_like(dy, x));
  } else if (op == "Mean") {
    g.grad("input", g.op1("MeanGrad", {{"grad", dy}, {"input", x}}));
  } else if (op == "Variance") {
    int mean = reduce_keep(g, "Mean", x);
    g.grad("input", g.op1("VarianceGrad", {{"grad", dy}, {"input", x}, {"aux", mean}}, {{"correction", g.i("correction")}}));
  } else if (op == "LogSumExp") {
    g.grad("input", g.op1("LogSumExpGrad", {{"grad", dy}, {"input", x}, {"output", keep_dims(g, g.out())}}));
  } else if (op == "Max" || op == "Min") {
    // As torch.amax/amin: the gradient is shared evenly among the elements equal to the extreme.
    int y = keep_dims(g, g.out());
    int ties = reduce_keep(g, "Sum", as_dtype_of(g, g.op1("Equal", {{"left", x}, {"right", y}}), x));
    g.grad("input", g.op1("ExtremeGrad", {{"grad", dy}, {"input", x}, {"output", y}, {"aux", ties}}));
  } else if (op == "Prod") {
    // prod of the others: y / x without zeros; with one zero only that element gets the product
    // of the nonzero ones; with two or more every gradient is 0 (as torch).
    int zero = g.scalar_like(0, x), one = g.scalar_like(1, x);
    int is_zero = g.op1("Equal", {{"left", x}, {"right", zero}});
    int zeros = reduce_keep(g, "Sum", as_dtype_of(g, is_zero, x));
    int nonzero_prod = reduce_keep(g, "Prod", g.op1("Where", {{"condition", is_zero}, {"left", one}, {"right", x}}));
    g.grad("input", g.op1("ProdGrad", {{"grad", dy}, {"input", x}, {"aux", nonzero_prod}, {"zeros", zeros}}));
  } else {
    throw std::logic_error("no gradient rule for " + op);
  }
}

// The backward ops: dx[i] = expr(grad, input, ...) with the keepdim-shaped operands broadcast.
struct GradRow {
  const char* name;
  const char* summary;
  std::vector<std::string> ports;  // beyond grad and input, all keepdim-shaped
  // C++ for one element of dx from the elements of grad, input, then `ports`; scale_ is set first.
  std::function<std::string(const std::vector<std::string>&, const std::string& T)> expr;
  bool scaled;  // declares scale_ (see emit_reduce_grad)
};

const std::vector<GradRow>& grad_rows() {
  static const std::vector<GradRow> rows = {
      {"MeanGrad", "grad / count broadcast to the input (Mean's gradient; the input's values are not read)", {},
       [](auto& x, auto&) { return fmt::format("{} * scale_", x[0]); }, true},
      {"VarianceGrad", "grad * (input - mean) * 2 / (count - correction) (Variance's gradient; aux is the mean)", {"aux"},
       [](auto& x, auto&) { return fmt::format("{} * ({} - {}) * scale_", x[0], x[1], x[2]); }, true},
      {"LogSumExpGrad", "grad * exp(input - output) (LogSumExp's gradient)", {"output"},
       [](auto& x, auto&) { return fmt::format("{} * std::exp({} - {})", x[0], x[1], x[2]); }, false},
      {"ExtremeGrad", "grad / ties where input equals the extreme, else 0 (Max's and Min's gradient; aux counts the ties)",
       {"output", "aux"},
       [](auto& x, const std::string& T) { return fmt::format("{} == {} ? {} / {} : {}(0)", x[1], x[2], x[0], x[3], T); }, false},
      {"ProdGrad",
       "the product of the other elements times grad (Prod's gradient; aux is the product of the nonzero elements, zeros "
       "counts the zeros)",
       {"aux", "zeros"},
       [](auto& x, const std::string& T) {
         return fmt::format("{3} == {4}(0) ? {0} * {2} / {1} : ({3} == {4}(1) && {1} == {4}(0) ? {0} * {2} : {4}(0))", x[0],
                            x[1], x[2], x[3], T);
       },
       false},
  };
  return rows;
}

void emit_reduce_grad(EmitContext& e, const GradRow& row) {
  const char* T = EmitContext::ctype(e.out().dtype);
  std::vector<std::string> ports = {"grad", "input"};
  ports.insert(ports.end(), row.ports.begin(), row.ports.end());
  if (e.op().name == "MeanGrad") {  // the input gives only its shape
    e.line("(void){};", e.x("input"));
    ports = {"grad"};
  }
  if (row.scaled) {
    // count: the elements reduced into each result, the input sizes where grad (keepdim) has 1.
    const Shape& gs = e.in("grad").shape;
    const Shape& xs = e.in("input").shape;
    Dim count(1);
    for (size_t k = 0; k < xs.size(); ++k)
      if (gs[k] == Dim(1)) count = count * xs[k];
    if (e.op().name == "MeanGrad") {
      e.line("const {0} scale_ = {0}(1) / {0}({1});", T, EmitContext::dim(count));
    } else {
      e.line("const {0} scale_ = {0}(2) / {0}({1} - {2});", T, EmitContext::dim(count), e.i("correction"));
    }
  }
  emit_elementwise(e, ports, [&](const std::vector<std::string>& x) { return row.expr(x, T); });
}

}  // namespace

MITHRIL_REGISTER_OPS(reduce) {
  for (const auto& row : reduce_rows()) {
    OpDef d(row.name, "reduce", row.summary);
    d.in("input").out().trait("reduction");
    d.arg("axis", ArgType::IntOrList, json(nullptr), kAxisDoc);
    d.arg("keepdim", ArgType::Bool, json(false), kKeepdimDoc);
    for (auto& a : row.args) d.args.push_back(a);
    Domain domain = row.domain;
    bool needs_elements = row.needs_elements;
    d.emit("cpu", emit_reduce).scratch_elems("cpu", reduce_scratch).emit("cuda", emit_reduce_cuda).grad(reduce_grad);
    d.rule([domain, needs_elements](InferContext& c) {
      if (domain == Domain::Float) c.expect_float("input");
      else c.expect_numeric("input");
      const Shape& in = c.shape("input");
      std::vector<bool> mask = reduced_axes(c, in.size());
      if (needs_elements) expect_elements(c, in, mask);
      if (c.op().name == "Variance") {
        int64_t correction = c.i("correction");
        if (correction < 0) c.fail_arg("correction", "'correction' must be 0 or more, found {}", correction);
        Dim count(1);
        for (size_t k = 0; k < in.size(); ++k)
          if (mask[k]) count = count * in[k];
        if (auto n = count.as_const(); n && *n <= correction)
          c.fail_arg("correction",
                     "Variance over {} element(s) with correction {} divides by {}: reduce over more elements or lower "
                     "'correction' (input {})",
                     *n, correction, *n - correction, type_str(c.dtype("input"), in));
      }
      c.out("output", c.dtype("input"), reduced_shape(in, mask, c.b("keepdim")));
    });
    register_op(std::move(d));
  }

  for (const char* name : {"ArgMax", "ArgMin"}) {
    bool is_max = std::string(name) == "ArgMax";
    std::string summary = fmt::format(
        "int64 index of the {} element along 'axis' (the first one on ties); without 'axis', the index into the "
        "flattened input, a scalar",
        is_max ? "largest" : "smallest");
    register_op(OpDef(name, "reduce", summary)
                    .in("input").out().trait("reduction").trait("no_gradient")
                    .emit("cpu", emit_arg_extreme)
                    .emit("cuda", emit_arg_extreme)
                    .arg("axis", ArgType::Int, json(nullptr),
                         "the axis to search along; negative counts from the end; omitted: the flattened input")
                    .arg("keepdim", ArgType::Bool, json(false),
                         "keep the searched axis as a size-1 dimension (every axis when 'axis' is omitted)")
                    .rule([](InferContext& c) {
                      c.expect_numeric("input");
                      const Shape& in = c.shape("input");
                      std::vector<bool> mask(in.size(), true);
                      if (!c.is_null("axis")) {
                        mask.assign(in.size(), false);
                        mask[c.axis(c.i("axis"), in.size(), "axis")] = true;
                      }
                      expect_elements(c, in, mask);
                      c.out("output", DType::i64, reduced_shape(in, mask, c.b("keepdim")));
                    }));
  }

  for (const auto& row : grad_rows()) {
    OpDef d(row.name, "reduce", row.summary);
    d.in("grad").in("input");
    for (auto& p : row.ports) d.in(p);
    d.out().trait("internal");
    if (std::string(row.name) == "VarianceGrad") d.arg("correction", ArgType::Int, json(1), "as Variance");
    const GradRow* r = &row;
    // Broadcast elementwise code: a loop on the CPU, a device lambda on CUDA (emit_elementwise).
    d.emit("cpu", [r](EmitContext& e) { emit_reduce_grad(e, *r); }).emit("cuda", [r](EmitContext& e) {
      if (e.out().dtype != DType::f32) e.unsupported("float64");
      emit_reduce_grad(e, *r);
    });
    d.rule([](InferContext& c) {
      if (c.shape("grad").size() != c.shape("input").size())
        c.fail("'grad' {} must have the rank of 'input' {} (keepdim)", type_str(c.dtype("grad"), c.shape("grad")),
               type_str(c.dtype("input"), c.shape("input")));
      c.out("output", c.dtype("input"), c.shape("input"));
    });
    register_op(std::move(d));
  }
}

}  // namespace mithril
