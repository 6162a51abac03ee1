// kernels/reduce.h - softmax / log_softmax and reductions over one axis.
//
// The axis is described by the (outer, len, inner) decomposition of a
// contiguous tensor: element (o, l, i) is at in[(o*len + l)*inner + i]; the
// output of a reduction is [outer, inner] (keepdim is only a shape matter).
// A reduction over several axes is composed by the caller: adjacent axes
// merge into one `len` (reduce dims 2,3 of NCHW: outer=N*C, len=H*W,
// inner=1); non-adjacent axes are reduced one after another (sum, max, min,
// prod; mean = sum then scale) or permuted together first (var, logsumexp,
// argmax need one pass over all reduced elements).
// Sums accumulate in double for float (acc_t). NaN propagates through
// max/min (as torch.max); argmax/argmin return the first NaN if there is one,
// else the first occurrence of the extreme value (as torch and numpy).
#pragma once

#include "mithril/rt/kernels/common.h"

namespace mithril::rt::k {

namespace detail {

inline constexpr int64_t kBlock = 64;  // inner elements handled together (stack accumulators)

// out[o, i] = fin(fold(step, init, in[o, :, i])). Lanes are merged with `merge`.
template <class T, class A, class Step, class Merge, class Fin>
void reduce_axis(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len, int64_t inner,
                 A init, Step step, Merge merge, Fin fin) {
    if (inner == 1) {
        MITHRIL_K_PARFOR(outer * len >= kParallelWork)
        for (int64_t o = 0; o < outer; ++o) {
            const T* x = in + o * len;
            A lane[8];
            for (int j = 0; j < 8; ++j) lane[j] = init;
            int64_t l = 0;
            for (; l + 8 <= len; l += 8)
                for (int j = 0; j < 8; ++j) lane[j] = step(lane[j], x[l + j]);
            A acc = merge(merge(merge(lane[0], lane[1]), merge(lane[2], lane[3])),
                          merge(merge(lane[4], lane[5]), merge(lane[6], lane[7])));
            for (; l < len; ++l) acc = step(acc, x[l]);
            out[o] = fin(acc);
        }
        return;
    }
    const int64_t nb = (inner + kBlock - 1) / kBlock;
    MITHRIL_K_PARFOR(outer * len * inner >= kParallelWork)
    for (int64_t ob = 0; ob < outer * nb; ++ob) {
        const int64_t o = ob / nb, i0 = (ob % nb) * kBlock, bn = std::min(kBlock, inner - i0);
        A acc[kBlock];
        for (int64_t i = 0; i < bn; ++i) acc[i] = init;
        const T* x = in + o * len * inner + i0;
        for (int64_t l = 0; l < len; ++l)
            for (int64_t i = 0; i < bn; ++i) acc[i] = step(acc[i], x[l * inner + i]);
        T* y = out + o * inner + i0;
        for (int64_t i = 0; i < bn; ++i) y[i] = fin(acc[i]);
    }
}

template <class T> inline T max_step(T a, T v) { return (v > a || is_nan(v)) ? (is_nan(a) ? a : v) : a; }
template <class T> inline T min_step(T a, T v) { return (v < a || is_nan(v)) ? (is_nan(a) ? a : v) : a; }

inline void require_len(const char* kernel, int64_t len, int64_t outer, int64_t inner) {
    if (len <= 0 && outer * inner > 0)
        throw Error(std::string(kernel) + ": cannot reduce an empty axis (it has no identity)");
}

// Max over the axis per (o, i) for a block of bn inner elements into m[].
template <class T>
inline void block_max(T* MITHRIL_K_RESTRICT m, const T* MITHRIL_K_RESTRICT x, int64_t len, int64_t inner, int64_t bn) {
    for (int64_t i = 0; i < bn; ++i) m[i] = neg_inf<T>();
    for (int64_t l = 0; l < len; ++l)
        for (int64_t i = 0; i < bn; ++i) m[i] = max_step(m[i], x[l * inner + i]);
}

}  // namespace detail

// torch.sum(in, dim): out [outer, inner].
template <class T>
void reduce_sum(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len, int64_t inner) {
    using A = acc_t<T>;
    detail::reduce_axis<T, A>(
        out, in, outer, len, inner, A(0), [](A a, T v) { return a + static_cast<A>(v); },
        [](A a, A b) { return a + b; }, [](A a) { return static_cast<T>(a); });
}

// torch.mean(in, dim) (len == 0 gives NaN).
template <class T>
void reduce_mean(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len, int64_t inner) {
    using A = acc_t<T>;
    const A n = static_cast<A>(len);
    detail::reduce_axis<T, A>(
        out, in, outer, len, inner, A(0), [](A a, T v) { return a + static_cast<A>(v); },
        [](A a, A b) { return a + b; }, [n](A a) { return static_cast<T>(a / n); });
}

// torch.prod(in, dim).
template <class T>
void reduce_prod(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len,
                 int64_t inner) {
    using A = acc_t<T>;
    detail::reduce_axis<T, A>(
        out, in, outer, len, inner, A(1), [](A a, T v) { return a * static_cast<A>(v); },
        [](A a, A b) { return a * b; }, [](A a) { return static_cast<T>(a); });
}

// torch.amax(in, dim) (values of torch.max(in, dim)); len must be >= 1. Also ints.
template <class T>
void reduce_max(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len, int64_t inner) {
    detail::require_len("reduce_max", len, outer, inner);
    const T init = std::numeric_limits<T>::has_infinity ? neg_inf<T>() : std::numeric_limits<T>::lowest();
    detail::reduce_axis<T, T>(
        out, in, outer, len, inner, init, [](T a, T v) { return detail::max_step(a, v); },
        [](T a, T b) { return detail::max_step(a, b); }, [](T a) { return a; });
}

// torch.amin(in, dim); len must be >= 1. Also ints.
template <class T>
void reduce_min(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len, int64_t inner) {
    detail::require_len("reduce_min", len, outer, inner);
    const T init = std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity()
                                                        : std::numeric_limits<T>::max();
    detail::reduce_axis<T, T>(
        out, in, outer, len, inner, init, [](T a, T v) { return detail::min_step(a, v); },
        [](T a, T b) { return detail::min_step(a, b); }, [](T a) { return a; });
}

// torch.var(in, dim, correction=correction): sum((x - mean)^2) / max(0, len - correction)
// (two-pass). torch.std is std::sqrt of it: reduce_std.
template <class T>
void reduce_var(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len, int64_t inner,
                int64_t correction, bool take_sqrt = false) {
    using A = acc_t<T>;
    const A n = static_cast<A>(len), div = static_cast<A>(std::max<int64_t>(0, len - correction));
    const int64_t nb = (inner + detail::kBlock - 1) / detail::kBlock;
    MITHRIL_K_PARFOR(outer * len * inner >= kParallelWork)
    for (int64_t ob = 0; ob < outer * nb; ++ob) {
        const int64_t o = ob / nb, i0 = (ob % nb) * detail::kBlock, bn = std::min(detail::kBlock, inner - i0);
        const T* x = in + o * len * inner + i0;
        A mean[detail::kBlock], ss[detail::kBlock];
        for (int64_t i = 0; i < bn; ++i) mean[i] = ss[i] = 0;
        for (int64_t l = 0; l < len; ++l)
            for (int64_t i = 0; i < bn; ++i) mean[i] += static_cast<A>(x[l * inner + i]);
        for (int64_t i = 0; i < bn; ++i) mean[i] /= n;
        for (int64_t l = 0; l < len; ++l)
            for (int64_t i = 0; i < bn; ++i) {
                const A d = static_cast<A>(x[l * inner + i]) - mean[i];
                ss[i] += d * d;
            }
        T* y = out + o * inner + i0;
        for (int64_t i = 0; i < bn; ++i) y[i] = static_cast<T>(take_sqrt ? std::sqrt(ss[i] / div) : ss[i] / div);
    }
}

// torch.std(in, dim, correction=correction).
template <class T>
void reduce_std(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len, int64_t inner,
                int64_t correction) {
    reduce_var(out, in, outer, len, inner, correction, true);
}

// torch.logsumexp(in, dim): m + log(sum(exp(x - m))) with m the max (m taken
// as 0 when it is infinite, as PyTorch; len == 0 gives -inf).
template <class T>
void reduce_logsumexp(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len,
                      int64_t inner) {
    using A = acc_t<T>;
    const int64_t nb = (inner + detail::kBlock - 1) / detail::kBlock;
    MITHRIL_K_PARFOR(outer * len * inner >= kParallelWork)
    for (int64_t ob = 0; ob < outer * nb; ++ob) {
        const int64_t o = ob / nb, i0 = (ob % nb) * detail::kBlock, bn = std::min(detail::kBlock, inner - i0);
        const T* x = in + o * len * inner + i0;
        T m[detail::kBlock];
        A s[detail::kBlock];
        detail::block_max(m, x, len, inner, bn);
        for (int64_t i = 0; i < bn; ++i) {
            if (std::isinf(m[i])) m[i] = T(0);
            s[i] = 0;
        }
        for (int64_t l = 0; l < len; ++l)
            for (int64_t i = 0; i < bn; ++i) s[i] += static_cast<A>(std::exp(x[l * inner + i] - m[i]));
        T* y = out + o * inner + i0;
        for (int64_t i = 0; i < bn; ++i) y[i] = static_cast<T>(std::log(s[i]) + static_cast<A>(m[i]));
    }
}

namespace detail {
template <bool IsMax, class T>
void arg_extreme(int64_t* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len,
                 int64_t inner) {
    require_len(IsMax ? "argmax" : "argmin", len, outer, inner);
    const int64_t nb = (inner + kBlock - 1) / kBlock;
    MITHRIL_K_PARFOR(outer * len * inner >= kParallelWork)
    for (int64_t ob = 0; ob < outer * nb; ++ob) {
        const int64_t o = ob / nb, i0 = (ob % nb) * kBlock, bn = std::min(kBlock, inner - i0);
        const T* x = in + o * len * inner + i0;
        T best[kBlock];
        int64_t idx[kBlock];
        for (int64_t i = 0; i < bn; ++i) {
            best[i] = x[i];
            idx[i] = 0;
        }
        for (int64_t l = 1; l < len; ++l)
            for (int64_t i = 0; i < bn; ++i) {
                const T v = x[l * inner + i];
                const bool better = IsMax ? v > best[i] : v < best[i];
                if (!is_nan(best[i]) && (better || is_nan(v))) {
                    best[i] = v;
                    idx[i] = l;
                }
            }
        int64_t* y = out + o * inner + i0;
        for (int64_t i = 0; i < bn; ++i) y[i] = idx[i];
    }
}
}  // namespace detail

// torch.argmax(in, dim) -> int64 [outer, inner]; first occurrence. Also ints.
template <class T>
void argmax(int64_t* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len,
            int64_t inner) {
    detail::arg_extreme<true>(out, in, outer, len, inner);
}

// torch.argmin(in, dim) -> int64 [outer, inner]; first occurrence. Also ints.
template <class T>
void argmin(int64_t* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t len,
            int64_t inner) {
    detail::arg_extreme<false>(out, in, outer, len, inner);
}

namespace detail {
template <bool Log, class T>
void softmax_impl(T* out, const T* in, int64_t outer, int64_t len, int64_t inner) {
    using A = acc_t<T>;
    if (inner == 1) {
        MITHRIL_K_PARFOR(outer * len >= kParallelWork / 4)
        for (int64_t o = 0; o < outer; ++o) {
            const T* x = in + o * len;
            T* y = out + o * len;
            T m = neg_inf<T>();
            for (int64_t l = 0; l < len; ++l) m = max_step(m, x[l]);
            A s = 0;
            if constexpr (Log) {
                for (int64_t l = 0; l < len; ++l) s += static_cast<A>(std::exp(x[l] - m));
                const T shift = static_cast<T>(static_cast<A>(m) + std::log(s));
                for (int64_t l = 0; l < len; ++l) y[l] = x[l] - shift;
            } else {
                for (int64_t l = 0; l < len; ++l) {
                    const T e = std::exp(x[l] - m);
                    y[l] = e;
                    s += static_cast<A>(e);
                }
                const T r = static_cast<T>(1 / s);
                for (int64_t l = 0; l < len; ++l) y[l] *= r;
            }
        }
        return;
    }
    const int64_t nb = (inner + kBlock - 1) / kBlock;
    MITHRIL_K_PARFOR(outer * len * inner >= kParallelWork / 4)
    for (int64_t ob = 0; ob < outer * nb; ++ob) {
        const int64_t o = ob / nb, i0 = (ob % nb) * kBlock, bn = std::min(kBlock, inner - i0);
        const T* x = in + o * len * inner + i0;
        T* y = out + o * len * inner + i0;
        T m[kBlock];
        A s[kBlock];
        block_max(m, x, len, inner, bn);
        for (int64_t i = 0; i < bn; ++i) s[i] = 0;
        if constexpr (Log) {
            for (int64_t l = 0; l < len; ++l)
                for (int64_t i = 0; i < bn; ++i) s[i] += static_cast<A>(std::exp(x[l * inner + i] - m[i]));
            for (int64_t i = 0; i < bn; ++i) m[i] = static_cast<T>(static_cast<A>(m[i]) + std::log(s[i]));
            for (int64_t l = 0; l < len; ++l)
                for (int64_t i = 0; i < bn; ++i) y[l * inner + i] = x[l * inner + i] - m[i];
        } else {
            for (int64_t l = 0; l < len; ++l)
                for (int64_t i = 0; i < bn; ++i) {
                    const T e = std::exp(x[l * inner + i] - m[i]);
                    y[l * inner + i] = e;
                    s[i] += static_cast<A>(e);
                }
            for (int64_t i = 0; i < bn; ++i) m[i] = static_cast<T>(1 / s[i]);
            for (int64_t l = 0; l < len; ++l)
                for (int64_t i = 0; i < bn; ++i) y[l * inner + i] *= m[i];
        }
    }
}
}  // namespace detail

// torch.softmax(in, dim): exp(x - max) / sum(exp(x - max)) along the axis.
// in/out [outer, len, inner]. In-place safe.
template <class T>
void softmax(T* out, const T* in, int64_t outer, int64_t len, int64_t inner) {
    detail::softmax_impl<false>(out, in, outer, len, inner);
}

// torch.log_softmax(in, dim): x - max - log(sum(exp(x - max))). In-place safe.
template <class T>
void log_softmax(T* out, const T* in, int64_t outer, int64_t len, int64_t inner) {
    detail::softmax_impl<true>(out, in, outer, len, inner);
}

namespace detail {
// Softmax backward from the forward output y: s = sum(dy * y) (softmax) or
// sum(dy) (log_softmax) along the axis, then dx = y * (dy - s) or
// dx = dy - exp(y) * s. Two passes over dy and y.
template <bool Log, class T>
void softmax_backward_impl(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const T* MITHRIL_K_RESTRICT y,
                           int64_t outer, int64_t len, int64_t inner) {
    using A = acc_t<T>;
    if (inner == 1) {
        MITHRIL_K_PARFOR(outer * len >= kParallelWork / 4)
        for (int64_t o = 0; o < outer; ++o) {
            const T* g = dy + o * len;
            const T* yr = y + o * len;
            T* d = dx + o * len;
            A lane[4] = {0, 0, 0, 0};
            int64_t l = 0;
            for (; l + 4 <= len; l += 4)
                for (int j = 0; j < 4; ++j)
                    lane[j] += Log ? static_cast<A>(g[l + j]) : static_cast<A>(g[l + j]) * static_cast<A>(yr[l + j]);
            A s = (lane[0] + lane[1]) + (lane[2] + lane[3]);
            for (; l < len; ++l) s += Log ? static_cast<A>(g[l]) : static_cast<A>(g[l]) * static_cast<A>(yr[l]);
            const T st = static_cast<T>(s);
            if constexpr (Log) {
                for (int64_t i = 0; i < len; ++i) d[i] = g[i] - std::exp(yr[i]) * st;
            } else {
                for (int64_t i = 0; i < len; ++i) d[i] = yr[i] * (g[i] - st);
            }
        }
        return;
    }
    const int64_t nb = (inner + kBlock - 1) / kBlock;
    MITHRIL_K_PARFOR(outer * len * inner >= kParallelWork / 4)
    for (int64_t ob = 0; ob < outer * nb; ++ob) {
        const int64_t o = ob / nb, i0 = (ob % nb) * kBlock, bn = std::min(kBlock, inner - i0);
        const int64_t base = o * len * inner + i0;
        A s[kBlock];
        T st[kBlock];
        for (int64_t i = 0; i < bn; ++i) s[i] = 0;
        for (int64_t l = 0; l < len; ++l) {
            const T* g = dy + base + l * inner;
            const T* yr = y + base + l * inner;
            for (int64_t i = 0; i < bn; ++i)
                s[i] += Log ? static_cast<A>(g[i]) : static_cast<A>(g[i]) * static_cast<A>(yr[i]);
        }
        for (int64_t i = 0; i < bn; ++i) st[i] = static_cast<T>(s[i]);
        for (int64_t l = 0; l < len; ++l) {
            const T* g = dy + base + l * inner;
            const T* yr = y + base + l * inner;
            T* d = dx + base + l * inner;
            if constexpr (Log) {
                for (int64_t i = 0; i < bn; ++i) d[i] = g[i] - std::exp(yr[i]) * st[i];
            } else {
                for (int64_t i = 0; i < bn; ++i) d[i] = yr[i] * (g[i] - st[i]);
            }
        }
    }
}
}  // namespace detail

// Backward of softmax along the axis: dx = y * (dy - sum(dy * y)), from the
// forward output y. dx, dy, y [outer, len, inner]; dx must not overlap them.
template <class T>
void softmax_backward(T* dx, const T* dy, const T* y, int64_t outer, int64_t len, int64_t inner) {
    detail::softmax_backward_impl<false>(dx, dy, y, outer, len, inner);
}

// Backward of log_softmax: dx = dy - exp(y) * sum(dy), from the forward output y.
template <class T>
void log_softmax_backward(T* dx, const T* dy, const T* y, int64_t outer, int64_t len, int64_t inner) {
    detail::softmax_backward_impl<true>(dx, dy, y, outer, len, inner);
}

// ---- compiled once, into the runtime library (src/kernels_nn.cpp) -------------------------------
MITHRIL_K_INSTANCE(void reduce_sum<float>(float*, const float*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void reduce_mean<float>(float*, const float*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void reduce_max<float>(float*, const float*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void softmax<float>(float*, const float*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void log_softmax<float>(float*, const float*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void softmax_backward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void log_softmax_backward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void argmax<float>(int64_t*, const float*, int64_t, int64_t, int64_t))

}  // namespace mithril::rt::k
