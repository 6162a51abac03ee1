// Memory spaces and allocators: an Arena takes its memory from an Allocator (the
// host's by default); a device allocator gives device arenas and device views.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <map>

#include "mithril/rt/arena.h"
#include "mithril/rt/memory.h"

using namespace mithril::rt;

namespace {
// A stand-in for a device allocator (backed by host memory so the test can look
// at it): counts its blocks and says they are device memory.
class CountingDeviceAllocator final : public Allocator {
public:
    MemorySpace space() const override { return MemorySpace::Device; }
    const char* name() const override { return "test-device"; }
    void* allocate(std::size_t bytes, std::size_t alignment) override {
        void* p = std::aligned_alloc(alignment, bytes == 0 ? alignment : (bytes + alignment - 1) / alignment * alignment);
        std::memset(p, 0, bytes);
        live[p] = bytes;
        ++allocations;
        last_alignment = alignment;
        return p;
    }
    void deallocate(void* block, std::size_t bytes) noexcept override {
        if (live.count(block) && live[block] == bytes) ++matched_frees;
        live.erase(block);
        std::free(block);
    }
    std::map<void*, std::size_t> live;
    int allocations = 0, matched_frees = 0;
    std::size_t last_alignment = 0;
};

class NullAllocator final : public Allocator {
public:
    MemorySpace space() const override { return MemorySpace::Device; }
    const char* name() const override { return "out-of-memory"; }
    void* allocate(std::size_t, std::size_t) override { return nullptr; }
    void deallocate(void*, std::size_t) noexcept override {}
};
}  // namespace

TEST_CASE("an arena is host memory from the host allocator by default", "[memory]") {
    Arena a(256);
    CHECK(a.space() == MemorySpace::Host);
    CHECK(host_allocator().space() == MemorySpace::Host);
    CHECK(std::string(host_allocator().name()) == "host");
    CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % kAlignment == 0);
    for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(a.data()[i] == std::byte{0});
    Tensor t = a.view(64, DType::Float32, {4});
    CHECK(t.space() == MemorySpace::Host);
    CHECK(Tensor::zeros(DType::Float32, {2}).space() == MemorySpace::Host);
    t.data<float>()[0] = 2.5f;
    CHECK(t.clone().data<float>()[0] == 2.5f);
    CHECK(std::string(memory_space_name(MemorySpace::Host)) == "host");
    CHECK(std::string(memory_space_name(MemorySpace::Device)) == "device");
}

TEST_CASE("the host allocator hands out aligned, zeroed blocks (large ones mapped lazily)", "[memory]") {
    Allocator& h = host_allocator();
    for (std::size_t bytes : {std::size_t{0}, std::size_t{100}, kLazyZeroBytes + 10}) {
        void* p = h.allocate(bytes, 64);
        REQUIRE(p != nullptr);
        CHECK(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
        for (std::size_t i = 0; i < bytes; i += 4093) REQUIRE(static_cast<unsigned char*>(p)[i] == 0);
        h.deallocate(p, bytes);
    }
    CHECK_THROWS_WITH(h.allocate(16, 3), Catch::Contains("not a power of two"));
    CHECK_THROWS_WITH(h.allocate(16, 128), Catch::Contains("up to 64"));
}

TEST_CASE("a device arena takes its memory from its allocator and gives it back once", "[memory]") {
    CountingDeviceAllocator dev;
    {
        Arena a(1000, dev);
        CHECK(a.space() == MemorySpace::Device);
        CHECK(dev.allocations == 1);
        CHECK(dev.last_alignment == kAlignment);
        REQUIRE(dev.live.size() == 1);
        CHECK(dev.live.begin()->first == a.data());
        CHECK(dev.live.begin()->second == 1000);
        // Views and aliases stay in the device space; an alias keeps the memory alive.
        Tensor v = a.view(128, DType::Float32, {2, 3});
        CHECK(v.space() == MemorySpace::Device);
        CHECK(v.raw_data() == a.data() + 128);
        CHECK_THROWS_WITH(v.clone(), Catch::Contains("device memory"));
        CHECK_THROWS_WITH(a.view(992, DType::Float32, {4}), Catch::Contains("exceeds arena size"));
        Arena b = a.alias();
        CHECK(b.space() == MemorySpace::Device);
        Arena moved = std::move(a);
        CHECK(dev.matched_frees == 0);
    }
    CHECK(dev.live.empty());
    CHECK(dev.matched_frees == 1);
}

TEST_CASE("an allocator that returns no memory is one clear error", "[memory]") {
    NullAllocator none;
    CHECK_THROWS_WITH(Arena(64, none), Catch::Contains("allocator 'out-of-memory' returned no memory for 64 bytes"));
}

TEST_CASE("Tensor::borrow records the memory space", "[memory]") {
    float x[4] = {};
    CHECK(Tensor::borrow(x, DType::Float32, {4}).space() == MemorySpace::Host);
    CHECK(Tensor::borrow(x, DType::Float32, {4}, {}, MemorySpace::Device).space() == MemorySpace::Device);
}
