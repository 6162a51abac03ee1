#include "ir/dim.h"

#include "support/checked.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

namespace mithril {
namespace {

// Floor-division atoms are interned by their printed form so that monomials can
// refer to them by key; the table remembers numerator and divisor for eval.
struct FloorDivAtom {
  Dim num;
  int64_t den;
};
std::map<std::string, FloorDivAtom>& floordiv_atoms() {
  static std::map<std::string, FloorDivAtom> atoms;
  return atoms;
}
std::mutex& atoms_mutex() {
  static std::mutex m;
  return m;
}

int64_t floor_div(int64_t a, int64_t b) { return checked_floordiv(a, b); }

// An integer as C++ source: INT64_MIN has no literal of its own.
std::string int_literal(int64_t v) { return v == INT64_MIN ? "(-9223372036854775807 - 1)" : std::to_string(v); }

bool is_floordiv_key(const std::string& k) { return !k.empty() && k[0] == '('; }

}  // namespace

Dim::Dim(int64_t constant) {
  if (constant != 0) terms_[{}] = constant;
}

Dim Dim::symbol(const std::string& name) {
  Dim d;
  d.terms_[{name}] = 1;
  return d;
}

void Dim::add_term(const Monomial& m, int64_t c) {
  int64_t& slot = terms_[m];
  slot = checked_add(slot, c);
  if (slot == 0) terms_.erase(m);
}

bool Dim::is_const() const { return terms_.empty() || (terms_.size() == 1 && terms_.begin()->first.empty()); }

std::optional<int64_t> Dim::as_const() const {
  if (!is_const()) return std::nullopt;
  return terms_.empty() ? 0 : terms_.begin()->second;
}

int64_t Dim::value() const {
  auto c = as_const();
  if (!c) throw std::logic_error("Dim::value on symbolic dim " + str());
  return *c;
}

Dim operator+(const Dim& a, const Dim& b) {
  Dim r = a;
  for (auto& [m, c] : b.terms_) r.add_term(m, c);
  return r;
}

Dim operator-(const Dim& a, const Dim& b) {
  Dim r = a;
  for (auto& [m, c] : b.terms_) r.add_term(m, checked_sub(0, c));
  return r;
}

Dim operator*(const Dim& a, const Dim& b) {
  Dim r;
  for (auto& [ma, ca] : a.terms_)
    for (auto& [mb, cb] : b.terms_) {
      Dim::Monomial m = ma;
      m.insert(m.end(), mb.begin(), mb.end());
      std::sort(m.begin(), m.end());
      r.add_term(m, checked_mul(ca, cb));
    }
  return r;
}

Dim Dim::floordiv(const Dim& a, int64_t d) {
  if (d <= 0) throw std::invalid_argument("Dim::floordiv by non-positive divisor");
  if (d == 1) return a;
  if (auto c = a.as_const()) return Dim(floor_div(*c, d));
  bool exact = std::all_of(a.terms_.begin(), a.terms_.end(), [&](auto& t) { return t.second % d == 0; });
  if (exact) {
    Dim r;
    for (auto& [m, c] : a.terms_) r.terms_[m] = c / d;
    return r;
  }
  std::string key = fmt::format("({})//{}", a.str(), d);
  {
    std::lock_guard<std::mutex> lock(atoms_mutex());
    floordiv_atoms().emplace(key, FloorDivAtom{a, d});
  }
  Dim r;
  r.terms_[{key}] = 1;
  return r;
}

std::optional<Dim> Dim::exact_div(const Dim& divisor) const {
  if (divisor.terms_.size() != 1) {
    if (divisor == *this) return Dim(1);
    return std::nullopt;
  }
  const auto& [dm, dc] = *divisor.terms_.begin();
  Dim r;
  for (auto& [m, c] : terms_) {
    if (dc == -1 && c == INT64_MIN) throw_size_overflow(c, '/', dc);
    if (c % dc != 0) return std::nullopt;
    // remove the divisor's atoms (a multiset) from m
    Monomial rest = m;
    for (auto& atom : dm) {
      auto it = std::find(rest.begin(), rest.end(), atom);
      if (it == rest.end()) return std::nullopt;
      rest.erase(it);
    }
    r.add_term(rest, c / dc);
  }
  return r;
}

std::optional<int64_t> Dim::eval(const std::map<std::string, int64_t>& env) const {
  int64_t total = 0;
  for (auto& [m, c] : terms_) {
    int64_t v = c;
    for (auto& atom : m) {
      if (is_floordiv_key(atom)) {
        FloorDivAtom fd;
        {
          std::lock_guard<std::mutex> lock(atoms_mutex());
          fd = floordiv_atoms().at(atom);
        }
        auto n = fd.num.eval(env);
        if (!n) return std::nullopt;
        v = checked_mul(v, floor_div(*n, fd.den));
      } else {
        auto it = env.find(atom);
        if (it == env.end()) return std::nullopt;
        v = checked_mul(v, it->second);
      }
    }
    total = checked_add(total, v);
  }
  return total;
}

Dim Dim::substitute(const std::map<std::string, int64_t>& env) const {
  Dim r;
  for (auto& [m, c] : terms_) {
    Dim term(c);
    for (auto& atom : m) {
      if (is_floordiv_key(atom)) {
        FloorDivAtom fd;
        {
          std::lock_guard<std::mutex> lock(atoms_mutex());
          fd = floordiv_atoms().at(atom);
        }
        term = term * floordiv(fd.num.substitute(env), fd.den);
      } else if (auto it = env.find(atom); it != env.end()) {
        term = term * Dim(it->second);
      } else {
        term = term * symbol(atom);
      }
    }
    r = r + term;
  }
  return r;
}

std::set<std::string> Dim::symbols() const {
  std::set<std::string> out;
  for (auto& [m, c] : terms_)
    for (auto& atom : m) {
      if (is_floordiv_key(atom)) {
        FloorDivAtom fd;
        {
          std::lock_guard<std::mutex> lock(atoms_mutex());
          fd = floordiv_atoms().at(atom);
        }
        auto inner = fd.num.symbols();
        out.insert(inner.begin(), inner.end());
      } else {
        out.insert(atom);
      }
    }
  return out;
}

std::string Dim::str() const {
  if (terms_.empty()) return "0";
  std::string out;
  // symbolic terms first (in canonical order), the constant last: "N*784", "H-1"
  auto print_term = [&](const Monomial& m, int64_t c, bool first) {
    // The magnitude as unsigned: -INT64_MIN has no int64_t.
    uint64_t mag = c < 0 ? 0 - static_cast<uint64_t>(c) : static_cast<uint64_t>(c);
    if (c < 0) out += "-";
    else if (!first) out += "+";
    std::string body;
    for (auto& atom : m) body += (body.empty() ? "" : "*") + atom;
    if (m.empty()) body = std::to_string(mag);
    else if (mag != 1) body += "*" + std::to_string(mag);
    out += body;
  };
  bool first = true;
  for (auto& [m, c] : terms_)
    if (!m.empty()) print_term(m, c, first), first = false;
  if (auto it = terms_.find({}); it != terms_.end()) print_term({}, it->second, first);
  return out;
}

std::string Dim::c_expr(const std::string& symbol_prefix) const {
  if (terms_.empty()) return "int64_t{0}";
  std::string out;
  for (auto& [m, c] : terms_) {
    std::string term;
    for (auto& atom : m) {
      std::string a = atom;
      if (is_floordiv_key(atom)) {
        FloorDivAtom fd;
        {
          std::lock_guard<std::mutex> lock(atoms_mutex());
          fd = floordiv_atoms().at(atom);
        }
        a = fmt::format("mithril::rt::floordiv({}, int64_t{{{}}})", fd.num.c_expr(symbol_prefix), fd.den);
      } else {
        a = symbol_prefix + atom;
      }
      term += (term.empty() ? "" : " * ") + a;
    }
    if (m.empty()) term = fmt::format("int64_t{{{}}}", int_literal(c));
    else if (c != 1) term = fmt::format("int64_t{{{}}} * {}", int_literal(c), term);
    out += out.empty() ? term : " + " + term;
  }
  return out;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + s[i].str();
  return out + "]";
}

Dim numel(const Shape& s) {
  Dim n(1);
  for (auto& d : s) n = n * d;
  return n;
}

bool shape_is_const(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](const Dim& d) { return d.is_const(); });
}

}  // namespace mithril
