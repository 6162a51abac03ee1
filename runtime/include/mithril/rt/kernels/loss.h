// kernels/loss.h - loss functions (forward), PyTorch semantics.
// Class-index losses take logits/log-probs [N, C, inner] (inner = product of
// the extra dims d1.., 1 for [N, C]) and targets [N, inner]. `out` is one
// value for Reduction::Mean/Sum/BatchMean and [N, inner] (or the elementwise
// shape) for Reduction::None.
#pragma once

#include "mithril/rt/kernels/common.h"

namespace mithril::rt::k {

enum class Reduction { None, Mean, Sum, BatchMean /* kl_div only: sum / batch */ };

namespace detail {
template <class T>
inline void finish_elementwise(T* out, acc_t<T> sum, int64_t n, Reduction r) {
    if (r == Reduction::Mean) out[0] = static_cast<T>(sum / static_cast<acc_t<T>>(n));
    else if (r == Reduction::Sum) out[0] = static_cast<T>(sum);
}
}  // namespace detail

// torch.nn.functional.nll_loss(logp, target, weight, ignore_index, reduction):
// loss[n, i] = -weight[t] * logp[n, t, i] with t = target[n, i] (0 when t ==
// ignore_index); Mean divides by the sum of weight[t] over non-ignored
// targets. weight [C] or null. A target outside [0, C) that is not
// ignore_index throws Error. BatchMean is not allowed.
template <class T, class I>
void nll_loss(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT logp, const I* MITHRIL_K_RESTRICT target,
              const opt<T>* MITHRIL_K_RESTRICT weight_or_null, int64_t N, int64_t C, int64_t inner,
              int64_t ignore_index, Reduction reduction) {
    using A = acc_t<T>;
    A sum = 0, wsum = 0;
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < inner; ++i) {
            const int64_t t = static_cast<int64_t>(target[n * inner + i]);
            A l = 0;
            if (t != ignore_index) {
                if (t < 0 || t >= C) index_error("nll_loss target", t, C);
                const A w = weight_or_null ? static_cast<A>(weight_or_null[t]) : 1;
                l = -w * static_cast<A>(logp[(n * C + t) * inner + i]);
                wsum += w;
            }
            if (reduction == Reduction::None) out[n * inner + i] = static_cast<T>(l);
            sum += l;
        }
    if (reduction == Reduction::Mean) out[0] = static_cast<T>(sum / wsum);
    else if (reduction == Reduction::Sum) out[0] = static_cast<T>(sum);
}

// torch.nn.functional.cross_entropy(logits, target, weight, ignore_index,
// reduction, label_smoothing) with class-index targets:
// logp = log_softmax(logits, dim=1);
// loss = (1-ls) * nll_loss(logp, target, weight) + ls/C * smooth, where
// smooth[n, i] = -sum_c weight[c] * logp[n, c, i] (0 for ignored targets) and
// Mean divides both parts by sum of weight[target] over non-ignored targets.
template <class T, class I>
void cross_entropy(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT logits, const I* MITHRIL_K_RESTRICT target,
                   const opt<T>* MITHRIL_K_RESTRICT weight_or_null, int64_t N, int64_t C, int64_t inner,
                   int64_t ignore_index, double label_smoothing, Reduction reduction) {
    using A = acc_t<T>;
    const A ls = static_cast<A>(label_smoothing);
    A sum = 0, wsum = 0;
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < inner; ++i) {
            const int64_t t = static_cast<int64_t>(target[n * inner + i]);
            A l = 0;
            if (t != ignore_index) {
                if (t < 0 || t >= C) index_error("cross_entropy target", t, C);
                const T* x = logits + n * C * inner + i;
                T m = neg_inf<T>();
                for (int64_t c = 0; c < C; ++c) m = (x[c * inner] > m || is_nan(x[c * inner])) ? x[c * inner] : m;
                A s = 0;
                for (int64_t c = 0; c < C; ++c) s += std::exp(static_cast<A>(x[c * inner]) - static_cast<A>(m));
                const A lse = static_cast<A>(m) + std::log(s);
                const A w = weight_or_null ? static_cast<A>(weight_or_null[t]) : 1;
                l = -(1 - ls) * w * (static_cast<A>(x[t * inner]) - lse);
                if (ls != 0) {
                    A smooth = 0;
                    for (int64_t c = 0; c < C; ++c)
                        smooth -= (weight_or_null ? static_cast<A>(weight_or_null[c]) : 1) *
                                  (static_cast<A>(x[c * inner]) - lse);
                    l += ls / static_cast<A>(C) * smooth;
                }
                wsum += w;
            }
            if (reduction == Reduction::None) out[n * inner + i] = static_cast<T>(l);
            sum += l;
        }
    if (reduction == Reduction::Mean) out[0] = static_cast<T>(sum / wsum);
    else if (reduction == Reduction::Sum) out[0] = static_cast<T>(sum);
}

