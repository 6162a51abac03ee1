// kernels/pool.h - max / average / global / adaptive pooling (NCHW).
//
// ceil_mode is the caller's business: it passes OH/OW computed as PyTorch
// does (floor or ceil of (H + 2*pad - dil*(KH-1) - 1)/stride + 1, minus one
// when the last window would start in the right padding). The kernels clip
// windows at the borders exactly as PyTorch's CPU kernels do.
#pragma once

#include "mithril/rt/kernels/common.h"

namespace mithril::rt::k {

// torch.nn.functional.max_pool2d(in, (KH,KW), (sh,sw), (ph,pw), (dh,dw),
// return_indices). in [N, C, H, W], out [N, C, OH, OW]; indices_or_null
// (int64, same shape as out) receives the flat h*W + w of the max within its
// plane, as PyTorch. Padding never wins; NaN propagates (first NaN wins).
namespace detail {
// One window walk for both variants: values only (a branch-free select the
// compiler keeps in registers) or values and argmax indices. NaN sticks once seen
// in both: v > NaN and NaN != NaN are false for any later v.
// The common case: no padding, no dilation, every window inside the input (a
// 2x2/stride-2 pool): no clamping per output, constant-stride reads.
template <class T>
void max_pool2d_inside(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t planes, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t OH, int64_t OW) {
    MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const T* x = in + pl * H * W;
        T* y = out + pl * OH * OW;
        for (int64_t oh = 0; oh < OH; ++oh) {
            T* yr = y + oh * OW;
            for (int64_t ow = 0; ow < OW; ++ow) yr[ow] = neg_inf<T>();
            for (int64_t kh = 0; kh < KH; ++kh) {
                const T* xr = x + (oh * stride_h + kh) * W;
                for (int64_t kw = 0; kw < KW; ++kw)
                    for (int64_t ow = 0; ow < OW; ++ow) {
                        const T v = xr[ow * stride_w + kw];
                        const T b = yr[ow];
                        yr[ow] = (v > b || v != v) && b == b ? v : b;  // NaN sticks, as below
                    }
            }
        }
    }
}

template <bool kIndices, class T>
void max_pool2d_impl(T* MITHRIL_K_RESTRICT out, int64_t* MITHRIL_K_RESTRICT indices, const T* MITHRIL_K_RESTRICT in,
                     int64_t planes, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                     int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t OH, int64_t OW) {
    MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const T* x = in + pl * H * W;
        T* y = out + pl * OH * OW;
        for (int64_t oh = 0; oh < OH; ++oh) {
            int64_t h0 = oh * stride_h - pad_h;
            const int64_t h1 = std::min(h0 + (KH - 1) * dil_h + 1, H);
            while (h0 < 0) h0 += dil_h;
            for (int64_t ow = 0; ow < OW; ++ow) {
                int64_t w0 = ow * stride_w - pad_w;
                const int64_t w1 = std::min(w0 + (KW - 1) * dil_w + 1, W);
                while (w0 < 0) w0 += dil_w;
                T best = neg_inf<T>();
                int64_t best_i = h0 * W + w0;
                for (int64_t h = h0; h < h1; h += dil_h)
                    for (int64_t w = w0; w < w1; w += dil_w) {
                        const T v = x[h * W + w];
                        const bool take = (v > best || v != v) && best == best;
                        best = take ? v : best;
                        if constexpr (kIndices) best_i = take ? h * W + w : best_i;
                    }
                y[oh * OW + ow] = best;
                if constexpr (kIndices) indices[pl * OH * OW + oh * OW + ow] = best_i;
            }
        }
    }
}
}  // namespace detail

template <class T>
void max_pool2d(T* MITHRIL_K_RESTRICT out, int64_t* MITHRIL_K_RESTRICT indices_or_null,
                const T* MITHRIL_K_RESTRICT in, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w,
                int64_t OH, int64_t OW) {
    if (indices_or_null)
        detail::max_pool2d_impl<true>(out, indices_or_null, in, N * C, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w,
                                      dil_h, dil_w, OH, OW);
    else if (pad_h == 0 && pad_w == 0 && dil_h == 1 && dil_w == 1 && (OH - 1) * stride_h + KH <= H &&
             (OW - 1) * stride_w + KW <= W)
        detail::max_pool2d_inside(out, in, N * C, H, W, KH, KW, stride_h, stride_w, OH, OW);
    else
        detail::max_pool2d_impl<false>(out, nullptr, in, N * C, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h,
                                       dil_w, OH, OW);
}

// torch.nn.functional.max_pool1d: in [N, C, L], out [N, C, OL] (max_pool2d with H = 1).
template <class T>
void max_pool1d(T* MITHRIL_K_RESTRICT out, int64_t* MITHRIL_K_RESTRICT indices_or_null,
                const T* MITHRIL_K_RESTRICT in, int64_t N, int64_t C, int64_t L, int64_t KL, int64_t stride,
                int64_t pad, int64_t dil, int64_t OL) {
    max_pool2d(out, indices_or_null, in, N, C, 1, L, 1, KL, 1, stride, 0, pad, 1, dil, 1, OL);
}

