// kernels/conv.h - convolutions via im2col/col2im + gemm.
#pragma once

#include "mithril/rt/kernels/common.h"

namespace mithril::rt::k {

namespace detail {

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

// col[(c*KH + kh)*KW + kw][oh*OW + ow] = img[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw] (0 outside).
template <class T>
void im2col(T* MITHRIL_K_RESTRICT col, const T* MITHRIL_K_RESTRICT img, int64_t C, int64_t H, int64_t W, int64_t KH,
            int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t OH,
            int64_t OW) {
    const int64_t rows = C * KH * KW;
    MITHRIL_K_PARFOR(rows * OH * OW >= kParallelWork)
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t kw = r % KW, kh = (r / KW) % KH, c = r / (KW * KH);
        const T* plane = img + c * H * W;
        T* dst = col + r * OH * OW;
        const int64_t woff = kw * dw - pw;
        int64_t lo, hi;
        valid_range(woff, sw, W, OW, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
            T* d = dst + oh * OW;
            const int64_t ih = oh * sh - ph + kh * dh;
            if (ih < 0 || ih >= H) {
                for (int64_t ow = 0; ow < OW; ++ow) d[ow] = T(0);
                continue;
            }
            const T* s = plane + ih * W;
            for (int64_t ow = 0; ow < lo; ++ow) d[ow] = T(0);
            if (sw == 1) {
                for (int64_t ow = lo; ow < hi; ++ow) d[ow] = s[ow + woff];
            } else {
                for (int64_t ow = lo; ow < hi; ++ow) d[ow] = s[ow * sw + woff];
            }
            for (int64_t ow = hi; ow < OW; ++ow) d[ow] = T(0);
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
    for (int64_t c = 0; c < C; ++c) {  // each c owns its output plane: no races
        T* plane = img + c * OH * OW;
        for (int64_t kh = 0; kh < KH; ++kh)
            for (int64_t kw = 0; kw < KW; ++kw) {
                const T* src = col + ((c * KH + kh) * KW + kw) * H * W;
                const int64_t woff = kw * dw - pw;
                // valid w: 0 <= w*sw + woff < OW
                int64_t lo, hi;
                valid_range(woff, sw, OW, W, lo, hi);
                for (int64_t h = 0; h < H; ++h) {
                    const int64_t oh = h * sh - ph + kh * dh;
                    if (oh < 0 || oh >= OH) continue;
                    T* d = plane + oh * OW;
                    const T* s = src + h * W;
                    if (sw == 1) {
                        for (int64_t w = lo; w < hi; ++w) d[w + woff] += s[w];
                    } else {
                        for (int64_t w = lo; w < hi; ++w) d[w * sw + woff] += s[w];
                    }
                }
            }
    }
}

}  // namespace detail

// Scratch elements conv2d needs: (C/groups)*KH*KW*OH*OW, or 0 for a pointwise
// (1x1, stride 1, no padding) convolution.
inline size_t conv2d_scratch(int64_t C, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                             int64_t pad_w, int64_t groups, int64_t OH, int64_t OW) {
    if (detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w)) return 0;
    return static_cast<size_t>(C / groups * KH * KW * OH * OW);
}

// torch.nn.functional.conv2d(in, weight, bias, stride, padding, dilation, groups).
// in [N, C, H, W], weight [K, C/groups, KH, KW], bias [K] or null,
// out [N, K, OH, OW] with OH = (H + 2*pad_h - dil_h*(KH-1) - 1)/stride_h + 1
// (given by the caller). scratch: conv2d_scratch(...) elements.
// Per (image, group): im2col into scratch, then one gemm
// out_g[K/g, OH*OW] = weight_g[K/g, C/g*KH*KW] * col[C/g*KH*KW, OH*OW].
template <class T>
void conv2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
            const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH,
            int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
            int64_t dil_w, int64_t groups, int64_t OH, int64_t OW, T* MITHRIL_K_RESTRICT scratch) {
    const int64_t Cg = C / groups, Kg = K / groups, P = OH * OW, R = Cg * KH * KW;
    // The size check matters when the backward pass calls this with an explicit output size.
    const bool pointwise =
        detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t g = 0; g < groups; ++g) {
            const T* img = in + (n * C + g * Cg) * H * W;
            const T* col = img;
            if (!pointwise) {
                detail::im2col(scratch, img, Cg, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH,
                               OW);
                col = scratch;
            }
            T* dst = out + (n * K + g * Kg) * P;
            if (R == 0) {
                for (int64_t i = 0; i < Kg * P; ++i) dst[i] = T(0);
            } else if (Kg > 0 && P > 0) {
                gemm(Transpose::No, Transpose::No, Kg, P, R, T(1), weight + g * Kg * R, R, col, P, T(0), dst, P);
            }
        }
        if (bias) {
            T* o = out + n * K * P;
            MITHRIL_K_PARFOR(K * P >= kParallelWork)
            for (int64_t kk = 0; kk < K; ++kk) {
                const T b = bias[kk];
                T* row = o + kk * P;
                for (int64_t p = 0; p < P; ++p) row[p] += b;
            }
        }
    }
}

