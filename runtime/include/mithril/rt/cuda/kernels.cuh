// cuda/kernels.cuh - the device kernels generated CUDA code launches (nvcc only; namespace
// mithril::rt::cuda). Conventions as the CPU kernels (kernels/common.h): outputs first, then
// inputs, then sizes; int64_t sizes; contiguous row-major tensors. Every launch goes to the
// program's stream (Device::stream) and is checked (Device::check_launch, naming the layer).
//
//   for_each(dev, n, [=] __device__ (int64_t i) { y[i] = a[i] + b[i]; }, "res_1");   // elementwise
//   softmax_rows<false>(dev, y, x, rows, cols, "softmax");                           // a block per row
//
// Generated elementwise code (ops' scalar expressions, fused chains, epilogues) is a device lambda
// given to for_each (nvcc --extended-lambda); the row kernels (softmax, layer norm) and attention
// are here. Accumulation is in float with tree reductions (the CPU target sums in double: the
// tolerance against it is written in docs/codegen.md, CUDA target).
#pragma once

#if defined(MITHRIL_CUDA_EMULATE)
#include "mithril/rt/cuda/emulate.h"  // C++ build of CUDA sources, for tests without a GPU
#else
#include <cuda_runtime.h>
// A kernel launch, written so the emulation (cuda/emulate.h) can run it too:
//   MITHRIL_CUDA_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...);
#define MITHRIL_CUDA_LAUNCH(grid, block, shared, stream, ...) __VA_ARGS__<<<grid, block, shared, stream>>>
// The launch's dynamic shared memory as `type* name` (one 16-byte aligned array for every kernel).
#define MITHRIL_CUDA_DYNAMIC_SHARED(type, name)                           \
    extern __shared__ __align__(16) unsigned char mithril_dynamic_shared_[]; \
    type* name = reinterpret_cast<type*>(mithril_dynamic_shared_)
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "mithril/rt/cuda/device.h"
#include "mithril/rt/kernels/common.h"  // Conv2dGeom, Pool2dGeom
#include "mithril/rt/kernels/scalar.h"

namespace mithril::rt::cuda {

inline cudaStream_t stream_of(const Device& dev) { return static_cast<cudaStream_t>(dev.stream()); }

inline constexpr int kThreads = 256;  // threads per block of the elementwise and row kernels

// Blocks for n elements at kThreads each, capped (a grid-stride loop covers the rest).
inline unsigned blocks_for(int64_t n) {
    const int64_t b = (n + kThreads - 1) / kThreads;
    return static_cast<unsigned>(b < 1 ? 1 : (b > (int64_t{1} << 20) ? (int64_t{1} << 20) : b));
}

template <class F>
__global__ void for_each_kernel(int64_t n, F f) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        f(i);
}

// f(i) for every i in [0, n), on the device: one thread per element, grid-stride.
template <class F>
void for_each(const Device& dev, int64_t n, F f, const char* layer) {
    if (n <= 0) return;
#if defined(MITHRIL_CUDA_EMULATE)
    // Emulated: the grid-stride loop's iterations in order, without a fiber per thread (nothing in
    // f may wait for another thread: an elementwise kernel has no barrier).
    (void)dev;
    (void)layer;
    for (int64_t i = 0; i < n; ++i) f(i);
#else
    MITHRIL_CUDA_LAUNCH(blocks_for(n), kThreads, 0, stream_of(dev), for_each_kernel<F>)(n, f);
    Device::check_launch(layer);
#endif
}

// Device-to-device copy and zero fill on the program's stream.
inline void copy(const Device& dev, void* dst, const void* src, std::size_t bytes, const char* layer) {
    if (bytes == 0 || dst == src) return;
    if (cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(dev)) != cudaSuccess)
        Device::check_launch(layer);
}
inline void zero(const Device& dev, void* dst, std::size_t bytes, const char* layer) {
    if (bytes == 0) return;
    if (cudaMemsetAsync(dst, 0, bytes, stream_of(dev)) != cudaSuccess) Device::check_launch(layer);
}

// Reports an index outside [0, limit) found by `layer` into the device's status word (first one wins).
__device__ inline void report_index(std::int64_t* status, const char* layer, std::int64_t value, std::int64_t limit) {
    if (atomicCAS(reinterpret_cast<unsigned long long*>(status), 0ull, 1ull) == 0ull) {
        status[1] = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(layer));
        status[2] = value;
        status[3] = limit;
    }
}

