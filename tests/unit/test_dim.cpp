// Symbolic dimensions: canonical forms, arithmetic, division, evaluation.
#include <catch2/catch.hpp>

#include "ir/dim.h"

using namespace mithril;

TEST_CASE("constants and symbols combine into canonical polynomials") {
  Dim N = Dim::symbol("N"), T = Dim::symbol("T");
  CHECK((N * 784).str() == "N*784");
  CHECK(Dim(784) * N == N * 784);
  CHECK((N * T * 12).str() == "N*T*12");
  CHECK((N + 1 - 1) == N);
  CHECK((N - 1).str() == "N-1");
  CHECK(Dim(3) + Dim(4) == Dim(7));
  CHECK((N * 2 + T).str() == "N*2+T");
  CHECK(Dim(5).is_const());
  CHECK_FALSE(N.is_const());
}

TEST_CASE("floor division simplifies when exact and stays symbolic otherwise") {
  Dim H = Dim::symbol("H");
  CHECK(Dim::floordiv(Dim(7), 2) == Dim(3));
  CHECK(Dim::floordiv(Dim(-7), 2) == Dim(-4));
  CHECK(Dim::floordiv(H * 4 + 8, 4) == H + 2);
  Dim d = Dim::floordiv(H - 1, 2) + 1;
  CHECK_FALSE(d.is_const());
  CHECK(d.eval({{"H", 32}}) == 16);
  CHECK(d.substitute({{"H", 33}}) == Dim(17));
  CHECK(d.symbols() == std::set<std::string>{"H"});
}

TEST_CASE("exact division by monomials, as Reshape's -1 needs") {
  Dim N = Dim::symbol("N"), T = Dim::symbol("T");
  CHECK(*(N * T * 768).exact_div(N * T) == Dim(768));
  CHECK(*(N * 784).exact_div(Dim(28 * 28)) == N);
  CHECK_FALSE((N * 10).exact_div(Dim(3)).has_value());
  CHECK_FALSE((N * 10).exact_div(T).has_value());
  CHECK(*(N + T).exact_div(N + T) == Dim(1));
}

TEST_CASE("evaluation needs every symbol") {
  Dim N = Dim::symbol("N");
  CHECK((N * 3 + 1).eval({{"N", 4}}) == 13);
  CHECK_FALSE((N * 3).eval({}).has_value());
  CHECK(shape_str({N, Dim(784)}) == "[N, 784]");
  CHECK(numel({N, Dim(2), Dim(3)}) == N * 6);
}
