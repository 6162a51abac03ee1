// kernels/norm.h - batch / layer / group / RMS normalisation (forward), and
// the backward kernels of batch / layer / group normalisation.
// Statistics are accumulated in double for float (acc_t), two-pass (mean,
// then squared deviations). All are in-place safe (out == in).
#pragma once

#include "mithril/rt/kernels/common.h"

namespace mithril::rt::k {

// Eval-mode batch norm of channel c as y = x * scale + shift:
// scale = weight[c] / sqrt(var[c] + eps), shift = bias[c] - mean[c] * scale
// (weight/bias null: 1 / 0), computed in acc_t<T>.
template <class T>
inline void batch_norm_scale_shift(T& scale, T& shift, int64_t c, const T* MITHRIL_K_RESTRICT mean,
                                   const T* MITHRIL_K_RESTRICT var, const opt<T>* MITHRIL_K_RESTRICT weight_or_null,
                                   const opt<T>* MITHRIL_K_RESTRICT bias_or_null, double eps) {
    const acc_t<T> rstd = 1 / std::sqrt(static_cast<acc_t<T>>(var[c]) + static_cast<acc_t<T>>(eps));
    const acc_t<T> w = weight_or_null ? static_cast<acc_t<T>>(weight_or_null[c]) : 1;
    const acc_t<T> b = bias_or_null ? static_cast<acc_t<T>>(bias_or_null[c]) : 0;
    scale = static_cast<T>(w * rstd);
    shift = static_cast<T>(b - static_cast<acc_t<T>>(mean[c]) * w * rstd);
}

// Eval-mode torch.nn.functional.batch_norm(in, mean, var, weight, bias,
// training=False, eps=eps): out = (in - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c].
// in/out [N, C, HW]; weight/bias [C] or null (1 / 0). In-place safe.
template <class T>
void batch_norm_inference(T* out, const T* in, const T* MITHRIL_K_RESTRICT mean, const T* MITHRIL_K_RESTRICT var,
                          const opt<T>* MITHRIL_K_RESTRICT weight_or_null,
                          const opt<T>* MITHRIL_K_RESTRICT bias_or_null, int64_t N, int64_t C, int64_t HW, double eps) {
    MITHRIL_K_PARFOR2(N * C * HW >= kParallelWork)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            T scale, shift;
            batch_norm_scale_shift(scale, shift, c, mean, var, weight_or_null, bias_or_null, eps);
            const T* x = in + (n * C + c) * HW;
            T* y = out + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; ++i) y[i] = x[i] * scale + shift;
        }
}

