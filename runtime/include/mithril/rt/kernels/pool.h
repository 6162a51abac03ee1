// kernels/pool.h - max / average / global / adaptive pooling (NCHW).
//
// ceil_mode is the caller's business: it passes OH/OW computed as PyTorch
// does (floor or ceil of (H + 2*pad - dil*(KH-1) - 1)/stride + 1, minus one
// when the last window would start in the right padding). The kernels clip
// windows at the borders exactly as PyTorch's CPU kernels do.
#pragma once

#include <utility>

#include "mithril/rt/kernels/common.h"

namespace mithril::rt::k {

// torch.nn.functional.max_pool2d(in, (KH,KW), (sh,sw), (ph,pw), (dh,dw),
// return_indices). in [N, C, H, W], out [N, C, OH, OW]; indices_or_null
// (int64, same shape as out) receives the flat h*W + w of the max within its
// plane, as PyTorch. Padding never wins; NaN propagates (first NaN wins).
namespace detail {
// The window walks shared by max pooling and its gradient. NaN sticks once seen:
// v > NaN and NaN != NaN are false for any later v. Elements are visited in
// row-major window order and only a strictly larger value (or a first NaN)
// replaces the running maximum, so ties keep the first one, as PyTorch.

// The outputs along one axis whose windows lie inside the input: [lo, hi).
struct PoolInside {
    int64_t lo, hi;
    PoolInside(int64_t size, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t out) {
        lo = std::min(out, (pad + stride - 1) / stride);
        const int64_t last = size - 1 - (k - 1) * dil + pad;  // the last window start that fits, plus pad
        hi = std::max(lo, last < 0 ? int64_t{0} : std::min(out, last / stride + 1));
    }
};

// The general walk of one window clipped to the input (window start (hs, ws)
// before clipping): its maximum and the plane index h*W + w of the first maximum
// (the first element in the window when none is above -inf). Returns false when
// the window holds no element.
template <class T>
inline bool max_window_clipped(const T* MITHRIL_K_RESTRICT x, int64_t H, int64_t W, int64_t KH, int64_t KW,
                               int64_t hs, int64_t ws, int64_t dil_h, int64_t dil_w, T& best, int64_t& best_i) {
    int64_t h0 = hs, w0 = ws;
    const int64_t h1 = std::min(h0 + (KH - 1) * dil_h + 1, H), w1 = std::min(w0 + (KW - 1) * dil_w + 1, W);
    while (h0 < 0) h0 += dil_h;
    while (w0 < 0) w0 += dil_w;
    best = neg_inf<T>();
    best_i = h0 * W + w0;
    if (h0 >= h1 || w0 >= w1) return false;
    for (int64_t h = h0; h < h1; h += dil_h)
        for (int64_t w = w0; w < w1; w += dil_w) {
            const T v = x[h * W + w];
            const bool take = (v > best || v != v) && best == best;
            best = take ? v : best;
            best_i = take ? h * W + w : best_i;
        }
    return true;
}

// o[j] = src[j * stride] for j < n (the common strides fixed, so they vectorize).
template <class T>
inline void gather_strided(T* MITHRIL_K_RESTRICT o, const T* MITHRIL_K_RESTRICT src, int64_t n, int64_t stride) {
    if (stride == 1) {
        for (int64_t j = 0; j < n; ++j) o[j] = src[j];
    } else if (stride == 2) {
        for (int64_t j = 0; j < n; ++j) o[j] = src[2 * j];
    } else {
        for (int64_t j = 0; j < n; ++j) o[j] = src[j * stride];
    }
}

// Blocks of up to kMaxPoolBlock windows: a scalar walk waits on every compare
// (and mispredicts on every new maximum), so a block goes element by element of
// the window instead: that element of every window in the block is gathered
// into a contiguous buffer, then compared with the running maxima in a
// branch-free loop the compiler vectorizes.
inline constexpr int64_t kMaxPoolBlock = 256;

// One block of nr rows of cw windows lying inside the input, nr*cw <=
// kMaxPoolBlock; the first window of row r starts at x + src[r], the windows of
// a row are sw apart. Forward (d == null): the maxima into y + yo[r] (cw of them
// per row). Gradient: g[yo[r] + j] added to d at the first maximum of window j
// of row r (the window starting at d + src[r] + j*sw).
template <class T>
void max_pool_block(T* MITHRIL_K_RESTRICT y, T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT g,
                    const T* MITHRIL_K_RESTRICT x, const int64_t* src, const int64_t* yo, int64_t nr, int64_t cw,
                    int64_t W, int64_t KH, int64_t KW, int64_t sw, int64_t dh, int64_t dw) {
    alignas(64) T best[kMaxPoolBlock];
    alignas(64) T v[kMaxPoolBlock];
    alignas(64) int32_t at[kMaxPoolBlock];  // offset of the maximum from its window's first element
    const int64_t n = nr * cw;
    for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw) {
            const int64_t off = kh * dh * W + kw * dw;
            const int32_t off32 = static_cast<int32_t>(off);  // fits: see max_pool2d_planes
            const bool first = kh == 0 && kw == 0;
            T* dst = first ? best : v;
            for (int64_t r = 0; r < nr; ++r) gather_strided(dst + r * cw, x + src[r] + off, cw, sw);
            if (first) {
                if (d)
                    for (int64_t q = 0; q < n; ++q) at[q] = 0;
                continue;
            }
            if (d) {
                for (int64_t q = 0; q < n; ++q) {
                    const T e = v[q], b = best[q];
                    const bool take = (e > b || e != e) && b == b;
                    best[q] = take ? e : b;
                    at[q] = take ? off32 : at[q];
                }
            } else {
                for (int64_t q = 0; q < n; ++q) {
                    const T e = v[q], b = best[q];
                    best[q] = (e > b || e != e) && b == b ? e : b;
                }
            }
        }
    for (int64_t r = 0; r < nr; ++r) {
        if (!d) {
            for (int64_t j = 0; j < cw; ++j) y[yo[r] + j] = best[r * cw + j];
        } else {
            T* dr = d + src[r];
            for (int64_t j = 0; j < cw; ++j) dr[j * sw + at[r * cw + j]] += g[yo[r] + j];
        }
    }
}

// One plane of max pooling over the outputs [oh_lo, oh_hi) x [ow_lo, ow_hi),
// whose windows lie inside the input, in max_pool_block's blocks (several rows
// when rows are short). Forward (y != null): maxima into y (the output plane).
// Gradient (d != null): g[o] (the output gradient plane) added to d (the input
// gradient plane) at each window's first maximum. edge(oh, lo, hi) handles the
// outputs [lo, hi) of row oh outside [ow_lo, ow_hi); it is called so that every
// row's outputs are finished left to right and rows top to bottom: overlapping
// windows add into the same element of d in the order of PyTorch's loop.
template <class T, class Edge>
void max_pool_plane_inside(T* MITHRIL_K_RESTRICT y, T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT g,
                           const T* MITHRIL_K_RESTRICT x, int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t OW, int64_t oh_lo, int64_t oh_hi,
                           int64_t ow_lo, int64_t ow_hi, const Edge& edge) {
    int64_t src[kMaxPoolBlock], yo[kMaxPoolBlock];
    const int64_t cw_max = std::min(kMaxPoolBlock, ow_hi - ow_lo);
    const int64_t rows = std::max<int64_t>(1, kMaxPoolBlock / cw_max);
    for (int64_t r0 = oh_lo; r0 < oh_hi; r0 += rows) {
        const int64_t nr = std::min(rows, oh_hi - r0);
        for (int64_t c0 = ow_lo; c0 < ow_hi; c0 += kMaxPoolBlock) {
            const int64_t cw = std::min(kMaxPoolBlock, ow_hi - c0);
            for (int64_t r = 0; r < nr; ++r) {
                src[r] = ((r0 + r) * sh - ph) * W + c0 * sw - pw;
                yo[r] = (r0 + r) * OW + c0;
            }
            // Each row: its left edge, its blocked outputs, its right edge. With
            // several rows per block (a single column block then) that order only
            // matters to the gradient when the rows have edges: those go one row
            // at a time (the padded case; the same windows, so the same maxima).
            if (nr == 1 && c0 == ow_lo) edge(r0, 0, ow_lo);
            if (nr == 1 || !d || (ow_lo == 0 && ow_hi == OW)) {
                max_pool_block(y, d, g, x, src, yo, nr, cw, W, KH, KW, sw, dh, dw);
                if (nr > 1)
                    for (int64_t r = 0; r < nr; ++r) {
                        edge(r0 + r, 0, ow_lo);
                        edge(r0 + r, ow_hi, OW);
                    }
            } else {
                for (int64_t r = 0; r < nr; ++r) {
                    edge(r0 + r, 0, ow_lo);
                    max_pool_block(y, d, g, x, src + r, yo + r, 1, cw, W, KH, KW, sw, dh, dw);
                    edge(r0 + r, ow_hi, OW);
                }
            }
        }
        if (nr == 1) edge(r0, ow_hi, OW);
    }
}

// max_pool2d (y != null) or its gradient (d, g != null, d zeroed here) on one
// plane x: the inner outputs through max_pool_plane_inside, those whose windows
// the border clips through the general walk.
template <class T>
void max_pool2d_one(T* MITHRIL_K_RESTRICT y, T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT g,
                    const T* MITHRIL_K_RESTRICT x, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                    int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t OH, int64_t OW,
                    const PoolInside& rows, const PoolInside& cols) {
    if (d) std::fill(d, d + H * W, T(0));
    auto edge = [&](int64_t oh, int64_t lo, int64_t hi) {
        for (int64_t ow = lo; ow < hi; ++ow) {
            T b;
            int64_t bi;
            const bool any = max_window_clipped(x, H, W, KH, KW, oh * sh - ph, ow * sw - pw, dh, dw, b, bi);
            if (y) y[oh * OW + ow] = b;
            else if (any) d[bi] += g[oh * OW + ow];  // no element in the window: nothing to route
        }
    };
    const bool inner = rows.lo < rows.hi && cols.lo < cols.hi;
    const int64_t top = inner ? rows.lo : OH;
    for (int64_t oh = 0; oh < top; ++oh) edge(oh, 0, OW);
    if (inner) {
        max_pool_plane_inside(y, d, g, x, W, KH, KW, sh, sw, ph, pw, dh, dw, OW, rows.lo, rows.hi, cols.lo, cols.hi,
                              edge);
        for (int64_t oh = rows.hi; oh < OH; ++oh) edge(oh, 0, OW);
    }
}

// The outputs along each axis whose windows lie inside the input, for max_pool2d_one.
inline std::pair<PoolInside, PoolInside> pool_inside(int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                                                     int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                                                     int64_t OH, int64_t OW) {
    PoolInside rows(H, KH, sh, ph, dh, OH), cols(W, KW, sw, pw, dw, OW);
    // max_pool_block keeps offsets within a window in int32 (half the width of
    // int64 next to float lanes); windows too large for that take the general walk.
    if ((KH - 1) * dh * W + (KW - 1) * dw > std::numeric_limits<int32_t>::max()) rows.lo = rows.hi = 0;
    return {rows, cols};
}

// max_pool2d (y != null) or its gradient (d, g != null) over planes, each by
// max_pool2d_one. Small planes with no clipped window (no padding, as LeNet's
// 2x2 pools) go several planes per block.
template <class T>
void max_pool2d_planes(T* MITHRIL_K_RESTRICT out, T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy,
                       const T* MITHRIL_K_RESTRICT in, int64_t planes, int64_t H, int64_t W, int64_t KH, int64_t KW,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t OH,
                       int64_t OW) {
    // Plain variables, not a structured binding: clang 14 cannot capture those in an OpenMP region.
    const auto inside = pool_inside(H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW);
    const PoolInside rows = inside.first, cols = inside.second;
    const bool whole = rows.lo == 0 && rows.hi == OH && cols.lo == 0 && cols.hi == OW && OH > 0 && OW > 0;
    if (whole && OH * OW * 2 <= kMaxPoolBlock) {
        const int64_t per = kMaxPoolBlock / (OH * OW), blocks = (planes + per - 1) / per;
        MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
        for (int64_t b = 0; b < blocks; ++b) {
            const int64_t p0 = b * per, np = std::min(per, planes - p0);
            int64_t src[kMaxPoolBlock], yo[kMaxPoolBlock];
            for (int64_t j = 0; j < np; ++j)
                for (int64_t r = 0; r < OH; ++r) {
                    src[j * OH + r] = (p0 + j) * H * W + (r * sh - ph) * W - pw;
                    yo[j * OH + r] = (p0 + j) * OH * OW + r * OW;
                }
            if (dx) std::fill(dx + p0 * H * W, dx + (p0 + np) * H * W, T(0));
            max_pool_block(out, dx, dy, in, src, yo, np * OH, OW, W, KH, KW, sw, dh, dw);
        }
        return;
    }
    MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl)
        max_pool2d_one(out ? out + pl * OH * OW : nullptr, dx ? dx + pl * H * W : nullptr,
                       dx ? dy + pl * OH * OW : nullptr, in + pl * H * W, H, W, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW,
                       rows, cols);
}

