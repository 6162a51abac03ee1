// blas.cpp - argument checks and float/double dispatch to cblas_?gemm/?gemv,
// for OpenBLAS or BLIS (runtime/CMakeLists.txt, MITHRIL_BLAS; the same CBLAS
// calls either way). One template per operation; the overloads below only
// forward to it.
#include "mithril/rt/blas.h"

#if defined(MITHRIL_RT_BLAS_BLIS)
#include <cblas.h>  // BLIS's: also defines its integer types (f77_int, dim_t)
// From blis.h, declared here: blis.h (45,000 lines) warns under -Wextra.
extern "C" void bli_thread_set_num_threads(dim_t n_threads);
#else
#include <cblas.h>
// Declared here rather than via cblas.h: not every cblas.h (e.g. netlib's)
// declares the OpenBLAS extensions, but libopenblas always exports them.
extern "C" void openblas_set_num_threads(int num_threads);
#endif

#include <algorithm>
#include <limits>
#include <string>

#include "mithril/rt/error.h"

namespace mithril::rt {

namespace {

// The integer type of the CBLAS interface: 32 bits in Debian's OpenBLAS (LP64)
// and BLIS (libblis4, "32bit") alike.
#if defined(MITHRIL_RT_BLAS_BLIS)
using blasint = f77_int;
#endif

CBLAS_TRANSPOSE to_cblas(Transpose t) { return t == Transpose::Yes ? CblasTrans : CblasNoTrans; }

// BLAS takes 32-bit ints (LP64 OpenBLAS, 32-bit BLIS); reject values that do not fit.
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

// GEMM per shape (docs/performance.md, "GEMM per shape"). A product whose C has
// a single row (M == 1: a batch-1 Linear) or a single column (N == 1) is a
// matrix-vector product. OpenBLAS 0.3.21's sgemm handles it as a general gemm,
// at 1.2-4.9x the time of its sgemv on the same operands once M*N*K reaches
// 2^17 (2 threads: 1x512x784 1.8x, 2304x1x768 4.0x, 1x2304x768 4.9x), while below
// that sgemv's fixed cost and its threading (from 9216 elements on) lose, up to
// 2x at 64x1x512. BLIS 0.9's own sgemm already hands such shapes to its gemv
// (same times either way). So: M == 1 or N == 1, with M*N*K >= kGemvMinMacs, goes
// to gemv; everything else to gemm as given. Measured by tools/bench/bench_gemm.py
// (tools/bench/results/gemm-*.md) and the sweep in docs/performance.md.
//
// Row-major, op(X) meaning X or X^T:
//   M == 1: C[0, :] = alpha * op(B)^T op(A)[0, :] + beta * C[0, :]
//           x = op(A)'s row: A[k] (A not transposed) or A[k * lda] (A^T, A is K x 1)
//           y = C's row, stride 1; matrix B: B is N x K (B^T): gemv(B); K x N: gemv(B^T)
//   N == 1: C[:, 0] = alpha * op(A) op(B)[:, 0] + beta * C[:, 0]
//           x = op(B)'s column: B[k * ldb] (B is K x 1) or B[k] (B^T, B is 1 x K)
//           y = C's column, stride ldc; matrix A: M x K: gemv(A); A^T (K x M): gemv(A^T)
// K == 0 never gets here: gemm scales C by beta, where gemv returns early without
// touching y. With beta == 0 both libraries' gemv overwrite y without reading it,
// as gemm does (C may hold anything, NaN included).
constexpr std::int64_t kGemvMinMacs = std::int64_t{1} << 17;

template <class T>
bool gemm_as_gemv(Transpose ta, Transpose tb, blasint m, blasint n, blasint k, T alpha, const T* A, blasint lda,
                  const T* B, blasint ldb, T beta, T* C, blasint ldc) {
    if (m == 0 || n == 0 || k == 0 || (m != 1 && n != 1)) return false;
    if (std::int64_t{m} * n * k < kGemvMinMacs) return false;
    if (m == 1) {
        const blasint incx = ta == Transpose::Yes ? lda : 1;
        if (tb == Transpose::Yes)
            call_gemv(CblasNoTrans, n, k, alpha, B, ldb, A, incx, beta, C, 1);
        else
            call_gemv(CblasTrans, k, n, alpha, B, ldb, A, incx, beta, C, 1);
    } else {
        const blasint incx = tb == Transpose::Yes ? 1 : ldb;
        if (ta == Transpose::Yes)
            call_gemv(CblasTrans, k, m, alpha, A, lda, B, incx, beta, C, ldc);
        else
            call_gemv(CblasNoTrans, m, k, alpha, A, lda, B, incx, beta, C, ldc);
    }
    return true;
}

template <class T>
void gemm_impl(Transpose ta, Transpose tb, std::int64_t M, std::int64_t N, std::int64_t K, T alpha, const T* A,
               std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
    const char* fn = "gemm";
    const blasint m = to_blas_int(M, fn, "M"), n = to_blas_int(N, fn, "N"), k = to_blas_int(K, fn, "K");
    check_ld(fn, "lda", lda, ta == Transpose::Yes ? M : K);
    check_ld(fn, "ldb", ldb, tb == Transpose::Yes ? K : N);
    check_ld(fn, "ldc", ldc, N);
    const blasint la = to_blas_int(lda, fn, "lda"), lb = to_blas_int(ldb, fn, "ldb"), lc = to_blas_int(ldc, fn, "ldc");
    if (gemm_as_gemv(ta, tb, m, n, k, alpha, A, la, B, lb, beta, C, lc)) return;
    call_gemm(to_cblas(ta), to_cblas(tb), m, n, k, alpha, A, la, B, lb, beta, C, lc);
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

void set_blas_num_threads(int n) {
    if (n < 1) n = 1;
#if defined(MITHRIL_RT_BLAS_BLIS)
    bli_thread_set_num_threads(n);
#else
    openblas_set_num_threads(n);
#endif
}

const char* blas_library() {
#if defined(MITHRIL_RT_BLAS_BLIS)
    return "blis";
#else
    return "openblas";
#endif
}

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
