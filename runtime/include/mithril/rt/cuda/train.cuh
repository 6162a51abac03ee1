// cuda/train.cuh - the device kernels of training programs (included by cuda/kernels.cuh): the
// optimizers' updates, the global gradient norm, dropout's masks, batch norm with batch statistics.
// The same formulas as the CPU kernels (kernels/optim.h, kernels/norm.h); the hyperparameters are
// read on the host at launch (OptimHyper) and passed by value.
#pragma once

#include "mithril/rt/kernels/optim.h"

namespace mithril::rt::cuda {

// ---- the global gradient norm: sqrt of the sum of squares of every gradient, in double -----------
// out[0] (a double on the device) = sum over the tensors; one block per tensor adds its part.
__global__ inline void add_sum_squares_kernel(double* out, const float* g, int64_t n) {
    __shared__ double red[32];
    double s = 0;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) red[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0;
        for (int w = 0; w < (static_cast<int>(blockDim.x) + 31) / 32; ++w) t += red[w];
        atomicAdd(out, t);
    }
}
inline void add_sum_squares(const Device& dev, double* out, const float* g, int64_t n, const char* layer) {
    if (n <= 0) return;
    const int64_t blocks = (n + 4 * kThreads - 1) / (4 * kThreads);
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(blocks < 1024 ? blocks : 1024), kThreads, 0, stream_of(dev), add_sum_squares_kernel)(out, g, n);
    Device::check_launch(layer);
}
inline void finish_norm(const Device& dev, double* out, const char* layer) {
    for_each(dev, 1, [=] __device__(int64_t) { out[0] = sqrt(out[0]); }, layer);
}

// ---- optimizers: one thread per element; `grad_norm` (device, or null) scales for clipping --------
__device__ inline float clip_factor(const double* grad_norm, double clip_norm) {
    if (!grad_norm || clip_norm <= 0) return 1.f;
    const double c = clip_norm / (grad_norm[0] + 1e-6);
    return static_cast<float>(c < 1.0 ? c : 1.0);
}

inline void sgd_step(const Device& dev, const OptimHyper& h, float* w, const float* g, float* buf, int64_t n, const double* grad_norm,
                     const char* layer) {
    const float lr = static_cast<float>(h.lr), wd = static_cast<float>(h.weight_decay), mu = static_cast<float>(h.momentum);
    const float damp = static_cast<float>(1.0 - h.dampening);
    const bool first = h.step <= 1, nesterov = h.nesterov, momentum = buf && h.momentum != 0.0;
    const double clip = h.clip_norm;
    for_each(
        dev, n,
        [=] __device__(int64_t i) {
            const float s = clip_factor(grad_norm, clip);
            const float d = g[i] * s + wd * w[i];
            if (!momentum) {
                w[i] -= lr * d;
                return;
            }
            const float b = first ? d : mu * buf[i] + damp * d;
            buf[i] = b;
            w[i] -= lr * (nesterov ? d + mu * b : b);
        },
        layer);
}

inline void adam_step(const Device& dev, const OptimHyper& h, bool decoupled, float* w, const float* g, float* m, float* v, int64_t n,
                      const double* grad_norm, const char* layer) {
    const double t = static_cast<double>(h.step < 1 ? 1 : h.step);
    const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(h.beta2, t)));
    const float step_size = static_cast<float>(h.lr / (1.0 - std::pow(h.beta1, t)));
    const float b1c = static_cast<float>(1.0 - h.beta1), b2 = static_cast<float>(h.beta2), b2c = static_cast<float>(1.0 - h.beta2);
    const float eps = static_cast<float>(h.eps);
    const float wd = decoupled ? 0.f : static_cast<float>(h.weight_decay);
    const float shrink = decoupled ? static_cast<float>(1.0 - h.lr * h.weight_decay) : 1.f;
    const double clip = h.clip_norm;
    for_each(
        dev, n,
        [=] __device__(int64_t i) {
            const float s = clip_factor(grad_norm, clip);
            const float wi = w[i] * shrink;
            const float gi = g[i] * s + wd * wi;
            const float mi = m[i] + b1c * (gi - m[i]);
            const float vi = v[i] * b2 + b2c * gi * gi;
            m[i] = mi;
            v[i] = vi;
            w[i] = wi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
        },
        layer);
}

