// kernels/optim.h - optimizer updates, emitted into a generated training step
// (one call per parameter, right after the backward pass), with PyTorch's
// definitions (torch.optim.SGD, Adam, AdamW; non-foreach, non-amsgrad):
//
//   SGD:   d = g + wd*w; buf = step==1 ? d : momentum*buf + (1-dampening)*d;
//          d = nesterov ? d + momentum*buf : buf (when momentum != 0); w -= lr*d
//   Adam:  g += wd*w (L2); AdamW: w *= 1 - lr*wd (decoupled);
//          m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g;
//          w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
//
// `scale` multiplies the gradient first (gradient-norm clipping, as
// torch.nn.utils.clip_grad_norm_: scale = min(1, max_norm / (norm + 1e-6))).
// The hyperparameters live in OptimHyper, which the training loop updates
// (learning-rate schedule, step count) between steps.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <utility>

#include "mithril/rt/kernels/common.h"

namespace mithril::rt {

struct OptimHyper {
    double lr = 1e-3;
    double momentum = 0.0;      // SGD
    double dampening = 0.0;     // SGD
    bool nesterov = false;      // SGD
    double weight_decay = 0.0;  // SGD and Adam: L2 added to the gradient; AdamW: decoupled
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam, AdamW
    double clip_norm = 0.0;     // > 0: clip the gradients' global L2 norm to it
    std::int64_t step = 0;      // updates so far, this one included (Adam's t; SGD's first step)
};

namespace k {

// The gradient scale for clipping to `max_norm` given the global norm (1 when off or below).
inline double clip_scale(double norm, double max_norm) {
    if (max_norm <= 0) return 1.0;
    const double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

// Sum of squares of n values, accumulated in double (for the global gradient norm).
template <class T> double sum_squares(const T* __restrict g, std::int64_t n) {
    double s = 0;
    for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    return s;
}

template <class T>
void sgd_step(const OptimHyper& h, T* __restrict w, const T* __restrict g, T* __restrict buf, std::int64_t n, double scale) {
    const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay), mu = static_cast<T>(h.momentum);
    const T damp = static_cast<T>(1.0 - h.dampening), s = static_cast<T>(scale);
    const bool first = h.step <= 1, nesterov = h.nesterov;
    if (!buf || h.momentum == 0.0) {
        MITHRIL_K_PARFOR(n >= kParallelWork)
        for (std::int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] * s + wd * w[i]);
        return;
    }
    MITHRIL_K_PARFOR(n >= kParallelWork)
    for (std::int64_t i = 0; i < n; ++i) {
        const T d = g[i] * s + wd * w[i];
        const T b = first ? d : mu * buf[i] + damp * d;
        buf[i] = b;
        w[i] -= lr * (nesterov ? d + mu * b : b);
    }
}

template <class T>
void adam_step(const OptimHyper& h, bool decoupled, T* __restrict w, const T* __restrict g, T* __restrict m, T* __restrict v,
               std::int64_t n, double scale) {
    const double t = static_cast<double>(h.step < 1 ? 1 : h.step);
    const T bc2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(h.beta2, t)));
    const T step_size = static_cast<T>(h.lr / (1.0 - std::pow(h.beta1, t)));
    const T b1c = static_cast<T>(1.0 - h.beta1), b2 = static_cast<T>(h.beta2), b2c = static_cast<T>(1.0 - h.beta2);
    const T eps = static_cast<T>(h.eps), s = static_cast<T>(scale);
    const T wd = decoupled ? T(0) : static_cast<T>(h.weight_decay);
    const T shrink = decoupled ? static_cast<T>(1.0 - h.lr * h.weight_decay) : T(1);
    // Elementwise, so threads change no result; vectorized (std::sqrt needs -fno-math-errno,
    // which generated projects pass).
    MITHRIL_K_PARFOR(n >= kParallelWork)
    for (std::int64_t i = 0; i < n; ++i) {
        const T wi = w[i] * shrink;
        const T gi = g[i] * s + wd * wi;
        const T mi = m[i] + b1c * (gi - m[i]);
        const T vi = v[i] * b2 + b2c * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
    }
}

// ---- compiled once, into the runtime library (src/kernels_nn.cpp) -------------------------------
MITHRIL_K_INSTANCE(void adam_step<float>(const OptimHyper&, bool, float* __restrict, const float* __restrict,
                                         float* __restrict, float* __restrict, std::int64_t, double))
MITHRIL_K_INSTANCE(void sgd_step<float>(const OptimHyper&, float* __restrict, const float* __restrict,
                                        float* __restrict, std::int64_t, double))

}  // namespace k
}  // namespace mithril::rt
