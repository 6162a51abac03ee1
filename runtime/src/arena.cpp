// arena.cpp - Arena allocation and bounds checks.
#include "mithril/rt/arena.h"

#include <atomic>
#include <limits>

namespace mithril::rt {

namespace {
std::uint64_t next_generation() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
}

// Memory from `allocator`, given back to it when the last handle ends.
std::shared_ptr<void> allocate_block(Allocator& allocator, std::size_t bytes) {
    void* block = allocator.allocate(bytes, kAlignment);  // a cache line; what every kernel assumes
    if (block == nullptr && bytes != 0)
        throw Error(std::string("allocator '") + allocator.name() + "' returned no memory for " +
                    std::to_string(bytes) + " bytes");
    Allocator* a = &allocator;
    return std::shared_ptr<void>(block, [a, bytes](void* p) {
        if (p) a->deallocate(p, bytes);
    });
}

class HostAllocator final : public Allocator {
public:
    MemorySpace space() const override { return MemorySpace::Host; }
    const char* name() const override { return "host"; }
    void* allocate(std::size_t bytes, std::size_t alignment) override {
        if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > kAlignment)
            throw Error("host allocator: alignment " + std::to_string(alignment) + " is not a power of two up to " +
                        std::to_string(kAlignment));
        return host_allocate(bytes);  // kAlignment-aligned, zero-filled (large blocks: lazily mapped pages)
    }
    void deallocate(void* block, std::size_t bytes) noexcept override { host_free(block, bytes); }
};
}  // namespace

const char* memory_space_name(MemorySpace space) {
    return space == MemorySpace::Device ? "device" : "host";
}

Allocator& host_allocator() {
    static HostAllocator host;  // stateless: arenas freed during static destruction still work
    return host;
}

Arena::Arena(std::size_t bytes, Allocator& allocator)
    : size_(bytes),
      space_(allocator.space()),
      storage_(allocate_block(allocator, bytes)),
      base_(static_cast<std::byte*>(storage_.get())),
      generation_(std::make_shared<std::uint64_t>(next_generation())) {}

void Arena::touch() {
    if (generation_) *generation_ = next_generation();
}

void Arena::check_range(std::size_t offset, std::size_t count, std::size_t elem_size, std::size_t align) const {
    const bool overflow = count != 0 && elem_size > std::numeric_limits<std::size_t>::max() / count;
    if (overflow || offset > size_ || count * elem_size > size_ - offset)
        throw Error("arena access of " + std::to_string(count) + " x " + std::to_string(elem_size) +
                    " bytes at offset " + std::to_string(offset) + " exceeds arena size " + std::to_string(size_));
    if (offset % align != 0)
        throw Error("arena offset " + std::to_string(offset) + " is not aligned to " + std::to_string(align) +
                    " bytes");
}

Tensor Arena::view(std::size_t offset, DType dtype, const Shape& shape) {
    const auto n = static_cast<std::size_t>(checked_numel(shape));
    check_range(offset, n, dtype_size(dtype), dtype_size(dtype));
    return Tensor::borrow(base_ + offset, dtype, shape, {}, space_);
}

}  // namespace mithril::rt
