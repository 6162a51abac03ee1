// Shape ops: views and rearrangements (Reshape, Flatten, Transpose, Permute,
// Squeeze, Unsqueeze, Expand), joins and cuts (Concat, Split, Slice, Gather,
// Pad), and tensors made from a shape or a literal (Arange, Constant). Sizes
// stay symbolic wherever the rule allows: Reshape and Split divide polynomials
// exactly, Concat and Pad add them.
#include "ops/emit.h"
#include "ops/fold.h"
#include "ops/grad.h"
#include "ops/registry.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mithril {
namespace {


std::string input_type(const InferContext& c, const std::string& port = "input", size_t i = 0) {
  return type_str(c.dtype(port, i), c.shape(port, i));
}

// ---- Reshape, Flatten -------------------------------------------------------

void reshape_rule(InferContext& c) {
  const Shape& in = c.shape("input");
  std::vector<int64_t> spec = c.int_list("shape");
  Shape out(spec.size());
  int infer_at = -1;
  Dim known(1);  // product of every size but the -1
  for (size_t k = 0; k < spec.size(); ++k) {
    int64_t v = spec[k];
    if (v == -1) {
      if (infer_at >= 0)
        c.fail_arg("shape", "'shape' {} has more than one -1; at most one size can be inferred", ints_str(spec));
      infer_at = static_cast<int>(k);
      continue;
    }
    if (v < -1)
      c.fail_arg("shape", "'shape' {} has {} at position {}; a size is positive, 0 (copy the input's size there) or -1 (infer it)",
                 ints_str(spec), v, k);
    if (v == 0) {
      if (k >= in.size())
        c.fail_arg("shape", "'shape' {} has 0 at position {}, which copies the input's size there, but the input {} has rank {}",
                   ints_str(spec), k, input_type(c), in.size());
      out[k] = in[k];
    } else {
      out[k] = Dim(v);
    }
    known = known * out[k];
  }
  Dim total = numel(in);
  if (infer_at >= 0) {
    if (known == Dim(0))
      c.fail_arg("shape", "cannot infer the -1 in 'shape' {}: the other sizes multiply to 0 (input {})", ints_str(spec),
                 input_type(c));
    auto q = total.exact_div(known);
    if (!q)
      c.fail_arg("shape", "cannot reshape {} to {}: the input's {} elements are not {}a multiple of {}, the product of the other sizes",
                 input_type(c), ints_str(spec), total.str(), total.is_const() && known.is_const() ? "" : "known to be ",
                 known.str());
    out[infer_at] = *q;
  } else if (numel(out) != total) {
    c.fail_arg("shape", "cannot reshape {} ({} elements) to {} = {} ({} elements)", input_type(c), total.str(),
               ints_str(spec), shape_str(out), numel(out).str());
  }
  c.out("output", c.dtype("input"), out);
}

void flatten_rule(InferContext& c) {
  Shape in = c.shape("input");
  if (in.empty()) in.push_back(Dim(1));  // as torch.flatten: a scalar counts as [1]
  int64_t s = c.axis(c.i("start_dim"), in.size(), "start_dim");
  int64_t e = c.axis(c.i("end_dim"), in.size(), "end_dim");
  if (s > e)
    c.fail("'start_dim' {} (axis {}) comes after 'end_dim' {} (axis {}) for input {}", c.i("start_dim"), s, c.i("end_dim"),
           e, input_type(c));
  Shape out(in.begin(), in.begin() + s);
  out.push_back(numel(Shape(in.begin() + s, in.begin() + e + 1)));
  out.insert(out.end(), in.begin() + e + 1, in.end());
  c.out("output", c.dtype("input"), out);
}

// ---- Transpose, Permute, Squeeze, Unsqueeze, Expand ------------------------

void transpose_rule(InferContext& c) {
  Shape s = c.shape("input");
  int64_t a = c.axis(c.i("dim0"), s.size(), "dim0");
  int64_t b = c.axis(c.i("dim1"), s.size(), "dim1");
  std::swap(s[a], s[b]);
  c.out("output", c.dtype("input"), s);
}

void permute_rule(InferContext& c) {
  const Shape& in = c.shape("input");
  std::vector<int64_t> dims = c.int_list("dims");
  if (dims.size() != in.size())
    c.fail_arg("dims", "'dims' {} has {} entries but the input {} has rank {}; list every axis once", ints_str(dims),
               dims.size(), input_type(c), in.size());
  Shape out;
  for (int64_t k : c.axes("dims", in.size())) out.push_back(in[k]);
  c.out("output", c.dtype("input"), out);
}

void squeeze_rule(InferContext& c) {
  const Shape& in = c.shape("input");
  std::vector<bool> drop(in.size(), false);
  if (c.is_null("axis")) {
    for (size_t k = 0; k < in.size(); ++k) drop[k] = in[k] == Dim(1);
  } else {
    for (int64_t k : c.axes("axis", in.size())) {
      if (in[k] != Dim(1))
        c.fail_arg("axis", "cannot squeeze axis {} of input {}: its size is {}{}, not 1", k, input_type(c), in[k].str(),
                   in[k].is_const() ? "" : " (symbolic)");
      drop[k] = true;
    }
  }
  Shape out;
  for (size_t k = 0; k < in.size(); ++k)
    if (!drop[k]) out.push_back(in[k]);
  c.out("output", c.dtype("input"), out);
}

void unsqueeze_rule(InferContext& c) {
  const Shape& in = c.shape("input");
  size_t rank = in.size() + c.int_list("axis").size();
  std::vector<bool> inserted(rank, false);
  for (int64_t k : c.axes("axis", rank)) inserted[k] = true;
  Shape out;
  size_t next = 0;
  for (size_t k = 0; k < rank; ++k) out.push_back(inserted[k] ? Dim(1) : in[next++]);
  c.out("output", c.dtype("input"), out);
}

void expand_rule(InferContext& c) {
  const Shape& in = c.shape("input");
  std::vector<int64_t> target = c.int_list("shape");
  if (target.size() < in.size())
    c.fail_arg("shape", "cannot expand {} to {}: 'shape' has {} sizes, fewer than the input's rank {} (Expand adds leading "
               "dims, it never drops them)",
               input_type(c), ints_str(target), target.size(), in.size());
  size_t lead = target.size() - in.size();
  Shape out;
  for (size_t k = 0; k < target.size(); ++k) {
    int64_t v = target[k];
    if (v < -1 || (v == -1 && k < lead))
      c.fail_arg("shape", "cannot expand {} to {}: {} at position {} {}", input_type(c), ints_str(target), v, k,
                 v == -1 ? "names a new leading dim, which has no input size to keep" : "is not a size (use -1 to keep one)");
    if (k < lead) {
      out.push_back(Dim(v));
      continue;
    }
    const Dim& d = in[k - lead];
    if (v == -1 || d == Dim(v)) out.push_back(d);
    else if (d == Dim(1)) out.push_back(Dim(v));
    else
      c.fail_arg("shape", "cannot expand {} to {}: axis {} of the input has size {}, and only size-1 dims can grow "
                 "(-1 keeps a size)",
                 input_type(c), ints_str(target), k - lead, d.str());
  }
  c.out("output", c.dtype("input"), out);
}

// ---- Concat, Split, Slice, Gather, Pad ---------------------------------------

void concat_rule(InferContext& c) {
  size_t n = c.count("input");
  const Shape& first = c.shape("input", 0);
  int64_t axis = c.axis(c.i("axis"), first.size(), "axis");
  Shape out = first;
  for (size_t i = 1; i < n; ++i) {
    const Shape& s = c.shape("input", i);
    if (c.dtype("input", i) != c.dtype("input", 0))
      c.fail("dtype mismatch: input[0] is {} but input[{}] is {}", input_type(c, "input", 0), i, input_type(c, "input", i));
    if (s.size() != first.size())
      c.fail("rank mismatch: input[0] is {} (rank {}) but input[{}] is {} (rank {})", input_type(c, "input", 0),
             first.size(), i, input_type(c, "input", i), s.size());
    for (size_t k = 0; k < s.size(); ++k)
      if (static_cast<int64_t>(k) != axis && s[k] != first[k])
        c.fail("shape mismatch: input[0] {} and input[{}] {} differ on axis {} ({} vs {}); only axis {}, the concat axis, may differ",
               shape_str(first), i, shape_str(s), k, first[k].str(), s[k].str(), axis);
    out[axis] = out[axis] + s[axis];
  }
  c.out("output", c.dtype("input", 0), out);
}

int split_count(const json& attrs) {
  if (attrs.contains("sizes") && attrs["sizes"].is_array()) return static_cast<int>(attrs["sizes"].size());
  if (attrs.contains("sections") && attrs["sections"].is_number_integer())
    return static_cast<int>(std::max<int64_t>(0, attrs["sections"].get<int64_t>()));
  return 0;
}

void split_rule(InferContext& c) {
  Shape s = c.shape("input");
  int64_t axis = c.axis(c.i("axis"), s.size(), "axis");
  bool by_sizes = !c.is_null("sizes"), by_sections = !c.is_null("sections");
  if (by_sizes == by_sections)
    c.fail("Split needs exactly one of 'sizes' (a list of sizes) or 'sections' (a number of equal parts), found {}",
           by_sizes ? "both" : "neither");
  const Dim& d = s[axis];
  std::vector<Dim> parts;
  if (by_sizes) {
    std::vector<int64_t> sizes = c.int_list("sizes");
    if (sizes.empty()) c.fail_arg("sizes", "'sizes' is empty; Split needs at least one part");
    Dim total(0);
    for (int64_t v : sizes) {
      if (v < 0) c.fail_arg("sizes", "'sizes' {} has a negative size {}", ints_str(sizes), v);
      parts.push_back(Dim(v));
      total = total + Dim(v);
    }
    if (total != d)
      c.fail_arg("sizes", "'sizes' {} add up to {}, but axis {} of input {} has size {}", ints_str(sizes), total.str(), axis,
                 input_type(c), d.str());
  } else {
    int64_t n = c.i("sections");
    if (n < 1) c.fail_arg("sections", "'sections' must be 1 or more, found {}", n);
    auto part = d.exact_div(Dim(n));
    if (!part)
      c.fail_arg("sections", "cannot split axis {} of input {} into {} equal sections: its size {} is not {}divisible by {}",
                 axis, input_type(c), n, d.str(), d.is_const() ? "" : "known to be ", n);
    parts.assign(static_cast<size_t>(n), *part);
  }
  if (c.out_count("output") != parts.size())
    c.fail("'output' names {} value(s), but Split makes {} ({}); name one output per part", c.out_count("output"),
           parts.size(), by_sizes ? fmt::format("sizes: {}", ints_str(c.int_list("sizes")))
                                  : fmt::format("sections: {}", c.i("sections")));
  for (size_t i = 0; i < parts.size(); ++i) {
    s[axis] = parts[i];
    c.out("output", c.dtype("input"), s, i);
  }
}

// Python's slice(start, stop, step).indices(n) on a known size, clamped.
int64_t slice_length_const(int64_t n, int64_t start, std::optional<int64_t> stop, int64_t step) {
  int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? n : n - 1;
  auto adjust = [&](int64_t v) {
    if (v < 0) v = std::max(v + n, lower);
    return std::min(v, upper);
  };
  int64_t b = adjust(start);
  int64_t e = stop ? adjust(*stop) : (step > 0 ? upper : lower);
  if (step > 0) return b < e ? (e - b - 1) / step + 1 : 0;
  return e < b ? (b - e - 1) / (-step) + 1 : 0;
}

void slice_rule(InferContext& c) {
  Shape s = c.shape("input");
  int64_t axis = c.axis(c.i("axis"), s.size(), "axis");
  int64_t start = c.i("start"), step = c.i("step");
  std::optional<int64_t> stop;
  if (!c.is_null("stop")) stop = c.i("stop");
  if (step == 0) c.fail_arg("step", "'step' must be nonzero");
  const Dim& d = s[axis];
  if (auto n = d.as_const()) {
    s[axis] = Dim(slice_length_const(*n, start, stop, step));
  } else {
    // A symbolic size: a non-negative index counts from the front, a negative one from the end
    // (d + k); indices are assumed to be in range (no clamping).
    struct End {
      Dim at;
      bool from_end;
    };
    auto index = [&](int64_t k) { return k >= 0 ? End{Dim(k), false} : End{d + Dim(k), true}; };
    End first = index(start);  // the end the slice starts from
    End last = stop ? index(*stop) : (step > 0 ? End{d, true} : End{Dim(-1), false});
    // hi - lo is the extent walked; it must not shrink as the size grows.
    const End& hi = step > 0 ? last : first;
    const End& lo = step > 0 ? first : last;
    if (lo.from_end && !hi.from_end)
      c.fail("cannot slice axis {} of input {} from {} to {}: with a symbolic size, the length would depend on {} "
             "(use indices of the same sign, or a negative start with no stop)",
             axis, input_type(c), start, stop ? std::to_string(*stop) : "the end", d.str());
    int64_t mag = step > 0 ? step : -step;
    Dim extent = hi.at - lo.at;
    if (auto e = extent.as_const(); e && *e < 0) extent = Dim(0);
    s[axis] = Dim::floordiv(extent + Dim(mag - 1), mag);
  }
  c.out("output", c.dtype("input"), s);
}

void gather_rule(InferContext& c) {
  c.expect_int("indices");
  const Shape& in = c.shape("input");
  int64_t axis = c.axis(c.i("axis"), in.size(), "axis");
  Shape out(in.begin(), in.begin() + axis);
  const Shape& idx = c.shape("indices");
  out.insert(out.end(), idx.begin(), idx.end());
  out.insert(out.end(), in.begin() + axis + 1, in.end());
  c.out("output", c.dtype("input"), out);
}

// Whether `v` can be stored in dtype `t`; "" when it can, else why not.
std::string value_fits(double v, DType t) {
  if (t == DType::boolean && v != 0.0 && v != 1.0) return "a bool holds only 0 or 1";
  if (is_int(t)) {
    if (v != std::floor(v)) return fmt::format("{} is not an integer", dtype_name(t));
    double lo = t == DType::i32 ? -2147483648.0 : -9223372036854775808.0;
    double hi = t == DType::i32 ? 2147483647.0 : 9223372036854775807.0;
    if (v < lo || v > hi) return fmt::format("it is out of the range of {}", dtype_name(t));
  }
  return "";
}

void pad_rule(InferContext& c) {
  Shape s = c.shape("input");
  std::vector<int64_t> pads = c.int_list("pads");
  if (pads.size() % 2 != 0)
    c.fail_arg("pads", "'pads' {} has {} values; it holds (left, right) pairs, starting from the last dim", ints_str(pads),
               pads.size());
  if (pads.size() / 2 > s.size())
    c.fail_arg("pads", "'pads' {} pads {} dims, but the input {} has rank {}", ints_str(pads), pads.size() / 2,
               input_type(c), s.size());
  for (int64_t p : pads)
    if (p < 0) c.fail_arg("pads", "'pads' {} has a negative amount {}; Pad only adds (use Slice to crop)", ints_str(pads), p);
  if (auto why = value_fits(c.f("value"), c.dtype("input")); !why.empty())
    c.fail_arg("value", "fill value {} cannot be stored in input {}: {}", c.f("value"), input_type(c), why);
  for (size_t j = 0; j < pads.size() / 2; ++j) {
    Dim& d = s[s.size() - 1 - j];
    d = d + Dim(pads[2 * j]) + Dim(pads[2 * j + 1]);
  }
  c.out("output", c.dtype("input"), s);
}

// ---- Arange, Constant ---------------------------------------------------------

void arange_rule(InferContext& c) {
  const Shape& in = c.shape("input");
  int64_t axis = c.axis(c.i("axis"), in.size(), "axis");
  DType t = *parse_dtype(c.s("dtype"));
  if (t == DType::boolean) c.fail_arg("dtype", "'dtype' must be an integer or float type, found bool");
  c.out("output", t, {in[axis]});
}

std::string element_path(const std::vector<size_t>& at) {
  std::string s = "value";
  for (size_t k : at) s += fmt::format("[{}]", k);
  return s;
}

// Check that `v` (at index path `at`) is a full tensor of `shape[depth:]` with elements of dtype `t`.
void check_constant(const InferContext& c, const json& v, const Shape& shape, size_t depth, std::vector<size_t>& at, DType t) {
  if (depth < shape.size()) {
    size_t want = static_cast<size_t>(shape[depth].value());
    if (!v.is_array())
      c.fail_arg("value", "'value' is ragged: {} is {}, but a list of {} was expected (like the first element at that depth)",
                 element_path(at), v.dump(), want);
    if (v.size() != want)
      c.fail_arg("value", "'value' is ragged: {} has {} elements, but the first list at that depth has {}", element_path(at),
                 v.size(), want);
    for (size_t k = 0; k < v.size(); ++k) {
      at.push_back(k);
      check_constant(c, v[k], shape, depth + 1, at, t);
      at.pop_back();
    }
    return;
  }
  if (v.is_array())
    c.fail_arg("value", "'value' is ragged: {} is a list, but the first element at that depth is a number", element_path(at));
  if (t == DType::boolean) {
    if (!v.is_boolean()) c.fail_arg("value", "{} is {}; a bool constant holds true or false", element_path(at), v.dump());
    return;
  }
  if (!v.is_number())
    c.fail_arg("value", "{} is {}; a {} constant holds numbers", element_path(at), v.dump(), dtype_name(t));
  if (is_int(t) && v.is_number_unsigned() &&
      v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    c.fail_arg("value", "{} is {}, out of the range of {}", element_path(at), v.dump(), dtype_name(t));
  if (auto why = value_fits(v.get<double>(), t); !why.empty())
    c.fail_arg("value", "{} is {}, which cannot be stored as {}: {}", element_path(at), v.dump(), dtype_name(t), why);
}

void constant_rule(InferContext& c) {
  const json& v = c.arg("value");
  DType t = *parse_dtype(c.s("dtype"));
  Shape shape;
  for (const json* p = &v; p->is_array(); p = &(*p)[0]) {
    shape.push_back(Dim(static_cast<int64_t>(p->size())));
    if (p->empty()) break;
  }
  std::vector<size_t> at;
  check_constant(c, v, shape, 0, at, t);
  c.out("output", t, shape);
}

void emit_copy(EmitContext& e) {
  if (e.cuda()) {
    e.line("rt::cuda::copy(device_, {}, {}, {} * sizeof({}), {});", e.y(), e.x("input"), EmitContext::numel(e.out().shape),
           EmitContext::ctype(e.out().dtype), e.layer());
    return;
  }
  e.line("std::copy({0}, {0} + {1}, {2});", e.x("input"), EmitContext::numel(e.out().shape), e.y());
}

// CUDA: y = x with its axes reordered (output axis k is input axis perm[k]), one thread per output
// element, the index arithmetic unrolled over the axes.
void emit_permute_cuda(EmitContext& e, const std::vector<int64_t>& perm) {
  const Shape& in = e.in("input").shape;
  const size_t r = in.size();
  std::vector<std::string> stride(r);  // the input's strides, in elements
  Dim st(1);
  for (size_t a = r; a-- > 0;) {
    stride[a] = EmitContext::dim(st);
    st = st * in[a];
  }
  e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", EmitContext::numel(in));
  e.line("  int64_t rest = i, from = 0;");
  for (size_t k = r; k-- > 0;) {
    const Dim& len = in[static_cast<size_t>(perm[k])];
    e.line("  from += rest % {} * {};", EmitContext::dim(len), stride[static_cast<size_t>(perm[k])]);
    if (k > 0) e.line("  rest /= {};", EmitContext::dim(len));
  }
  e.line("  {}[i] = {}[from];", e.y(), e.x("input"));
  e.line("}}, {});", e.layer());
}

// Ops that keep the elements in order (Reshape, Flatten, Squeeze, Unsqueeze, ReshapeLike) write
// in place of their input (OpDef::writes_in_place_of): where the memory plan gave the output the
// input's buffer (this node is the input's last reader) they are views and emit no code; elsewhere
// (a model input, a value read again later) a copy.
void emit_view(EmitContext& e) {
  const Value& x = e.in("input");
  const Value& y = e.out();
  const EmitPlan& p = e.plan();
  if (x.kind == ValueKind::Temp && p.offset[static_cast<size_t>(x.id)] >= 0 &&
      p.offset[static_cast<size_t>(x.id)] == p.offset[static_cast<size_t>(y.id)]) {
    e.line("(void){}, (void){};  // a view: {} is {}'s buffer", e.y(), e.x("input"), e.y(), e.x("input"));
    return;
  }
  emit_copy(e);
}


// ---- CPU code for the rearranging ops ----------------------------------------

std::string dims_list(const Shape& s) {
  std::vector<std::string> v;
  for (auto& d : s) v.push_back(EmitContext::dim(d));
  return fmt::format("{{{}}}", fmt::join(v, ", "));
}

size_t norm_axis(int64_t a, size_t rank) { return static_cast<size_t>(a < 0 ? a + static_cast<int64_t>(rank) : a); }

// out = permute(in, perm) through the kernel; rank 0 is a copy.
void emit_permute_to(EmitContext& e, const std::vector<int64_t>& perm) {
  const Shape& in = e.in("input").shape;
  if (in.empty()) {
    emit_copy(e);
    return;
  }
  if (e.cuda()) return emit_permute_cuda(e, perm);
  if (in.size() > 8) e.unsupported("a rank above 8");
  e.line("const int64_t shape_[] = {};", dims_list(in));
  e.line("const int64_t perm_[] = {{{}}};", fmt::join(perm, ", "));
  e.line("mithril::rt::k::permute<{}>({}, {}, {}, shape_, perm_);", e.ctype_of("input"), e.y(), e.x("input"), in.size());
}

void emit_transpose(EmitContext& e) {
  size_t r = e.in("input").shape.size();
  std::vector<int64_t> perm;
  for (size_t k = 0; k < r; ++k) perm.push_back(static_cast<int64_t>(k));
  std::swap(perm[norm_axis(e.i("dim0"), r)], perm[norm_axis(e.i("dim1"), r)]);
  emit_permute_to(e, perm);
}

void emit_permute(EmitContext& e) {
  size_t r = e.in("input").shape.size();
  std::vector<int64_t> perm;
  for (int64_t a : e.arg("dims").get<std::vector<int64_t>>()) perm.push_back(static_cast<int64_t>(norm_axis(a, r)));
  emit_permute_to(e, perm);
}

// CUDA: out[i] = in[the index i maps to], or `value` where that falls outside in: the constant pad
// (negative pads crop), and PadGrad with the pads negated. One thread per output element.
void emit_pad_cuda(EmitContext& e, const std::string& out, const std::string& in, const Shape& in_shape,
                   const std::vector<int64_t>& before, const std::vector<int64_t>& after, const std::string& value) {
  std::vector<std::string> out_dims;
  std::string n = "int64_t{1}";
  for (size_t d = 0; d < in_shape.size(); ++d) {
    out_dims.push_back(fmt::format("({} + {})", EmitContext::dim(in_shape[d]), before[d] + after[d]));
    n += " * " + out_dims.back();
  }
  e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", n);
  e.line("  int64_t rest_ = i, at_ = 0, stride_ = 1;");
  e.line("  bool inside_ = true;");
  for (size_t d = in_shape.size(); d-- > 0;) {
    e.line("  {{");
    e.line("    const int64_t s_ = rest_ % {} - ({});", out_dims[d], before[d]);
    e.line("    rest_ /= {};", out_dims[d]);
    e.line("    inside_ = inside_ && s_ >= 0 && s_ < {};", EmitContext::dim(in_shape[d]));
    e.line("    at_ += s_ * stride_;");
    e.line("    stride_ *= {};", EmitContext::dim(in_shape[d]));
    e.line("  }}");
  }
  e.line("  {}[i] = inside_ ? {}[at_] : {};", out, in, value);
  e.line("}}, {});", e.layer());
}

void emit_expand(EmitContext& e) {
  if (e.cuda()) {  // a broadcast: the input's index from the output's (emit_elementwise)
    emit_elementwise(e, {"input"}, [](const std::vector<std::string>& x) { return x[0]; });
    return;
  }
  const Shape& in = e.in("input").shape;
  const Shape& out = e.out().shape;
  if (out.empty()) {
    emit_copy(e);
    return;
  }
  if (out.size() > 8) e.unsupported("a rank above 8");
  Shape padded(out.size() - in.size(), Dim(1));
  padded.insert(padded.end(), in.begin(), in.end());
  e.line("const int64_t in_shape_[] = {};", dims_list(padded));
  e.line("const int64_t out_shape_[] = {};", dims_list(out));
  e.line("mithril::rt::k::expand<{}>({}, {}, {}, in_shape_, out_shape_);", e.ctype_of("input"), e.y(), e.x("input"), out.size());
}

void emit_concat(EmitContext& e) {
  const Shape& out = e.out().shape;
  size_t axis = norm_axis(e.i("axis"), out.size());
  const OpDef& op = e.op();
  size_t n = e.node().inputs[static_cast<size_t>(op.input_index("input"))].size();
  std::vector<std::string> parts, lens;
  for (size_t i = 0; i < n; ++i) {
    parts.push_back(e.x("input", i));
    lens.push_back(EmitContext::dim(e.in("input", i).shape[axis]));
  }
  const char* T = EmitContext::ctype(e.out().dtype);
  if (e.cuda()) {  // each part copied into its place along the axis: one thread per element
    const std::string inner = EmitContext::numel(out, axis + 1, out.size()), out_len = EmitContext::dim(out[axis]);
    Dim at(0);
    for (size_t i = 0; i < n; ++i) {
      e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", EmitContext::numel(e.in("input", i).shape));
      e.line("  const int64_t o = i / ({} * {}), r = i % ({} * {});", lens[i], inner, lens[i], inner);
      e.line("  {}[(o * {} + {}) * {} + r] = {}[i];", e.y(), out_len, EmitContext::dim(at), inner, parts[i]);
      e.line("}}, {});", e.layer());
      at = at + e.in("input", i).shape[axis];
    }
    return;
  }
  e.line("const {}* const parts_[] = {{{}}};", T, fmt::join(parts, ", "));
  e.line("const int64_t lens_[] = {{{}}};", fmt::join(lens, ", "));
  e.line("mithril::rt::k::concat<{}>({}, parts_, lens_, {}, {}, {});", T, e.y(), n, EmitContext::numel(out, 0, axis),
         EmitContext::numel(out, axis + 1, out.size()));
}

void emit_split(EmitContext& e) {
  const Shape& in = e.in("input").shape;
  size_t axis = norm_axis(e.i("axis"), in.size());
  size_t n = e.node().outputs[0].size();
  Dim at(0);
  if (e.cuda()) {  // part i: outer x len x inner elements from offset `at` along the axis
    const std::string inner = EmitContext::numel(in, axis + 1, in.size()), in_len = EmitContext::dim(in[axis]);
    for (size_t i = 0; i < n; ++i) {
      const Dim& len = e.out("output", i).shape[axis];
      e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", EmitContext::numel(e.out("output", i).shape));
      e.line("  const int64_t o = i / ({} * {}), r = i % ({} * {});", EmitContext::dim(len), inner, EmitContext::dim(len), inner);
      e.line("  {}[i] = {}[o * {} * {} + {} * {} + r];", e.y("output", i), e.x("input"), in_len, inner, EmitContext::dim(at), inner);
      e.line("}}, {});", e.layer());
      at = at + len;
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const Dim& len = e.out("output", i).shape[axis];
    e.line("mithril::rt::k::slice<{}>({}, {}, {}, {}, {}, {}, 1, {});", e.ctype_of("input"), e.y("output", i), e.x("input"),
           EmitContext::numel(in, 0, axis), EmitContext::dim(in[axis]), EmitContext::numel(in, axis + 1, in.size()),
           EmitContext::dim(at), EmitContext::dim(len));
    at = at + len;
  }
}

// n_ (the axis size) and start_ (Python's slice.indices start, clamped) for a Slice node's arguments.
void emit_slice_start(EmitContext& e, const Dim& d) {
  e.line("const int64_t n_ = {};", EmitContext::dim(d));
  e.line("int64_t start_ = {};", e.i("start"));
  if (e.i("step") > 0) {
    e.line("if (start_ < 0) start_ = std::max<int64_t>(start_ + n_, 0);");
    e.line("start_ = std::min(start_, n_);");
  } else {
    e.line("if (start_ < 0) start_ = std::max<int64_t>(start_ + n_, -1);");
    e.line("start_ = std::min(start_, n_ - 1);");
  }
}

// Python's slice.indices at run time: the start, clamped; the length the shape rule
// gave is checked against Python's when the size is symbolic (the rule assumed in range).
void emit_slice(EmitContext& e) {
  const Shape& in = e.in("input").shape;
  size_t axis = norm_axis(e.i("axis"), in.size());
  int64_t step = e.i("step");
  const Dim& d = in[axis];
  std::string out_len = EmitContext::dim(e.out().shape[axis]);
  emit_slice_start(e, d);
  if (!d.is_const()) {
    if (e.arg("stop").is_null()) {
      e.line("const int64_t stop_ = {};", step > 0 ? "n_" : "-1");
    } else {
      e.line("int64_t stop_ = {};", e.i("stop"));
      e.line("if (stop_ < 0) stop_ = std::max<int64_t>(stop_ + n_, {});", step > 0 ? "0" : "-1");
      e.line("stop_ = std::min<int64_t>(stop_, {});", step > 0 ? "n_" : "n_ - 1");
    }
    if (step > 0)
      e.line("const int64_t len_ = start_ < stop_ ? (stop_ - start_ - 1) / {} + 1 : 0;", step);
    else
      e.line("const int64_t len_ = stop_ < start_ ? (start_ - stop_ - 1) / {} + 1 : 0;", -step);
    e.line("if (len_ != {})", out_len);
    e.line("  throw mithril::rt::Error(std::string(\"layer '\") + {} + \"' (Slice): the slice has \" + std::to_string(len_) + "
           "\" elements at run time but the shape rule assumed in-range indices and gave \" + std::to_string({}) + "
           "\"; choose indices within the size\");",
           cpp_string(e.node().name), out_len);
  }
  if (e.cuda()) {  // output element i reads element start_ + j * step along the axis
    const std::string inner = EmitContext::numel(in, axis + 1, in.size());
    e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", EmitContext::numel(e.out().shape));
    e.line("  const int64_t o = i / ({} * {}), r = i % ({} * {});", out_len, inner, out_len, inner);
    e.line("  {}[i] = {}[(o * n_ + start_ + r / {} * ({})) * {} + r % {}];", e.y(), e.x("input"), inner, step, inner, inner);
    e.line("}}, {});", e.layer());
    return;
  }
  e.line("mithril::rt::k::slice<{}>({}, {}, {}, n_, {}, start_, {}, {});", e.ctype_of("input"), e.y(), e.x("input"),
         EmitContext::numel(in, 0, axis), EmitContext::numel(in, axis + 1, in.size()), step, out_len);
}

void emit_gather(EmitContext& e) {
  const Shape& in = e.in("input").shape;
  size_t axis = norm_axis(e.i("axis"), in.size());
  if (e.cuda()) {  // one thread per output element; an index out of range is reported (check_status), its value NaN or 0
    const std::string len = EmitContext::dim(in[axis]), inner = EmitContext::numel(in, axis + 1, in.size());
    const std::string count = EmitContext::numel(e.in("indices").shape);
    e.line("std::int64_t* const status_ = device_.status();");
    e.line("rt::cuda::for_each(device_, {} * {} * {}, [=] __device__ (int64_t i) {{", EmitContext::numel(in, 0, axis), count, inner);
    e.line("  const int64_t r_ = i % {0}, j_ = i / {0} % {1}, o_ = i / ({0} * {1});", inner, count);
    e.line("  int64_t ix_ = static_cast<int64_t>({}[j_]);", e.x("indices"));
    e.line("  if (ix_ < -{0} || ix_ >= {0}) {{", len);
    e.line("    if (r_ == 0 && o_ == 0) rt::cuda::report_index(status_, {}, ix_, {});", e.layer(), len);
    e.line("    {}[i] = {};", e.y(), is_float(e.out().dtype) ? "NAN" : "0");
    e.line("    return;");
    e.line("  }}");
    e.line("  if (ix_ < 0) ix_ += {};", len);
    e.line("  {}[i] = {}[(o_ * {} + ix_) * {} + r_];", e.y(), e.x("input"), len, inner);
    e.line("}}, {});", e.layer());
    return;
  }
  e.line("mithril::rt::k::take<{}, {}>({}, {}, {}, {}, {}, {}, {});", e.ctype_of("input"), e.ctype_of("indices"), e.y(),
         e.x("input"), e.x("indices"), EmitContext::numel(in, 0, axis), EmitContext::dim(in[axis]),
         EmitContext::numel(in, axis + 1, in.size()), EmitContext::numel(e.in("indices").shape));
}

// A number as a C++ expression of type T.
std::string literal(double v, DType t) {
  const char* T = EmitContext::ctype(t);
  if (t == DType::boolean) return v != 0 ? "true" : "false";
  if (std::isnan(v)) return fmt::format("std::numeric_limits<{}>::quiet_NaN()", T);
  if (std::isinf(v)) return fmt::format("{}std::numeric_limits<{}>::infinity()", v < 0 ? "-" : "", T);
  if (is_int(t)) {
    // Saturated to the type's range, as the constant's conversion does; never a cast out of range.
    if (t == DType::i64 && v <= -9223372036854775808.0) return "(-9223372036854775807 - 1)";
    if (t == DType::i32 && v <= -2147483648.0) return "(-2147483647 - 1)";
    if (t == DType::i64 && v >= 9223372036854775807.0) return "int64_t(9223372036854775807)";
    if (t == DType::i32 && v >= 2147483647.0) return "int32_t(2147483647)";
    return fmt::format("{}({})", T, static_cast<int64_t>(std::trunc(v)));
  }
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return fmt::format("{}({})", T, s);
}

void emit_pad(EmitContext& e) {
  const Shape& in = e.in("input").shape;
  std::vector<int64_t> pads = e.arg("pads").get<std::vector<int64_t>>();
  std::string T = e.ctype_of("input");
  if (in.empty()) {
    emit_copy(e);
    return;
  }
  if (in.size() > 8) e.unsupported("a rank above 8");
  std::vector<int64_t> before(in.size(), 0), after(in.size(), 0);
  for (size_t j = 0; j < pads.size() / 2; ++j) {
    before[in.size() - 1 - j] = pads[2 * j];
    after[in.size() - 1 - j] = pads[2 * j + 1];
  }
  if (e.cuda()) {
    emit_pad_cuda(e, e.y(), e.x("input"), in, before, after, literal(e.f("value"), e.in("input").dtype));
    return;
  }
  e.line("const int64_t in_shape_[] = {};", dims_list(in));
  e.line("const int64_t before_[] = {{{}}};", fmt::join(before, ", "));
  e.line("const int64_t after_[] = {{{}}};", fmt::join(after, ", "));
  e.line("mithril::rt::k::pad_constant<{}>({}, {}, {}, in_shape_, before_, after_, {});", T, e.y(), e.x("input"), in.size(),
         literal(e.f("value"), e.in("input").dtype));
}

void emit_arange(EmitContext& e) {
  const Value& y = e.out();
  if (e.cuda()) {
    e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{ {}[i] = static_cast<{}>(i); }}, {});",
           EmitContext::dim(y.shape[0]), e.y(), EmitContext::ctype(y.dtype), e.layer());
    return;
  }
  e.line("for (int64_t i_ = 0; i_ < {}; ++i_) {}[i_] = static_cast<{}>(i_);", EmitContext::dim(y.shape[0]), e.y(),
         EmitContext::ctype(y.dtype));
}

