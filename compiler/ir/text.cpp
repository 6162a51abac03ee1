#include "ir/text.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>

namespace mithril {

std::string quote_ir_string(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

std::string type_str(const Value& v) {
  if (!v.typed) return "?";
  return fmt::format("{}{}", v.dtype == DType::f32 ? "" : std::string(dtype_name(v.dtype)), shape_str(v.shape));
}

std::string json_str(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Whether value v is written by the node that its `producer` names (then the node's line defines it).
bool defined_by_node(const Graph& g, const Value& v) {
  if (v.kind != ValueKind::Temp || v.producer < 0 || v.producer >= static_cast<int>(g.nodes.size())) return false;
  for (auto& port : g.nodes[v.producer].outputs)
    for (int o : port)
      if (o == v.id) return true;
  return false;
}

// A name where a word stands (the graph's, an output's, a bound symbol's): bare when it is a word of
// letters, digits, '_', '.' and '-', else quoted.
bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }
std::string word(const std::string& s) {
  bool bare = !s.empty() && std::all_of(s.begin(), s.end(), is_word_char);
  return bare ? s : quote_ir_string(s);
}
// A node's instance name, the rest of its line after "# ": bare unless it is empty, starts with a
// quote or a space, ends with a space or holds a control character.
std::string rest_of_line_name(const std::string& s) {
  bool bare = !s.empty() && s.front() != '"' && s.front() != ' ' && s.front() != '\t' && s.back() != ' ' && s.back() != '\t' &&
              std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  return bare ? s : quote_ir_string(s);
}

std::vector<int> default_inputs(const Graph& g) {
  std::vector<int> out;
  for (auto& v : g.values)
    if (v.kind == ValueKind::Input) out.push_back(v.id);
  return out;
}

}  // namespace

std::string print_ir(const Graph& g, const OpTable& ops) {
  std::string out = fmt::format("graph {} {{\n", word(g.name));
  for (auto& [sym, val] : g.bindings) out += fmt::format("  bind {}={}\n", word(sym), val);
  // Declared here: the values no node writes, and the results named otherwise than their node.
  for (auto& v : g.values) {
    if (defined_by_node(g, v) && v.name == g.nodes[v.producer].name) continue;
    out += fmt::format("  %{} = {} {} : {}", v.id, value_kind_name(v.kind), quote_ir_string(v.name), type_str(v));
    if (!v.init.is_null()) out += " init " + json_str(v.init);
    out += "\n";
  }
  if (g.inputs != default_inputs(g)) {
    out += "  inputs";
    for (size_t i = 0; i < g.inputs.size(); ++i) out += fmt::format("{}%{}", i ? ", " : " ", g.inputs[i]);
    out += "\n";
  }
  for (auto& n : g.nodes) {
    if (n.id == g.forward_nodes) out += "  // backward pass\n";
    OpSignature sig = ops.signature(*n.op);
    std::string lhs, args, types;
    for (size_t p = 0; p < n.outputs.size(); ++p)
      for (int id : n.outputs[p]) {
        const Value& v = g.value(id);
        lhs += fmt::format("{}%{}", lhs.empty() ? "" : ", ", id);
        if (sig.outputs.size() != 1) lhs += ":" + (p < sig.outputs.size() ? sig.outputs[p] : std::to_string(p));
        types += (types.empty() ? "" : ", ") + type_str(v);
      }
    for (size_t p = 0; p < n.inputs.size(); ++p)
      for (int v : n.inputs[p])
        args += fmt::format("{}%{}:{}", args.empty() ? "" : ", ", v, p < sig.inputs.size() ? sig.inputs[p] : std::to_string(p));
    std::string attrs = n.attrs.empty() ? "" : " " + json_str(n.attrs);
    out += fmt::format("  {}{}({}){}{}  # {}\n", lhs.empty() ? "" : lhs + " = ", sig.name, args, attrs,
                       types.empty() ? "" : " : " + types, rest_of_line_name(n.name));
  }
  if (g.forward_nodes >= 0 && g.forward_nodes >= static_cast<int>(g.nodes.size())) out += "  // backward pass\n";
  if (!g.output_grads.empty()) {
    out += "  output_grads";
    for (size_t i = 0; i < g.output_grads.size(); ++i)
      out += (i ? ", " : " ") + (g.output_grads[i] < 0 ? std::string("none") : "%" + std::to_string(g.output_grads[i]));
    out += "\n";
  }
  std::string outs;
  for (size_t i = 0; i < g.outputs.size(); ++i)
    outs += fmt::format("{}{}=%{}", i ? ", " : "",
                        word(i < g.output_names.size() ? g.output_names[i] : std::string()), g.outputs[i]);
  for (size_t i = 0; i < g.grads.size(); ++i)
    outs += fmt::format("{}grad(%{})=%{}", outs.empty() ? "" : ", ", i < g.grad_of.size() ? g.grad_of[i] : -1, g.grads[i]);
  out += fmt::format("  return{}{}\n}}\n", outs.empty() ? "" : " ", outs);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The parser: one statement per line.

namespace {

class Parser {
 public:
  Parser(const std::string& text, const std::string& file, const OpTable& ops) : text_(text), file_(file), ops_(ops) {}

  Graph run() {
    // Header: comments and blank lines, then `graph NAME {`.
    skip_blank_lines();
    if (at_end()) error_here("expected 'graph NAME {{'; the file has no graph");
    expect_word("graph");
    skip_space();
    g_.name = parse_word("the graph's name");
    expect('{');
    end_of_line();
    in_graph_ = true;
    bool closed = false;
    while (true) {
      skip_blank_lines();
      if (at_end()) break;
      skip_space();
      if (peek() == '}') {
        ++pos_;
        end_of_line();
        closed = true;
        break;
      }
      statement();
    }
    if (!closed) error_here("expected '}}' closing the graph");
    skip_blank_lines();
    if (!at_end()) error_here("unexpected text after the graph's closing '}}'");
    finish();
    return std::move(g_);
  }

 private:
  const std::string& text_;
  const std::string& file_;
  const OpTable& ops_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;
  Graph g_;

  struct Pending {
    Value value;
    bool defined = false;
    SourceLoc first_use;
  };
  std::map<int, Pending> values_;
  bool have_inputs_ = false, seen_return_ = false, in_graph_ = false;
  int dim_depth_ = 0;
  std::vector<int> inputs_;

  SourceLoc here() const { return SourceLoc{file_, line_, static_cast<int>(pos_ - line_start_) + 1}; }
  SourceLoc at(size_t pos) const { return SourceLoc{file_, line_, static_cast<int>(pos - line_start_) + 1}; }
  template <typename... Args>
  [[noreturn]] void error_here(fmt::format_string<Args...> f, Args&&... args) const {
    fail(here(), f, std::forward<Args>(args)...);
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\n' : text_[pos_]; }
  bool at_eol() const { return at_end() || text_[pos_] == '\n' || text_[pos_] == '\r'; }

  void skip_space() {
    while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  void next_line() {
    while (!at_end() && text_[pos_] != '\n') ++pos_;
    if (!at_end()) {
      ++pos_;
      ++line_;
      line_start_ = pos_;
    }
  }
  // Blank lines and comment lines (`# ...`, `// ...`).
  void skip_blank_lines() {
    while (!at_end()) {
      size_t save = pos_;
      skip_space();
      if (in_graph_ && is_backward_label()) {
        pos_ = save;
        return;
      }
      if (at_eol() || peek() == '#' || text_.compare(pos_, 2, "//") == 0) {
        if (at_end()) return;
        next_line();
        continue;
      }
      pos_ = save;
      return;
    }
  }
  // `// backward pass` on a line of its own: where the backward pass starts (Graph::forward_nodes).
  bool is_backward_label() const {
    static const std::string label = "// backward pass";
    if (text_.compare(pos_, label.size(), label) != 0) return false;
    size_t e = pos_ + label.size();
    while (e < text_.size() && (text_[e] == ' ' || text_[e] == '\t' || text_[e] == '\r')) ++e;
    return e >= text_.size() || text_[e] == '\n';
  }
  // A name where a word stands: a quoted string, or letters, digits, '_', '.' and '-'.
  std::string parse_word(const char* what) {
    skip_space();
    if (peek() == '"') return parse_string();
    size_t b = pos_;
    while (!at_end() && is_word_char(text_[pos_])) ++pos_;
    if (pos_ == b) error_here("expected {}", what);
    return text_.substr(b, pos_ - b);
  }
  // The rest of the line: spaces and a `#` comment only.
  void end_of_line() {
    skip_space();
    if (peek() == '#') next_line();
    else if (at_eol()) {
      if (peek() == '\r') ++pos_;
      if (!at_end() && text_[pos_] != '\n') error_here("unexpected carriage return");
      next_line();
    } else error_here("unexpected '{}' at the end of the statement", text_.substr(pos_, 1));
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) {
      if (at_eol()) error_here("expected '{}' before the end of the line", c);
      error_here("expected '{}', found '{}'", c, text_.substr(pos_, 1));
    }
    ++pos_;
  }
  bool accept(char c) {
    skip_space();
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  // The comma-separated items of the rest of a statement line (none when it ends or a comment
  // starts): `item` parses one, the spaces before it skipped.
  template <class F>
  void parse_list(const F& item) {
    skip_space();
    if (at_eol() || peek() == '#') return;
    do {
      skip_space();
      item();
    } while (accept(','));
  }
  static bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
  static bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
  std::string parse_ident(const char* what) {
    skip_space();
    if (!ident_start(peek())) error_here("expected {}", what);
    size_t b = pos_;
    while (!at_end() && ident_char(text_[pos_])) ++pos_;
    return text_.substr(b, pos_ - b);
  }
  std::string peek_ident() {
    size_t save = pos_;
    skip_space();
    std::string w;
    if (ident_start(peek())) w = parse_ident("a word");
    pos_ = save;
    return w;
  }
  void expect_word(const char* w) {
    skip_space();
    size_t b = pos_;
    std::string got = ident_start(peek()) ? parse_ident(w) : "";
    if (got != w) {
      pos_ = b;
      error_here("expected '{}'", w);
    }
  }
  int64_t parse_int(const char* what) {
    skip_space();
    size_t b = pos_;
    if (peek() == '-') ++pos_;
    while (!at_end() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text_.data() + b, text_.data() + pos_, v);
    if (ec != std::errc() || p != text_.data() + pos_ || pos_ == b) {
      pos_ = b;
      if (ec == std::errc::result_out_of_range) error_here("{} does not fit in 64 bits", what);
      error_here("expected {}", what);
    }
    return v;
  }
  // A JSON string: the extent up to the closing quote, decoded by the JSON parser.
  std::string parse_string() {
    skip_space();
    if (peek() != '"') error_here("expected a quoted string");
    size_t b = pos_++;
    while (true) {
      if (at_eol()) {
        pos_ = b;
        error_here("unterminated string");
      }
      char c = text_[pos_++];
      if (c == '\\') {
        if (at_eol()) continue;
        ++pos_;
      } else if (c == '"') break;
    }
    return parse_json_text(b, pos_).get<std::string>();
  }
  json parse_json_text(size_t b, size_t e) {
    try {
      return json::parse(text_.begin() + static_cast<std::ptrdiff_t>(b), text_.begin() + static_cast<std::ptrdiff_t>(e));
    } catch (const json::parse_error& err) {
      size_t off = b + (err.byte > 0 ? err.byte - 1 : 0);
      std::string msg = err.what();
      if (auto k = msg.find(": "); k != std::string::npos && msg.rfind("[json.exception", 0) == 0) msg = msg.substr(k + 2);
      fail(at(std::min(off, e)), "malformed JSON: {}", msg);
    }
  }
  // A JSON value on the rest of the line: an object or array (brackets matched outside strings),
  // a string, or a scalar up to the next space.
  json parse_json_value() {
    skip_space();
    size_t b = pos_;
    char c = peek();
    if (c == '{' || c == '[') {
      int depth = 0;
      bool in_str = false;
      while (true) {
        if (at_eol()) {
          pos_ = b;
          error_here("unbalanced '{}' in JSON", c);
        }
        char d = text_[pos_++];
        if (in_str) {
          if (d == '\\') {
            if (!at_eol()) ++pos_;
          } else if (d == '"') in_str = false;
        } else if (d == '"') in_str = true;
        else if (d == '{' || d == '[') ++depth;
        else if (d == '}' || d == ']') {
          if (--depth == 0) break;
        }
      }
      return parse_json_text(b, pos_);
    }
    if (c == '"') return json(parse_string());
    while (!at_eol() && text_[pos_] != ' ' && text_[pos_] != '\t' && text_[pos_] != '#') ++pos_;
    if (pos_ == b) error_here("expected a JSON value");
    return parse_json_text(b, pos_);
  }

  // %ID
  int parse_ref() {
    skip_space();
    if (peek() != '%') error_here("expected a value (%ID)");
    ++pos_;
    size_t b = pos_;
    if (!std::isdigit(static_cast<unsigned char>(peek()))) error_here("expected a value number after '%'");
    while (!at_end() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    int id = 0;
    auto [p, ec] = std::from_chars(text_.data() + b, text_.data() + pos_, id);
    if (ec != std::errc() || id > 100000000) {
      pos_ = b;
      error_here("value number too large");
    }
    return id;
  }
  Pending& use(int id, SourceLoc loc) {
    auto [it, fresh] = values_.try_emplace(id);
    if (fresh) it->second.first_use = std::move(loc);
    return it->second;
  }
  Pending& define(int id, SourceLoc loc) {
    Pending& p = use(id, loc);
    if (p.defined) fail(loc, "value %{} is defined twice", id);
    p.defined = true;
    p.value.id = id;
    p.value.loc = loc;
    return p;
  }

  // ---- dims and types
  Dim dim_expr() {
    skip_space();
    bool neg = false;
    if (peek() == '-') {
      ++pos_;
      neg = true;
    }
    Dim d = dim_term();
    if (neg) d = Dim(0) - d;
    while (true) {
      skip_space();
      if (peek() == '+') {
        ++pos_;
        d = d + dim_term();
      } else if (peek() == '-') {
        ++pos_;
        d = d - dim_term();
      } else return d;
    }
  }
  Dim dim_term() {
    Dim d = dim_factor();
    while (true) {
      skip_space();
      if (text_.compare(pos_, 2, "//") == 0) {
        pos_ += 2;
        size_t b = pos_;
        int64_t den = parse_int("a divisor");
        if (den <= 0) fail(at(b), "a floor division's divisor must be positive");
        d = Dim::floordiv(d, den);
      } else if (peek() == '*') {
        ++pos_;
        d = d * dim_factor();
      } else return d;
    }
  }
  Dim dim_factor() {
    skip_space();
    if (peek() == '(') {
      if (++dim_depth_ > 64) error_here("a dim nested more than 64 parentheses deep");
      ++pos_;
      Dim d = dim_expr();
      expect(')');
      --dim_depth_;
      return d;
    }
    if (ident_start(peek())) return Dim::symbol(parse_ident("a dim"));
    if (std::isdigit(static_cast<unsigned char>(peek()))) return Dim(parse_int("a dim"));
    error_here("expected a dim: a number, a symbol or a parenthesized expression");
  }
  // `?`, `[d, ...]` (float32) or `DTYPE[d, ...]`; sets dtype, shape and typed.
  void parse_type(Value& v) {
    skip_space();
    if (accept('?')) {
      v.typed = false;
      return;
    }
    v.dtype = DType::f32;
    if (ident_start(peek())) {
      size_t b = pos_;
      std::string t = parse_ident("a dtype");
      auto dt = parse_dtype(t);
      if (!dt) fail(at(b), "unknown dtype '{}'{}", t, did_you_mean(t, dtype_names()));
      v.dtype = *dt;
    }
    if (peek() != '[') error_here("expected a shape '[...]' or '?'");
    ++pos_;
    v.shape.clear();
    if (!accept(']')) {
      do v.shape.push_back(dim_expr());
      while (accept(','));
      expect(']');
    }
    v.typed = true;
  }

  // ---- statements
  void statement() {
    skip_space();
    size_t b = pos_;
    if (peek() == '%') {
      int id = parse_ref();
      skip_space();
      std::string kind_word;
      if (peek() == '=') {
        size_t save = pos_;
        ++pos_;
        kind_word = peek_ident();
        skip_space();
        std::string w = kind_word;
        if (!w.empty()) {
          parse_ident("a word");
          skip_space();
          bool is_decl = peek() == '"' && (w == "input" || w == "param" || w == "state" || w == "temp");
          pos_ = save;
          if (is_decl) return declaration(id, b);
        }
        pos_ = save;
      }
      pos_ = b;
      return node_line();
    }
    std::string w = peek_ident();
    if (w == "bind") {
      parse_ident("bind");
      skip_space();
      size_t sb = pos_;
      std::string sym = parse_word("a symbol");
      expect('=');
      int64_t v = parse_int("the bound value");
      if (!g_.bindings.emplace(sym, v).second) fail(at(sb), "'{}' is bound twice", sym);
      return end_of_line();
    }
    if (w == "inputs") {
      parse_ident("inputs");
      if (have_inputs_) fail(at(b), "a second 'inputs' statement");
      have_inputs_ = true;
      parse_list([&] {
        inputs_.push_back(parse_ref());
        use(inputs_.back(), here());
      });
      return end_of_line();
    }
    if (is_backward_label()) {
      if (g_.forward_nodes >= 0) fail(at(b), "a second '// backward pass'");
      g_.forward_nodes = static_cast<int>(g_.nodes.size());
      return next_line();
    }
    if (w == "output_grads") {
      parse_ident("output_grads");
      parse_list([&] {
        if (peek_ident() == "none") {
          parse_ident("none");
          g_.output_grads.push_back(-1);
        } else {
          SourceLoc l = here();
          g_.output_grads.push_back(parse_ref());
          use(g_.output_grads.back(), l);
        }
      });
      return end_of_line();
    }
    if (w == "return") {
      parse_ident("return");
      if (seen_return_) fail(at(b), "a second 'return'");
      seen_return_ = true;
      parse_list([&] {
        if (peek_ident() == "grad" && text_.compare(pos_ + 4, 1, "(") == 0) {
          parse_ident("grad");
          expect('(');
          SourceLoc l = here();
          int of = parse_ref();
          use(of, l);
          expect(')');
          expect('=');
          skip_space();
          l = here();
          int gr = parse_ref();
          use(gr, l);
          g_.grad_of.push_back(of);
          g_.grads.push_back(gr);
        } else {
          if (!g_.grads.empty()) error_here("model outputs come before the gradients in 'return'");
          std::string name = parse_word("an output name");
          expect('=');
          skip_space();
          SourceLoc l = here();
          int v = parse_ref();
          use(v, l);
          g_.output_names.push_back(name);
          g_.outputs.push_back(v);
        }
      });
      return end_of_line();
    }
    if (ident_start(peek())) return node_line();
    error_here("expected a statement: '%ID = KIND \"NAME\" : TYPE', a node, 'bind', 'inputs', '// backward pass', "
               "'output_grads', 'return' or '}}'");
  }

  void declaration(int id, size_t b) {
    Pending& p = define(id, at(b));
    expect('=');
    std::string kind = parse_ident("a value kind");
    Value& v = p.value;
    v.kind = kind == "input" ? ValueKind::Input : kind == "param" ? ValueKind::Param : kind == "state" ? ValueKind::State : ValueKind::Temp;
    v.name = parse_string();
    expect(':');
    parse_type(v);
    if (peek_ident() == "init") {
      parse_ident("init");
      v.init = parse_json_value();
    }
    end_of_line();
  }

  void node_line() {
    skip_space();
    SourceLoc node_loc = here();
    Node n;
    n.id = static_cast<int>(g_.nodes.size());
    struct Out {
      int id;
      std::string port;
      std::optional<std::string> name;
      SourceLoc loc, port_loc;
    };
    std::vector<Out> outs;
    if (peek() == '%') {
      do {
        skip_space();
        Out o;
        o.loc = here();
        o.id = parse_ref();
        if (peek() == ':') {
          ++pos_;
          o.port_loc = here();
          o.port = parse_ident("an output port name");
        }
        skip_space();
        if (peek() == '"') o.name = parse_string();
        outs.push_back(std::move(o));
      } while (accept(','));
      expect('=');
    }
    skip_space();
    size_t op_at = pos_;
    std::string op_name = parse_ident("an op name");
    n.op = ops_.find(op_name);
    if (!n.op)
      fail(at(op_at), "unknown op '{}'{}", op_name, ops_.names ? did_you_mean(op_name, ops_.names()) : std::string());
    OpSignature sig = ops_.signature(*n.op);
    n.inputs.resize(sig.inputs.size());
    n.outputs.resize(sig.outputs.size());
    auto port_index = [&](const std::vector<std::string>& ports, const std::string& name, const SourceLoc& loc,
                          const char* dir) {
      for (size_t i = 0; i < ports.size(); ++i)
        if (ports[i] == name) return i;
      fail(loc, "op {} has no {} port '{}'{}; its {} ports: {}", op_name, dir, name, did_you_mean(name, ports), dir,
           ports.empty() ? std::string("none") : fmt::format("{}", fmt::join(ports, ", ")));
    };
    expect('(');
    if (!accept(')')) {
      do {
        skip_space();
        SourceLoc l = here();
        int id = parse_ref();
        expect(':');
        SourceLoc pl = here();
        std::string port = parse_ident("an input port name");
        use(id, l);
        n.inputs[port_index(sig.inputs, port, pl, "input")].push_back(id);
      } while (accept(','));
      expect(')');
    }
    skip_space();
    n.attrs = json::object();
    if (peek() == '{') {
      json a = parse_json_value();
      if (!a.is_object()) error_here("a node's arguments are a JSON object");
      n.attrs = std::move(a);
    }
    std::vector<Value> types(outs.size());
    if (!outs.empty()) {
      expect(':');
      for (size_t i = 0; i < outs.size(); ++i) {
        if (i) expect(',');
        parse_type(types[i]);
      }
      if (accept(',')) error_here("more types than the node has outputs");
    }
    // The instance name: the rest of the line after "# ", or a quoted string there.
    expect('#');
    if (peek() != ' ') error_here("expected '# NAME' (the node's instance name) after its types");
    ++pos_;
    if (peek() == '"') {
      n.name = parse_string();
      end_of_line();
    } else {
      size_t b = pos_;
      while (!at_end() && text_[pos_] != '\n') ++pos_;
      size_t e = pos_;
      if (e > b && text_[e - 1] == '\r') --e;
      n.name = text_.substr(b, e - b);
      if (n.name.empty()) error_here("expected the node's instance name after '# '");
      next_line();
    }
    n.loc = node_loc;
    for (size_t i = 0; i < outs.size(); ++i) {
      Out& o = outs[i];
      size_t port = 0;
      if (!o.port.empty()) port = port_index(sig.outputs, o.port, o.port_loc, "output");
      else if (sig.outputs.size() != 1)
        fail(o.loc, "op {} has {} output ports: name the port of %{} (%{}:{})", op_name, sig.outputs.size(), o.id, o.id,
             sig.outputs.empty() ? "output" : sig.outputs[0]);
      n.outputs[port].push_back(o.id);
      auto it = values_.find(o.id);
      if (it != values_.end() && it->second.defined) {
        Value& v = it->second.value;
        if (v.producer >= 0) fail(o.loc, "value %{} is written by two nodes", o.id);
        if (o.name) fail(o.loc, "value %{} is declared above with its name; leave the name out here", o.id);
        v.producer = n.id;
        continue;
      }
      Pending& p = define(o.id, o.loc);
      Value& v = p.value;
      v.kind = ValueKind::Temp;
      v.name = o.name ? *o.name : n.name;
      v.dtype = types[i].dtype;
      v.shape = types[i].shape;
      v.typed = types[i].typed;
      v.producer = n.id;
    }
    g_.nodes.push_back(std::move(n));
  }

  void finish() {
    SourceLoc end = here();
    if (!seen_return_) fail(end, "the graph has no 'return' statement");
    for (auto& [id, p] : values_)
      if (!p.defined) fail(p.first_use, "value %{} is used but never defined", id);
    int expect_id = 0;
    for (auto& [id, p] : values_) {
      if (id != expect_id) fail(end, "value numbers must be dense: %{} is missing (the graph has %{})", expect_id, id);
      ++expect_id;
      g_.values.push_back(std::move(p.value));
    }
    if (have_inputs_) g_.inputs = inputs_;
    else g_.inputs = default_inputs(g_);
    if (!g_.output_grads.empty() && g_.output_grads.size() != g_.outputs.size())
      fail(end, "'output_grads' lists {} values for {} outputs", g_.output_grads.size(), g_.outputs.size());
  }
};

}  // namespace

Graph parse_ir(const std::string& text, const std::string& file, const OpTable& ops) {
  return Parser(text, file, ops).run();
}

}  // namespace mithril
