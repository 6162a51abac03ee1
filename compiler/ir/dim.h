// Symbolic dimensions.
//
// A Dim is an integer polynomial over atoms: named symbols (`N`, `T`) and
// floor divisions that could not be simplified (`(H-1)//2`). Constants are the
// polynomial with only a constant term. Equal dims have equal canonical forms,
// so `N*784 == 784*N`. Literals appear only when a shape is printed or code is
// emitted; the generated code evaluates the same expressions at run time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mithril {

class Dim {
 public:
  Dim(int64_t constant = 0);  // NOLINT: implicit from integers on purpose
  static Dim symbol(const std::string& name);
  // floor(a / d) for d > 0: exact when every coefficient divides, else an opaque atom.
  static Dim floordiv(const Dim& a, int64_t d);

  bool is_const() const;
  std::optional<int64_t> as_const() const;
  int64_t value() const;  // requires is_const()

  // Exact division by a monomial-like divisor (`N*T`, `768`, `2*N`); nullopt when not exact.
  std::optional<Dim> exact_div(const Dim& divisor) const;

  // Evaluate with symbol values; nullopt when a symbol is unbound.
  std::optional<int64_t> eval(const std::map<std::string, int64_t>& env) const;
  // Replace bound symbols by their values and re-simplify.
  Dim substitute(const std::map<std::string, int64_t>& env) const;
  std::set<std::string> symbols() const;

  std::string str() const;  // canonical, e.g. "N*784", "(H-1)//2+1"
  // A C++ expression over int64_t variables named like the symbols; floor
  // divisions print as mithril::rt::floordiv(a, d).
  std::string c_expr(const std::string& symbol_prefix = "") const;

  friend Dim operator+(const Dim& a, const Dim& b);
  friend Dim operator-(const Dim& a, const Dim& b);
  friend Dim operator*(const Dim& a, const Dim& b);
  friend bool operator==(const Dim& a, const Dim& b) { return a.terms_ == b.terms_; }
  friend bool operator!=(const Dim& a, const Dim& b) { return !(a == b); }

 private:
  using Monomial = std::vector<std::string>;  // sorted atom keys, repeated for powers
  std::map<Monomial, int64_t> terms_;         // no zero coefficients
  void add_term(const Monomial& m, int64_t c);
};

using Shape = std::vector<Dim>;

std::string shape_str(const Shape& s);  // "[N, 784]"
// Product of all dims (1 for a scalar).
Dim numel(const Shape& s);
bool shape_is_const(const Shape& s);

}  // namespace mithril
