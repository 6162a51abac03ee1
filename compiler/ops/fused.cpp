// FusedElementwise: a chain of elementwise ops computed in one loop, made by the `fuse-elementwise`
// pass (passes/fuse.h). Its `body` lists the steps; each step is computed by its op's own element
// expression (OpDef::scalar) and typed by its op's own shape rule, so the ops stay defined in one place.
#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "ops/emit.h"
#include "ops/fused.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {

std::vector<FusedStep> parse_fused_body(const json& body, std::string* error) {
  std::vector<FusedStep> steps;
  auto bad = [&](const std::string& why) {
    if (!error) throw std::logic_error("FusedElementwise body: " + why);
    *error = why;
    return std::vector<FusedStep>{};
  };
  if (!body.is_array() || body.empty()) return bad("expected a non-empty list of steps");
  for (size_t j = 0; j < body.size(); ++j) {
    const json& s = body[j];
    if (!s.is_object() || !s.contains("op") || !s["op"].is_string())
      return bad(fmt::format("step {}: expected a mapping with an `op`", j));
    FusedStep step;
    step.op = s["op"].get<std::string>();
    if (s.contains("name")) {
      if (!s["name"].is_string()) return bad(fmt::format("step {}: `name` must be a string", j));
      step.name = s["name"].get<std::string>();
    }
    step.args = s.contains("args") ? s["args"] : json::object();
    if (!step.args.is_object()) return bad(fmt::format("step {}: `args` must be a mapping", j));
    if (!s.contains("inputs") || !s["inputs"].is_object())
      return bad(fmt::format("step {}: expected `inputs`, a mapping", j));
    for (auto& [port, ref] : s["inputs"].items()) {
      if (!ref.is_string()) return bad(fmt::format("step {}: input '{}' must be \"inK\" or \"tJ\"", j, port));
      step.inputs.push_back({port, ref.get<std::string>()});
    }
    steps.push_back(std::move(step));
  }
  if (error) error->clear();
  return steps;
}

json fused_body_json(const std::vector<FusedStep>& steps) {
  json body = json::array();
  for (auto& s : steps) {
    json ins = json::object();
    for (auto& [port, ref] : s.inputs) ins[port] = ref;
    body.push_back({{"op", s.op}, {"name", s.name}, {"args", s.args}, {"inputs", ins}});
  }
  return body;
}

