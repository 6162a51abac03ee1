// The CUDA part of the runtime on the CPU (cuda/emulate.h): mithril_runtime_cuda built with
// MITHRIL_RT_CUDA_EMULATE, for tests of generated CUDA programs on machines without a GPU.
//
// - Device: host memory, CPU BLAS for the GEMMs (rt::gemm_batched), copies are memmove, the stream
//   is implicit (everything runs in order when it is called).
// - Kernels: run_grid runs the blocks one after another; a block's threads are fibers on the
//   calling thread, switched only at barriers (so a kernel without barriers runs its threads one
//   after another on one reused stack). A barrier releases when every thread it waits for has
//   arrived: the block's live threads (__syncthreads) or the warp's (shuffles, __syncwarp); threads
//   stuck at different barriers are an Error naming the kernel (a deadlock on a GPU).
#include "mithril/rt/cuda/emulate.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "mithril/rt/blas.h"
#include "mithril/rt/cuda/device.h"
#include "mithril/rt/error.h"

#if defined(__x86_64__)
// mithril_emu_switch(save, load): pushes the callee-saved registers, stores the stack pointer in
// *save, loads `load` as the stack pointer and pops the registers saved there (System V x86-64).
extern "C" void mithril_emu_switch(void** save, void* load);
asm(R"(
    .text
    .globl mithril_emu_switch
    .type mithril_emu_switch, @function
mithril_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size mithril_emu_switch, .-mithril_emu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");
#define MITHRIL_EMU_FAST_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace mithril::rt::cuda {
namespace emu {

namespace {

constexpr std::size_t kStackBytes = 256 * 1024;  // per fiber; a guard page below each
constexpr unsigned kMaxThreads = 1024;
constexpr std::size_t kMaxDynamicShared = 48 * 1024;  // without cudaFuncSetAttribute

struct Stack {
    char* base = nullptr;  // the mapping: a guard page, then kStackBytes
    std::size_t bytes = 0;
};

Stack new_stack() {
    const std::size_t page = 4096, bytes = kStackBytes + page;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error("CUDA emulation: no memory for a thread's stack");
    mprotect(p, page, PROT_NONE);
    return Stack{static_cast<char*>(p), bytes};
}

enum class State : std::uint8_t { Ready, Running, AtBlockBarrier, AtWarpBarrier, Done };

struct Fiber {
    State state = State::Ready;
    bool started = false;
    Stack stack;
#if MITHRIL_EMU_FAST_SWITCH
    void* sp = nullptr;
#else
    ucontext_t context;
#endif
    uint3 index;
};

// One OS thread's emulated block: its fibers, the scheduler's context, the exchange slots.
struct Block {
    std::vector<Fiber> fibers;
    std::vector<Stack> free_stacks;
    std::vector<std::uint64_t> slots;  // two banks of one slot per thread, used in turn by the shuffles
    std::vector<std::uint8_t> bank;    // per thread: the bank its next shuffle writes
    std::vector<unsigned char> shared;
    uint3 block_index;
    dim3 block, grid;
    unsigned current = 0;
    void (*body)(void*) = nullptr;
    void* ctx = nullptr;
#if MITHRIL_EMU_FAST_SWITCH
    void* scheduler_sp = nullptr;
#else
    ucontext_t scheduler;
#endif
    ~Block() {
        for (auto& s : free_stacks) munmap(s.base, s.bytes);
        for (auto& f : fibers)
            if (f.stack.base) munmap(f.stack.base, f.stack.bytes);
    }
};

thread_local Block* running = nullptr;

Block& here() {
    if (!running) throw Error("CUDA emulation: a device function was called outside a kernel");
    return *running;
}

void yield_to_scheduler(Block& b) {
    Fiber& f = b.fibers[b.current];
#if MITHRIL_EMU_FAST_SWITCH
    mithril_emu_switch(&f.sp, b.scheduler_sp);
#else
    swapcontext(&f.context, &b.scheduler);
#endif
}

[[noreturn]] void fiber_main() {
    Block& b = *running;
    b.body(b.ctx);
    b.fibers[b.current].state = State::Done;
    yield_to_scheduler(b);
    std::abort();  // a finished fiber is never resumed
}

#if !MITHRIL_EMU_FAST_SWITCH
void fiber_entry() { fiber_main(); }
#endif

void resume(Block& b, unsigned t) {
    Fiber& f = b.fibers[t];
    b.current = t;
    f.state = State::Running;
    if (!f.started) {
        f.started = true;
        if (b.free_stacks.empty()) b.free_stacks.push_back(new_stack());
        f.stack = b.free_stacks.back();
        b.free_stacks.pop_back();
        char* top = f.stack.base + f.stack.bytes;
#if MITHRIL_EMU_FAST_SWITCH
        // What mithril_emu_switch pops: six registers, then the return address (fiber_main,
        // entered with the stack as after a call: 8 bytes past a 16-byte boundary).
        auto* sp = reinterpret_cast<void**>(reinterpret_cast<std::uintptr_t>(top) & ~std::uintptr_t{15});
        *--sp = nullptr;  // fiber_main's return address: it never returns
        *--sp = reinterpret_cast<void*>(&fiber_main);
        for (int r = 0; r < 6; ++r) *--sp = nullptr;
        f.sp = sp;
#else
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack.base + 4096;
        f.context.uc_stack.ss_size = kStackBytes;
        f.context.uc_link = nullptr;
        makecontext(&f.context, fiber_entry, 0);
#endif
    }
#if MITHRIL_EMU_FAST_SWITCH
    mithril_emu_switch(&b.scheduler_sp, f.sp);
#else
    swapcontext(&b.scheduler, &f.context);
#endif
    if (f.state == State::Done) {
        b.free_stacks.push_back(f.stack);
        f.stack = Stack{};
    }
}

void run_block(Block& b, const char* kernel) {
    const unsigned n = static_cast<unsigned>(b.fibers.size());
    const unsigned warps = (n + 31) / 32;
    for (unsigned t = 0; t < n; ++t) {
        Fiber& f = b.fibers[t];
        f.state = State::Ready;
        f.started = false;
        f.index = uint3{t % b.block.x, t / b.block.x % b.block.y, t / (b.block.x * b.block.y)};
        b.bank[t] = 0;
    }
    for (;;) {
        for (unsigned t = 0; t < n; ++t)
            if (b.fibers[t].state == State::Ready) resume(b, t);
        // Everyone has finished or waits: release the warps whose live threads all wait at a warp
        // barrier, else the block if all its live threads wait at __syncthreads.
        bool released = false, live = false, all_block = true;
        for (unsigned w = 0; w < warps; ++w) {
            const unsigned lo = w * 32, hi = std::min(n, lo + 32);
            bool any = false, all = true;
            for (unsigned t = lo; t < hi; ++t) {
                const State s = b.fibers[t].state;
                if (s == State::Done) continue;
                any = true;
                if (s != State::AtWarpBarrier) all = false;
            }
            if (any && all) {
                for (unsigned t = lo; t < hi; ++t)
                    if (b.fibers[t].state == State::AtWarpBarrier) b.fibers[t].state = State::Ready;
                released = true;
            }
        }
        if (released) continue;
        for (unsigned t = 0; t < n; ++t) {
            const State s = b.fibers[t].state;
            if (s == State::Done) continue;
            live = true;
            if (s != State::AtBlockBarrier) all_block = false;
        }
        if (!live) return;
        if (!all_block)
            throw Error(std::string("CUDA emulation: kernel ") + kernel +
                        " deadlocks: its threads wait at different barriers (__syncthreads in a branch?)");
        for (unsigned t = 0; t < n; ++t)
            if (b.fibers[t].state == State::AtBlockBarrier) b.fibers[t].state = State::Ready;
    }
}

}  // namespace

const uint3& thread_idx() {
    Block& b = here();
    return b.fibers[b.current].index;
}
const uint3& block_idx() { return here().block_index; }
const dim3& block_dim() { return here().block; }
const dim3& grid_dim() { return here().grid; }
void* dynamic_shared() { return here().shared.data(); }
int lane() { return static_cast<int>(here().current % 32); }

void sync_block() {
    Block& b = here();
    b.fibers[b.current].state = State::AtBlockBarrier;
    yield_to_scheduler(b);
}

void sync_warp() {
    Block& b = here();
    b.fibers[b.current].state = State::AtWarpBarrier;
    yield_to_scheduler(b);
}

// One barrier per shuffle: consecutive shuffles write alternate banks, so a bank is written again only
// after every thread of the warp has passed the next shuffle's barrier, hence read this one's values.
std::uint64_t exchange(std::uint64_t mine, int src_lane) {
    Block& b = here();
    const unsigned me = b.current, src = me / 32 * 32 + static_cast<unsigned>(src_lane);
    const std::size_t n = b.fibers.size(), bank = b.bank[me];
    b.bank[me] ^= 1;
    b.slots[bank * n + me] = mine;
    sync_warp();
    return src < n ? b.slots[bank * n + src] : mine;
}

void run_grid(dim3 grid, dim3 block, std::size_t shared, void (*body)(void*), void* ctx, const char* kernel) {
    const unsigned long long threads = static_cast<unsigned long long>(block.x) * block.y * block.z;
    auto refuse = [&](const std::string& why) {
        throw Error(std::string("launching ") + kernel + ": invalid configuration (" + why + ")");
    };
    if (threads == 0 || threads > kMaxThreads || block.z > 64)
        refuse(std::to_string(block.x) + "x" + std::to_string(block.y) + "x" + std::to_string(block.z) +
               " threads per block; at most 1024, z at most 64");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        refuse("grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" + std::to_string(grid.z));
    if (shared > kMaxDynamicShared) refuse(std::to_string(shared) + " bytes of dynamic shared memory; at most 49152");
    if (running) throw Error(std::string("CUDA emulation: ") + kernel + " launched from inside a kernel");
    Block b;
    b.block = block;
    b.grid = grid;
    b.body = body;
    b.ctx = ctx;
    b.fibers.resize(static_cast<std::size_t>(threads));
    b.slots.assign(2 * static_cast<std::size_t>(threads), 0);
    b.bank.assign(static_cast<std::size_t>(threads), 0);
    b.shared.assign(std::max<std::size_t>(shared, 16), 0);
    running = &b;
    try {
        for (unsigned z = 0; z < grid.z; ++z)
            for (unsigned y = 0; y < grid.y; ++y)
                for (unsigned x = 0; x < grid.x; ++x) {
                    b.block_index = uint3{x, y, z};
                    run_block(b, kernel);
                }
    } catch (...) {
        running = nullptr;
        throw;
    }
    running = nullptr;
}

}  // namespace emu

// ---- the Device of cuda/device.h, on the host ------------------------------------------------------
namespace {

class EmulatedDeviceAllocator final : public Allocator {
public:
    MemorySpace space() const override { return MemorySpace::Device; }
    const char* name() const override { return "cuda (emulated on the CPU)"; }
    // As cudaMalloc: 256-byte aligned, zero-filled here (as the CUDA allocator does).
    void* allocate(std::size_t bytes, std::size_t alignment) override {
        if (bytes == 0) return nullptr;
        if (alignment > 256) throw Error("device memory: alignment " + std::to_string(alignment) + " exceeds cudaMalloc's 256 bytes");
        const std::size_t rounded = (bytes + 255) / 256 * 256;
        void* p = rounded >= bytes ? std::aligned_alloc(256, rounded) : nullptr;
        if (!p) throw Error("device memory (emulated): out of host memory for " + std::to_string(bytes) + " bytes");
        std::memset(p, 0, rounded);
        return p;
    }
    void deallocate(void* block, std::size_t) noexcept override { std::free(block); }
};

}  // namespace

Allocator& device_allocator() {
    static EmulatedDeviceAllocator allocator;
    return allocator;
}

Device::Device() {
    description_ = "CUDA emulated on the CPU (a test build: -DMITHRIL_CUDA_EMULATE=ON; not a GPU)";
    status_ = static_cast<std::int64_t*>(device_allocator().allocate(4 * sizeof(std::int64_t), 8));
}

Device::~Device() {
    for (auto& t : timings_) spare_events_.insert(spare_events_.end(), {t.start, t.stop});
    for (void* e : spare_events_) delete static_cast<std::chrono::steady_clock::time_point*>(e);
    device_allocator().deallocate(status_, 4 * sizeof(std::int64_t));
}

// Events are host clock readings: every launch has run when the call that made it returns.
void* Device::profile_begin() const {
    using Clock = std::chrono::steady_clock;
    Clock::time_point* e = nullptr;
    if (!spare_events_.empty()) {
        e = static_cast<Clock::time_point*>(spare_events_.back());
        spare_events_.pop_back();
    } else {
        e = new Clock::time_point;
    }
    *e = Clock::now();
    return e;
}

void Device::profile_end(void* start, const ProfileNode& node, double flops) const {
    timings_.push_back(Timing{&node, flops, start, profile_begin()});
}

void Device::flush_profile() const {
    using Clock = std::chrono::steady_clock;
    for (const Timing& t : timings_) {
        const auto dt = *static_cast<Clock::time_point*>(t.stop) - *static_cast<Clock::time_point*>(t.start);
        detail::profile_add(*t.node, std::chrono::duration<double>(dt).count(), t.flops);
        spare_events_.insert(spare_events_.end(), {t.start, t.stop});
    }
    timings_.clear();
}

void Device::to_device(void* dst, const void* src, std::size_t bytes) const {
    if (bytes) std::memmove(dst, src, bytes);
}
void Device::to_host(void* dst, const void* src, std::size_t bytes) const {
    if (bytes) std::memmove(dst, src, bytes);
}
void Device::synchronize(const char*) const {}
void Device::check_launch(const char*) {}

void Device::check_status() const {
    if (status_[0] == 0) return;
    const std::int64_t value = status_[2], limit = status_[3];
    const char* layer = reinterpret_cast<const char*>(static_cast<std::intptr_t>(status_[1]));
    std::memset(status_, 0, 4 * sizeof(std::int64_t));
    throw Error(std::string(layer ? layer : "a layer") + ": index " + std::to_string(value) + " is out of range [0, " +
                std::to_string(limit) + ")");
}

void gemm(const Device& dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool tf32) {
    gemm_batched(dev, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, tf32);
}

void gemm_batched(const Device&, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b, float beta,
                  float* C, int64_t ldc, int64_t stride_c, int64_t batch, bool) {
    if (M == 0 || N == 0 || batch == 0) return;
    const Transpose ta = trans_a ? Transpose::Yes : Transpose::No, tb = trans_b ? Transpose::Yes : Transpose::No;
    if (batch == 1)
        rt::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        rt::gemm_batched(ta, tb, batch, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c);
}

}  // namespace mithril::rt::cuda
