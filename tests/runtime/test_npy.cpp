// test_npy.cpp - .npy reader/writer checked against NumPy in both directions
// (files written by numpy, files loaded by numpy), plus every error path.
#include <catch2/catch.hpp>

#include <string>

#include "mithril/rt/npy.h"
#include "test_support.h"

using namespace mithril::rt;
using Catch::Contains;
using rt_test::TempDir;

namespace {

const std::vector<std::pair<std::string, Shape>> kVariants{
    {"", {2, 3, 4}}, {"_0d", {}}, {"_empty", {0, 3}}, {"_v2", {2, 3, 4}}, {"_v3", {2, 3, 4}}};

void run_reference(const std::string& mode, const TempDir& dir) {
    std::string output;
    const int rc = rt_test::run_python("npy_ref.py", {mode, dir.path().string()}, output);
    INFO(output);
    REQUIRE(rc == 0);
}

// A version-1.0 .npy file with the given header text (no padding).
std::string npy_v1(const std::string& header, const std::string& data = "") {
    std::string s = "\x93NUMPY";
    s += '\x01';
    s += '\x00';
    s += static_cast<char>(header.size() & 0xff);
    s += static_cast<char>(header.size() >> 8);
    return s + header + data;
}

}  // namespace

TEST_CASE("npy: files written by numpy load with the right dtype, shape and values", "[npy]") {
    TempDir dir;
    run_reference("write", dir);
    for (DType dtype : rt_test::npy_dtypes()) {
        for (const auto& [suffix, shape] : kVariants) {
            const auto path = dir / (std::string(dtype_name(dtype)) + suffix + ".npy");
            INFO(path);
            const Tensor t = load_npy(path);
            CHECK(t.dtype() == dtype);
            CHECK(t.shape() == shape);
            CHECK(t.is_contiguous());
            CHECK(rt_test::matches_reference(t));
        }
    }
}

TEST_CASE("npy: files we write load in numpy with the same values", "[npy]") {
    TempDir dir;
    for (DType dtype : rt_test::npy_dtypes())
        for (const auto& [suffix, shape] : kVariants)
            if (suffix != "_v2" && suffix != "_v3")
                save_npy(dir / ("ours_" + std::string(dtype_name(dtype)) + suffix + ".npy"),
                         rt_test::reference_tensor(dtype, shape));
    // A strided (transposed) view is written in C order.
    const Tensor base = rt_test::reference_tensor(DType::Float32, {3, 4});
    const Tensor transposed = Tensor::borrow(const_cast<void*>(base.raw_data()), DType::Float32, {4, 3}, {1, 4});
    save_npy(dir / "ours_transposed.npy", transposed);
    run_reference("check", dir);

    // ...and our reader agrees with our writer.
    const Tensor back = load_npy(dir / "ours_int64.npy");
    CHECK(back.shape() == Shape{2, 3, 4});
    CHECK(rt_test::matches_reference(back));
    for (const auto& name : dir.entries()) CHECK(name.find(".tmp-") == std::string::npos);
}

TEST_CASE("npy: load_npy_expect reports dtype/shape mismatches by input name", "[npy]") {
    TempDir dir;
    run_reference("write", dir);
    const auto path = dir / "image_f64.npy";
    REQUIRE_THROWS_WITH(load_npy_expect(path, "image", DType::Float32, {1, 3, 32, 32}),
                        "input 'image': expected float32[1,3,32,32], file " + path.string() +
                            " holds float64[1,3,32,32]");
    REQUIRE_THROWS_WITH(load_npy_expect(path, "image", DType::Float64, {1, 3, 32, 31}),
                        Contains("expected float64[1,3,32,31]") && Contains("holds float64[1,3,32,32]"));
    CHECK(load_npy_expect(path, "image", DType::Float64, {1, 3, 32, 32}).numel() == 3072);
    REQUIRE_THROWS_WITH(load_npy_expect(dir / "nope.npy", "image", DType::Float32, {1}),
                        Contains("input 'image'") && Contains("nope.npy") && Contains("file not found"));
}

