// Elementwise ops: unary math and activations, binary arithmetic with NumPy
// broadcasting, comparisons, Where, Clip and Cast. Each family is a table, one
// row per op; the rows are where later targets add their C expressions and
// derivative rules.
#include "ops/registry.h"

namespace mithril {
namespace {

enum class Domain { Float, Numeric, Any };  // dtypes an op accepts

struct UnaryRow {
  const char* name;
  Domain domain;
  const char* summary;
  std::vector<ArgSpec> args;
};

const std::vector<UnaryRow>& unary_rows() {
  static const std::vector<UnaryRow> rows = {
      {"Neg", Domain::Numeric, "-x", {}},
      {"Abs", Domain::Numeric, "|x|", {}},
      {"Exp", Domain::Float, "e^x", {}},
      {"Log", Domain::Float, "natural logarithm", {}},
      {"Sqrt", Domain::Float, "square root", {}},
      {"Rsqrt", Domain::Float, "1 / sqrt(x)", {}},
      {"Reciprocal", Domain::Float, "1 / x", {}},
      {"Sin", Domain::Float, "sine", {}},
      {"Cos", Domain::Float, "cosine", {}},
      {"Tanh", Domain::Float, "hyperbolic tangent", {}},
      {"Sigmoid", Domain::Float, "1 / (1 + e^-x)", {}},
      {"Relu", Domain::Numeric, "max(x, 0)", {}},
      {"LeakyRelu", Domain::Float, "x if x > 0 else negative_slope * x",
       {{"negative_slope", ArgType::Float, json(0.01), {}, "slope for x < 0"}}},
      {"Elu", Domain::Float, "x if x > 0 else alpha * (e^x - 1)", {{"alpha", ArgType::Float, json(1.0), {}, ""}}},
      {"Gelu", Domain::Float, "x * Phi(x); approximate: tanh uses the tanh formula",
       {{"approximate", ArgType::String, json("none"), {"none", "tanh"}, "none (exact, erf) or tanh"}}},
      {"Silu", Domain::Float, "x * sigmoid(x)", {}},
      {"Softplus", Domain::Float, "log(1 + e^(beta x)) / beta; linear above threshold",
       {{"beta", ArgType::Float, json(1.0), {}, ""}, {"threshold", ArgType::Float, json(20.0), {}, ""}}},
      {"Erf", Domain::Float, "error function", {}},
      {"Sign", Domain::Numeric, "-1, 0 or 1", {}},
      {"Floor", Domain::Float, "round down", {}},
      {"Ceil", Domain::Float, "round up", {}},
      {"Clip", Domain::Numeric, "clamp to [min, max]; either bound may be omitted",
       {{"min", ArgType::Float, json(nullptr), {}, "lower bound"}, {"max", ArgType::Float, json(nullptr), {}, "upper bound"}}},
      {"Identity", Domain::Any, "x", {}},
      {"StopGradient", Domain::Any, "x in the forward pass; no gradient flows through it", {}},
  };
  return rows;
}

void check_domain(InferContext& c, const std::string& port, Domain d) {
  if (d == Domain::Float) c.expect_float(port);
  if (d == Domain::Numeric) c.expect_numeric(port);
}

enum class BinaryResult { SameAsInputs, Bool };

struct BinaryRow {
  const char* name;
  Domain domain;
  BinaryResult result;
  bool commutative;
  const char* summary;
};

const std::vector<BinaryRow>& binary_rows() {
  static const std::vector<BinaryRow> rows = {
      {"Add", Domain::Numeric, BinaryResult::SameAsInputs, true, "left + right"},
      {"Subtract", Domain::Numeric, BinaryResult::SameAsInputs, false, "left - right"},
      {"Multiply", Domain::Numeric, BinaryResult::SameAsInputs, true, "left * right"},
      {"Divide", Domain::Numeric, BinaryResult::SameAsInputs, false, "left / right (integers: truncating)"},
      {"Power", Domain::Float, BinaryResult::SameAsInputs, false, "left ^ right"},
      {"Maximum", Domain::Numeric, BinaryResult::SameAsInputs, true, "elementwise max"},
      {"Minimum", Domain::Numeric, BinaryResult::SameAsInputs, true, "elementwise min"},
      {"Greater", Domain::Numeric, BinaryResult::Bool, false, "left > right"},
      {"GreaterEqual", Domain::Numeric, BinaryResult::Bool, false, "left >= right"},
      {"Less", Domain::Numeric, BinaryResult::Bool, false, "left < right"},
      {"LessEqual", Domain::Numeric, BinaryResult::Bool, false, "left <= right"},
      {"Equal", Domain::Any, BinaryResult::Bool, true, "left == right"},
      {"NotEqual", Domain::Any, BinaryResult::Bool, true, "left != right"},
      {"And", Domain::Any, BinaryResult::SameAsInputs, true, "logical and of bools"},
      {"Or", Domain::Any, BinaryResult::SameAsInputs, true, "logical or of bools"},
  };
  return rows;
}

}  // namespace

MITHRIL_REGISTER_OPS(elementwise) {
  for (const auto& row : unary_rows()) {
    OpDef d(row.name, "elementwise", row.summary);
    d.in("input").out().trait("elementwise");
    for (auto& a : row.args) d.args.push_back(a);
    Domain domain = row.domain;
    d.rule([domain](InferContext& c) {
      check_domain(c, "input", domain);
      if (c.op().name == "Clip" && !c.is_null("min") && !c.is_null("max") && c.f("min") > c.f("max"))
        c.fail_arg("min", "min {} is greater than max {}", c.f("min"), c.f("max"));
      c.out("output", c.dtype("input"), c.shape("input"));
    });
    register_op(std::move(d));
  }

  for (const auto& row : binary_rows()) {
    OpDef d(row.name, "elementwise", row.summary);
    d.in("left").in("right").out().trait("elementwise").trait("broadcast");
    if (row.commutative) d.trait("commutative");
    Domain domain = row.domain;
    BinaryResult result = row.result;
    bool logical = std::string(row.name) == "And" || std::string(row.name) == "Or";
    d.rule([domain, result, logical](InferContext& c) {
      check_domain(c, "left", domain);
      check_domain(c, "right", domain);
      c.expect_same_dtype("left", "right");
      if (logical && c.dtype("left") != DType::boolean)
        c.fail("'left' and 'right' must be bool, found {}", type_str(c.dtype("left"), c.shape("left")));
      Shape s = c.broadcast(c.shape("left"), c.shape("right"), "'left' and 'right' of shapes");
      c.out("output", result == BinaryResult::Bool ? DType::boolean : c.dtype("left"), s);
    });
    register_op(std::move(d));
  }

  register_op(OpDef("Not", "elementwise", "logical not of a bool tensor")
                  .in("input").out().trait("elementwise")
                  .rule([](InferContext& c) {
                    if (c.dtype("input") != DType::boolean)
                      c.fail("'input' must be bool, found {}", type_str(c.dtype("input"), c.shape("input")));
                    c.out("output", DType::boolean, c.shape("input"));
                  }));

  register_op(OpDef("Where", "elementwise", "condition ? left : right, with broadcasting")
                  .in("condition").in("left").in("right").out().trait("elementwise").trait("broadcast")
                  .rule([](InferContext& c) {
                    if (c.dtype("condition") != DType::boolean)
                      c.fail("'condition' must be bool, found {}", type_str(c.dtype("condition"), c.shape("condition")));
                    c.expect_same_dtype("left", "right");
                    Shape s = c.broadcast(c.shape("left"), c.shape("right"), "'left' and 'right' of shapes");
                    s = c.broadcast(c.shape("condition"), s, "'condition' and the values of shapes");
                    c.out("output", c.dtype("left"), s);
                  }));

  register_op(OpDef("Cast", "elementwise", "convert to another dtype")
                  .in("input").out().trait("elementwise")
                  .arg("dtype", ArgType::Dtype, std::nullopt, "target dtype")
                  .rule([](InferContext& c) { c.out("output", *parse_dtype(c.s("dtype")), c.shape("input")); }));
}

}  // namespace mithril
