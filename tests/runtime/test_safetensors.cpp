// test_safetensors.cpp - safetensors reader/writer checked against an
// independent Python struct+json implementation (safetensors_ref.py), plus
// validation errors on hand-made corrupt files.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "mithril/rt/safetensors.h"
#include "test_support.h"

using namespace mithril::rt;
using Catch::Contains;
using rt_test::TempDir;

namespace {

const std::map<std::string, std::string> kMetadata{{"format", "mithril"}, {"note", "h\xc3\xa9llo \"q\"\n"}};

void run_reference(const std::vector<std::string>& args) {
    std::string output;
    const int rc = rt_test::run_python("safetensors_ref.py", args, output);
    INFO(output);
    REQUIRE(rc == 0);
}

// 8-byte little-endian length + header + buffer.
std::string st_bytes(const std::string& header, const std::string& buffer = "") {
    std::string s;
    for (int i = 0; i < 8; ++i) s += static_cast<char>((std::uint64_t{header.size()} >> (8 * i)) & 0xff);
    return s + header + buffer;
}

}  // namespace

TEST_CASE("safetensors: files from the reference writer load correctly", "[safetensors]") {
    TempDir dir;
    run_reference({"write", dir.path().string()});
    const SafetensorsFile f(dir / "ref.safetensors");

    std::vector<std::string> expected_names{"empty", "scalar"};
    for (DType d : rt_test::all_dtypes()) expected_names.push_back("t." + std::string(dtype_name(d)));
    std::sort(expected_names.begin(), expected_names.end());
    CHECK(f.names() == expected_names);
    CHECK(f.metadata() == kMetadata);
    CHECK(f.has("scalar"));
    CHECK_FALSE(f.has("t.complex64"));

    for (DType d : rt_test::all_dtypes()) {
        const std::string name = "t." + std::string(dtype_name(d));
        INFO(name);
        CHECK(f.info(name).dtype == d);
        CHECK(f.info(name).shape == Shape{2, 3, 4});
        const Tensor t = f.get(name);
        CHECK(t.dtype() == d);
        CHECK(t.owns_data());  // keeps the file buffer alive
        CHECK(rt_test::matches_reference(t));

        std::vector<std::byte> dst(24 * dtype_size(d));
        f.load_into(name, dst.data(), d, {2, 3, 4});
        CHECK(rt_test::matches_reference(Tensor::borrow(dst.data(), d, {2, 3, 4})));
    }
    const Tensor scalar = f.get("scalar");
    CHECK(scalar.shape().empty());
    CHECK(scalar.data<float>()[0] == -1.25f);
    CHECK(f.get("empty").shape() == Shape{0, 3});
    CHECK(f.get("empty").numel() == 0);

    // A view outlives the file object.
    Tensor kept;
    {
        const SafetensorsFile g(dir / "ref.safetensors");
        kept = g.get("t.float64");
    }
    CHECK(rt_test::matches_reference(kept));
}

TEST_CASE("safetensors: unpadded header and misaligned tensors are copied aligned", "[safetensors]") {
    TempDir dir;
    run_reference({"write", dir.path().string()});
    const SafetensorsFile f(dir / "unpadded.safetensors");
    CHECK(f.get("odd.u8").data<std::uint8_t>()[0] == 0);
    for (DType d : rt_test::all_dtypes()) {
        const Tensor t = f.get("t." + std::string(dtype_name(d)));
        CHECK(reinterpret_cast<std::uintptr_t>(t.raw_data()) % dtype_size(d) == 0);
        CHECK(rt_test::matches_reference(t));
    }
}

TEST_CASE("safetensors: files we write parse in the reference reader", "[safetensors]") {
    TempDir dir;
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (auto it = rt_test::all_dtypes().rbegin(); it != rt_test::all_dtypes().rend(); ++it)  // unsorted on purpose
        tensors.emplace_back("w." + std::string(dtype_name(*it)), rt_test::reference_tensor(*it, {2, 3, 4}));
    tensors.emplace_back("scalar", rt_test::reference_tensor(DType::Float32, {}));
    tensors.emplace_back("empty", rt_test::reference_tensor(DType::Float32, {0, 3}));
    const auto path = dir / "ours.safetensors";
    save_safetensors(path, tensors, kMetadata);
    run_reference({"check", path.string()});

    const SafetensorsFile back(path);
    CHECK(back.names().size() == tensors.size());
    CHECK(back.metadata() == kMetadata);
    for (const auto& [name, t] : tensors) CHECK(rt_test::matches_reference(back.get(name)));
    CHECK(dir.entries() == std::vector<std::string>{"ours.safetensors"});
}

TEST_CASE("safetensors: load_into and info report parameter mismatches", "[safetensors]") {
    TempDir dir;
    const auto path = dir / "w.safetensors";
    save_safetensors(path, {{"block1.conv2.weight", Tensor::zeros(DType::Float32, {16, 8, 3, 3})}});
    const SafetensorsFile f(path);
    std::vector<float> dst(16 * 16 * 9);
    REQUIRE_THROWS_WITH(f.load_into("block1.conv2.weight", dst.data(), DType::Float32, {16, 16, 3, 3}),
                        "weights file " + path.string() +
                            ": parameter 'block1.conv2.weight' expected float32[16,16,3,3], file holds float32[16,8,3,3]");
    REQUIRE_THROWS_WITH(f.load_into("block1.conv2.weight", dst.data(), DType::Float64, {16, 8, 3, 3}),
                        Contains("expected float64[16,8,3,3], file holds float32[16,8,3,3]"));
    REQUIRE_THROWS_WITH(f.load_into("block1.conv3.weight", dst.data(), DType::Float32, {1}),
                        Contains(path.string()) && Contains("parameter 'block1.conv3.weight' not found"));
    REQUIRE_THROWS_WITH(f.get("nope"), Contains("'nope' not found"));
    f.load_into("block1.conv2.weight", dst.data(), DType::Float32, {16, 8, 3, 3});
}

