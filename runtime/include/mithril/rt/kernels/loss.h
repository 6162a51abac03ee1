// kernels/loss.h - loss functions and their gradients, PyTorch semantics.
// Class-index losses take logits/log-probs [N, C, inner] (inner = product of
// the extra dims d1.., 1 for [N, C]) and targets [N, inner]. `out` is one
// value for Reduction::Mean/Sum/BatchMean and [N, inner] (or the elementwise
// shape) for Reduction::None.
//
// Gradients (`*_backward`): `dy` is dL/d(loss), one value for Mean/Sum/
// BatchMean and one per loss for None; `dx` has the shape of the input (or
// target) it is the gradient of.
#pragma once

#include "mithril/rt/kernels/common.h"
#include "mithril/rt/kernels/scalar.h"

namespace mithril::rt::k {

enum class Reduction { None, Mean, Sum, BatchMean /* kl_div only: sum / batch */ };

namespace detail {
// sum over c < n of e^(x[c] - m) for contiguous x, in acc_t<T>: the exponentials in T through
// exp_ (vectorized for float) into `out` when given (the backward pass keeps them), summed over
// 8 lanes (sum_contig), or without `out` straight into the 8 lanes.
// GCC 12 warns (-Waggressive-loop-optimizations) about an iteration near 2^62 of the lane loop
// once it is inlined with a constant class count; no real n gets there.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Waggressive-loop-optimizations"
#endif
template <class T>
inline acc_t<T> sum_exp_contig(const T* MITHRIL_K_RESTRICT x, T m, int64_t n, T* MITHRIL_K_RESTRICT out) {
    if (out) {
        for (int64_t c = 0; c < n; ++c) out[c] = exp_(x[c] - m);
        return sum_contig(out, n);
    }
    using A = acc_t<T>;
    A lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int j = 0; j < 8; ++j) lane[j] += static_cast<A>(exp_(x[c + j] - m));
    A s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; c < n; ++c) s += static_cast<A>(exp_(x[c] - m));
    return s;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
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
                if (inner == 1 && !is_nan(m) && m != neg_inf<T>()) {
                    s = detail::sum_exp_contig(x, m, C, static_cast<T*>(nullptr));
                } else {
                    for (int64_t c = 0; c < C; ++c) s += std::exp(static_cast<A>(x[c * inner]) - static_cast<A>(m));
                }
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
// (The same GCC 12 false positive as sum_exp_contig's, once inlined with a constant n.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Waggressive-loop-optimizations"
#endif
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
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
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

// ---- gradients ---------------------------------------------------------------

namespace detail {
// dL/d(loss[i]): dy[0] times the reduction's factor, or dy[i] for None.
template <class T>
struct LossGrad {
    const T* dy;
    acc_t<T> scale;
    bool per_loss;
    acc_t<T> operator()(int64_t i) const { return per_loss ? static_cast<acc_t<T>>(dy[i]) : scale; }
};
template <class T>
LossGrad<T> loss_grad(const T* dy, Reduction r, acc_t<T> mean_count) {
    using A = acc_t<T>;
    if (r == Reduction::None) return {dy, A(0), true};
    const A g = static_cast<A>(dy[0]);
    return {dy, r == Reduction::Sum ? g : g / mean_count, false};
}

// The number of non-ignored class-index targets (Mean's denominator); checks them against C first,
// so the parallel loops that follow never throw.
template <class I>
int64_t count_targets(const char* kernel, const I* target, int64_t n, int64_t C, int64_t ignore_index) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t t = static_cast<int64_t>(target[i]);
        if (t == ignore_index) continue;
        if (t < 0 || t >= C) index_error(kernel, t, C);
        ++k;
    }
    return k;
}
}  // namespace detail

// Gradient of cross_entropy (class-index targets) w.r.t. the logits:
// dx[n, c, i] = g(n, i) * (softmax(x)[c] - (1-ls) [c == t] - ls/C), 0 for ignored targets.
// One softmax per (n, i): e^(x - max) goes into dx, then is normalized and shifted in place.
template <class T, class I>
void cross_entropy_backward(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT logits,
                            const I* MITHRIL_K_RESTRICT target, int64_t N, int64_t C, int64_t inner,
                            int64_t ignore_index, double label_smoothing, Reduction reduction) {
    using A = acc_t<T>;
    const A ls = static_cast<A>(label_smoothing), off = ls / static_cast<A>(C);
    const auto g = detail::loss_grad(
        dy, reduction, static_cast<A>(detail::count_targets("cross_entropy target", target, N * inner, C, ignore_index)));
    MITHRIL_K_PARFOR(N * C * inner >= kParallelWork)
    for (int64_t r = 0; r < N * inner; ++r) {
        const int64_t n = r / inner, i = r % inner;
        const T* x = logits + n * C * inner + i;
        T* d = dx + n * C * inner + i;
        const int64_t t = static_cast<int64_t>(target[r]);
        if (t == ignore_index) {
            for (int64_t c = 0; c < C; ++c) d[c * inner] = T(0);
            continue;
        }
        T m = neg_inf<T>();
        for (int64_t c = 0; c < C; ++c) m = (x[c * inner] > m || is_nan(x[c * inner])) ? x[c * inner] : m;
        A s = 0;
        if (inner == 1 && !is_nan(m) && m != neg_inf<T>()) {
            s = detail::sum_exp_contig(x, m, C, d);
        } else {
            for (int64_t c = 0; c < C; ++c) {
                const A e = std::exp(static_cast<A>(x[c * inner]) - static_cast<A>(m));
                d[c * inner] = static_cast<T>(e);
                s += e;
            }
        }
        const A gr = g(r), inv = 1 / s;
        for (int64_t c = 0; c < C; ++c) d[c * inner] = static_cast<T>(gr * (static_cast<A>(d[c * inner]) * inv - off));
        d[t * inner] = static_cast<T>(static_cast<A>(d[t * inner]) - gr * (1 - ls));
    }
}

