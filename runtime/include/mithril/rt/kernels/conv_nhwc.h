// kernels/conv_nhwc.h - channels-last convolutions, for the convolutions the
// compiler's `layout` pass moves to NHWC (compiler/passes/layout.h).
//
// Two kinds, the ones where channels-last gives the kernel a better shape than
// channels-first (conv.h):
//   * depthwise (groups == C == K, any kernel, stride, padding, dilation):
//     every tap is a multiply-add of one contiguous vector of channels, kept in
//     registers across the taps (channels-first does one tiny gemm per channel);
//   * pointwise (1x1, stride 1, no padding, groups 1): the whole batch is one
//     gemm, y[N*H*W, K] = x[N*H*W, C] W^T, the rows of y the pixels (the weight
//     [K, C] is a Linear's; packed once by pack_b where the build has the GEMM
//     kernel, as a Linear's is).
// conv2d_nhwc_supports says which shapes these are. The results equal conv2d's
// on the transposed tensors up to float rounding (sums in another order).
//
// Epilogues (the fused BatchNorm, activations, residual adds) see pixels, not
// channel rows: an epilogue is any callable epi(rows, p0, count) that rewrites
// the `count` pixels [p0, p0 + count) of the batch (pixel p = (n * OH + oh) * OW
// + ow), each K contiguous channels, in place, called while they are in cache.
#pragma once

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mithril/rt/blas.h"
#include "mithril/rt/kernels/common.h"
#include "mithril/rt/kernels/gemm.h"

namespace mithril::rt::k {

// What conv2d_nhwc does to the pixels it wrote: nothing.
struct NoPixelEpilogue {
    template <class T>
    void operator()(T*, int64_t, int64_t) const {}
};
template <class E>
inline constexpr bool has_pixel_epilogue = !std::is_same_v<E, NoPixelEpilogue>;

inline bool conv_nhwc_depthwise(int64_t C, int64_t K, int64_t groups) { return groups == C && K == C; }
inline bool conv_nhwc_pointwise(int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                int64_t pad_w, int64_t groups) {
    return KH == 1 && KW == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0 && groups == 1;
}
// Whether conv2d_nhwc computes this convolution (in conv2d's names).
inline bool conv2d_nhwc_supports(int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                                 int64_t pad_h, int64_t pad_w, int64_t groups) {
    return conv_nhwc_depthwise(C, K, groups) || conv_nhwc_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w, groups);
}

// Scratch elements conv2d_nhwc needs: a depthwise weight as [KH * KW, C].
inline size_t conv2d_nhwc_scratch(int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t groups) {
    return conv_nhwc_depthwise(C, K, groups) ? static_cast<size_t>(KH * KW * C) : 0;
}

