// test_gemm.cpp - Mithril's packed GEMM (mithril/rt/kernels/gemm.h) against a
// float64 loop, over shapes that exercise every edge of the tiling: rows short
// of a tile, a last panel of one vector or of two, K = 0 and 1, leading
// dimensions larger than the rows, products large enough to run threaded.
// Also the weight-block generations that tell a program its packed copy is stale, and conv2d with
// an epilogue in each of its plans (direct for small stride-1 convolutions, per image, batched,
// Winograd with weights transformed per call or once: the direct path only runs where the kernel
// does, so they are tested here, at -march=native).
//
// Tolerance: |got - want| <= 1e-5 + 1e-4 * |want| + 1e-6 * sum_k |a_ik b_kj| (test_kernels.cpp's
// gemm convention plus a term for cancellation: float32 sums of K products err by up to about
// K * 6e-8 times that sum; measured worst here 2e-8 of it), `want` computed in double from the
// same float inputs.
// This file is built at -march=native (tests/runtime/CMakeLists.txt) and the runtime library at the
// build's baseline: it instantiates the kernels it tests itself, at its own vector width, instead of
// linking the library's (an empty MITHRIL_K_INSTANCE: kernels/common.h).
#define MITHRIL_K_INSTANCE(...)
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "mithril/rt/arena.h"
#include "mithril/rt/kernels/conv.h"
#include "mithril/rt/kernels/conv_nhwc.h"
#include "mithril/rt/kernels/data.h"
#include "mithril/rt/kernels/gemm.h"
#include "test_support.h"

using namespace mithril::rt;

namespace {

using rt_test::random_vector;

// "" when C (M x N, leading dimension ldc) holds act(sum_q a(i, q) b(q, j) + bias(i, j)) within the
// tolerance (act: ReLU or none) and its entries past N in each row still hold 42; else a message
// naming the first wrong entry. a, b and bias give the float inputs by index; the sums are double.
template <class A, class B, class Bias>
std::string product_error(const std::vector<float>& C, std::int64_t M, std::int64_t N, std::int64_t K,
                          std::int64_t ldc, const A& a, const B& b, const Bias& bias, bool relu) {
    for (std::int64_t i = 0; i < M; ++i) {
        for (std::int64_t j = 0; j < N; ++j) {
            double want = bias(i, j), sum_abs = 0;
            for (std::int64_t q = 0; q < K; ++q) {
                const double ab = double(a(i, q)) * double(b(q, j));
                want += ab;
                sum_abs += std::abs(ab);
            }
            if (relu && want < 0) want = 0;
            const double got = C[std::size_t(i * ldc + j)];
            if (!(std::abs(got - want) <= 1e-5 + 1e-4 * std::abs(want) + 1e-6 * sum_abs))
                return "C[" + std::to_string(i) + ", " + std::to_string(j) + "] = " + std::to_string(got) + ", want " +
                       std::to_string(want);
        }
        for (std::int64_t j = N; j < ldc; ++j)
            if (C[std::size_t(i * ldc + j)] != 42.f)
                return "C[" + std::to_string(i) + ", " + std::to_string(j) + "] past N was written";
    }
    return "";
}

// C = act(A B + bias) through pack_b + gemm_packed, against double; B given as
// [N, K] (transposed, a Linear weight) or [K, N]; with a_t, A given as [K, M]
// (gemm_packed_at). Entries of C beyond N in each row (ldc > N) must stay untouched.
void check(std::int64_t M, std::int64_t N, std::int64_t K, bool transposed, bool with_bias, bool relu,
           bool a_t = false) {
    INFO("M=" << M << " N=" << N << " K=" << K << " transposed=" << transposed << " bias=" << with_bias << " relu=" << relu
              << " a_t=" << a_t);
    const std::int64_t lda = (a_t ? M : K) + 3, ldb = (transposed ? K : N) + 2, ldc = N + 5;
    const auto A = random_vector<float>(std::size_t((a_t ? K : M) * lda), 1);
    const auto B = random_vector<float>(std::size_t((transposed ? N : K) * ldb), 2);
    const auto bias = random_vector<float>(std::size_t(N), 3);
    std::vector<float> P(std::size_t(k::packed_b_size(N, K)), -7.f);
    k::pack_b(P.data(), B.data(), N, K, ldb, transposed);
    std::vector<float> C(std::size_t(M * ldc), 42.f);
    const float* b = with_bias ? bias.data() : nullptr;
    if (a_t && relu) k::gemm_packed_at(C.data(), A.data(), P.data(), b, M, N, K, lda, ldc, k::Relu{});
    else if (a_t) k::gemm_packed_at(C.data(), A.data(), P.data(), b, M, N, K, lda, ldc);
    else if (relu) k::gemm_packed(C.data(), A.data(), P.data(), b, M, N, K, lda, ldc, k::Relu{});
    else k::gemm_packed(C.data(), A.data(), P.data(), b, M, N, K, lda, ldc);
    REQUIRE(product_error(
                C, M, N, K, ldc,
                [&](std::int64_t i, std::int64_t q) { return A[std::size_t(a_t ? q * lda + i : i * lda + q)]; },
                [&](std::int64_t q, std::int64_t j) {
                    return transposed ? B[std::size_t(j * ldb + q)] : B[std::size_t(q * ldb + j)];
                },
                [&](std::int64_t, std::int64_t j) { return with_bias ? double(bias[std::size_t(j)]) : 0.0; },
                relu) == "");
}

}  // namespace

