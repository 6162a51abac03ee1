// cuda/device.h - the CUDA part of the runtime that host code sees (plain C++: a generated CUDA
// program's header and main program include it without nvcc). Library mithril_runtime_cuda
// (src/cuda/device.cu), built only where the CUDA toolkit is (MITHRIL_RT_CUDA).
//
// A program owns one Device: the GPU it runs on, one stream every launch of the program goes to,
// and a cuBLAS handle bound to that stream. Device memory comes from device_allocator() (an
// Arena in MemorySpace::Device); data crosses between host and device only through to_device /
// to_host, at the program's edges (inputs, outputs, weights). Every CUDA or cuBLAS failure is an
// mithril::rt::Error naming the call and the error ("cudaMalloc(268435456 bytes): out of memory
// (free 1.2 GiB of 80 GiB)"), never a bare error code; a machine without a GPU gets "no CUDA
// device: ..." when the program starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mithril/rt/memory.h"
#include "mithril/rt/profile.h"

namespace mithril::rt::cuda {

// The allocator of device memory (cudaMalloc, zero-filled with cudaMemset): MemorySpace::Device.
Allocator& device_allocator();

class Device {
public:
    // The current CUDA device (CUDA_VISIBLE_DEVICES picks it), a stream and a cuBLAS handle.
    // Throws Error when there is no usable GPU.
    Device();
    ~Device();
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;

    // cudaStream_t and cublasHandle_t, as the generated code's .cu source casts them.
    void* stream() const { return stream_; }
    void* cublas() const { return cublas_; }
    // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)"
    const std::string& description() const { return description_; }

    // Copies on the program's stream; to_host waits for it (the data is there on return).
    void to_device(void* dst, const void* src, std::size_t bytes) const;
    void to_host(void* dst, const void* src, std::size_t bytes) const;
    // Waits for every launch so far; a failed kernel surfaces here as an Error naming `what`.
    void synchronize(const char* what = "the program's kernels") const;
    // After a launch: an invalid configuration or a missing kernel image is an Error naming `kernel`.
    static void check_launch(const char* kernel);
    // Bad data a kernel found (an embedding index out of range): four int64 in device memory,
    // {found, the layer's name (a const char* of the program, as an integer), value, limit}; the
    // first kernel to find one sets them (atomicCAS on `found`). check_status() reads them after
    // the program's copies to the host and throws "LAYER: index V is out of range [0, L)".
    std::int64_t* status() const { return status_; }
    void check_status() const;

    // --profile on the device: a layer's launches lie between two events recorded on the stream
    // (profile_begin, profile_end); their times are read when the program next waits for the device
    // anyway (flush_profile, at the end of run(), run_backward() and a training step), so profiling
    // adds no synchronization between layers. DeviceProfileScope below is what generated code uses.
    void* profile_begin() const;
    void profile_end(void* start, const ProfileNode& node, double flops) const;
    void flush_profile() const;

private:
    struct Timing {
        const ProfileNode* node;
        double flops;
        void* start;
        void* stop;
    };
    mutable std::vector<Timing> timings_;
    mutable std::vector<void*> spare_events_;
    int ordinal_ = 0;
    void* stream_ = nullptr;
    void* cublas_ = nullptr;
    std::int64_t* status_ = nullptr;
    std::string description_;
};

// Times one layer's device work while profiling is on (one predictable branch while it is off).
class DeviceProfileScope {
public:
    DeviceProfileScope(const Device& dev, const ProfileNode& node, double flops)
        : dev_(dev), node_(node), flops_(flops), start_(profiling() ? dev.profile_begin() : nullptr) {}
    ~DeviceProfileScope() {
        if (start_) dev_.profile_end(start_, node_, flops_);
    }
    DeviceProfileScope(const DeviceProfileScope&) = delete;
    DeviceProfileScope& operator=(const DeviceProfileScope&) = delete;

private:
    const Device& dev_;
    const ProfileNode& node_;
    double flops_;
    void* start_;
};

// Row-major C[M, N] = alpha * op(A) op(B) + beta * C in float32 through cuBLAS on the device's stream,
// op(A) [M, K] (A^T stored when trans_a), op(B) [K, N] (B^T stored when trans_b); leading
// dimensions as stored. `tf32` lets cuBLAS use TF32 tensor cores (off: IEEE float32).
void gemm(const Device& dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool tf32 = false);
// The same over `batch` products, operands `stride_*` floats apart.
void gemm_batched(const Device& dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b, float beta,
                  float* C, int64_t ldc, int64_t stride_c, int64_t batch, bool tf32 = false);

}  // namespace mithril::rt::cuda
