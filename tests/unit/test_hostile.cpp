// Model files are untrusted input: text from them reaches generated code only
// escaped (cpp_string, cpp_comment, c_identifier), sizes are checked arithmetic,
// and expansion is bounded (support/limits.h). docs/security.md.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "frontend/document.h"
#include "frontend/expr.h"
#include "helpers.h"
#include "support/checked.h"
#include "support/cpp_text.h"
#include "support/limits.h"

using namespace mithril;
using namespace mithril::test;
using Catch::Contains;

namespace {

std::string all_bytes() {
  std::string s;
  for (int c = 0; c < 256; ++c) s += static_cast<char>(c);
  return s + "?\?/?\?=?\?'\"\\\"\\";
}

// Compiles `source` with the system C++ compiler (with the runtime's headers, so the macros generated
// code sees are defined) and runs it; returns its standard output. Fails the test if either fails.
std::string compile_and_run(const std::string& source) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / fmt::format("mithril-hostile-{}", ::getpid());
  fs::create_directories(dir);
  { std::ofstream(dir / "t.cpp") << source; }
  std::string cmd = fmt::format("c++ -std=c++20 -Wall -Werror -I{}/runtime/include {} -o {} 2>&1 && {} > {}", MITHRIL_SOURCE_DIR,
                                (dir / "t.cpp").string(), (dir / "t").string(), (dir / "t").string(), (dir / "out").string());
  int rc = std::system(cmd.c_str());
  std::ifstream in(dir / "out", std::ios::binary);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  REQUIRE(rc == 0);
  return out;
}

}  // namespace

TEST_CASE("cpp_string keeps every byte value, as the C++ compiler reads it", "[hostile]") {
  const std::string text = all_bytes();
  std::string lit = cpp_string(text);
  for (size_t i = 1; i + 1 < lit.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(lit[i]);
    CHECK((c >= 0x20 && c < 0x7f));  // only printable ASCII in the source
    if (lit[i] == '"') CHECK(lit[i - 1] == '\\');
    CHECK(!(lit[i] == '?' && lit[i + 1] == '?'));
  }
  // The compiled literal holds exactly the bytes, and a comment of the same text hides no code.
  std::string src = "#include <cstdio>\n#include \"mithril/rt/runtime.h\"\n"
                    "static const char text[] = " + lit + ";\n" +
                    "// " + cpp_comment(text) + "\n" + "static int hidden = 1;  // a line a splice would swallow\n" +
                    "int main() { std::fwrite(text, 1, sizeof text - 1, stdout); return hidden - 1; }\n";
  CHECK(compile_and_run(src) == text);
}

TEST_CASE("cpp_comment never ends in a line splice or holds a control character", "[hostile]") {
  for (const std::string& s : {std::string("a\\"), std::string("a\\ "), std::string("x\ny"), std::string("a\r\\"), all_bytes()}) {
    std::string c = cpp_comment(s);
    for (size_t i = 0; i < c.size(); ++i) {
      unsigned char ch = static_cast<unsigned char>(c[i]);
      CHECK((ch >= 0x20 && ch < 0x7f));
      if (c[i] == '\\') CHECK((i + 1 < c.size() && c[i + 1] == 'x'));
    }
  }
}

TEST_CASE("c_identifier gives usable identifiers for keywords, macros and reserved names", "[hostile]") {
  const std::vector<std::string> names = {"and", "or", "not", "xor", "bitand", "compl", "int", "class", "main", "errno", "linux",
                                          "unix", "EOF", "NULL", "INT_MAX", "M_PI", "EINVAL", "__LINE__", "_Foo", "a__b", "",
                                          "1x", "x.y", "std", "stdout", "assert", "\xc3\xa9t\xc3\xa9", "?\?/", "a b", "NAN", "I"};
  std::string decls;
  std::set<std::string> seen;
  for (auto& n : names) {
    std::string id = c_identifier(n);
    INFO(n << " -> " << id);
    CHECK(!cpp_reserved(id));
    CHECK(id.find("__") == std::string::npos);
    CHECK(id[0] != '_');
    if (seen.insert(id).second) decls += fmt::format("  int {} = 1;\n  (void){};\n", id, id);
  }
  CHECK(c_identifier("block1.conv2") == "block1_conv2");  // ordinary names read as before
  CHECK(c_identifier("fc1.weight") == "fc1_weight");
  compile_and_run("#include <cerrno>\n#include <climits>\n#include <cmath>\n#include <csignal>\n#include <cstdio>\n"
                  "#include \"mithril/rt/runtime.h\"\nint main() {\n" + decls + "  return 0;\n}\n");
}