TEST_CASE("packed gemm matches a float64 loop on every tiling edge", "[gemm]") {
    const std::int64_t mr = k::gemm_tile_rows(), nr = k::gemm_panel_width(), vec = nr / 2;
    for (std::int64_t M : {std::int64_t{1}, mr - 1, mr, 2 * mr + 3})
        for (std::int64_t N : {std::int64_t{1}, vec - 1, vec, vec + 1, nr, nr + 1, nr + vec, 3 * nr + vec + 2})
            for (std::int64_t K : {0, 1, 7, 64})
                for (bool transposed : {true, false})
                    for (bool a_t : {false, true})
                        check(M, N, K, transposed, (M + N + K) % 2 == 0, (M + K) % 3 == 0, a_t);
}

TEST_CASE("packed gemm: products large enough to run on every thread", "[gemm]") {
    check(70, 519, 300, true, true, true);   // several row tiles per panel, a two-vector last panel
    check(64, 10, 512, true, true, false);   // a 10-class head: one narrow panel
    check(300, 40, 2500, false, false, false);
    check(196, 64, 64, true, false, false, true);  // Winograd's products on packed weights (ResNet-18's 56x56 stage)
    // Nine panels (panel-major order) and K large enough that the rows come in two blocks.
    check(56, 9 * k::gemm_panel_width() - 3, 20000, true, true, false);
}

namespace {

// C = act(A B + row_bias) through gemm_nn (B read in place), against double.
void check_nn(std::int64_t M, std::int64_t N, std::int64_t K, bool with_bias, bool relu) {
    INFO("gemm_nn M=" << M << " N=" << N << " K=" << K << " bias=" << with_bias << " relu=" << relu);
    const std::int64_t lda = K + 1, ldb = N + 3, ldc = N + 2;
    const auto A = random_vector<float>(std::size_t(M * lda), 4);
    const auto B = random_vector<float>(std::size_t(K * ldb), 5);
    const auto bias = random_vector<float>(std::size_t(M), 6);
    std::vector<float> C(std::size_t(M * ldc), 42.f);
    const float* b = with_bias ? bias.data() : nullptr;
    if (relu) k::gemm_nn(C.data(), A.data(), B.data(), b, M, N, K, lda, ldb, ldc, k::Relu{});
    else k::gemm_nn(C.data(), A.data(), B.data(), b, M, N, K, lda, ldb, ldc);
    REQUIRE(product_error(
                C, M, N, K, ldc, [&](std::int64_t i, std::int64_t q) { return A[std::size_t(i * lda + q)]; },
                [&](std::int64_t q, std::int64_t j) { return B[std::size_t(q * ldb + j)]; },
                [&](std::int64_t i, std::int64_t) { return with_bias ? double(bias[std::size_t(i)]) : 0.0; },
                relu) == "");
}

}  // namespace

