// kernels/conv.h - convolutions via im2col/col2im + gemm, and Winograd F(4x4, 3x3)
// and F(2x2, 3x3).
//
// How the work is cut (ConvAlgo::Auto, what the generated code uses; the plan is
// a function of the shapes only, so the compiler sizes the scratch from the same
// functions the kernels use):
//   * 3x3, stride 1 convolutions with enough channels and tiles (most of
//     ResNet's, their data gradients through the flipped kernel) go through
//     Winograd: F(4x4, 3x3) (36 gemms with 1/4 of the multiplications) for
//     output planes of at least 8 x 8, F(2x2, 3x3) (16 gemms, 16/36) for smaller
//     ones and for the weight gradients (see "Winograd" below);
//   * the same convolutions at a batch with fewer than 256 tiles in all (ResNet's
//     stages at batch 1) go through Winograd too when the caller passes the
//     weights transformed once (winograd_pack; the memory plan keeps them in
//     programs without gradients), with the products the other way round (the
//     transformed weights as gemm_packed's panels), else as below;
//   * small per-image gemms (LeNet: 16 x 100 x 150) do not thread: the images are
//     spread over the OpenMP threads instead, each with its own slot of scratch,
//     the products running on the calling thread. Where the build has the GEMM
//     kernel (kPackedGemm), stride-1 ones are direct (the windows read from a
//     padded copy of the image by gemm_rows, no im2col) and strided ones multiply
//     the columns of a few images at once; elsewhere one BLAS gemm per image, the
//     one exception to "gemm only from serial code" (common.h): these gemms are
//     below OpenBLAS's own threading threshold, so no build of it starts BLAS
//     threads for them (and its OpenMP build runs any gemm called in a parallel
//     region on the caller);
//   * large gemms with few columns (ResNet's 7x7 stage: 512 x 49 x 4608) go
//     through BLAS's threads better when the columns of several images sit side
//     by side ([rows, m*OH*OW]), one gemm per group of images, the result
//     copied back to NCHW (a cheap pass next to the gemm);
//   * otherwise one gemm per image, as ConvAlgo::PerImage always does;
//   * depthwise convolutions (groups == C == K), in either algo, are none of
//     these: each plane is accumulated from shifted input rows directly
//     (conv2d_depthwise; channels-last, faster, in conv_nhwc.h).
// Every output row can be rewritten by an epilogue while it is in cache (see
// NoEpilogue). Results depend on the plan, and in the threaded weight gradient on
// the thread count (partial sums added in thread order), never on timing.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mithril/rt/kernels/common.h"
#include "mithril/rt/kernels/gemm.h"

namespace mithril::rt::k {

// PerImage: one im2col + gemm per image and group, the smallest scratch (and
// the only choice when sizes are known at run time only). Auto: conv_plan.
enum class ConvAlgo { PerImage, Auto };

// How a convolution's gemms are cut (see the top of this file): `images` is the
// number of scratch slots (Images) or images per gemm (Batched).
struct ConvPlan {
    enum Mode { PerImage, Images, Batched } mode;
    int64_t images;
};

// Per-image gemms up to this many multiply-adds (and columns up to kConvSlotElems
// elements) count as small: OpenBLAS runs gemms below 65536 * its
// GEMM_MULTITHREAD_THRESHOLD (4) on one thread in any build, so spreading them
// over our threads never stacks BLAS threads on top.
inline constexpr int64_t kConvSmallGemm = int64_t{1} << 18;
inline constexpr int64_t kConvSlotElems = int64_t{1} << 18;
// Scratch slots of the Images mode: the most threads it uses.
inline constexpr int64_t kConvImageSlots = 16;
// Columns (output positions) one Batched gemm should get at least: BLAS's threads
// split few columns badly (512 x 49 x 4608 runs at 2/3 of the speed of 392
// columns on 2 threads), more only add im2col traffic.
inline constexpr int64_t kConvGemmColumns = 512;

// The plan for N images whose per-image gemm is M x Nd x Kd, one of Nd and Kd
// being the P output positions (the dimension that batching images widens), with
// col_elems elements of columns per image and group. Depends on N only through
// the clamp of `images` (so a plan for a larger N needs at least the scratch of a
// smaller one).
inline ConvPlan conv_plan(ConvAlgo algo, int64_t N, int64_t M, int64_t Nd, int64_t Kd, int64_t P, int64_t col_elems) {
    if (algo == ConvAlgo::PerImage || N <= 1 || M <= 0 || Nd <= 0 || Kd <= 0 || P <= 0)
        return {ConvPlan::PerImage, 1};
    const double mnk = static_cast<double>(M) * static_cast<double>(Nd) * static_cast<double>(Kd);
    if (mnk <= static_cast<double>(kConvSmallGemm) && col_elems <= kConvSlotElems)
        return {ConvPlan::Images, std::min(N, kConvImageSlots)};
    const int64_t nb = std::min(N, (kConvGemmColumns + P - 1) / P);
    if (nb > 1) return {ConvPlan::Batched, nb};
    return {ConvPlan::PerImage, 1};
}

// What conv2d does to each output row after writing it (with the bias): nothing.
// An epilogue is any callable epi(row, n, k, P) that rewrites the P outputs of
// channel k of image n in place (BatchNorm folded in as a scale and shift, an
// activation, a residual add: the fuse-epilogue pass's Conv2d lambdas), called
// once per row while the row is still in cache.
struct NoEpilogue {
    template <class T>
    void operator()(T*, int64_t, int64_t, int64_t) const {}
};
// Any float epilogue behind one indirect call per row: the conv2d compiled once into the
// runtime library takes it (the conv2d taking a Conv2dGeom wraps a model's lambda in it).
// `epi` must outlive the convolution.
class RowEpilogue {
public:
    template <class F>
    explicit RowEpilogue(const F& epi)
        : epi_(&epi), fn_([](const void* e, float* row, int64_t n, int64_t k, int64_t P) {
              (*static_cast<const F*>(e))(row, n, k, P);
          }) {}
    void operator()(float* row, int64_t n, int64_t k, int64_t P) const { fn_(epi_, row, n, k, P); }

private:
    const void* epi_;
    void (*fn_)(const void*, float*, int64_t, int64_t, int64_t);
};
template <class E>
inline constexpr bool has_epilogue = !std::is_same_v<E, NoEpilogue>;

// Images per gemm in conv2d's Images mode when it goes through im2col (strided
// small convolutions; stride-1 ones take the direct path below): a thread puts the
// columns of this many of its images side by side and multiplies them at once
// (small per-image products are too short for the kernel's tiles), up to about
// 2^20 multiply-adds per product and kConvSlotElems of columns and result per
// slot. 1 in the other modes.
inline constexpr int64_t kConvGroupMacs = int64_t{1} << 20;
inline int64_t conv_group(const ConvPlan& plan, int64_t N, int64_t M, int64_t Nd, int64_t Kd, int64_t col_elems,
                          int64_t res_elems) {
    if (plan.mode != ConvPlan::Images) return 1;
    const int64_t mnk = std::max<int64_t>(M * Nd * Kd, 1), per = std::max<int64_t>(col_elems + res_elems, 1);
    const int64_t by_work = (kConvGroupMacs + mnk - 1) / mnk, by_memory = std::max<int64_t>(kConvSlotElems / per, 1);
    // Half the batch, rounded up: N / 2 + N % 2, not (N + 1) / 2, which overflows for the
    // compiler's N = INT64_MAX (the scratch bound of a batch left to run time).
    return std::max<int64_t>(1, std::min({by_work, by_memory, N / 2 + N % 2}));
}

// Direct convolution (conv2d's Images mode, stride 1, where the kernel runs):
// each image is copied once into a zero-padded Hp x Wp plane per channel, and
// the product reads its windows straight from it (gemm_rows: row (c, kh, kw) of
// the right operand starts at that input element), computing every output
// position of the padded width (OH rows of Wp, the last Wp - OW of each dropped
// when the rows are written out). No im2col: on LeNet's small products the
// columns cost as much to write as the product takes. Rows of the product (C/g *
// KH * KW) up to kConvDirectRows.
inline constexpr int64_t kConvDirectRows = 1024;
inline bool conv_direct(const ConvPlan& plan, int64_t stride_h, int64_t stride_w, int64_t R) {
    return plan.mode == ConvPlan::Images && stride_h == 1 && stride_w == 1 && R > 0 && R <= kConvDirectRows;
}
// Floats of one image's slot: the padded planes, gemm_rows' slack, the product
// [K/g, (OH-1)*Wp + OW].
inline int64_t conv_direct_slot(int64_t C, int64_t Hp, int64_t Wp, int64_t Kg, int64_t OH, int64_t OW) {
    return C * Hp * Wp + gemm_row_slack() + Kg * ((OH - 1) * Wp + OW);
}

// Strided convolutions with wide outputs (ResNet's 7x7, stride-2 stem: 147 x 12544
// columns, 7.4 MB of im2col at batch 1), one image at a time (the PerImage plan),
// where the kernel runs: the image is split once into its stride_h * stride_w
// phases (zero-padded planes of every stride-th row and column, the size of the
// input), a stride-1 window of a phase being a strided window of the image, and
// gemm_rows reads each output row's windows straight from them (row (c, kh, kw)
// of the right operand starts in phase (kh % stride_h, kw % stride_w)), one
// output row of every channel per product, written in place: no im2col.
inline constexpr int64_t kConvPolyphaseWidth = 64;  // output columns at least
inline bool conv_polyphase(const ConvPlan& plan, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                           int64_t dil_h, int64_t dil_w, int64_t groups, int64_t R, int64_t OW) {
    return plan.mode == ConvPlan::PerImage && (stride_h > 1 || stride_w > 1) && dil_h == 1 && dil_w == 1 &&
           groups == 1 && KH * KW > 1 && R <= kConvDirectRows && OW >= kConvPolyphaseWidth;
}
// Floats of the phases (and gemm_rows' slack) of a C x H x W image.
inline int64_t conv_polyphase_scratch(int64_t C, int64_t H, int64_t W, int64_t pad_h, int64_t pad_w,
                                      int64_t stride_h, int64_t stride_w) {
    const int64_t Hq = (H + 2 * pad_h + stride_h - 1) / stride_h, Wq = (W + 2 * pad_w + stride_w - 1) / stride_w;
    return C * stride_h * stride_w * Hq * Wq + gemm_row_slack();
}

namespace detail {

// conv2d of one image through its phases (conv_polyphase above), then the bias
// and the epilogue on each output plane (image n).
template <class Epi>
void conv2d_polyphase(float* MITHRIL_K_RESTRICT out, const float* MITHRIL_K_RESTRICT img,
                      const float* MITHRIL_K_RESTRICT weight, const float* MITHRIL_K_RESTRICT bias, int64_t n,
                      int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                      int64_t pad_h, int64_t pad_w, int64_t OH, int64_t OW, float* MITHRIL_K_RESTRICT phases,
                      const Epi& epi) {
    const int64_t Hq = (H + 2 * pad_h + sh - 1) / sh, Wq = (W + 2 * pad_w + sw - 1) / sw, R = C * KH * KW,
                  P = OH * OW, S = sh * sw;
    MITHRIL_K_PARFOR(C * S * Hq * Wq >= kParallelWork)
    for (int64_t t = 0; t < C * S * Hq; ++t) {  // row i of phase (a, b) of channel c
        const int64_t i = t % Hq, phase = t / Hq % S, c = t / (Hq * S), a = phase / sw, b = phase % sw;
        float* row = phases + t * Wq;
        const int64_t h = i * sh + a - pad_h;
        if (h < 0 || h >= H) {
            std::fill(row, row + Wq, 0.f);
            continue;
        }
        const float* src = img + (c * H + h) * W;
        for (int64_t j = 0; j < Wq; ++j) {
            const int64_t w = j * sw + b - pad_w;
            row[j] = w >= 0 && w < W ? src[w] : 0.f;
        }
    }
    std::fill(phases + C * S * Hq * Wq, phases + C * S * Hq * Wq + gemm_row_slack(), 0.f);
    int64_t off[kConvDirectRows];
    for (int64_t r = 0; r < R; ++r) {
        const int64_t kw = r % KW, kh = r / KW % KH, c = r / (KW * KH);
        off[r] = ((c * S + kh % sh * sw + kw % sw) * Hq + kh / sh) * Wq + kw / sw;
    }
    MITHRIL_K_PARFOR(K * P * R >= kParallelWork)
    for (int64_t oh = 0; oh < OH; ++oh)
        gemm_rows(out + oh * OW, weight, phases + oh * Wq, off, nullptr, K, OW, R, R, P);
    if (bias || has_epilogue<Epi>) {
        MITHRIL_K_PARFOR(K * P >= kParallelWork)
        for (int64_t k = 0; k < K; ++k) {
            float* plane = out + k * P;
            if (bias)
                for (int64_t p = 0; p < P; ++p) plane[p] += bias[k];
            if constexpr (has_epilogue<Epi>) epi(plane, n, k, P);
        }
    }
}

// True when a conv2d is a plain per-pixel matmul (1x1 kernel, stride 1, no
// padding): no im2col needed.
inline bool conv_is_pointwise(int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                              int64_t pad_w) {
    return KH == 1 && KW == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
}

// First ow in [0, OW) with 0 <= ow*stride + off, and one past the last with
// ow*stride + off < W (off = kw*dil - pad).
inline void valid_range(int64_t off, int64_t stride, int64_t W, int64_t OW, int64_t& lo, int64_t& hi) {
    lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    hi = W - off <= 0 ? 0 : (W - off - 1) / stride + 1;
    lo = std::min(lo, OW);
    hi = std::clamp(hi, lo, OW);
}

// d[i] = s[i] (or 0 with s == null) for i < n, fast for the short rows of small
// images: a loop would become a memmove/memset call, which costs more than it
// copies on a row of 10, so rows up to 64 bytes take two overlapping moves.
// kSize: the branch on n taken by the caller (0: any n; 1: n > 64 bytes; 2: 32 to
// 64 bytes; 3: 16 to 32 bytes; 4: shorter).
template <int kSize, class T>
inline void copy_row(T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT s, int64_t n) {
    constexpr int64_t V = static_cast<int64_t>(32 / sizeof(T)), H = V / 2;
    alignas(32) static constexpr T zeros[V] = {};
    const bool zero = s == nullptr;
    const int size = kSize != 0 ? kSize : n > 2 * V ? 1 : n >= V ? 2 : (n >= H && H > 0) ? 3 : 4;
    if (size == 1) {
        if (zero) std::memset(static_cast<void*>(d), 0, static_cast<size_t>(n) * sizeof(T));
        else std::memcpy(d, s, static_cast<size_t>(n) * sizeof(T));
    } else if (size == 2) {
        __builtin_memcpy(d, zero ? zeros : s, 32);
        __builtin_memcpy(d + n - V, zero ? zeros : s + n - V, 32);
    } else if (size == 3) {
        __builtin_memcpy(d, zero ? zeros : s, 16);
        __builtin_memcpy(d + n - H, zero ? zeros : s + n - H, 16);
    } else {
        if (n > 0) d[0] = zero ? T(0) : s[0];
        if (n > 1) d[1] = zero ? T(0) : s[1];
        if (n > 2) d[2] = zero ? T(0) : s[2];
    }
}

// The rows [oh_lo, oh_hi) of one im2col row with stride 1 along the width:
// d[oh*OW + ow] = plane[off + oh*sh*W + ow] for ow in [lo, hi), 0 outside; kSize as
// copy_row's for hi - lo.
template <int kSize, class T>
inline void im2col_rows_unit(T* MITHRIL_K_RESTRICT dst, const T* MITHRIL_K_RESTRICT plane, int64_t off, int64_t oh_lo,
                             int64_t oh_hi, int64_t sh, int64_t W, int64_t OW, int64_t lo, int64_t hi) {
    const bool edges = lo > 0 || hi < OW;
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
        T* d = dst + oh * OW;
        if (edges) copy_row<0>(d, static_cast<const T*>(nullptr), lo);
        copy_row<kSize>(d + lo, plane + (off + oh * sh * W + lo), hi - lo);
        if (edges) copy_row<0>(d + hi, static_cast<const T*>(nullptr), OW - hi);
    }
}

// Row r = (c*KH + kh)*KW + kw of im2col: dst[oh*OW + ow] = img[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw]
// (0 outside).
template <class T>
inline void im2col_row(T* MITHRIL_K_RESTRICT dst, const T* MITHRIL_K_RESTRICT img, int64_t r, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                       int64_t OH, int64_t OW) {
    const int64_t kw = r % KW, kh = (r / KW) % KH, c = r / (KW * KH);
    const T* plane = img + c * H * W;
    const int64_t woff = kw * dw - pw, hoff = kh * dh - ph;
    int64_t lo, hi, oh_lo, oh_hi;
    valid_range(woff, sw, W, OW, lo, hi);
    valid_range(hoff, sh, H, OH, oh_lo, oh_hi);
    std::fill(dst, dst + oh_lo * OW, T(0));
    if (sw == 1) {
        // The branch on the row length once per row of col, not once per image row.
        constexpr int64_t V = static_cast<int64_t>(32 / sizeof(T));
        const int64_t n = hi - lo;
        const int64_t off = hoff * W + woff;  // plane[off + oh*sh*W + ow] is the element of (oh, ow)
        if (n > 2 * V) im2col_rows_unit<1>(dst, plane, off, oh_lo, oh_hi, sh, W, OW, lo, hi);
        else if (n >= V) im2col_rows_unit<2>(dst, plane, off, oh_lo, oh_hi, sh, W, OW, lo, hi);
        else im2col_rows_unit<0>(dst, plane, off, oh_lo, oh_hi, sh, W, OW, lo, hi);
    } else {
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
            T* d = dst + oh * OW;
            const T* s = plane + (oh * sh + hoff) * W;
            copy_row<0>(d, static_cast<const T*>(nullptr), lo);
            if (sw == 2) {
                for (int64_t ow = lo; ow < hi; ++ow) d[ow] = s[ow * 2 + woff];
            } else {
                for (int64_t ow = lo; ow < hi; ++ow) d[ow] = s[ow * sw + woff];
            }
            copy_row<0>(d + hi, static_cast<const T*>(nullptr), OW - hi);
        }
    }
    std::fill(dst + oh_hi * OW, dst + OH * OW, T(0));
}