// torch.nn.functional.avg_pool2d(in, (KH,KW), (sh,sw), (ph,pw), ceil_mode,
// count_include_pad, divisor_override). divisor_override <= 0 means None.
// in [N, C, H, W], out [N, C, OH, OW]. As PyTorch: the window is first clipped
// to the padded input (that size is the divisor with count_include_pad), then
// to the input (that size is the divisor without); an empty window gives 0.
template <class T>
void avg_pool2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t N, int64_t C, int64_t H, int64_t W,
                int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                bool count_include_pad, int64_t divisor_override, int64_t OH, int64_t OW) {
    const int64_t planes = N * C;
    MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const T* x = in + pl * H * W;
        T* y = out + pl * OH * OW;
        for (int64_t oh = 0; oh < OH; ++oh) {
            int64_t h0 = oh * stride_h - pad_h;
            int64_t h1 = std::min(h0 + KH, H + pad_h);
            const int64_t hp = h1 - h0;
            h0 = std::max<int64_t>(h0, 0);
            h1 = std::min(h1, H);
            for (int64_t ow = 0; ow < OW; ++ow) {
                int64_t w0 = ow * stride_w - pad_w;
                int64_t w1 = std::min(w0 + KW, W + pad_w);
                const int64_t pool = hp * (w1 - w0);
                w0 = std::max<int64_t>(w0, 0);
                w1 = std::min(w1, W);
                if (h0 >= h1 || w0 >= w1) {
                    y[oh * OW + ow] = T(0);
                    continue;
                }
                acc_t<T> s = 0;
                for (int64_t h = h0; h < h1; ++h)
                    for (int64_t w = w0; w < w1; ++w) s += x[h * W + w];
                const int64_t div =
                    divisor_override > 0 ? divisor_override : count_include_pad ? pool : (h1 - h0) * (w1 - w0);
                y[oh * OW + ow] = static_cast<T>(s / static_cast<acc_t<T>>(div));
            }
        }
    }
}

// torch.nn.functional.avg_pool1d: in [N, C, L], out [N, C, OL].
template <class T>
void avg_pool1d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t N, int64_t C, int64_t L, int64_t KL,
                int64_t stride, int64_t pad, bool count_include_pad, int64_t OL) {
    avg_pool2d(out, in, N, C, 1, L, 1, KL, 1, stride, 0, pad, count_include_pad, 0, 1, OL);
}

// Global average pooling (AdaptiveAvgPool2d(1), x.mean((2,3))): in [planes, HW]
// (planes = N*C), out [planes].
template <class T>
void global_avg_pool2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t planes, int64_t HW) {
    MITHRIL_K_PARFOR(planes * HW >= kParallelWork)
    for (int64_t p = 0; p < planes; ++p)
        out[p] = static_cast<T>(sum_contig(in + p * HW, HW) / static_cast<acc_t<T>>(HW));
}

// torch.nn.functional.adaptive_avg_pool2d(in, (OH, OW)): window of output oh
// is [floor(oh*H/OH), ceil((oh+1)*H/OH)). in [N, C, H, W], out [N, C, OH, OW].
template <class T>
void adaptive_avg_pool2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t N, int64_t C, int64_t H,
                         int64_t W, int64_t OH, int64_t OW) {
    const int64_t planes = N * C;
    MITHRIL_K_PARFOR(planes * H * W >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const T* x = in + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
            const int64_t h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
            for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
                acc_t<T> s = 0;
                for (int64_t h = h0; h < h1; ++h)
                    for (int64_t w = w0; w < w1; ++w) s += x[h * W + w];
                out[(pl * OH + oh) * OW + ow] = static_cast<T>(s / static_cast<acc_t<T>>((h1 - h0) * (w1 - w0)));
            }
        }
    }
}

// torch.nn.functional.adaptive_max_pool2d(in, (OH, OW)) (values only; NaN propagates).
template <class T>
void adaptive_max_pool2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t N, int64_t C, int64_t H,
                         int64_t W, int64_t OH, int64_t OW) {
    const int64_t planes = N * C;
    MITHRIL_K_PARFOR(planes * H * W >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const T* x = in + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
            const int64_t h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
            for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
                T best = neg_inf<T>();
                for (int64_t h = h0; h < h1; ++h)
                    for (int64_t w = w0; w < w1; ++w) {
                        const T v = x[h * W + w];
                        best = (v > best || is_nan(v) || is_nan(best)) ? (is_nan(best) ? best : v) : best;
                    }
                out[(pl * OH + oh) * OW + ow] = best;
            }
        }
    }
}

}  // namespace mithril::rt::k