TEST_CASE("gemm_nn (B read in place, a partial last panel copied) matches a float64 loop", "[gemm]") {
    const std::int64_t mr = k::gemm_tile_rows(), nr = k::gemm_panel_width(), vec = nr / 2;
    for (std::int64_t M : {std::int64_t{1}, mr + 1, 3 * mr})
        for (std::int64_t N : {std::int64_t{1}, vec, vec + 1, nr, 2 * nr + 3})
            for (std::int64_t K : {0, 3, 40}) check_nn(M, N, K, (M + N) % 2 == 1, K % 2 == 1);
    check_nn(512, 49, 600, true, false);   // ResNet-18's last stage: two panels, the second copied
    check_nn(70, 300, 200, false, true);
    // Called from inside a parallel region (convolutions over images): runs on the calling
    // thread, each thread with its own copy of the last panel.
    std::vector<std::string> errors(4);
#pragma omp parallel for num_threads(2)
    for (int t = 0; t < 4; ++t) {
        const std::int64_t M = 20 + t, N = 37 + t, K = 500;
        const auto A = random_vector<float>(std::size_t(M * K), 10 + unsigned(t));
        const auto B = random_vector<float>(std::size_t(K * N), 20 + unsigned(t));
        std::vector<float> C(std::size_t(M * N));
        k::gemm_nn(C.data(), A.data(), B.data(), nullptr, M, N, K, K, N, N);
        errors[std::size_t(t)] = product_error(
            C, M, N, K, N, [&](std::int64_t i, std::int64_t q) { return A[std::size_t(i * K + q)]; },
            [&](std::int64_t q, std::int64_t j) { return B[std::size_t(q * N + j)]; },
            [](std::int64_t, std::int64_t) { return 0.0; }, false);
    }
    for (int t = 0; t < 4; ++t) CHECK(errors[std::size_t(t)] == "");
}

TEST_CASE("pack_b: whole panels, zero-padded, a narrow last panel", "[gemm]") {
    const std::int64_t nr = k::gemm_panel_width(), vec = nr / 2, K = 3;
    CHECK(k::packed_b_size(0, K) == 0);
    CHECK(k::packed_b_size(nr, K) == nr * K);
    CHECK(k::packed_b_size(nr + 1, K) == (nr + vec) * K);       // last panel: one vector
    CHECK(k::packed_b_size(nr + vec + 1, K) == 2 * nr * K);     // last panel: two vectors
    const std::int64_t N = nr + 2;
    std::vector<float> W(std::size_t(N * K));
    for (std::size_t i = 0; i < W.size(); ++i) W[i] = float(i + 1);
    std::vector<float> P(std::size_t(k::packed_b_size(N, K)), -1.f);
    k::pack_b(P.data(), W.data(), N, K, K, true);
    // Panel 0, row k holds W[0..nr, k]; the last panel holds columns nr, nr+1, then zeros.
    for (std::int64_t q = 0; q < K; ++q) {
        for (std::int64_t j = 0; j < nr; ++j) REQUIRE(P[std::size_t(q * nr + j)] == W[std::size_t(j * K + q)]);
        const float* last = P.data() + nr * K + q * vec;
        REQUIRE(last[0] == W[std::size_t(nr * K + q)]);
        REQUIRE(last[1] == W[std::size_t((nr + 1) * K + q)]);
        for (std::int64_t j = 2; j < vec; ++j) REQUIRE(last[j] == 0.f);
    }
}

TEST_CASE("arena generations: unique per arena, shared by aliases, changed by touch", "[gemm][arena]") {
    Arena a(64), b(64);
    CHECK(a.generation() != 0);
    CHECK(a.generation() != b.generation());
    Arena alias = a.alias();
    CHECK(alias.generation() == a.generation());
    const auto before = a.generation();
    alias.touch();
    CHECK(a.generation() != before);           // the weights changed through the other handle
    CHECK(a.generation() == alias.generation());
    CHECK(a.generation() != b.generation());   // never equal to another arena's, touched or not
}