// The common 2x2, stride 2 pooling without padding or dilation (LeNet, VGG),
// forward only, for rows of up to kMaxPool2x2Row outputs: the maxima of row pairs,
// then of column pairs, each a loop the compiler vectorizes (1.8x the general
// walk on LeNet's first pooling). The same maxima as the window walk; with NaNs in
// a window the result is NaN as well (which of them may differ: the order of the
// comparisons does).
inline constexpr int64_t kMaxPool2x2Row = 1024;
inline bool max_pool_is_2x2(int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                            int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t OH, int64_t OW) {
    return KH == 2 && KW == 2 && stride_h == 2 && stride_w == 2 && pad_h == 0 && pad_w == 0 && dil_h == 1 &&
           dil_w == 1 && 2 * OH <= H && 2 * OW <= W && OW <= kMaxPool2x2Row;
}
template <class T>
void max_pool2d_2x2_one(T* MITHRIL_K_RESTRICT y, const T* MITHRIL_K_RESTRICT x, int64_t W, int64_t OH, int64_t OW) {
    auto take = [](T best, T e) { return (e > best || e != e) && best == best ? e : best; };
    if (2 * OW == W && OH * OW <= kMaxPool2x2Row) {
        // Even width: the column pairs of the 2*OH rows in one loop over the plane (no pair
        // straddles two rows; short rows would leave the vector loops to their scalar tails),
        // then the row pairs.
        T cols[2 * kMaxPool2x2Row];
        for (int64_t i = 0; i < 2 * OH * OW; ++i) cols[i] = take(x[2 * i], x[2 * i + 1]);
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow)
                y[oh * OW + ow] = take(cols[2 * oh * OW + ow], cols[(2 * oh + 1) * OW + ow]);
        return;
    }
    T rows[2 * kMaxPool2x2Row];
    for (int64_t oh = 0; oh < OH; ++oh) {
        const T* r0 = x + 2 * oh * W;
        const T* r1 = r0 + W;
        for (int64_t j = 0; j < 2 * OW; ++j) rows[j] = take(r0[j], r1[j]);
        for (int64_t ow = 0; ow < OW; ++ow) y[oh * OW + ow] = take(rows[2 * ow], rows[2 * ow + 1]);
    }
}
template <class T>
void max_pool2d_2x2(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t planes, int64_t H, int64_t W,
                    int64_t OH, int64_t OW) {
    MITHRIL_K_PARFOR(planes * OH * OW * 4 >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) max_pool2d_2x2_one(out + pl * OH * OW, in + pl * H * W, W, OH, OW);
}

