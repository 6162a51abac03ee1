// gemm_bench.cpp - times single-precision gemm on the shapes of Mithril's models,
// for the BLAS library the runtime was built with (run by tools/bench/bench_gemm.py).
//
//   gemm_bench [--threads 2] [--min-time 0.3] [--shapes FILE]
//
// --shapes: time these shapes instead of the built-in list, one per line as
// `M N K ta tb name...` (ta, tb 0 or 1; the rest of the line names it), as
// tools/bench/bench_gemm_share.py writes them for the products of a model.
//
// For each shape, two ways of computing C = A op B: the library's cblas_sgemm as
// called (the "sgemm" column) and mithril::rt::gemm, which routes one-row and
// one-column shapes to gemv (src/blas.cpp). One JSON object per line: the shape,
// the library and GFLOP/s (2*M*N*K / median time of a call).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <random>
#include <string>
#include <vector>

#include "mithril/rt/blas.h"
#include "mithril/rt/threads.h"

// The CBLAS entry point itself, declared here because the runtime keeps cblas.h
// private; OpenBLAS and BLIS share this ABI (enums as int, 32-bit integers).
extern "C" void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                            int lda, const float* b, int ldb, float beta, float* c, int ldc);

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

struct Shape {
    std::string name;
    std::int64_t M, N, K;
    bool ta, tb;
};

// The gemms of the models in samples/ and tools/bench (row-major, C[M,N] = op(A) op(B)).
const Shape kShapes[] = {
    {"MLP Linear 784->512, batch 64", 64, 512, 784, false, true},
    {"MLP Linear 784->512, batch 1", 1, 512, 784, false, true},
    {"MLP Linear 512->10, batch 64", 64, 10, 512, false, true},
    {"MLP weight gradient 512x784, batch 64 (dY^T X)", 512, 784, 64, true, false},
    {"Linear 512->1, batch 64", 64, 1, 512, false, true},
    {"LeNet conv2 per image (16x100x150)", 16, 100, 150, false, false},
    {"LeNet conv1 per image (6x784x25)", 6, 784, 25, false, false},
    {"GPT-2 qkv Linear, 256 tokens", 256, 2304, 768, false, true},
    {"GPT-2 lm head, 256 tokens", 256, 50257, 768, false, true},
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median seconds per call: groups of calls lasting at least 1 ms each, until
// min_time has passed and at least 5 groups ran, after 2 warm-up calls.
double time_call(const std::function<void()>& call, double min_time) {
    call();
    call();
    auto t0 = std::chrono::steady_clock::now();
    call();
    const double once = std::max(seconds_since(t0), 1e-7);
    const int inner = std::max(1, static_cast<int>(1e-3 / once));
    std::vector<double> groups;
    const auto start = std::chrono::steady_clock::now();
    while (groups.size() < 5 || (seconds_since(start) < min_time && groups.size() < 1000)) {
        t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < inner; ++i) call();
        groups.push_back(seconds_since(t0) / inner);
    }
    std::nth_element(groups.begin(), groups.begin() + groups.size() / 2, groups.end());
    return groups[groups.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 2;
    double min_time = 0.3;
    const char* shapes_file = nullptr;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--min-time")) min_time = std::atof(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--shapes")) shapes_file = argv[i + 1];
    }
    threads = mithril::rt::set_num_threads(threads);
    std::mt19937 gen(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    std::vector<Shape> shapes(std::begin(kShapes), std::end(kShapes));
    if (shapes_file) {
        std::ifstream in(shapes_file);
        if (!in) {
            std::fprintf(stderr, "gemm_bench: cannot read %s\n", shapes_file);
            return 1;
        }
        shapes.clear();
        for (std::string line; std::getline(in, line);) {
            std::istringstream ls(line);
            Shape s{};
            int ta = 0, tb = 0;
            if (!(ls >> s.M >> s.N >> s.K >> ta >> tb)) continue;
            s.ta = ta != 0;
            s.tb = tb != 0;
            std::getline(ls >> std::ws, s.name);
            shapes.push_back(s);
        }
    }
    for (const Shape& s : shapes) {
        // Stored shapes: A is M x K (K x M when transposed), B is K x N (N x K).
        std::vector<float> A(std::size_t(s.M * s.K)), B(std::size_t(s.K * s.N)), C(std::size_t(s.M * s.N), 0.f);
        for (auto& x : A) x = dist(gen);
        for (auto& x : B) x = dist(gen);
        const std::int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N, ldc = s.N;
        const double flop = 2.0 * double(s.M) * double(s.N) * double(s.K);
        const double raw = time_call(
            [&] {
                cblas_sgemm(kRowMajor, s.ta ? kTrans : kNoTrans, s.tb ? kTrans : kNoTrans, int(s.M), int(s.N), int(s.K),
                            1.f, A.data(), int(lda), B.data(), int(ldb), 0.f, C.data(), int(ldc));
            },
            min_time);
        const double routed = time_call(
            [&] {
                using mithril::rt::Transpose;
                mithril::rt::gemm(s.ta ? Transpose::Yes : Transpose::No, s.tb ? Transpose::Yes : Transpose::No, s.M, s.N,
                                  s.K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), ldc);
            },
            min_time);
        std::printf(
            "{\"name\": \"%s\", \"M\": %lld, \"N\": %lld, \"K\": %lld, \"ta\": %d, \"tb\": %d, \"blas\": \"%s\", "
            "\"threads\": %d, \"sgemm_gflops\": %.3f, \"rt_gemm_gflops\": %.3f}\n",
            s.name.c_str(), static_cast<long long>(s.M), static_cast<long long>(s.N), static_cast<long long>(s.K), int(s.ta),
            int(s.tb), mithril::rt::blas_library(), threads, flop / raw * 1e-9, flop / routed * 1e-9);
        std::fflush(stdout);
    }
    return 0;
}