// col[(c*KH + kh)*KW + kw][oh*OW + ow] = img[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw] (0 outside).
template <class T>
void im2col(T* MITHRIL_K_RESTRICT col, const T* MITHRIL_K_RESTRICT img, int64_t C, int64_t H, int64_t W, int64_t KH,
            int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t OH,
            int64_t OW) {
    const int64_t rows = C * KH * KW;
    MITHRIL_K_PARFOR(rows * OH * OW >= kParallelWork)
    for (int64_t r = 0; r < rows; ++r)
        im2col_row(col + r * OH * OW, img, r, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW);
}

// im2col of m images side by side: image j (at img + j*img_stride) fills the
// columns [j*OH*OW, (j+1)*OH*OW) of col, whose rows are m*OH*OW long.
template <class T>
void im2col_images(T* MITHRIL_K_RESTRICT col, const T* MITHRIL_K_RESTRICT img, int64_t img_stride, int64_t m,
                   int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                   int64_t pw, int64_t dh, int64_t dw, int64_t OH, int64_t OW) {
    const int64_t rows = C * KH * KW, P = OH * OW;
    MITHRIL_K_PARFOR(m * rows * P >= kParallelWork)
    for (int64_t t = 0; t < m * rows; ++t) {
        const int64_t r = t / m, j = t % m;
        im2col_row(col + r * m * P + j * P, img + j * img_stride, r, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW);
    }
}

// dst[k][j*P + p] = src[j*src_stride + k*P + p] for k < rows, j < m: m images'
// [rows, P] blocks side by side (the layout of a batched gemm operand).
template <class T>
void pack_images(T* MITHRIL_K_RESTRICT dst, const T* MITHRIL_K_RESTRICT src, int64_t src_stride, int64_t m,
                 int64_t rows, int64_t P) {
    MITHRIL_K_PARFOR(m * rows * P >= kParallelWork)
    for (int64_t t = 0; t < m * rows; ++t) {
        const int64_t k = t / m, j = t % m;
        std::memcpy(dst + k * m * P + j * P, src + j * src_stride + k * P, static_cast<size_t>(P) * sizeof(T));
    }
}

// The inverse of pack_images, plus an optional per-row bias:
// dst[j*dst_stride + k*P + p] = src[k][j*P + p] (+ bias[k]).
// The columns of m images side by side ([C*KH*KW, m*OH*OW]): im2col, or the images
// themselves packed when the convolution is pointwise (then OH*OW == H*W).
template <class T>
void columns_images(T* MITHRIL_K_RESTRICT col, const T* MITHRIL_K_RESTRICT img, int64_t img_stride, int64_t m,
                    int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                    int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t OH, int64_t OW,
                    bool pointwise) {
    if (pointwise) pack_images(col, img, img_stride, m, C, OH * OW);
    else im2col_images(col, img, img_stride, m, C, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH, OW);
}

// With an epilogue (conv2d's), epi(d, n0 + j, k0 + k, P) follows on each row.
template <class T, class Epi = NoEpilogue>
void unpack_images(T* MITHRIL_K_RESTRICT dst, int64_t dst_stride, const T* MITHRIL_K_RESTRICT src,
                   const T* MITHRIL_K_RESTRICT bias, int64_t m, int64_t rows, int64_t P, const Epi& epi = {},
                   int64_t n0 = 0, int64_t k0 = 0) {
    MITHRIL_K_PARFOR(m * rows * P >= kParallelWork)
    for (int64_t t = 0; t < m * rows; ++t) {
        const int64_t j = t / rows, k = t % rows;
        T* d = dst + j * dst_stride + k * P;
        const T* s = src + k * m * P + j * P;
        if (bias) {
            const T b = bias[k];
            for (int64_t p = 0; p < P; ++p) d[p] = s[p] + b;
        } else {
            std::memcpy(d, s, static_cast<size_t>(P) * sizeof(T));
        }
        if constexpr (has_epilogue<Epi>) epi(d, n0 + j, k0 + k, P);
    }
}

// One channel plane of col2im: plane[ih][iw] += col[(c*KH + kh)*KW + kw][h*ld... ] for the
// KH*KW rows of channel c (their columns h*W + w start at `src`, rows `ld` apart),
// with ih = h*sh - ph + kh*dh (plane is OH x OW, the columns H x W).
template <class T>
inline void col2im_plane_add(T* MITHRIL_K_RESTRICT plane, const T* MITHRIL_K_RESTRICT src, int64_t ld, int64_t H,
                             int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                             int64_t dh, int64_t dw, int64_t OH, int64_t OW) {
    for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw) {
            const T* s0 = src + (kh * KW + kw) * ld;
            const int64_t woff = kw * dw - pw;
            // valid w: 0 <= w*sw + woff < OW
            int64_t lo, hi;
            valid_range(woff, sw, OW, W, lo, hi);
            for (int64_t h = 0; h < H; ++h) {
                const int64_t oh = h * sh - ph + kh * dh;
                if (oh < 0 || oh >= OH) continue;
                T* d = plane + oh * OW;
                const T* s = s0 + h * W;
                if (sw == 1) {
                    for (int64_t w = lo; w < hi; ++w) d[w + woff] += s[w];
                } else {
                    for (int64_t w = lo; w < hi; ++w) d[w * sw + woff] += s[w];
                }
            }
        }
}

// img[c][ih][iw] += col[(c*KH + kh)*KW + kw][h*W + w] with ih = h*sh - ph + kh*dh
// (the adjoint of im2col; img has size C x OH x OW, col has H*W columns).
template <class T>
void col2im_add(T* MITHRIL_K_RESTRICT img, const T* MITHRIL_K_RESTRICT col, int64_t C, int64_t H, int64_t W,
                int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                int64_t OH, int64_t OW) {
    MITHRIL_K_PARFOR(C * KH * KW * H * W >= kParallelWork)
    for (int64_t c = 0; c < C; ++c)  // each c owns its output plane: no races
        col2im_plane_add(img + c * OH * OW, col + c * KH * KW * H * W, H * W, H, W, KH, KW, sh, sw, ph, pw, dh, dw,
                         OH, OW);
}

// img_j = col2im of image j's columns for m images (image j at img + j*img_stride,
// its columns [j*H*W, (j+1)*H*W) of col, whose rows are m*H*W long), each
// image's C planes zeroed first.
template <class T>
void col2im_images(T* MITHRIL_K_RESTRICT img, int64_t img_stride, const T* MITHRIL_K_RESTRICT col, int64_t m,
                   int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                   int64_t pw, int64_t dh, int64_t dw, int64_t OH, int64_t OW) {
    const int64_t Q = m * H * W;
    MITHRIL_K_PARFOR(m * C * KH * KW * H * W >= kParallelWork)
    for (int64_t t = 0; t < m * C; ++t) {  // each (image, channel) owns its plane: no races
        const int64_t j = t / C, c = t % C;
        T* plane = img + j * img_stride + c * OH * OW;
        std::fill(plane, plane + OH * OW, T(0));
        col2im_plane_add(plane, col + c * KH * KW * Q + j * H * W, Q, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW);
    }
}

// Runs body(n, slot) for every image n < N, spread over at most `slots` OpenMP
// threads: thread t of the team takes the images t, t + T, ... (T the team size)
// and owns scratch slot t. Returns T (1 when run serially). gemm called from
// body runs on the calling thread (see the top of this file).
template <class F>
int64_t for_images(int64_t N, int64_t slots, int64_t work, const F& body) {
#ifdef _OPENMP
    const int64_t want = std::min<int64_t>({slots, N, static_cast<int64_t>(omp_get_max_threads())});
    if (want > 1 && work >= kParallelWork && !omp_in_parallel()) {
        int64_t team = 1;
#pragma omp parallel num_threads(static_cast<int>(want))
        {
            const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
            if (t == 0) team = T;
            for (int64_t n = t; n < N; n += T) body(n, t);
        }
        return team;
    }
#else
    (void)slots;
    (void)work;
#endif
    for (int64_t n = 0; n < N; ++n) body(n, 0);
    return 1;
}

// Runs body(n0, m, slot) over the N images in groups of at most g consecutive
// ones: thread t of the team takes an even share of consecutive images and owns
// scratch slot t. Serial (slot 0) when small or inside a parallel region.
template <class F>
void for_image_groups(int64_t N, int64_t slots, int64_t g, int64_t work, const F& body) {
    auto run = [&](int64_t lo, int64_t hi, int64_t slot) {
        for (int64_t n0 = lo; n0 < hi; n0 += g) body(n0, std::min(g, hi - n0), slot);
    };
#ifdef _OPENMP
    const int64_t want = std::min<int64_t>({slots, N, static_cast<int64_t>(omp_get_max_threads())});
    if (want > 1 && work >= kParallelWork && !omp_in_parallel()) {
#pragma omp parallel num_threads(static_cast<int>(want))
        {
            const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
            run(N * t / T, N * (t + 1) / T, t);
        }
        return;
    }
#else
    (void)slots;
    (void)work;
#endif
    run(0, N, 0);
}

// The plan of conv2d (out channels K, in channels C, kernel KH x KW, P output positions).
inline ConvPlan conv2d_plan(ConvAlgo algo, int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t groups,
                            int64_t P) {
    const int64_t R = C / groups * KH * KW;
    return conv_plan(algo, N, K / groups, P, R, P, R * P);
}

}  // namespace detail

