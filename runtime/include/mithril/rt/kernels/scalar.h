// kernels/scalar.h - scalar activation functions for generated elementwise
// loops, with PyTorch's exact definitions (float and double).
#pragma once

#include <cmath>

namespace mithril::rt::k {

// torch.relu (NaN stays NaN).
template <class T> inline T relu(T x) { return x < T(0) ? T(0) : x; }

// torch.sigmoid, stable for large |x|: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) otherwise.
template <class T> inline T sigmoid(T x) {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
}

// torch.nn.functional.gelu(x) (approximate='none'): x/2 * (1 + erf(x/sqrt(2))).
template <class T> inline T gelu(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(0.70710678118654752440)));
}

// torch.nn.functional.gelu(x, approximate='tanh'):
// x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
template <class T> inline T gelu_tanh(T x) {
    const T k = static_cast<T>(0.79788456080286535588);  // sqrt(2/pi)
    return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
}

// torch.nn.functional.silu: x * sigmoid(x) (torch computes x / (1 + exp(-x))).
template <class T> inline T silu(T x) { return x / (T(1) + std::exp(-x)); }

// torch.nn.functional.softplus(x, beta, threshold): x when x*beta > threshold,
// else log1p(exp(x*beta)) / beta.
template <class T> inline T softplus(T x, T beta = T(1), T threshold = T(20)) {
    return x * beta > threshold ? x : std::log1p(std::exp(x * beta)) / beta;
}

// torch.nn.functional.elu(x, alpha): x > 0 ? x : alpha * expm1(x).
template <class T> inline T elu(T x, T alpha = T(1)) { return x > T(0) ? x : alpha * std::expm1(x); }

// torch.nn.functional.selu: scale * elu(x, alpha) with torch's constants.
template <class T> inline T selu(T x) {
    return static_cast<T>(1.0507009873554804934193349852946) *
           elu(x, static_cast<T>(1.6732632423543772848170429916717));
}

// torch.nn.functional.leaky_relu(x, negative_slope): x > 0 ? x : x * slope.
template <class T> inline T leaky_relu(T x, T negative_slope = T(0.01)) { return x > T(0) ? x : x * negative_slope; }

// torch.nn.functional.hardtanh(x, lo, hi) (relu6 = hardtanh(x, 0, 6)); NaN stays NaN.
template <class T> inline T hardtanh(T x, T lo = T(-1), T hi = T(1)) { return x < lo ? lo : (x > hi ? hi : x); }

// torch.nn.functional.hardsigmoid: relu6(x + 3) / 6.
template <class T> inline T hardsigmoid(T x) { return hardtanh(x + T(3), T(0), T(6)) / T(6); }

// torch.nn.functional.hardswish: x * relu6(x + 3) / 6.
template <class T> inline T hardswish(T x) { return x * hardtanh(x + T(3), T(0), T(6)) / T(6); }

// torch.nn.functional.mish: x * tanh(softplus(x)) (torch uses log1p(exp(x)), no threshold).
template <class T> inline T mish(T x) { return x * std::tanh(std::log1p(std::exp(x))); }

// torch.rsqrt: 1 / sqrt(x).
template <class T> inline T rsqrt(T x) { return T(1) / std::sqrt(x); }

// torch.sign for floats: (0 < x) - (x < 0); note torch.sign(NaN) is 0 (numpy gives NaN).
template <class T> inline T sign(T x) { return static_cast<T>((T(0) < x) - (x < T(0))); }

}  // namespace mithril::rt::k
