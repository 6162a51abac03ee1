// kernels/norm.h - batch / layer / group / RMS normalisation (forward).
// Statistics are accumulated in double for float (acc_t), two-pass (mean,
// then squared deviations). All are in-place safe (out == in).
#pragma once

#include "mithril/rt/kernels/common.h"

namespace mithril::rt::k {

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
            const acc_t<T> rstd = 1 / std::sqrt(static_cast<acc_t<T>>(var[c]) + static_cast<acc_t<T>>(eps));
            const acc_t<T> w = weight_or_null ? static_cast<acc_t<T>>(weight_or_null[c]) : 1;
            const acc_t<T> b = bias_or_null ? static_cast<acc_t<T>>(bias_or_null[c]) : 0;
            const T scale = static_cast<T>(w * rstd);
            const T shift = static_cast<T>(b - static_cast<acc_t<T>>(mean[c]) * w * rstd);
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

}  // namespace mithril::rt::k
