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
}  // namespace

Arena::Arena(std::size_t bytes)
    : size_(bytes),
      storage_(aligned_buffer(bytes)),
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
    return Tensor::borrow(base_ + offset, dtype, shape);
}

}  // namespace mithril::rt