void flatten_json(const json& v, std::vector<const json*>& out) {
  if (v.is_array())
    for (auto& x : v) flatten_json(x, out);
  else
    out.push_back(&v);
}

void emit_constant(EmitContext& e) {
  const Value& y = e.out();
  std::vector<const json*> elems;
  flatten_json(e.arg("value"), elems);
  if (elems.empty()) return;
  std::vector<std::string> text;
  for (const json* v : elems) {
    if (y.dtype == DType::boolean) text.push_back(v->get<bool>() ? "true" : "false");
    else if (is_int(y.dtype) && v->is_number_integer()) {
      int64_t k = v->get<int64_t>();
      text.push_back(k == std::numeric_limits<int64_t>::min() ? "(-9223372036854775807 - 1)"
                     : y.dtype == DType::i32 && k == std::numeric_limits<int32_t>::min() ? "(-2147483647 - 1)"
                                                                                         : fmt::format("{}", k));
    } else {
      text.push_back(literal(v->get<double>(), y.dtype));
    }
  }
  const char* T = EmitContext::ctype(y.dtype);
  std::string body;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i % 16 == 0) body += "\n      ";
    body += text[i] + ",";
  }
  e.line("static const {} data_[{}] = {{{}}};", T, text.size(), body);
  if (e.cuda()) e.line("device_.to_device({}, data_, sizeof data_);", e.y());
  else e.line("std::copy(data_, data_ + {}, {});", text.size(), e.y());
}

