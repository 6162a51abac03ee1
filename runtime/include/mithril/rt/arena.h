// arena.h - the single activation buffer of a compiled model.
//
// The compiler plans every intermediate tensor into one buffer whose size and
// offsets are known at compile time. The Arena makes that one 64-byte aligned,
// zero-filled allocation up front and then only hands out pointers at planned
// offsets: no allocation happens after construction.
//
// The memory comes from an Allocator (memory.h): the host's by default, or a
// device's, in which case the arena's pointers and views are device memory
// (space() says which) that only device code may dereference.
//
//   mithril::rt::Arena arena(4096);
//   float* x = arena.at<float>(0, 256);      // 256 floats at offset 0
//   float* y = arena.at<float>(1024);        // bounds-checked for one float
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "mithril/rt/error.h"
#include "mithril/rt/memory.h"
#include "mithril/rt/tensor.h"

namespace mithril::rt {

class Arena {
public:
    // `bytes` zero-filled bytes from `allocator` (which must outlive the arena and its aliases).
    explicit Arena(std::size_t bytes, Allocator& allocator = host_allocator());
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    Arena(Arena&&) noexcept = default;
    Arena& operator=(Arena&&) noexcept = default;

    std::size_t size() const { return size_; }
    MemorySpace space() const { return space_; }
    std::byte* data() { return base_; }
    const std::byte* data() const { return base_; }

    // Another handle on the same memory, which stays alive while either exists
    // (an evaluation pass reading the training step's weight block). Handles share
    // the generation too.
    Arena alias() const {
        Arena a;
        a.size_ = size_;
        a.space_ = space_;
        a.storage_ = storage_;
        a.base_ = base_;
        a.generation_ = generation_;
        return a;
    }

    // A number that changes whenever the contents are marked changed (touch()),
    // unique across every arena of the process: a program keeps copies derived
    // from its weights (packed for the GEMM kernel) and redoes them when the
    // weight block's generation is no longer the one they were made from.
    std::uint64_t generation() const { return generation_ ? *generation_ : 0; }
    void touch();

    // Pointer to `count` elements of T at byte `offset`. Throws Error when the
    // range leaves the arena or the offset is misaligned for T.
    template <class T>
    T* at(std::size_t offset, std::size_t count = 1) {
        check_range(offset, count, sizeof(T), alignof(T));
        return reinterpret_cast<T*>(base_ + offset);
    }

    // Borrowed Tensor view of a planned slot, in the arena's memory space.
    Tensor view(std::size_t offset, DType dtype, const Shape& shape);

private:
    Arena() = default;
    void check_range(std::size_t offset, std::size_t count, std::size_t elem_size, std::size_t align) const;

    std::size_t size_ = 0;
    MemorySpace space_ = MemorySpace::Host;
    std::shared_ptr<void> storage_;
    std::byte* base_ = nullptr;
    std::shared_ptr<std::uint64_t> generation_;
};

}  // namespace mithril::rt
