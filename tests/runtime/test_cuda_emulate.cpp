// The CPU emulation of CUDA (cuda/emulate.h, src/cuda/emulate.cpp): what generated CUDA code relies
// on (blocks, barriers, warp shuffles, shared memory, atomics, launch limits, cuBLAS's GEMM) behaves
// as on a GPU. This file is compiled with MITHRIL_CUDA_EMULATE (tests/runtime/CMakeLists.txt).
#include <catch2/catch.hpp>

#include <numeric>
#include <vector>

#include "mithril/rt/cuda/kernels.cuh"
#include "mithril/rt/error.h"

namespace cu = mithril::rt::cuda;

namespace {

__global__ void rotate_through_shared(float* out, const float* in) {
    __shared__ float tile[256];
    const unsigned t = threadIdx.x, n = blockDim.x;
    tile[t] = in[blockIdx.x * n + t];
    __syncthreads();  // without it, thread t would read tile[t + 1] before thread t + 1 wrote it
    out[blockIdx.x * n + t] = tile[(t + 1) % n];
}

__global__ void block_sums(float* out, const float* in, int64_t cols) {
    __shared__ float red[32];
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += in[blockIdx.x * cols + j];
    s = cu::block_sum(s, red);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}

__global__ void shuffles(int* out) {
    const int lane = static_cast<int>(threadIdx.x % 32), t = static_cast<int>(threadIdx.x);
    out[4 * t + 0] = __shfl_xor_sync(0xffffffffu, t, 1);
    out[4 * t + 1] = __shfl_down_sync(0xffffffffu, t, 4);
    out[4 * t + 2] = __shfl_up_sync(0xffffffffu, t, 2);
    out[4 * t + 3] = __shfl_sync(0xffffffffu, t, 5);  // lane 5 of this warp, for every lane
    (void)lane;
}

__global__ void count_blocks(unsigned long long* counter, int* seen) {
    if (threadIdx.x == 0) atomicAdd(counter, 1ull);
    seen[blockIdx.y * gridDim.x + blockIdx.x] = static_cast<int>(blockIdx.x + 100 * blockIdx.y);
}

__global__ void reverse_dynamic(float* out, const float* in, int n) {
    MITHRIL_CUDA_DYNAMIC_SHARED(float, buf);
    for (int j = static_cast<int>(threadIdx.x); j < n; j += static_cast<int>(blockDim.x)) buf[j] = in[j];
    __syncthreads();
    for (int j = static_cast<int>(threadIdx.x); j < n; j += static_cast<int>(blockDim.x)) out[j] = buf[n - 1 - j];
}

__global__ void mixed_barriers(float* out) {
    if (threadIdx.x == 0)
        __syncthreads();
    else
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);
}

__global__ void nothing() {}

}  // namespace

TEST_CASE("CUDA emulation: for_each covers every index once, grid-stride") {
    cu::Device dev;
    std::vector<float> y(100000, -1.f);
    float* p = y.data();
    cu::for_each(dev, static_cast<int64_t>(y.size()), [=] __device__(int64_t i) { p[i] += static_cast<float>(i) + 1.f; }, "t");
    for (size_t i = 0; i < y.size(); ++i) REQUIRE(y[i] == static_cast<float>(i));
}

TEST_CASE("CUDA emulation: __syncthreads orders shared memory between threads") {
    std::vector<float> in(3 * 256), out(in.size());
    std::iota(in.begin(), in.end(), 0.f);
    MITHRIL_CUDA_LAUNCH(3, 256, 0, nullptr, rotate_through_shared)(out.data(), in.data());
    for (int b = 0; b < 3; ++b)
        for (int t = 0; t < 256; ++t) REQUIRE(out[b * 256 + t] == in[b * 256 + (t + 1) % 256]);
}

TEST_CASE("CUDA emulation: block reductions through warp shuffles and shared memory") {
    const int64_t rows = 5, cols = 1000;
    std::vector<float> in(rows * cols), out(rows);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 7);
    for (unsigned threads : {32u, 96u, 256u, 1024u}) {
        MITHRIL_CUDA_LAUNCH(rows, threads, 0, nullptr, block_sums)(out.data(), in.data(), cols);
        for (int64_t r = 0; r < rows; ++r) {
            double want = 0;
            for (int64_t j = 0; j < cols; ++j) want += in[r * cols + j];
            REQUIRE(out[r] == Approx(want));
        }
    }
}

