// The textual IR (`--ir`, `--dump-ir`). It names each node's op and input ports, which the op
// registry defines, so it lives at the ops layer, above the graph it prints.
#include "ops/ir_text.h"

#include "ops/registry.h"

namespace mithril {

static std::string type_str(const Value& v) {
  if (!v.typed) return "?";
  return fmt::format("{}{}", v.dtype == DType::f32 ? "" : std::string(dtype_name(v.dtype)), shape_str(v.shape));
}

std::string dump_ir(const Graph& g) {
  std::string out = fmt::format("graph {} {{\n", g.name);
  for (auto& v : g.values)
    if (v.kind != ValueKind::Temp)
      out += fmt::format("  %{} = {} \"{}\" : {}\n", v.id, value_kind_name(v.kind), v.name, type_str(v));
  for (auto& n : g.nodes) {
    if (n.id == g.forward_nodes) out += "  // backward pass\n";
    std::string lhs, args;
    for (auto& port : n.outputs)
      for (int v : port) lhs += (lhs.empty() ? "%" : ", %") + std::to_string(v);
    for (size_t p = 0; p < n.inputs.size(); ++p)
      for (int v : n.inputs[p]) args += fmt::format("{}%{}:{}", args.empty() ? "" : ", ", v, n.op->inputs[p].name);
    std::string attrs = n.attrs.empty() ? "" : " " + n.attrs.dump();
    std::string types;
    for (auto& port : n.outputs)
      for (int v : port) types += (types.empty() ? "" : ", ") + type_str(g.value(v));
    out += fmt::format("  {} = {}({}){} : {}  # {}\n", lhs, n.op->name, args, attrs, types, n.name);
  }
  std::string outs;
  for (size_t i = 0; i < g.outputs.size(); ++i)
    outs += fmt::format("{}{}=%{}", i ? ", " : "", g.output_names[i], g.outputs[i]);
  for (size_t i = 0; i < g.grads.size(); ++i)
    outs += fmt::format("{}grad({})=%{}", outs.empty() ? "" : ", ", g.value(g.grad_of[i]).name, g.grads[i]);
  out += fmt::format("  return {}\n}}\n", outs);
  return out;
}

}  // namespace mithril