// ---- Backward ops and gradient rules -------------------------------------------

// A 'like' input gives only its shape; its pointer is still declared in the generated code.
void shape_only(EmitContext& e, const std::string& port = "like", size_t i = 0) {
  e.line("(void){};  // only its shape is used", e.x(port, i));
}

// SliceGrad: zeros with the gradient written where the slice read, one pass (kernel slice_grad).
void emit_slice_grad(EmitContext& e) {
  const Shape& in = e.in("like").shape;
  size_t axis = norm_axis(e.i("axis"), in.size());
  shape_only(e);
  emit_slice_start(e, in[axis]);
  if (e.cuda()) {  // input element i gets grad[j] where start_ + j * step is its index along the axis, else 0
    const std::string inner = EmitContext::numel(in, axis + 1, in.size()), len = EmitContext::dim(e.in("grad").shape[axis]);
    const int64_t step = e.i("step");
    e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", EmitContext::numel(in));
    e.line("  const int64_t o_ = i / (n_ * {0}), a_ = i / {0} % n_, r_ = i % {0}, off_ = a_ - start_;", inner);
    e.line("  const int64_t j_ = off_ / ({});", step);
    e.line("  {}[i] = off_ % ({}) == 0 && j_ >= 0 && j_ < {} ? {}[(o_ * {} + j_) * {} + r_] : 0;", e.y(), step, len, e.x("grad"), len,
           inner);
    e.line("}}, {});", e.layer());
    return;
  }
  e.line("mithril::rt::k::slice_grad<{}>({}, {}, {}, n_, {}, start_, {}, {});", e.ctype_of("grad"), e.y(), e.x("grad"),
         EmitContext::numel(in, 0, axis), EmitContext::numel(in, axis + 1, in.size()), e.i("step"),
         EmitContext::dim(e.in("grad").shape[axis]));
}

