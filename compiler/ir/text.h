// The IR as text, both ways: `mithril check --ir` and `--dump-ir` print it, `mithril opt FILE.mir`
// and the golden pass tests (tests/passes/*.mir) read it back. docs/ir.md describes the format:
//
//   graph mlp {
//     %0 = input "input" : [N, 784]
//     %1 = temp "output" : [N, 10]
//     %6 = param "0.weight" : [512, 784] init {"kind":"kaiming_uniform","fan_in":784}
//     %2 = Linear(%0:input, %6:weight, %7:bias) {"dimension":512,"bias":true} : [N, 512]  # 0
//     ...
//     return output=%1
//   }
//
// print_ir writes everything a Graph holds that later passes and code generation read (values with
// their kind, dtype, shape, name and initializer; nodes with op, instance name, arguments and ports;
// fused bodies, which live in the arguments; the graph's inputs, outputs, bindings and backward-pass
// bookkeeping); source locations and warnings are left out. parse_ir reads it back:
// print_ir(parse_ir(print_ir(g))) == print_ir(g). Strings are JSON strings (quoted, escaped).
//
// The IR layer does not know ops: the caller gives an OpTable (the op layer's registry; passes.h has
// the one for the compiler's ops), which names an op and its ports and finds an op by name.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace mithril {

struct OpSignature {
  std::string name;
  std::vector<std::string> inputs, outputs;  // port names in order
};

struct OpTable {
  std::function<OpSignature(const OpDef&)> signature;
  std::function<const OpDef*(const std::string& name)> find;  // nullptr: no such op
  // Names of every op, for "did you mean" in errors (optional).
  std::function<std::vector<std::string>()> names;
};

std::string print_ir(const Graph& g, const OpTable& ops);
// Throws CompileError (`FILE:LINE:COL: error: ...`) on malformed text or an unknown op or port.
// The result is not verified: run verify_graph (passes.h) on it.
Graph parse_ir(const std::string& text, const std::string& file, const OpTable& ops);

// A string as the text form writes it: a JSON string, UTF-8 kept, control characters escaped.
std::string quote_ir_string(const std::string& s);

}  // namespace mithril