TEST_CASE("safetensors: BOOL bytes other than 0 and 1 read as 1", "[safetensors]") {
    TempDir dir;
    rt_test::write_bytes(dir / "m.safetensors", st_bytes(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                                                         std::string("\x00\x05\xff", 3)));
    const SafetensorsFile f(dir / "m.safetensors");
    const Tensor t = f.get("m");
    const auto* p = static_cast<const unsigned char*>(t.raw_data());
    CHECK((p[0] == 0 && p[1] == 1 && p[2] == 1));
    unsigned char dst[3] = {9, 9, 9};
    f.load_into("m", dst, DType::Bool, {3});
    CHECK((dst[0] == 0 && dst[1] == 1 && dst[2] == 1));
}

TEST_CASE("safetensors: corrupt files throw Error naming the file and tensor", "[safetensors]") {
    TempDir dir;
    auto load = [&](const std::string& bytes) {
        rt_test::write_bytes(dir / "bad.safetensors", bytes);
        return SafetensorsFile(dir / "bad.safetensors");
    };
    const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":)";

    SECTION("missing file") {
        REQUIRE_THROWS_WITH(SafetensorsFile(dir / "none.safetensors"),
                            Contains("none.safetensors") && Contains("file not found"));
    }
    SECTION("shorter than the length field") {
        REQUIRE_THROWS_WITH(load("abc"), Contains("bad.safetensors") && Contains("too small for the 8-byte header length"));
    }
    SECTION("header length past the end of the file") {
        std::string bytes = st_bytes("{}");
        bytes[0] = '\xe8';
        bytes[1] = '\x03';  // 1000
        REQUIRE_THROWS_WITH(load(bytes), Contains("header length 1000 exceeds the 2 bytes"));
    }
    SECTION("corrupt JSON") {
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": {"dtype": "F32",})")),
                            Contains("bad.safetensors") && Contains("corrupt header JSON at byte"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": 1,})")), Contains("corrupt header JSON"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": "unterminated)")), Contains("unterminated string"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": 1} x)")), Contains("unexpected text after the JSON value"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": 1.5})")), Contains("only integer numbers"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": "\q"})")), Contains("bad escape"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"__metadata__": {}, "__metadata__": {}})")), Contains("duplicate key"));
        REQUIRE_THROWS_WITH(load(st_bytes("[1, 2]")), Contains("header JSON is not an object"));
        REQUIRE_THROWS_WITH(load(st_bytes("")), Contains("unexpected end of input"));
    }
    SECTION("bad entries") {
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": {"dtype":"C64","shape":[2],"data_offsets":[0,16]}})", std::string(16, '\0'))),
                            Contains("bad.safetensors") && Contains("tensor 'a'") && Contains("unsupported dtype \"C64\""));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": {"dtype":"F32","shape":[2]}})")),
                            Contains("tensor 'a'") && Contains("needs \"dtype\", \"shape\" and \"data_offsets\""));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": {"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "12345678")),
                            Contains("tensor 'a'") && Contains("non-negative integers"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": [1]})")), Contains("tensor 'a': entry is not a JSON object"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": {"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", "12345678")),
                            Contains("unexpected key \"x\""));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"__metadata__": {"k": 1}})")), Contains("\"__metadata__\" value for \"k\""));
    }
    SECTION("offsets past the end of the buffer") {
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"w": )" + f32x2 + "[0,16]}}", "12345678")),
                            Contains("tensor 'w'") && Contains("data_offsets [0,16] past the end of the 8-byte data buffer"));
    }
    SECTION("offsets inconsistent with dtype and shape") {
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"w": )" + f32x2 + "[0,4]}}", "12345678")),
                            Contains("tensor 'w'") && Contains("span 4 bytes but float32[2] needs 8"));
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"w": )" + f32x2 + "[8,0]}}", "12345678")), Contains("begin > end"));
    }
    SECTION("zero elements, but strides that overflow int64") {
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"z": {"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],)"
                                          R"("data_offsets":[0,0]}})")),
                            Contains("tensor 'z'") && Contains("strides overflow int64"));
    }
    SECTION("overlapping tensors") {
        REQUIRE_THROWS_WITH(load(st_bytes(R"({"a": )" + f32x2 + R"([0,8]}, "b": )" + f32x2 + "[4,12]}}", std::string(12, '\0'))),
                            Contains("tensor 'b'") && Contains("overlap tensor 'a'"));
    }
    SECTION("truncated data buffer is caught by the offsets check") {
        const std::string ok = st_bytes(R"({"w": )" + f32x2 + "[0,8]}}", "12345678");
        REQUIRE_THROWS_WITH(load(ok.substr(0, ok.size() - 1)), Contains("past the end of the 7-byte data buffer"));
    }
}

TEST_CASE("safetensors: bad writes throw and leave nothing behind", "[safetensors]") {
    TempDir dir;
    const Tensor t = Tensor::zeros(DType::Float32, {2});
    REQUIRE_THROWS_WITH(save_safetensors(dir / "x.safetensors", {{"a", t}, {"a", t}}), Contains("duplicate tensor name 'a'"));
    REQUIRE_THROWS_WITH(save_safetensors(dir / "x.safetensors", {{"__metadata__", t}}), Contains("reserved"));
    REQUIRE_THROWS_WITH(save_safetensors(dir / "missing" / "x.safetensors", {{"a", t}}),
                        Contains("cannot write") && Contains("x.safetensors"));
    CHECK(dir.entries().empty());
}