TEST_CASE("conv2d with an epilogue matches a float64 loop in every plan", "[gemm][conv]") {
    struct Case {
        std::int64_t N, C, H, K, KH, stride, pad, groups;
    };
    // LeNet's second convolution (small products, stride 1: direct, images split over the
    // threads), a grouped one, a strided one (one image: per image), a 7x7 stage (batched), a
    // 3x3 one with enough tiles for Winograd F(4x4, 3x3), one with too few (F(4x4, 3x3) on
    // transformed weights), a small strided one (im2col of 4 images per product), 7x7
    // planes with enough tiles for F(2x2, 3x3), and F(2x2, 3x3) on transformed weights (odd
    // plane, channel counts not multiples of 16), then wide strided ones through their phases
    // (a 7x7 stride-2 stem, a 5x5 stride-3 one), then depthwise ones (direct: 3x3, 3x3 stride 2, 5x5).
    const Case cases[] = {{9, 6, 14, 16, 5, 1, 0, 1}, {7, 4, 10, 8, 3, 1, 1, 2}, {1, 64, 20, 64, 3, 2, 1, 1},
                          {4, 64, 7, 64, 3, 1, 1, 1}, {8, 32, 22, 32, 3, 1, 1, 1}, {1, 32, 9, 48, 3, 1, 1, 1},
                          {8, 4, 12, 8, 3, 2, 1, 1},  {16, 16, 7, 24, 3, 1, 1, 1}, {2, 24, 7, 40, 3, 1, 1, 1},
                          {1, 3, 134, 16, 7, 2, 3, 1},  {1, 4, 200, 8, 5, 3, 2, 1}, {2, 24, 11, 24, 3, 1, 1, 24},
                          {1, 32, 15, 32, 3, 2, 1, 32}, {3, 5, 9, 5, 5, 1, 2, 5}};
    for (const Case& c : cases) {
        const std::int64_t OH = (c.H + 2 * c.pad - c.KH) / c.stride + 1, P = OH * OH, Cg = c.C / c.groups,
                           Kg = c.K / c.groups;
        INFO("N=" << c.N << " C=" << c.C << " H=" << c.H << " K=" << c.K << " kernel=" << c.KH << " stride=" << c.stride
                  << " groups=" << c.groups);
        const auto in = random_vector<float>(std::size_t(c.N * c.C * c.H * c.H), 11);
        const auto w = random_vector<float>(std::size_t(c.K * Cg * c.KH * c.KH), 12);
        const auto bias = random_vector<float>(std::size_t(c.K), 13);
        const auto scale = random_vector<float>(std::size_t(c.K), 14);
        const auto res = random_vector<float>(std::size_t(c.N * c.K * P), 15);
        std::vector<float> out(std::size_t(c.N * c.K * P), 42.f);
        std::vector<float> scratch(k::conv2d_scratch(c.C, c.KH, c.KH, c.stride, c.stride, c.pad, c.pad, c.groups, OH,
                                                     OH, c.N, c.K, k::ConvAlgo::Auto));
        // A BatchNorm-like scale, a residual add and a ReLU, as the fuse-epilogue pass emits them.
        std::vector<int> rows(std::size_t(c.N * c.K), 0);
        auto epi = [&](float* row, std::int64_t n, std::int64_t kk, std::int64_t len) {
            ++rows[std::size_t(n * c.K + kk)];
            const float* r = res.data() + (n * c.K + kk) * len;
            for (std::int64_t q = 0; q < len; ++q) row[q] = std::max(row[q] * scale[std::size_t(kk)] + r[q], 0.f);
        };
        // Too few tiles for Winograd at their batch unless the weights come transformed: the 7x7
        // stage without them (batched im2col), the last case with them.
        const bool packs = k::detail::winograd_packs(c.N, c.C, c.K, c.KH, c.KH, c.stride, c.stride, 1, 1, c.groups, OH, OH);
        CHECK(packs == (&c == &cases[5] || &c == &cases[3] || &c == &cases[8]));
        const bool use = &c == &cases[5] || &c == &cases[8];
        std::vector<float> U(std::size_t(k::winograd_packed_size(c.K, Cg, OH, OH)));
        if (use) k::winograd_pack(U.data(), w.data(), c.K, c.C, OH, OH);
        k::conv2d(out.data(), in.data(), w.data(), bias.data(), c.N, c.C, c.H, c.H, c.K, c.KH, c.KH, c.stride, c.stride,
                  c.pad, c.pad, 1, 1, c.groups, OH, OH, scratch.data(), k::ConvAlgo::Auto, epi,
                  use ? U.data() : nullptr);
        for (int r : rows) REQUIRE(r == 1);  // every row once
        std::string error;
        for (std::int64_t n = 0; n < c.N && error.empty(); ++n)
            for (std::int64_t kk = 0; kk < c.K && error.empty(); ++kk)
                for (std::int64_t q = 0; q < P && error.empty(); ++q) {
                    const std::int64_t oh = q / OH, ow = q % OH, g = kk / Kg;
                    double sum = bias[std::size_t(kk)], sum_abs = 0;
                    for (std::int64_t ci = 0; ci < Cg; ++ci)
                        for (std::int64_t a = 0; a < c.KH; ++a)
                            for (std::int64_t b = 0; b < c.KH; ++b) {
                                const std::int64_t ih = oh * c.stride - c.pad + a, iw = ow * c.stride - c.pad + b;
                                if (ih < 0 || iw < 0 || ih >= c.H || iw >= c.H) continue;
                                const double x = in[std::size_t(((n * c.C + g * Cg + ci) * c.H + ih) * c.H + iw)];
                                const double v = x * w[std::size_t(((kk * Cg + ci) * c.KH + a) * c.KH + b)];
                                sum += v;
                                sum_abs += std::abs(v);
                            }
                    const double want =
                        std::max(sum * scale[std::size_t(kk)] + res[std::size_t((n * c.K + kk) * P + q)], 0.0);
                    const double got = out[std::size_t((n * c.K + kk) * P + q)];
                    if (!(std::abs(got - want) <= 1e-5 + 1e-4 * std::abs(want) + 1e-5 * sum_abs))
                        error = "out[" + std::to_string(n) + ", " + std::to_string(kk) + ", " + std::to_string(q) +
                                "] = " + std::to_string(got) + ", want " + std::to_string(want);
                }
        REQUIRE(error == "");
    }
}

