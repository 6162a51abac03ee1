#include "ops/emit.h"

#include <algorithm>

namespace mithril {

bool EmitPlan::is_packed(int value) const {
  return std::any_of(packed.begin(), packed.end(), [&](const Packed& q) { return q.id == value; });
}

bool EmitContext::has(const std::string& port) const {
  int p = op().input_index(port);
  return p >= 0 && !node_.inputs[p].empty();
}

const Value& EmitContext::in(const std::string& port, size_t i) const {
  int p = op().input_index(port);
  if (p < 0 || i >= node_.inputs[p].size()) throw std::logic_error("emitter reads missing input " + port);
  return plan_.graph.value(node_.inputs[p][i]);
}

const Value& EmitContext::out(const std::string& port, size_t i) const {
  int p = op().output_index(port);
  if (p < 0 || i >= node_.outputs[p].size()) throw std::logic_error("emitter writes missing output " + port);
  return plan_.graph.value(node_.outputs[p][i]);
}

const char* EmitContext::ctype(DType t) {
  switch (t) {
    case DType::f32: return "float";
    case DType::f64: return "double";
    case DType::i32: return "int32_t";
    case DType::i64: return "int64_t";
    case DType::boolean: return "bool";
  }
  return "?";
}

std::string EmitContext::dim(const Dim& d) {
  if (auto c = d.as_const()) return std::to_string(*c);
  return "(" + d.c_expr(kDimPrefix) + ")";
}

std::string EmitContext::numel(const Shape& s) { return numel(s, 0, s.size()); }

std::string EmitContext::numel(const Shape& s, size_t from, size_t to) {
  Shape part(s.begin() + static_cast<long>(from), s.begin() + static_cast<long>(to));
  return dim(mithril::numel(part));
}

std::string EmitContext::scratch() const {
  int64_t at = plan_.scratch_offset[node_.id];
  if (at < 0) return "nullptr";
  const char* T = ctype(plan_.graph.value(node_.outputs[0][0]).dtype);
  return fmt::format("reinterpret_cast<{}*>(arena + {})", T, at);
}

void EmitContext::unsupported(const std::string& what) const {
  fail(node_.loc, "layer '{}' ({}): {} is not supported by the {} target yet", node_.name, op().name, what,
       plan_.target == "cpu" ? "CPU" : plan_.target == "cuda" ? "CUDA" : plan_.target);
}

void emit_elementwise(EmitContext& e, const std::vector<std::string>& ports,
                      const std::function<std::string(const std::vector<std::string>& elems)>& expr) {
  std::vector<const Value*> operands;
  for (auto& p : ports) operands.push_back(&e.in(p));
  emit_elementwise_values(e, operands,
                          [&](const std::vector<std::string>& elems) { return ElementwiseCode{{}, expr(elems)}; });
}

namespace {
// The CUDA form of an elementwise loop: a device lambda per element given to rt::cuda::for_each
// (cuda/kernels.cuh), one thread per output element. `lines` are the loop's body.
void emit_device_loop(EmitContext& e, const std::string& n, const std::vector<std::string>& lines) {
  e.line("rt::cuda::for_each(device_, {}, [=] __device__ (int64_t i) {{", n);
  for (auto& l : lines) e.line("  {}", l);
  e.line("}}, {});", cpp_string(e.node().name));
}
}  // namespace

void emit_elementwise_values(EmitContext& e, const std::vector<const Value*>& operands,
                             const std::function<ElementwiseCode(const std::vector<std::string>& elems)>& body) {
  const Shape& os = e.out().shape;
  std::string n = EmitContext::numel(os);
  const bool device = e.plan().target == "cuda";
  bool flat = true;
  for (const Value* v : operands) flat &= v->shape == os || v->shape.empty() || mithril::numel(v->shape) == Dim(1);
  std::vector<std::string> elems;
  if (flat) {
    for (const Value* v : operands) elems.push_back(e.name(*v) + (v->shape == os ? "[i]" : "[0]"));
    ElementwiseCode code = body(elems);
    if (device) {
      std::vector<std::string> lines = code.statements;
      lines.push_back(fmt::format("{}[i] = {};", e.y(), code.value));
      emit_device_loop(e, n, lines);
      return;
    }
    if (code.statements.empty()) {
      e.line("for (int64_t i = 0; i < {}; ++i) {}[i] = {};", n, e.y(), code.value);
      return;
    }
    e.line("for (int64_t i = 0; i < {}; ++i) {{", n);
    for (auto& st : code.statements) e.line("  {}", st);
    e.line("  {}[i] = {};", e.y(), code.value);
    e.line("}}");
    return;
  }
  // Broadcasting: decompose the flat output index; operand strides are 0 on broadcast axes.
  // Only the axes some operand indexes get a variable (an axis of size 1 everywhere, as in
  // [3, 1, 5] + [5], would otherwise leave an unused one: a warning in generated code).
  // Operands of the output's shape read at `i`.
  const size_t r = os.size();
  std::vector<bool> used(r, false);
  for (const Value* v : operands) {
    const Shape& s = v->shape;
    if (s == os) {
      elems.push_back(e.name(*v) + "[i]");
      continue;
    }
    std::string idx;
    Dim stride(1);
    for (size_t k = s.size(); k-- > 0;) {
      size_t ok = k + (r - s.size());
      if (s[k] != Dim(1)) {
        idx += fmt::format("{}i{} * {}", idx.empty() ? "" : " + ", ok, EmitContext::dim(stride));
        used[ok] = true;
      }
      stride = stride * s[k];
    }
    elems.push_back(fmt::format("{}[{}]", e.name(*v), idx.empty() ? "0" : idx));
  }
  size_t first = 0;  // the outermost used axis: no division is needed past it
  while (first < r && !used[first]) ++first;
  std::vector<std::string> lines = {"int64_t rest = i;"};
  for (size_t k = r; k-- > first;) {
    if (used[k]) lines.push_back(fmt::format("const int64_t i{} = rest % {};", k, EmitContext::dim(os[k])));
    if (k > first && os[k] != Dim(1)) lines.push_back(fmt::format("rest /= {};", EmitContext::dim(os[k])));
  }
  ElementwiseCode code = body(elems);
  for (auto& st : code.statements) lines.push_back(st);
  lines.push_back(fmt::format("{}[i] = {};", e.y(), code.value));
  if (device) return emit_device_loop(e, n, lines);
  e.line("for (int64_t i = 0; i < {}; ++i) {{", n);
  for (auto& l : lines) e.line("  {}", l);
  e.line("}}");
}

void emit_scalar(EmitContext& e) {
  const Node& n = e.node();
  if (!e.op().scalar) throw std::logic_error("emit_scalar: op " + e.op().name + " has no element expression");
  std::vector<const Value*> operands;
  std::vector<DType> dtypes;
  for (auto& port : n.inputs)
    for (int v : port) {
      operands.push_back(&e.plan().graph.value(v));
      dtypes.push_back(operands.back()->dtype);
    }
  emit_elementwise_values(e, operands, [&](const std::vector<std::string>& elems) {
    return ElementwiseCode{{}, e.op().scalar(e, elems, dtypes)};
  });
}

}  // namespace mithril
