// The op registry: every primitive op is defined once, in the file of its
// family (ops/<family>.cpp), with its ports, arguments, traits and shape/dtype
// rule. Passes and emitters look ops up here; nothing switches on op names.
//
// A new op: add an OpDef to its family's MITHRIL_REGISTER_OPS block and a test
// in the family's test file (tests/unit/test_ops_*.cpp). Later targets add their emitters and the
// gradient rule to the same definition.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace mithril {

enum class PortKind { Data, Param, State };

struct Port {
  std::string name;
  PortKind kind = PortKind::Data;
  bool optional = false;
  bool variadic = false;  // takes a list of values (Concat inputs, Split outputs)
  bool internal = false;  // bound by passes only (a convolution's epilogue inputs): not in `mithril ops`
};

enum class ArgType { Int, Float, Bool, String, IntList, IntOrList, Dtype, Any };
const char* arg_type_name(ArgType t);

struct ArgSpec {
  std::string name;
  ArgType type = ArgType::Int;
  std::optional<json> default_value;  // nullopt: required; json(nullptr): optional, absent
  std::vector<std::string> choices;   // for String
  std::string doc;
};

class InferContext;
using InferFn = std::function<void(InferContext&)>;
class EmitContext;  // ops/emit.h
using EmitFn = std::function<void(EmitContext&)>;
class GradContext;  // ops/grad.h
using GradFn = std::function<void(GradContext&)>;
// The element expression of an elementwise op (OpDef::scalar): C++ for one output element from the
// C++ expressions of its operands (one per bound input value, in port order) and their dtypes. It
// reads only the node's arguments through the EmitContext (e.f("negative_slope"), e.s("dtype")), never
// its values: the op's CPU emitter (emit_scalar, ops/emit.h) and the `fuse-elementwise` pass's
// FusedElementwise loops (passes/fuse.h) both build on it.
using ScalarFn = std::function<std::string(const EmitContext& e, const std::vector<std::string>& operands,
                                           const std::vector<DType>& operand_dtypes)>;
// Constant folding (the `fold` pass, passes/optimize.h). An input as a fold rule sees it: its
// type, and its elements in row-major order when it is a compile-time constant (else null).
struct FoldArg {
  const Value* value = nullptr;
  const std::vector<double>* data = nullptr;
};
using FoldArgs = std::vector<std::vector<FoldArg>>;  // per input port, one FoldArg per bound value
// A fold rule: the elements of the node's one output (`out`: its inferred, constant shape and
// dtype), row-major, computed in double (the pass rounds them to the dtype), from the node and its
// inputs; nullopt when an input it reads is not a constant.
// A packed copy of a parameter, as C++ of the generated program: its size in floats, and the
// statement making it, where "{dst}" (float*) and "{src}" (const float*, the parameter) stand
// for the pointers. Both may use the runtime's kernels (sizes that depend on the vector width).
// `estimate`: its size in floats as far as the compiler can tell (for `mithril check`).
struct PackSpec {
  std::string floats;
  std::string make;
  int64_t estimate = 0;
  bool operator==(const PackSpec& o) const { return floats == o.floats && make == o.make; }
};
using PackFn = std::function<std::optional<PackSpec>(const Node& n, const Graph& g)>;
using FoldFn = std::function<std::optional<std::vector<double>>(const Node& n, const FoldArgs& in, const Value& out)>;

struct OpDef {
  std::string name, family, summary;
  std::vector<Port> inputs, outputs;
  std::vector<ArgSpec> args;
  std::set<std::string> traits;  // "elementwise", "commutative", "reduction", "loss", "random", "no_gradient", "internal", ...
  InferFn infer;
  // For a variadic output port left unbound: how many values the args imply.
  std::function<int(const json& attrs)> output_count;
  // Code generation, per target ("cpu", "cuda"; codegen/target.h), next to the op's other rules:
  // what the target prints for a node and the kernel decisions that shape the memory plan.
  struct TargetRecord {
    EmitFn emit;
    // Working memory a node needs while it runs (im2col columns, attention scores), in elements of
    // its first output's dtype; the memory plan places it in the arena for that node only.
    std::function<Dim(const Node&, const Graph&)> scratch;
    // A parameter port whose value the target's kernel reads faster from a copy laid out for it (a
    // Linear weight packed into panels for the CPU's GEMM kernel, a convolution's weights transformed
    // for Winograd). In programs without gradients the memory plan keeps that copy, made again
    // whenever the weights change, for the nodes whose `pack` gives a PackSpec; the emitter finds it
    // with EmitContext::packed(port).
    std::string packed_param;
    PackFn pack;
  };
  std::map<std::string, TargetRecord> targets;
  // The op's record for a target, or null when the target has no code for it.
  const TargetRecord* target(const std::string& name) const {
    auto it = targets.find(name);
    return it == targets.end() || !it->second.emit ? nullptr : &it->second;
  }
  // Evaluation at compile time of a node whose inputs are constants (optional; see FoldFn).
  FoldFn fold;
  // The per-element C++ expression of an elementwise op (optional; see ScalarFn): ops that have one
  // can be fused into one loop with their neighbours.
  ScalarFn scalar;
  // Floating-point operations of one run of a node (matrix products and convolutions: two per
  // multiply-add), for `--profile`'s GFLOP/s and its matrix-product share; none for other ops.
  std::function<Dim(const Node&, const Graph&)> flops;
  // Reverse-mode rule (ops/grad.h): builds the gradients of the inputs from those of the outputs.
  // Ops without one either have the trait "no_gradient" (StopGradient, comparisons: nothing flows
  // through them) or stop training with an error naming the layer.
  GradFn gradient;
  // An input port whose buffer the output may take over when this node is that value's last
  // reader and both have the same size (the memory plan then writes the result in place).
  std::string in_place;