// out[t, :] = weight[index[t], :] for n indices into a [rows, dim] table; an index outside [0, rows)
// is reported (Device::check_status) and its row written as NaN.
template <class I>
void embedding(const Device& dev, float* out, const I* index, const float* weight, int64_t n, int64_t dim,
               int64_t rows, const char* layer) {
    std::int64_t* status = dev.status();
    for_each(
        dev, n * dim,
        [=] __device__(int64_t i) {
            const int64_t t = i / dim, r = static_cast<int64_t>(index[t]);
            if (r < 0 || r >= rows) {
                if (i % dim == 0) report_index(status, layer, r, rows);
                out[i] = NAN;
                return;
            }
            out[i] = weight[r * dim + i % dim];
        },
        layer);
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024) ---------------------------------
__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// The sum (or max) of v over the block, returned to every thread; `red` is 32 floats of shared memory.
__device__ inline float block_sum(float v, float* red) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
    v = warp_sum(v);
    __syncthreads();  // red may still be read by a previous reduction
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < warps ? red[lane] : 0.f;
    return warp_sum(v);
}
__device__ inline float block_max(float v, float* red) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < warps ? red[lane] : -INFINITY;
    return warp_max(v);
}

// ---- softmax and log-softmax over the last axis: one block per row --------------------------------
template <bool Log>
__global__ void softmax_rows_kernel(float* y, const float* x, int64_t cols) {
    __shared__ float red[32];
    const float* xr = x + blockIdx.x * cols;
    float* yr = y + blockIdx.x * cols;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m, red);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += expf(xr[j] - m);
    s = block_sum(s, red);
    if constexpr (Log) {
        const float lse = m + logf(s);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - lse;
    } else {
        const float r = 1.f / s;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - m) * r;
    }
}
template <bool Log>
void softmax_rows(const Device& dev, float* y, const float* x, int64_t rows, int64_t cols, const char* layer) {
    if (rows <= 0 || cols <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(rows), kThreads, 0, stream_of(dev), softmax_rows_kernel<Log>)(y, x, cols);
    Device::check_launch(layer);
}

// ---- layer norm over the last `cols` elements of each row: one block per row ----------------------
// y = (x - mean) / sqrt(var + eps) * weight + bias (weight, bias: cols floats or null); the mean and
// then the variance of (x - mean), as the CPU kernel does. mean_out / rstd_out: rows floats or null.
__global__ inline void layer_norm_rows_kernel(float* y, float* mean_out, float* rstd_out, const float* x,
                                              const float* weight, const float* bias, int64_t cols, float eps) {
    __shared__ float red[32];
    const float* xr = x + blockIdx.x * cols;
    float* yr = y + blockIdx.x * cols;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
    const float mean = block_sum(s, red) / static_cast<float>(cols);
    float q = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const float d = xr[j] - mean;
        q += d * d;
    }
    const float rstd = rsqrtf(block_sum(q, red) / static_cast<float>(cols) + eps);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = (xr[j] - mean) * rstd;
        if (weight) v *= weight[j];
        if (bias) v += bias[j];
        yr[j] = v;
    }
    if (threadIdx.x == 0) {
        if (mean_out) mean_out[blockIdx.x] = mean;
        if (rstd_out) rstd_out[blockIdx.x] = rstd;
    }
}
inline void layer_norm_rows(const Device& dev, float* y, float* mean_out, float* rstd_out, const float* x,
                            const float* weight, const float* bias, int64_t rows, int64_t cols, double eps,
                            const char* layer) {
    if (rows <= 0 || cols <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(rows), kThreads, 0, stream_of(dev), layer_norm_rows_kernel)(
        y, mean_out, rstd_out, x, weight, bias, cols, static_cast<float>(eps));
    Device::check_launch(layer);
}