// Train-mode torch.nn.functional.batch_norm(in, running_mean, running_var,
// weight, bias, training=True, momentum, eps): normalises with the batch mean
// and the biased batch variance over (N, HW); then
// running_mean = (1-momentum)*running_mean + momentum*batch_mean and
// running_var = (1-momentum)*running_var + momentum*unbiased_batch_var.
// in/out [N, C, HW]; batch_mean_out / batch_var_out [C] (biased variance) or
// null; running_* [C] or null (track_running_stats=False); weight/bias [C] or
// null. Throws Error when N*HW <= 1 (as PyTorch). In-place safe.
template <class T>
void batch_norm_training(T* out, opt<T>* MITHRIL_K_RESTRICT batch_mean_out, opt<T>* MITHRIL_K_RESTRICT batch_var_out,
                         opt<T>* MITHRIL_K_RESTRICT running_mean_inout, opt<T>* MITHRIL_K_RESTRICT running_var_inout,
                         const T* in, const opt<T>* MITHRIL_K_RESTRICT weight_or_null,
                         const opt<T>* MITHRIL_K_RESTRICT bias_or_null, int64_t N, int64_t C, int64_t HW, double eps,
                         double momentum) {
    using A = acc_t<T>;
    const int64_t count = N * HW;
    if (count <= 1)
        throw Error("batch_norm_training: expected more than 1 value per channel, got " + std::to_string(count));
    MITHRIL_K_PARFOR(N * C * HW >= kParallelWork)
    for (int64_t c = 0; c < C; ++c) {
        A s = 0;
        for (int64_t n = 0; n < N; ++n) s += sum_contig(in + (n * C + c) * HW, HW);
        const A mean = s / static_cast<A>(count);
        A ss = 0;
        for (int64_t n = 0; n < N; ++n) {
            const T* x = in + (n * C + c) * HW;
            A lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int64_t i = 0;
            for (; i + 8 <= HW; i += 8)
                for (int j = 0; j < 8; ++j) {
                    const A d = static_cast<A>(x[i + j]) - mean;
                    lane[j] += d * d;
                }
            for (int j = 0; j < 8; ++j) ss += lane[j];
            for (; i < HW; ++i) {
                const A d = static_cast<A>(x[i]) - mean;
                ss += d * d;
            }
        }
        const A var = ss / static_cast<A>(count);
        const A rstd = 1 / std::sqrt(var + static_cast<A>(eps));
        const A w = weight_or_null ? static_cast<A>(weight_or_null[c]) : 1;
        const A b = bias_or_null ? static_cast<A>(bias_or_null[c]) : 0;
        const T scale = static_cast<T>(w * rstd), shift = static_cast<T>(b - mean * w * rstd);
        for (int64_t n = 0; n < N; ++n) {
            const T* x = in + (n * C + c) * HW;
            T* y = out + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; ++i) y[i] = x[i] * scale + shift;
        }
        if (batch_mean_out) batch_mean_out[c] = static_cast<T>(mean);
        if (batch_var_out) batch_var_out[c] = static_cast<T>(var);
        const A m = static_cast<A>(momentum);
        if (running_mean_inout)
            running_mean_inout[c] = static_cast<T>((1 - m) * static_cast<A>(running_mean_inout[c]) + m * mean);
        if (running_var_inout)
            running_var_inout[c] = static_cast<T>((1 - m) * static_cast<A>(running_var_inout[c]) +
                                                  m * var * static_cast<A>(count) / static_cast<A>(count - 1));
    }
}

namespace detail {
// Mean and 1/sqrt(biased var + eps) of n contiguous values (two-pass).
template <class T>
inline void mean_rstd(const T* MITHRIL_K_RESTRICT x, int64_t n, double eps, acc_t<T>& mean, acc_t<T>& rstd) {
    using A = acc_t<T>;
    mean = sum_contig(x, n) / static_cast<A>(n);
    A lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) {
            const A d = static_cast<A>(x[i + j]) - mean;
            lane[j] += d * d;
        }
    A ss = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; i < n; ++i) {
        const A d = static_cast<A>(x[i]) - mean;
        ss += d * d;
    }
    rstd = 1 / std::sqrt(ss / static_cast<A>(n) + static_cast<A>(eps));
}
}  // namespace detail

// torch.nn.functional.layer_norm(in, [cols], weight, bias, eps) over the last
// `cols` elements: in/out [rows, cols]; weight/bias [cols] or null.
// mean_out / rstd_out [rows] or null receive the row mean and
// 1/sqrt(biased var + eps) (what a backward pass needs). In-place safe.
template <class T>
void layer_norm(T* out, opt<T>* MITHRIL_K_RESTRICT mean_out_or_null, opt<T>* MITHRIL_K_RESTRICT rstd_out_or_null,
                const T* in, const opt<T>* MITHRIL_K_RESTRICT weight_or_null,
                const opt<T>* MITHRIL_K_RESTRICT bias_or_null, int64_t rows, int64_t cols, double eps) {
    MITHRIL_K_PARFOR(rows * cols >= kParallelWork)
    for (int64_t r = 0; r < rows; ++r) {
        const T* x = in + r * cols;
        T* y = out + r * cols;
        acc_t<T> mean, rstd;
        detail::mean_rstd(x, cols, eps, mean, rstd);
        const T m = static_cast<T>(mean), s = static_cast<T>(rstd);
        if (weight_or_null && bias_or_null) {
            for (int64_t i = 0; i < cols; ++i) y[i] = (x[i] - m) * s * weight_or_null[i] + bias_or_null[i];
        } else if (weight_or_null) {
            for (int64_t i = 0; i < cols; ++i) y[i] = (x[i] - m) * s * weight_or_null[i];
        } else if (bias_or_null) {
            for (int64_t i = 0; i < cols; ++i) y[i] = (x[i] - m) * s + bias_or_null[i];
        } else {
            for (int64_t i = 0; i < cols; ++i) y[i] = (x[i] - m) * s;
        }
        if (mean_out_or_null) mean_out_or_null[r] = m;
        if (rstd_out_or_null) rstd_out_or_null[r] = s;
    }
}