namespace detail {
// ---- Winograd F(2x2, 3x3) ----------------------------------------------------
//
// 3x3, stride 1, undilated, ungrouped convolutions with enough channels and
// tiles (most of ResNet's: forward, the data gradient through the flipped
// kernel, and the weight gradient) as Lavin & Gray's minimal filtering: per 2x2
// output tile, Y = At [U . V] A with U = G g Gt (the 3x3 kernel to 4x4) and
// V = Bt d B (the 4x4 input patch), summed over input channels: 16 gemms
// U[xi] (K x C) * V[xi] (C x tiles), 16/36 of the multiplications of im2col +
// gemm. The weight gradient is the adjoint: dU[xi] = sum over tiles of
// (A dY At)[xi] V[xi]^T, dw = Gt dU G. The transforms only add and halve: on
// ResNet-18's shapes the float32 error is 1-2x the direct sum's (about 5e-7
// relative RMS against float64), and the train-step gradients of ResNet-18
// come out closer to float64 than before (median 1.8e-3 vs 4.7e-3, PyTorch
// float32 3.2e-3, train mode, batch 8).
//   Bt = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G  = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   At = [1 1 1 0; 0 1 -1 -1]

// Channels (in and out) a convolution needs for Winograd: fewer make thin gemms.
inline constexpr int64_t kWinogradChannels = 16;
// Tiles one gemm should get at least (images are batched until they do).
inline constexpr int64_t kWinogradTiles = 256;

// Whether Winograd suits the convolution's geometry (3x3, stride 1, undilated,
// ungrouped, enough channels), whatever the batch.
inline bool winograd_shape(int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                           int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW) {
    return KH == 3 && KW == 3 && stride_h == 1 && stride_w == 1 && dil_h == 1 && dil_w == 1 && groups == 1 &&
           C >= kWinogradChannels && K >= kWinogradChannels && N > 0 && OH > 0 && OW > 0;
}

// Output planes from this size on (both sides) take F(4x4, 3x3) in conv2d's
// forward pass; smaller ones F(2x2, 3x3), whose 2x2 tiles waste less of an odd
// or small plane and whose 16 (not 36) transformed copies of the weights weigh
// less where the weights dominate (ResNet-18's 7x7 stage at batch 1).
inline constexpr int64_t kWinograd4Min = 8;
// Output tile side of conv2d's forward Winograd path: 4 or 2 (the weight
// gradient always takes 2).
constexpr int64_t winograd_tile(int64_t OH, int64_t OW) { return OH >= kWinograd4Min && OW >= kWinograd4Min ? 4 : 2; }

// Images per chunk of the Winograd path with output tiles of tile x tile, or 0
// when it does not apply.
inline int64_t winograd_images(ConvAlgo algo, int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW,
                               int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w, int64_t groups,
                               int64_t OH, int64_t OW, int64_t tile = 2) {
    if (algo != ConvAlgo::Auto || !winograd_shape(N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW))
        return 0;
    // Fewer tiles than one gemm's worth in all (ResNet's 7x7 stage at batch 8) do
    // not pay for the weight transforms.
    const int64_t tiles = ((OH + tile - 1) / tile) * ((OW + tile - 1) / tile);
    if (N < (kWinogradTiles + tiles - 1) / tiles) return 0;  // N * tiles < kWinogradTiles, without overflow
    return std::min(N, std::max<int64_t>(1, (kWinogradTiles + tiles - 1) / tiles));
}

// Scratch of the Winograd path for chunks of nb images: U, V and the products M.
inline size_t winograd_scratch(int64_t C, int64_t K, int64_t nb, int64_t OH, int64_t OW, int64_t tile = 2) {
    const int64_t tiles = ((OH + tile - 1) / tile) * ((OW + tile - 1) / tile), a2 = (tile + 2) * (tile + 2);
    return static_cast<size_t>(a2 * (K * C + (C + K) * nb * tiles));
}

// U[xi][k][c] = (G g Gt)[xi] for weight [K, C, 3, 3], 16 input channels at a
// time (their kernels transposed into lanes, so every step is a vector loop).
template <class T>
void winograd_weights(T* MITHRIL_K_RESTRICT U, const T* MITHRIL_K_RESTRICT weight, int64_t K, int64_t C) {
    constexpr int64_t L = 16;
    const int64_t blocks = (C + L - 1) / L;
    MITHRIL_K_PARFOR(K * C * 16 >= kParallelWork)
    for (int64_t t = 0; t < K * blocks; ++t) {
        const int64_t k = t / blocks, c0 = (t % blocks) * L, n = std::min(L, C - c0);
        alignas(64) T g[9][L], h[4][3][L];
        for (int64_t q = 0; q < L; ++q)
            for (int e = 0; e < 9; ++e) g[e][q] = q < n ? weight[(k * C + c0 + q) * 9 + e] : T(0);
        for (int j = 0; j < 3; ++j)  // G g: the kernel's rows combined, per column j
            for (int64_t q = 0; q < L; ++q) {
                h[0][j][q] = g[j][q];
                h[1][j][q] = T(0.5) * (g[j][q] + g[3 + j][q] + g[6 + j][q]);
                h[2][j][q] = T(0.5) * (g[j][q] - g[3 + j][q] + g[6 + j][q]);
                h[3][j][q] = g[6 + j][q];
            }
        for (int i = 0; i < 4; ++i) {  // (G g) Gt
            T* u0 = U + ((i * 4 + 0) * K + k) * C + c0;
            T* u1 = U + ((i * 4 + 1) * K + k) * C + c0;
            T* u2 = U + ((i * 4 + 2) * K + k) * C + c0;
            T* u3 = U + ((i * 4 + 3) * K + k) * C + c0;
            for (int64_t q = 0; q < n; ++q) {
                u0[q] = h[i][0][q];
                u1[q] = T(0.5) * (h[i][0][q] + h[i][1][q] + h[i][2][q]);
                u2[q] = T(0.5) * (h[i][0][q] - h[i][1][q] + h[i][2][q]);
                u3[q] = h[i][2][q];
            }
        }
    }
}

// The a x a input patches of tiles q0 .. q0+n-1 of a plane (row-major over TW tiles
// per row, tile (ty, tx) at input (step*ty - ph, step*tx - pw)) into D[i][x][q],
// zero outside the plane; interior patches loaded without bounds checks.
template <int a, int step, int64_t B, class T>
inline void winograd_patches(T (&D)[a][a][B], const T* MITHRIL_K_RESTRICT plane, int64_t H, int64_t W, int64_t ph,
                             int64_t pw, int64_t TW, int64_t q0, int64_t n) {
    for (int64_t q = 0; q < n; ++q) {
        const int64_t ty = (q0 + q) / TW, tx = (q0 + q) % TW;
        const int64_t h0 = step * ty - ph, w0 = step * tx - pw;
        if (h0 >= 0 && h0 + a <= H && w0 >= 0 && w0 + a <= W) {
            const T* p = plane + h0 * W + w0;
            for (int i = 0; i < a; ++i)
                for (int x = 0; x < a; ++x) D[i][x][q] = p[i * W + x];
        } else {
            for (int i = 0; i < a; ++i)
                for (int x = 0; x < a; ++x) {
                    const int64_t h = h0 + i, w = w0 + x;
                    D[i][x][q] = h >= 0 && h < H && w >= 0 && w < W ? plane[h * W + w] : T(0);
                }
        }
    }
}

// winograd_input for planes with short rows of tiles (TW <= kWinogradShortRow):
// the tiles of a plane in blocks of up to 64 whatever their row, each tile's
// patch loaded whole (with bounds checks only at the border), so the transform's
// loops and its 16 output streams run over the block instead of over rows of 4
// or 7 tiles (ResNet-18's last stages at batch 1: 2.2x and 1.35x faster; the
// same values).
inline constexpr int64_t kWinogradShortRow = 8;
template <class T>
void winograd_input_blocks(T* MITHRIL_K_RESTRICT V, const T* MITHRIL_K_RESTRICT in, int64_t img_stride, int64_t m,
                           int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t TH, int64_t TW) {
    const int64_t Tm = m * TH * TW, TT = TH * TW;
    constexpr int64_t B = 64;  // tiles per step
    MITHRIL_K_PARFOR(m * C * H * W * 4 >= kParallelWork)
    for (int64_t t = 0; t < m * C; ++t) {
        const int64_t j = t / C, c = t % C;
        const T* plane = in + j * img_stride + c * H * W;
        T* Vc = V + c * Tm + j * TT;
        alignas(64) T D[4][4][B], R[4][4][B];
        for (int64_t q0 = 0; q0 < TT; q0 += B) {
            const int64_t n = std::min(B, TT - q0);
            winograd_patches<4, 2>(D, plane, H, W, ph, pw, TW, q0, n);
            for (int i = 0; i < 4; ++i)  // d B, row i of each patch
                for (int64_t q = 0; q < n; ++q) {
                    R[i][0][q] = D[i][0][q] - D[i][2][q];
                    R[i][1][q] = D[i][1][q] + D[i][2][q];
                    R[i][2][q] = D[i][2][q] - D[i][1][q];
                    R[i][3][q] = D[i][1][q] - D[i][3][q];
                }
            T* dst = Vc + q0;
            const int64_t xs = C * Tm;  // between xi planes
            for (int x = 0; x < 4; ++x) {  // Bt (d B), column x
                T* d0 = dst + (0 * 4 + x) * xs;
                T* d1 = dst + (1 * 4 + x) * xs;
                T* d2 = dst + (2 * 4 + x) * xs;
                T* d3 = dst + (3 * 4 + x) * xs;
                for (int64_t q = 0; q < n; ++q) {
                    d0[q] = R[0][x][q] - R[2][x][q];
                    d1[q] = R[1][x][q] + R[2][x][q];
                    d2[q] = R[2][x][q] - R[1][x][q];
                    d3[q] = R[1][x][q] - R[3][x][q];
                }
            }
        }
    }
}

// V[xi][c][j*TH*TW + ty*TW + tx] = (Bt d B)[xi] for the 4x4 patch d at input
// (2ty - ph, 2tx - pw) of channel c of image j (at in + j*img_stride), for m
// images; rows of V are Tm = m*TH*TW long. Vectorized along a row of tiles: the
// patch columns of tile tx are the even/odd input columns 2tx, 2tx+1, 2tx+2,
// 2tx+3 (less pw), so deinterleaved rows make every step a contiguous loop.
// Short rows of tiles go through winograd_input_blocks.
template <class T>
void winograd_input(T* MITHRIL_K_RESTRICT V, const T* MITHRIL_K_RESTRICT in, int64_t img_stride, int64_t m, int64_t C,
                    int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t TH, int64_t TW) {
    if (TW <= kWinogradShortRow) {
        winograd_input_blocks(V, in, img_stride, m, C, H, W, ph, pw, TH, TW);
        return;
    }
    const int64_t Tm = m * TH * TW;
    constexpr int64_t B = 64;  // tiles per step
    MITHRIL_K_PARFOR(m * C * H * W * 4 >= kParallelWork)
    for (int64_t t = 0; t < m * C; ++t) {
        const int64_t j = t / C, c = t % C;
        const T* plane = in + j * img_stride + c * H * W;
        T* Vc = V + c * Tm + j * TH * TW;
        alignas(64) T E[B + 1], O[B + 1], R[4][4][B];
        for (int64_t ty = 0; ty < TH; ++ty)
            for (int64_t tx0 = 0; tx0 < TW; tx0 += B) {
                const int64_t n = std::min(B, TW - tx0);
                for (int i = 0; i < 4; ++i) {
                    const int64_t ih = 2 * ty - ph + i;
                    const bool row_in = ih >= 0 && ih < H;
                    const T* row = plane + (row_in ? ih : 0) * W;
                    const int64_t w0 = 2 * tx0 - pw;  // input column of E[0]
                    for (int64_t q = 0; q <= n; ++q) {
                        const int64_t we = w0 + 2 * q, wo = we + 1;
                        E[q] = row_in && we >= 0 && we < W ? row[we] : T(0);
                        O[q] = row_in && wo >= 0 && wo < W ? row[wo] : T(0);
                    }
                    for (int64_t q = 0; q < n; ++q) {  // d B, the patch row's four columns
                        R[i][0][q] = E[q] - E[q + 1];
                        R[i][1][q] = O[q] + E[q + 1];
                        R[i][2][q] = E[q + 1] - O[q];
                        R[i][3][q] = O[q] - O[q + 1];
                    }
                }
                T* dst = Vc + ty * TW + tx0;
                const int64_t xs = C * Tm;  // between xi planes
                for (int x = 0; x < 4; ++x) {  // Bt (d B), column x
                    T* d0 = dst + (0 * 4 + x) * xs;
                    T* d1 = dst + (1 * 4 + x) * xs;
                    T* d2 = dst + (2 * 4 + x) * xs;
                    T* d3 = dst + (3 * 4 + x) * xs;
                    for (int64_t q = 0; q < n; ++q) {
                        d0[q] = R[0][x][q] - R[2][x][q];
                        d1[q] = R[1][x][q] + R[2][x][q];
                        d2[q] = R[2][x][q] - R[1][x][q];
                        d3[q] = R[1][x][q] - R[3][x][q];
                    }
                }
            }
    }
}

// out[j][k][2ty + r][2tx + s] = (At M A)[r][s] (+ bias[k]) for the tiles of m
// images (image j at out + j*img_stride), dropping the row or column past an odd
// output size.
// With an epilogue, epi(plane, n0 + j, k, OH*OW) follows on each output plane.
template <class T, class Epi = NoEpilogue>
void winograd_output(T* MITHRIL_K_RESTRICT out, int64_t img_stride, const T* MITHRIL_K_RESTRICT M,
                     const T* MITHRIL_K_RESTRICT bias, int64_t m, int64_t K, int64_t OH, int64_t OW, int64_t TH,
                     int64_t TW, const Epi& epi = {}, int64_t n0 = 0) {
    const int64_t Tm = m * TH * TW;
    constexpr int64_t B = 64;
    MITHRIL_K_PARFOR(m * K * OH * OW * 4 >= kParallelWork)
    for (int64_t t = 0; t < m * K; ++t) {
        const int64_t j = t / K, k = t % K;
        const T b = bias ? bias[k] : T(0);
        const T* Mk = M + k * Tm + j * TH * TW;
        T* plane = out + j * img_stride + k * OH * OW;
        const int64_t xs = K * Tm;
        alignas(64) T S[2][4][B], Y[2][2][B];
        for (int64_t ty = 0; ty < TH; ++ty)
            for (int64_t tx0 = 0; tx0 < TW; tx0 += B) {
                const int64_t n = std::min(B, TW - tx0);
                const T* src = Mk + ty * TW + tx0;
                for (int x = 0; x < 4; ++x) {  // At M, column x
                    const T* m0 = src + (0 * 4 + x) * xs;
                    const T* m1 = src + (1 * 4 + x) * xs;
                    const T* m2 = src + (2 * 4 + x) * xs;
                    const T* m3 = src + (3 * 4 + x) * xs;
                    for (int64_t q = 0; q < n; ++q) {
                        S[0][x][q] = m0[q] + m1[q] + m2[q];
                        S[1][x][q] = m1[q] - m2[q] - m3[q];
                    }
                }
                for (int r = 0; r < 2; ++r)
                    for (int64_t q = 0; q < n; ++q) {  // (At M) A
                        Y[r][0][q] = S[r][0][q] + S[r][1][q] + S[r][2][q] + b;
                        Y[r][1][q] = S[r][1][q] - S[r][2][q] - S[r][3][q] + b;
                    }
                for (int r = 0; r < 2; ++r) {
                    const int64_t oh = 2 * ty + r;
                    if (oh >= OH) break;
                    T* row = plane + oh * OW + 2 * tx0;
                    const int64_t full = std::min(n, (OW - 2 * tx0) / 2);  // tiles with both columns inside
                    for (int64_t q = 0; q < full; ++q) {
                        row[2 * q] = Y[r][0][q];
                        row[2 * q + 1] = Y[r][1][q];
                    }
                    if (full < n) row[2 * full] = Y[r][0][full];  // the last tile of an odd width
                }
            }
        if constexpr (has_epilogue<Epi>) epi(plane, n0 + j, k, OH * OW);
    }
}

// ---- Winograd F(4x4, 3x3) ----------------------------------------------------
//
// The forward convolution's larger tiles: per 4x4 output tile Y = At [U . V] A
// with U = G g Gt (6x6) and V = Bt d B (the 6x6 input patch), 36 gemms with
// 36/144 = 1/4 of the multiplications of im2col + gemm (F(2x2, 3x3): 16/36).
// Lavin & Gray's interpolation points 0, 1, -1, 2, -2 and infinity; the
// transforms multiply by 2, 4, 5, 8, 1/4, 1/6, 1/12 and 1/24, so the float32
// error grows to about 3.5x the direct sum's (2e-6 relative RMS over 128
// channels against float64, tools/bench and the [kernels] tests). conv2d takes
// them for output planes of at least kWinograd4Min x kWinograd4Min
// (winograd_tile); the weight gradient stays on F(2x2, 3x3).
//   Bt = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
//         0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G  = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
//         1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   At = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]

// U[xi][k][c] = (G g Gt)[xi] (xi = 6 * row + column) for weight [K, C, 3, 3],
// 16 input channels at a time, as winograd_weights.
template <class T>
void winograd4_weights(T* MITHRIL_K_RESTRICT U, const T* MITHRIL_K_RESTRICT weight, int64_t K, int64_t C) {
    constexpr int64_t L = 16;
    const int64_t blocks = (C + L - 1) / L;
    MITHRIL_K_PARFOR(K * C * 36 >= kParallelWork)
    for (int64_t t = 0; t < K * blocks; ++t) {
        const int64_t k = t / blocks, c0 = (t % blocks) * L, n = std::min(L, C - c0);
        alignas(64) T g[9][L], h[6][3][L];
        for (int64_t q = 0; q < L; ++q)
            for (int e = 0; e < 9; ++e) g[e][q] = q < n ? weight[(k * C + c0 + q) * 9 + e] : T(0);
        // G applied to a column (a, b, c) of three values.
        const auto G = [](T* o[6], const T* a, const T* b, const T* c, int64_t len) {
            for (int64_t q = 0; q < len; ++q) {
                const T s = a[q] + c[q];
                o[0][q] = a[q] / T(4);
                o[1][q] = -(s + b[q]) / T(6);
                o[2][q] = -(s - b[q]) / T(6);
                o[3][q] = a[q] / T(24) + b[q] / T(12) + c[q] / T(6);
                o[4][q] = a[q] / T(24) - b[q] / T(12) + c[q] / T(6);
                o[5][q] = c[q];
            }
        };
        for (int j = 0; j < 3; ++j) {  // G g, per column j of the kernel
            T* o[6] = {h[0][j], h[1][j], h[2][j], h[3][j], h[4][j], h[5][j]};
            G(o, g[j], g[3 + j], g[6 + j], L);
        }
        for (int i = 0; i < 6; ++i) {  // (G g) Gt, per row i
            T* o[6];
            for (int x = 0; x < 6; ++x) o[x] = U + ((i * 6 + x) * K + k) * C + c0;
            G(o, h[i][0], h[i][1], h[i][2], n);
        }
    }
}

// Bt applied to six values z[0..5] (each a lane array), into o[0..5] (distinct
// arrays: the restrict parameters below let the compiler vectorize the loop).
template <class T>
inline void winograd4_bt_lanes(T* MITHRIL_K_RESTRICT o0, T* MITHRIL_K_RESTRICT o1, T* MITHRIL_K_RESTRICT o2, T* MITHRIL_K_RESTRICT o3, T* MITHRIL_K_RESTRICT o4,
                               T* MITHRIL_K_RESTRICT o5, const T* MITHRIL_K_RESTRICT z0, const T* MITHRIL_K_RESTRICT z1,
                               const T* MITHRIL_K_RESTRICT z2, const T* MITHRIL_K_RESTRICT z3, const T* MITHRIL_K_RESTRICT z4,
                               const T* MITHRIL_K_RESTRICT z5, int64_t n) {
    for (int64_t q = 0; q < n; ++q) {
        const T a = z4[q] - T(4) * z2[q], b = z3[q] - T(4) * z1[q];  // rows 1 and 2
        const T c = z4[q] - z2[q], d = T(2) * (z3[q] - z1[q]);       // rows 3 and 4
        o0[q] = T(4) * z0[q] - T(5) * z2[q] + z4[q];
        o1[q] = a + b;
        o2[q] = a - b;
        o3[q] = c + d;
        o4[q] = c - d;
        o5[q] = T(4) * z1[q] - T(5) * z3[q] + z5[q];
    }
}
template <class T>
inline void winograd4_bt(T* const o[6], const T* const z[6], int64_t n) {
    winograd4_bt_lanes(o[0], o[1], o[2], o[3], o[4], o[5], z[0], z[1], z[2], z[3], z[4], z[5], n);
}

// V[xi][c][j*TH*TW + ty*TW + tx] = (Bt d B)[xi] for the 6x6 patch d at input
// (4ty - ph, 4tx - pw) of channel c of image j (at in + j*img_stride), for m
// images. The tiles of a plane go in blocks of up to 64 whatever their row, each
// patch loaded whole (bounds checks only at the border), so every step is a
// vector loop over the block.
template <class T>
void winograd4_input(T* MITHRIL_K_RESTRICT V, const T* MITHRIL_K_RESTRICT in, int64_t img_stride, int64_t m,
                     int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t TH, int64_t TW) {
    const int64_t Tm = m * TH * TW, TT = TH * TW;
    constexpr int64_t B = 64;  // tiles per step
    MITHRIL_K_PARFOR(m * C * H * W * 4 >= kParallelWork)
    for (int64_t t = 0; t < m * C; ++t) {
        const int64_t j = t / C, c = t % C;
        const T* plane = in + j * img_stride + c * H * W;
        T* Vc = V + c * Tm + j * TT;
        alignas(64) T D[6][6][B], R[6][6][B];
        for (int64_t q0 = 0; q0 < TT; q0 += B) {
            const int64_t n = std::min(B, TT - q0);
            winograd_patches<6, 4>(D, plane, H, W, ph, pw, TW, q0, n);
            for (int i = 0; i < 6; ++i) {  // d B, row i of each patch
                const T* z[6] = {D[i][0], D[i][1], D[i][2], D[i][3], D[i][4], D[i][5]};
                T* const o[6] = {R[i][0], R[i][1], R[i][2], R[i][3], R[i][4], R[i][5]};
                winograd4_bt(o, z, n);
            }
            const int64_t xs = C * Tm;  // between xi planes
            for (int x = 0; x < 6; ++x) {  // Bt (d B), column x
                const T* z[6] = {R[0][x], R[1][x], R[2][x], R[3][x], R[4][x], R[5][x]};
                T* const o[6] = {Vc + q0 + (0 * 6 + x) * xs, Vc + q0 + (1 * 6 + x) * xs, Vc + q0 + (2 * 6 + x) * xs,
                                 Vc + q0 + (3 * 6 + x) * xs, Vc + q0 + (4 * 6 + x) * xs, Vc + q0 + (5 * 6 + x) * xs};
                winograd4_bt(o, z, n);
            }
        }
    }
}

// At applied to six values z[0..5], into o[0..3] (plus b; distinct arrays).
template <class T>
inline void winograd4_at_lanes(T* MITHRIL_K_RESTRICT o0, T* MITHRIL_K_RESTRICT o1, T* MITHRIL_K_RESTRICT o2, T* MITHRIL_K_RESTRICT o3,
                               const T* MITHRIL_K_RESTRICT z0, const T* MITHRIL_K_RESTRICT z1, const T* MITHRIL_K_RESTRICT z2,
                               const T* MITHRIL_K_RESTRICT z3, const T* MITHRIL_K_RESTRICT z4, const T* MITHRIL_K_RESTRICT z5, T b,
                               int64_t n) {
    for (int64_t q = 0; q < n; ++q) {
        const T s12 = z1[q] + z2[q], d12 = z1[q] - z2[q];
        const T s34 = z3[q] + z4[q], d34 = z3[q] - z4[q];
        o0[q] = z0[q] + s12 + s34 + b;
        o1[q] = d12 + T(2) * d34 + b;
        o2[q] = s12 + T(4) * s34 + b;
        o3[q] = d12 + T(8) * d34 + z5[q] + b;
    }
}
template <class T>
inline void winograd4_at(T* const o[4], const T* const z[6], T b, int64_t n) {
    winograd4_at_lanes(o[0], o[1], o[2], o[3], z[0], z[1], z[2], z[3], z[4], z[5], b, n);
}

// out[j][k][4ty + r][4tx + s] = (At M A)[r][s] (+ bias[k]) for the tiles of m
// images (image j at out + j*img_stride), dropping what lies past the output's
// edge; the tiles of a plane in blocks of up to 64, as winograd4_input. With an
// epilogue, epi(plane, n0 + j, k, OH*OW) follows on each output plane.
template <class T, class Epi = NoEpilogue>
void winograd4_output(T* MITHRIL_K_RESTRICT out, int64_t img_stride, const T* MITHRIL_K_RESTRICT M,
                      const T* MITHRIL_K_RESTRICT bias, int64_t m, int64_t K, int64_t OH, int64_t OW, int64_t TH,
                      int64_t TW, const Epi& epi = {}, int64_t n0 = 0) {
    const int64_t Tm = m * TH * TW, TT = TH * TW;
    constexpr int64_t B = 64;
    MITHRIL_K_PARFOR(m * K * OH * OW * 4 >= kParallelWork)
    for (int64_t t = 0; t < m * K; ++t) {
        const int64_t j = t / K, k = t % K;
        const T b = bias ? bias[k] : T(0);
        const T* Mk = M + k * Tm + j * TT;
        T* plane = out + j * img_stride + k * OH * OW;
        const int64_t xs = K * Tm;
        alignas(64) T S[4][6][B], Y[4][4][B];
        for (int64_t q0 = 0; q0 < TT; q0 += B) {
            const int64_t n = std::min(B, TT - q0);
            for (int x = 0; x < 6; ++x) {  // At M, column x
                const T* z[6];
                for (int y = 0; y < 6; ++y) z[y] = Mk + q0 + (y * 6 + x) * xs;
                T* const o[4] = {S[0][x], S[1][x], S[2][x], S[3][x]};
                winograd4_at(o, z, T(0), n);
            }
            for (int r = 0; r < 4; ++r) {  // (At M) A
                const T* z[6] = {S[r][0], S[r][1], S[r][2], S[r][3], S[r][4], S[r][5]};
                T* const o[4] = {Y[r][0], Y[r][1], Y[r][2], Y[r][3]};
                winograd4_at(o, z, b, n);
            }
            for (int64_t q = 0; q < n; ++q) {
                const int64_t ty = (q0 + q) / TW, tx = (q0 + q) % TW;
                const int64_t h0 = 4 * ty, w0 = 4 * tx;
                T* p = plane + h0 * OW + w0;
                if (h0 + 3 < OH && w0 + 3 < OW) {
                    for (int r = 0; r < 4; ++r)
                        for (int s = 0; s < 4; ++s) p[r * OW + s] = Y[r][s][q];
                } else {
                    for (int r = 0; r < 4 && h0 + r < OH; ++r)
                        for (int s = 0; s < 4 && w0 + s < OW; ++s) p[r * OW + s] = Y[r][s][q];
                }
            }
        }
        if constexpr (has_epilogue<Epi>) epi(plane, n0 + j, k, OH * OW);
    }
}

// ---- Winograd on transposed operands (weights packed once, few tiles) ---------
//
// With the weights transformed once (winograd_pack), the products run the other
// way round, as a Linear layer does: M[xi]^T (tiles x K) = V[xi]^T (tiles x C)
// U[xi]^T, U[xi]^T packed into gemm_packed's panels. The tiles are few there
// (fewer than kWinogradTiles), so each panel of weights streams from memory
// once, contiguously, and serves every tile from cache (ResNet-18's 7x7 stage at
// batch 1: 16 tiles, 512 x 512 weights per xi; read in place as the left operand
// its six rows per register tile were six strided streams, at 40% of peak).
// The input transform is the usual one (V[xi][c][tile]: gemm_packed_at reads it
// as the transposed left operand); the output transform reads MT[xi][tile][k],
// a tile's channels side by side, and vectorizes across 16 of them.

// At of F(2x2, 3x3) (see "Winograd" above) on lane arrays (distinct).
template <class T>
inline void winograd2_at_lanes(T* MITHRIL_K_RESTRICT o0, T* MITHRIL_K_RESTRICT o1, const T* MITHRIL_K_RESTRICT z0, const T* MITHRIL_K_RESTRICT z1,
                               const T* MITHRIL_K_RESTRICT z2, const T* MITHRIL_K_RESTRICT z3, int64_t n) {
    for (int64_t q = 0; q < n; ++q) {
        o0[q] = z0[q] + z1[q] + z2[q];
        o1[q] = z1[q] - z2[q] - z3[q];
    }
}
template <class T>
inline void winograd2_at(T* const o[2], const T* const z[4], int64_t n) {
    winograd2_at_lanes(o[0], o[1], z[0], z[1], z[2], z[3], n);
}

// out[j][k][TILE*ty + r][TILE*tx + s] = (At M A)[r][s] (+ bias[k]) from
// MT[xi][j*TH*TW + ty*TW + tx][k], 16 output channels at a time, dropping what lies
// past the output's edge; then epi(plane, n0 + j, k, OH*OW) on each of the 16 planes.
template <int TILE, class T, class Epi = NoEpilogue>
void winograd_t_output(T* MITHRIL_K_RESTRICT out, int64_t img_stride, const T* MITHRIL_K_RESTRICT MT,
                       const T* MITHRIL_K_RESTRICT bias, int64_t m, int64_t K, int64_t OH, int64_t OW, int64_t TH,
                       int64_t TW, const Epi& epi = {}, int64_t n0 = 0) {
    constexpr int a = TILE + 2;
    constexpr int64_t L = 16;
    const int64_t TT = TH * TW, Tm = m * TT, kblocks = (K + L - 1) / L;
    MITHRIL_K_PARFOR(m * K * OH * OW * 4 >= kParallelWork)
    for (int64_t t = 0; t < m * kblocks; ++t) {
        const int64_t j = t / kblocks, k0 = (t % kblocks) * L, n = std::min(L, K - k0);
        T* img = out + j * img_stride + k0 * OH * OW;
        alignas(64) T S[TILE][a][L], Y[TILE][TILE][L], b[L];
        for (int64_t l = 0; l < L; ++l) b[l] = bias && l < n ? bias[k0 + l] : T(0);
        for (int64_t q = 0; q < TT; ++q) {
            for (int x = 0; x < a; ++x) {  // At M, column x
                const T* z[a];
                T* o[TILE];
                for (int y = 0; y < a; ++y) z[y] = MT + ((y * a + x) * Tm + j * TT + q) * K + k0;
                for (int r = 0; r < TILE; ++r) o[r] = S[r][x];
                if constexpr (TILE == 4) winograd4_at(o, z, T(0), n);
                else winograd2_at(o, z, n);
            }
            for (int r = 0; r < TILE; ++r) {  // (At M) A
                const T* z[a];
                T* o[TILE];
                for (int x = 0; x < a; ++x) z[x] = S[r][x];
                for (int s = 0; s < TILE; ++s) o[s] = Y[r][s];
                if constexpr (TILE == 4) winograd4_at(o, z, T(0), n);
                else winograd2_at(o, z, n);
                for (int s = 0; s < TILE; ++s)
                    for (int64_t l = 0; l < n; ++l) Y[r][s][l] += b[l];
            }
            const int64_t ty = q / TW, tx = q % TW, h0 = TILE * ty, w0 = TILE * tx;
            const int rows = static_cast<int>(std::min<int64_t>(TILE, OH - h0)),
                      cols = static_cast<int>(std::min<int64_t>(TILE, OW - w0));
            for (int64_t l = 0; l < n; ++l) {
                T* p = img + l * OH * OW + h0 * OW + w0;
                if (rows == TILE && cols == TILE) {
                    for (int r = 0; r < TILE; ++r)
                        for (int s = 0; s < TILE; ++s) p[r * OW + s] = Y[r][s][l];
                } else {
                    for (int r = 0; r < rows; ++r)
                        for (int s = 0; s < cols; ++s) p[r * OW + s] = Y[r][s][l];
                }
            }
        }
        if constexpr (has_epilogue<Epi>)
            for (int64_t l = 0; l < n; ++l) epi(img + l * OH * OW, n0 + j, k0 + l, OH * OW);
    }
}

// conv2d through Winograd on transposed operands (above) for all N images at once,
// UT = winograd_pack's panels; scratch: V and MT (winograd_scratch less the weights).
template <int TILE, class Epi = NoEpilogue>
void conv2d_winograd_t(float* MITHRIL_K_RESTRICT out, const float* MITHRIL_K_RESTRICT in,
                       const float* MITHRIL_K_RESTRICT UT, const float* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C,
                       int64_t H, int64_t W, int64_t K, int64_t pad_h, int64_t pad_w, int64_t OH, int64_t OW,
                       float* MITHRIL_K_RESTRICT scratch, const Epi& epi = {}) {
    constexpr int64_t a2 = (TILE + 2) * (TILE + 2);
    const int64_t TH = (OH + TILE - 1) / TILE, TW = (OW + TILE - 1) / TILE, Tm = N * TH * TW;
    float* V = scratch;
    float* MT = V + a2 * C * Tm;
    if constexpr (TILE == 4) winograd4_input(V, in, C * H * W, N, C, H, W, pad_h, pad_w, TH, TW);
    else winograd_input(V, in, C * H * W, N, C, H, W, pad_h, pad_w, TH, TW);
    const int64_t panel = packed_b_size(K, C);
    MITHRIL_K_PARFOR(a2 * K * Tm * C >= kParallelWork * 8)
    for (int64_t xi = 0; xi < a2; ++xi)
        gemm_packed_at(MT + xi * Tm * K, V + xi * C * Tm, UT + xi * panel, nullptr, Tm, K, C, Tm, K);
    winograd_t_output<TILE>(out, K * OH * OW, MT, bias, N, K, OH, OW, TH, TW, epi, 0);
}

// M[xi] = U[xi] V[xi] for xi < a2 (K x C times C x Tm). With the GEMM kernel
// (float, kPackedGemm) the products are spread over the threads whole, each one
// on a single thread: one parallel region instead of a2 (ResNet-18 at batch 1
// runs 500 of these products, most too small to split well); otherwise one
// threaded gemm_ab after the other (BLAS is only called from serial code).
template <class T>
void winograd_products(T* MITHRIL_K_RESTRICT M, const T* MITHRIL_K_RESTRICT U, const T* MITHRIL_K_RESTRICT V, int64_t a2,
                       int64_t K, int64_t C, int64_t Tm) {
    if constexpr (std::is_same_v<T, float> && kPackedGemm) {
        if (gemm_nn_suits(K, Tm, C)) {
            MITHRIL_K_PARFOR(a2 * K * Tm * C >= kParallelWork * 8)
            for (int64_t xi = 0; xi < a2; ++xi)
                gemm_nn(M + xi * K * Tm, U + xi * K * C, V + xi * C * Tm, nullptr, K, Tm, C, C, Tm, Tm);
            return;
        }
    }
    for (int64_t xi = 0; xi < a2; ++xi)
        gemm_ab(M + xi * K * Tm, U + xi * K * C, V + xi * C * Tm, K, Tm, C, C, Tm, Tm);
}

// conv2d through Winograd F(tile x tile, 3x3) (tile 2 or 4, winograd_images > 0 for
// it), in chunks of nb images, the weights transformed here into the scratch (U,
// then V and M). Weights transformed once go through conv2d_winograd_t instead.
template <class T, class Epi = NoEpilogue>
void conv2d_winograd(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                     const T* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                     int64_t pad_h, int64_t pad_w, int64_t OH, int64_t OW, int64_t nb, int64_t tile,
                     T* MITHRIL_K_RESTRICT scratch, const Epi& epi = {}) {
    const int64_t TH = (OH + tile - 1) / tile, TW = (OW + tile - 1) / tile, tiles = TH * TW,
                  a2 = (tile + 2) * (tile + 2);
    T* U = scratch;
    T* V = U + a2 * K * C;
    T* M = V + a2 * C * nb * tiles;
    if (tile == 4) winograd4_weights(U, weight, K, C);
    else winograd_weights(U, weight, K, C);
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        const int64_t m = std::min(nb, N - n0), Tm = m * tiles;
        if (tile == 4) winograd4_input(V, in + n0 * C * H * W, C * H * W, m, C, H, W, pad_h, pad_w, TH, TW);
        else winograd_input(V, in + n0 * C * H * W, C * H * W, m, C, H, W, pad_h, pad_w, TH, TW);
        winograd_products(M, U, V, a2, K, C, Tm);
        if (tile == 4) winograd4_output(out + n0 * K * OH * OW, K * OH * OW, M, bias, m, K, OH, OW, TH, TW, epi, n0);
        else winograd_output(out + n0 * K * OH * OW, K * OH * OW, M, bias, m, K, OH, OW, TH, TW, epi, n0);
    }
}

