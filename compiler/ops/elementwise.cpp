// Elementwise ops: unary math and activations, binary arithmetic with NumPy
// broadcasting, comparisons, Where, Clip and Cast. Each family is a table, one
// row per op; the rows are where later targets add their C expressions and
// derivative rules.
#include "ops/emit.h"
#include "ops/fold.h"
#include "ops/grad.h"
#include "ops/registry.h"

namespace mithril {
namespace {

enum class Domain { Float, Numeric, Any };  // dtypes an op accepts

// A row's C++ expression: `x` is the element, `T` its C++ type.
using UnaryCpu = std::function<std::string(const EmitContext& e, const std::string& x, const std::string& T)>;

// The derivative f'(x) as a C++ expression of the input element `x` and/or the output element `y`.
enum class Uses { Nothing, X, Y };
struct Deriv {
  Uses uses = Uses::Nothing;  // Nothing: no gradient rule (see `grad` below)
  UnaryCpu expr;              // called with (x or y, T)
};

struct UnaryRow {
  const char* name;
  Domain domain;
  const char* summary;
  std::vector<ArgSpec> args;
  UnaryCpu cpu;
  Deriv deriv = {};
  // How gradients pass: "deriv" (dx = dy * f'), "zero" (piecewise constant: Sign, Floor, Ceil),
  // "identity" (dx = dy), "negate" (dx = -dy) or "none" (StopGradient).
  const char* grad = "deriv";
};

std::string num(double v) { return cpp_number(v); }

const std::vector<UnaryRow>& unary_rows() {
  using S = const std::string&;
  static const std::vector<UnaryRow> rows = {
      {"Neg", Domain::Numeric, "-x", {}, [](auto&, S x, S) { return "-" + x; }, {}, "negate"},
      {"Abs", Domain::Numeric, "|x|", {}, [](auto&, S x, S T) { return fmt::format("({0} < {1}(0) ? -{0} : {0})", x, T); },
       {Uses::X, [](auto&, S x, S T) { return fmt::format("{1}(({1}(0) < {0}) - ({0} < {1}(0)))", x, T); }}},
      {"Exp", Domain::Float, "e^x", {}, [](auto&, S x, S) { return "std::exp(" + x + ")"; }, {Uses::Y, [](auto&, S y, S) { return y; }}},
      {"Log", Domain::Float, "natural logarithm", {}, [](auto&, S x, S) { return "std::log(" + x + ")"; },
       {Uses::X, [](auto&, S x, S T) { return fmt::format("{}(1) / {}", T, x); }}},
      {"Sqrt", Domain::Float, "square root", {}, [](auto&, S x, S) { return "std::sqrt(" + x + ")"; },
       {Uses::Y, [](auto&, S y, S T) { return fmt::format("{}(0.5) / {}", T, y); }}},
      {"Rsqrt", Domain::Float, "1 / sqrt(x)", {}, [](auto&, S x, S T) { return fmt::format("{}(1) / std::sqrt({})", T, x); },
       {Uses::Y, [](auto&, S y, S T) { return fmt::format("{1}(-0.5) * {0} * {0} * {0}", y, T); }}},
      {"Reciprocal", Domain::Float, "1 / x", {}, [](auto&, S x, S T) { return fmt::format("{}(1) / {}", T, x); },
       {Uses::Y, [](auto&, S y, S) { return fmt::format("-{0} * {0}", y); }}},
      {"Sin", Domain::Float, "sine", {}, [](auto&, S x, S) { return "std::sin(" + x + ")"; }, {Uses::X, [](auto&, S x, S) { return "std::cos(" + x + ")"; }}},
      {"Cos", Domain::Float, "cosine", {}, [](auto&, S x, S) { return "std::cos(" + x + ")"; }, {Uses::X, [](auto&, S x, S) { return "-std::sin(" + x + ")"; }}},
      {"Tanh", Domain::Float, "hyperbolic tangent", {}, [](auto&, S x, S) { return "std::tanh(" + x + ")"; },
       {Uses::Y, [](auto&, S y, S T) { return fmt::format("({1}(1) - {0} * {0})", y, T); }}},
      {"Sigmoid", Domain::Float, "1 / (1 + e^-x)", {}, [](auto&, S x, S T) { return fmt::format("{0}(1) / ({0}(1) + rt::k::exp_(-{1}))", T, x); },
       {Uses::Y, [](auto&, S y, S T) { return fmt::format("{0} * ({1}(1) - {0})", y, T); }}},
      {"Relu", Domain::Numeric, "max(x, 0); NaN stays NaN", {}, [](auto&, S x, S T) { return fmt::format("({0} < {1}(0) ? {1}(0) : {0})", x, T); },
       {Uses::X, [](auto&, S x, S T) { return fmt::format("({0} > {1}(0) ? {1}(1) : {1}(0))", x, T); }}},
      {"LeakyRelu", Domain::Float, "x if x > 0 else negative_slope * x",
       {{"negative_slope", ArgType::Float, json(0.01), {}, "slope for x < 0"}},
       [](auto& e, S x, S T) { return fmt::format("({0} > {1}(0) ? {0} : {1}({2}) * {0})", x, T, num(e.f("negative_slope"))); },
       {Uses::X, [](auto& e, S x, S T) { return fmt::format("({0} > {1}(0) ? {1}(1) : {1}({2}))", x, T, num(e.f("negative_slope"))); }}},
      {"Elu", Domain::Float, "x if x > 0 else alpha * (e^x - 1)", {{"alpha", ArgType::Float, json(1.0), {}, ""}},
       [](auto& e, S x, S T) { return fmt::format("({0} > {1}(0) ? {0} : {1}({2}) * std::expm1({0}))", x, T, num(e.f("alpha"))); },
       {Uses::X, [](auto& e, S x, S T) { return fmt::format("({0} > {1}(0) ? {1}(1) : {1}({2}) * std::exp({0}))", x, T, num(e.f("alpha"))); }}},
      {"Gelu", Domain::Float, "x * Phi(x); approximate: tanh uses the tanh formula",
       {{"approximate", ArgType::String, json("none"), {"none", "tanh"}, "none (exact, erf) or tanh"}},
       // kernels/scalar.h: call-free in float, so the loops vectorize.
       [](auto& e, S x, S) { return fmt::format("rt::k::{}({})", e.s("approximate") == "tanh" ? "gelu_tanh" : "gelu", x); },
       {Uses::X, [](auto& e, S x, S) {
          return fmt::format("rt::k::{}({})", e.s("approximate") == "tanh" ? "gelu_tanh_grad" : "gelu_grad", x);
        }}},
      {"Silu", Domain::Float, "x * sigmoid(x)", {}, [](auto&, S x, S T) { return fmt::format("{0} / ({1}(1) + rt::k::exp_(-{0}))", x, T); },
       {Uses::X, [](auto&, S x, S T) {
          return fmt::format("[&] {{ const {1} s_ = {1}(1) / ({1}(1) + rt::k::exp_(-{0})); return s_ * ({1}(1) + {0} * ({1}(1) - s_)); }}()", x, T);
        }}},
      {"Softplus", Domain::Float, "log(1 + e^(beta x)) / beta; linear above threshold",
       {{"beta", ArgType::Float, json(1.0), {}, ""}, {"threshold", ArgType::Float, json(20.0), {}, ""}},
       [](auto& e, S x, S T) {
         return fmt::format("({1}({2}) * {0} > {1}({3}) ? {0} : std::log1p(std::exp({1}({2}) * {0})) / {1}({2}))", x, T,
                            num(e.f("beta")), num(e.f("threshold")));
       },
       {Uses::X, [](auto& e, S x, S T) {
          return fmt::format("({1}({2}) * {0} > {1}({3}) ? {1}(1) : {1}(1) / ({1}(1) + std::exp(-{1}({2}) * {0})))", x, T, num(e.f("beta")),
                             num(e.f("threshold")));
        }}},
      {"Erf", Domain::Float, "error function", {}, [](auto&, S x, S) { return "std::erf(" + x + ")"; },
       {Uses::X, [](auto&, S x, S T) { return fmt::format("{1}(1.1283791670955126) * std::exp(-{0} * {0})", x, T); }}},
      {"Sign", Domain::Numeric, "-1, 0 or 1", {}, [](auto&, S x, S T) { return fmt::format("{1}(({1}(0) < {0}) - ({0} < {1}(0)))", x, T); }, {}, "zero"},
      {"Floor", Domain::Float, "round down", {}, [](auto&, S x, S) { return "std::floor(" + x + ")"; }, {}, "zero"},
      {"Ceil", Domain::Float, "round up", {}, [](auto&, S x, S) { return "std::ceil(" + x + ")"; }, {}, "zero"},
      {"Clip", Domain::Numeric, "clamp to [min, max]; either bound may be omitted",
       {{"min", ArgType::Float, json(nullptr), {}, "lower bound"}, {"max", ArgType::Float, json(nullptr), {}, "upper bound"}},
       [](auto& e, S x, S T) {
         std::string r = x;
         if (!e.arg("min").is_null()) r = fmt::format("std::max({}, {}({}))", r, T, num(e.f("min")));
         if (!e.arg("max").is_null()) r = fmt::format("std::min({}, {}({}))", r, T, num(e.f("max")));
         return r;
       },
       {Uses::X, [](auto& e, S x, S T) {  // as torch.clamp: the gradient passes where min <= x <= max
          std::string c = "true";
          if (!e.arg("min").is_null()) c += fmt::format(" && {} >= {}({})", x, T, num(e.f("min")));
          if (!e.arg("max").is_null()) c += fmt::format(" && {} <= {}({})", x, T, num(e.f("max")));
          return fmt::format("(({}) ? {}(1) : {}(0))", c, T, T);
        }}},
      {"Identity", Domain::Any, "x", {}, [](auto&, S x, S) { return x; }, {}, "identity"},
      {"StopGradient", Domain::Any, "x in the forward pass; no gradient flows through it", {}, [](auto&, S x, S) { return x; }, {}, "none"},
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
  const char* cpu;  // {0}: left element, {1}: right element
};

const std::vector<BinaryRow>& binary_rows() {
  static const std::vector<BinaryRow> rows = {
      {"Add", Domain::Numeric, BinaryResult::SameAsInputs, true, "left + right", "{0} + {1}"},
      {"Subtract", Domain::Numeric, BinaryResult::SameAsInputs, false, "left - right", "{0} - {1}"},
      {"Multiply", Domain::Numeric, BinaryResult::SameAsInputs, true, "left * right", "{0} * {1}"},
      {"Divide", Domain::Numeric, BinaryResult::SameAsInputs, false, "left / right (integers: truncating)", "{0} / {1}"},
      {"Power", Domain::Float, BinaryResult::SameAsInputs, false, "left ^ right", "std::pow({0}, {1})"},
      {"Maximum", Domain::Numeric, BinaryResult::SameAsInputs, true, "elementwise max", "std::max({0}, {1})"},
      {"Minimum", Domain::Numeric, BinaryResult::SameAsInputs, true, "elementwise min", "std::min({0}, {1})"},
      {"Greater", Domain::Numeric, BinaryResult::Bool, false, "left > right", "{0} > {1}"},
      {"GreaterEqual", Domain::Numeric, BinaryResult::Bool, false, "left >= right", "{0} >= {1}"},
      {"Less", Domain::Numeric, BinaryResult::Bool, false, "left < right", "{0} < {1}"},
      {"LessEqual", Domain::Numeric, BinaryResult::Bool, false, "left <= right", "{0} <= {1}"},
      {"Equal", Domain::Any, BinaryResult::Bool, true, "left == right", "{0} == {1}"},
      {"NotEqual", Domain::Any, BinaryResult::Bool, true, "left != right", "{0} != {1}"},
      {"And", Domain::Any, BinaryResult::SameAsInputs, true, "logical and of bools", "{0} && {1}"},
      {"Or", Domain::Any, BinaryResult::SameAsInputs, true, "logical or of bools", "{0} || {1}"},
  };
  return rows;
}

// Constant folding (OpDef::fold, the `fold` pass): each row's function of one element in double
// (the pass rounds results to the output's dtype: integer division truncates there), by row name.
using UnaryEval = std::function<double(const json& attrs, double x)>;
const std::map<std::string, UnaryEval>& unary_evals() {
  using A = const json&;
  static const std::map<std::string, UnaryEval> evals = {
      {"Neg", [](A, double x) { return -x; }},
      {"Abs", [](A, double x) { return std::fabs(x); }},
      {"Exp", [](A, double x) { return std::exp(x); }},
      {"Log", [](A, double x) { return std::log(x); }},
      {"Sqrt", [](A, double x) { return std::sqrt(x); }},
      {"Rsqrt", [](A, double x) { return 1 / std::sqrt(x); }},
      {"Reciprocal", [](A, double x) { return 1 / x; }},
      {"Sin", [](A, double x) { return std::sin(x); }},
      {"Cos", [](A, double x) { return std::cos(x); }},
      {"Tanh", [](A, double x) { return std::tanh(x); }},
      {"Sigmoid", [](A, double x) { return 1 / (1 + std::exp(-x)); }},
      {"Relu", [](A, double x) { return x < 0 ? 0.0 : x; }},
      {"LeakyRelu", [](A a, double x) { return x > 0 ? x : a.at("negative_slope").get<double>() * x; }},
      {"Elu", [](A a, double x) { return x > 0 ? x : a.at("alpha").get<double>() * std::expm1(x); }},
      {"Gelu", [](A a, double x) {
         if (a.at("approximate") == "tanh")
           return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
         return 0.5 * x * (1 + std::erf(x * 0.7071067811865476));
       }},
      {"Silu", [](A, double x) { return x / (1 + std::exp(-x)); }},
      {"Softplus", [](A a, double x) {
         double beta = a.at("beta").get<double>();
         return beta * x > a.at("threshold").get<double>() ? x : std::log1p(std::exp(beta * x)) / beta;
       }},
      {"Erf", [](A, double x) { return std::erf(x); }},
      {"Sign", [](A, double x) { return static_cast<double>((0 < x) - (x < 0)); }},
      {"Floor", [](A, double x) { return std::floor(x); }},
      {"Ceil", [](A, double x) { return std::ceil(x); }},
      {"Clip", [](A a, double x) {
         if (!a.at("min").is_null()) x = std::max(x, a.at("min").get<double>());
         if (!a.at("max").is_null()) x = std::min(x, a.at("max").get<double>());
         return x;
       }},
      {"Identity", [](A, double x) { return x; }},
      {"StopGradient", [](A, double x) { return x; }},
  };
  return evals;
}

using BinaryEval = double (*)(double, double);
const std::map<std::string, BinaryEval>& binary_evals() {
  static const std::map<std::string, BinaryEval> evals = {
      {"Add", [](double a, double b) { return a + b; }},
      {"Subtract", [](double a, double b) { return a - b; }},
      {"Multiply", [](double a, double b) { return a * b; }},
      {"Divide", [](double a, double b) { return a / b; }},
      {"Power", [](double a, double b) { return std::pow(a, b); }},
      {"Maximum", [](double a, double b) { return std::max(a, b); }},
      {"Minimum", [](double a, double b) { return std::min(a, b); }},
      {"Greater", [](double a, double b) { return a > b ? 1.0 : 0.0; }},
      {"GreaterEqual", [](double a, double b) { return a >= b ? 1.0 : 0.0; }},
      {"Less", [](double a, double b) { return a < b ? 1.0 : 0.0; }},
      {"LessEqual", [](double a, double b) { return a <= b ? 1.0 : 0.0; }},
      {"Equal", [](double a, double b) { return a == b ? 1.0 : 0.0; }},
      {"NotEqual", [](double a, double b) { return a != b ? 1.0 : 0.0; }},
      {"And", [](double a, double b) { return a != 0 && b != 0 ? 1.0 : 0.0; }},
      {"Or", [](double a, double b) { return a != 0 || b != 0 ? 1.0 : 0.0; }},
  };
  return evals;
}

// The fold rules made of them: elementwise over the input, or over both inputs broadcast to the output.
FoldFn unary_fold(UnaryEval f) {
  return [f](const Node& n, const FoldArgs& in, const Value&) -> std::optional<std::vector<double>> {
    const FoldArg& x = in.at(0).at(0);
    if (!x.data) return std::nullopt;
    std::vector<double> y = *x.data;
    for (double& v : y) v = f(n.attrs, v);
    return y;
  };
}

FoldFn binary_fold(BinaryEval f) {
  return [f](const Node&, const FoldArgs& in, const Value& out) -> std::optional<std::vector<double>> {
    const FoldArg &l = in.at(0).at(0), &r = in.at(1).at(0);
    if (!l.data || !r.data) return std::nullopt;
    std::vector<double> a = broadcast_elements(*l.data, l.value->shape, out.shape);
    std::vector<double> b = broadcast_elements(*r.data, r.value->shape, out.shape);
    for (size_t i = 0; i < a.size(); ++i) a[i] = f(a[i], b[i]);
    return a;
  };
}

// 1 where `cmp` holds, 0.5 where left == right (ties share the gradient, as in torch.maximum), else 0.
int tie_mask(GradContext& g, const std::string& cmp) {
  int l = g.in("left"), r = g.in("right");
  json cast = {{"dtype", dtype_name(g.dtype(g.out()))}};
  int strict = g.op1("Cast", {{"input", g.op1(cmp, {{"left", l}, {"right", r}})}}, cast);
  int eq = g.op1("Cast", {{"input", g.op1("Equal", {{"left", l}, {"right", r}})}}, cast);
  return g.add2(strict, g.mul(eq, g.scalar_like(0.5, eq)));
}

GradFn binary_grad(const std::string& op) {
  return [op](GradContext& g) {
    int dy = g.dout(), l = g.in("left"), r = g.in("right");
    auto give = [&](const char* port, int like, const std::function<int()>& make) {
      if (g.wants(port)) g.grad(port, g.sum_like(make(), like));
    };
    if (op == "Add") {
      give("left", l, [&] { return dy; });
      give("right", r, [&] { return dy; });
    } else if (op == "Subtract") {
      give("left", l, [&] { return dy; });
      give("right", r, [&] { return g.neg(dy); });
    } else if (op == "Multiply") {
      give("left", l, [&] { return g.mul(dy, r); });
      give("right", r, [&] { return g.mul(dy, l); });
    } else if (op == "Divide") {
      give("left", l, [&] { return g.div(dy, r); });
      give("right", r, [&] { return g.neg(g.mul(dy, g.div(g.out(), r))); });  // -dy * y / r
    } else if (op == "Power") {
      // d/dl = r * l^(r-1); d/dr = y * log(l), taken as 0 where l == 0 (as torch does for r >= 0).
      give("left", l, [&] { return g.mul(dy, g.mul(r, g.op1("Power", {{"left", l}, {"right", g.sub(r, g.scalar_like(1, r))}}))); });
      give("right", r, [&] {
        int zero = g.scalar_like(0, l);
        int safe_log = g.op1("Where", {{"condition", g.op1("Equal", {{"left", l}, {"right", zero}})}, {"left", zero},
                                       {"right", g.unary("Log", l)}});
        return g.mul(dy, g.mul(g.out(), safe_log));
      });
    } else if (op == "Maximum" || op == "Minimum") {
      int m = tie_mask(g, op == "Maximum" ? "Greater" : "Less");
      give("left", l, [&] { return g.mul(dy, m); });
      give("right", r, [&] { return g.mul(dy, g.sub(g.scalar_like(1, m), m)); });
    } else {
      throw std::logic_error("no gradient for " + op);
    }
  };
}

}  // namespace

MITHRIL_REGISTER_OPS(elementwise) {
  for (const auto& row : unary_rows()) {
    OpDef d(row.name, "elementwise", row.summary);
    d.in("input").out().trait("elementwise");
    for (auto& a : row.args) d.args.push_back(a);
    if (auto f = unary_evals().find(row.name); f != unary_evals().end()) d.fold_rule(unary_fold(f->second));
    UnaryCpu cpu = row.cpu;
    d.scalar_expr([cpu](const EmitContext& e, const std::vector<std::string>& x, const std::vector<DType>& t) {
       return cpu(e, x[0], EmitContext::ctype(t[0]));
     }).emit("cpu", emit_scalar).emit("cuda", emit_scalar);
    Domain domain = row.domain;
    d.rule([domain](InferContext& c) {
      check_domain(c, "input", domain);
      if (c.op().name == "Clip" && !c.is_null("min") && !c.is_null("max") && c.f("min") > c.f("max"))
        c.fail_arg("min", "min {} is greater than max {}", c.f("min"), c.f("max"));
      c.out("output", c.dtype("input"), c.shape("input"));
    });
    std::string how = row.grad;
    if (how == "none") d.trait("no_gradient");
    if (how == "zero") d.grad([](GradContext&) {});  // piecewise constant: zero almost everywhere
    if (how == "identity") d.grad([](GradContext& g) { g.grad("input", g.dout()); });
    if (how == "negate") d.grad([](GradContext& g) { g.grad("input", g.neg(g.dout())); });  // reads no forward value
    if (how == "deriv") {
      // dx = dy * f'(x or y), one fused loop: the internal op <Name>Grad.
      std::string grad_op = std::string(row.name) + "Grad";
      Uses uses = row.deriv.uses;
      d.grad([grad_op, uses](GradContext& g) {
        json attrs = g.node().attrs;
        int operand = uses == Uses::Y ? g.out() : g.in("input");
        g.grad("input", g.op1(grad_op, {{uses == Uses::Y ? "output" : "input", operand}, {"grad", g.dout()}}, attrs));
      });
      OpDef gd(grad_op, "elementwise", std::string("gradient of ") + row.name + ": grad * f'(" + (uses == Uses::Y ? "output" : "input") + ")");
      gd.in("input", true).in("output", true).in("grad").out().trait("elementwise").trait("internal");
      for (auto& a : row.args) gd.args.push_back(a);
      UnaryCpu deriv = row.deriv.expr;
      // Operands in port order: the input (or output) element, then the incoming gradient's.
      gd.scalar_expr([deriv](const EmitContext& e, const std::vector<std::string>& x, const std::vector<DType>& t) {
          return x.back() + " * " + deriv(e, x.front(), EmitContext::ctype(t.back()));
        }).emit("cpu", emit_scalar).emit("cuda", emit_scalar);
      gd.rule([](InferContext& c) { c.out("output", c.dtype("grad"), c.shape("grad")); });
      register_op(std::move(gd));
    }
    register_op(std::move(d));
  }

  for (const auto& row : binary_rows()) {
    OpDef d(row.name, "elementwise", row.summary);
    d.in("left").in("right").out().trait("elementwise").trait("broadcast");
    if (row.commutative) d.trait("commutative");
    if (auto f = binary_evals().find(row.name); f != binary_evals().end()) d.fold_rule(binary_fold(f->second));
    Domain domain = row.domain;
    BinaryResult result = row.result;
    bool logical = std::string(row.name) == "And" || std::string(row.name) == "Or";
    std::string cpu = row.cpu;
    d.scalar_expr([cpu](const EmitContext&, const std::vector<std::string>& x, const std::vector<DType>&) {
       return fmt::format(fmt::runtime(cpu), x[0], x[1]);
     }).emit("cpu", emit_scalar).emit("cuda", emit_scalar);
    if (result == BinaryResult::Bool || logical) d.trait("no_gradient");
    else d.grad(binary_grad(row.name));
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
                  .in("input").out().trait("elementwise").trait("no_gradient")
                  .scalar_expr([](const EmitContext&, const std::vector<std::string>& x, const std::vector<DType>&) { return "!" + x[0]; })
                  .emit("cpu", emit_scalar).emit("cuda", emit_scalar)
                  .rule([](InferContext& c) {
                    if (c.dtype("input") != DType::boolean)
                      c.fail("'input' must be bool, found {}", type_str(c.dtype("input"), c.shape("input")));
                    c.out("output", DType::boolean, c.shape("input"));
                  }));

  register_op(OpDef("Where", "elementwise", "condition ? left : right, with broadcasting")
                  .in("condition").in("left").in("right").out().trait("elementwise").trait("broadcast")
                  .grad([](GradContext& g) {
                    int dy = g.dout(), c = g.in("condition"), zero = g.scalar_like(0, dy);
                    if (g.wants("left"))
                      g.grad("left", g.sum_like(g.op1("Where", {{"condition", c}, {"left", dy}, {"right", zero}}), g.in("left")));
                    if (g.wants("right"))
                      g.grad("right", g.sum_like(g.op1("Where", {{"condition", c}, {"left", zero}, {"right", dy}}), g.in("right")));
                  })
                  .scalar_expr([](const EmitContext&, const std::vector<std::string>& x, const std::vector<DType>&) {
                    return fmt::format("{} ? {} : {}", x[0], x[1], x[2]);
                  })
                  .emit("cpu", emit_scalar).emit("cuda", emit_scalar)
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
                  .grad([](GradContext& g) {  // float to float: cast the gradient back
                    if (is_float(g.dtype(g.in("input"))))
                      g.grad("input", g.op1("Cast", {{"input", g.dout()}}, {{"dtype", dtype_name(g.dtype(g.in("input")))}}));
                  })
                  .scalar_expr([](const EmitContext& e, const std::vector<std::string>& x, const std::vector<DType>&) {
                    return fmt::format("static_cast<{}>({})", EmitContext::ctype(*parse_dtype(e.s("dtype"))), x[0]);
                  })
                  .emit("cpu", emit_scalar).emit("cuda", emit_scalar)
                  .fold_rule([](const Node&, const FoldArgs& in, const Value&) -> std::optional<std::vector<double>> {
                    if (!in.at(0).at(0).data) return std::nullopt;
                    return *in.at(0).at(0).data;  // the pass converts to the output's dtype
                  })
                  .rule([](InferContext& c) { c.out("output", *parse_dtype(c.s("dtype")), c.shape("input")); }));
}

}  // namespace mithril
