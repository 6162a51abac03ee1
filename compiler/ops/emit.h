// What an op's code generator sees of one node: its arguments, the C++ names
// and types of its inputs and outputs, dims as C++ expressions, and a place
// to write lines. Op files register their printers with OpDef::emit("cpu", ...),
// next to the op's other rules; codegen (codegen/plan.h, codegen/cpu_target.cpp)
// makes the plan they read and calls them. This interface sits at the ops layer
// so that an op stays defined in one place without its file reaching up into
// codegen: an emitter reads the plan through EmitPlan, which codegen's
// ProgramPlan extends.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ops/registry.h"
#include "support/cpp_text.h"  // emitters print model text through it

namespace mithril {

// Run-time dims are locals named `dim_N` in generated code, so a dim called `i`
// or `rest` never meets a loop variable of the same name.
inline constexpr const char* kDimPrefix = "dim_";

// What emitters read of the target-independent plan (codegen/plan.h, plan_program, fills it in
// as part of its ProgramPlan): the graph being emitted, per value its C++ name and arena or weight
// block offset, per node its working memory, and which parameters are kept packed.
struct EmitPlan {
  Graph graph;
  std::string target = "cpu";          // the code generation target (codegen/target.h): "cpu", "cuda"
  bool training = false;               // --mode train: BatchNorm uses batch statistics, Dropout masks
  std::vector<std::string> ident;      // per value: a unique C++ identifier (`fc1_weight`, `block1_conv2`)
  std::vector<int64_t> offset;         // per value: byte offset in the arena (Temp) or weight block (Param/State); -1 for inputs
  std::vector<int64_t> scratch_offset; // per node: arena offset of its working memory, -1 when none
  // Parameters kept packed (OpDef::packed_param, OpDef::pack), programs without gradients only,
  // float32. Their sizes may depend on the target's vector width, so the generated code computes
  // the offsets from PackSpec::floats.
  struct Packed {
    int id;
    PackSpec spec;
  };
  std::vector<Packed> packed;
  bool is_packed(int value) const;
};

class EmitContext {
 public:
  EmitContext(const EmitPlan& plan, const Node& node, std::string& out) : plan_(plan), node_(node), out_(out) {}

  const Node& node() const { return node_; }
  const EmitPlan& plan() const { return plan_; }
  // Training or inference, a compile-time setting ops honour (the seed's conditional execution).
  // In training code, state (BatchNorm running statistics) is writable and `rng_` (mithril::rt::Rng,
  // seeded by the model's seed) is available for random ops.
  bool training() const { return plan_.training; }
  // The CUDA target (codegen/target.h): tensors in device memory, code launched on `device_`.
  bool cuda() const { return plan_.target == "cuda"; }
  // The layer's name as a C++ string literal (kernel launches and device errors name it).
  std::string layer() const { return cpp_string(node_.name); }
  const OpDef& op() const { return *node_.op; }
  const json& arg(const std::string& name) const { return node_.attrs.at(name); }
  int64_t i(const std::string& name) const { return arg(name).get<int64_t>(); }
  double f(const std::string& name) const { return arg(name).get<double>(); }
  bool b(const std::string& name) const { return arg(name).get<bool>(); }
  std::string s(const std::string& name) const { return arg(name).get<std::string>(); }

  bool has(const std::string& port) const;
  const Value& in(const std::string& port, size_t i = 0) const;
  const Value& out(const std::string& port = "output", size_t i = 0) const;
  // The C++ variable holding a value's data (a typed pointer).
  std::string name(const Value& v) const { return plan_.ident[v.id]; }
  std::string x(const std::string& port, size_t i = 0) const { return name(in(port, i)); }
  std::string y(const std::string& port = "output", size_t i = 0) const { return name(out(port, i)); }
  // The packed copy of the parameter at `port` (OpDef::packed_param; a `const float*` laid out by
  // mithril::rt::k::pack_b), or "" when the plan keeps none.
  std::string packed(const std::string& port) const {
    return has(port) && plan_.is_packed(in(port).id) ? name(in(port)) + "__packed" : "";
  }
  static const char* ctype(DType t);
  std::string ctype_of(const std::string& port) const { return ctype(in(port).dtype); }

  // Dims as C++ expressions: literals when known, run-time dims by name (`N * 784`).
  static std::string dim(const Dim& d);
  static std::string numel(const Shape& s);
  static std::string numel(const Shape& s, size_t from, size_t to);  // product of s[from, to)

  // Append a line of code (indentation is added by the emitter).
  template <typename... Args>
  void line(fmt::format_string<Args...> f, Args&&... a) {
    out_ += "    " + fmt::format(f, std::forward<Args>(a)...) + "\n";
  }
  [[noreturn]] void unsupported(const std::string& what) const;
  // The node's working memory (OpDef::scratch_elems) as a typed pointer, or "nullptr" when it has none.
  std::string scratch() const;

 private:
  const EmitPlan& plan_;
  const Node& node_;
  std::string& out_;
};

// Loops for an elementwise node with NumPy broadcasting: calls `body` with one
// index expression per operand port (in `ports` order) and the output index `i`.
// Same-shape operands get one flat loop the compiler can vectorize.
void emit_elementwise(EmitContext& e, const std::vector<std::string>& ports,
                      const std::function<std::string(const std::vector<std::string>& elems)>& expr);

// The general form: one loop over the node's output reading `operands` (any values, each indexed
// with broadcasting). `body` gets one element expression per operand and gives the statements run
// per element (`const float t0 = ...;`, none for a plain expression) and the value stored.
struct ElementwiseCode {
  std::vector<std::string> statements;
  std::string value;
};
void emit_elementwise_values(EmitContext& e, const std::vector<const Value*>& operands,
                             const std::function<ElementwiseCode(const std::vector<std::string>& elems)>& body);

// The CPU emitter of an op with an element expression (OpDef::scalar): its loop over every bound
// input value, in port order.
void emit_scalar(EmitContext& e);

}  // namespace mithril
