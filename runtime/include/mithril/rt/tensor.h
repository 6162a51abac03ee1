// tensor.h - element types and the Tensor container used at the edges of
// generated code (loading inputs/weights, writing outputs).
//
// A Tensor is a dtype, a shape (int64 dims), strides (in elements) and a data
// pointer. It either owns a 64-byte aligned allocation (Tensor::zeros) or
// borrows external memory (Tensor::borrow, e.g. an arena slot). Copies of a
// Tensor share the same storage, like a shared_ptr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mithril/rt/error.h"
#include "mithril/rt/memory.h"

namespace mithril::rt {

// Element types: everything numpy .npy and safetensors files name that the
// runtime supports. Float16/BFloat16 have no C++ arithmetic type here; they
// are stored and moved as raw 16-bit values.
enum class DType : std::uint8_t {
    Float32, Float64, Int32, Int64, UInt8, Bool, UInt16, Int8, Float16, BFloat16,
};

using Shape = std::vector<std::int64_t>;
using Strides = std::vector<std::int64_t>;

std::size_t dtype_size(DType dtype);
// Lower-case numpy-style name: "float32", "int64", "bool", "bfloat16"...
std::string_view dtype_name(DType dtype);
// Inverse of dtype_name; throws Error for an unknown name.
DType dtype_from_name(std::string_view name);

// "float32[1,3,32,32]"; a 0-d shape prints as "float32[]".
std::string shape_str(const Shape& shape);
std::string type_str(DType dtype, const Shape& shape);

// Product of dims; throws Error on a negative dim or int64 overflow.
std::int64_t checked_numel(const Shape& shape);
// Row-major strides (in elements) for a shape. Throws Error on a negative dim or
// when a stride overflows int64 (possible even with 0 elements: [0, 2^62, 2^62]).
Strides contiguous_strides(const Shape& shape);

inline constexpr std::size_t kAlignment = 64;

// A kAlignment (64-byte) aligned allocation of `bytes` (zero-filled unless zero == false),
// freed when the last shared_ptr goes away. Zeroed buffers of kLazyZeroBytes or
// more are mapped pages, page-aligned, resident only once written.
inline constexpr std::size_t kLazyZeroBytes = std::size_t{1} << 20;
std::shared_ptr<void> aligned_buffer(std::size_t bytes, bool zero = true);
// The same allocation by hand (host_allocator() uses these): host_free takes the
// `bytes` and `zero` that host_allocate was given.
void* host_allocate(std::size_t bytes, bool zero = true);
void host_free(void* block, std::size_t bytes, bool zero = true) noexcept;

// Bool tensors hold one byte 0 or 1 per element (any other byte read as bool is
// undefined behaviour). Readers of files map every non-zero byte to 1, as numpy
// reads a non-zero byte as True.
void normalize_bools(void* data, std::size_t n);

// C++ type -> DType (compile-time). Only types with a DType have a value.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<std::int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<std::uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<std::uint16_t> { static constexpr DType value = DType::UInt16; };
template <> struct dtype_of<std::int8_t> { static constexpr DType value = DType::Int8; };
template <class T> inline constexpr DType dtype_of_v = dtype_of<std::remove_cv_t<T>>::value;

static_assert(sizeof(bool) == 1, "the runtime stores bool tensors as one byte per element");

// The one dtype dispatch helper: calls f(T{}) with the C++ element type of
// `dtype`. Float16/BFloat16 dispatch as std::uint16_t (their raw bits).
template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
    switch (dtype) {
        case DType::Float32: return f(float{});
        case DType::Float64: return f(double{});
        case DType::Int32: return f(std::int32_t{});
        case DType::Int64: return f(std::int64_t{});
        case DType::UInt8: return f(std::uint8_t{});
        case DType::Bool: return f(bool{});
        case DType::UInt16:
        case DType::Float16:
        case DType::BFloat16: return f(std::uint16_t{});
        case DType::Int8: return f(std::int8_t{});
    }
    throw Error("visit_dtype: invalid dtype value");
}

class Tensor {
public:
    // An empty float32 tensor of shape [0].
    Tensor();

    // Owning, 64-byte aligned, zero-filled.
    static Tensor zeros(DType dtype, Shape shape);
    // Borrowed view on memory the caller keeps alive. Empty strides = contiguous.
    // `space`: where the memory is (device memory: only device code reads it).
    static Tensor borrow(void* data, DType dtype, Shape shape, Strides strides = {},
                         MemorySpace space = MemorySpace::Host);
    // View that keeps `owner` alive for as long as the tensor (or a copy) lives.
    static Tensor view_of(std::shared_ptr<void> owner, void* data, DType dtype, Shape shape);

    DType dtype() const { return dtype_; }
    MemorySpace space() const { return space_; }
    const Shape& shape() const { return shape_; }
    const Strides& strides() const { return strides_; }
    std::int64_t ndim() const { return static_cast<std::int64_t>(shape_.size()); }
    std::int64_t dim(std::int64_t i) const;
    std::int64_t numel() const { return numel_; }
    // Bytes of the logical elements: numel * dtype_size.
    std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype_); }
    bool is_contiguous() const;
    // True when the tensor (or a copy of it) keeps its storage alive.
    bool owns_data() const { return owner_ != nullptr; }
    std::string type_str() const { return rt::type_str(dtype_, shape_); }

    // Typed access; throws Error when T does not match dtype().
    template <class T> T* data() { check_type(dtype_of_v<T>); return static_cast<T*>(data_); }
    template <class T> const T* data() const { check_type(dtype_of_v<T>); return static_cast<const T*>(data_); }
    void* raw_data() { return data_; }
    const void* raw_data() const { return data_; }

    // Owning contiguous host copy (works for strided views too); throws Error for
    // a device tensor (the device target copies those itself).
    Tensor clone() const;

private:
    void check_type(DType requested) const;

    DType dtype_ = DType::Float32;
    MemorySpace space_ = MemorySpace::Host;
    Shape shape_;
    Strides strides_;
    std::int64_t numel_ = 0;
    void* data_ = nullptr;
    std::shared_ptr<void> owner_;
};

}  // namespace mithril::rt