// GatherGrad: zeros with the gradient rows added at their indices (kernel take_grad).
void emit_gather_grad(EmitContext& e) {
  const Shape& in = e.in("like").shape;
  size_t axis = norm_axis(e.i("axis"), in.size());
  shape_only(e);
  if (e.cuda()) {  // zeros, then each gradient element added at its index (atomics: repeated indices accumulate)
    if (e.out().dtype != DType::f32) e.unsupported("float64");
    const std::string len = EmitContext::dim(in[axis]), inner = EmitContext::numel(in, axis + 1, in.size());
    const std::string count = EmitContext::numel(e.in("indices").shape);
    e.line("rt::cuda::zero(device_, {}, {} * sizeof(float), {});", e.y(), EmitContext::numel(in), e.layer());
    e.line("rt::cuda::for_each(device_, {} * {} * {}, [=] __device__ (int64_t i) {{", EmitContext::numel(in, 0, axis), count, inner);
    e.line("  const int64_t r_ = i % {0}, j_ = i / {0} % {1}, o_ = i / ({0} * {1});", inner, count);
    e.line("  int64_t ix_ = static_cast<int64_t>({}[j_]);", e.x("indices"));
    e.line("  if (ix_ < -{0} || ix_ >= {0}) return;  // reported by the forward pass", len);
    e.line("  if (ix_ < 0) ix_ += {};", len);
    e.line("  atomicAdd({} + (o_ * {} + ix_) * {} + r_, {}[i]);", e.y(), len, inner, e.x("grad"));
    e.line("}}, {});", e.layer());
    return;
  }
  e.line("mithril::rt::k::take_grad<{}, {}>({}, {}, {}, {}, {}, {}, {});", e.ctype_of("grad"), e.ctype_of("indices"), e.y(),
         e.x("grad"), e.x("indices"), EmitContext::numel(in, 0, axis), EmitContext::dim(in[axis]),
         EmitContext::numel(in, axis + 1, in.size()), EmitContext::numel(e.in("indices").shape));
}