// ---- scaled dot-product attention: one block per (batch entry, query row) -------------------------
// out[b, i, :] = softmax_j(scale * q[b, i] . k[b, j], masked: j > i with `causal`, mask[i, j] == 0)
// v[b, j, :]; a fully masked row gives zeros (as the CPU kernel). The row's scores stay in shared
// memory (len_kv floats), so len_kv is bounded by attention_max_keys(); q [batch, len_q, dim_qk],
// k [batch, len_kv, dim_qk], v [batch, len_kv, dim_v], mask [len_q, len_kv] or null.
// 44 KiB of scores: with the block's reduction scratch, under the 48 KiB of shared memory a block gets
// without cudaFuncSetAttribute.
inline constexpr int64_t attention_max_keys() { return 11 * 1024; }
__global__ inline void attention_rows_kernel(float* out, const float* q, const float* k, const float* v,
                                             const std::uint8_t* mask, int64_t len_q, int64_t len_kv, int64_t dim_qk,
                                             int64_t dim_v, float scale, bool causal) {
    MITHRIL_CUDA_DYNAMIC_SHARED(float, scores);
    __shared__ float red[32];
    const int64_t b = blockIdx.x / len_q, i = blockIdx.x % len_q;
    const float* qi = q + (b * len_q + i) * dim_qk;
    const float* kb = k + b * len_kv * dim_qk;
    const float* vb = v + b * len_kv * dim_v;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < len_kv; j += blockDim.x) {
        float s = -INFINITY;
        if (!(causal && j > i) && !(mask && !mask[i * len_kv + j])) {
            s = 0.f;
            for (int64_t e = 0; e < dim_qk; ++e) s += qi[e] * kb[j * dim_qk + e];
            s *= scale;
        }
        scores[j] = s;
        m = fmaxf(m, s);
    }
    m = block_max(m, red);
    float* oi = out + (b * len_q + i) * dim_v;
    if (m == -INFINITY) {  // every key masked
        for (int64_t e = threadIdx.x; e < dim_v; e += blockDim.x) oi[e] = 0.f;
        return;
    }
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < len_kv; j += blockDim.x) {
        const float p = expf(scores[j] - m);
        scores[j] = p;
        sum += p;
    }
    sum = block_sum(sum, red);  // its barriers also publish scores[] to the whole block
    const float r = 1.f / sum;
    for (int64_t e = threadIdx.x; e < dim_v; e += blockDim.x) {
        float acc = 0.f;
        for (int64_t j = 0; j < len_kv; ++j) acc += scores[j] * vb[j * dim_v + e];
        oi[e] = acc * r;
    }
}
inline void attention_rows(const Device& dev, float* out, const float* q, const float* k, const float* v,
                           const std::uint8_t* mask, int64_t batch, int64_t len_q, int64_t len_kv, int64_t dim_qk,
                           int64_t dim_v, double scale, bool causal, const char* layer) {
    if (batch <= 0 || len_q <= 0) return;
    if (len_kv > attention_max_keys())
        throw Error(std::string(layer) + ": attention over " + std::to_string(len_kv) +
                    " keys; the CUDA target's attention kernel takes at most " +
                    std::to_string(attention_max_keys()));
    const size_t shared = static_cast<size_t>(len_kv > 0 ? len_kv : 1) * sizeof(float);
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(batch * len_q), kThreads, shared, stream_of(dev), attention_rows_kernel)(
        out, q, k, v, mask, len_q, len_kv, dim_qk, dim_v, static_cast<float>(scale), causal);
    Device::check_launch(layer);
}

// ---- convolution and pooling (NCHW): one thread per output element -------------------------------
// Direct loops, correct for every geometry (groups, strides, padding, dilation); the fast paths
// (implicit GEMM, cuDNN) are still to come. y [n, c_out, out_h, out_w] = conv(x, w) + bias.
inline void conv2d(const Device& dev, float* y, const float* x, const float* w, const float* bias, const k::Conv2dGeom& g,
                   const char* layer) {
    const k::Conv2dGeom c = g;
    const int64_t Cg = c.c_in / c.groups, Kg = c.c_out / c.groups, P = c.out_h * c.out_w;
    for_each(
        dev, c.n * c.c_out * P,
        [=] __device__(int64_t i) {
            const int64_t ow = i % c.out_w, oh = i / c.out_w % c.out_h, k = i / P % c.c_out, n = i / (P * c.c_out);
            const float* xg = x + (n * c.c_in + k / Kg * Cg) * c.h * c.w;
            const float* wk = w + k * Cg * c.kernel_h * c.kernel_w;
            float acc = bias ? bias[k] : 0.f;
            for (int64_t ci = 0; ci < Cg; ++ci)
                for (int64_t kh = 0; kh < c.kernel_h; ++kh) {
                    const int64_t ih = oh * c.stride_h - c.pad_h + kh * c.dil_h;
                    if (ih < 0 || ih >= c.h) continue;
                    for (int64_t kw = 0; kw < c.kernel_w; ++kw) {
                        const int64_t iw = ow * c.stride_w - c.pad_w + kw * c.dil_w;
                        if (iw < 0 || iw >= c.w) continue;
                        acc += xg[(ci * c.h + ih) * c.w + iw] * wk[(ci * c.kernel_h + kh) * c.kernel_w + kw];
                    }
                }
            y[i] = acc;
        },
        layer);
}