// Scratch elements conv1d needs.
inline size_t conv1d_scratch(int64_t C, int64_t KL, int64_t stride, int64_t pad, int64_t groups, int64_t OL) {
    return conv2d_scratch(C, 1, KL, 1, stride, 0, pad, groups, 1, OL);
}

// torch.nn.functional.conv1d: in [N, C, L], weight [K, C/groups, KL],
// bias [K] or null, out [N, K, OL]. conv2d with H = KH = 1.
template <class T>
void conv1d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const T* MITHRIL_K_RESTRICT weight,
            const opt<T>* MITHRIL_K_RESTRICT bias, int64_t N, int64_t C, int64_t L, int64_t K, int64_t KL,
            int64_t stride, int64_t pad, int64_t dil, int64_t groups, int64_t OL, T* MITHRIL_K_RESTRICT scratch) {
    conv2d(out, in, weight, bias, N, C, 1, L, K, 1, KL, 1, stride, 0, pad, 1, dil, groups, 1, OL, scratch);
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
// is ambiguous by output_padding).

// dx of conv2d: dx = conv_transpose2d(dy, weight) of size H x W (per image and
// group: col = weight_g^T dy_g, one gemm, then col2im). scratch: conv2d_scratch(...).
template <class T>
void conv2d_grad_input(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT weight,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH, int64_t KW,
                       int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                       int64_t groups, int64_t OH, int64_t OW, T* MITHRIL_K_RESTRICT scratch) {
    conv_transpose2d(dx, dy, weight, nullptr, N, K, OH, OW, C, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                     groups, H, W, scratch);
}

// dx of conv_transpose2d (x [N, C, H, W] -> y [N, K, OH, OW], weight [C, K/groups,
// KH, KW]): dx = conv2d(dy, weight) of size H x W. scratch: (K/groups)*KH*KW*H*W.
template <class T>
void conv_transpose2d_grad_input(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy,
                                 const T* MITHRIL_K_RESTRICT weight, int64_t N, int64_t C, int64_t H, int64_t W,
                                 int64_t K, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                 int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW,
                                 T* MITHRIL_K_RESTRICT scratch) {
    conv2d(dx, dy, weight, nullptr, N, K, OH, OW, C, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, H,
           W, scratch);
}

// Scratch elements conv2d_grad_weight needs: (C/groups)*KH*KW*OH*OW, or 0 when
// the columns are x itself (1x1, stride 1, no padding, OH == H, OW == W).
inline size_t conv2d_grad_weight_scratch(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h,
                                         int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t groups, int64_t OH,
                                         int64_t OW) {
    if (detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W) return 0;
    return static_cast<size_t>(C / groups * KH * KW * OH * OW);
}

// dweight of conv2d: dw_g[K/g, C/g*KH*KW] = sum over images of dy_g[K/g, OH*OW] *
// col_g^T with col_g = im2col(x_g) (one gemm per image and group, accumulating
// with beta = 1). OH, OW are given, so the same kernel is conv_transpose2d's
// weight gradient with the roles swapped: there dy is the transposed
// convolution's input and x the gradient of its output (its weight [C, K/g, ...]
// has conv2d's layout in those names). scratch: conv2d_grad_weight_scratch(...).
template <class T>
void conv2d_grad_weight(T* MITHRIL_K_RESTRICT dw, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                        int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH, int64_t KW,
                        int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
                        int64_t dil_w, int64_t groups, int64_t OH, int64_t OW, T* MITHRIL_K_RESTRICT scratch) {
    const int64_t Cg = C / groups, Kg = K / groups, P = OH * OW, R = Cg * KH * KW;
    const bool pointwise =
        detail::conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
    if (N == 0 || P == 0 || R == 0 || Kg == 0) {
        for (int64_t i = 0; i < K * R; ++i) dw[i] = T(0);
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

}  // namespace mithril::rt::k