// torch.nn.functional.group_norm(in, groups, weight, bias, eps): statistics
// over each (n, group of C/groups channels x HW); weight/bias [C] or null.
// in/out [N, C, HW]; mean_out / rstd_out [N, groups] or null. In-place safe.
template <class T>
void group_norm(T* out, opt<T>* MITHRIL_K_RESTRICT mean_out_or_null, opt<T>* MITHRIL_K_RESTRICT rstd_out_or_null,
                const T* in, const opt<T>* MITHRIL_K_RESTRICT weight_or_null,
                const opt<T>* MITHRIL_K_RESTRICT bias_or_null, int64_t N, int64_t C, int64_t HW, int64_t groups,
                double eps) {
    const int64_t Cg = C / groups;
    MITHRIL_K_PARFOR(N * C * HW >= kParallelWork)
    for (int64_t ng = 0; ng < N * groups; ++ng) {
        const int64_t g = ng % groups;
        const T* x = in + ng * Cg * HW;
        T* y = out + ng * Cg * HW;
        acc_t<T> mean, rstd;
        detail::mean_rstd(x, Cg * HW, eps, mean, rstd);
        for (int64_t cc = 0; cc < Cg; ++cc) {
            const int64_t c = g * Cg + cc;
            const acc_t<T> w = weight_or_null ? static_cast<acc_t<T>>(weight_or_null[c]) : 1;
            const acc_t<T> b = bias_or_null ? static_cast<acc_t<T>>(bias_or_null[c]) : 0;
            const T scale = static_cast<T>(w * rstd), shift = static_cast<T>(b - mean * w * rstd);
            for (int64_t i = 0; i < HW; ++i) y[cc * HW + i] = x[cc * HW + i] * scale + shift;
        }
        if (mean_out_or_null) mean_out_or_null[ng] = static_cast<T>(mean);
        if (rstd_out_or_null) rstd_out_or_null[ng] = static_cast<T>(rstd);
    }
}

// torch.nn.functional.rms_norm(in, [cols], weight, eps):
// out = in / sqrt(mean(in^2) + eps) * weight. in/out [rows, cols]; weight [cols]
// or null. In-place safe.
template <class T>
void rms_norm(T* out, const T* in, const opt<T>* MITHRIL_K_RESTRICT weight_or_null, int64_t rows, int64_t cols,
              double eps) {
    using A = acc_t<T>;
    MITHRIL_K_PARFOR(rows * cols >= kParallelWork)
    for (int64_t r = 0; r < rows; ++r) {
        const T* x = in + r * cols;
        T* y = out + r * cols;
        A lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 8 <= cols; i += 8)
            for (int j = 0; j < 8; ++j) lane[j] += static_cast<A>(x[i + j]) * static_cast<A>(x[i + j]);
        A ss = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
        for (; i < cols; ++i) ss += static_cast<A>(x[i]) * static_cast<A>(x[i]);
        const T s = static_cast<T>(1 / std::sqrt(ss / static_cast<A>(cols) + static_cast<A>(eps)));
        if (weight_or_null) {
            for (int64_t j = 0; j < cols; ++j) y[j] = x[j] * s * weight_or_null[j];
        } else {
            for (int64_t j = 0; j < cols; ++j) y[j] = x[j] * s;
        }
    }
}

// ---- backward ---------------------------------------------------------------
// The statistics are recomputed from x (a row, group or channel is re-read
// from cache, so x still crosses memory about once). Any gradient output may
// be null when nobody wants it; weight null means 1.