namespace detail {

// Channels per register block of the depthwise kernel: 64 floats are 8 AVX2 or 4
// AVX-512 accumulators, the taps' inputs and weights loaded beside them.
inline constexpr int64_t kDepthwiseBlock = 64;

// One pixel's channels [c0, c0 + B) (B = kDepthwiseBlock or 16, or with B = 0 the
// last n < 16) of a depthwise convolution: the sum over the taps inside the image.
template <int64_t B, class T>
inline void depthwise_block(T* MITHRIL_K_RESTRICT y, const T* MITHRIL_K_RESTRICT img, const T* MITHRIL_K_RESTRICT wt,
                            const opt<T>* MITHRIL_K_RESTRICT bias, int64_t n, int64_t c0, int64_t C, int64_t H,
                            int64_t W, int64_t KH, int64_t KW, int64_t ih0, int64_t iw0, int64_t dil_h,
                            int64_t dil_w) {
    // B > 0: a whole block, its bound a constant (the loops become vector operations on
    // registers); B == 0: the last n < 16 channels.
    const int64_t m = B > 0 ? B : n;
    T acc[B > 0 ? B : 16];
    for (int64_t j = 0; j < m; ++j) acc[j] = bias ? static_cast<T>(bias[c0 + j]) : T(0);
    for (int64_t kh = 0; kh < KH; ++kh) {
        const int64_t ih = ih0 + kh * dil_h;
        if (ih < 0 || ih >= H) continue;
        for (int64_t kw = 0; kw < KW; ++kw) {
            const int64_t iw = iw0 + kw * dil_w;
            if (iw < 0 || iw >= W) continue;
            const T* x = img + (ih * W + iw) * C + c0;
            const T* w = wt + (kh * KW + kw) * C + c0;
            for (int64_t j = 0; j < m; ++j) acc[j] += x[j] * w[j];
        }
    }
    for (int64_t j = 0; j < m; ++j) y[c0 + j] = acc[j];
}

template <class T, class Epi>
void conv2d_nhwc_depthwise(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                           const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH,
                           int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
                           int64_t dil_w, int64_t OH, int64_t OW, T* MITHRIL_K_RESTRICT wt, const Epi& epi) {
    // weight [C, 1, KH, KW] -> wt [KH * KW, C]: each tap's weights one contiguous vector.
    const int64_t taps = KH * KW;
    for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < taps; ++t) wt[t * C + c] = weight[c * taps + t];
    // Blocks of 64 channels, then of 16 (MobileNet's first 32-channel layer), then the rest.
    const int64_t rows = N * OH, full = C / kDepthwiseBlock * kDepthwiseBlock, full16 = C / 16 * 16;
    MITHRIL_K_PARFOR(rows * OW * C * taps >= kParallelWork)
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = r / OH, oh = r % OH;
        T* yrow = out + r * OW * C;
        const T* img = in + n * H * W * C;
        for (int64_t ow = 0; ow < OW; ++ow) {
            T* y = yrow + ow * C;
            const int64_t ih0 = oh * stride_h - pad_h, iw0 = ow * stride_w - pad_w;
            for (int64_t c0 = 0; c0 < full; c0 += kDepthwiseBlock)
                depthwise_block<kDepthwiseBlock>(y, img, wt, bias, kDepthwiseBlock, c0, C, H, W, KH, KW, ih0, iw0,
                                                 dil_h, dil_w);
            for (int64_t c0 = full; c0 < full16; c0 += 16)
                depthwise_block<16>(y, img, wt, bias, 16, c0, C, H, W, KH, KW, ih0, iw0, dil_h, dil_w);
            if (full16 < C)
                depthwise_block<0>(y, img, wt, bias, C - full16, full16, C, H, W, KH, KW, ih0, iw0, dil_h, dil_w);
        }
        if constexpr (has_pixel_epilogue<Epi>) epi(yrow, r * OW, OW);
    }
}

// Pixels per block of the pointwise kernel with an epilogue (about; the blocks are
// evened out over the threads): the block's gemm rows and then its epilogue on the
// same thread, the rows still in cache. Products with fewer
// than 4 blocks run as one threaded gemm, then the epilogue (a 7 x 7 stage: splitting
// its 49 rows would read the whole weight once per block).
inline constexpr int64_t kPointwiseBlock = 192;