  OpDef() = default;
  OpDef(std::string n, std::string fam, std::string sum)
      : name(std::move(n)), family(std::move(fam)), summary(std::move(sum)) {}

  // Builder helpers, so each definition reads as one statement.
  OpDef& in(std::string port, bool optional = false) { return add_in(std::move(port), PortKind::Data, optional, false); }
  OpDef& in_list(std::string port) { return add_in(std::move(port), PortKind::Data, false, true); }
  // An optional list port that only passes bind (Port::internal).
  OpDef& internal_list(std::string port) {
    add_in(std::move(port), PortKind::Data, true, true);
    inputs.back().internal = true;
    return *this;
  }
  OpDef& param(std::string port, bool optional = false) { return add_in(std::move(port), PortKind::Param, optional, false); }
  OpDef& state(std::string port) { return add_in(std::move(port), PortKind::State, true, false); }
  OpDef& out(std::string port = "output") { outputs.push_back({std::move(port), PortKind::Data, false, false}); return *this; }
  OpDef& out_list(std::string port, std::function<int(const json&)> count) {
    outputs.push_back({std::move(port), PortKind::Data, false, true});
    output_count = std::move(count);
    return *this;
  }
  OpDef& arg(std::string n, ArgType t, std::optional<json> def = std::nullopt, std::string doc = "",
             std::vector<std::string> choices = {}) {
    args.push_back({std::move(n), t, std::move(def), std::move(choices), std::move(doc)});
    return *this;
  }
  OpDef& trait(std::string t) { traits.insert(std::move(t)); return *this; }
  OpDef& rule(InferFn f) { infer = std::move(f); return *this; }
  OpDef& emit(const std::string& target, EmitFn f) { targets[target].emit = std::move(f); return *this; }
  OpDef& fold_rule(FoldFn f) { fold = std::move(f); return *this; }
  OpDef& scalar_expr(ScalarFn f) { scalar = std::move(f); return *this; }
  OpDef& grad(GradFn f) { gradient = std::move(f); return *this; }
  OpDef& writes_in_place_of(std::string port) { in_place = std::move(port); return *this; }
  OpDef& packs(const std::string& target, std::string port, PackFn f) {
    targets[target].packed_param = std::move(port);
    targets[target].pack = std::move(f);
    return *this;
  }
  OpDef& scratch_elems(const std::string& target, std::function<Dim(const Node&, const Graph&)> f) {
    targets[target].scratch = std::move(f);
    return *this;
  }
  OpDef& flop_count(std::function<Dim(const Node&, const Graph&)> f) { flops = std::move(f); return *this; }

  int input_index(const std::string& port) const;
  int output_index(const std::string& port) const;
  const ArgSpec* find_arg(const std::string& n) const;
  bool has_trait(const std::string& t) const { return traits.count(t) > 0; }
  // The port a sequence feeds when the layer binds no `input`: the first data input.
  int chain_input() const;

 private:
  OpDef& add_in(std::string port, PortKind k, bool optional, bool variadic) {
    inputs.push_back({std::move(port), k, optional, variadic});
    return *this;
  }
};

void register_op(OpDef def);

// For rules that see only the node and the graph (scratch_elems, flop_count): the shape of the
// value bound to an input port (its first) and of an output.
const Shape& input_shape(const Node& n, const Graph& g, const std::string& port);
const Shape& output_shape(const Node& n, const Graph& g, size_t i = 0);
// 2 * (elements of `out`) * depth: the FLOPs of a product whose every output element is a sum of
// `depth` products.
Dim product_flops(const Shape& out, const Dim& depth);
const OpDef* find_op(const std::string& name);
std::vector<const OpDef*> all_ops();  // sorted by family, then name
std::vector<std::string> op_names();