// PadGrad: the gradient cropped back to the input, pad_constant with the pads negated.
void emit_pad_grad(EmitContext& e) {
  const Shape& gs = e.in("grad").shape;
  std::vector<int64_t> pads = e.arg("pads").get<std::vector<int64_t>>();
  shape_only(e);
  if (gs.empty()) {
    if (e.cuda()) e.line("rt::cuda::copy(device_, {}, {}, sizeof({}), {});", e.y(), e.x("grad"), e.ctype_of("grad"), e.layer());
    else e.line("std::copy({0}, {0} + 1, {1});", e.x("grad"), e.y());
    return;
  }
  if (gs.size() > 8) e.unsupported("a rank above 8");
  std::vector<int64_t> before(gs.size(), 0), after(gs.size(), 0);
  for (size_t j = 0; j < pads.size() / 2; ++j) {
    before[gs.size() - 1 - j] = -pads[2 * j];
    after[gs.size() - 1 - j] = -pads[2 * j + 1];
  }
  if (e.cuda()) {
    emit_pad_cuda(e, e.y(), e.x("grad"), gs, before, after, "0");
    return;
  }
  e.line("const int64_t in_shape_[] = {};", dims_list(gs));
  e.line("const int64_t before_[] = {{{}}};", fmt::join(before, ", "));
  e.line("const int64_t after_[] = {{{}}};", fmt::join(after, ", "));
  e.line("mithril::rt::k::pad_constant<{}>({}, {}, {}, in_shape_, before_, after_, {});", e.ctype_of("grad"), e.y(),
         e.x("grad"), gs.size(), literal(0.0, e.in("grad").dtype));
}