template <class T, class Epi>
void conv2d_nhwc_pointwise(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                           const opt<T>* MITHRIL_K_RESTRICT bias, int64_t M, int64_t C, int64_t K,
                           const opt<T>* MITHRIL_K_RESTRICT packed, const Epi& epi) {
    constexpr bool has_epi = has_pixel_epilogue<Epi>;
    const int64_t blocks = (M + kPointwiseBlock - 1) / kPointwiseBlock;
    if constexpr (std::is_same_v<T, float> && kPackedGemm) {
        if (packed) {
            if (blocks >= 4 && has_epi) {
                // As many blocks per thread, each a whole number of register tiles (28 x 28
                // pixels: 5 blocks of 192 left one of two threads idle for a fifth of the time).
                int64_t threads = 1;
#ifdef _OPENMP
                threads = omp_get_max_threads();
#endif
                const int64_t nb = (blocks + threads - 1) / threads * threads;
                const int64_t rows = ((M + nb - 1) / nb + gemm_tile_rows() - 1) / gemm_tile_rows() * gemm_tile_rows();
                const int64_t used = (M + rows - 1) / rows;
                MITHRIL_K_PARFOR(M * C * K >= kParallelWork)
                for (int64_t b = 0; b < used; ++b) {
                    const int64_t p0 = b * rows, m = std::min(rows, M - p0);
                    gemm_packed(out + p0 * K, in + p0 * C, packed, bias, m, K, C, C, K);  // serial in the region
                    epi(out + p0 * K, p0, m);
                }
                return;
            }
            gemm_packed(out, in, packed, bias, M, K, C, C, K);
            if constexpr (has_epi) {
                MITHRIL_K_PARFOR(M * K >= kParallelWork)
                for (int64_t b = 0; b < blocks; ++b) {
                    const int64_t p0 = b * kPointwiseBlock;
                    epi(out + p0 * K, p0, std::min(kPointwiseBlock, M - p0));
                }
            }
            return;
        }
    }
    // The weight as it is: y = x W^T through the BLAS, then the bias and the epilogue.
    gemm(Transpose::No, Transpose::Yes, M, K, C, T(1), in, C, weight, C, T(0), out, K);
    if (!bias && !has_epi) return;
    MITHRIL_K_PARFOR(M * K >= kParallelWork)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t p0 = b * kPointwiseBlock, m = std::min(kPointwiseBlock, M - p0);
        if (bias)
            for (int64_t i = 0; i < m; ++i)
                for (int64_t k = 0; k < K; ++k) out[(p0 + i) * K + k] += static_cast<T>(bias[k]);
        if constexpr (has_epi) epi(out + p0 * K, p0, m);
    }
}

}  // namespace detail

// torch.nn.functional.conv2d on channels-last tensors, for the shapes of
// conv2d_nhwc_supports: in [N, H, W, C], weight [K, C/groups, KH, KW] (PyTorch's
// layout), bias [K] or null, out [N, OH, OW, K]; the size arguments in conv2d's
// order. scratch: conv2d_nhwc_scratch elements. `packed` (or null): a pointwise
// weight packed by pack_b(dst, weight, K, C, C, true), made once. `epi` (see
// NoPixelEpilogue) rewrites the pixels once they hold the convolution plus bias.
template <class T, class Epi = NoPixelEpilogue>
void conv2d_nhwc(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                 const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                 int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                 int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW, T* MITHRIL_K_RESTRICT scratch,
                 const Epi& epi = {}, const opt<T>* packed = nullptr) {
    if (N * OH * OW * K == 0) return;
    if (conv_nhwc_depthwise(C, K, groups)) {
        detail::conv2d_nhwc_depthwise(out, in, weight, bias, N, C, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w,
                                      dil_h, dil_w, OH, OW, scratch, epi);
    } else if (conv_nhwc_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w, groups) && OH == H && OW == W) {
        detail::conv2d_nhwc_pointwise(out, in, weight, bias, N * H * W, C, K, packed, epi);
    } else {
        throw Error("conv2d_nhwc: only depthwise (groups == C == K) and pointwise (1x1, stride 1, no padding, "
                           "groups 1) convolutions are channels-last kernels; see conv2d_nhwc_supports");
    }
}

// conv2d_nhwc with its geometry by name (Conv2dGeom, kernels/common.h; sizes in conv2d's names,
// whatever the layout): what generated code calls.
template <class T, class Epi = NoPixelEpilogue>
inline void conv2d_nhwc(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                        const opt<T>* MITHRIL_K_RESTRICT bias, const Conv2dGeom& g, T* MITHRIL_K_RESTRICT scratch,
                        const Epi& epi = {}, const opt<T>* packed = nullptr) {
    conv2d_nhwc(out, in, weight, bias, g.n, g.c_in, g.h, g.w, g.c_out, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w,
                g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.groups, g.out_h, g.out_w, scratch, epi, packed);
}

}  // namespace mithril::rt::k