namespace {

// "in3" -> 3 for prefix "in"; -1 when `ref` is not the prefix and digits.
int ref_index(const std::string& ref, const std::string& prefix) {
  if (ref.size() <= prefix.size() || ref.compare(0, prefix.size(), prefix) != 0) return -1;
  int k = 0;
  for (size_t c = prefix.size(); c < ref.size(); ++c) {
    if (!std::isdigit(static_cast<unsigned char>(ref[c])) || k > 1000000) return -1;
    k = k * 10 + (ref[c] - '0');
  }
  return k;
}

// A step's operands in its op's port order: per bound port, the external input (>= 0) or
// the earlier step (as -1 - J). Throws std::invalid_argument for a malformed step.
std::vector<int> step_operands(const FusedStep& s, size_t j, size_t num_inputs) {
  const OpDef* op = find_op(s.op);
  if (!op || !op->scalar)
    throw std::invalid_argument(fmt::format("step {} ('{}'): {} is not an op with an element expression", j, s.name, s.op));
  std::vector<int> by_port(op->inputs.size(), 0);
  std::vector<bool> bound(op->inputs.size(), false);
  for (auto& [port, ref] : s.inputs) {
    int p = op->input_index(port);
    if (p < 0) throw std::invalid_argument(fmt::format("step {} ('{}'): {} has no input '{}'", j, s.name, s.op, port));
    int in = ref_index(ref, "in"), t = ref_index(ref, "t");
    if (in >= 0 && static_cast<size_t>(in) < num_inputs) by_port[static_cast<size_t>(p)] = in;
    else if (t >= 0 && static_cast<size_t>(t) < j) by_port[static_cast<size_t>(p)] = -1 - t;
    else
      throw std::invalid_argument(
          fmt::format("step {} ('{}'): '{}' is neither an input of the node nor an earlier step", j, s.name, ref));
    bound[static_cast<size_t>(p)] = true;
  }
  std::vector<int> out;
  for (size_t p = 0; p < op->inputs.size(); ++p) {
    if (bound[p]) out.push_back(by_port[p]);
    else if (!op->inputs[p].optional)
      throw std::invalid_argument(
          fmt::format("step {} ('{}'): input '{}' of {} is not bound", j, s.name, op->inputs[p].name, s.op));
  }
  return out;
}

// The port names of a step's operands, in the order of step_operands.
std::vector<std::pair<std::string, std::vector<int>>> step_bindings(const FusedStep& s, const std::vector<int>& operands,
                                                                    const std::vector<int>& inputs,
                                                                    const std::vector<int>& results) {
  const OpDef& op = *find_op(s.op);
  std::vector<std::string> ports;
  for (auto& port : op.inputs)
    for (auto& [name, ref] : s.inputs)
      if (name == port.name) ports.push_back(name);
  std::vector<std::pair<std::string, std::vector<int>>> out;
  for (size_t k = 0; k < operands.size(); ++k) {
    int o = operands[k];
    out.push_back({ports[k], {o >= 0 ? inputs[static_cast<size_t>(o)] : results[static_cast<size_t>(-1 - o)]}});
  }
  return out;
}

// The type of every step's result, as the steps' own shape rules give it for the node's inputs
// (in a scratch graph). Throws std::invalid_argument for a malformed body, CompileError when a
// step's rule refuses its operands.
std::vector<Value> type_steps(const std::vector<FusedStep>& steps, const std::vector<const Value*>& inputs,
                              const SourceLoc& loc) {
  Graph scratch;
  std::vector<int> ins, results;
  for (const Value* v : inputs) {
    Value c;
    c.name = v->name;
    c.kind = ValueKind::Input;
    c.dtype = v->dtype;
    c.shape = v->shape;
    c.typed = true;
    ins.push_back(scratch.add_value(std::move(c)));
  }
  for (size_t j = 0; j < steps.size(); ++j) {
    std::vector<int> operands = step_operands(steps[j], j, inputs.size());
    auto outs = add_typed_node(scratch, steps[j].op, steps[j].name, loc, step_bindings(steps[j], operands, ins, results),
                               steps[j].args);
    results.push_back(outs.at(0));
  }
  std::vector<Value> types;
  for (int r : results) types.push_back(scratch.value(r));
  return types;
}

// The statements computing every step into a local `<t>J`, for the node's inputs' element
// expressions `elems` (of types `inputs`; `types` from type_steps).
std::vector<std::string> step_statements(const EmitContext& e, const std::vector<FusedStep>& steps,
                                         const std::vector<const Value*>& inputs, const std::vector<Value>& types,
                                         const std::vector<std::string>& elems, const std::string& t) {
  std::vector<std::string> out;
  for (size_t j = 0; j < steps.size(); ++j) {
    const FusedStep& s = steps[j];
    const OpDef& op = *find_op(s.op);
    // The step as a node of its own, so that its expression reads its arguments as usual.
    Node step;
    step.op = &op;
    step.name = s.name;
    step.loc = e.node().loc;
    step.attrs = resolve_args(op, s.args, {}, e.node().loc, s.name);
    step.inputs.resize(op.inputs.size());
    step.outputs.resize(op.outputs.size());
    std::string unused;
    EmitContext se(e.plan(), step, unused);
    std::vector<std::string> operands;
    std::vector<DType> dtypes;
    for (int o : step_operands(s, j, inputs.size())) {
      size_t k = static_cast<size_t>(o >= 0 ? o : -1 - o);
      operands.push_back(o >= 0 ? elems[k] : t + std::to_string(k));
      dtypes.push_back(o >= 0 ? inputs[k]->dtype : types[k].dtype);
    }
    out.push_back(fmt::format("const {} {}{} = {};  // {} ({})", EmitContext::ctype(types[j].dtype), t, j,
                              op.scalar(se, operands, dtypes), s.name, s.op));
  }
  return out;
}

void emit_fused(EmitContext& e) {
  const Node& n = e.node();
  const std::vector<FusedStep> steps = parse_fused_body(e.arg("body"));
  std::vector<const Value*> inputs;
  for (int v : n.inputs.at(0)) inputs.push_back(&e.plan().graph.value(v));
  const std::vector<Value> types = type_steps(steps, inputs, n.loc);
  // Locals t0, t1, ...: a prefix that no input's or the output's C++ name continues with digits only.
  std::string t = "t";
  auto clashes = [&] {
    return ref_index(e.y(), t) >= 0 ||
           std::any_of(inputs.begin(), inputs.end(), [&](const Value* v) { return ref_index(e.name(*v), t) >= 0; });
  };
  while (clashes()) t += "_";
  emit_elementwise_values(e, inputs, [&](const std::vector<std::string>& elems) {
    ElementwiseCode code;
    code.statements = step_statements(e, steps, inputs, types, elems, t);
    code.value = t + std::to_string(steps.size() - 1);
    return code;
  });
}

}  // namespace