// The adjoint of winograd_output: dM[xi][k][j*TH*TW + ty*TW + tx] = (A dY At)[xi]
// for the 2x2 output gradient dY of tile (ty, tx) of channel k of image j (0 past
// an odd output size).
template <class T>
void winograd_output_adjoint(T* MITHRIL_K_RESTRICT dM, const T* MITHRIL_K_RESTRICT dy, int64_t img_stride, int64_t m,
                             int64_t K, int64_t OH, int64_t OW, int64_t TH, int64_t TW) {
    const int64_t Tm = m * TH * TW;
    constexpr int64_t B = 64;
    MITHRIL_K_PARFOR(m * K * OH * OW * 4 >= kParallelWork)
    for (int64_t t = 0; t < m * K; ++t) {
        const int64_t j = t / K, k = t % K;
        const T* plane = dy + j * img_stride + k * OH * OW;
        T* dst0 = dM + k * Tm + j * TH * TW;
        const int64_t xs = K * Tm;
        alignas(64) T Y[2][2][B], P[4][2][B];
        for (int64_t ty = 0; ty < TH; ++ty)
            for (int64_t tx0 = 0; tx0 < TW; tx0 += B) {
                const int64_t n = std::min(B, TW - tx0);
                for (int r = 0; r < 2; ++r) {
                    const int64_t oh = 2 * ty + r;
                    const T* row = plane + (oh < OH ? oh : 0) * OW;
                    for (int64_t q = 0; q < n; ++q) {
                        const int64_t w = 2 * (tx0 + q);
                        Y[r][0][q] = oh < OH ? row[w] : T(0);  // w < OW always
                        Y[r][1][q] = oh < OH && w + 1 < OW ? row[w + 1] : T(0);
                    }
                }
                for (int s = 0; s < 2; ++s)
                    for (int64_t q = 0; q < n; ++q) {  // A dY, column s
                        P[0][s][q] = Y[0][s][q];
                        P[1][s][q] = Y[0][s][q] + Y[1][s][q];
                        P[2][s][q] = Y[0][s][q] - Y[1][s][q];
                        P[3][s][q] = -Y[1][s][q];
                    }
                T* dst = dst0 + ty * TW + tx0;
                for (int i = 0; i < 4; ++i) {  // (A dY) At, row i
                    T* d0 = dst + (i * 4 + 0) * xs;
                    T* d1 = dst + (i * 4 + 1) * xs;
                    T* d2 = dst + (i * 4 + 2) * xs;
                    T* d3 = dst + (i * 4 + 3) * xs;
                    for (int64_t q = 0; q < n; ++q) {
                        d0[q] = P[i][0][q];
                        d1[q] = P[i][0][q] + P[i][1][q];
                        d2[q] = P[i][0][q] - P[i][1][q];
                        d3[q] = -P[i][1][q];
                    }
                }
            }
    }
}