// Max pooling as torch.nn.functional.max_pool2d: the first maximum of each window (NaN wins),
// -inf for a window with no element.
inline void max_pool2d(const Device& dev, float* y, const float* x, const k::Pool2dGeom& g, const char* layer) {
    const k::Pool2dGeom c = g;
    for_each(
        dev, c.n * c.c * c.out_h * c.out_w,
        [=] __device__(int64_t i) {
            const int64_t ow = i % c.out_w, oh = i / c.out_w % c.out_h, pl = i / (c.out_h * c.out_w);
            const float* xp = x + pl * c.h * c.w;
            float best = -INFINITY;
            for (int64_t kh = 0; kh < c.kernel_h; ++kh) {
                const int64_t ih = oh * c.stride_h - c.pad_h + kh * c.dil_h;
                if (ih < 0 || ih >= c.h) continue;
                for (int64_t kw = 0; kw < c.kernel_w; ++kw) {
                    const int64_t iw = ow * c.stride_w - c.pad_w + kw * c.dil_w;
                    if (iw < 0 || iw >= c.w) continue;
                    const float v = xp[ih * c.w + iw];
                    if ((v > best || v != v) && best == best) best = v;
                }
            }
            y[i] = best;
        },
        layer);
}

// Average pooling as torch.nn.functional.avg_pool2d (count_include_pad, divisor_override), summed in
// double as the CPU kernel.
inline void avg_pool2d(const Device& dev, float* y, const float* x, const k::Pool2dGeom& g, const char* layer) {
    const k::Pool2dGeom c = g;
    for_each(
        dev, c.n * c.c * c.out_h * c.out_w,
        [=] __device__(int64_t i) {
            const int64_t ow = i % c.out_w, oh = i / c.out_w % c.out_h, pl = i / (c.out_h * c.out_w);
            int64_t h0 = oh * c.stride_h - c.pad_h, h1 = h0 + c.kernel_h < c.h + c.pad_h ? h0 + c.kernel_h : c.h + c.pad_h;
            int64_t w0 = ow * c.stride_w - c.pad_w, w1 = w0 + c.kernel_w < c.w + c.pad_w ? w0 + c.kernel_w : c.w + c.pad_w;
            const int64_t pool = (h1 - h0) * (w1 - w0);
            h0 = h0 < 0 ? 0 : h0;
            w0 = w0 < 0 ? 0 : w0;
            h1 = h1 > c.h ? c.h : h1;
            w1 = w1 > c.w ? c.w : w1;
            if (h0 >= h1 || w0 >= w1) {
                y[i] = 0.f;
                return;
            }
            double s = 0;
            for (int64_t h = h0; h < h1; ++h)
                for (int64_t w = w0; w < w1; ++w) s += x[pl * c.h * c.w + h * c.w + w];
            const int64_t div = c.divisor_override > 0 ? c.divisor_override
                                : c.count_include_pad     ? pool
                                                          : (h1 - h0) * (w1 - w0);
            y[i] = static_cast<float>(s / static_cast<double>(div));
        },
        layer);
}

// y[plane] = the mean of the plane's hw elements (GlobalAvgPool2d): one block per plane, in double.
__global__ inline void plane_mean_kernel(float* y, const float* x, int64_t hw) {
    __shared__ double red[32];
    const float* xp = x + blockIdx.x * hw;
    double s = 0;
    for (int64_t j = threadIdx.x; j < hw; j += blockDim.x) s += xp[j];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0;
        for (int k = 0; k < (static_cast<int>(blockDim.x) + 31) / 32; ++k) t += red[k];
        y[blockIdx.x] = static_cast<float>(t / static_cast<double>(hw));
    }
}
inline void global_avg_pool2d(const Device& dev, float* y, const float* x, int64_t planes, int64_t hw, const char* layer) {
    if (planes <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(planes), kThreads, 0, stream_of(dev), plane_mean_kernel)(y, x, hw);
    Device::check_launch(layer);
}

}  // namespace mithril::rt::cuda
#include "mithril/rt/cuda/backward.cuh"
#include "mithril/rt/cuda/train.cuh"