// ---- dropout in training: a counter-based mask ---------------------------------------------------
// Element i of a layer's call is kept when uniform(key, i) >= p; `key` is drawn on the host from the
// program's generator (one per call, so a seed repeats the masks) and saved in the layer's rng_state
// for the backward pass, which draws the same mask again. The masks are not the CPU target's (that
// one draws sequentially); their statistics are.
__host__ __device__ inline float dropout_uniform(std::uint64_t key, std::uint64_t i) {
    std::uint64_t z = key + 0x9E3779B97F4A7C15ull * (i + 1);  // splitmix64 of (key, i)
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // 24 bits: [0, 1)
}
inline void dropout_forward(const Device& dev, float* y, std::int64_t* state, const float* x, int64_t n, double p, std::uint64_t key,
                            const char* layer) {
    const float keep_scale = static_cast<float>(1.0 / (1.0 - p)), pf = static_cast<float>(p);
    for_each(
        dev, n > 0 ? n : 1,
        [=] __device__(int64_t i) {
            if (i == 0) {
                state[0] = static_cast<std::int64_t>(key);
                state[1] = state[2] = state[3] = 0;
            }
            if (i < n) y[i] = dropout_uniform(key, static_cast<std::uint64_t>(i)) < pf ? 0.f : x[i] * keep_scale;
        },
        layer);
}
inline void dropout_backward(const Device& dev, float* dx, const float* dy, const std::int64_t* state, int64_t n, double p,
                             const char* layer) {
    const float keep_scale = static_cast<float>(1.0 / (1.0 - p)), pf = static_cast<float>(p);
    for_each(
        dev, n,
        [=] __device__(int64_t i) {
            const std::uint64_t key = static_cast<std::uint64_t>(state[0]);
            dx[i] = dropout_uniform(key, static_cast<std::uint64_t>(i)) < pf ? 0.f : dy[i] * keep_scale;
        },
        layer);
}

// ---- batch norm with the batch's statistics (training): one block per channel --------------------
// y = (x - mean) / sqrt(var + eps) * weight + bias with the batch mean and biased variance over N and
// HW; the running statistics move by momentum (the unbiased variance), as torch's train mode.
__global__ inline void batch_norm_training_kernel(float* y, float* running_mean, float* running_var, const float* x, const float* weight,
                                                  const float* bias, int64_t N, int64_t C, int64_t HW, float eps, float momentum) {
    __shared__ float red[32];
    const int64_t c = blockIdx.x, count = N * HW;
    float s = 0.f;
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) s += x[(k / HW * C + c) * HW + k % HW];
    const float mean = block_sum(s, red) / static_cast<float>(count);
    float q = 0.f;
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
        const float d = x[(k / HW * C + c) * HW + k % HW] - mean;
        q += d * d;
    }
    const float var = block_sum(q, red) / static_cast<float>(count);
    const float rstd = rsqrtf(var + eps), w = weight ? weight[c] : 1.f, b = bias ? bias[c] : 0.f;
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
        const int64_t at = (k / HW * C + c) * HW + k % HW;
        y[at] = (x[at] - mean) * rstd * w + b;
    }
    if (threadIdx.x == 0) {
        if (running_mean) running_mean[c] = (1.f - momentum) * running_mean[c] + momentum * mean;
        if (running_var)
            running_var[c] = (1.f - momentum) * running_var[c] + momentum * var * static_cast<float>(count) / static_cast<float>(count - 1);
    }
}
inline void batch_norm_training(const Device& dev, float* y, float* running_mean, float* running_var, const float* x, const float* weight,
                                const float* bias, int64_t N, int64_t C, int64_t HW, double eps, double momentum, const char* layer) {
    if (N * HW <= 1)
        throw Error(std::string(layer) + ": batch norm in training needs more than 1 value per channel, got " + std::to_string(N * HW));
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(C), kThreads, 0, stream_of(dev), batch_norm_training_kernel)(
        y, running_mean, running_var, x, weight, bias, N, C, HW, static_cast<float>(eps), static_cast<float>(momentum));
    Device::check_launch(layer);
}

// Its backward through the batch statistics: per channel dx = rstd (g - mean(g) - xhat mean(g xhat))
// with g = dy weight; dweight = sum dy xhat, dbias = sum dy. One block per channel.
__global__ inline void batch_norm_training_backward_kernel(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                                                           const float* weight, int64_t N, int64_t C, int64_t HW, float eps) {
    __shared__ float red[32];
    const int64_t c = blockIdx.x, count = N * HW;
    float s = 0.f;
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) s += x[(k / HW * C + c) * HW + k % HW];
    const float mean = block_sum(s, red) / static_cast<float>(count);
    float q = 0.f, sg = 0.f, sgx = 0.f;
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
        const int64_t at = (k / HW * C + c) * HW + k % HW;
        const float d = x[at] - mean;
        q += d * d;
        sg += dy[at];
        sgx += dy[at] * d;
    }
    q = block_sum(q, red);
    sg = block_sum(sg, red);
    sgx = block_sum(sgx, red);
    const float rstd = rsqrtf(q / static_cast<float>(count) + eps), w = weight ? weight[c] : 1.f;
    if (threadIdx.x == 0) {
        if (dweight) dweight[c] = sgx * rstd;
        if (dbias) dbias[c] = sg;
    }
    if (!dx) return;
    const float mg = w * sg / static_cast<float>(count), mgx = w * sgx * rstd / static_cast<float>(count);
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
        const int64_t at = (k / HW * C + c) * HW + k % HW;
        const float xhat = (x[at] - mean) * rstd;
        dx[at] = rstd * (dy[at] * w - mg - xhat * mgx);
    }
}
inline void batch_norm_training_backward(const Device& dev, float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                                         const float* weight, int64_t N, int64_t C, int64_t HW, double eps, const char* layer) {
    if (N * HW == 0 || C <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(C), kThreads, 0, stream_of(dev), batch_norm_training_backward_kernel)(
        dx, dweight, dbias, dy, x, weight, N, C, HW, static_cast<float>(eps));
    Device::check_launch(layer);
}

}  // namespace mithril::rt::cuda