namespace detail {
inline constexpr int64_t kNormBlock = 64;  // columns summed together (stack accumulators)

// sum(g) and sum(g * (x - mean)) over n contiguous values, g = dy * w (w null: 1), 4 lanes each.
template <class T>
inline void dy_sums(const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                    const T* MITHRIL_K_RESTRICT w_or_null, int64_t n, acc_t<T> mean, acc_t<T>& s_g,
                    acc_t<T>& s_gx) {
    using A = acc_t<T>;
    A a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; ++j) {
            const A g = w_or_null ? static_cast<A>(dy[i + j]) * static_cast<A>(w_or_null[i + j])
                                  : static_cast<A>(dy[i + j]);
            a[j] += g;
            b[j] += g * (static_cast<A>(x[i + j]) - mean);
        }
    s_g = (a[0] + a[1]) + (a[2] + a[3]);
    s_gx = (b[0] + b[1]) + (b[2] + b[3]);
    for (; i < n; ++i) {
        const A g = w_or_null ? static_cast<A>(dy[i]) * static_cast<A>(w_or_null[i]) : static_cast<A>(dy[i]);
        s_g += g;
        s_gx += g * (static_cast<A>(x[i]) - mean);
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) for one normalized set of
// `count` values, written as dx = scale * g + cx * x + c0 (one vectorizable
// loop); s_g = sum(g), s_gx = sum(g * (x - mean)).
template <class T>
struct NormDx {
    T scale, cx, c0;
    NormDx(acc_t<T> mean, acc_t<T> rstd, acc_t<T> s_g, acc_t<T> s_gx, int64_t count) {
        using A = acc_t<T>;
        const A m_g = s_g / static_cast<A>(count), m_gx = s_gx * rstd * rstd / static_cast<A>(count);
        scale = static_cast<T>(rstd);
        cx = static_cast<T>(-rstd * m_gx);
        c0 = static_cast<T>(rstd * (mean * m_gx - m_g));
    }
};
}  // namespace detail

// Scratch elements layer_norm_backward needs: 2 * rows (row statistics).
inline size_t layer_norm_backward_scratch(int64_t rows) { return static_cast<size_t>(2 * rows); }

// Backward of layer_norm over [rows, cols]: from dy gives
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight and
// xhat = (x - mean) * rstd per row, dweight = sum over rows of dy * xhat and
// dbias = sum over rows of dy ([cols] each). dx, dweight, dbias may be null.
// One pass over the rows for dx (and the row statistics, kept in scratch), a
// second one over column blocks for dweight / dbias.
template <class T>
void layer_norm_backward(opt<T>* MITHRIL_K_RESTRICT dx_or_null, opt<T>* MITHRIL_K_RESTRICT dweight_or_null,
                         opt<T>* MITHRIL_K_RESTRICT dbias_or_null, const T* MITHRIL_K_RESTRICT dy,
                         const T* MITHRIL_K_RESTRICT x, const opt<T>* MITHRIL_K_RESTRICT weight_or_null, int64_t rows,
                         int64_t cols, double eps, opt<T>* MITHRIL_K_RESTRICT scratch) {
    using A = acc_t<T>;
    T* const mean_s = scratch;
    T* const rstd_s = scratch + rows;
    MITHRIL_K_PARFOR(rows * cols >= kParallelWork)
    for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + r * cols;
        const T* g = dy + r * cols;
        A mean, rstd;
        detail::mean_rstd(xr, cols, eps, mean, rstd);
        mean_s[r] = static_cast<T>(mean);
        rstd_s[r] = static_cast<T>(rstd);
        if (!dx_or_null) continue;
        A s_g, s_gx;
        detail::dy_sums(g, xr, weight_or_null, cols, mean, s_g, s_gx);
        const detail::NormDx<T> c(mean, rstd, s_g, s_gx, cols);
        T* d = dx_or_null + r * cols;
        if (weight_or_null) {
            for (int64_t i = 0; i < cols; ++i) d[i] = c.scale * g[i] * weight_or_null[i] + c.cx * xr[i] + c.c0;
        } else {
            for (int64_t i = 0; i < cols; ++i) d[i] = c.scale * g[i] + c.cx * xr[i] + c.c0;
        }
    }
    if (!dweight_or_null && !dbias_or_null) return;
    const int64_t nb = (cols + detail::kNormBlock - 1) / detail::kNormBlock;
    MITHRIL_K_PARFOR(rows * cols >= kParallelWork)
    for (int64_t blk = 0; blk < nb; ++blk) {
        const int64_t c0 = blk * detail::kNormBlock, bn = std::min(detail::kNormBlock, cols - c0);
        A sw[detail::kNormBlock], sb[detail::kNormBlock];
        for (int64_t i = 0; i < bn; ++i) sw[i] = sb[i] = 0;
        for (int64_t r = 0; r < rows; ++r) {
            const T* g = dy + r * cols + c0;
            const T* xr = x + r * cols + c0;
            const T m = mean_s[r], s = rstd_s[r];
            for (int64_t i = 0; i < bn; ++i) {
                sw[i] += static_cast<A>(g[i]) * static_cast<A>((xr[i] - m) * s);
                sb[i] += static_cast<A>(g[i]);
            }
        }
        if (dweight_or_null)
            for (int64_t i = 0; i < bn; ++i) dweight_or_null[c0 + i] = static_cast<T>(sw[i]);
        if (dbias_or_null)
            for (int64_t i = 0; i < bn; ++i) dbias_or_null[c0 + i] = static_cast<T>(sb[i]);
    }
}