TEST_CASE("CUDA emulation: shuffles read the lane CUDA defines") {
    const int n = 64;
    std::vector<int> out(4 * n);
    MITHRIL_CUDA_LAUNCH(1, n, 0, nullptr, shuffles)(out.data());
    for (int t = 0; t < n; ++t) {
        const int lane = t % 32, base = t - lane;
        CHECK(out[4 * t + 0] == (t ^ 1));
        CHECK(out[4 * t + 1] == (lane + 4 < 32 ? t + 4 : t));   // beyond the warp: the caller's own value
        CHECK(out[4 * t + 2] == (lane >= 2 ? t - 2 : t));
        CHECK(out[4 * t + 3] == base + 5);
    }
}

TEST_CASE("CUDA emulation: 2-D grids, block indices and atomics") {
    unsigned long long counter = 0;
    std::vector<int> seen(6 * 4, -1);
    MITHRIL_CUDA_LAUNCH(dim3(6, 4), 64, 0, nullptr, count_blocks)(&counter, seen.data());
    CHECK(counter == 24);
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 6; ++x) CHECK(seen[y * 6 + x] == x + 100 * y);
}

TEST_CASE("CUDA emulation: dynamic shared memory holds the launch's bytes") {
    const int n = 5000;
    std::vector<float> in(n), out(n);
    std::iota(in.begin(), in.end(), 1.f);
    MITHRIL_CUDA_LAUNCH(1, 128, n * sizeof(float), nullptr, reverse_dynamic)(out.data(), in.data(), n);
    for (int j = 0; j < n; ++j) REQUIRE(out[j] == in[n - 1 - j]);
}

TEST_CASE("CUDA emulation: configurations CUDA refuses are errors naming the kernel") {
    using Catch::Matchers::Contains;
    REQUIRE_THROWS_WITH(MITHRIL_CUDA_LAUNCH(1, 2048, 0, nullptr, nothing)(),
                        Contains("launching nothing: invalid configuration (2048x1x1 threads per block"));
    REQUIRE_THROWS_WITH(MITHRIL_CUDA_LAUNCH(0, 32, 0, nullptr, nothing)(), Contains("grid 0x1x1"));
    REQUIRE_THROWS_WITH(MITHRIL_CUDA_LAUNCH(1, 32, 64 * 1024, nullptr, nothing)(), Contains("65536 bytes of dynamic shared memory"));
    std::vector<float> out(32);
    REQUIRE_THROWS_WITH(MITHRIL_CUDA_LAUNCH(1, 32, 0, nullptr, mixed_barriers)(out.data()),
                        Contains("mixed_barriers deadlocks: its threads wait at different barriers"));
    // The emulation is usable again after an error.
    std::vector<float> in(512, 1.f);
    out.assign(512, 0.f);
    MITHRIL_CUDA_LAUNCH(2, 256, 0, nullptr, rotate_through_shared)(out.data(), in.data());
    CHECK(out == in);
}

TEST_CASE("CUDA emulation: the device's GEMM is cuBLAS's row-major contract") {
    cu::Device dev;
    const int64_t M = 3, N = 4, K = 5, batch = 2;
    std::vector<float> A(batch * K * M), B(batch * N * K), C(batch * M * N, 1.f);
    for (size_t i = 0; i < A.size(); ++i) A[i] = static_cast<float>(i % 5) - 2.f;
    for (size_t i = 0; i < B.size(); ++i) B[i] = static_cast<float>(i % 3) + 0.5f;
    // C = 2 A^T B^T + 1 C, A stored [K, M], B stored [N, K].
    cu::gemm_batched(dev, true, true, M, N, K, 2.f, A.data(), M, K * M, B.data(), K, N * K, 1.f, C.data(), N, M * N, batch);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double want = 1;
                for (int64_t k = 0; k < K; ++k) want += 2.0 * A[b * K * M + k * M + i] * B[b * N * K + j * K + k];
                REQUIRE(C[b * M * N + i * N + j] == Approx(want));
            }
    CHECK_THAT(dev.description(), Catch::Matchers::Contains("emulated on the CPU"));
}
