// kernels/common.h - shared helpers of the kernel library (mithril::rt::k).
//
// Conventions for every kernel:
//   * outputs first, then inputs, then sizes (llm.c style); sizes are int64_t;
//   * tensors are contiguous row-major (NCHW for images);
//   * no allocation: kernels that need temporary memory take `T* scratch` and
//     have a `X_scratch(...)` function giving the element count (the
//     generated code places scratch in its arena);
//   * outputs must not overlap inputs, except where a kernel says "in-place
//     safe" (then out == in exactly is allowed, partial overlap is not);
//   * bad arguments that depend on data (indices out of range) throw
//     mithril::rt::Error; shapes are trusted (the compiler checked them);
//   * gemm goes through mithril::rt::gemm (OpenBLAS) and is only called from
//     serial code, OpenMP loops only wrap our own loops (see threads.h);
//     Mithril's own GEMM (gemm.h) threads its tiles itself, or runs on the
//     calling thread inside a parallel region.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "mithril/rt/blas.h"
#include "mithril/rt/error.h"

#define MITHRIL_K_RESTRICT __restrict
#define MITHRIL_K_PRAGMA_(x) _Pragma(#x)
#ifdef _OPENMP
// Parallel for over an outer loop, only when `cond` says the work is large
// enough to pay for the thread wake-up.
#define MITHRIL_K_PARFOR(cond) MITHRIL_K_PRAGMA_(omp parallel for schedule(static) if (cond))
#define MITHRIL_K_PARFOR2(cond) MITHRIL_K_PRAGMA_(omp parallel for collapse(2) schedule(static) if (cond))
#else
#define MITHRIL_K_PARFOR(cond)
#define MITHRIL_K_PARFOR2(cond)
#endif

// The float kernels generated code calls most are compiled once, into the runtime library
// (src/kernels_*.cpp), rather than in every model's source: each header ends with their list,
// MITHRIL_K_INSTANCE(declaration), an explicit instantiation declaration (`extern template`).
// A model's source then parses these templates but neither instantiates nor optimizes them (a
// first build of a model takes a few seconds, not ten). The library's sources redefine the
// macro as `template` (the definition) before including the headers whose list they compile; a
// source built with other flags than the library (another -march) defines it as nothing and
// instantiates what it uses itself.
#ifndef MITHRIL_K_INSTANCE
#define MITHRIL_K_INSTANCE(...) extern template __VA_ARGS__;
#endif

namespace mithril::rt::k {

using std::int64_t;

// T in a non-deduced context: optional pointer parameters (`bias`, `*_or_null`)
// use it so callers can pass a plain nullptr.
template <class T> using opt = std::type_identity_t<T>;

// Work (elements touched) above which an OpenMP loop is worth starting.
inline constexpr int64_t kParallelWork = int64_t{1} << 15;

// Accumulator type: float kernels accumulate statistics/sums in double.
template <class T> using acc_t = std::conditional_t<std::is_same_v<T, float>, double, T>;

// std::isnan for floating types, false for integers (no self-comparisons).
template <class T> inline bool is_nan(T v) {
    if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
    else return false;
}

template <class T> inline constexpr T neg_inf() { return -std::numeric_limits<T>::infinity(); }

// Sum of n contiguous values with 8 independent lanes (so g++ vectorizes the
// loop without -ffast-math), accumulated in acc_t<T>.
template <class T>
inline acc_t<T> sum_contig(const T* MITHRIL_K_RESTRICT x, int64_t n) {
    using A = acc_t<T>;
    A lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) lane[j] += static_cast<A>(x[i + j]);
    A s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; i < n; ++i) s += static_cast<A>(x[i]);
    return s;
}

// Max of n >= 1 contiguous values; NaN propagates (as torch.max).
template <class T>
inline T max_contig(const T* MITHRIL_K_RESTRICT x, int64_t n) {
    T m = x[0];
    for (int64_t i = 0; i < n; ++i) {
        const T v = x[i];
        m = (v > m || is_nan(v)) ? v : m;
        if (is_nan(m)) return m;
    }
    return m;
}

// The geometry of a 2-D convolution, every size by name, so a call reads
// `conv2d(out, in, weight, bias, geom, scratch)` instead of 16 positional integers:
//   rt::k::Conv2dGeom geom{.n = 8, .c_in = 3, .h = 32, .w = 32, .c_out = 16, .kernel_h = 3, .kernel_w = 3,
//                          .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1,
//                          .groups = 1, .out_h = 32, .out_w = 32};
// In conv2d's names: x [n, c_in, h, w] is the side the windows slide over, y [n, c_out, out_h, out_w]
// (for the gradient kernels and the transposed convolution, as each kernel says). 1-D is 2-D with
// h = out_h = kernel_h = 1.
struct Conv2dGeom {
    int64_t n = 1, c_in = 1, h = 1, w = 1, c_out = 1;
    int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
    int64_t groups = 1;
    int64_t out_h = 1, out_w = 1;
};

// The geometry of a 2-D pooling over x [n, c, h, w] -> y [n, c, out_h, out_w]. Max pooling reads the
// dilation, average pooling count_include_pad and divisor_override (<= 0: none). 1-D is 2-D with
// h = out_h = kernel_h = 1.
struct Pool2dGeom {
    int64_t n = 1, c = 1, h = 1, w = 1;
    int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
    int64_t out_h = 1, out_w = 1;
    bool count_include_pad = true;
    int64_t divisor_override = 0;
};

[[noreturn]] inline void index_error(const char* kernel, int64_t index, int64_t size) {
    throw Error(std::string(kernel) + ": index " + std::to_string(index) + " is out of range [0, " +
                std::to_string(size) + ")");
}

}  // namespace mithril::rt::k
