// test_support.cpp - see test_support.h.
#include "test_support.h"

#include <sys/wait.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#ifndef MITHRIL_PYTHON
#define MITHRIL_PYTHON "/usr/bin/python3"
#endif

namespace rt_test {

using mithril::rt::Tensor;
using mithril::rt::visit_dtype;

TempDir::TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("mithril_rt_test_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

std::vector<std::string> TempDir::entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

namespace {
std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// float value -> IEEE half bits, for the exactly representable normal values used here.
std::uint16_t float_to_half(float v) {
    if (v == 0.f) return 0;
    const std::uint16_t sign = v < 0 ? 0x8000 : 0;
    int exp = 0;
    const float frac = std::frexp(std::fabs(v), &exp);  // |v| = frac * 2^exp, frac in [0.5, 1)
    const auto mant = static_cast<std::uint16_t>((frac * 2.f - 1.f) * 1024.f);
    return static_cast<std::uint16_t>(sign | ((exp - 1 + 15) << 10) | mant);
}

float half_to_float(std::uint16_t h) {
    const int exp = (h >> 10) & 31, mant = h & 1023;
    const float v = exp == 0 ? std::ldexp(static_cast<float>(mant), -24)
                             : std::ldexp(static_cast<float>(mant + 1024), exp - 25);
    return (h & 0x8000) ? -v : v;
}

float bf16_to_float(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }
std::uint16_t float_to_bf16(float f) { return static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(f) >> 16); }
}  // namespace

int run_python(const std::string& script, const std::vector<std::string>& args, std::string& output) {
    TempDir log_dir;
    const fs::path log = log_dir / "log.txt";
    std::string cmd = shell_quote(MITHRIL_PYTHON) + " -B " + shell_quote(std::string(MITHRIL_RT_TEST_DIR) + "/" + script);
    for (const auto& a : args) cmd += " " + shell_quote(a);
    cmd += " > " + shell_quote(log.string()) + " 2>&1";
    const int status = std::system(cmd.c_str());
    output = "$ " + cmd + "\n" + read_bytes(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const std::vector<DType>& npy_dtypes() {
    static const std::vector<DType> v{DType::Float32, DType::Float64, DType::Float16, DType::Int32, DType::Int64,
                                      DType::UInt8,   DType::Bool,    DType::UInt16,  DType::Int8};
    return v;
}

const std::vector<DType>& all_dtypes() {
    static const std::vector<DType> v = [] {
        auto d = npy_dtypes();
        d.push_back(DType::BFloat16);
        return d;
    }();
    return v;
}

double expected_value(DType dtype, std::int64_t i) {
    switch (dtype) {
        case DType::Float32: case DType::Float64: case DType::Float16: case DType::BFloat16:
            return static_cast<double>(i - 5) * 0.25;
        case DType::Int32: return static_cast<double>((i - 5) * 100003);
        case DType::Int64: return static_cast<double>((i - 5) * 3000000007LL);
        case DType::UInt8: return static_cast<double>((i * 37) % 256);
        case DType::Int8: return static_cast<double>((i * 37) % 256 - 128);
        case DType::UInt16: return static_cast<double>((i * 2731) % 65536);
        case DType::Bool: return i % 3 == 0 ? 1.0 : 0.0;
    }
    return 0;
}

double element(const Tensor& t, std::int64_t i) {
    return visit_dtype(t.dtype(), [&](auto tag) -> double {
        using T = decltype(tag);
        const T v = static_cast<const T*>(t.raw_data())[i];
        if (t.dtype() == DType::Float16) return half_to_float(static_cast<std::uint16_t>(v));
        if (t.dtype() == DType::BFloat16) return bf16_to_float(static_cast<std::uint16_t>(v));
        return static_cast<double>(v);
    });
}

Tensor reference_tensor(DType dtype, const mithril::rt::Shape& shape) {
    Tensor t = Tensor::zeros(dtype, shape);
    visit_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        auto* p = static_cast<T*>(t.raw_data());
        for (std::int64_t i = 0; i < t.numel(); ++i) {
            const double v = expected_value(dtype, i);
            if (dtype == DType::Float16) p[i] = static_cast<T>(float_to_half(static_cast<float>(v)));
            else if (dtype == DType::BFloat16) p[i] = static_cast<T>(float_to_bf16(static_cast<float>(v)));
            else p[i] = static_cast<T>(v);
        }
    });
    return t;
}

bool matches_reference(const Tensor& t) {
    for (std::int64_t i = 0; i < t.numel(); ++i)
        if (element(t, i) != expected_value(t.dtype(), i)) return false;
    return true;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const fs::path& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace rt_test
