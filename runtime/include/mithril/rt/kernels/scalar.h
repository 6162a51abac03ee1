// kernels/scalar.h - scalar activation functions for generated elementwise
// loops, with PyTorch's exact definitions (float and double).
//
// In float, e^x (exp_) and the GELUs are computed without library calls, so the
// loops around them vectorize (GCC does not vectorize std::exp or std::erf without
// -ffast-math); their relative error stays within about 2e-7 (measured against
// float64: exp 1.0e-7 on [-87, 88]; erfc below 1.1e-7, Numerical Recipes' Chebyshev
// fit). double keeps the C library's functions.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

// The same definitions serve generated CUDA code (nvcc --expt-relaxed-constexpr): each function is
// __host__ __device__ there.
#ifdef __CUDACC__
#define MITHRIL_K_HD __host__ __device__
#else
#define MITHRIL_K_HD
#endif

namespace mithril::rt::k {

// e^x. float: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two, so n ln2 is exact), e^r
// by its Taylor series to r^7 (truncation below 6e-9), times 2^n made in the exponent
// bits. Below -87 the result is 0 (e^-87 = 1.6e-38: no denormals); above 88 it stays at
// e^88 = 1.7e38 instead of overflowing; NaN stays NaN.
MITHRIL_K_HD inline float exp_(float x) {
    const float c = std::min(std::max(x, -87.0f), 88.0f);
    const float t = c * 1.44269504088896341f;  // rounded to n by conversion (std::floor would not vectorize)
    const std::int32_t i = static_cast<std::int32_t>(t + (t < 0.0f ? -0.5f : 0.5f));
    const float n = static_cast<float>(i);
    const float r = (c - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const float e = p * std::bit_cast<float>((i + 127) << 23);
    return e * static_cast<float>(!(x < -87.0f));  // a multiply, not a select: it vectorizes
}
MITHRIL_K_HD inline double exp_(double x) { return std::exp(x); }

namespace detail {
// erfc(z) for z >= 0 (Numerical Recipes, erfcc: fractional error below 1.2e-7).
MITHRIL_K_HD inline float erfc_nonneg(float z) {
    const float t = 1.0f / (1.0f + 0.5f * z);
    const float p =
        -1.26551223f +
        t * (1.00002368f +
             t * (0.37409196f +
                  t * (0.09678418f +
                       t * (-0.18628806f +
                            t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    return t * exp_(-z * z + p);
}
// Phi(x) = erfc(-x/sqrt(2)) / 2, the standard normal CDF, with its relative accuracy in both tails.
MITHRIL_K_HD inline float normal_cdf(float x) {
    const float z = x * -0.70710678118654752440f;
    const float e = erfc_nonneg(std::fabs(z));
    return 0.5f * (z >= 0.0f ? e : 2.0f - e);
}
}  // namespace detail

// torch.relu (NaN stays NaN).
template <class T> MITHRIL_K_HD inline T relu(T x) { return x < T(0) ? T(0) : x; }

// torch.sigmoid, stable for large |x|: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) otherwise.
template <class T> MITHRIL_K_HD inline T sigmoid(T x) {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
}

// torch.nn.functional.gelu(x) (approximate='none'): x/2 * (1 + erf(x/sqrt(2))) = x Phi(x),
// and its derivative Phi(x) + x phi(x).
MITHRIL_K_HD inline float gelu(float x) { return x * detail::normal_cdf(x); }
MITHRIL_K_HD inline double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)); }
MITHRIL_K_HD inline float gelu_grad(float x) {
    return detail::normal_cdf(x) + x * 0.39894228040143267794f * exp_(-0.5f * x * x);
}
MITHRIL_K_HD inline double gelu_grad(double x) {
    return 0.5 * (1.0 + std::erf(x * 0.70710678118654752440)) + x * 0.39894228040143267794 * std::exp(-0.5 * x * x);
}

// torch.nn.functional.gelu(x, approximate='tanh'): x/2 * (1 + tanh(u)),
// u = sqrt(2/pi) * (x + 0.044715 x^3); computed as x * s with s = sigmoid(2u) = (1 + tanh(u)) / 2,
// which has no cancellation in either tail. Derivative: s + 2x s (1 - s) du/dx.
template <class T> MITHRIL_K_HD inline T gelu_tanh_sigmoid(T x) {
    const T u = static_cast<T>(0.79788456080286535588) * (x + static_cast<T>(0.044715) * x * x * x);
    return T(1) / (T(1) + exp_(T(-2) * u));
}
template <class T> MITHRIL_K_HD inline T gelu_tanh(T x) { return x * gelu_tanh_sigmoid(x); }
template <class T> MITHRIL_K_HD inline T gelu_tanh_grad(T x) {
    const T s = gelu_tanh_sigmoid(x);
    const T du = static_cast<T>(0.79788456080286535588) * (T(1) + static_cast<T>(0.134145) * x * x);
    return s + T(2) * x * s * (T(1) - s) * du;
}

// torch.nn.functional.silu: x * sigmoid(x) (torch computes x / (1 + exp(-x))).
template <class T> MITHRIL_K_HD inline T silu(T x) { return x / (T(1) + std::exp(-x)); }

// torch.nn.functional.softplus(x, beta, threshold): x when x*beta > threshold,
// else log1p(exp(x*beta)) / beta.
template <class T> MITHRIL_K_HD inline T softplus(T x, T beta = T(1), T threshold = T(20)) {
    return x * beta > threshold ? x : std::log1p(std::exp(x * beta)) / beta;
}

// torch.nn.functional.elu(x, alpha): x > 0 ? x : alpha * expm1(x).
template <class T> MITHRIL_K_HD inline T elu(T x, T alpha = T(1)) { return x > T(0) ? x : alpha * std::expm1(x); }

// torch.nn.functional.selu: scale * elu(x, alpha) with torch's constants.
template <class T> MITHRIL_K_HD inline T selu(T x) {
    return static_cast<T>(1.0507009873554804934193349852946) *
           elu(x, static_cast<T>(1.6732632423543772848170429916717));
}

// torch.nn.functional.leaky_relu(x, negative_slope): x > 0 ? x : x * slope.
template <class T> MITHRIL_K_HD inline T leaky_relu(T x, T negative_slope = T(0.01)) { return x > T(0) ? x : x * negative_slope; }

// torch.nn.functional.hardtanh(x, lo, hi) (relu6 = hardtanh(x, 0, 6)); NaN stays NaN.
template <class T> MITHRIL_K_HD inline T hardtanh(T x, T lo = T(-1), T hi = T(1)) { return x < lo ? lo : (x > hi ? hi : x); }

// torch.nn.functional.hardsigmoid: relu6(x + 3) / 6.
template <class T> MITHRIL_K_HD inline T hardsigmoid(T x) { return hardtanh(x + T(3), T(0), T(6)) / T(6); }

// torch.nn.functional.hardswish: x * relu6(x + 3) / 6.
template <class T> MITHRIL_K_HD inline T hardswish(T x) { return x * hardtanh(x + T(3), T(0), T(6)) / T(6); }

// torch.nn.functional.mish: x * tanh(softplus(x)) (torch uses log1p(exp(x)), no threshold).
template <class T> MITHRIL_K_HD inline T mish(T x) { return x * std::tanh(std::log1p(std::exp(x))); }

// torch.rsqrt: 1 / sqrt(x).
template <class T> MITHRIL_K_HD inline T rsqrt(T x) { return T(1) / std::sqrt(x); }

// torch.sign for floats: (0 < x) - (x < 0); note torch.sign(NaN) is 0 (numpy gives NaN).
template <class T> MITHRIL_K_HD inline T sign(T x) { return static_cast<T>((T(0) < x) - (x < T(0))); }

}  // namespace mithril::rt::k
