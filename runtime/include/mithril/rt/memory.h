// memory.h - memory spaces and the allocators that give an Arena its memory.
//
// Every Arena and Tensor lives in one memory space: the host's (ordinary RAM,
// what the CPU target uses) or a device's (an accelerator's memory, which host
// code must not dereference). An Allocator hands out memory of one space; the
// host allocator is the default, and a device target (CUDA) brings its own:
//
//   mithril::rt::Arena host(4096);                          // host_allocator()
//   mithril::rt::Arena dev(4096, my_cuda_allocator);        // space() == Device
#pragma once

#include <cstddef>
#include <cstdint>

namespace mithril::rt {

enum class MemorySpace : std::uint8_t { Host, Device };

// "host" or "device".
const char* memory_space_name(MemorySpace space);

class Allocator {
public:
    virtual ~Allocator() = default;
    // The space of every block this allocator hands out.
    virtual MemorySpace space() const = 0;
    // For messages: "host", "cuda:0", ...
    virtual const char* name() const = 0;
    // `bytes` zero-filled bytes aligned to `alignment` (a power of two); never null for
    // bytes > 0 (throws Error instead). allocate(0, a) may return null.
    virtual void* allocate(std::size_t bytes, std::size_t alignment) = 0;
    // Frees a block from allocate(bytes, ...) of this allocator.
    virtual void deallocate(void* block, std::size_t bytes) noexcept = 0;
};

// The process's host allocator: 64-byte aligned, zero-filled (aligned_buffer()).
// It lives for the whole process.
Allocator& host_allocator();

}  // namespace mithril::rt