// torch.nn.functional.cross_entropy(logits, probs, weight, reduction,
// label_smoothing) with class-probability targets (same shape as logits):
// p' = p*(1-ls) + ls/C; loss[n, i] = -sum_c weight[c] * p'[n,c,i] * logp[n,c,i];
// Mean divides by N*inner.
template <class T>
void cross_entropy_probs(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT logits,
                         const T* MITHRIL_K_RESTRICT probs, const opt<T>* MITHRIL_K_RESTRICT weight_or_null, int64_t N,
                         int64_t C, int64_t inner, double label_smoothing, Reduction reduction) {
    using A = acc_t<T>;
    const A ls = static_cast<A>(label_smoothing);
    A sum = 0;
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < inner; ++i) {
            const T* x = logits + n * C * inner + i;
            const T* p = probs + n * C * inner + i;
            T m = neg_inf<T>();
            for (int64_t c = 0; c < C; ++c) m = (x[c * inner] > m || is_nan(x[c * inner])) ? x[c * inner] : m;
            A s = 0;
            for (int64_t c = 0; c < C; ++c) s += std::exp(static_cast<A>(x[c * inner]) - static_cast<A>(m));
            const A lse = static_cast<A>(m) + std::log(s);
            A l = 0;
            for (int64_t c = 0; c < C; ++c) {
                const A w = weight_or_null ? static_cast<A>(weight_or_null[c]) : 1;
                const A pt = static_cast<A>(p[c * inner]) * (1 - ls) + ls / static_cast<A>(C);
                l -= w * pt * (static_cast<A>(x[c * inner]) - lse);
            }
            if (reduction == Reduction::None) out[n * inner + i] = static_cast<T>(l);
            sum += l;
        }
    detail::finish_elementwise<T>(out, sum, N * inner, reduction);
}

// torch.nn.functional.binary_cross_entropy_with_logits(x, y, weight, reduction,
// pos_weight), the stable form:
// loss = (1 - y) * x + (1 + (pw - 1) * y) * (log1p(exp(-|x|)) + max(-x, 0)), times weight.
// x, y, weight_or_null: [n] (weight already broadcast by the caller);
// pos_weight_or_null [C] broadcast along the last dim (n % C == 0).
template <class T>
void bce_with_logits(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT x, const T* MITHRIL_K_RESTRICT y,
                     const opt<T>* MITHRIL_K_RESTRICT weight_or_null,
                     const opt<T>* MITHRIL_K_RESTRICT pos_weight_or_null, int64_t n, int64_t C, Reduction reduction) {
    using A = acc_t<T>;
    A sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        const A xi = static_cast<A>(x[i]), yi = static_cast<A>(y[i]);
        const A sp = std::log1p(std::exp(-std::fabs(xi))) + std::max<A>(-xi, 0);  // log(1 + exp(-x))
        const A lw = pos_weight_or_null ? 1 + (static_cast<A>(pos_weight_or_null[i % C]) - 1) * yi : 1;
        A l = (1 - yi) * xi + lw * sp;
        if (weight_or_null) l *= static_cast<A>(weight_or_null[i]);
        if (reduction == Reduction::None) out[i] = static_cast<T>(l);
        sum += l;
    }
    detail::finish_elementwise<T>(out, sum, n, reduction);
}