// Scratch elements group_norm_backward needs: 2 * N * C (per-sample channel sums).
inline size_t group_norm_backward_scratch(int64_t N, int64_t C) { return static_cast<size_t>(2 * N * C); }

// Backward of group_norm over [N, C, HW] with `groups` groups: per (n, group)
// of M = C/groups * HW values, dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
// with g = dy * weight[c]; dweight[c] = sum over n, HW of dy * xhat and
// dbias[c] = sum of dy. dx, dweight, dbias may be null. The per-(n, c) sums go
// through scratch, then one short pass over N gives dweight / dbias.
template <class T>
void group_norm_backward(opt<T>* MITHRIL_K_RESTRICT dx_or_null, opt<T>* MITHRIL_K_RESTRICT dweight_or_null,
                         opt<T>* MITHRIL_K_RESTRICT dbias_or_null, const T* MITHRIL_K_RESTRICT dy,
                         const T* MITHRIL_K_RESTRICT x, const opt<T>* MITHRIL_K_RESTRICT weight_or_null, int64_t N,
                         int64_t C, int64_t HW, int64_t groups, double eps, opt<T>* MITHRIL_K_RESTRICT scratch) {
    using A = acc_t<T>;
    const int64_t Cg = C / groups;
    T* const dw_nc = scratch;      // [N, C]: sum over HW of dy * xhat
    T* const db_nc = scratch + N * C;  // [N, C]: sum over HW of dy
    MITHRIL_K_PARFOR(N * C * HW >= kParallelWork)
    for (int64_t ng = 0; ng < N * groups; ++ng) {
        const int64_t g0 = (ng % groups) * Cg;
        const T* xg = x + ng * Cg * HW;
        const T* dg = dy + ng * Cg * HW;
        A mean, rstd;
        detail::mean_rstd(xg, Cg * HW, eps, mean, rstd);
        A s_g = 0, s_gx = 0;  // over the group, of g = dy * weight[c]
        for (int64_t cc = 0; cc < Cg; ++cc) {
            A b, a;  // sum dy, sum dy * (x - mean) over this channel
            detail::dy_sums<T>(dg + cc * HW, xg + cc * HW, nullptr, HW, mean, b, a);
            const A w = weight_or_null ? static_cast<A>(weight_or_null[g0 + cc]) : 1;
            s_g += w * b;
            s_gx += w * a;
            dw_nc[ng * Cg + cc] = static_cast<T>(a * rstd);
            db_nc[ng * Cg + cc] = static_cast<T>(b);
        }
        if (!dx_or_null) continue;
        const detail::NormDx<T> c(mean, rstd, s_g, s_gx, Cg * HW);
        for (int64_t cc = 0; cc < Cg; ++cc) {
            const T ws = weight_or_null ? static_cast<T>(weight_or_null[g0 + cc] * c.scale) : c.scale;
            const T* xc = xg + cc * HW;
            const T* gc = dg + cc * HW;
            T* d = dx_or_null + ng * Cg * HW + cc * HW;
            for (int64_t i = 0; i < HW; ++i) d[i] = ws * gc[i] + c.cx * xc[i] + c.c0;
        }
    }
    if (!dweight_or_null && !dbias_or_null) return;
    for (int64_t c = 0; c < C; ++c) {
        A sw = 0, sb = 0;
        for (int64_t n = 0; n < N; ++n) {
            sw += static_cast<A>(dw_nc[n * C + c]);
            sb += static_cast<A>(db_nc[n * C + c]);
        }
        if (dweight_or_null) dweight_or_null[c] = static_cast<T>(sw);
        if (dbias_or_null) dbias_or_null[c] = static_cast<T>(sb);
    }
}

