// Test helpers: check model text through the whole front end, and run one op
// on declared input types.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "driver/check.h"
#include "frontend/model.h"
#include "passes/passes.h"
#include "ops/registry.h"

namespace mithril {
struct ProgramPlan;
}

namespace mithril::test {

// The generated NAME.cpp of a planned program (CPU target); fails the test when there is none.
std::string generated_source(const ProgramPlan& p, const std::string& name);

// Check YAML (or JSON) model text; `name` shows in locations. Throws CompileError.
Graph check_text(const std::string& text, const std::vector<std::string>& shapes = {}, const std::string& name = "test.yaml");

// The message of the CompileError thrown by checking `text` ("" if none is thrown),
// formatted as the CLI prints it: "test.yaml:LINE:COL: error: ...".
std::string check_error(const std::string& text, const std::vector<std::string>& shapes = {});

// "float32[N, 10]"
std::string type_of(const Graph& g, const Value& v);
std::string output_type(const Graph& g, const std::string& output = "output");

// One op on typed inputs. `inputs` pairs a port with a type such as "float32[N, 3, 32, 32]"
// or "int64[N]"; a port listed more than once becomes a list binding (Concat). Returns the
// type of every output in port order, e.g. {"float32[N, 16, 32, 32]"}. Throws CompileError.
std::vector<std::string> infer_op(const std::string& op, const std::string& args_yaml,
                                  const std::vector<std::pair<std::string, std::string>>& inputs, int num_outputs = 1);
// The error message infer_op would throw ("" if it succeeds).
std::string infer_op_error(const std::string& op, const std::string& args_yaml,
                           const std::vector<std::pair<std::string, std::string>>& inputs, int num_outputs = 1);

// The parameters a single op creates, as "name: float32[16, 3, 3, 3]" lines in order.
std::vector<std::string> op_params(const std::string& op, const std::string& args_yaml,
                                   const std::vector<std::pair<std::string, std::string>>& inputs);

}  // namespace mithril::test