bool emit_epilogue(EmitContext& e, const std::string& name) {
  const Node& n = e.node();
  if (!n.attrs.contains("epilogue")) return false;
  const std::vector<FusedStep> steps = parse_fused_body(n.attrs.at("epilogue"));
  // The raw result has the output's type (fuse-epilogue keeps only such chains).
  const Value& out = e.out();
  const std::vector<const Value*> inputs = {&out};
  const std::vector<Value> types = type_steps(steps, inputs, n.loc);
  e.line("const auto {} = []({} v) {{", name, EmitContext::ctype(out.dtype));
  for (auto& st : step_statements(e, steps, inputs, types, {"v"}, "t")) e.line("  {}", st);
  e.line("  return t{};", steps.size() - 1);
  e.line("}};");
  return true;
}

std::string epilogue_statements(EmitContext& e, const std::vector<const Value*>& inputs,
                                const std::vector<std::string>& elems, const std::string& indent) {
  const Node& n = e.node();
  const std::vector<FusedStep> steps = parse_fused_body(n.attrs.at("epilogue"));
  const std::vector<Value> types = type_steps(steps, inputs, n.loc);
  for (auto& st : step_statements(e, steps, inputs, types, elems, "t")) e.line("{}{}", indent, st);
  return "t" + std::to_string(steps.size() - 1);
}

MITHRIL_REGISTER_OPS(fused) {
  register_op(OpDef("FusedElementwise", "elementwise",
                    "a chain of elementwise ops in one loop (made by the fuse-elementwise pass); the output is the "
                    "last step's")
                  .in_list("inputs").out().trait("elementwise").trait("internal")
                  .arg("body", ArgType::Any, std::nullopt,
                       "the steps: [{op, name, args, inputs: {port: \"inK\" (input K) or \"tJ\" (step J)}}, ...]")
                  .emit("cpu", emit_fused).emit("cuda", emit_fused)
                  .rule([](InferContext& c) {
                    std::string error;
                    std::vector<FusedStep> steps = parse_fused_body(c.arg("body"), &error);
                    if (!error.empty()) c.fail_arg("body", "{}", error);
                    std::vector<const Value*> inputs;
                    for (size_t k = 0; k < c.count("inputs"); ++k) inputs.push_back(&c.in("inputs", k));
                    std::vector<Value> types;
                    try {
                      types = type_steps(steps, inputs, c.node().loc);
                    } catch (const std::invalid_argument& e) {
                      c.fail_arg("body", "{}", e.what());
                    }
                    c.out("output", types.back().dtype, types.back().shape);
                  }));
}

}  // namespace mithril