// Backward of batch_norm_training (the batch statistics over N and HW, through
// which the gradient flows, as torch's train-mode backward): per channel
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight[c],
// dweight[c] = sum dy * xhat, dbias[c] = sum dy. dx, dweight, dbias may be null.
// The running statistics play no part. [N, C, HW] layout.
template <class T>
void batch_norm_training_backward(opt<T>* MITHRIL_K_RESTRICT dx_or_null, opt<T>* MITHRIL_K_RESTRICT dweight_or_null,
                                  opt<T>* MITHRIL_K_RESTRICT dbias_or_null, const T* MITHRIL_K_RESTRICT dy,
                                  const T* MITHRIL_K_RESTRICT x, const opt<T>* MITHRIL_K_RESTRICT weight_or_null,
                                  int64_t N, int64_t C, int64_t HW, double eps) {
    using A = acc_t<T>;
    const int64_t count = N * HW;
    if (count == 0) return;
    MITHRIL_K_PARFOR(N * C * HW >= kParallelWork)
    for (int64_t c = 0; c < C; ++c) {
        A s = 0;
        for (int64_t n = 0; n < N; ++n) s += sum_contig(x + (n * C + c) * HW, HW);
        const A mean = s / static_cast<A>(count);
        // The variance and dy_sums' two sums in one pass over x and dy (the same
        // four lanes and tail as the separate loops, so the same roundings).
        A ss = 0, s_dy = 0, s_dyx = 0;
        for (int64_t n = 0; n < N; ++n) {
            const T* xc = x + (n * C + c) * HW;
            const T* gc = dy + (n * C + c) * HW;
            A lane[4] = {0, 0, 0, 0}, ga[4] = {0, 0, 0, 0}, gb[4] = {0, 0, 0, 0};
            int64_t i = 0;
            for (; i + 4 <= HW; i += 4)
                for (int j = 0; j < 4; ++j) {
                    const A d = static_cast<A>(xc[i + j]) - mean, g = static_cast<A>(gc[i + j]);
                    lane[j] += d * d;
                    ga[j] += g;
                    gb[j] += g * d;
                }
            ss += (lane[0] + lane[1]) + (lane[2] + lane[3]);
            A b = (ga[0] + ga[1]) + (ga[2] + ga[3]), a = (gb[0] + gb[1]) + (gb[2] + gb[3]);
            for (; i < HW; ++i) {
                const A d = static_cast<A>(xc[i]) - mean, g = static_cast<A>(gc[i]);
                ss += d * d;
                b += g;
                a += g * d;
            }
            s_dy += b;
            s_dyx += a;
        }
        const A rstd = 1 / std::sqrt(ss / static_cast<A>(count) + static_cast<A>(eps));
        if (dweight_or_null) dweight_or_null[c] = static_cast<T>(s_dyx * rstd);
        if (dbias_or_null) dbias_or_null[c] = static_cast<T>(s_dy);
        if (!dx_or_null) continue;
        const A w = weight_or_null ? static_cast<A>(weight_or_null[c]) : 1;
        const detail::NormDx<T> k(mean, rstd, w * s_dy, w * s_dyx, count);
        const T ws = static_cast<T>(w * rstd);
        for (int64_t n = 0; n < N; ++n) {
            const T* xc = x + (n * C + c) * HW;
            const T* g = dy + (n * C + c) * HW;
            T* d = dx_or_null + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; ++i) d[i] = ws * g[i] + k.cx * xc[i] + k.c0;
        }
    }
}