// The adjoint of winograd_weights: dw[k][c] = Gt dU[.][k][c] G (4x4 to 3x3).
template <class T>
void winograd_weights_adjoint(T* MITHRIL_K_RESTRICT dw, const T* MITHRIL_K_RESTRICT dU, int64_t K, int64_t C) {
    constexpr int64_t L = 16;
    const int64_t blocks = (C + L - 1) / L;
    MITHRIL_K_PARFOR(K * C * 16 >= kParallelWork)
    for (int64_t t = 0; t < K * blocks; ++t) {
        const int64_t k = t / blocks, c0 = (t % blocks) * L, n = std::min(L, C - c0);
        alignas(64) T u[16][L], h[3][4][L], g[9][L];
        for (int xi = 0; xi < 16; ++xi)
            for (int64_t q = 0; q < L; ++q) u[xi][q] = q < n ? dU[(xi * K + k) * C + c0 + q] : T(0);
        for (int j = 0; j < 4; ++j)  // Gt dU, per column j
            for (int64_t q = 0; q < L; ++q) {
                const T a = u[j][q], b = u[4 + j][q], c = u[8 + j][q], d = u[12 + j][q];
                h[0][j][q] = a + T(0.5) * (b + c);
                h[1][j][q] = T(0.5) * (b - c);
                h[2][j][q] = T(0.5) * (b + c) + d;
            }
        for (int i = 0; i < 3; ++i)  // (Gt dU) G
            for (int64_t q = 0; q < L; ++q) {
                const T a = h[i][0][q], b = h[i][1][q], c = h[i][2][q], d = h[i][3][q];
                g[i * 3 + 0][q] = a + T(0.5) * (b + c);
                g[i * 3 + 1][q] = T(0.5) * (b - c);
                g[i * 3 + 2][q] = T(0.5) * (b + c) + d;
            }
        for (int64_t q = 0; q < n; ++q)
            for (int e = 0; e < 9; ++e) dw[(k * C + c0 + q) * 9 + e] = g[e][q];
    }
}

