// test_blas.cpp - gemm / gemv / gemm_batched against naive loops, with
// transposes, odd non-square sizes, padded leading dimensions and broadcast;
// gemm's single-row and single-column shapes, which it runs as gemv.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mithril/rt/blas.h"
#include "mithril/rt/error.h"
#include "mithril/rt/threads.h"
#include "test_support.h"

using namespace mithril::rt;
using Catch::Contains;

namespace {

using rt_test::random_vector;

// Row-major element (r, c) of op(X) where X has leading dimension ld.
template <class T>
T op_at(const T* X, bool trans, std::int64_t ld, std::int64_t r, std::int64_t c) {
    return trans ? X[c * ld + r] : X[r * ld + c];
}

template <class T>
void naive_gemm(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A,
                std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
    for (std::int64_t i = 0; i < M; ++i)
        for (std::int64_t j = 0; j < N; ++j) {
            double acc = 0;
            for (std::int64_t k = 0; k < K; ++k) acc += double(op_at(A, ta, lda, i, k)) * double(op_at(B, tb, ldb, k, j));
            C[i * ldc + j] = static_cast<T>(alpha * acc + beta * C[i * ldc + j]);
        }
}

template <class T>
void check_gemm(bool ta, bool tb) {
    const std::int64_t M = 7, N = 5, K = 11, pad = 3;
    const std::int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    const auto A = random_vector<T>(std::size_t((ta ? K : M) * lda), 1);
    const auto B = random_vector<T>(std::size_t((tb ? N : K) * ldb), 2);
    auto C = random_vector<T>(std::size_t(M * ldc), 3);
    auto want = C;
    const T alpha = T(1.5), beta = T(-0.5);
    gemm(ta ? Transpose::Yes : Transpose::No, tb ? Transpose::Yes : Transpose::No, M, N, K, alpha, A.data(), lda,
         B.data(), ldb, beta, C.data(), ldc);
    naive_gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, want.data(), ldc);
    const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
    for (std::size_t i = 0; i < C.size(); ++i) REQUIRE(std::abs(C[i] - want[i]) <= tol);
}

// gemm with M == 1 or N == 1 (run as gemv from 2^17 multiply-adds on, src/blas.cpp)
// against the naive loop in double: padded leading dimensions, so every stride of
// the routing shows. Tolerance: a multiple of the unit roundoff times the sum of
// |terms| of each element. beta == 0 over a C full of NaN must overwrite it, as
// BLAS gemm does.
template <class T>
void check_gemm_shape(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, T beta) {
    const std::int64_t pad = 3;
    const std::int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    const auto A = random_vector<T>(std::size_t((ta ? K : M) * lda), 11);
    const auto B = random_vector<T>(std::size_t((tb ? N : K) * ldb), 12);
    const auto C0 = random_vector<T>(std::size_t(M * ldc), 13);
    auto C = C0;
    if (beta == T(0))
        for (std::int64_t i = 0; i < M; ++i)
            for (std::int64_t j = 0; j < N; ++j) C[std::size_t(i * ldc + j)] = std::numeric_limits<T>::quiet_NaN();
    gemm(ta ? Transpose::Yes : Transpose::No, tb ? Transpose::Yes : Transpose::No, M, N, K, alpha, A.data(), lda,
         B.data(), ldb, beta, C.data(), ldc);
    const double rel = sizeof(T) == 4 ? 1e-5 : 1e-13;
    for (std::int64_t i = 0; i < M; ++i) {
        for (std::int64_t j = 0; j < N; ++j) {
            double acc = 0, mag = 0;
            for (std::int64_t k = 0; k < K; ++k) {
                const double term = double(op_at(A.data(), ta, lda, i, k)) * double(op_at(B.data(), tb, ldb, k, j));
                acc += term;
                mag += std::abs(term);
            }
            const double c0 = beta == T(0) ? 0.0 : double(C0[std::size_t(i * ldc + j)]);
            const double want = double(alpha) * acc + double(beta) * c0;
            const double tol = rel * (std::abs(double(alpha)) * mag + std::abs(double(beta) * c0) + 1e-30);
            const std::size_t at = std::size_t(i * ldc + j);
            if (!(std::abs(double(C[at]) - want) <= tol)) {
                INFO("C[" << i << ", " << j << "] = " << C[at] << ", want " << want << ", tolerance " << tol);
                REQUIRE(std::abs(double(C[at]) - want) <= tol);
            }
        }
        // The padding after each row is never written.
        for (std::int64_t j = N; j < ldc; ++j) REQUIRE(C[std::size_t(i * ldc + j)] == C0[std::size_t(i * ldc + j)]);
    }
}

template <class T>
void check_gemv(bool trans) {
    const std::int64_t M = 9, N = 4, lda = N + 2;
    const auto A = random_vector<T>(std::size_t(M * lda), 4);
    const std::int64_t xlen = trans ? M : N, ylen = trans ? N : M;
    const auto x = random_vector<T>(std::size_t(xlen * 2), 5);  // incx = 2
    auto y = random_vector<T>(std::size_t(ylen), 6);
    auto want = y;
    gemv(trans ? Transpose::Yes : Transpose::No, M, N, T(2), A.data(), lda, x.data(), 2, T(0.25), y.data(), 1);
    for (std::int64_t i = 0; i < ylen; ++i) {
        double acc = 0;
        for (std::int64_t k = 0; k < xlen; ++k)
            acc += double(trans ? A[k * lda + i] : A[i * lda + k]) * double(x[std::size_t(k * 2)]);
        want[std::size_t(i)] = static_cast<T>(2 * acc + 0.25 * want[std::size_t(i)]);
    }
    const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(std::abs(y[i] - want[i]) <= tol);
}

}  // namespace