// Backward of batch_norm_inference (the running statistics are constants):
// dx = dy * weight[c] / sqrt(var[c] + eps), dweight[c] = sum dy * (x - mean[c])
// / sqrt(var[c] + eps), dbias[c] = sum dy. dx, dweight, dbias may be null.
template <class T>
void batch_norm_inference_backward(opt<T>* MITHRIL_K_RESTRICT dx_or_null, opt<T>* MITHRIL_K_RESTRICT dweight_or_null,
                                   opt<T>* MITHRIL_K_RESTRICT dbias_or_null, const T* MITHRIL_K_RESTRICT dy,
                                   const T* MITHRIL_K_RESTRICT x, const T* MITHRIL_K_RESTRICT mean,
                                   const T* MITHRIL_K_RESTRICT var, const opt<T>* MITHRIL_K_RESTRICT weight_or_null,
                                   int64_t N, int64_t C, int64_t HW, double eps) {
    using A = acc_t<T>;
    MITHRIL_K_PARFOR(N * C * HW >= kParallelWork)
    for (int64_t c = 0; c < C; ++c) {
        const A rstd = 1 / std::sqrt(static_cast<A>(var[c]) + static_cast<A>(eps));
        const A w = weight_or_null ? static_cast<A>(weight_or_null[c]) : 1;
        const T ws = static_cast<T>(w * rstd);
        A s_dy = 0, s_dyx = 0;
        for (int64_t n = 0; n < N; ++n) {
            const T* g = dy + (n * C + c) * HW;
            if (dweight_or_null || dbias_or_null) {
                A b, a;
                detail::dy_sums<T>(g, x + (n * C + c) * HW, nullptr, HW, static_cast<A>(mean[c]), b, a);
                s_dy += b;
                s_dyx += a;
            }
            if (dx_or_null) {
                T* d = dx_or_null + (n * C + c) * HW;
                for (int64_t i = 0; i < HW; ++i) d[i] = g[i] * ws;
            }
        }
        if (dweight_or_null) dweight_or_null[c] = static_cast<T>(s_dyx * rstd);
        if (dbias_or_null) dbias_or_null[c] = static_cast<T>(s_dy);
    }
}

// ---- compiled once, into the runtime library (src/kernels_nn.cpp) -------------------------------
MITHRIL_K_INSTANCE(void batch_norm_inference<float>(float*, const float*, const float*, const float*, const float*,
                                                    const float*, int64_t, int64_t, int64_t, double))
MITHRIL_K_INSTANCE(void batch_norm_training<float>(float*, float*, float*, float*, float*, const float*, const float*,
                                                   const float*, int64_t, int64_t, int64_t, double, double))
MITHRIL_K_INSTANCE(void layer_norm<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                          int64_t, double))
MITHRIL_K_INSTANCE(void group_norm<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                          int64_t, int64_t, int64_t, double))
MITHRIL_K_INSTANCE(void rms_norm<float>(float*, const float*, const float*, int64_t, int64_t, double))
MITHRIL_K_INSTANCE(void layer_norm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                                   int64_t, int64_t, double, float*))
MITHRIL_K_INSTANCE(void group_norm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                                   int64_t, int64_t, int64_t, int64_t, double, float*))
MITHRIL_K_INSTANCE(void batch_norm_training_backward<float>(float*, float*, float*, const float*, const float*,
                                                            const float*, int64_t, int64_t, int64_t, double))
MITHRIL_K_INSTANCE(void batch_norm_inference_backward<float>(float*, float*, float*, const float*, const float*,
                                                             const float*, const float*, const float*, int64_t, int64_t,
                                                             int64_t, double))

}  // namespace mithril::rt::k