// Channels-last convolutions (kernels/conv_nhwc.h) against a float64 loop in NHWC, with a pixel
// epilogue (scale, residual add, ReLU, as the layout pass emits them) that must see every pixel
// once: depthwise with blocks of 64 and 16 channels and a rest (90), strided, dilated, padded, without
// bias; pointwise with the weight packed (blocks of pixels, then one gemm for few pixels) and as
// it is (the BLAS). Tolerance as conv2d's above.
TEST_CASE("conv2d_nhwc (depthwise, pointwise) with a pixel epilogue matches a float64 loop", "[gemm][conv]") {
    struct Case {
        std::int64_t N, C, H, W, K, KH, stride, pad, dil;
        bool bias, packed;
    };
    const Case cases[] = {{2, 90, 15, 13, 90, 3, 1, 1, 1, true, false},  {1, 128, 9, 9, 128, 3, 2, 1, 1, false, false},
                          {3, 5, 8, 11, 5, 5, 1, 2, 2, true, false},     {1, 64, 7, 7, 64, 3, 2, 2, 2, true, false},
                          {2, 24, 30, 30, 40, 1, 1, 0, 1, true, true},   {1, 96, 7, 7, 200, 1, 1, 0, 1, false, true},
                          {2, 24, 10, 9, 40, 1, 1, 0, 1, true, false}};
    for (const Case& c : cases) {
        const bool dw = c.KH > 1;
        const std::int64_t groups = dw ? c.C : 1, Cg = c.C / groups;
        const std::int64_t OH = (c.H + 2 * c.pad - c.dil * (c.KH - 1) - 1) / c.stride + 1,
                           OW = (c.W + 2 * c.pad - c.dil * (c.KH - 1) - 1) / c.stride + 1;
        INFO("N=" << c.N << " C=" << c.C << " H=" << c.H << " W=" << c.W << " K=" << c.K << " kernel=" << c.KH
                  << " stride=" << c.stride << " pad=" << c.pad << " dilation=" << c.dil << " packed=" << c.packed);
        REQUIRE(k::conv2d_nhwc_supports(c.C, c.K, c.KH, c.KH, c.stride, c.stride, c.pad, c.pad, groups));
        const auto in = random_vector<float>(std::size_t(c.N * c.H * c.W * c.C), 21);
        const auto w = random_vector<float>(std::size_t(c.K * Cg * c.KH * c.KH), 22);
        const auto bias = random_vector<float>(std::size_t(c.K), 23);
        const auto scale = random_vector<float>(std::size_t(c.K), 24);
        const std::int64_t pixels = c.N * OH * OW;
        const auto res = random_vector<float>(std::size_t(pixels * c.K), 25);
        std::vector<float> out(std::size_t(pixels * c.K), 42.f);
        std::vector<float> scratch(k::conv2d_nhwc_scratch(c.C, c.K, c.KH, c.KH, groups));
        std::vector<float> P;
        if (c.packed) {
            P.assign(std::size_t(k::packed_b_size(c.K, c.C)), 0.f);
            k::pack_b(P.data(), w.data(), c.K, c.C, c.C, true);
        }
        std::vector<int> seen(std::size_t(pixels), 0);
        auto epi = [&](float* rows, std::int64_t p0, std::int64_t count) {
            for (std::int64_t i = 0; i < count; ++i) {
                ++seen[std::size_t(p0 + i)];
                for (std::int64_t kk = 0; kk < c.K; ++kk) {
                    float& v = rows[i * c.K + kk];
                    v = std::max(v * scale[std::size_t(kk)] + res[std::size_t((p0 + i) * c.K + kk)], 0.f);
                }
            }
        };
        const float* P_or_null = c.packed && k::kPackedGemm ? P.data() : nullptr;
        k::conv2d_nhwc(out.data(), in.data(), w.data(), c.bias ? bias.data() : nullptr, c.N, c.C, c.H, c.W, c.K, c.KH,
                       c.KH, c.stride, c.stride, c.pad, c.pad, c.dil, c.dil, groups, OH, OW, scratch.data(), epi,
                       P_or_null);
        for (int s : seen) REQUIRE(s == 1);  // every pixel once
        std::string error;
        for (std::int64_t p = 0; p < pixels && error.empty(); ++p)
            for (std::int64_t kk = 0; kk < c.K && error.empty(); ++kk) {
                const std::int64_t n = p / (OH * OW), oh = p / OW % OH, ow = p % OW, g = kk / (c.K / groups);
                double sum = c.bias ? bias[std::size_t(kk)] : 0.0, sum_abs = 0;
                for (std::int64_t ci = 0; ci < Cg; ++ci)
                    for (std::int64_t a = 0; a < c.KH; ++a)
                        for (std::int64_t b = 0; b < c.KH; ++b) {
                            const std::int64_t ih = oh * c.stride - c.pad + a * c.dil,
                                               iw = ow * c.stride - c.pad + b * c.dil;
                            if (ih < 0 || iw < 0 || ih >= c.H || iw >= c.W) continue;
                            const double x = in[std::size_t(((n * c.H + ih) * c.W + iw) * c.C + g * Cg + ci)];
                            const double v = x * w[std::size_t(((kk * Cg + ci) * c.KH + a) * c.KH + b)];
                            sum += v;
                            sum_abs += std::abs(v);
                        }
                const double want = std::max(sum * scale[std::size_t(kk)] + res[std::size_t(p * c.K + kk)], 0.0);
                const double got = out[std::size_t(p * c.K + kk)];
                if (!(std::abs(got - want) <= 1e-5 + 1e-4 * std::abs(want) + 1e-5 * sum_abs))
                    error = "out[pixel " + std::to_string(p) + ", " + std::to_string(kk) + "] = " + std::to_string(got) +
                            ", want " + std::to_string(want);
            }
        REQUIRE(error == "");
    }
    // A shape without a channels-last kernel is refused, not computed wrongly.
    CHECK_FALSE(k::conv2d_nhwc_supports(16, 32, 3, 3, 1, 1, 1, 1, 1));
    std::vector<float> x(16 * 9), y(32 * 9), w(32 * 16 * 9);
    CHECK_THROWS_WITH(k::conv2d_nhwc(y.data(), x.data(), w.data(), nullptr, 1, 16, 3, 3, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1,
                                     3, 3, static_cast<float*>(nullptr)),
                      Catch::Contains("only depthwise"));
}

