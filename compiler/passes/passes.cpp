// The pass pipeline's helpers for `mithril opt` and --verify-each, and the IR's text form bound to
// the op registry (passes.h).
#include <cstdlib>
#include <stdexcept>

#include "ops/registry.h"
#include "passes/passes.h"

namespace mithril {

bool verify_each_from_env() {
  const char* v = std::getenv("MITHRIL_VERIFY_EACH");
  return v && *v && std::string(v) != "0";
}

void verify_after(const Graph& g, const std::string& pass) {
  try {
    verify_graph(g);
  } catch (const std::logic_error& e) {
    throw std::logic_error(fmt::format("pass '{}' broke the IR: {}", pass, e.what()));
  }
}

static PipelineOptions every_pass(PipelineOptions opts) {
  static const TrainSpec default_spec;
  opts.codegen = true;
  opts.grad.enabled = true;
  if (!opts.train) opts.train = &default_spec;
  return opts;
}

std::vector<std::string> opt_pass_names() {
  std::vector<std::string> out;
  for (auto& p : frontend_passes(every_pass({})))
    if (p.name != "bind-shapes") out.push_back(p.name);
  return out;
}

Pass find_opt_pass(const std::string& name, const PipelineOptions& opts) {
  for (auto& p : frontend_passes(every_pass(opts)))
    if (p.name == name && p.name != "bind-shapes") return p;
  auto names = opt_pass_names();
  fail(SourceLoc{"--pass " + name, 0, 0}, "no pass named '{}'{}; passes: {}", name, did_you_mean(name, names),
       fmt::join(names, ", "));
}

const OpTable& op_table() {
  static const OpTable table{
      [](const OpDef& op) {
        OpSignature s{op.name, {}, {}};
        for (auto& p : op.inputs) s.inputs.push_back(p.name);
        for (auto& p : op.outputs) s.outputs.push_back(p.name);
        return s;
      },
      [](const std::string& name) { return find_op(name); },
      [] { return op_names(); },
  };
  return table;
}

std::string print_ir(const Graph& g) { return print_ir(g, op_table()); }
std::string dump_ir(const Graph& g) { return print_ir(g, op_table()); }
Graph parse_ir(const std::string& text, const std::string& file) { return parse_ir(text, file, op_table()); }

}  // namespace mithril