// Ops that only rearrange shape metadata (Reshape, Flatten, Squeeze, Unsqueeze): reshape back.
void reshape_grad(GradContext& g) { g.grad("input", g.reshape_like(g.dout(), g.in("input"))); }

void permute_grad(GradContext& g) {
  const size_t r = g.shape(g.in("input")).size();
  std::vector<int64_t> dims = g.arg("dims").get<std::vector<int64_t>>(), inverse(r);
  for (size_t k = 0; k < r; ++k) inverse[norm_axis(dims[k], r)] = static_cast<int64_t>(k);
  g.grad("input", g.op1("Permute", {{"input", g.dout()}}, {{"dims", inverse}}));
}

// Concat: the gradient cut back into the inputs' sizes along the axis (SplitLike keeps symbolic sizes).
void concat_grad(GradContext& g) {
  const size_t n = g.count("input");
  if (n == 1) {
    g.grad("input", g.dout(), 0);
    return;
  }
  std::vector<int> likes;
  for (size_t i = 0; i < n; ++i) likes.push_back(g.in("input", i));
  std::vector<int> parts = g.add("SplitLike", {{"input", {g.dout()}}, {"like", likes}}, {{"axis", g.i("axis")}}, static_cast<int>(n));
  for (size_t i = 0; i < n; ++i)
    if (g.wants("input", i)) g.grad("input", parts[i], i);
}

// Split: the parts' gradients joined again, zeros for parts no gradient reached.
void split_grad(GradContext& g) {
  const size_t n = g.node().outputs[0].size();
  std::vector<int> parts;
  int zero = -1;
  for (size_t i = 0; i < n; ++i) {
    int d = g.dout("output", i);
    if (d < 0) {
      if (zero < 0) zero = g.scalar_like(0, g.in("input"));
      d = g.broadcast_like(zero, g.out("output", i));
    }
    parts.push_back(d);
  }
  if (n == 1) g.grad("input", parts[0]);
  else g.grad("input", g.add("Concat", {{"input", parts}}, {{"axis", g.i("axis")}}).at(0));
}

// Constant folding (OpDef::fold): the ops that keep the elements in order give the input's
// elements; the broadcasting ones (BroadcastLike, Expand) repeat them into the output's shape.
std::optional<std::vector<double>> fold_same_elements(const Node&, const FoldArgs& in, const Value&) {
  if (!in.at(0).at(0).data) return std::nullopt;
  return *in.at(0).at(0).data;
}

std::optional<std::vector<double>> fold_broadcast(const Node&, const FoldArgs& in, const Value& out) {
  const FoldArg& x = in.at(0).at(0);
  if (!x.data) return std::nullopt;
  return broadcast_elements(*x.data, x.value->shape, out.shape);
}

}  // namespace