// permute's tiled path (NCHW <-> NHWC and other rotations of trailing axes) against the index formula.
TEST_CASE("permute: rotations of trailing axes in tiles equal the element-wise definition", "[kernels][permute]") {
    const std::int64_t shape[4] = {2, 37, 5, 33};
    const auto x = random_vector<float>(2 * 37 * 5 * 33, 31);
    const std::int64_t perms[][4] = {{0, 2, 3, 1}, {0, 3, 1, 2}, {1, 2, 3, 0}, {0, 1, 3, 2}, {0, 2, 1, 3}};
    for (const auto& perm : perms) {
        INFO("perm " << perm[0] << perm[1] << perm[2] << perm[3]);
        std::vector<float> y(x.size(), -1.f);
        k::permute(y.data(), x.data(), 4, shape, perm);
        std::int64_t os[4], is[4] = {37 * 5 * 33, 5 * 33, 33, 1};
        for (int d = 0; d < 4; ++d) os[d] = shape[perm[d]];
        std::int64_t i = 0;
        bool ok = true;
        for (std::int64_t a = 0; a < os[0]; ++a)
            for (std::int64_t b = 0; b < os[1]; ++b)
                for (std::int64_t c = 0; c < os[2]; ++c)
                    for (std::int64_t d = 0; d < os[3]; ++d, ++i)
                        ok &= y[std::size_t(i)] ==
                              x[std::size_t(a * is[perm[0]] + b * is[perm[1]] + c * is[perm[2]] + d * is[perm[3]])];
        CHECK(ok);
    }
}
