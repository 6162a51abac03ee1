// blas.h - thin, checked wrappers over CBLAS (OpenBLAS, or BLIS when the
// runtime is built with -DMITHRIL_BLAS=blis) for generated code.
//
// All matrices are row-major. Leading dimensions are in elements. Arguments
// are validated (non-negative sizes, leading dimensions large enough) and
// errors throw Error instead of reaching BLAS's xerbla.
//
//   // C[M,N] = A[M,K] * B[N,K]^T
//   mithril::rt::gemm(Transpose::No, Transpose::Yes, M, N, K, 1.f, A, K, B, K, 0.f, C, N);
#pragma once

#include <cstdint>

namespace mithril::rt {

enum class Transpose : bool { No = false, Yes = true };

// C = alpha * op(A) * op(B) + beta * C, op(A) is MxK, op(B) is KxN, C is MxN.
// Chosen per shape: M == 1 or N == 1 with M*N*K >= 2^17 runs as gemv, where
// OpenBLAS's gemm is weak; everything else as gemm (src/blas.cpp,
// docs/performance.md "GEMM per shape").
void gemm(Transpose trans_a, Transpose trans_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
          const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C, std::int64_t ldc);
void gemm(Transpose trans_a, Transpose trans_b, std::int64_t M, std::int64_t N, std::int64_t K, double alpha,
          const double* A, std::int64_t lda, const double* B, std::int64_t ldb, double beta, double* C,
          std::int64_t ldc);

// y = alpha * op(A) * x + beta * y, A is MxN (row-major, leading dim lda).
void gemv(Transpose trans, std::int64_t M, std::int64_t N, float alpha, const float* A, std::int64_t lda,
          const float* x, std::int64_t incx, float beta, float* y, std::int64_t incy);
void gemv(Transpose trans, std::int64_t M, std::int64_t N, double alpha, const double* A, std::int64_t lda,
          const double* x, std::int64_t incx, double beta, double* y, std::int64_t incy);

// `batch` independent gemms; matrix i of A starts at A + i*stride_a (same for
// B, C). A stride of 0 broadcasts that operand over the batch; stride_c must
// be non-zero when batch > 1.
void gemm_batched(Transpose trans_a, Transpose trans_b, std::int64_t batch, std::int64_t M, std::int64_t N,
                  std::int64_t K, float alpha, const float* A, std::int64_t lda, std::int64_t stride_a,
                  const float* B, std::int64_t ldb, std::int64_t stride_b, float beta, float* C, std::int64_t ldc,
                  std::int64_t stride_c);
void gemm_batched(Transpose trans_a, Transpose trans_b, std::int64_t batch, std::int64_t M, std::int64_t N,
                  std::int64_t K, double alpha, const double* A, std::int64_t lda, std::int64_t stride_a,
                  const double* B, std::int64_t ldb, std::int64_t stride_b, double beta, double* C,
                  std::int64_t ldc, std::int64_t stride_c);

// The BLAS library's own thread count (openblas_set_num_threads or
// bli_thread_set_num_threads); n < 1 counts as 1. Use set_num_threads
// (threads.h), which also sets OpenMP's.
void set_blas_num_threads(int n);

// The BLAS library linked in: "openblas" or "blis".
const char* blas_library();

}  // namespace mithril::rt