namespace detail {
template <class T, class F>
void pointwise_loss(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT x, const T* MITHRIL_K_RESTRICT y, int64_t n,
                    Reduction reduction, F f) {
    using A = acc_t<T>;
    if (reduction == Reduction::None) {
        for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(f(static_cast<A>(x[i]), static_cast<A>(y[i])));
        return;
    }
    A lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) lane[j] += f(static_cast<A>(x[i + j]), static_cast<A>(y[i + j]));
    A s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; i < n; ++i) s += f(static_cast<A>(x[i]), static_cast<A>(y[i]));
    finish_elementwise<T>(out, s, n, reduction);
}
}  // namespace detail

// torch.nn.functional.mse_loss(x, y, reduction): (x - y)^2. x, y [n].
template <class T>
void mse_loss(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT x, const T* MITHRIL_K_RESTRICT y, int64_t n,
              Reduction reduction) {
    detail::pointwise_loss(out, x, y, n, reduction, [](auto a, auto b) { return (a - b) * (a - b); });
}

// torch.nn.functional.l1_loss(x, y, reduction): |x - y|.
template <class T>
void l1_loss(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT x, const T* MITHRIL_K_RESTRICT y, int64_t n,
             Reduction reduction) {
    detail::pointwise_loss(out, x, y, n, reduction, [](auto a, auto b) { return std::fabs(a - b); });
}

// torch.nn.functional.huber_loss(x, y, reduction, delta):
// 0.5 d^2 if |d| < delta else delta * (|d| - 0.5 delta), d = x - y.
template <class T>
void huber_loss(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT x, const T* MITHRIL_K_RESTRICT y, int64_t n,
                double delta, Reduction reduction) {
    using A = acc_t<T>;
    const A dl = static_cast<A>(delta);
    detail::pointwise_loss(out, x, y, n, reduction, [dl](A a, A b) {
        const A d = std::fabs(a - b);
        return d < dl ? A(0.5) * d * d : dl * (d - A(0.5) * dl);
    });
}

// torch.nn.functional.smooth_l1_loss(x, y, reduction, beta):
// 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta (beta == 0: |d|).
template <class T>
void smooth_l1_loss(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT x, const T* MITHRIL_K_RESTRICT y, int64_t n,
                    double beta, Reduction reduction) {
    using A = acc_t<T>;
    const A b = static_cast<A>(beta);
    detail::pointwise_loss(out, x, y, n, reduction, [b](A u, A v) {
        const A d = std::fabs(u - v);
        return d < b ? A(0.5) * d * d / b : d - A(0.5) * b;
    });
}

// torch.nn.functional.kl_div(input, target, reduction, log_target): input is
// log-probabilities; pointwise target * (log(target) - input) (0 where
// target == 0, as xlogy), or exp(target) * (target - input) with log_target.
// BatchMean divides the sum by `batch` (the size of dim 0). x, y [n].
template <class T>
void kl_div(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT input, const T* MITHRIL_K_RESTRICT target,
            int64_t n, int64_t batch, bool log_target, Reduction reduction) {
    using A = acc_t<T>;
    A sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        const A x = static_cast<A>(input[i]), t = static_cast<A>(target[i]);
        const A l = log_target ? std::exp(t) * (t - x) : (t == 0 ? A(0) : t * std::log(t)) - t * x;
        if (reduction == Reduction::None) out[i] = static_cast<T>(l);
        sum += l;
    }
    if (reduction == Reduction::BatchMean) out[0] = static_cast<T>(sum / static_cast<A>(batch));
    else detail::finish_elementwise<T>(out, sum, n, reduction);
}

}  // namespace mithril::rt::k