TEST_CASE("npy: bad files throw Error naming the file and the problem", "[npy]") {
    TempDir dir;
    run_reference("write", dir);
    const std::string good = rt_test::read_bytes(dir / "float32.npy");  // float32[2,3,4]: 128-byte header + 96 bytes
    auto write = [&](const std::string& name, const std::string& bytes) {
        rt_test::write_bytes(dir / name, bytes);
        return dir / name;
    };

    SECTION("missing file") {
        REQUIRE_THROWS_WITH(load_npy(dir / "missing.npy"), Contains("missing.npy") && Contains("file not found"));
    }
    SECTION("a directory") {
        REQUIRE_THROWS_WITH(load_npy(dir.path()), Contains("is a directory"));
    }
    SECTION("bad magic") {
        REQUIRE_THROWS_WITH(load_npy(write("text.npy", "hello, this is not numpy")),
                            Contains("text.npy") && Contains("bad magic"));
        REQUIRE_THROWS_WITH(load_npy(write("tiny.npy", "\x93NU")), Contains("bad magic"));
    }
    SECTION("truncated header") {
        REQUIRE_THROWS_WITH(load_npy(write("cut.npy", good.substr(0, 40))),
                            Contains("cut.npy") && Contains("truncated header") && Contains("found 30"));
        REQUIRE_THROWS_WITH(load_npy(write("cut2.npy", good.substr(0, 9))), Contains("truncated header"));
    }
    SECTION("truncated data says expected vs found bytes") {
        REQUIRE_THROWS_WITH(load_npy(write("short.npy", good.substr(0, good.size() - 4))),
                            Contains("short.npy") && Contains("truncated data") &&
                                Contains("float32[2,3,4] needs 96 bytes, found 92"));
    }
    SECTION("trailing bytes") {
        REQUIRE_THROWS_WITH(load_npy(write("long.npy", good + "xx")), Contains("2 unexpected bytes"));
    }
    SECTION("unsupported dtypes") {
        REQUIRE_THROWS_WITH(load_npy(dir / "bigendian.npy"),
                            Contains("bigendian.npy") && Contains("unsupported dtype '>f4'"));
        REQUIRE_THROWS_WITH(load_npy(dir / "complex.npy"), Contains("unsupported dtype '<c8'"));
        REQUIRE_THROWS_WITH(load_npy(dir / "structured.npy"), Contains("structured.npy") && Contains("unsupported dtype"));
    }
    SECTION("fortran order") {
        REQUIRE_THROWS_WITH(load_npy(dir / "fortran.npy"), Contains("fortran.npy") && Contains("fortran_order=True"));
    }
    SECTION("corrupt header dict") {
        REQUIRE_THROWS_WITH(load_npy(write("h1.npy", npy_v1("{'descr': '<f4', 'shape': (2, 3}\n"))),
                            Contains("h1.npy") && Contains("corrupt header"));
        REQUIRE_THROWS_WITH(load_npy(write("h2.npy", npy_v1("{'descr': '<f4', 'shape': (2,)}\n"))),
                            Contains("must contain 'descr', 'fortran_order' and 'shape'"));
        REQUIRE_THROWS_WITH(load_npy(write("h3.npy", npy_v1("{'descr': '<f4', 'fortran_order': Maybe, 'shape': ()}"))),
                            Contains("expected True or False"));
        REQUIRE_THROWS_WITH(load_npy(write("h4.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}"))),
                            Contains("non-negative integer"));
        REQUIRE_THROWS_WITH(load_npy(write("h5.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}"))),
                            Contains("unexpected key 'x'"));
        REQUIRE_THROWS_WITH(
            load_npy(write("h6.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999)}"))),
            Contains("too many elements"));
    }
    SECTION("shapes that numpy calls too big: zero elements with overflowing strides, a product past the file") {
        REQUIRE_THROWS_WITH(
            load_npy(write("z.npy", npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, "
                                           "4611686018427387904)}"))),
            Contains("z.npy") && Contains("strides overflow int64"));
        // 2^62 elements of 8 bytes: the byte count would wrap around 2^64 to 0.
        REQUIRE_THROWS_WITH(
            load_npy(write("w.npy", npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,)}"))),
            Contains("w.npy") && Contains("truncated data: float64[4611686018427387904] needs 4611686018427387904 elements"));
    }
    SECTION("bool bytes other than 0 and 1 read as 1, as numpy reads them") {
        const Tensor t = load_npy(write("b.npy", npy_v1("{'descr': '|b1', 'fortran_order': False, 'shape': (3,)}",
                                                        std::string("\x00\x02\xff", 3))));
        const auto* p = static_cast<const unsigned char*>(t.raw_data());
        CHECK((p[0] == 0 && p[1] == 1 && p[2] == 1));
    }
    SECTION("a hand-made minimal header parses") {
        std::string data(8, '\0');
        const Tensor t = load_npy(write("ok.npy", npy_v1("{\"descr\":\"<i4\",\"fortran_order\":False,\"shape\":(2L,)}", data)));
        CHECK(t.type_str() == "int32[2]");
    }
    SECTION("unsupported version") {
        std::string bad = good;
        bad[6] = '\x04';
        REQUIRE_THROWS_WITH(load_npy(write("v4.npy", bad)), Contains("unsupported format version 4.0"));
    }
}

TEST_CASE("npy: writing into a missing folder throws and leaves nothing behind", "[npy]") {
    TempDir dir;
    const Tensor t = rt_test::reference_tensor(DType::Float32, {2});
    REQUIRE_THROWS_WITH(save_npy(dir / "no" / "such" / "dir" / "x.npy", t), Contains("cannot write"));
    REQUIRE_THROWS_WITH(save_npy(dir / "x.npy" / "y.npy", t), Contains("cannot write"));
    CHECK(dir.entries().empty());
}
