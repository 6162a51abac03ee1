// kernels/gemm.h - Mithril's own float GEMM for a right operand known ahead of
// time (a Linear layer's weight at inference), with the layer's epilogue fused.
//
//   C[M, N] = act(A[M, K] B[K, N] + bias[N])
//
// B is packed once (pack_b) into panels of gemm_panel_width() columns, k-major
// and zero-padded, so that the micro-kernel streams each panel with aligned
// vector loads. The micro-kernel keeps a tile of gemm_tile_rows() x panel
// width results in vector registers over the whole K, then adds the bias,
// applies `act` (any elementwise functor: identity, ReLU, GELU...) and writes
// each result once. Tiles are spread over OpenMP threads panel-major, so every
// panel is read from memory once per block of rows and then reused from cache.
//
// The vector width is the compiler's: 16 floats with AVX-512, 8 with AVX, 4
// otherwise (GCC/Clang vector extensions; the generated project's -march picks
// it). Measured at 2 threads on an AMD EPYC (Zen 4): 217-230 GFLOP/s on the MLP
// and GPT-2 shapes of tools/bench, 1.2-1.9x OpenBLAS 0.3.21's sgemm on the same
// products, and 2x its gemv at M = 1 (docs/performance.md, "Packed GEMM").
//
//   std::vector<float> P(k::packed_b_size(N, K));
//   k::pack_b(P.data(), W, N, K, K, true);                  // W is [N, K] (a Linear weight)
//   k::gemm_packed(C, X, P.data(), bias, M, N, K, K, k::Relu{});
#pragma once

#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mithril/rt/kernels/common.h"

// Everything below depends on the vector width, so it lives in an inline namespace named
// after it: translation units built with different -march flags (the runtime's tests) get
// distinct functions instead of one silently replacing the other at link time.
#if defined(__AVX512F__)
#define MITHRIL_K_GEMM_ABI gemm_v16
#elif defined(__AVX__)
#define MITHRIL_K_GEMM_ABI gemm_v8
#else
#define MITHRIL_K_GEMM_ABI gemm_v4
#endif

#ifndef MITHRIL_K_GEMM_ROWS_OUTER
#define MITHRIL_K_GEMM_ROWS_OUTER 8
#endif