// conv2d_grad_weight through Winograd (winograd_images > 0 for its geometry):
// dU[xi] = sum over tiles of dM[xi] V[xi]^T, one gemm per xi and chunk of images.
template <class T>
void conv2d_grad_weight_winograd(T* MITHRIL_K_RESTRICT dw, const T* MITHRIL_K_RESTRICT dy,
                                 const T* MITHRIL_K_RESTRICT x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                 int64_t pad_h, int64_t pad_w, int64_t OH, int64_t OW, int64_t nb,
                                 T* MITHRIL_K_RESTRICT scratch) {
    const int64_t TH = (OH + 1) / 2, TW = (OW + 1) / 2, tiles = TH * TW;
    T* dU = scratch;
    T* V = dU + 16 * K * C;
    T* dM = V + 16 * C * nb * tiles;
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        const int64_t m = std::min(nb, N - n0), Tm = m * tiles;
        winograd_input(V, x + n0 * C * H * W, C * H * W, m, C, H, W, pad_h, pad_w, TH, TW);
        winograd_output_adjoint(dM, dy + n0 * K * OH * OW, K * OH * OW, m, K, OH, OW, TH, TW);
        for (int64_t xi = 0; xi < 16; ++xi)
            gemm(Transpose::No, Transpose::Yes, K, C, Tm, T(1), dM + xi * K * Tm, Tm, V + xi * C * Tm, Tm,
                 n0 == 0 ? T(0) : T(1), dU + xi * K * C, C);
    }
    winograd_weights_adjoint(dw, dU, K, C);
}

// Whether conv2d takes the Winograd transform of its weights made once
// (winograd_pack, the memory plan's packed copy in programs without gradients):
// for 3x3 convolutions that Winograd suits but whose batch has too few tiles to
// pay for transforming the weights on every call (ResNet-18's stages at batch 1:
// the 7x7 one's products would otherwise run on 49 columns of im2col).
inline bool winograd_packs(int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                           int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW) {
    return winograd_shape(N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW) &&
           winograd_images(ConvAlgo::Auto, N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW,
                           winograd_tile(OH, OW)) == 0;
}

// conv2d's scratch for an input of H x W (a 1x1 kernel over an input of another
// size than the output, as the backward pass asks for, still needs columns).
inline size_t conv2d_scratch_sized(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h,
                                   int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t groups, int64_t OH,
                                   int64_t OW, int64_t N, int64_t K, ConvAlgo algo, int64_t dil_h, int64_t dil_w) {
    const int64_t tile = winograd_tile(OH, OW);
    if (const int64_t nb = winograd_images(algo, N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW,
                                           tile))
        return winograd_scratch(C, K, nb, OH, OW, tile);
    // With packed weights Winograd runs on the whole batch (V and M only); room for either.
    size_t packed = 0;
    if (algo == ConvAlgo::Auto && winograd_packs(N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW))
        packed = winograd_scratch(C, K, N, OH, OW, tile) - static_cast<size_t>((tile + 2) * (tile + 2) * K * C);
    const bool pointwise = conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
    const int64_t R = C / groups * KH * KW, P = OH * OW;
    const ConvPlan plan = conv2d_plan(algo, N, C, K, KH, KW, groups, P);
    // The direct path runs only where the target has the kernel: room for either.
    const int64_t direct = conv_direct(plan, stride_h, stride_w, R)
                               ? plan.images * conv_direct_slot(C, H + 2 * pad_h, W + 2 * pad_w, K / groups, OH, OW)
                               : 0;
    size_t own = static_cast<size_t>(std::max(direct, pointwise ? 0 : plan.images * R * P));
    if (plan.mode == ConvPlan::Batched) own = static_cast<size_t>((R + K / groups) * plan.images * P);
    // The polyphase path runs only where the target has the kernel: room for either.
    if (algo == ConvAlgo::Auto && conv_polyphase(plan, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, R, OW))
        own = std::max(own, static_cast<size_t>(conv_polyphase_scratch(C, H, W, pad_h, pad_w, stride_h, stride_w)));
    if (const int64_t g = conv_group(plan, N, K / groups, P, R, R * P, K / groups * P); g > 1)
        own = static_cast<size_t>(std::max(direct, plan.images * g * (R + K / groups) * P));
    return std::max(packed, own);
}
}  // namespace detail

// Scratch elements conv2d needs. ConvAlgo::PerImage: (C/groups)*KH*KW*OH*OW, or
// 0 for a pointwise (1x1, stride 1, no padding) convolution. Auto: per the plan
// (see conv_plan), K being the output channels.
inline size_t conv2d_scratch(int64_t C, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                             int64_t pad_w, int64_t groups, int64_t OH, int64_t OW, int64_t N = 1, int64_t K = 0,
                             ConvAlgo algo = ConvAlgo::PerImage, int64_t dil_h = 1, int64_t dil_w = 1) {
    // A forward convolution's output has the input's size when it is pointwise.
    return detail::conv2d_scratch_sized(C, OH, OW, KH, KW, stride_h, stride_w, pad_h, pad_w, groups, OH, OW, N, K,
                                        algo, dil_h, dil_w);
}

namespace detail {

// A depthwise convolution (groups == C == K) channels-first: each output plane is a
// sum of KH*KW shifted input rows times one weight each, accumulated row by row in
// place (stride 1 reads contiguous inputs: vector loops), planes over the threads.
// The im2col path would run one 1 x (KH*KW) x (OH*OW) product per channel.
template <class T, class Epi>
void conv2d_depthwise(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                      const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH,
                      int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
                      int64_t dil_w, int64_t OH, int64_t OW, const Epi& epi) {
    const int64_t P = OH * OW;
    MITHRIL_K_PARFOR(N * C * P * KH * KW >= kParallelWork)
    for (int64_t nc = 0; nc < N * C; ++nc) {
        const int64_t c = nc % C;
        const T* plane = in + nc * H * W;
        const T* w = weight + c * KH * KW;
        T* y = out + nc * P;
        const T b = bias ? static_cast<T>(bias[c]) : T(0);
        for (int64_t oh = 0; oh < OH; ++oh) {
            T* MITHRIL_K_RESTRICT yr = y + oh * OW;
            for (int64_t ow = 0; ow < OW; ++ow) yr[ow] = b;
            for (int64_t kh = 0; kh < KH; ++kh) {
                const int64_t ih = oh * stride_h - pad_h + kh * dil_h;
                if (ih < 0 || ih >= H) continue;
                const T* MITHRIL_K_RESTRICT xr = plane + ih * W;
                for (int64_t kw = 0; kw < KW; ++kw) {
                    const int64_t off = kw * dil_w - pad_w;
                    int64_t lo, hi;
                    valid_range(off, stride_w, W, OW, lo, hi);
                    const T wv = w[kh * KW + kw];
                    if (stride_w == 1) {
                        const T* MITHRIL_K_RESTRICT xs = xr + off;
                        for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xs[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xr[ow * stride_w + off];
                    }
                }
            }
        }
        if constexpr (has_epilogue<Epi>) epi(y, nc / C, c, P);
    }
}

}  // namespace detail

// torch.nn.functional.conv2d(in, weight, bias, stride, padding, dilation, groups).
// in [N, C, H, W], weight [K, C/groups, KH, KW], bias [K] or null,
// out [N, K, OH, OW] with OH = (H + 2*pad_h - dil_h*(KH-1) - 1)/stride_h + 1
// (given by the caller). scratch: conv2d_scratch(..., N, K, algo) elements.
// Depthwise (groups == C == K): direct, conv2d_depthwise, no scratch used. Otherwise,
// per image and group: im2col into scratch (none for a pointwise convolution),
// then one gemm out_g[K/g, OH*OW] = weight_g[K/g, C/g*KH*KW] * col[C/g*KH*KW, OH*OW];
// images spread over threads or batched per gemm as the plan says. `epi` (see
// NoEpilogue) rewrites each output row once it holds the convolution plus bias.
// `winograd` (or null): winograd_pack of the weights, made once, for the shapes of
// winograd_packs, which then run through Winograd on the whole batch.
template <class T, class Epi = NoEpilogue>
void conv2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
            const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH,
            int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
            int64_t dil_w, int64_t groups, int64_t OH, int64_t OW, T* MITHRIL_K_RESTRICT scratch,
            ConvAlgo algo = ConvAlgo::PerImage, const Epi& epi = {}, const opt<T>* winograd = nullptr) {
    const int64_t Cg = C / groups, Kg = K / groups, P = OH * OW, R = Cg * KH * KW;
    // The size check matters when the backward pass calls this with an explicit output size.
    const bool pointwise =
        detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
    if (groups == C && K == C && C > 1) {
        detail::conv2d_depthwise(out, in, weight, bias, N, C, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h,
                                 dil_w, OH, OW, epi);
        return;
    }
    const int64_t tile = detail::winograd_tile(OH, OW);
    if (const int64_t wb = detail::winograd_images(algo, N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups,
                                                   OH, OW, tile)) {
        detail::conv2d_winograd(out, in, weight, static_cast<const T*>(bias), N, C, H, W, K, pad_h, pad_w, OH, OW, wb,
                                tile, scratch, epi);
        return;
    }
    if (winograd && algo == ConvAlgo::Auto &&
        detail::winograd_packs(N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW)) {
        if constexpr (std::is_same_v<T, float> && kPackedGemm) {
            if (tile == 4)
                detail::conv2d_winograd_t<4>(out, in, static_cast<const T*>(winograd), static_cast<const T*>(bias), N, C,
                                             H, W, K, pad_h, pad_w, OH, OW, scratch, epi);
            else
                detail::conv2d_winograd_t<2>(out, in, static_cast<const T*>(winograd), static_cast<const T*>(bias), N, C,
                                             H, W, K, pad_h, pad_w, OH, OW, scratch, epi);
            return;
        }
    }
    const ConvPlan plan = detail::conv2d_plan(algo, N, C, K, KH, KW, groups, P);
    if (plan.mode == ConvPlan::Batched) {
        const int64_t nb = plan.images;
        T* col = scratch;
        T* res = scratch + R * nb * P;
        for (int64_t n0 = 0; n0 < N; n0 += nb) {
            const int64_t m = std::min(nb, N - n0), Q = m * P;
            for (int64_t g = 0; g < groups; ++g) {
                const T* img = in + (n0 * C + g * Cg) * H * W;
                detail::columns_images(col, img, C * H * W, m, Cg, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w,
                                       dil_h, dil_w, OH, OW, pointwise);
                gemm_ab(res, weight + g * Kg * R, col, Kg, Q, R, R, Q, Q);
                detail::unpack_images(out + (n0 * K + g * Kg) * P, K * P, res, bias ? bias + g * Kg : nullptr, m, Kg,
                                      P, epi, n0, g * Kg);
            }
        }
        return;
    }
    // One image: im2col into `slot` (serially, as it runs on one thread of the
    // image loop, or with its own OpenMP loop when `inner` says the images run serially).
    auto image = [&](int64_t n, T* slot, bool inner) {
        for (int64_t g = 0; g < groups; ++g) {
            const T* img = in + (n * C + g * Cg) * H * W;
            const T* col = img;
            if (!pointwise) {
                if (inner) {
                    detail::im2col(slot, img, Cg, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH,
                                   OW);
                } else {
                    for (int64_t r = 0; r < R; ++r)
                        detail::im2col_row(slot + r * P, img, r, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w,
                                           dil_h, dil_w, OH, OW);
                }
                col = slot;
            }
            T* dst = out + (n * K + g * Kg) * P;
            if (R == 0) {
                for (int64_t i = 0; i < Kg * P; ++i) dst[i] = T(0);
            } else if (Kg > 0 && P > 0) {
                gemm_ab(dst, weight + g * Kg * R, col, Kg, P, R, R, P, P);
            }
        }
        if (bias || has_epilogue<Epi>) {
            T* o = out + n * K * P;
            auto add = [&](int64_t kk) {
                T* row = o + kk * P;
                if (bias) {
                    const T b = bias[kk];
                    for (int64_t p = 0; p < P; ++p) row[p] += b;
                }
                if constexpr (has_epilogue<Epi>) epi(row, n, kk, P);
            };
            if (inner) {
                MITHRIL_K_PARFOR(K * P >= kParallelWork)
                for (int64_t kk = 0; kk < K; ++kk) add(kk);
            } else {
                for (int64_t kk = 0; kk < K; ++kk) add(kk);
            }
        }
    };
    if (plan.mode == ConvPlan::Images) {
        const int64_t work = N * K * P * std::max<int64_t>(R, 1);
        // Groups of images per product where the product runs on Mithril's kernel (the
        // BLAS would start its own threads on the larger products inside our parallel
        // region); the scratch is planned for them either way.
        if constexpr (std::is_same_v<T, float> && kPackedGemm) {
            if (conv_direct(plan, stride_h, stride_w, R)) {
                const int64_t Hp = H + 2 * pad_h, Wp = W + 2 * pad_w, Q = (OH - 1) * Wp + OW;
                const int64_t slot_elems = conv_direct_slot(C, Hp, Wp, Kg, OH, OW);
                int64_t off[kConvDirectRows];
                for (int64_t r = 0; r < R; ++r) {
                    const int64_t kw = r % KW, kh = r / KW % KH, c = r / (KW * KH);
                    off[r] = (c * Hp + kh * dil_h) * Wp + kw * dil_w;
                }
                // Consecutive images per thread, as the loops that read the output next split them.
                detail::for_image_groups(N, plan.images, 1, work, [&](int64_t n, int64_t, int64_t slot) {
                    T* planes = scratch + slot * slot_elems;
                    T* res = planes + C * Hp * Wp + gemm_row_slack();
                    const T* img = in + n * C * H * W;
                    for (int64_t c = 0; c < C; ++c)
                        for (int64_t ih = 0; ih < Hp; ++ih) {
                            T* row = planes + (c * Hp + ih) * Wp;
                            const int64_t h = ih - pad_h;
                            if (h < 0 || h >= H) {
                                std::fill(row, row + Wp, T(0));
                                continue;
                            }
                            std::fill(row, row + pad_w, T(0));
                            std::memcpy(row + pad_w, img + (c * H + h) * W, static_cast<size_t>(W) * sizeof(T));
                            std::fill(row + pad_w + W, row + Wp, T(0));
                        }
                    std::fill(res - gemm_row_slack(), res, T(0));
                    for (int64_t gi = 0; gi < groups; ++gi) {
                        gemm_rows(res, weight + gi * Kg * R, planes + gi * Cg * Hp * Wp, off, nullptr, Kg, Q, R, R, Q);
                        for (int64_t k = 0; k < Kg; ++k) {
                            const int64_t kk = gi * Kg + k;
                            const T b = bias ? bias[kk] : T(0);
                            T* dst = out + (n * K + kk) * P;
                            for (int64_t oh = 0; oh < OH; ++oh) {
                                const T* src = res + k * Q + oh * Wp;
                                for (int64_t ow = 0; ow < OW; ++ow) dst[oh * OW + ow] = src[ow] + b;
                            }
                            if constexpr (has_epilogue<Epi>) epi(dst, n, kk, P);
                        }
                    }
                });
                return;
            }
        }
        const int64_t most = conv_group(plan, N, Kg, P, R, R * P, Kg * P);
        const int64_t g = std::is_same_v<T, float> && kPackedGemm ? most : 1;
        if (g > 1) {
            const int64_t slot_elems = most * (R + Kg) * P;
            detail::for_image_groups(N, plan.images, g, work, [&](int64_t n0, int64_t m, int64_t slot) {
                T* col = scratch + slot * slot_elems;
                T* res = col + most * R * P;
                for (int64_t gi = 0; gi < groups; ++gi) {
                    detail::columns_images(col, in + (n0 * C + gi * Cg) * H * W, C * H * W, m, Cg, H, W, KH, KW,
                                           stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH, OW, pointwise);
                    gemm_ab(res, weight + gi * Kg * R, col, Kg, m * P, R, R, m * P, m * P);
                    detail::unpack_images(out + (n0 * K + gi * Kg) * P, K * P, res, bias ? bias + gi * Kg : nullptr, m,
                                          Kg, P, epi, n0, gi * Kg);
                }
            });
            return;
        }
        detail::for_images(N, plan.images, work,
                           [&](int64_t n, int64_t slot) { image(n, scratch + (pointwise ? 0 : slot * R * P), false); });
        return;
    }
    if constexpr (std::is_same_v<T, float> && kPackedGemm) {
        if (algo == ConvAlgo::Auto && conv_polyphase(plan, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, R, OW)) {
            for (int64_t n = 0; n < N; ++n)
                detail::conv2d_polyphase(out + n * K * P, in + n * C * H * W, weight, static_cast<const T*>(bias), n,
                                         C, H, W, K, KH, KW, stride_h, stride_w, pad_h, pad_w, OH, OW, scratch, epi);
            return;
        }
    }
    for (int64_t n = 0; n < N; ++n) image(n, scratch, true);
}

