// blas.cpp - argument checks and float/double dispatch to cblas_?gemm/?gemv.
// One template per operation; the overloads below only forward to it.
#include "mithril/rt/blas.h"

#include <cblas.h>

#include <algorithm>
#include <limits>
#include <string>

#include "mithril/rt/error.h"

namespace mithril::rt {

namespace {

CBLAS_TRANSPOSE to_cblas(Transpose t) { return t == Transpose::Yes ? CblasTrans : CblasNoTrans; }

// BLAS takes 32-bit ints (LP64 OpenBLAS); reject values that do not fit.
blasint to_blas_int(std::int64_t v, const char* fn, const char* name) {
    if (v < 0 || v > std::numeric_limits<blasint>::max())
        throw Error(std::string(fn) + ": " + name + " = " + std::to_string(v) + " is out of range");
    return static_cast<blasint>(v);
}

void check_ld(const char* fn, const char* name, std::int64_t ld, std::int64_t cols) {
    if (ld < std::max<std::int64_t>(1, cols))
        throw Error(std::string(fn) + ": " + name + " = " + std::to_string(ld) + " is smaller than the " +
                    std::to_string(cols) + " columns of the row-major matrix");
}

void check_inc(const char* fn, const char* name, std::int64_t inc) {
    if (inc == 0) throw Error(std::string(fn) + ": " + name + " must not be 0");
}

void call_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, float alpha, const float* a,
               blasint lda, const float* b, blasint ldb, float beta, float* c, blasint ldc) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void call_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, double alpha,
               const double* a, blasint lda, const double* b, blasint ldb, double beta, double* c, blasint ldc) {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void call_gemv(CBLAS_TRANSPOSE t, blasint m, blasint n, float alpha, const float* a, blasint lda, const float* x,
               blasint incx, float beta, float* y, blasint incy) {
    cblas_sgemv(CblasRowMajor, t, m, n, alpha, a, lda, x, incx, beta, y, incy);
}
void call_gemv(CBLAS_TRANSPOSE t, blasint m, blasint n, double alpha, const double* a, blasint lda, const double* x,
               blasint incx, double beta, double* y, blasint incy) {
    cblas_dgemv(CblasRowMajor, t, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

template <class T>
void gemm_impl(Transpose ta, Transpose tb, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A,
               std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
    const char* fn = "gemm";
    const blasint m = to_blas_int(M, fn, "M"), n = to_blas_int(N, fn, "N"), k = to_blas_int(K, fn, "K");
    check_ld(fn, "lda", lda, ta == Transpose::Yes ? M : K);
    check_ld(fn, "ldb", ldb, tb == Transpose::Yes ? K : N);
    check_ld(fn, "ldc", ldc, N);
    call_gemm(to_cblas(ta), to_cblas(tb), m, n, k, alpha, A, to_blas_int(lda, fn, "lda"), B,
              to_blas_int(ldb, fn, "ldb"), beta, C, to_blas_int(ldc, fn, "ldc"));
}

template <class T>
void gemv_impl(Transpose t, std::int64_t M, std::int64_t N, T alpha, const T* A, std::int64_t lda, const T* x,
               std::int64_t incx, T beta, T* y, std::int64_t incy) {
    const char* fn = "gemv";
    const blasint m = to_blas_int(M, fn, "M"), n = to_blas_int(N, fn, "N");
    check_ld(fn, "lda", lda, N);
    check_inc(fn, "incx", incx);
    check_inc(fn, "incy", incy);
    call_gemv(to_cblas(t), m, n, alpha, A, to_blas_int(lda, fn, "lda"), x, static_cast<blasint>(incx), beta, y,
              static_cast<blasint>(incy));
}

template <class T>
void gemm_batched_impl(Transpose ta, Transpose tb, std::int64_t batch, std::int64_t M, std::int64_t N,
                       std::int64_t K, T alpha, const T* A, std::int64_t lda, std::int64_t stride_a, const T* B,
                       std::int64_t ldb, std::int64_t stride_b, T beta, T* C, std::int64_t ldc,
                       std::int64_t stride_c) {
    if (batch < 0) throw Error("gemm_batched: batch = " + std::to_string(batch) + " is negative");
    if (stride_a < 0 || stride_b < 0 || stride_c < 0) throw Error("gemm_batched: strides must be non-negative");
    if (batch > 1 && stride_c == 0)
        throw Error("gemm_batched: stride_c = 0 would make all " + std::to_string(batch) + " products write the same C");
    for (std::int64_t i = 0; i < batch; ++i)
        gemm_impl(ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta, C + i * stride_c, ldc);
}

}  // namespace

void gemm(Transpose ta, Transpose tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha, const float* A,
          std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C, std::int64_t ldc) {
    gemm_impl(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemm(Transpose ta, Transpose tb, std::int64_t M, std::int64_t N, std::int64_t K, double alpha, const double* A,
          std::int64_t lda, const double* B, std::int64_t ldb, double beta, double* C, std::int64_t ldc) {
    gemm_impl(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemv(Transpose t, std::int64_t M, std::int64_t N, float alpha, const float* A, std::int64_t lda, const float* x,
          std::int64_t incx, float beta, float* y, std::int64_t incy) {
    gemv_impl(t, M, N, alpha, A, lda, x, incx, beta, y, incy);
}
void gemv(Transpose t, std::int64_t M, std::int64_t N, double alpha, const double* A, std::int64_t lda,
          const double* x, std::int64_t incx, double beta, double* y, std::int64_t incy) {
    gemv_impl(t, M, N, alpha, A, lda, x, incx, beta, y, incy);
}
void gemm_batched(Transpose ta, Transpose tb, std::int64_t batch, std::int64_t M, std::int64_t N, std::int64_t K,
                  float alpha, const float* A, std::int64_t lda, std::int64_t stride_a, const float* B,
                  std::int64_t ldb, std::int64_t stride_b, float beta, float* C, std::int64_t ldc,
                  std::int64_t stride_c) {
    gemm_batched_impl(ta, tb, batch, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c);
}
void gemm_batched(Transpose ta, Transpose tb, std::int64_t batch, std::int64_t M, std::int64_t N, std::int64_t K,
                  double alpha, const double* A, std::int64_t lda, std::int64_t stride_a, const double* B,
                  std::int64_t ldb, std::int64_t stride_b, double beta, double* C, std::int64_t ldc,
                  std::int64_t stride_c) {
    gemm_batched_impl(ta, tb, batch, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c);
}

}  // namespace mithril::rt
