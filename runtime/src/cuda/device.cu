// The CUDA part of the runtime (cuda/device.h): the device allocator, the program's device, stream
// and cuBLAS handle, host<->device copies and float32 GEMM through cuBLAS. Every failure is an
// Error naming the call.
#include "mithril/rt/cuda/device.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <limits>
#include <string>

#include "mithril/rt/error.h"

namespace mithril::rt::cuda {

namespace {

[[noreturn]] void fail(const std::string& call, cudaError_t e) {
    throw Error(call + ": " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
}
void check(cudaError_t e, const std::string& call) {
    if (e != cudaSuccess) fail(call, e);
}
void check(cublasStatus_t s, const char* call) {
    if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string(call) + ": " + cublasGetStatusString(s));
}

std::string gib(std::size_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

class DeviceAllocator final : public Allocator {
public:
    MemorySpace space() const override { return MemorySpace::Device; }
    const char* name() const override { return "cuda"; }
    void* allocate(std::size_t bytes, std::size_t alignment) override {
        if (bytes == 0) return nullptr;
        if (alignment > 256) throw Error("device memory: alignment " + std::to_string(alignment) + " exceeds cudaMalloc's 256 bytes");
        void* p = nullptr;
        const cudaError_t e = cudaMalloc(&p, bytes);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();  // clear it, so the next call does not report it again
            std::size_t free = 0, total = 0;
            std::string room;
            if (cudaMemGetInfo(&free, &total) == cudaSuccess) room = " (free " + gib(free) + " of " + gib(total) + ")";
            throw Error("cudaMalloc(" + std::to_string(bytes) + " bytes): " + cudaGetErrorString(e) + room);
        }
        check(cudaMemset(p, 0, bytes), "cudaMemset(" + std::to_string(bytes) + " bytes)");
        return p;
    }
    void deallocate(void* block, std::size_t) noexcept override {
        if (block) (void)cudaFree(block);
    }
};

int as_int(int64_t v, const char* what) {
    if (v < 0 || v > std::numeric_limits<int>::max())
        throw Error(std::string("cuBLAS GEMM: ") + what + " = " + std::to_string(v) + " does not fit cuBLAS's int");
    return static_cast<int>(v);
}

cudaStream_t stream_of(const Device& d) { return static_cast<cudaStream_t>(d.stream()); }
cublasHandle_t blas_of(const Device& d) { return static_cast<cublasHandle_t>(d.cublas()); }

}  // namespace

Allocator& device_allocator() {
    static DeviceAllocator allocator;
    return allocator;
}

Device::Device() {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        throw Error(std::string("no CUDA device: ") + (e != cudaSuccess ? cudaGetErrorString(e) : "none found") +
                    " (this program was compiled with --target cuda; compile the model with --target cpu to run it "
                    "on the CPU)");
    check(cudaGetDevice(&ordinal_), "cudaGetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, ordinal_), "cudaGetDeviceProperties");
    description_ = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                   std::to_string(prop.multiProcessorCount) + " SMs, " + gib(prop.totalGlobalMem) + ")";
    cudaStream_t s = nullptr;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    stream_ = s;
    cublasHandle_t h = nullptr;
    check(cublasCreate(&h), "cublasCreate");
    cublas_ = h;
    check(cublasSetStream(h, s), "cublasSetStream");
    status_ = static_cast<std::int64_t*>(device_allocator().allocate(4 * sizeof(std::int64_t), 8));
}

Device::~Device() {
    for (auto& t : timings_) spare_events_.insert(spare_events_.end(), {t.start, t.stop});
    for (void* e : spare_events_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(e));
    device_allocator().deallocate(status_, 4 * sizeof(std::int64_t));
    if (cublas_) (void)cublasDestroy(static_cast<cublasHandle_t>(cublas_));
    if (stream_) (void)cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

void Device::to_device(void* dst, const void* src, std::size_t bytes) const {
    if (bytes == 0) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(*this)),
          "cudaMemcpy to the device (" + std::to_string(bytes) + " bytes)");
}

void Device::to_host(void* dst, const void* src, std::size_t bytes) const {
    if (bytes > 0)
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(*this)),
              "cudaMemcpy to the host (" + std::to_string(bytes) + " bytes)");
    synchronize("the copy to the host");
}

void Device::synchronize(const char* what) const {
    check(cudaStreamSynchronize(stream_of(*this)), std::string("waiting for ") + what);
}

void Device::check_status() const {
    std::int64_t word[4] = {};
    to_host(word, status_, sizeof word);
    if (word[0] == 0) return;
    check(cudaMemsetAsync(status_, 0, sizeof word, stream_of(*this)), "cudaMemset");
    const char* layer = reinterpret_cast<const char*>(static_cast<std::intptr_t>(word[1]));
    throw Error(std::string(layer ? layer : "a layer") + ": index " + std::to_string(word[2]) + " is out of range [0, " +
                std::to_string(word[3]) + ")");
}

void* Device::profile_begin() const {
    cudaEvent_t e = nullptr;
    if (!spare_events_.empty()) {
        e = static_cast<cudaEvent_t>(spare_events_.back());
        spare_events_.pop_back();
    } else {
        check(cudaEventCreate(&e), "cudaEventCreate");
    }
    check(cudaEventRecord(e, stream_of(*this)), "cudaEventRecord");
    return e;
}

void Device::profile_end(void* start, const ProfileNode& node, double flops) const {
    timings_.push_back(Timing{&node, flops, start, profile_begin()});
}

void Device::flush_profile() const {
    if (timings_.empty()) return;
    synchronize("the profiled layers");
    for (const Timing& t : timings_) {
        float ms = 0.f;
        check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(t.start), static_cast<cudaEvent_t>(t.stop)), "cudaEventElapsedTime");
        detail::profile_add(*t.node, static_cast<double>(ms) / 1e3, t.flops);
        spare_events_.insert(spare_events_.end(), {t.start, t.stop});
    }
    timings_.clear();
}

void Device::check_launch(const char* kernel) { check(cudaGetLastError(), std::string("launching ") + kernel); }

void gemm(const Device& dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool tf32) {
    gemm_batched(dev, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, tf32);
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets the operands swapped,
// each row-major matrix read as its column-major transpose with the same leading dimension.
void gemm_batched(const Device& dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b, float beta,
                  float* C, int64_t ldc, int64_t stride_c, int64_t batch, bool tf32) {
    if (M == 0 || N == 0 || batch == 0) return;
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    check(cublasGemmStridedBatchedEx(blas_of(dev), op_b, op_a, as_int(N, "N"), as_int(M, "M"), as_int(K, "K"), &alpha, B,
                                     CUDA_R_32F, as_int(ldb, "ldb"), stride_b, A, CUDA_R_32F, as_int(lda, "lda"), stride_a,
                                     &beta, C, CUDA_R_32F, as_int(ldc, "ldc"), stride_c, as_int(batch, "batch"), compute,
                                     CUBLAS_GEMM_DEFAULT),
          "cublasGemmStridedBatchedEx");
}

}  // namespace mithril::rt::cuda
