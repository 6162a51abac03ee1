// The `mithril` command line. Thin: parses options, calls the library, prints.
#include <CLI/CLI.hpp>

#include <iostream>

#include "driver/check.h"
#include "ops/registry.h"

using namespace mithril;

namespace {

void print_warnings(const Graph& g) {
  for (auto& w : g.warnings) std::cerr << format_diagnostic(w.loc, "warning", w.message) << "\n";
}

json parse_arg_overrides(const std::vector<std::string>& items) {
  json out = json::object();
  for (auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      fail(SourceLoc{"--arg " + item, 0, 0}, "expected NAME=VALUE, e.g. --arg layers=4");
    std::string v = item.substr(eq + 1);
    json val;
    try {
      val = json::parse(v);
    } catch (...) {
      val = v;
    }
    out[item.substr(0, eq)] = val;
  }
  return out;
}

std::string op_help(const OpDef& op) {
  std::string s = fmt::format("{} ({}): {}\n", op.name, op.family, op.summary);
  for (auto& p : op.inputs)
    s += fmt::format("  in   {:<18} {}{}\n", p.name,
                     p.kind == PortKind::Param ? "parameter" : p.kind == PortKind::State ? "state" : "data",
                     std::string(p.optional ? ", optional" : "") + (p.variadic ? ", list" : ""));
  for (auto& p : op.outputs) s += fmt::format("  out  {:<18} {}\n", p.name, p.variadic ? "list" : "");
  for (auto& a : op.args) {
    std::string def = !a.default_value ? "required" : a.default_value->is_null() ? "optional" : "default " + a.default_value->dump();
    std::string choices = a.choices.empty() ? "" : fmt::format(" [{}]", fmt::join(a.choices, "|"));
    s += fmt::format("  arg  {:<18} {} ({}){}{}\n", a.name, arg_type_name(a.type), def, choices, a.doc.empty() ? "" : ": " + a.doc);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "mithril: an ahead-of-time model compiler.\n"
      "Describe a model once in a YAML or JSON file; mithril checks it, infers every shape and\n"
      "generates standalone code for it.\n\n"
      "  mithril check samples/mlp.yaml                  summary: layers, shapes, parameters\n"
      "  mithril check samples/mlp.yaml --shape input=64,784\n"
      "  mithril ops                                     every op with its ports and arguments\n\n"
      "Docs: docs/format.md (the model format), docs/cli.md (commands), docs/ops.md (ops)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("mithril ") + MITHRIL_VERSION);

  // check
  auto* check = app.add_subcommand("check", "Check a model: flatten, infer shapes and dtypes, print a summary.");
  std::string model_path;
  std::vector<std::string> shapes, arg_overrides, no_pass;
  bool as_json = false, show_ir = false;
  std::string dump_after;
  check->add_option("MODEL", model_path, "model file (.yaml, .yml or .json)")->required();
  check->add_option("--shape", shapes,
                    "bind an input's shape (input=64,784) or one symbolic dim (N=64); repeatable")
      ->type_name("NAME=DIMS");
  check->add_option("--arg", arg_overrides, "override an argument of the main model (layers=4); repeatable")
      ->type_name("NAME=VALUE");
  check->add_flag("--json", as_json, "print the summary as JSON");
  check->add_flag("--ir", show_ir, "print the final graph IR instead of the summary");
  check->add_option("--dump-ir", dump_after, "print the graph IR after pass NAME (bind-shapes, order, infer-shapes)")
      ->type_name("PASS");
  check->add_option("--no-pass", no_pass, "switch off an optional pass; repeatable")->type_name("PASS");

  // ops
  auto* ops = app.add_subcommand("ops", "List the primitive ops, or describe one.");
  std::string op_name;
  ops->add_option("NAME", op_name, "show one op's ports and arguments");

  CLI11_PARSE(app, argc, argv);

  try {
    if (*check) {
      CheckOptions opts;
      for (auto& s : shapes) parse_shape_binding(s, opts.pipeline.shapes);
      opts.flatten.args = parse_arg_overrides(arg_overrides);
      opts.pipeline.disabled = no_pass;
      opts.pipeline.dump_after = dump_after;
      opts.pipeline.on_dump = [](const std::string& pass, const Graph& g) {
        std::cout << "// IR after " << pass << "\n" << dump_ir(g);
      };
      Graph g = check_model(model_path, opts);
      print_warnings(g);
      if (!dump_after.empty()) return 0;
      if (as_json) std::cout << summary_json(g).dump(2) << "\n";
      else if (show_ir) std::cout << dump_ir(g);
      else std::cout << summary_table(g);
      return 0;
    }
    if (*ops) {
      if (!op_name.empty()) {
        const OpDef* op = find_op(op_name);
        if (!op) fail(SourceLoc{}, "unknown op '{}'{}", op_name, did_you_mean(op_name, op_names()));
        std::cout << op_help(*op);
        return 0;
      }
      std::string family;
      for (auto* op : all_ops()) {
        if (op->family != family) std::cout << (family.empty() ? "" : "\n") << op->family << ":\n";
        family = op->family;
        std::cout << fmt::format("  {:<26}{}\n", op->name, op->summary);
      }
      return 0;
    }
  } catch (const CompileError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: internal compiler error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