TEST_CASE("cpp_number prints infinities and NaN as expressions", "[hostile]") {
  CHECK(cpp_number(0.5) == "0.5");
  CHECK(cpp_number(-2) == "-2");
  CHECK(cpp_number(std::numeric_limits<double>::infinity()) == "std::numeric_limits<double>::infinity()");
  CHECK(cpp_number(-std::numeric_limits<double>::infinity()) == "(-std::numeric_limits<double>::infinity())");
  CHECK(cpp_number(std::nan("")) == "std::numeric_limits<double>::quiet_NaN()");
}

TEST_CASE("sizes are checked 64-bit arithmetic", "[hostile]") {
  CHECK_THROWS_AS(checked_mul(INT64_C(1) << 62, 4), SizeOverflow);
  CHECK_THROWS_AS(checked_floordiv(INT64_MIN, -1), SizeOverflow);
  CHECK_THROWS_AS(checked_floordiv(1, 0), SizeOverflow);
  CHECK(checked_floormod(INT64_MIN, -1) == 0);
  CHECK(checked_floordiv(-7, 2) == -4);
  Dim big(INT64_C(1) << 40);
  CHECK_THROWS_AS(big * big, SizeOverflow);
  CHECK_THROWS_AS(Dim(INT64_MAX) + Dim(1), SizeOverflow);
  CHECK_THROWS_AS((Dim::symbol("N") * Dim(INT64_C(1) << 40)).eval({{"N", INT64_C(1) << 30}}), SizeOverflow);
  CHECK((Dim(INT64_MIN) - Dim::symbol("N")).str() == "-N-9223372036854775808");
  CHECK(!double_is_int64(1e300));
  CHECK(!double_is_int64(9223372036854775808.0));
  CHECK(double_is_int64(-9223372036854775808.0));
}

TEST_CASE("$ expressions: overflow, INT64_MIN // -1 and deep nesting are errors", "[hostile]") {
  json env = {{"k", INT64_C(4294967296)}, {"m", INT64_MIN}};
  SourceLoc loc{"e.yaml", 3, 4};
  auto err = [&](const std::string& e) {
    try {
      resolve_expressions(json(e), env, loc, "m");
    } catch (const CompileError& ex) {
      return std::string(ex.what());
    }
    return std::string();
  };
  CHECK_THAT(err("$k * k"), Contains("does not fit in a 64-bit integer"));
  CHECK_THAT(err("$m // -1"), Contains("does not fit"));
  CHECK_THAT(err("$m / -1"), Contains("does not fit"));
  CHECK(err("$m % -1").empty());
  CHECK_THAT(err("$-m"), Contains("does not fit"));
  CHECK_THAT(err("$k // 0"), Contains("division by zero"));
  CHECK_THAT(err("$" + std::string(100000, '(') + "1" + std::string(100000, ')')), Contains("nested more than"));
  CHECK_THAT(err("$" + std::string(100000, '-') + "1"), Contains("nested more than"));
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  CHECK_THAT(err("$" + nots + "true"), Contains("nested more than"));
  CHECK(err("$((((k))))").empty());
}

TEST_CASE("huge sizes are errors at the layer, never a wrap", "[hostile]") {
  const std::string base = "name: big\ninputs:\n  input: {shape: [N, 4]}\nlayers:\n";
  CHECK_THAT(check_error(base + "  - {op: Linear, args: {dimension: 4611686018427387904}}\n"),
             Contains("test.yaml:5:5: error: layer '0' (Linear): '0.weight' [4611686018427387904, 4] has more than"));
  CHECK_THAT(check_error("name: big\ninputs:\n  input: {shape: [4, 4611686018427387904, 4]}\nlayers:\n  - Flatten\n"),
             Contains("test.yaml:5:5: error: layer '0' (Flatten): a size does not fit in 64 bits"));
  CHECK_THAT(check_error(base + "  - {op: Linear, args: {dimension: 1099511627777}}\n"), Contains("elements"));
  CHECK_THAT(check_error(base + "  - {op: Linear, args: {dimension: 1.0e300}}\n"), Contains("dimension"));
  CHECK_THAT(check_error("name: big\ninputs:\n  input: {shape: [9223372036854775807, 9223372036854775807]}\nlayers:\n  - Relu\n"),
             Contains("elements"));
}