// Floats of winograd_pack's transform of a [K, C, 3, 3] weight for a convolution
// with OH x OW outputs, and the transform for conv2d's `winograd` argument (where
// the build has kPackedGemm): U[xi] = (G g Gt)[xi] for the tiles conv2d takes
// there (detail::winograd_tile), each U[xi]^T (C x K) packed into gemm_packed's
// panels (see "Winograd on transposed operands").
constexpr int64_t winograd_packed_size(int64_t K, int64_t C, int64_t OH, int64_t OW) {
    const int64_t a = detail::winograd_tile(OH, OW) + 2;
    return a * a * packed_b_size(K, C);
}
inline void winograd_pack(float* P, const float* weight, int64_t K, int64_t C, int64_t OH, int64_t OW) {
    const int64_t a = detail::winograd_tile(OH, OW) + 2;
    std::vector<float> U(static_cast<size_t>(a * a * K * C));
    if (a == 6) detail::winograd4_weights(U.data(), weight, K, C);
    else detail::winograd_weights(U.data(), weight, K, C);
    for (int64_t xi = 0; xi < a * a; ++xi) pack_b(P + xi * packed_b_size(K, C), U.data() + xi * K * C, K, C, C, true);
}

// Scratch elements conv1d needs.
inline size_t conv1d_scratch(int64_t C, int64_t KL, int64_t stride, int64_t pad, int64_t groups, int64_t OL,
                             int64_t N = 1, int64_t K = 0, ConvAlgo algo = ConvAlgo::PerImage) {
    return conv2d_scratch(C, 1, KL, 1, stride, 0, pad, groups, 1, OL, N, K, algo);
}

// torch.nn.functional.conv1d: in [N, C, L], weight [K, C/groups, KL],
// bias [K] or null, out [N, K, OL]. conv2d with H = KH = 1.
template <class T>
void conv1d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
            const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t L, int64_t K, int64_t KL,
            int64_t stride, int64_t pad, int64_t dil, int64_t groups, int64_t OL, T* MITHRIL_K_RESTRICT scratch,
            ConvAlgo algo = ConvAlgo::PerImage) {
    conv2d(out, in, weight, bias, N, C, 1, L, K, 1, KL, 1, stride, 0, pad, 1, dil, groups, 1, OL, scratch, algo);
}

// Scratch elements conv_transpose2d needs: (K/groups)*KH*KW*H*W (none is used
// for a 1x1, stride 1, unpadded one with OH == H and OW == W).
inline size_t conv_transpose2d_scratch(int64_t K, int64_t KH, int64_t KW, int64_t groups, int64_t H, int64_t W) {
    return static_cast<size_t>(K / groups * KH * KW * H * W);
}

// torch.nn.functional.conv_transpose2d(in, weight, bias, stride, padding,
// output_padding, groups, dilation). in [N, C, H, W], weight [C, K/groups, KH, KW],
// bias [K] or null, out [N, K, OH, OW] with
// OH = (H-1)*stride_h - 2*pad_h + dil_h*(KH-1) + output_padding_h + 1 (given).
// Per (image, group): col[K/g*KH*KW, H*W] = weight_g^T * in_g (gemm), then
// col2im scatter-add into out (initialised with the bias).
template <class T>
void conv_transpose2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                      const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                      int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                      int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW,
                      T* MITHRIL_K_RESTRICT scratch) {
    const int64_t Cg = C / groups, Kg = K / groups, R = Kg * KH * KW, P = OH * OW;
    // 1x1, stride 1, no padding, same size: the gemm writes the output directly (no col2im).
    const bool pointwise =
        detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
    for (int64_t n = 0; n < N; ++n) {
        T* o = out + n * K * P;
        MITHRIL_K_PARFOR(K * P >= kParallelWork)
        for (int64_t kk = 0; kk < K; ++kk) {
            const T b = bias ? bias[kk] : T(0);
            for (int64_t p = 0; p < P; ++p) o[kk * P + p] = b;
        }
        for (int64_t g = 0; g < groups; ++g) {
            if (R == 0 || H * W == 0) continue;
            const T* x = in + (n * C + g * Cg) * H * W;
            if (Cg == 0) continue;
            if (pointwise) {
                gemm(Transpose::Yes, Transpose::No, Kg, P, Cg, T(1), weight + g * Cg * R, R, x, P, T(1),
                     o + g * Kg * P, P);
                continue;
            }
            gemm(Transpose::Yes, Transpose::No, R, H * W, Cg, T(1), weight + g * Cg * R, R, x, H * W, T(0), scratch,
                 H * W);
            detail::col2im_add(o + g * Kg * P, scratch, Kg, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h,
                               dil_w, OH, OW);
        }
    }
}

// torch.nn.functional.conv_transpose1d: in [N, C, L], weight [C, K/groups, KL], out [N, K, OL].
inline size_t conv_transpose1d_scratch(int64_t K, int64_t KL, int64_t groups, int64_t L) {
    return conv_transpose2d_scratch(K, 1, KL, groups, 1, L);
}
template <class T>
void conv_transpose1d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                      const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t L, int64_t K, int64_t KL,
                      int64_t stride, int64_t pad, int64_t dil, int64_t groups, int64_t OL,
                      T* MITHRIL_K_RESTRICT scratch) {
    conv_transpose2d(out, in, weight, bias, N, C, 1, L, K, 1, KL, 1, stride, 0, pad, 1, dil, groups, 1, OL, scratch);
}

// ---- gradients ---------------------------------------------------------------
//
// In the names of conv2d: x [N, C, H, W], weight [K, C/groups, KH, KW],
// y [N, K, OH, OW]. The data gradient of a convolution is a transposed
// convolution of dy and the other way round, so those reuse the forward kernels
// with the output size given explicitly (a transposed convolution's output size
// is ambiguous by output_padding). `algo` as conv2d's: PerImage keeps the
// per-image algorithms (and their scratch), which the generated code uses when
// sizes are known at run time only.

// True when conv2d_grad_input computes dx as a forward convolution of dy with
// the flipped, transposed kernel (ConvAlgo::Auto, stride 1, and dx no larger than
// dy, as in a "same" convolution: then that convolution does no more work than
// gemm + col2im, and im2col's gathers are cheaper than col2im's scattered adds;
// and at least 16 channels per group in x: the rows of that convolution's gemm).
inline bool conv2d_grad_input_flipped(ConvAlgo algo, int64_t C, int64_t groups, int64_t stride_h, int64_t stride_w,
                                      int64_t H, int64_t W, int64_t OH, int64_t OW) {
    return algo == ConvAlgo::Auto && C / groups >= 16 && stride_h == 1 && stride_w == 1 && H * W <= OH * OW;
}

namespace detail {
// The plan of conv2d_grad_input's gemm + col2im: col[C/g*KH*KW, OH*OW] = weight_g^T dy_g.
inline ConvPlan conv2d_grad_input_plan(ConvAlgo algo, int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW,
                                       int64_t groups, int64_t OH, int64_t OW) {
    const int64_t R = C / groups * KH * KW;
    return conv_plan(algo, N, R, OH * OW, K / groups, OH * OW, R * OH * OW);
}
}  // namespace detail

// Scratch elements conv2d_grad_input needs (x of N x C x H x W, dy of N x K x OH x OW).
inline size_t conv2d_grad_input_scratch(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH,
                                        int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                        int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW,
                                        ConvAlgo algo = ConvAlgo::PerImage) {
    const int64_t Cg = C / groups, Kg = K / groups, R = Cg * KH * KW, P = OH * OW;
    if (conv2d_grad_input_flipped(algo, C, groups, stride_h, stride_w, H, W, OH, OW))  // flipped weight, dy -> dx
        return static_cast<size_t>(K * R) +
               detail::conv2d_scratch_sized(K, OH, OW, KH, KW, 1, 1, (KH - 1) * dil_h - pad_h,
                                            (KW - 1) * dil_w - pad_w, groups, H, W, N, C, algo, dil_h, dil_w);
    const ConvPlan plan = detail::conv2d_grad_input_plan(algo, N, C, K, KH, KW, groups, OH, OW);
    if (plan.mode == ConvPlan::Batched) return static_cast<size_t>((R + Kg) * plan.images * P);
    if (detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && H == OH && W == OW) return 0;
    return static_cast<size_t>(plan.images * R * P);
}

// dx of conv2d. Flipped (conv2d_grad_input_flipped): dx = conv2d(dy, weight')
// with weight'[c, k, kh, kw] = weight[k, c, KH-1-kh, KW-1-kw] (per group, made in
// scratch) and padding dil*(K-1) - pad. Otherwise dx = conv_transpose2d(dy,
// weight) of size H x W: col = weight_g^T dy_g (a gemm), then col2im, per image
// (spread over threads) or per group of images. scratch: conv2d_grad_input_scratch(...).
template <class T>
void conv2d_grad_input(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT weight,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH, int64_t KW,
                       int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                       int64_t groups, int64_t OH, int64_t OW, T* MITHRIL_K_RESTRICT scratch,
                       ConvAlgo algo = ConvAlgo::PerImage) {
    const int64_t Cg = C / groups, Kg = K / groups, R = Cg * KH * KW, P = OH * OW;
    if (conv2d_grad_input_flipped(algo, C, groups, stride_h, stride_w, H, W, OH, OW)) {
        T* wf = scratch;
        const int64_t taps = KH * KW;
        MITHRIL_K_PARFOR(K * R >= kParallelWork)
        for (int64_t t = 0; t < C * Kg; ++t) {  // wf[g*Cg + c][k][i] = weight[g*Kg + k][c][taps-1-i]
            const int64_t c_all = t / Kg, k = t % Kg, g = c_all / Cg, c = c_all % Cg;
            const T* src = weight + ((g * Kg + k) * Cg + c) * taps;
            T* dst = wf + (c_all * Kg + k) * taps;
            for (int64_t i = 0; i < taps; ++i) dst[i] = src[taps - 1 - i];
        }
        conv2d(dx, dy, wf, nullptr, N, K, OH, OW, C, KH, KW, 1, 1, dil_h * (KH - 1) - pad_h, dil_w * (KW - 1) - pad_w,
               dil_h, dil_w, groups, H, W, scratch + K * R, algo);
        return;
    }
    const ConvPlan plan = detail::conv2d_grad_input_plan(algo, N, C, K, KH, KW, groups, OH, OW);
    if (plan.mode == ConvPlan::PerImage || R == 0 || Kg == 0 || P == 0) {
        conv_transpose2d(dx, dy, weight, nullptr, N, K, OH, OW, C, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h,
                         dil_w, groups, H, W, scratch);
        return;
    }
    const bool pointwise =
        detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
    if (plan.mode == ConvPlan::Images) {
        detail::for_images(N, plan.images, N * C * H * W * Kg, [&](int64_t n, int64_t slot) {
            T* col = scratch + slot * R * P;
            for (int64_t g = 0; g < groups; ++g) {
                const T* d = dy + (n * K + g * Kg) * P;
                T* img = dx + (n * C + g * Cg) * H * W;
                if (pointwise) {  // the gemm writes dx directly
                    gemm(Transpose::Yes, Transpose::No, Cg, P, Kg, T(1), weight + g * Kg * R, R, d, P, T(0), img, P);
                    continue;
                }
                gemm(Transpose::Yes, Transpose::No, R, P, Kg, T(1), weight + g * Kg * R, R, d, P, T(0), col, P);
                std::fill(img, img + Cg * H * W, T(0));
                for (int64_t c = 0; c < Cg; ++c)
                    detail::col2im_plane_add(img + c * H * W, col + c * KH * KW * P, P, OH, OW, KH, KW, stride_h,
                                             stride_w, pad_h, pad_w, dil_h, dil_w, H, W);
            }
        });
        return;
    }
    const int64_t nb = plan.images;
    T* col = scratch;
    T* dyp = scratch + R * nb * P;
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        const int64_t m = std::min(nb, N - n0), Q = m * P;
        for (int64_t g = 0; g < groups; ++g) {
            detail::pack_images(dyp, dy + (n0 * K + g * Kg) * P, K * P, m, Kg, P);
            gemm(Transpose::Yes, Transpose::No, R, Q, Kg, T(1), weight + g * Kg * R, R, dyp, Q, T(0), col, Q);
            detail::col2im_images(dx + (n0 * C + g * Cg) * H * W, C * H * W, col, m, Cg, OH, OW, KH, KW, stride_h,
                                  stride_w, pad_h, pad_w, dil_h, dil_w, H, W);
        }
    }
}

