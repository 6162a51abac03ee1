// test_support.h - helpers for the runtime tests: temp folders, running the
// NumPy reference scripts with Debian's Python, and the closed-form reference
// values shared (independently implemented) with reference_values.py.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "mithril/rt/tensor.h"

namespace rt_test {

namespace fs = std::filesystem;
using mithril::rt::DType;

// n values uniform in [-1, 1), the same for the same seed.
template <class T>
std::vector<T> random_vector(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<T> dist(-1, 1);
    std::vector<T> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

// A fresh empty folder, removed with its contents on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& name) const { return path_ / name; }
    // Names of all entries, sorted.
    std::vector<std::string> entries() const;

private:
    fs::path path_;
};

// Runs tests/runtime/<script> with MITHRIL_PYTHON; returns its exit code and
// puts stdout+stderr into `output`.
int run_python(const std::string& script, const std::vector<std::string>& args, std::string& output);

// All dtypes the reference scripts cover for .npy files (no bfloat16).
const std::vector<DType>& npy_dtypes();
// All dtypes safetensors covers.
const std::vector<DType>& all_dtypes();

// Reference element i of a test array (same formula as reference_values.py).
double expected_value(DType dtype, std::int64_t i);
// Element at flat C-order index i of a contiguous tensor, as double
// (float16/bfloat16 decoded from their bits).
double element(const mithril::rt::Tensor& t, std::int64_t i);
// A contiguous tensor filled with the reference values.
mithril::rt::Tensor reference_tensor(DType dtype, const mithril::rt::Shape& shape);
// True when every element of t matches the reference formula.
bool matches_reference(const mithril::rt::Tensor& t);

void write_bytes(const fs::path& path, const std::string& bytes);
std::string read_bytes(const fs::path& path);

}  // namespace rt_test