template <class T>
void max_pool2d_indices(T* MITHRIL_K_RESTRICT out, int64_t* MITHRIL_K_RESTRICT indices, const T* MITHRIL_K_RESTRICT in,
                        int64_t planes, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h,
                        int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t OH,
                        int64_t OW) {
    MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const T* x = in + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t o = (pl * OH + oh) * OW + ow;
                max_window_clipped(x, H, W, KH, KW, oh * stride_h - pad_h, ow * stride_w - pad_w, dil_h, dil_w,
                                   out[o], indices[o]);
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
        detail::max_pool2d_indices(out, indices_or_null, in, N * C, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w,
                                   dil_h, dil_w, OH, OW);
    else if (detail::max_pool_is_2x2(H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH, OW))
        detail::max_pool2d_2x2(out, in, N * C, H, W, OH, OW);
    else
        detail::max_pool2d_planes(out, static_cast<T*>(nullptr), static_cast<const T*>(nullptr), in, N * C, H, W, KH,
                                  KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH, OW);
}

// max_pool2d of one plane [H, W] -> [OH, OW], on the calling thread only: a
// convolution's epilogue pools each row of its result with it (the fuse-pool pass).
template <class T>
void max_pool2d_plane(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t H, int64_t W, int64_t KH,
                      int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
                      int64_t dil_w, int64_t OH, int64_t OW) {
    if (detail::max_pool_is_2x2(H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH, OW)) {
        detail::max_pool2d_2x2_one(out, in, W, OH, OW);
        return;
    }
    const auto [rows, cols] = detail::pool_inside(H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, OH, OW);
    detail::max_pool2d_one(out, static_cast<T*>(nullptr), static_cast<const T*>(nullptr), in, H, W, KH, KW, stride_h,
                           stride_w, pad_h, pad_w, dil_h, dil_w, OH, OW, rows, cols);
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
// avg_pool2d of one plane [H, W] -> [OH, OW], on the calling thread only (as max_pool2d_plane).
template <class T>
void avg_pool2d_plane(T* MITHRIL_K_RESTRICT y, const T* MITHRIL_K_RESTRICT x, int64_t H, int64_t W, int64_t KH,
                      int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                      bool count_include_pad, int64_t divisor_override, int64_t OH, int64_t OW) {
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

template <class T>
void avg_pool2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t N, int64_t C, int64_t H, int64_t W,
                int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                bool count_include_pad, int64_t divisor_override, int64_t OH, int64_t OW) {
    const int64_t planes = N * C;
    MITHRIL_K_PARFOR(planes * OH * OW * KH * KW >= kParallelWork)
    for (int64_t pl = 0; pl < planes; ++pl)
        avg_pool2d_plane(out + pl * OH * OW, in + pl * H * W, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w,
                         count_include_pad, divisor_override, OH, OW);
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

// dx of max_pool2d: dy goes to the element the forward pass picked, found again
// by the same window walk (no stored indices): the first maximum of each window,
// or the first NaN, as PyTorch. dy, OH, OW as max_pool2d's output. Windows
// clipped by the border take the general walk, the others the vectorized one.
template <class T>
void max_pool2d_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT in,
                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h,
                     int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t OH,
                     int64_t OW) {
    detail::max_pool2d_planes(static_cast<T*>(nullptr), dx, dy, in, N * C, H, W, KH, KW, stride_h, stride_w, pad_h,
                              pad_w, dil_h, dil_w, OH, OW);
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

// ---- the same kernels, their geometry by name (Pool2dGeom, kernels/common.h) -----------------
// What generated code calls: each forwards to the kernel above, unchanged.

template <class T>
inline void max_pool2d(T* MITHRIL_K_RESTRICT out, int64_t* MITHRIL_K_RESTRICT indices_or_null,
                       const T* MITHRIL_K_RESTRICT in, const Pool2dGeom& g) {
    max_pool2d(out, indices_or_null, in, g.n, g.c, g.h, g.w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h,
               g.pad_w, g.dil_h, g.dil_w, g.out_h, g.out_w);
}

// One plane: g.n and g.c are not read.
template <class T>
inline void max_pool2d_plane(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const Pool2dGeom& g) {
    max_pool2d_plane(out, in, g.h, g.w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h,
                     g.dil_w, g.out_h, g.out_w);
}

template <class T>
inline void avg_pool2d(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const Pool2dGeom& g) {
    avg_pool2d(out, in, g.n, g.c, g.h, g.w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
               g.count_include_pad, g.divisor_override, g.out_h, g.out_w);
}

// One plane: g.n and g.c are not read.
template <class T>
inline void avg_pool2d_plane(T* MITHRIL_K_RESTRICT y, const T* MITHRIL_K_RESTRICT x, const Pool2dGeom& g) {
    avg_pool2d_plane(y, x, g.h, g.w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
                     g.count_include_pad, g.divisor_override, g.out_h, g.out_w);
}

// g: the forward pooling's (dx and in [n, c, h, w], dy [n, c, out_h, out_w]).
template <class T>
inline void max_pool2d_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT in,
                            const Pool2dGeom& g) {
    max_pool2d_grad(dx, dy, in, g.n, g.c, g.h, g.w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
                    g.dil_h, g.dil_w, g.out_h, g.out_w);
}

template <class T>
inline void avg_pool2d_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const Pool2dGeom& g) {
    avg_pool2d_grad(dx, dy, g.n, g.c, g.h, g.w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
                    g.count_include_pad, g.divisor_override, g.out_h, g.out_w);
}

// ---- compiled once, into the runtime library (src/kernels_nn.cpp) -------------------------------
MITHRIL_K_INSTANCE(void max_pool2d<float>(float*, int64_t*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                          int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                          int64_t))
MITHRIL_K_INSTANCE(void max_pool2d_plane<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                                int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void avg_pool2d<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                          int64_t, int64_t, int64_t, int64_t, bool, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void global_avg_pool2d<float>(float*, const float*, int64_t, int64_t))
MITHRIL_K_INSTANCE(void max_pool2d_grad<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                               int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                               int64_t, int64_t))
MITHRIL_K_INSTANCE(void avg_pool2d_grad<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                               int64_t, int64_t, int64_t, int64_t, int64_t, bool, int64_t, int64_t,
                                               int64_t))
MITHRIL_K_INSTANCE(void global_avg_pool2d_grad<float>(float*, const float*, int64_t, int64_t))

}  // namespace mithril::rt::k
