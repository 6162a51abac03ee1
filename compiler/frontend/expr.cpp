#include "frontend/expr.h"

#include <cctype>
#include <cmath>

#include "support/checked.h"
#include "support/limits.h"

namespace mithril {
namespace {

class Parser {
 public:
  Parser(const std::string& text, const json& env, const SourceLoc& loc, const std::string& scope)
      : s_(text), env_(env), loc_(loc), scope_(scope) {}

  json parse() {
    json v = logical_or();
    skip();
    if (p_ != s_.size()) error("unexpected '{}'", s_.substr(p_));
    return v;
  }

 private:
  template <typename... A>
  [[noreturn]] void error(fmt::format_string<A...> f, A&&... a) {
    fail(loc_, "in expression '{}': {}", s_, fmt::format(f, std::forward<A>(a)...));
  }
  void skip() {
    while (p_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[p_]))) ++p_;
  }
  bool eat(const char* tok) {
    skip();
    size_t n = std::char_traits<char>::length(tok);
    if (s_.compare(p_, n, tok) == 0) {
      p_ += n;
      return true;
    }
    return false;
  }
  // A keyword matches only as a whole word: `not` but not the start of `notes`.
  bool eat_word(const char* word) {
    skip();
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(p_, n, word) != 0) return false;
    if (p_ + n < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_ + n])) || s_[p_ + n] == '_')) return false;
    p_ += n;
    return true;
  }
  bool truth(const json& v, const char* op) {
    if (!v.is_boolean()) error("'{}' needs true or false, found {}", op, v.dump());
    return v.get<bool>();
  }
  json logical_or() {
    json v = logical_and();
    while (eat_word("or")) {
      json r = logical_and();
      v = truth(v, "or") || truth(r, "or");
    }
    return v;
  }
  json logical_and() {
    json v = logical_not();
    while (eat_word("and")) {
      json r = logical_not();
      v = truth(v, "and") && truth(r, "and");
    }
    return v;
  }
  // Nesting (parentheses, `not`, unary signs) is bounded: the parser recurses on it.
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth_ > limits().expr_depth)
        p.error("nested more than {} levels deep (raise the limit with --limit expr_depth=N)", limits().expr_depth);
    }
    ~Nest() { --p.depth_; }
  };
  json logical_not() {
    Nest nest(*this);
    if (eat_word("not")) return !truth(logical_not(), "not");
    return comparison();
  }
  json comparison() {
    json a = sum();
    for (const char* op : {"==", "!=", "<=", ">=", "<", ">"}) {
      if (!eat(op)) continue;
      json b = sum();
      std::string o = op;
      if (o == "==") return a == b;
      if (o == "!=") return a != b;
      if (!a.is_number() || !b.is_number()) error("'{}' needs numbers, found {} and {}", o, a.dump(), b.dump());
      double x = a.get<double>(), y = b.get<double>();
      if (o == "<=") return x <= y;
      if (o == ">=") return x >= y;
      if (o == "<") return x < y;
      return x > y;
    }
    return a;
  }
  static bool integral(const json& v) { return v.is_number_integer(); }
  static double num(const json& v) { return v.get<double>(); }

  json sum() {
    json v = product();
    for (;;) {
      if (eat("+")) v = arith(v, product(), '+');
      else if (eat("-")) v = arith(v, product(), '-');
      else return v;
    }
  }
  json product() {
    json v = unary();
    for (;;) {
      if (eat("//")) v = arith(v, unary(), 'f');
      else if (eat("*")) v = arith(v, unary(), '*');
      else if (eat("/")) v = arith(v, unary(), '/');
      else if (eat("%")) v = arith(v, unary(), '%');
      else return v;
    }
  }
  json unary() {
    Nest nest(*this);
    if (eat("-")) return arith(json(0), unary(), '-');
    if (eat("+")) return unary();
    return atom();
  }
  json atom() {
    skip();
    if (eat("(")) {
      Nest nest(*this);
      json v = logical_or();
      if (!eat(")")) error("missing ')'");
      return v;
    }
    eat("$");
    skip();
    size_t start = p_;
    if (p_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[p_])) || s_[p_] == '.')) {
      while (p_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_])) || s_[p_] == '.')) ++p_;
      std::string tok = s_.substr(start, p_ - start);
      try {
        if (tok.find_first_of(".eE") == std::string::npos) return std::stoll(tok);
        return std::stod(tok);
      } catch (...) {
        error("bad number '{}'", tok);
      }
    }
    while (p_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[p_])) || s_[p_] == '_')) ++p_;
    std::string name = s_.substr(start, p_ - start);
    if (name == "true" || name == "false") return name == "true";
    if (name.empty()) error("expected a name or a number at '{}'", s_.substr(start));
    if (!env_.is_object() || !env_.contains(name)) {
      std::vector<std::string> known;
      if (env_.is_object())
        for (auto& [k, v] : env_.items()) known.push_back(k);
      std::string avail = known.empty() ? fmt::format("'{}' has no arguments", scope_)
                                        : fmt::format("arguments of '{}': {}", scope_, fmt::join(known, ", "));
      fail(loc_, "unknown argument '${}'{}; {}", name, did_you_mean(name, known), avail);
    }
    const json& v = env_[name];
    if (v.is_null()) fail(loc_, "argument '${}' of '{}' has no value: pass it in the layer's args", name, scope_);
    return v;
  }
  json arith(const json& a, const json& b, char op) {
    if (!a.is_number() || !b.is_number())
      error("'{}' needs numbers, found {} and {}", op == 'f' ? std::string("//") : std::string(1, op), a.dump(),
            b.dump());
    bool ints = integral(a) && integral(b);
    if (ints) {
      int64_t x = a.get<int64_t>(), y = b.get<int64_t>();
      if (y == 0 && (op == '/' || op == 'f' || op == '%')) error("division by zero");
      try {
        switch (op) {
          case '+': return checked_add(x, y);
          case '-': return checked_sub(x, y);
          case '*': return checked_mul(x, y);
          case '/':
            if (checked_floormod(x, y) == 0) return checked_floordiv(x, y);
            return static_cast<double>(x) / static_cast<double>(y);
          case 'f': return checked_floordiv(x, y);
          case '%': return checked_floormod(x, y);
        }
      } catch (const SizeOverflow& e) {
        error("{}", e.what());
      }
    }
    double x = num(a), y = num(b);
    switch (op) {
      case '+': return x + y;
      case '-': return x - y;
      case '*': return x * y;
      case '/': return x / y;
      case 'f': return std::floor(x / y);
      case '%': return std::fmod(x, y);
    }
    error("unknown operator");
  }

  const std::string& s_;
  const json& env_;
  const SourceLoc& loc_;
  const std::string& scope_;
  size_t p_ = 0;
  int64_t depth_ = 0;
};

}  // namespace

bool is_expression(const json& v) { return v.is_string() && !v.get<std::string>().empty() && v.get<std::string>()[0] == '$'; }

json resolve_expressions(const json& v, const json& env, const SourceLoc& loc, const std::string& scope) {
  if (is_expression(v)) {
    std::string text = v.get<std::string>().substr(1);
    return Parser(text, env, loc, scope).parse();
  }
  if (v.is_array()) {
    json out = json::array();
    for (auto& e : v) out.push_back(resolve_expressions(e, env, loc, scope));
    return out;
  }
  if (v.is_object()) {
    json out = json::object();
    for (auto& [k, e] : v.items()) out[k] = resolve_expressions(e, env, loc, scope);
    return out;
  }
  return v;
}

}  // namespace mithril
