// cuda/emulate.h - the CUDA language subset the runtime's kernels and generated CUDA code use, on
// the CPU: a test harness, so a machine without a GPU runs a CUDA program's own code and compares
// its results with the CPU target. Not a performance path and not a simulator of the hardware.
//
// A generated CUDA project built with -DMITHRIL_CUDA_EMULATE=ON (or `mithril run --target cuda
// --emulate-gpu`) compiles its .cu sources as C++ with MITHRIL_CUDA_EMULATE defined; kernels.cuh
// then includes this header instead of <cuda_runtime.h>, and mithril_runtime_cuda is built from
// src/cuda/emulate.cpp (device memory is host memory, cuBLAS is the runtime's CPU BLAS).
//
// What is emulated: grids and blocks of up to 1024 threads (dim3, threadIdx, blockIdx, blockDim,
// gridDim); each block's threads run as fibers on one OS thread, so __syncthreads() and the warp
// shuffles (__shfl_sync, __shfl_xor_sync, __shfl_down_sync, __shfl_up_sync) wait for their block
// or warp as on a GPU; static __shared__ memory (per OS thread, reused block after block) and the
// launch's dynamic shared memory (MITHRIL_CUDA_DYNAMIC_SHARED); atomics (blocks run one at a time).
// Launch limits are checked as the driver does (threads per block, grid size, 48 KiB of dynamic
// shared memory): a bad configuration is an Error naming the kernel, where CUDA would report
// "invalid configuration argument".
//
// What is not: concurrency between blocks (a race between blocks gives the sequential answer),
// the memory model (a missing __syncthreads between a write and another thread's read is found only
// when the reader runs first), device math's precision (host libm), and speed.
#pragma once

#if !defined(MITHRIL_CUDA_EMULATE) || defined(__CUDACC__)
#error "cuda/emulate.h is for C++ builds of CUDA sources with MITHRIL_CUDA_EMULATE (not for nvcc)"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

// ---- the language's qualifiers -----------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Static shared memory: one copy per OS thread; blocks run one after another on it.
#define __shared__ static thread_local

namespace mithril::rt::cuda::emu {

struct uint3 {
    unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The running thread's coordinates (valid inside a kernel).
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
// The running block's dynamic shared memory (the launch's `shared` bytes, 16-byte aligned).
void* dynamic_shared();

// Barriers: every thread of the block (__syncthreads), or every thread of the caller's warp that
// has not exited (the warp collectives).
void sync_block();
void sync_warp();
// Shuffle exchange: the running thread publishes 8 bytes, waits for its warp, reads lane `src`'s
// (its own when src is outside the warp or the block), and waits again before the slot is reused.
std::uint64_t exchange(std::uint64_t mine, int src_lane);
int lane();

// Runs body(ctx) on every thread of a grid (blocks in order, each block's threads as fibers).
// Throws Error for a configuration CUDA refuses, naming `kernel`.
void run_grid(dim3 grid, dim3 block, std::size_t shared, void (*body)(void*), void* ctx, const char* kernel);

inline dim3 as_dim3(dim3 d) { return d; }
template <class I, class = std::enable_if_t<std::is_integral_v<I>>>
dim3 as_dim3(I n) {
    return dim3(static_cast<unsigned>(n));
}

// `MITHRIL_CUDA_LAUNCH(grid, block, shared, stream, kernel)(args...)`: the arguments are copied (as
// CUDA copies them to the device), then every thread calls kernel(args...).
template <class Kernel>
struct Launch {
    dim3 grid, block;
    std::size_t shared;
    Kernel* kernel;
    const char* name;
    template <class... Args>
    void operator()(Args&&... args) const {
        auto call = [k = kernel, ... a = std::forward<Args>(args)]() { k(a...); };
        run_grid(grid, block, shared, [](void* c) { (*static_cast<decltype(call)*>(c))(); }, &call, name);
    }
};
template <class Kernel>
Launch<Kernel> launch(dim3 grid, dim3 block, std::size_t shared, Kernel* kernel, const char* name) {
    return Launch<Kernel>{grid, block, shared, kernel, name};
}

template <class T>
std::uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffles move values of at most 8 bytes");
    std::uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
T from_bits(std::uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

}  // namespace mithril::rt::cuda::emu

#define MITHRIL_CUDA_LAUNCH(grid, block, shared, stream, ...)                                                    \
    (static_cast<void>(stream),                                                                                     \
     ::mithril::rt::cuda::emu::launch(::mithril::rt::cuda::emu::as_dim3(grid), ::mithril::rt::cuda::emu::as_dim3(block), \
                                      (shared), &__VA_ARGS__, #__VA_ARGS__))
#define MITHRIL_CUDA_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::mithril::rt::cuda::emu::dynamic_shared())

using dim3 = ::mithril::rt::cuda::emu::dim3;
#define threadIdx (::mithril::rt::cuda::emu::thread_idx())
#define blockIdx (::mithril::rt::cuda::emu::block_idx())
#define blockDim (::mithril::rt::cuda::emu::block_dim())
#define gridDim (::mithril::rt::cuda::emu::grid_dim())

inline void __syncthreads() { ::mithril::rt::cuda::emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::mithril::rt::cuda::emu::sync_warp(); }

template <class T>
T __shfl_sync(unsigned, T v, int src, int width = 32) {
    namespace e = ::mithril::rt::cuda::emu;
    const int lane = e::lane(), base = lane / width * width;
    return e::from_bits<T>(e::exchange(e::to_bits(v), base + ((src % width) + width) % width));
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    namespace e = ::mithril::rt::cuda::emu;
    const int lane = e::lane(), src = lane ^ mask;
    return e::from_bits<T>(e::exchange(e::to_bits(v), src / width == lane / width ? src : lane));
}
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    namespace e = ::mithril::rt::cuda::emu;
    const int lane = e::lane(), src = lane + static_cast<int>(delta);
    return e::from_bits<T>(e::exchange(e::to_bits(v), src / width == lane / width ? src : lane));
}
template <class T>
T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    namespace e = ::mithril::rt::cuda::emu;
    const int lane = e::lane(), src = lane - static_cast<int>(delta);
    return e::from_bits<T>(e::exchange(e::to_bits(v), src >= 0 && src / width == lane / width ? src : lane));
}

// Atomics: blocks run one at a time and a block's fibers switch only at barriers, so a plain
// read-modify-write is atomic here.
template <class T>
T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
template <class T>
T atomicMax(T* p, T v) {
    const T old = *p;
    if (v > old) *p = v;
    return old;
}
template <class T>
T atomicMin(T* p, T v) {
    const T old = *p;
    if (v < old) *p = v;
    return old;
}
template <class T>
T atomicExch(T* p, T v) {
    const T old = *p;
    *p = v;
    return old;
}
template <class T>
T atomicCAS(T* p, T compare, T v) {
    const T old = *p;
    if (old == compare) *p = v;
    return old;
}

// Device math the host library lacks.
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }

// The runtime API calls kernels.cuh makes, on host memory (the program's one stream is implicit:
// everything runs in order, at once).
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
struct CUstream_st;
using cudaStream_t = CUstream_st*;
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind, cudaStream_t = nullptr) {
    if (bytes) std::memmove(dst, src, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t = nullptr) {
    if (bytes) std::memset(dst, value, bytes);
    return cudaSuccess;
}