// Scratch elements conv_transpose2d_grad_input needs (x [N, C, H, W] -> y [N, K, OH, OW]
// of the transposed convolution, weight [C, K/groups, KH, KW]).
inline size_t conv_transpose2d_grad_input_scratch(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH,
                                                  int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                                  int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups,
                                                  int64_t OH, int64_t OW, ConvAlgo algo = ConvAlgo::PerImage) {
    return detail::conv2d_scratch_sized(K, OH, OW, KH, KW, stride_h, stride_w, pad_h, pad_w, groups, H, W, N, C,
                                        algo, dil_h, dil_w);
}

// dx of conv_transpose2d (x [N, C, H, W] -> y [N, K, OH, OW], weight [C, K/groups,
// KH, KW]): dx = conv2d(dy, weight) of size H x W.
// scratch: conv_transpose2d_grad_input_scratch(...).
template <class T>
void conv_transpose2d_grad_input(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy,
                                 const T* MITHRIL_K_RESTRICT weight, int64_t N, int64_t C, int64_t H, int64_t W,
                                 int64_t K, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                 int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW,
                                 T* MITHRIL_K_RESTRICT scratch, ConvAlgo algo = ConvAlgo::PerImage) {
    conv2d(dx, dy, weight, nullptr, N, K, OH, OW, C, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, H,
           W, scratch, algo);
}

namespace detail {
// The plan of conv2d_grad_weight: dw_g[K/g, C/g*KH*KW] += dy_g[K/g, OH*OW] col^T.
inline ConvPlan conv2d_grad_weight_plan(ConvAlgo algo, int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW,
                                        int64_t groups, int64_t OH, int64_t OW) {
    const int64_t R = C / groups * KH * KW;
    return conv_plan(algo, N, K / groups, R, OH * OW, OH * OW, R * OH * OW);
}
}  // namespace detail

// Scratch elements conv2d_grad_weight needs (K: dy's channels). PerImage:
// (C/groups)*KH*KW*OH*OW, or 0 when the columns are x itself (1x1, stride 1, no
// padding, OH == H, OW == W); Auto: per the plan, with one weight-sized partial
// sum per slot when the images are spread over threads.
inline size_t conv2d_grad_weight_scratch(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h,
                                         int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t groups, int64_t OH,
                                         int64_t OW, int64_t N = 1, int64_t K = 0,
                                         ConvAlgo algo = ConvAlgo::PerImage, int64_t dil_h = 1, int64_t dil_w = 1) {
    const int64_t R = C / groups * KH * KW, P = OH * OW;
    const bool pointwise = detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
    if (const int64_t nb = detail::winograd_images(algo, N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups,
                                                   OH, OW))
        return detail::winograd_scratch(C, K, nb, OH, OW);
    const ConvPlan plan = detail::conv2d_grad_weight_plan(algo, N, C, K, KH, KW, groups, OH, OW);
    if (plan.mode == ConvPlan::Batched) return static_cast<size_t>((R + K / groups) * plan.images * P);
    if (plan.mode == ConvPlan::Images) return static_cast<size_t>(plan.images * ((pointwise ? 0 : R * P) + K * R));
    if (pointwise) return 0;
    return static_cast<size_t>(R * P);
}

// dweight of conv2d: dw_g[K/g, C/g*KH*KW] = sum over images of dy_g[K/g, OH*OW] *
// col_g^T with col_g = im2col(x_g). PerImage: one gemm per image and group,
// accumulating with beta = 1. Auto: images spread over threads, each thread
// summing its images into its own partial (then added up in thread order:
// deterministic for a given thread count), or one gemm per group of images.
// OH, OW are given, so the same kernel is conv_transpose2d's weight gradient
// with the roles swapped: there dy is the transposed convolution's input and x
// the gradient of its output (its weight [C, K/g, ...] has conv2d's layout in
// those names). scratch: conv2d_grad_weight_scratch(...).
template <class T>
void conv2d_grad_weight(T* MITHRIL_K_RESTRICT dw, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                        int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH, int64_t KW,
                        int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
                        int64_t dil_w, int64_t groups, int64_t OH, int64_t OW, T* MITHRIL_K_RESTRICT scratch,
                        ConvAlgo algo = ConvAlgo::PerImage) {
    const int64_t Cg = C / groups, Kg = K / groups, P = OH * OW, R = Cg * KH * KW;
    const bool pointwise =
        detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
    if (N == 0 || P == 0 || R == 0 || Kg == 0) {
        for (int64_t i = 0; i < K * R; ++i) dw[i] = T(0);
        return;
    }
    if (const int64_t wb = detail::winograd_images(algo, N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups,
                                                   OH, OW)) {
        detail::conv2d_grad_weight_winograd(dw, dy, x, N, C, H, W, K, pad_h, pad_w, OH, OW, wb, scratch);
        return;
    }
    const ConvPlan plan = detail::conv2d_grad_weight_plan(algo, N, C, K, KH, KW, groups, OH, OW);
    if (plan.mode == ConvPlan::Batched) {
        const int64_t nb = plan.images;
        T* col = scratch;
        T* dyp = scratch + R * nb * P;
        for (int64_t n0 = 0; n0 < N; n0 += nb) {
            const int64_t m = std::min(nb, N - n0), Q = m * P;
            for (int64_t g = 0; g < groups; ++g) {
                const T* img = x + (n0 * C + g * Cg) * H * W;
                detail::columns_images(col, img, C * H * W, m, Cg, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w,
                                       dil_h, dil_w, OH, OW, pointwise);
                detail::pack_images(dyp, dy + (n0 * K + g * Kg) * P, K * P, m, Kg, P);
                gemm(Transpose::No, Transpose::Yes, Kg, R, Q, T(1), dyp, Q, col, Q, n0 == 0 ? T(0) : T(1),
                     dw + g * Kg * R, R);
            }
        }
        return;
    }
    if (plan.mode == ConvPlan::Images) {
        // Slot s: its partial dw (K*R) first, then its columns (R*P).
        const int64_t slot_elems = K * R + (pointwise ? 0 : R * P);
        bool first[kConvImageSlots];
        for (auto& f : first) f = true;
        const int64_t team = detail::for_images(N, plan.images, N * K * R * P, [&](int64_t n, int64_t slot) {
            T* part = scratch + slot * slot_elems;
            T* col = part + K * R;
            for (int64_t g = 0; g < groups; ++g) {
                const T* img = x + (n * C + g * Cg) * H * W;
                const T* cols = img;
                if (!pointwise) {
                    for (int64_t r = 0; r < R; ++r)
                        detail::im2col_row(col + r * P, img, r, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h,
                                           dil_w, OH, OW);
                    cols = col;
                }
                gemm(Transpose::No, Transpose::Yes, Kg, R, P, T(1), dy + (n * K + g * Kg) * P, P, cols, P,
                     first[slot] ? T(0) : T(1), part + g * Kg * R, R);
            }
            first[slot] = false;
        });
        MITHRIL_K_PARFOR(team * K * R >= kParallelWork)
        for (int64_t i = 0; i < K * R; ++i) {
            T s = scratch[i];
            for (int64_t t = 1; t < team; ++t) s += scratch[t * slot_elems + i];
            dw[i] = s;
        }
        return;
    }
    for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < groups; ++g) {
            const T* img = x + (n * C + g * Cg) * H * W;
            const T* col = img;
            if (!pointwise) {
                detail::im2col(scratch, img, Cg, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH,
                               OW);
                col = scratch;
            }
            gemm(Transpose::No, Transpose::Yes, Kg, R, P, T(1), dy + (n * K + g * Kg) * P, P, col, P,
                 n == 0 ? T(0) : T(1), dw + g * Kg * R, R);
        }
}

// dbias of a convolution: db[k] = sum of dy[n, k, p] over n and p; dy [N, K, P].
template <class T>
void conv_grad_bias(T* MITHRIL_K_RESTRICT db, const T* MITHRIL_K_RESTRICT dy, int64_t N, int64_t K, int64_t P) {
    MITHRIL_K_PARFOR(N * K * P >= kParallelWork)
    for (int64_t k = 0; k < K; ++k) {
        acc_t<T> s = 0;
        for (int64_t n = 0; n < N; ++n) s += sum_contig(dy + (n * K + k) * P, P);
        db[k] = static_cast<T>(s);
    }
}

// ---- the same kernels, their geometry by name (Conv2dGeom, kernels/common.h) -----------------
// What generated code calls: each forwards to the kernel above, unchanged.

#define MITHRIL_K_CONV_GEOM(g)                                                                                      \
    g.n, g.c_in, g.h, g.w, g.c_out, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h, \
        g.dil_w, g.groups, g.out_h, g.out_w

template <class T, class Epi = NoEpilogue>
inline void conv2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                   const opt<T>* MITHRIL_K_RESTRICT bias, const Conv2dGeom& g, T* MITHRIL_K_RESTRICT scratch,
                   ConvAlgo algo = ConvAlgo::PerImage, const Epi& epi = {}, const opt<T>* winograd = nullptr) {
    if constexpr (std::is_same_v<T, float> && has_epilogue<Epi> && !std::is_same_v<Epi, RowEpilogue>)
        conv2d(out, in, weight, bias, MITHRIL_K_CONV_GEOM(g), scratch, algo, RowEpilogue(epi), winograd);
    else
        conv2d(out, in, weight, bias, MITHRIL_K_CONV_GEOM(g), scratch, algo, epi, winograd);
}

// g: the transposed convolution's input [n, c_in, h, w] and output [n, c_out, out_h, out_w].
template <class T>
inline void conv_transpose2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
                             const opt<T>* MITHRIL_K_RESTRICT bias, const Conv2dGeom& g, T* MITHRIL_K_RESTRICT scratch) {
    conv_transpose2d(out, in, weight, bias, MITHRIL_K_CONV_GEOM(g), scratch);
}

// g: the forward convolution's (dx [n, c_in, h, w], dy [n, c_out, out_h, out_w]).
template <class T>
inline void conv2d_grad_input(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT weight,
                              const Conv2dGeom& g, T* MITHRIL_K_RESTRICT scratch, ConvAlgo algo = ConvAlgo::PerImage) {
    conv2d_grad_input(dx, dy, weight, MITHRIL_K_CONV_GEOM(g), scratch, algo);
}

// g: as conv_transpose2d_grad_input's sizes (dx [n, c_in, h, w], dy [n, c_out, out_h, out_w]).
template <class T>
inline void conv_transpose2d_grad_input(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy,
                                        const T* MITHRIL_K_RESTRICT weight, const Conv2dGeom& g,
                                        T* MITHRIL_K_RESTRICT scratch, ConvAlgo algo = ConvAlgo::PerImage) {
    conv_transpose2d_grad_input(dx, dy, weight, MITHRIL_K_CONV_GEOM(g), scratch, algo);
}

// g: the forward convolution's (x [n, c_in, h, w], dy [n, c_out, out_h, out_w]).
template <class T>
inline void conv2d_grad_weight(T* MITHRIL_K_RESTRICT dw, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                               const Conv2dGeom& g, T* MITHRIL_K_RESTRICT scratch, ConvAlgo algo = ConvAlgo::PerImage) {
    conv2d_grad_weight(dw, dy, x, MITHRIL_K_CONV_GEOM(g), scratch, algo);
}

#undef MITHRIL_K_CONV_GEOM

// ---- compiled once, into the runtime library (src/kernels_conv.cpp) --------------------------
// The sixteen sizes of a convolution (N, C, H, W, K, KH, KW, strides, pads, dilations, groups, OH, OW).
#define MITHRIL_K_CONV_SIZES                                                                                        \
    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, \
        int64_t, int64_t, int64_t, int64_t
MITHRIL_K_INSTANCE(void conv2d<float, NoEpilogue>(float*, const float*, const float*, const float*,
                                                  MITHRIL_K_CONV_SIZES, float*, ConvAlgo, const NoEpilogue&,
                                                  const float*))
MITHRIL_K_INSTANCE(void conv2d<float, RowEpilogue>(float*, const float*, const float*, const float*,
                                                   MITHRIL_K_CONV_SIZES, float*, ConvAlgo, const RowEpilogue&,
                                                   const float*))
MITHRIL_K_INSTANCE(void conv_transpose2d<float>(float*, const float*, const float*, const float*, MITHRIL_K_CONV_SIZES,
                                                float*))
MITHRIL_K_INSTANCE(void conv2d_grad_input<float>(float*, const float*, const float*, MITHRIL_K_CONV_SIZES, float*,
                                                 ConvAlgo))
MITHRIL_K_INSTANCE(void conv_transpose2d_grad_input<float>(float*, const float*, const float*, MITHRIL_K_CONV_SIZES,
                                                           float*, ConvAlgo))
MITHRIL_K_INSTANCE(void conv2d_grad_weight<float>(float*, const float*, const float*, MITHRIL_K_CONV_SIZES, float*,
                                                  ConvAlgo))
#undef MITHRIL_K_CONV_SIZES

}  // namespace mithril::rt::k