TEST_CASE("names are printable text", "[hostile]") {
  const std::string base = "name: n\ninputs:\n  input: {shape: [N, 4]}\nlayers:\n";
  CHECK_THAT(check_error(base + "  - {op: Relu, name: \"a\\nb\"}\n"), Contains("contains a control character (\\x0a)"));
  CHECK_THAT(check_error(base + "  - {op: Relu, name: \"a\\x01\"}\n"), Contains("control character"));
  CHECK_THAT(check_error("name: n\ninputs:\n  \"in\\tput\": {shape: [N, 4]}\nlayers:\n  - Relu\n"), Contains("control character"));
  CHECK_THAT(check_error(base + "  - {op: Relu, name: \"\xff\xfe\"}\n"), Contains("not valid UTF-8"));
  CHECK(check_error(base + "  - {op: Relu, name: \"caf\xc3\xa9 \\\" ?\?/ */ \\\\\"}\n").empty());  // escaped where code is made
  CHECK_THAT(check_error("name: n\ninputs:\n  input: {shape: [4]}\nparams:\n  w: {shape: [4], init: {kind: \"x\\\"); system(\\\"ls\"}}\n"
                         "layers:\n  - {op: Add, right: w}\n"),
             Contains("unknown initializer"));
}

TEST_CASE("expansion is bounded: repeat, composites, aliases, nesting", "[hostile]") {
  const std::string base = "name: n\ninputs:\n  input: {shape: [N, 4]}\n";
  CHECK_THAT(check_error(base + "layers:\n  - {op: Relu, repeat: 1000000000000}\n"), Contains("past the limit of 200000 layers"));
  // Each composite uses the one before twice: 2^40 layers.
  std::string models = "models:\n  M0:\n    layers: [Relu]\n";
  for (int i = 1; i <= 40; ++i) models += fmt::format("  M{}:\n    layers: [M{}, M{}]\n", i, i - 1, i - 1);
  CHECK_THAT(check_error(base + models + "layers: [M40]\n"), Contains("--limit layers=N"));
  std::string lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) lol += fmt::format("{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n", char('a' + i),
                                                 char('a' + i), char('a' + i - 1), char('a' + i - 1), char('a' + i - 1),
                                                 char('a' + i - 1), char('a' + i - 1), char('a' + i - 1), char('a' + i - 1),
                                                 char('a' + i - 1), char('a' + i - 1), char('a' + i - 1));
  CHECK_THAT(check_error(lol), Contains("YAML aliases"));
  CHECK_THAT(check_error("a: " + std::string(300, '[') + std::string(300, ']') + "\n"), Contains("nested more than 256 deep"));
  CHECK_THAT(check_error("a: " + std::string(5000, '[') + std::string(5000, ']') + "\n"), Contains("error: "));
  // A deep but finite nesting of distinct composites is not called recursion.
  std::string chain = "models:\n  C0:\n    layers: [Relu]\n";
  for (int i = 1; i <= 70; ++i) chain += fmt::format("  C{}:\n    layers: [C{}]\n", i, i - 1);
  std::string e = check_error(base + chain + "layers: [C70]\n");
  CHECK_THAT(e, Contains("composites deep, past the limit of 64"));
  CHECK_THAT(check_error(base + "models:\n  R:\n    layers: [R]\nlayers: [R]\n"), Contains("instantiates itself"));
}

TEST_CASE("limits are set by name", "[hostile]") {
  Limits saved = limits();
  set_limit("layers=5");
  CHECK(limits().layers == 5);
  CHECK_THAT(check_error("name: n\ninputs:\n  input: {shape: [N, 4]}\nlayers:\n  - {op: Relu, repeat: 6}\n"), Contains("limit of 5"));
  limits() = saved;
  CHECK_THROWS_WITH(set_limit("layer=5"), Contains("did you mean 'layers'"));
  CHECK_THROWS_WITH(set_limit("layers=-1"), Contains("positive integer"));
}
