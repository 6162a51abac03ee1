#include "helpers.h"

#include "codegen/project.h"
#include "codegen/plan.h"

#include <map>

#include "frontend/document.h"

namespace mithril::test {

std::string generated_source(const ProgramPlan& p, const std::string& name) {
  for (auto& f : emit_cpu_project(p, {name, name + ".yaml", "", false}))
    if (f.path == name + ".cpp") return f.text;
  FAIL("no " << name << ".cpp was generated");
  return "";
}

Graph check_text(const std::string& text, const std::vector<std::string>& shapes, const std::string& name) {
  bool is_json = name.size() > 5 && name.substr(name.size() - 5) == ".json";
  Program prog = program_from_model(parse_model(parse_document(text, name, is_json), "test"));
  CheckOptions opts;
  for (auto& s : shapes) parse_shape_binding(s, opts.pipeline.shapes);
  return check_program(prog, opts);
}

std::string check_error(const std::string& text, const std::vector<std::string>& shapes) {
  try {
    check_text(text, shapes);
  } catch (const CompileError& e) {
    return e.what();
  }
  return "";
}

std::string type_of(const Graph&, const Value& v) { return type_str(v.dtype, v.shape); }

std::string output_type(const Graph& g, const std::string& output) {
  for (size_t i = 0; i < g.outputs.size(); ++i)
    if (g.output_names[i] == output) return type_of(g, g.value(g.outputs[i]));
  FAIL("no output " << output);
  return "";
}

// "float32[N, 3]" -> {shape: [N, 3], dtype: float32}
static std::string decl_of(const std::string& type) {
  auto lb = type.find('[');
  REQUIRE(lb != std::string::npos);
  return fmt::format("{{shape: {}, dtype: {}}}", type.substr(lb), type.substr(0, lb));
}

static std::string op_model(const std::string& op, const std::string& args_yaml,
                            const std::vector<std::pair<std::string, std::string>>& inputs, int num_outputs) {
  std::string decls, outs;
  std::map<std::string, std::vector<std::string>> ports;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string name = fmt::format("x{}", i);
    decls += fmt::format("  {}: {}\n", name, decl_of(inputs[i].second));
    ports[inputs[i].first].push_back(name);
  }
  std::string bindings;
  const OpDef* def = find_op(op);
  for (auto& [port, names] : ports) {
    bool list = def && def->input_index(port) >= 0 && def->inputs[def->input_index(port)].variadic;
    bindings += list ? fmt::format(", {}: [{}]", port, fmt::join(names, ", ")) : fmt::format(", {}: {}", port, names[0]);
  }
  std::vector<std::string> out_names;
  for (int i = 0; i < num_outputs; ++i) out_names.push_back(fmt::format("y{}", i));
  std::string out_port = def && !def->outputs.empty() ? def->outputs[0].name : "output";
  bool out_list = def && !def->outputs.empty() && def->outputs[0].variadic;
  if (out_list) bindings += fmt::format(", {}: [{}]", out_port, fmt::join(out_names, ", "));
  else if (def) {
    for (size_t i = 0; i < def->outputs.size() && i < out_names.size(); ++i)
      bindings += fmt::format(", {}: {}", def->outputs[i].name, out_names[i]);
  }
  std::string args = args_yaml.empty() ? "" : fmt::format(", args: {}", args_yaml);
  return fmt::format("name: op_test\ninputs:\n{}outputs: [{}]\nlayers:\n  - {{op: {}{}{}}}\n", decls,
                     fmt::join(out_names, ", "), op, args, bindings);
}

std::vector<std::string> infer_op(const std::string& op, const std::string& args_yaml,
                                  const std::vector<std::pair<std::string, std::string>>& inputs, int num_outputs) {
  Graph g = check_text(op_model(op, args_yaml, inputs, num_outputs));
  std::vector<std::string> out;
  for (int id : g.outputs) out.push_back(type_of(g, g.value(id)));
  return out;
}

std::string infer_op_error(const std::string& op, const std::string& args_yaml,
                           const std::vector<std::pair<std::string, std::string>>& inputs, int num_outputs) {
  try {
    infer_op(op, args_yaml, inputs, num_outputs);
  } catch (const CompileError& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> op_params(const std::string& op, const std::string& args_yaml,
                                   const std::vector<std::pair<std::string, std::string>>& inputs) {
  Graph g = check_text(op_model(op, args_yaml, inputs, 1));
  std::vector<std::string> out;
  for (ValueKind k : {ValueKind::Param, ValueKind::State})
    for (int id : g.values_of_kind(k)) out.push_back(g.value(id).name + ": " + type_of(g, g.value(id)));
  return out;
}

}  // namespace mithril::test