// Gradient of cross_entropy with class-probability targets, p' = p (1-ls) + ls/C:
// w.r.t. the logits dx[c] = g * (softmax(x)[c] * sum_c p'[c] - p'[c]);
// w.r.t. the probabilities (wrt_target) dp[c] = -g * (1-ls) * log_softmax(x)[c]. Mean: g / (N*inner).
template <class T>
void cross_entropy_probs_backward(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy,
                                  const T* MITHRIL_K_RESTRICT logits, const T* MITHRIL_K_RESTRICT probs, int64_t N,
                                  int64_t C, int64_t inner, double label_smoothing, Reduction reduction,
                                  bool wrt_target) {
    using A = acc_t<T>;
    const A ls = static_cast<A>(label_smoothing), off = ls / static_cast<A>(C);
    const auto g = detail::loss_grad(dy, reduction, static_cast<A>(N * inner));
    MITHRIL_K_PARFOR(N * C * inner >= kParallelWork)
    for (int64_t r = 0; r < N * inner; ++r) {
        const int64_t n = r / inner, i = r % inner;
        const T* x = logits + n * C * inner + i;
        const T* p = probs + n * C * inner + i;
        T* d = dx + n * C * inner + i;
        T m = neg_inf<T>();
        for (int64_t c = 0; c < C; ++c) m = (x[c * inner] > m || is_nan(x[c * inner])) ? x[c * inner] : m;
        A s = 0, psum = 0;
        for (int64_t c = 0; c < C; ++c) {
            s += std::exp(static_cast<A>(x[c * inner]) - static_cast<A>(m));
            psum += static_cast<A>(p[c * inner]);
        }
        const A gr = g(r);
        if (wrt_target) {
            const A lse = static_cast<A>(m) + std::log(s);
            for (int64_t c = 0; c < C; ++c)
                d[c * inner] = static_cast<T>(-gr * (1 - ls) * (static_cast<A>(x[c * inner]) - lse));
            continue;
        }
        psum = psum * (1 - ls) + ls;  // sum of p'
        const A inv = 1 / s;
        for (int64_t c = 0; c < C; ++c) {
            const A sm = std::exp(static_cast<A>(x[c * inner]) - static_cast<A>(m)) * inv;
            const A pt = static_cast<A>(p[c * inner]) * (1 - ls) + off;
            d[c * inner] = static_cast<T>(gr * (sm * psum - pt));
        }
    }
}

// Gradient of nll_loss w.r.t. the log-probabilities: -g(n, i) at [n, target, i], 0 elsewhere
// (and for ignored targets). Mean: g / (number of non-ignored targets).
template <class T, class I>
void nll_loss_backward(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const I* MITHRIL_K_RESTRICT target,
                       int64_t N, int64_t C, int64_t inner, int64_t ignore_index, Reduction reduction) {
    using A = acc_t<T>;
    const auto g = detail::loss_grad(
        dy, reduction, static_cast<A>(detail::count_targets("nll_loss target", target, N * inner, C, ignore_index)));
    std::fill(dx, dx + N * C * inner, T(0));
    for (int64_t r = 0; r < N * inner; ++r) {
        const int64_t t = static_cast<int64_t>(target[r]);
        if (t == ignore_index) continue;
        dx[(r / inner * C + t) * inner + r % inner] = static_cast<T>(-g(r));
    }
}

namespace detail {
// d[i] = g(i) * f(x[i], y[i]) for the pointwise losses; `count` is Mean's denominator.
template <class T, class F>
void pointwise_loss_backward(T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                             const T* MITHRIL_K_RESTRICT y, int64_t n, int64_t count, Reduction reduction, F f) {
    using A = acc_t<T>;
    const auto g = loss_grad(dy, reduction, static_cast<A>(count));
    MITHRIL_K_PARFOR(n >= kParallelWork)
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(g(i) * f(static_cast<A>(x[i]), static_cast<A>(y[i])));
}
}  // namespace detail

