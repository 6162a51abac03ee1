// tensor.cpp - dtype tables and Tensor storage (aligned allocation, views,
// strided copy).
#include "mithril/rt/tensor.h"

#include <array>
#include <cstring>
#include <limits>
#include <new>

#if defined(__unix__)
#include <sys/mman.h>
#endif

namespace mithril::rt {

namespace {

struct DTypeRow {
    DType dtype;
    std::string_view name;
    std::size_t size;
};

constexpr std::array<DTypeRow, 10> kDTypes{{
    {DType::Float32, "float32", 4}, {DType::Float64, "float64", 8},
    {DType::Int32, "int32", 4},     {DType::Int64, "int64", 8},
    {DType::UInt8, "uint8", 1},     {DType::Bool, "bool", 1},
    {DType::UInt16, "uint16", 2},   {DType::Int8, "int8", 1},
    {DType::Float16, "float16", 2}, {DType::BFloat16, "bfloat16", 2},
}};

const DTypeRow& row(DType dtype) {
    for (const auto& r : kDTypes)
        if (r.dtype == dtype) return r;
    throw Error("invalid dtype value " + std::to_string(static_cast<int>(dtype)));
}

// Copies the elements of a strided tensor into contiguous dst, one dim at a time.
void copy_strided(const std::byte* src, std::byte*& dst, const Shape& shape, const Strides& strides,
                  std::size_t dim, std::size_t elem) {
    if (dim == shape.size()) {
        std::memcpy(dst, src, elem);
        dst += elem;
        return;
    }
    for (std::int64_t i = 0; i < shape[dim]; ++i)
        copy_strided(src + i * strides[dim] * static_cast<std::int64_t>(elem), dst, shape, strides, dim + 1, elem);
}

}  // namespace

void* host_allocate(std::size_t bytes, bool zero) {
#if defined(__unix__)
    // Large zeroed buffers (arenas, weight blocks) come straight from mmap: its
    // pages read as zero and become resident only when first written, so the
    // parts of an arena a program never touches (an evaluation pass that never
    // runs, a weight block shared with the training step) cost no memory.
    if (zero && bytes >= kLazyZeroBytes) {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        return p;
    }
#endif
    void* p = ::operator new(bytes == 0 ? kAlignment : bytes, std::align_val_t{kAlignment});
    if (zero) std::memset(p, 0, bytes);
    return p;
}

void host_free(void* block, std::size_t bytes, bool zero) noexcept {
#if defined(__unix__)
    if (zero && bytes >= kLazyZeroBytes) {
        ::munmap(block, bytes);
        return;
    }
#endif
    ::operator delete(block, std::align_val_t{kAlignment});
}

std::shared_ptr<void> aligned_buffer(std::size_t bytes, bool zero) {
    return std::shared_ptr<void>(host_allocate(bytes, zero), [bytes, zero](void* q) { host_free(q, bytes, zero); });
}

void normalize_bools(void* data, std::size_t n) {
    auto* p = static_cast<unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) p[i] = p[i] != 0;
}

std::size_t dtype_size(DType dtype) { return row(dtype).size; }

std::string_view dtype_name(DType dtype) { return row(dtype).name; }

DType dtype_from_name(std::string_view name) {
    for (const auto& r : kDTypes)
        if (r.name == name) return r.dtype;
    throw Error("unknown dtype name '" + std::string(name) + "'");
}

std::string shape_str(const Shape& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ",";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

std::string type_str(DType dtype, const Shape& shape) {
    return std::string(dtype_name(dtype)) + shape_str(shape);
}

std::int64_t checked_numel(const Shape& shape) {
    std::int64_t n = 1;
    for (std::int64_t d : shape) {
        if (d < 0) throw Error("negative dimension in shape " + shape_str(shape));
        if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d)
            throw Error("shape " + shape_str(shape) + " has too many elements");
        n *= d;
    }
    return n;
}

Strides contiguous_strides(const Shape& shape) {
    Strides strides(shape.size());
    std::int64_t s = 1;
    for (std::size_t i = shape.size(); i-- > 0;) {
        strides[i] = s;
        // Checked: with a zero dim elsewhere the element count is 0 however large the other dims are.
        if (shape[i] < 0) throw Error("negative dimension in shape " + shape_str(shape));
        if (i > 0 && __builtin_mul_overflow(s, shape[i], &s))
            throw Error("shape " + shape_str(shape) + " is too large: its strides overflow int64");
    }
    return strides;
}

Tensor::Tensor() : shape_{0}, strides_{1} {}

Tensor Tensor::zeros(DType dtype, Shape shape) {
    Tensor t;
    t.numel_ = checked_numel(shape);
    const std::size_t elem = dtype_size(dtype);
    if (static_cast<std::uint64_t>(t.numel_) > std::numeric_limits<std::size_t>::max() / elem)
        throw Error("tensor " + rt::type_str(dtype, shape) + " is too large to allocate");
    t.dtype_ = dtype;
    t.strides_ = contiguous_strides(shape);
    t.shape_ = std::move(shape);
    t.owner_ = aligned_buffer(t.nbytes());
    t.data_ = t.owner_.get();
    return t;
}

Tensor Tensor::borrow(void* data, DType dtype, Shape shape, Strides strides, MemorySpace space) {
    Tensor t;
    t.numel_ = checked_numel(shape);
    if (strides.empty()) strides = contiguous_strides(shape);
    if (strides.size() != shape.size())
        throw Error("Tensor::borrow: " + std::to_string(strides.size()) + " strides given for shape " +
                    shape_str(shape));
    if (data == nullptr && t.numel_ != 0) throw Error("Tensor::borrow: null data for " + rt::type_str(dtype, shape));
    dtype_size(dtype);  // validates the enum value
    t.dtype_ = dtype;
    t.shape_ = std::move(shape);
    t.strides_ = std::move(strides);
    t.data_ = data;
    t.space_ = space;
    return t;
}

Tensor Tensor::view_of(std::shared_ptr<void> owner, void* data, DType dtype, Shape shape) {
    Tensor t = borrow(data, dtype, std::move(shape));
    t.owner_ = std::move(owner);
    return t;
}

std::int64_t Tensor::dim(std::int64_t i) const {
    if (i < 0) i += ndim();
    if (i < 0 || i >= ndim())
        throw Error("dim index " + std::to_string(i) + " out of range for " + type_str());
    return shape_[static_cast<std::size_t>(i)];
}

bool Tensor::is_contiguous() const {
    if (numel_ == 0) return true;
    std::int64_t expected = 1;
    for (std::size_t i = shape_.size(); i-- > 0;) {
        if (shape_[i] != 1 && strides_[i] != expected) return false;
        expected *= shape_[i];
    }
    return true;
}

Tensor Tensor::clone() const {
    if (space_ != MemorySpace::Host)
        throw Error("Tensor::clone: " + type_str() + " is in " + memory_space_name(space_) +
                    " memory; copy it to the host first");
    Tensor out = zeros(dtype_, shape_);
    if (numel_ == 0) return out;
    if (is_contiguous()) {
        std::memcpy(out.data_, data_, nbytes());
    } else {
        auto* dst = static_cast<std::byte*>(out.data_);
        copy_strided(static_cast<const std::byte*>(data_), dst, shape_, strides_, 0, dtype_size(dtype_));
    }
    return out;
}

void Tensor::check_type(DType requested) const {
    if (requested != dtype_)
        throw Error("tensor of type " + type_str() + " accessed as " + std::string(dtype_name(requested)));
}

}  // namespace mithril::rt