#define MITHRIL_CONCAT_INNER(a, b) a##b
#define MITHRIL_CONCAT(a, b) MITHRIL_CONCAT_INNER(a, b)
// Registers the ops of one family at start-up (the compiler core is an OBJECT
// library, so these static initializers are never dropped by the linker).
#define MITHRIL_REGISTER_OPS(family)                                                  \
  static void MITHRIL_CONCAT(register_ops_, family)();                                \
  [[maybe_unused]] static const bool MITHRIL_CONCAT(registered_, family) =            \
      (MITHRIL_CONCAT(register_ops_, family)(), true);                                \
  static void MITHRIL_CONCAT(register_ops_, family)()

// Check a layer's arguments against the op: unknown, missing and ill-typed
// arguments are errors; defaults are filled in. `where` names the layer.
json resolve_args(const OpDef& op, const json& given, const std::map<std::string, SourceLoc>& locs,
                  const SourceLoc& layer_loc, const std::string& where,
                  const std::map<std::string, SourceLoc>& key_locs = {});

// What shape and dtype rules see of one node. Errors raised through it carry
// the node's source location and name.
class InferContext {
 public:
  InferContext(Graph& g, int node_id);

  const Node& node() const { return g_.nodes[node_]; }
  const OpDef& op() const { return *node().op; }

  // Arguments (already validated and defaulted).
  const json& arg(const std::string& name) const;
  bool is_null(const std::string& name) const { return arg(name).is_null(); }
  int64_t i(const std::string& name) const { return arg(name).get<int64_t>(); }
  double f(const std::string& name) const { return arg(name).get<double>(); }
  bool b(const std::string& name) const { return arg(name).get<bool>(); }
  std::string s(const std::string& name) const { return arg(name).get<std::string>(); }
  // An int or a list of ints as a list of exactly n values ("kernel_size: 3" -> {3, 3}).
  std::vector<int64_t> ints(const std::string& name, size_t n) const;
  std::vector<int64_t> int_list(const std::string& name) const;

  // Inputs.
  bool has(const std::string& port) const { return count(port) > 0; }
  size_t count(const std::string& port) const;
  const Value& in(const std::string& port, size_t i = 0) const;
  const Shape& shape(const std::string& port, size_t i = 0) const { return in(port, i).shape; }
  DType dtype(const std::string& port, size_t i = 0) const { return in(port, i).dtype; }
  size_t rank(const std::string& port, size_t i = 0) const { return shape(port, i).size(); }

  // Outputs.
  size_t out_count(const std::string& port) const;
  void out(const std::string& port, DType t, Shape s, size_t i = 0);

  // Parameters and state: created when unbound, checked when bound (shared, declared or data).
  void param(const std::string& port, DType t, Shape s, json init = json::object());
  void state(const std::string& port, DType t, Shape s, json init = json::object());
  void no_param(const std::string& port, const std::string& why);  // error if the port is bound

  // Errors at this node.
  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... a) const {
    raise(fmt::format(f, std::forward<Args>(a)...), "");
  }
  template <typename... Args>
  [[noreturn]] void fail_arg(const std::string& arg, fmt::format_string<Args...> f, Args&&... a) const {
    raise(fmt::format(f, std::forward<Args>(a)...), arg);
  }

  // Common checks.
  int64_t axis(int64_t a, size_t rank, const std::string& argname) const;  // normalizes negative axes
  // An int-or-list argument of axes, normalized against `rank`; naming an axis twice is an error.
  std::vector<int64_t> axes(const std::string& argname, size_t rank) const;
  void expect_float(const std::string& port) const;
  void expect_int(const std::string& port) const;
  void expect_numeric(const std::string& port) const;  // not bool
  void expect_rank(const std::string& port, size_t r) const;
  void expect_rank_between(const std::string& port, size_t lo, size_t hi) const;
  void expect_same_dtype(const std::string& a, const std::string& b) const;
  Dim expect_dim(const Dim& found, const Dim& expected, const std::string& what) const;
  Shape broadcast(const Shape& a, const Shape& b, const std::string& what) const;
  int64_t const_dim(const Dim& d, const std::string& what) const;  // a dim that must be known

 private:
  [[noreturn]] void raise(const std::string& msg, const std::string& arg) const;
  void bind_tensor(const std::string& port, DType t, Shape s, json init, ValueKind kind);
  Graph& g_;
  int node_;
};

// NumPy broadcasting; nullopt when the shapes are incompatible.
std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b);
std::string type_str(DType t, const Shape& s);  // "float32[N, 784]"
std::string ints_str(const std::vector<int64_t>& v);  // "[1, -2]"
// "length" (1-D), "height"/"width" (2-D): spatial axes of convolutions and pools, for messages.
std::string spatial_axis_name(size_t spatial, size_t i);

}  // namespace mithril