// Gradient of binary_cross_entropy_with_logits: w.r.t. x, g * (sigmoid(x) - y); w.r.t. y, -g * x.
template <class T>
void bce_with_logits_backward(T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                              const T* MITHRIL_K_RESTRICT y, int64_t n, Reduction reduction, bool wrt_target) {
    using A = acc_t<T>;
    if (wrt_target) {
        detail::pointwise_loss_backward(d, dy, x, y, n, n, reduction, [](A a, A) { return -a; });
        return;
    }
    detail::pointwise_loss_backward(d, dy, x, y, n, n, reduction, [](A a, A b) {
        const A e = std::exp(-std::fabs(a));  // sigmoid without overflow
        return (a >= 0 ? 1 / (1 + e) : e / (1 + e)) - b;
    });
}

// Gradient of mse_loss: w.r.t. x, g * 2 (x - y); w.r.t. y, the negative.
template <class T>
void mse_loss_backward(T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                       const T* MITHRIL_K_RESTRICT y, int64_t n, Reduction reduction, bool wrt_target) {
    using A = acc_t<T>;
    const A s = wrt_target ? -2 : 2;
    detail::pointwise_loss_backward(d, dy, x, y, n, n, reduction, [s](A a, A b) { return s * (a - b); });
}

// Gradient of l1_loss: g * sign(x - y) (0 where x == y, as torch); w.r.t. y, the negative.
template <class T>
void l1_loss_backward(T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                      const T* MITHRIL_K_RESTRICT y, int64_t n, Reduction reduction, bool wrt_target) {
    using A = acc_t<T>;
    const A s = wrt_target ? -1 : 1;
    detail::pointwise_loss_backward(d, dy, x, y, n, n, reduction,
                                    [s](A a, A b) { return s * static_cast<A>((b < a) - (a < b)); });
}

// Gradient of huber_loss: g * clamp(x - y, -delta, delta); w.r.t. y, the negative.
template <class T>
void huber_loss_backward(T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT x,
                         const T* MITHRIL_K_RESTRICT y, int64_t n, double delta, Reduction reduction, bool wrt_target) {
    using A = acc_t<T>;
    const A s = wrt_target ? -1 : 1, dl = static_cast<A>(delta);
    detail::pointwise_loss_backward(d, dy, x, y, n, n, reduction,
                                    [s, dl](A a, A b) { return s * std::clamp(a - b, -dl, dl); });
}

// Gradient of kl_div: w.r.t. the input, -g * t (log_target: -g * e^t); w.r.t. the target,
// g * (log t + 1 - x) (log_target: g * e^t (t - x + 1)). BatchMean divides by `batch`.
template <class T>
void kl_div_backward(T* MITHRIL_K_RESTRICT d, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT input,
                     const T* MITHRIL_K_RESTRICT target, int64_t n, int64_t batch, bool log_target, Reduction reduction,
                     bool wrt_target) {
    using A = acc_t<T>;
    const int64_t count = reduction == Reduction::BatchMean ? batch : n;
    const Reduction r = reduction == Reduction::BatchMean ? Reduction::Mean : reduction;
    if (!wrt_target) {
        if (log_target) detail::pointwise_loss_backward(d, dy, input, target, n, count, r, [](A, A t) { return -std::exp(t); });
        else detail::pointwise_loss_backward(d, dy, input, target, n, count, r, [](A, A t) { return -t; });
    } else {
        if (log_target)
            detail::pointwise_loss_backward(d, dy, input, target, n, count, r,
                                            [](A x, A t) { return std::exp(t) * (t - x + 1); });
        else
            detail::pointwise_loss_backward(d, dy, input, target, n, count, r,
                                            [](A x, A t) { return std::log(t) + 1 - x; });
    }
}

// ---- compiled once, into the runtime library (src/kernels_nn.cpp) -------------------------------
MITHRIL_K_INSTANCE(void cross_entropy<float, int64_t>(float*, const float*, const int64_t*, const float*, int64_t,
                                                      int64_t, int64_t, int64_t, double, Reduction))
MITHRIL_K_INSTANCE(void cross_entropy_backward<float, int64_t>(float*, const float*, const float*, const int64_t*,
                                                               int64_t, int64_t, int64_t, int64_t, double, Reduction))
MITHRIL_K_INSTANCE(void nll_loss<float, int64_t>(float*, const float*, const int64_t*, const float*, int64_t, int64_t,
                                                 int64_t, int64_t, Reduction))
MITHRIL_K_INSTANCE(void nll_loss_backward<float, int64_t>(float*, const float*, const int64_t*, int64_t, int64_t,
                                                          int64_t, int64_t, Reduction))
MITHRIL_K_INSTANCE(void mse_loss<float>(float*, const float*, const float*, int64_t, Reduction))
MITHRIL_K_INSTANCE(void mse_loss_backward<float>(float*, const float*, const float*, const float*, int64_t, Reduction,
                                                 bool))

}  // namespace mithril::rt::k