TEST_CASE("gemm matches a naive loop for all transposes (float, double)", "[blas]") {
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            INFO("transA=" << ta << " transB=" << tb);
            check_gemm<float>(ta, tb);
            check_gemm<double>(ta, tb);
        }
}

TEST_CASE("gemv matches a naive loop (float, double)", "[blas]") {
    for (bool t : {false, true}) {
        INFO("trans=" << t);
        check_gemv<float>(t);
        check_gemv<double>(t);
    }
}

TEST_CASE("gemm_batched with a broadcast operand", "[blas]") {
    const std::int64_t batch = 3, M = 3, N = 5, K = 2;
    const auto A = random_vector<float>(std::size_t(batch * M * K), 7);
    const auto B = random_vector<float>(std::size_t(K * N), 8);  // shared by every batch (stride 0)
    std::vector<float> C(std::size_t(batch * M * N), 0.f), want = C;
    gemm_batched(Transpose::No, Transpose::No, batch, M, N, K, 1.f, A.data(), K, M * K, B.data(), N, 0, 0.f,
                 C.data(), N, M * N);
    for (std::int64_t b = 0; b < batch; ++b)
        naive_gemm(false, false, M, N, K, 1.f, A.data() + b * M * K, K, B.data(), N, 0.f, want.data() + b * M * N, N);
    for (std::size_t i = 0; i < C.size(); ++i) REQUIRE(std::abs(C[i] - want[i]) <= 1e-5);

    // Double, broadcasting A instead, with B transposed.
    const auto Ad = random_vector<double>(std::size_t(M * K), 9);
    const auto Bd = random_vector<double>(std::size_t(batch * N * K), 10);
    std::vector<double> Cd(std::size_t(batch * M * N), 0.0), wantd = Cd;
    gemm_batched(Transpose::No, Transpose::Yes, batch, M, N, K, 1.0, Ad.data(), K, 0, Bd.data(), K, N * K, 0.0,
                 Cd.data(), N, M * N);
    for (std::int64_t b = 0; b < batch; ++b)
        naive_gemm(false, true, M, N, K, 1.0, Ad.data(), K, Bd.data() + b * N * K, K, 0.0, wantd.data() + b * M * N, N);
    for (std::size_t i = 0; i < Cd.size(); ++i) REQUIRE(std::abs(Cd[i] - wantd[i]) <= 1e-12);
}

TEST_CASE("blas wrappers reject bad arguments with Error", "[blas]") {
    std::vector<float> buf(64, 0.f);
    REQUIRE_THROWS_WITH(gemm(Transpose::No, Transpose::No, 4, 4, 4, 1.f, buf.data(), 3, buf.data(), 4, 0.f,
                             buf.data(), 4),
                        Contains("lda = 3 is smaller than the 4 columns"));
    REQUIRE_THROWS_WITH(gemm(Transpose::No, Transpose::No, -1, 4, 4, 1.f, buf.data(), 4, buf.data(), 4, 0.f,
                             buf.data(), 4),
                        Contains("M = -1 is out of range"));
    REQUIRE_THROWS_WITH(gemv(Transpose::No, 2, 2, 1.f, buf.data(), 2, buf.data(), 0, 0.f, buf.data(), 1),
                        Contains("incx must not be 0"));
    REQUIRE_THROWS_WITH(gemm_batched(Transpose::No, Transpose::No, 2, 2, 2, 2, 1.f, buf.data(), 2, 4, buf.data(), 2,
                                     4, 0.f, buf.data(), 2, 0),
                        Contains("stride_c = 0"));
}

TEST_CASE("gemm with one row or one column (run as gemv) matches a naive loop", "[blas]") {
    struct Shape {
        std::int64_t M, N, K;
    };
    // At or above 2^17 multiply-adds (gemv): M == 1 (a batch-1 Linear), N == 1, both;
    // below it (gemm): the same kinds of shapes, and a plain gemm next to them.
    const Shape shapes[] = {{1, 512, 784}, {1, 300, 437}, {400, 1, 330}, {1, 1, 131072},
                            {1, 37, 53},   {41, 1, 29},   {1, 1, 19},    {1, 9, 1},
                            {6, 1, 1},     {5, 4, 3}};
    for (const auto& sh : shapes)
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                INFO("M=" << sh.M << " N=" << sh.N << " K=" << sh.K << " transA=" << ta << " transB=" << tb);
                check_gemm_shape<float>(ta, tb, sh.M, sh.N, sh.K, 1.5f, -0.5f);
                check_gemm_shape<float>(ta, tb, sh.M, sh.N, sh.K, 1.0f, 0.0f);
                check_gemm_shape<double>(ta, tb, sh.M, sh.N, sh.K, -0.75, 2.0);
                check_gemm_shape<double>(ta, tb, sh.M, sh.N, sh.K, 1.0, 0.0);
            }
}

TEST_CASE("gemm with K == 0 scales C by beta, also for one row or column", "[blas]") {
    for (auto [M, N] : {std::pair<std::int64_t, std::int64_t>{1, 5}, {4, 1}, {3, 2}}) {
        std::vector<float> A(8, 1.f), B(8, 1.f), C(std::size_t(M * N), 2.f);
        gemm(Transpose::No, Transpose::Yes, M, N, 0, 1.f, A.data(), 1, B.data(), 1, 0.5f, C.data(), N);
        for (float c : C) REQUIRE(c == 1.f);
    }
}

TEST_CASE("the BLAS library linked in has a name", "[blas]") {
    const std::string name = blas_library();
    REQUIRE((name == "openblas" || name == "blis"));
    const int n = num_threads();
    set_blas_num_threads(1);  // either library's own setter
    set_blas_num_threads(n);
}
