// test_tensor.cpp - DType helpers, Tensor ownership/views/strides, Arena.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>

#include "mithril/rt/arena.h"
#include "mithril/rt/tensor.h"

using namespace mithril::rt;
using Catch::Contains;

TEST_CASE("dtype sizes and names round-trip", "[tensor]") {
    CHECK(dtype_size(DType::Float32) == 4);
    CHECK(dtype_size(DType::Float64) == 8);
    CHECK(dtype_size(DType::Int64) == 8);
    CHECK(dtype_size(DType::Bool) == 1);
    CHECK(dtype_size(DType::UInt16) == 2);
    CHECK(dtype_size(DType::BFloat16) == 2);
    for (DType d : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::UInt8, DType::Bool,
                    DType::UInt16, DType::Int8, DType::Float16, DType::BFloat16})
        CHECK(dtype_from_name(dtype_name(d)) == d);
    CHECK(dtype_name(DType::UInt8) == "uint8");
    REQUIRE_THROWS_WITH(dtype_from_name("complex64"), Contains("unknown dtype name 'complex64'"));
    CHECK(type_str(DType::Float32, {1, 3, 32, 32}) == "float32[1,3,32,32]");
    CHECK(type_str(DType::Int8, {}) == "int8[]");
}

TEST_CASE("checked_numel rejects negative dims and overflow", "[tensor]") {
    CHECK(checked_numel({}) == 1);
    CHECK(checked_numel({2, 0, 5}) == 0);
    REQUIRE_THROWS_WITH(checked_numel({2, -1}), Contains("negative dimension"));
    REQUIRE_THROWS_WITH(checked_numel({1LL << 40, 1LL << 40}), Contains("too many elements"));
}

TEST_CASE("contiguous_strides is checked: no overflow even with zero elements", "[tensor]") {
    CHECK(contiguous_strides({2, 3, 4}) == Strides{12, 4, 1});
    CHECK(contiguous_strides({}).empty());
    CHECK(contiguous_strides({0, 5}) == Strides{5, 1});
    CHECK(contiguous_strides({1LL << 62, 2}) == Strides{2, 1});  // the outermost dim needs no stride
    // 0 elements, but the stride of dim 0 would be 2^124 (a fuzzer finding: UB before the check).
    REQUIRE_THROWS_WITH(contiguous_strides({0, 1LL << 62, 1LL << 62}), Contains("too large") && Contains("strides overflow"));
    REQUIRE_THROWS_WITH(Tensor::zeros(DType::Float32, {0, 1LL << 62, 1LL << 62}), Contains("strides overflow"));
    REQUIRE_THROWS_WITH(contiguous_strides({2, -1}), Contains("negative dimension"));
}

TEST_CASE("owning tensors are zeroed, aligned and typed", "[tensor]") {
    Tensor t = Tensor::zeros(DType::Float32, {2, 3, 5});
    CHECK(t.numel() == 30);
    CHECK(t.nbytes() == 120);
    CHECK(t.ndim() == 3);
    CHECK(t.dim(-1) == 5);
    CHECK(t.strides() == Strides{15, 5, 1});
    CHECK(t.is_contiguous());
    CHECK(t.owns_data());
    CHECK(reinterpret_cast<std::uintptr_t>(t.raw_data()) % kAlignment == 0);
    for (std::int64_t i = 0; i < t.numel(); ++i) CHECK(t.data<float>()[i] == 0.f);
    REQUIRE_THROWS_WITH(t.data<double>(), Contains("float32[2,3,5] accessed as float64"));
    REQUIRE_THROWS_WITH(t.dim(3), Contains("out of range"));

    Tensor copy = t;  // copies share storage
    copy.data<float>()[4] = 7.f;
    CHECK(t.data<float>()[4] == 7.f);
}

TEST_CASE("0-d and empty tensors", "[tensor]") {
    Tensor s = Tensor::zeros(DType::Int64, {});
    CHECK(s.numel() == 1);
    CHECK(s.nbytes() == 8);
    CHECK(s.ndim() == 0);
    Tensor e = Tensor::zeros(DType::Float64, {0, 4});
    CHECK(e.numel() == 0);
    CHECK(e.nbytes() == 0);
    CHECK(e.is_contiguous());
    CHECK(e.clone().numel() == 0);
}

TEST_CASE("borrowed views and strided clone", "[tensor]") {
    std::int32_t buf[12];
    for (int i = 0; i < 12; ++i) buf[i] = i;
    Tensor m = Tensor::borrow(buf, DType::Int32, {3, 4});
    CHECK_FALSE(m.owns_data());
    CHECK(m.data<std::int32_t>() == buf);
    // Transposed view [4,3] with strides (1,4).
    Tensor tr = Tensor::borrow(buf, DType::Int32, {4, 3}, {1, 4});
    CHECK_FALSE(tr.is_contiguous());
    Tensor c = tr.clone();
    CHECK(c.is_contiguous());
    CHECK(c.owns_data());
    for (int r = 0; r < 4; ++r)
        for (int k = 0; k < 3; ++k) CHECK(c.data<std::int32_t>()[r * 3 + k] == buf[k * 4 + r]);
    REQUIRE_THROWS_WITH(Tensor::borrow(buf, DType::Int32, {3, 4}, {1}), Contains("1 strides given for shape [3,4]"));
    REQUIRE_THROWS_WITH(Tensor::borrow(nullptr, DType::Int32, {3}), Contains("null data"));
}

TEST_CASE("visit_dtype dispatches the element type", "[tensor]") {
    auto size_of = [](DType d) { return visit_dtype(d, [](auto tag) { return sizeof(tag); }); };
    for (DType d : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::UInt8, DType::Bool,
                    DType::UInt16, DType::Int8, DType::Float16, DType::BFloat16})
        CHECK(size_of(d) == dtype_size(d));
}

TEST_CASE("arena hands out aligned, bounds-checked slots", "[arena]") {
    Arena arena(1024);
    CHECK(arena.size() == 1024);
    CHECK(reinterpret_cast<std::uintptr_t>(arena.data()) % kAlignment == 0);
    float* a = arena.at<float>(0, 64);
    float* b = arena.at<float>(256, 192);  // ends exactly at 1024
    CHECK(reinterpret_cast<std::byte*>(b) - reinterpret_cast<std::byte*>(a) == 256);
    CHECK(a[0] == 0.f);  // zero-filled
    b[191] = 3.f;
    CHECK(arena.at<float>(1020)[0] == 3.f);
    REQUIRE_THROWS_WITH(arena.at<float>(256, 193), Contains("exceeds arena size 1024"));
    REQUIRE_THROWS_WITH(arena.at<float>(1024), Contains("exceeds arena size"));
    REQUIRE_THROWS_WITH(arena.at<double>(4), Contains("not aligned"));
    CHECK(arena.at<float>(1024, 0) != nullptr);  // empty slot at the end is fine

    Tensor v = arena.view(512, DType::Float32, {2, 64});
    CHECK_FALSE(v.owns_data());
    CHECK(v.data<float>() == arena.at<float>(512));
    REQUIRE_THROWS_WITH(arena.view(512, DType::Float32, {2, 65}), Contains("exceeds arena size"));

    Arena moved = std::move(arena);
    CHECK(moved.at<float>(1020)[0] == 3.f);
}