namespace mithril::rt::k {
inline namespace MITHRIL_K_GEMM_ABI {

namespace gemm_detail {
#if defined(__AVX512F__)
inline constexpr int kVec = 16;
#elif defined(__AVX__)
inline constexpr int kVec = 8;
#else
inline constexpr int kVec = 4;
#endif
// Two vectors of columns per panel, kMR rows per tile: 2 * kMR accumulators plus
// two panel vectors and a broadcast fit the register file (32 zmm with AVX-512,
// 16 ymm or xmm otherwise).
inline constexpr int kNR = 2 * kVec;
inline constexpr int kMR = kVec == 16 ? 8 : 6;
typedef float vec __attribute__((vector_size(kVec * sizeof(float))));

inline vec load(const float* p) {
    vec v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store(float* p, vec v) { std::memcpy(p, &v, sizeof v); }
}  // namespace gemm_detail

// Whether generated code uses gemm_packed: only where the target has fused
// multiply-add (x86 with FMA, as -march=native gives on AVX2 and AVX-512 machines;
// AArch64). A portable x86-64 build (SSE2 only) runs this kernel at a third of
// the speed of OpenBLAS, which picks its kernels at run time, so there the
// generated code calls mithril::rt::gemm instead.
#if defined(__FMA__) || defined(__aarch64__)
inline constexpr bool kPackedGemm = true;
#else
inline constexpr bool kPackedGemm = false;
#endif

// The epilogue functors gemm_packed applies to every result (after the bias).
struct Identity {
    float operator()(float v) const { return v; }
};
struct Relu {
    float operator()(float v) const { return v < 0.f ? 0.f : v; }
};

// Any other epilogue behind one indirect call per tile: the compiled-once kernels (the
// runtime library's, see MITHRIL_K_INSTANCE) take it for a model's own functor, which
// then runs over each tile's rows while they are in L1 (the loop is compiled, and
// vectorized, in the model's source). `act` must outlive the product.
class SpanEpilogue {
public:
    template <class F>
    explicit SpanEpilogue(const F& act)
        : act_(&act), fn_([](const void* a, float* c, int64_t ldc, int64_t rows, int64_t cols) {
              const F& f = *static_cast<const F*>(a);
              for (int64_t i = 0; i < rows; ++i)
                  for (int64_t j = 0; j < cols; ++j) c[i * ldc + j] = f(c[i * ldc + j]);
          }) {}
    void operator()(float* c, int64_t ldc, int64_t rows, int64_t cols) const { fn_(act_, c, ldc, rows, cols); }

private:
    const void* act_;
    void (*fn_)(const void*, float*, int64_t, int64_t, int64_t);
};

// Columns per packed panel and rows per register tile (for the compiler's vector width).
constexpr int64_t gemm_panel_width() { return gemm_detail::kNR; }
constexpr int64_t gemm_tile_rows() { return gemm_detail::kMR; }
// Floats gemm_rows may read past the end of a row of B: less than one panel. A
// bound for every vector width, so that scratch sized by code built for another
// one (the compiler's) still suffices.
constexpr int64_t gemm_row_slack() { return 64; }
static_assert(gemm_detail::kNR <= gemm_row_slack());

namespace gemm_detail {
// Width of panel p of an N-column operand: kNR, except a last panel of at most
// kVec columns, which is one vector wide (a 10-class head computes 16 columns, not 32).
constexpr int64_t panel_cols(int64_t N, int64_t p) {
    const int64_t rest = N - p * kNR;
    return rest >= kNR ? kNR : (rest > kVec ? kNR : kVec);
}
}  // namespace gemm_detail

// Floats pack_b writes for a K x N right operand: whole panels, zero-padded.
constexpr int64_t packed_b_size(int64_t N, int64_t K) {
    using namespace gemm_detail;
    if (N <= 0) return 0;
    const int64_t full = N / kNR, rest = N - full * kNR;
    return (full * kNR + (rest == 0 ? 0 : rest > kVec ? kNR : kVec)) * K;
}

// Packs B (K x N; or, with `transposed`, B^T given as N x K, i.e. a Linear weight
// [out, in]) with leading dimension ldb into P (packed_b_size(N, K) floats):
// panel p holds columns [p*NR, p*NR + NR) as K rows of NR floats, zero beyond N
// (a last panel of at most one vector of columns is one vector wide).
inline void pack_b(float* MITHRIL_K_RESTRICT P, const float* MITHRIL_K_RESTRICT B, int64_t N, int64_t K, int64_t ldb,
                   bool transposed) {
    constexpr int64_t NR = gemm_detail::kNR;
    const int64_t panels = (N + NR - 1) / NR;
    MITHRIL_K_PARFOR(N * K >= kParallelWork)
    for (int64_t p = 0; p < panels; ++p) {
        float* dst = P + p * K * NR;
        const int64_t n0 = p * NR, cols = std::min<int64_t>(NR, N - n0), width = gemm_detail::panel_cols(N, p);
        if (!transposed) {
            for (int64_t k = 0; k < K; ++k) {
                std::memcpy(dst + k * width, B + k * ldb + n0, static_cast<std::size_t>(cols) * sizeof(float));
                std::fill(dst + k * width + cols, dst + k * width + width, 0.f);
            }
            continue;
        }
        // B^T rows are B's columns: transpose blocks of 64 k so that reads and writes stay in cache.
        for (int64_t k0 = 0; k0 < K; k0 += 64) {
            const int64_t k1 = std::min<int64_t>(K, k0 + 64);
            for (int64_t j = 0; j < width; ++j) {
                const float* src = B + (n0 + j) * ldb;
                if (j < cols)
                    for (int64_t k = k0; k < k1; ++k) dst[k * width + j] = src[k];
                else
                    for (int64_t k = k0; k < k1; ++k) dst[k * width + j] = 0.f;
            }
        }
    }
}

namespace gemm_detail {

// Where row k of a panel of B starts: k rows of ps floats apart (packed panels, B
// read in place), or at its own offset (convolution windows read from the image).
struct StridedRows {
    const float* p;
    int64_t ps;
    const float* operator()(int64_t k) const { return p + k * ps; }
};
struct OffsetRows {
    const float* p;
    const int64_t* off;
    const float* operator()(int64_t k) const { return p + off[k]; }
};

// One tile: R rows of C (R <= kMR) by one panel of NV vectors (cols <= NV * kVec
// valid columns), the panel's row k at rows(k). A is read as A[i * lda + k], or
// with AT (A given transposed, K x M) as A[k * lda + i];
// col_bias (or null) is the panel's slice of a per-column bias, row_bias (or null)
// the tile's slice of a per-row one.
template <int R, int NV, bool AT = false, class Rows, class Act>
inline void tile(float* C, int64_t ldc, const float* A, int64_t lda, const Rows& rows, int64_t K, int64_t cols,
                 const float* col_bias, const float* row_bias, const Act& act) {
    vec acc[R][NV];
    for (int i = 0; i < R; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = vec{};
    const float* a[R];
    for (int i = 0; i < R; ++i) a[i] = A + i * lda;
    for (int64_t k = 0; k < K; ++k) {
        vec b[NV];
        const float* brow = rows(k);
        for (int v = 0; v < NV; ++v) b[v] = load(brow + v * kVec);
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i) {
            const float x = AT ? A[k * lda + i] : a[i][k];
            for (int v = 0; v < NV; ++v) acc[i][v] += x * b[v];
        }
    }
    // A SpanEpilogue runs once over the tile after the stores; any other functor per value.
    constexpr bool span = std::is_same_v<Act, SpanEpilogue>;
    const auto value = [&](float v) {
        if constexpr (span) return v;
        else return act(v);
    };
    float row[NV * kVec];
    for (int i = 0; i < R; ++i) {
        for (int v = 0; v < NV; ++v) store(row + v * kVec, acc[i][v]);
        float* c = C + i * ldc;
        const float rb = row_bias ? row_bias[i] : 0.f;
        if (col_bias)
            for (int64_t j = 0; j < cols; ++j) c[j] = value(row[j] + col_bias[j] + rb);
        else
            for (int64_t j = 0; j < cols; ++j) c[j] = value(row[j] + rb);
    }
    if constexpr (span) act(C, ldc, R, cols);
}

template <int R, bool AT = false, class Rows, class Act>
inline void tile_rows(int rows, float* C, int64_t ldc, const float* A, int64_t lda, const Rows& b, int64_t K,
                      int64_t cols, const float* col_bias, const float* row_bias, const Act& act) {
    if constexpr (R > 1)
        if (rows < R) return tile_rows<R - 1, AT>(rows, C, ldc, A, lda, b, K, cols, col_bias, row_bias, act);
    if (cols > kVec) tile<R, 2, AT>(C, ldc, A, lda, b, K, cols, col_bias, row_bias, act);
    else tile<R, 1, AT>(C, ldc, A, lda, b, K, cols, col_bias, row_bias, act);
}

// Every tile of C[M, N] = act(A B + biases), the rows of panel p of B given by
// rows_of(p) (StridedRows, OffsetRows): tiles panel-major within blocks of rows,
// threaded unless small or already inside a parallel region. With AT, A is given
// transposed (K x M, A[k * lda + i]).
template <bool AT = false, class RowsOf, class Act>
inline void run_tiles(float* C, const float* A, const RowsOf& rows_of, const float* col_bias, const float* row_bias,
                      int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldc, const Act& act) {
    if (M <= 0 || N <= 0) return;
    const int64_t panels = (N + kNR - 1) / kNR;
    // Rows per block: every panel is read from memory once per block and then stays in
    // the core's cache while the block's rows pass over it, from the shared cache: up to
    // 4 MiB of A per block. (Blocks as small as L2 would read a large B several times
    // from memory: 64 x 768 x 3072 ran 20% slower at 256 KiB.)
    const int64_t block_rows = std::max<int64_t>(kMR, (int64_t{1} << 20) / std::max<int64_t>(K, 1) / kMR * kMR);
    const int64_t blocks = (M + block_rows - 1) / block_rows;
    const int64_t tiles_per_block = (std::min(block_rows, M) + kMR - 1) / kMR;
    // Few panels (a convolution with few output positions: ResNet-18's 512 x 49 x 4608):
    // row tiles outermost instead, so that each tile's rows of A (the weights) come from
    // memory once and serve every panel from cache.
    const bool rows_outer = panels <= MITHRIL_K_GEMM_ROWS_OUTER;
    const int64_t row_tiles = (M + kMR - 1) / kMR;
    const int64_t tiles = rows_outer ? row_tiles * panels : blocks * panels * tiles_per_block;
    auto run = [&](int64_t t) {
        int64_t p, m0;
        if (rows_outer) {
            p = t % panels;
            m0 = t / panels * kMR;
        } else {
            const int64_t block = t / (panels * tiles_per_block), rest = t % (panels * tiles_per_block);
            p = rest / tiles_per_block;
            m0 = block * block_rows + rest % tiles_per_block * kMR;
            if (m0 >= M || m0 >= (block + 1) * block_rows) return;
        }
        const int rows = static_cast<int>(std::min<int64_t>(kMR, M - m0));
        const int64_t n0 = p * kNR;
        tile_rows<kMR, AT>(rows, C + m0 * ldc + n0, ldc, A + (AT ? m0 : m0 * lda), lda, rows_of(p), K,
                       std::min<int64_t>(kNR, N - n0), col_bias ? col_bias + n0 : nullptr,
                       row_bias ? row_bias + m0 : nullptr, act);
    };
    // Small products stay serial: even a one-thread OpenMP team costs a few hundred ns.
    bool serial = M * N * K < kParallelWork * 8;
#ifdef _OPENMP
    serial = serial || omp_in_parallel();
#endif
    if (serial) {
        for (int64_t t = 0; t < tiles; ++t) run(t);
        return;
    }
    MITHRIL_K_PARFOR(true)
    for (int64_t t = 0; t < tiles; ++t) run(t);
}

// The kernels themselves (the documented entry points below forward to them): templates
// on the epilogue, compiled into the runtime library for Identity and SpanEpilogue.
template <class Act>
void gemm_packed_impl(float* MITHRIL_K_RESTRICT C, const float* MITHRIL_K_RESTRICT A, const float* MITHRIL_K_RESTRICT P,
                      opt<const float*> bias, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldc,
                      const Act& act) {
    run_tiles(
        C, A, [&](int64_t p) { return StridedRows{P + p * K * kNR, panel_cols(N, p)}; }, bias, nullptr, M, N, K, lda,
        ldc, act);
}

template <class Act>
void gemm_packed_at_impl(float* MITHRIL_K_RESTRICT C, const float* MITHRIL_K_RESTRICT A,
                         const float* MITHRIL_K_RESTRICT P, opt<const float*> bias, int64_t M, int64_t N, int64_t K,
                         int64_t lda, int64_t ldc, const Act& act) {
    run_tiles<true>(
        C, A, [&](int64_t p) { return StridedRows{P + p * K * kNR, panel_cols(N, p)}; }, bias, nullptr, M, N, K, lda,
        ldc, act);
}

template <class Act>
void gemm_nn_impl(float* MITHRIL_K_RESTRICT C, const float* MITHRIL_K_RESTRICT A, const float* MITHRIL_K_RESTRICT B,
                  opt<const float*> row_bias, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                  const Act& act) {
    if (M <= 0 || N <= 0) return;
    const int64_t full = N / kNR, rest = N - full * kNR;
    const float* tail = nullptr;
    int64_t tail_width = 0;
    if (rest > 0) {
        static thread_local std::vector<float> buffer;
        tail_width = panel_cols(N, full);
        if (static_cast<int64_t>(buffer.size()) < K * tail_width) buffer.resize(static_cast<std::size_t>(K * tail_width));
        for (int64_t k = 0; k < K; ++k) {
            float* dst = buffer.data() + k * tail_width;
            std::memcpy(dst, B + k * ldb + full * kNR, static_cast<std::size_t>(rest) * sizeof(float));
            std::fill(dst + rest, dst + tail_width, 0.f);
        }
        tail = buffer.data();
    }
    run_tiles(
        C, A, [&](int64_t p) { return p < full ? StridedRows{B + p * kNR, ldb} : StridedRows{tail, tail_width}; },
        nullptr, row_bias, M, N, K, lda, ldc, act);
}

template <class Act>
void gemm_rows_impl(float* MITHRIL_K_RESTRICT C, const float* MITHRIL_K_RESTRICT A, const float* MITHRIL_K_RESTRICT B,
                    const int64_t* MITHRIL_K_RESTRICT off, opt<const float*> row_bias, int64_t M, int64_t N, int64_t K,
                    int64_t lda, int64_t ldc, const Act& act) {
    run_tiles(
        C, A, [&](int64_t p) { return OffsetRows{B + p * kNR, off}; }, nullptr, row_bias, M, N, K, lda, ldc, act);
}
}  // namespace gemm_detail

// An epilogue as the compiled-once kernels take it: Identity as it is, any other
// functor behind a SpanEpilogue.
template <class Act>
inline auto erase_epilogue(const Act& act) {
    if constexpr (std::is_same_v<Act, Identity> || std::is_same_v<Act, SpanEpilogue>) return act;
    else return SpanEpilogue(act);
}

// C[M, N] (leading dimension ldc) = act(A[M, K] (leading dimension lda) B + bias),
// B packed by pack_b; bias has N floats or is null. C must not overlap A or P.
template <class Act = Identity>
inline void gemm_packed(float* MITHRIL_K_RESTRICT C, const float* MITHRIL_K_RESTRICT A, const float* MITHRIL_K_RESTRICT P,
                        opt<const float*> bias, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldc,
                        const Act& act = Act{}) {
    gemm_detail::gemm_packed_impl(C, A, P, bias, M, N, K, lda, ldc, erase_epilogue(act));
}

// gemm_packed with A given transposed: C[M, N] = act(A^T B + bias) for A [K, M]
// (leading dimension lda >= M), B packed by pack_b. (Winograd's transformed
// inputs, [C, tiles], times its packed weights.)
template <class Act = Identity>
inline void gemm_packed_at(float* MITHRIL_K_RESTRICT C, const float* MITHRIL_K_RESTRICT A,
                           const float* MITHRIL_K_RESTRICT P, opt<const float*> bias, int64_t M, int64_t N, int64_t K,
                           int64_t lda, int64_t ldc, const Act& act = Act{}) {
    gemm_detail::gemm_packed_at_impl(C, A, P, bias, M, N, K, lda, ldc, erase_epilogue(act));
}

// C[M, N] = act(A[M, K] B[K, N] + row_bias) for a B that changes from call to call
// (convolution columns): whole panels are read from B in place (leading dimension
// ldb), only a last partial panel is copied, into a buffer of the calling thread
// that grows to the largest K seen and is then reused. row_bias has M floats or is
// null. Inside an OpenMP parallel region it runs on the calling thread.
template <class Act = Identity>
inline void gemm_nn(float* MITHRIL_K_RESTRICT C, const float* MITHRIL_K_RESTRICT A, const float* MITHRIL_K_RESTRICT B,
                    opt<const float*> row_bias, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                    const Act& act = Act{}) {
    gemm_detail::gemm_nn_impl(C, A, B, row_bias, M, N, K, lda, ldb, ldc, erase_epilogue(act));
}

// C[M, N] = act(A[M, K] B + row_bias) where row k of B is the N floats from
// B + off[k] (a convolution's windows read straight from a padded image: row
// (c, kh, kw) starts at that input element). Reads up to gemm_row_slack() floats
// past the end of each row (their columns are computed, never stored), which
// must be readable. row_bias has M floats or is null. Inside an OpenMP parallel
// region it runs on the calling thread.
template <class Act = Identity>
inline void gemm_rows(float* MITHRIL_K_RESTRICT C, const float* MITHRIL_K_RESTRICT A, const float* MITHRIL_K_RESTRICT B,
                      const int64_t* MITHRIL_K_RESTRICT off, opt<const float*> row_bias, int64_t M, int64_t N, int64_t K,
                      int64_t lda, int64_t ldc, const Act& act = Act{}) {
    gemm_detail::gemm_rows_impl(C, A, B, off, row_bias, M, N, K, lda, ldc, erase_epilogue(act));
}

// Products from this many multiply-adds on go to gemm_nn in gemm_ab. Below, the
// BLAS's small-matrix code is faster (LeNet's 6 x 784 x 25 and 16 x 100 x 150:
// 0.6-0.8x), above the kernel wins (1.1-1.7x on ResNet-18's convolutions, 2 threads).
inline constexpr int64_t kOwnGemmMacs = int64_t{1} << 18;

// Whether gemm_ab gives an M x N x K float product to gemm_nn (where the build has
// kPackedGemm): from kOwnGemmMacs multiply-adds, and while a K x panel-width slice
// of B stays in the core's cache as row tiles pass over it; past about 640 KiB
// (K = 5120 at AVX-512's 32 columns) the kernel would stream it from memory per
// tile, where the BLAS blocks K (GPT-2's 256 x 768 x 50257 head gradient: 15% of a
// training step slower).
inline bool gemm_nn_suits(int64_t M, int64_t N, int64_t K) {
    return M * N * K >= kOwnGemmMacs && K * gemm_detail::kNR * int64_t{sizeof(float)} <= (int64_t{640} << 10);
}

// C[M, N] = A[M, K] B[K, N], row-major, no transposes, for kernels whose right
// operand changes every call (convolution columns, a matmul's second input):
// gemm_nn for float products of at least kOwnGemmMacs multiply-adds where the
// build has kPackedGemm, mithril::rt::gemm otherwise.
template <class T>
inline void gemm_ab(T* C, const T* A, const T* B, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                    int64_t ldc) {
    if constexpr (std::is_same_v<T, float> && kPackedGemm) {
        if (gemm_nn_suits(M, N, K)) {
            gemm_nn(C, A, B, nullptr, M, N, K, lda, ldb, ldc);
            return;
        }
    }
    gemm(Transpose::No, Transpose::No, M, N, K, T(1), A, lda, B, ldb, T(0), C, ldc);
}

}  // namespace MITHRIL_K_GEMM_ABI
}  // namespace mithril::rt::k

// ---- compiled once, into the runtime library (src/kernels_gemm.cpp) --------------------------
namespace mithril::rt::k {
inline namespace MITHRIL_K_GEMM_ABI {
namespace gemm_detail {
#define MITHRIL_K_GEMM_INSTANCES(Act)                                                                                   \
    MITHRIL_K_INSTANCE(void gemm_packed_impl<Act>(float*, const float*, const float*, const float*, int64_t, int64_t, \
                                                  int64_t, int64_t, int64_t, const Act&))                              \
    MITHRIL_K_INSTANCE(void gemm_packed_at_impl<Act>(float*, const float*, const float*, const float*, int64_t,       \
                                                     int64_t, int64_t, int64_t, int64_t, const Act&))                  \
    MITHRIL_K_INSTANCE(void gemm_nn_impl<Act>(float*, const float*, const float*, const float*, int64_t, int64_t,     \
                                              int64_t, int64_t, int64_t, int64_t, const Act&))                         \
    MITHRIL_K_INSTANCE(void gemm_rows_impl<Act>(float*, const float*, const float*, const int64_t*, const float*,     \
                                                int64_t, int64_t, int64_t, int64_t, int64_t, const Act&))
MITHRIL_K_GEMM_INSTANCES(Identity)
MITHRIL_K_GEMM_INSTANCES(SpanEpilogue)
#undef MITHRIL_K_GEMM_INSTANCES
}  // namespace gemm_detail
}  // namespace MITHRIL_K_GEMM_ABI
}  // namespace mithril::rt::k