MITHRIL_REGISTER_OPS(shape) {
  register_op(OpDef("Reshape", "shape",
                    "same elements in a new shape (ONNX semantics): in 'shape', -1 is inferred from the element count (at "
                    "most one) and 0 copies the input's size at that position; symbolic sizes divide exactly, e.g. "
                    "[N, T, 768] with shape [0, 0, 12, 64] gives [N, T, 12, 64]")
                  .in("input").out()
                  .arg("shape", ArgType::IntList, std::nullopt,
                       "the new sizes: positive, 0 (copy the input's size at this position) or -1 (infer; at most one)")
                  .grad(reshape_grad)
                  .writes_in_place_of("input")
                  .emit("cpu", emit_view).emit("cuda", emit_view)
                  .fold_rule(fold_same_elements)
                  .rule(reshape_rule));

  register_op(OpDef("Flatten", "shape",
                    "merge axes start_dim..end_dim (inclusive) into one, as torch.flatten; the defaults keep the batch "
                    "axis: [N, C, H, W] -> [N, C*H*W]; a scalar counts as [1]")
                  .in("input").out()
                  .arg("start_dim", ArgType::Int, json(1), "first axis to merge; negative counts from the end")
                  .arg("end_dim", ArgType::Int, json(-1), "last axis to merge (inclusive); negative counts from the end")
                  .grad(reshape_grad)
                  .writes_in_place_of("input")
                  .emit("cpu", emit_view).emit("cuda", emit_view)
                  .fold_rule(fold_same_elements)
                  .rule(flatten_rule));

  register_op(OpDef("Transpose", "shape", "swap two axes; the defaults swap the last two ([.., M, K] -> [.., K, M])")
                  .in("input").out()
                  .arg("dim0", ArgType::Int, json(-2), "one axis to swap; negative counts from the end")
                  .arg("dim1", ArgType::Int, json(-1), "the other axis to swap; negative counts from the end")
                  .grad([](GradContext& g) {  // a swap is its own inverse
                    g.grad("input", g.op1("Transpose", {{"input", g.dout()}}, {{"dim0", g.i("dim0")}, {"dim1", g.i("dim1")}}));
                  })
                  .emit("cpu", emit_transpose).emit("cuda", emit_transpose)
                  .rule(transpose_rule));

  register_op(OpDef("Permute", "shape",
                    "reorder the axes: output axis i is input axis dims[i], as torch.permute; e.g. dims [0, 2, 3, 1] "
                    "turns NCHW into NHWC")
                  .in("input").out()
                  .arg("dims", ArgType::IntList, std::nullopt,
                       "a permutation of the input's axes (each once); negative counts from the end")
                  .grad(permute_grad)
                  .emit("cpu", emit_permute).emit("cuda", emit_permute)
                  .rule(permute_rule));

  register_op(OpDef("Squeeze", "shape",
                    "remove size-1 axes: the ones named by 'axis' (each must have size 1), or every axis of known size 1 "
                    "when 'axis' is omitted (symbolic sizes are kept)")
                  .in("input").out()
                  .arg("axis", ArgType::IntOrList, json(nullptr),
                       "axis or list of axes to remove, each of size 1; negative counts from the end; omitted: every size-1 axis")
                  .grad(reshape_grad)
                  .writes_in_place_of("input")
                  .emit("cpu", emit_view).emit("cuda", emit_view)
                  .fold_rule(fold_same_elements)
                  .rule(squeeze_rule));

  register_op(OpDef("Unsqueeze", "shape",
                    "insert size-1 axes, as numpy.expand_dims: 'axis' names positions in the output, so [N, D] with "
                    "axis 1 gives [N, 1, D] and with axis -1 gives [N, D, 1]")
                  .in("input").out()
                  .arg("axis", ArgType::IntOrList, std::nullopt,
                       "position or list of positions of the new axes in the output; negative counts from the output's end")
                  .grad(reshape_grad)
                  .writes_in_place_of("input")
                  .emit("cpu", emit_view).emit("cuda", emit_view)
                  .fold_rule(fold_same_elements)
                  .rule(unsqueeze_rule));

  register_op(OpDef("Expand", "shape",
                    "broadcast to a larger shape without copying, as torch.Tensor.expand: size-1 axes grow to the given "
                    "size, -1 keeps an axis, and extra leading sizes add new axes")
                  .in("input").out()
                  .arg("shape", ArgType::IntList, std::nullopt,
                       "the target sizes, aligned at the last axis; -1 keeps the input's size (not allowed in new leading axes)")
                  .grad([](GradContext& g) { g.grad("input", g.sum_like(g.dout(), g.in("input"))); })
                  .emit("cpu", emit_expand)
                  .emit("cuda", emit_expand)
                  .fold_rule(fold_broadcast)
                  .rule(expand_rule));

  register_op(OpDef("Concat", "shape",
                    "join a list of tensors along 'axis'; they need the same dtype and rank and equal sizes on every "
                    "other axis; the result's size on 'axis' is the sum (symbolic sizes add)")
                  .in_list("input").out()
                  .arg("axis", ArgType::Int, json(0), "the axis to join along; negative counts from the end")
                  .grad(concat_grad)
                  .emit("cpu", emit_concat).emit("cuda", emit_concat)
                  .rule(concat_rule));

  register_op(OpDef("Split", "shape",
                    "cut a tensor along 'axis' into a list of parts, either of the given 'sizes' (which must add up to "
                    "the axis size) or into 'sections' equal parts (the size must divide exactly, e.g. a [N, T, 3*C] "
                    "qkv tensor into 3 parts of [N, T, C]); name one output per part")
                  .in("input").out_list("output", split_count)
                  .arg("axis", ArgType::Int, json(0), "the axis to cut; negative counts from the end")
                  .arg("sizes", ArgType::IntList, json(nullptr), "the size of each part, in order; give this or 'sections'")
                  .arg("sections", ArgType::Int, json(nullptr), "the number of equal parts; give this or 'sizes'")
                  .grad(split_grad)
                  .emit("cpu", emit_split).emit("cuda", emit_split)
                  .rule(split_rule));

  register_op(OpDef("Slice", "shape",
                    "take input[start:stop:step] along 'axis' with Python slice semantics: negative indices count from "
                    "the end, out-of-range indices are clamped, a negative step walks backwards (start defaults to 0, "
                    "so reverse with start: -1, step: -1). On a symbolic size the indices are assumed in range: "
                    "non-negative ones count from the front and negative ones from the end, so on [N] start: 1 gives "
                    "[N-1] and start: -3 gives [3]; a range that would shrink as N grows (start: -3, stop: 2) is an error")
                  .in("input").out()
                  .arg("axis", ArgType::Int, json(0), "the axis to slice; negative counts from the end")
                  .arg("start", ArgType::Int, json(0), "first index taken; negative counts from the end")
                  .arg("stop", ArgType::Int, json(nullptr), "index to stop before; negative counts from the end; omitted: the end")
                  .arg("step", ArgType::Int, json(1), "stride between taken indices, nonzero; negative walks backwards")
                  .grad([](GradContext& g) {
                    json a = g.node().attrs;
                    g.grad("input", g.op1("SliceGrad", {{"grad", g.dout()}, {"like", g.in("input")}},
                                          {{"axis", a["axis"]}, {"start", a["start"]}, {"stop", a["stop"]}, {"step", a["step"]}}));
                  })
                  .emit("cpu", emit_slice).emit("cuda", emit_slice)
                  .rule(slice_rule));

  register_op(OpDef("Gather", "shape",
                    "pick entries along 'axis' by integer 'indices', as numpy.take: the output shape is "
                    "input[:axis] + indices.shape + input[axis+1:] (an embedding lookup with axis 0)")
                  .in("input").in("indices").out()
                  .arg("axis", ArgType::Int, json(0), "the axis the indices select along; negative counts from the end")
                  .grad([](GradContext& g) {  // only the data gets a gradient; repeated indices accumulate
                    g.grad("input", g.op1("GatherGrad", {{"grad", g.dout()}, {"indices", g.in("indices")}, {"like", g.in("input")}},
                                          {{"axis", g.i("axis")}}));
                  })
                  .emit("cpu", emit_gather)
                  .emit("cuda", emit_gather)
                  .rule(gather_rule));

  register_op(OpDef("Pad", "shape",
                    "add 'value' around the edges, as torch.nn.functional.pad: 'pads' holds (left, right) pairs, the "
                    "first pair for the last axis, the next for the one before it, and so on")
                  .in("input").out()
                  .arg("pads", ArgType::IntList, std::nullopt,
                       "(left, right) amounts, non-negative, starting from the last axis: [1, 1, 2, 2] pads W by 1 and H by 2")
                  .arg("value", ArgType::Float, json(0.0), "the fill value for mode constant; must fit the input's dtype")
                  .arg("mode", ArgType::String, json("constant"), "how to fill: constant (the only mode for now)", {"constant"})
                  .grad([](GradContext& g) {  // the fill value is a constant: only the cropped gradient flows back
                    g.grad("input", g.op1("PadGrad", {{"grad", g.dout()}, {"like", g.in("input")}}, {{"pads", g.arg("pads")}}));
                  })
                  .emit("cpu", emit_pad)
                  .emit("cuda", emit_pad)
                  .rule(pad_rule));

  register_op(OpDef("Arange", "shape",
                    "the positions 0, 1, .., n-1 as a 1-D tensor [n], where n is the size of 'input' along 'axis' "
                    "(input's values are not read); e.g. the positions for a GPT's position embedding")
                  .in("input").out().trait("no_gradient")
                  .arg("axis", ArgType::Int, json(-1), "the axis of 'input' whose size is n; negative counts from the end")
                  .arg("dtype", ArgType::Dtype, json("int64"), "element type of the result (integer or float)")
                  .emit("cpu", emit_arange).emit("cuda", emit_arange)
                  .rule(arange_rule));

  register_op(OpDef("Constant", "shape",
                    "a tensor written in the model: a number gives a scalar [], nested lists give a tensor whose shape "
                    "is the nesting ([[1, 2, 3], [4, 5, 6]] is [2, 3]); lists must not be ragged")
                  .out().trait("no_gradient")
                  .arg("value", ArgType::Any, std::nullopt,
                       "a number (true/false for bool), or nested lists of them, all lists at one depth of equal length")
                  .arg("dtype", ArgType::Dtype, json("float32"), "element type; integer types need integer values")
                  .emit("cpu", emit_constant).emit("cuda", emit_constant)
                  .rule(constant_rule));

  // Internal ops of the backward pass (ops/grad.h): shapes taken from another value, so that
  // gradients keep symbolic sizes that no int list could spell.
  register_op(OpDef("ReshapeLike", "shape", "same elements in the shape of 'like' (whose values are not read)")
                  .in("input").in("like").out().trait("internal")
                  .grad(reshape_grad)
                  .writes_in_place_of("input")
                  .emit("cpu", [](EmitContext& e) {
                    shape_only(e);
                    emit_view(e);
                  })
                  .emit("cuda", [](EmitContext& e) {
                    shape_only(e);
                    emit_view(e);
                  })
                  .fold_rule(fold_same_elements)
                  .rule([](InferContext& c) {
                    if (numel(c.shape("input")) != numel(c.shape("like")))
                      c.fail("cannot reshape {} into the shape of {}", input_type(c), input_type(c, "like"));
                    c.out("output", c.dtype("input"), c.shape("like"));
                  }));
  register_op(OpDef("BroadcastLike", "shape", "broadcast 'input' to the shape of 'like' (whose values are not read)")
                  .in("input").in("like").out().trait("internal")
                  .grad([](GradContext& g) { g.grad("input", g.sum_like(g.dout(), g.in("input"))); })
                  .emit("cpu", [](EmitContext& e) {
                    shape_only(e);
                    emit_elementwise(e, {"input"}, [](const std::vector<std::string>& x) { return x[0]; });
                  })
                  .emit("cuda", [](EmitContext& e) {
                    shape_only(e);
                    emit_elementwise(e, {"input"}, [](const std::vector<std::string>& x) { return x[0]; });
                  })
                  .fold_rule(fold_broadcast)
                  .rule([](InferContext& c) {
                    auto b = broadcast_shapes(c.shape("input"), c.shape("like"));
                    if (!b || *b != c.shape("like"))
                      c.fail("cannot broadcast {} to the shape of {}", input_type(c), input_type(c, "like"));
                    c.out("output", c.dtype("input"), c.shape("like"));
                  }));

  // Adjoints of the cutting ops: the result has the shape of 'like' (the forward input, values not read).
  register_op(OpDef("SplitLike", "shape", "cut 'input' along 'axis' into parts of the sizes of the 'like' values (Concat's gradient)")
                  .in("input").in_list("like").out_list("output", [](const json&) { return 0; }).trait("internal")
                  .arg("axis", ArgType::Int, json(0), "the axis to cut")
                  .emit("cpu", [](EmitContext& e) {
                    for (size_t i = 0; i < e.node().inputs[1].size(); ++i) shape_only(e, "like", i);
                    emit_split(e);
                  })
                  .emit("cuda", [](EmitContext& e) {
                    for (size_t i = 0; i < e.node().inputs[1].size(); ++i) shape_only(e, "like", i);
                    emit_split(e);
                  })
                  .rule([](InferContext& c) {
                    const Shape& s = c.shape("input");
                    int64_t axis = c.axis(c.i("axis"), s.size(), "axis");
                    if (c.out_count("output") != c.count("like"))
                      c.fail("SplitLike makes {} parts but names {} outputs", c.count("like"), c.out_count("output"));
                    Dim total(0);
                    for (size_t i = 0; i < c.count("like"); ++i) {
                      Shape p = c.shape("like", i);
                      total = total + p[axis];
                      Shape q = s;
                      q[axis] = p[axis];
                      if (p != q) c.fail("cannot cut {} into a part like {}", input_type(c), input_type(c, "like", i));
                      c.out("output", c.dtype("input"), p, i);
                    }
                    if (total != s[axis]) c.fail("the parts do not add up to axis {} of {}", axis, input_type(c));
                  }));
  register_op(OpDef("SliceGrad", "shape", "zeros of the shape of 'like' with 'grad' written where Slice read (Slice's gradient)")
                  .in("grad").in("like").out().trait("internal")
                  .arg("axis", ArgType::Int, json(0), "as Slice")
                  .arg("start", ArgType::Int, json(0), "as Slice")
                  .arg("stop", ArgType::Int, json(nullptr), "as Slice")
                  .arg("step", ArgType::Int, json(1), "as Slice")
                  .emit("cpu", emit_slice_grad)
                  .emit("cuda", emit_slice_grad)
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("like")); }));
  register_op(OpDef("GatherGrad", "shape",
                    "zeros of the shape of 'like' with the rows of 'grad' added at 'indices' along 'axis' (Gather's gradient)")
                  .in("grad").in("indices").in("like").out().trait("internal")
                  .arg("axis", ArgType::Int, json(0), "as Gather")
                  .emit("cpu", emit_gather_grad)
                  .emit("cuda", emit_gather_grad)
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("like")); }));
  register_op(OpDef("PadGrad", "shape", "'grad' with the padding cut off, in the shape of 'like' (Pad's gradient)")
                  .in("grad").in("like").out().trait("internal")
                  .arg("pads", ArgType::IntList, std::nullopt, "as Pad")
                  .emit("cpu", emit_pad_grad)
                  .emit("cuda", emit_pad_grad)
                  .rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("like")); }));
}

}  // namespace mithril
