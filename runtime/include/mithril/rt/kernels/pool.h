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

// ---- gradients ---------------------------------------------------------------
// Each zeroes an input plane and scatters the output gradient into it, one
// plane per thread (no races, x and dx are read and written once).

namespace detail {
// One output row of max_pool2d_grad, outputs [ow_lo, ow_hi) whose windows lie
// inside the input (hs = the row's first input row): the argmax of a block of
// windows at once with branch-free selects (as max_pool2d_inside), which the
// compiler vectorizes; a scalar argmax mispredicts on every new maximum.
// Starting from each window's first element is what the general walk does too
// (its -inf start loses to anything but -inf, and then the index stays there).
template <class T>
void max_pool2d_grad_row_inside(T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT x,
                                const T* MITHRIL_K_RESTRICT g, int64_t W, int64_t KH, int64_t KW, int64_t hs,
                                int64_t stride_w, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t ow_lo,
                                int64_t ow_hi) {
    constexpr int64_t kBlock = 64;
    for (int64_t ow0 = ow_lo; ow0 < ow_hi; ow0 += kBlock) {
        const int64_t n = std::min(kBlock, ow_hi - ow0);
        const int64_t first = hs * W + ow0 * stride_w - pad_w;  // the block's first window
        const T* xr = x + first;
        T best[kBlock];
        int64_t at[kBlock];  // offset of the maximum from the window's first element
        for (int64_t j = 0; j < n; ++j) {
            best[j] = xr[j * stride_w];
            at[j] = 0;
        }
        for (int64_t kh = 0; kh < KH; ++kh)
            for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t off = kh * dil_h * W + kw * dil_w;
                for (int64_t j = 0; j < n; ++j) {
                    const T v = xr[j * stride_w + off];
                    const T b = best[j];
                    const bool take = (v > b || v != v) && b == b;
                    best[j] = take ? v : b;
                    at[j] = take ? off : at[j];
                }
            }
        T* dr = d + first;
        for (int64_t j = 0; j < n; ++j) dr[j * stride_w + at[j]] += g[ow0 + j];
    }
}
}  // namespace detail

// dx of max_pool2d: dy goes to the element the forward pass picked, found again
// by the same window walk (no stored indices): the first maximum of each window,
// or the first NaN, as PyTorch. dy, OH, OW as max_pool2d's output. Windows
// clipped by the border take the general walk, the others the vectorized one.
template <class T>
void max_pool2d_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT in,
                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h,
                     int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t OH,
                     int64_t OW) {
    const int64_t planes = N * C;
    // Outputs [inner_lo, inner_hi) of a row have windows inside the input horizontally.
    const int64_t inner_lo = std::min(OW, (pad_w + stride_w - 1) / stride_w);
    const int64_t last = W - 1 - (KW - 1) * dil_w + pad_w;  // the last window start that fits, plus pad_w
    const int64_t inner_hi = std::max(inner_lo, last < 0 ? int64_t{0} : std::min(OW, last / stride_w + 1));
    MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const T* x = in + pl * H * W;
        const T* g = dy + pl * OH * OW;
        T* d = dx + pl * H * W;
        for (int64_t i = 0; i < H * W; ++i) d[i] = T(0);
        for (int64_t oh = 0; oh < OH; ++oh) {
            const int64_t hs = oh * stride_h - pad_h;
            int64_t h0 = hs;
            const int64_t h1 = std::min(h0 + (KH - 1) * dil_h + 1, H);
            while (h0 < 0) h0 += dil_h;
            const bool rows_inside = hs >= 0 && hs + (KH - 1) * dil_h < H;
            const int64_t lo = rows_inside ? inner_lo : OW, hi = rows_inside ? inner_hi : OW;
            if (lo < hi)
                detail::max_pool2d_grad_row_inside(d, x, g + oh * OW, W, KH, KW, hs, stride_w, pad_w, dil_h, dil_w,
                                                   lo, hi);
            for (int64_t ow = 0; ow < OW; ++ow) {
                if (ow == lo) ow = hi;  // done above
                if (ow >= OW) break;
                int64_t w0 = ow * stride_w - pad_w;
                const int64_t w1 = std::min(w0 + (KW - 1) * dil_w + 1, W);
                while (w0 < 0) w0 += dil_w;
                if (h0 >= h1 || w0 >= w1) continue;  // no element in the window: nothing to route
                T best = neg_inf<T>();
                int64_t best_i = h0 * W + w0;
                for (int64_t h = h0; h < h1; h += dil_h)
                    for (int64_t w = w0; w < w1; w += dil_w) {
                        const T v = x[h * W + w];
                        const bool take = (v > best || v != v) && best == best;
                        best = take ? v : best;
                        best_i = take ? h * W + w : best_i;
                    }
                d[best_i] += g[oh * OW + ow];
            }
        }
    }
}

// dx of max_pool1d: max_pool2d_grad with H = 1.
template <class T>
void max_pool1d_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT in,
                     int64_t N, int64_t C, int64_t L, int64_t KL, int64_t stride, int64_t pad, int64_t dil,
                     int64_t OL) {
    max_pool2d_grad(dx, dy, in, N, C, 1, L, 1, KL, 1, stride, 0, pad, 1, dil, 1, OL);
}

// dx of avg_pool2d: each output's gradient divided by its divisor (the same
// window clipping and divisor as avg_pool2d) is added to its window.
template <class T>
void avg_pool2d_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, int64_t N, int64_t C, int64_t H,
                     int64_t W, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                     int64_t pad_w, bool count_include_pad, int64_t divisor_override, int64_t OH, int64_t OW) {
    const int64_t planes = N * C;
    MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const T* g = dy + pl * OH * OW;
        T* d = dx + pl * H * W;
        for (int64_t i = 0; i < H * W; ++i) d[i] = T(0);
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
                if (h0 >= h1 || w0 >= w1) continue;
                const int64_t div =
                    divisor_override > 0 ? divisor_override : count_include_pad ? pool : (h1 - h0) * (w1 - w0);
                const T v = static_cast<T>(static_cast<acc_t<T>>(g[oh * OW + ow]) / static_cast<acc_t<T>>(div));
                for (int64_t h = h0; h < h1; ++h)
                    for (int64_t w = w0; w < w1; ++w) d[h * W + w] += v;
            }
        }
    }
}

// dx of global_avg_pool2d: dx[p, i] = dy[p] / HW; dx [planes, HW], dy [planes].
template <class T>
void global_avg_pool2d_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, int64_t planes, int64_t HW) {
    MITHRIL_K_PARFOR(planes * HW >= kParallelWork)
    for (int64_t p = 0; p < planes; ++p) {
        const T v = static_cast<T>(static_cast<acc_t<T>>(dy[p]) / static_cast<acc_t<T>>(HW));
        T* d = dx + p * HW;
        for (int64_t i = 0; i < HW; ++i) d[i] = v;
    }
}

}  // namespace mithril::rt::k
