// test_cpu_kernel_facts.cpp - the compiler's statement of the CPU kernels' plans
// (compiler/ops/cpu_kernels.h: scratch sizes, which variant applies, packed
// sizes) against the kernels' own functions (mithril/rt/kernels/conv.h,
// conv_nhwc.h, gemm.h), for many shapes. The compiler never includes the
// runtime's headers; this test is the one place that sees both, so a kernel
// whose plan or scratch changes fails here until the compiler says the same.
// Every path is asserted to be reached: Winograd (both tiles, chunked and with
// packed weights), direct, polyphase, im2col per image, batched and grouped,
// pointwise, the flipped data gradient, channels-last depthwise and pointwise.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "../../compiler/ops/cpu_kernels.h"
#include "mithril/rt/kernels/conv.h"
#include "mithril/rt/kernels/conv_nhwc.h"
#include "mithril/rt/kernels/gemm.h"

namespace ck = mithril::cpu_kernels;
namespace rk = mithril::rt::k;

namespace {

struct Conv {
  int64_t N, C, K, H, W, KH, KW, sh, sw, ph, pw, dh, dw, groups, OH, OW;
};

std::string str(const Conv& c) {
  return "N=" + std::to_string(c.N) + " C=" + std::to_string(c.C) + " K=" + std::to_string(c.K) + " H=" +
         std::to_string(c.H) + " W=" + std::to_string(c.W) + " k=" + std::to_string(c.KH) + "x" + std::to_string(c.KW) +
         " s=" + std::to_string(c.sh) + "," + std::to_string(c.sw) + " p=" + std::to_string(c.ph) + "," +
         std::to_string(c.pw) + " d=" + std::to_string(c.dh) + "," + std::to_string(c.dw) + " g=" +
         std::to_string(c.groups) + " out=" + std::to_string(c.OH) + "x" + std::to_string(c.OW);
}

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

// Shapes: the samples' layers, a grid around the paths' thresholds, and random ones.
std::vector<Conv> shapes() {
  std::vector<Conv> out;
  auto add = [&](int64_t N, int64_t C, int64_t K, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t s, int64_t p,
                 int64_t d, int64_t groups) {
    if (C % groups || K % groups) return;
    const int64_t OH = out_size(H, KH, s, p, d), OW = out_size(W, KW, s, p, d);
    if (OH <= 0 || OW <= 0) return;
    out.push_back({N, C, K, H, W, KH, KW, s, s, p, p, d, d, groups, OH, OW});
  };
  const int64_t big = std::numeric_limits<int64_t>::max();  // the compiler's bound of a batch left to run time
  for (int64_t N : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{8}, int64_t{17}, int64_t{64}, int64_t{1024}, big})
    for (int64_t C : {1, 3, 16, 64, 256})
      for (int64_t K : {1, 16, 64, 512})
        for (int64_t HW : {1, 5, 7, 8, 14, 28, 56, 112})
          for (int64_t k : {1, 3, 7})
            for (int64_t s : {1, 2})
              for (int64_t p : {0, 1, 3}) {
                add(N, C, K, HW, HW, k, k, s, p, 1, 1);
                if (C == K) add(N, C, K, HW, HW, k, k, s, p, 1, C);  // depthwise
              }
  std::mt19937_64 rng(21);
  auto pick = [&](std::initializer_list<int64_t> v) { return *(v.begin() + rng() % v.size()); };
  for (int i = 0; i < 40000; ++i) {
    const int64_t groups = pick({1, 1, 1, 2, 4});
    const int64_t C = groups * pick({1, 2, 3, 4, 8, 16, 24, 32, 64, 128});
    const int64_t K = groups * pick({1, 2, 6, 8, 16, 32, 48, 64, 256});
    const int64_t H = pick({1, 2, 3, 4, 6, 7, 8, 9, 12, 15, 16, 28, 32, 33, 64, 100, 224});
    const int64_t W = rng() % 4 == 0 ? H : pick({1, 3, 5, 7, 8, 10, 16, 28, 31, 64, 65, 128, 224});
    const int64_t KH = pick({1, 2, 3, 5, 7}), KW = rng() % 3 == 0 ? pick({1, 3, 5}) : KH;
    const int64_t sh = pick({1, 1, 2, 3}), sw = rng() % 3 == 0 ? pick({1, 2}) : sh;
    const int64_t ph = pick({0, 0, 1, 2}), pw = rng() % 3 == 0 ? pick({0, 1}) : ph;
    const int64_t dh = pick({1, 1, 1, 2}), dw = rng() % 4 == 0 ? pick({1, 2}) : dh;
    const int64_t N = pick({1, 2, 4, 5, 8, 16, 31, 64, 128, 300, 1024, big});
    const int64_t OH = out_size(H, KH, sh, ph, dh), OW = out_size(W, KW, sw, pw, dw);
    if (OH > 0 && OW > 0) out.push_back({N, C, K, H, W, KH, KW, sh, sw, ph, pw, dh, dw, groups, OH, OW});
  }
  return out;
}

rk::ConvAlgo rt_algo(ck::ConvAlgo a) { return a == ck::ConvAlgo::Auto ? rk::ConvAlgo::Auto : rk::ConvAlgo::PerImage; }

}  // namespace

TEST_CASE("cpu kernel facts: the compiler's conv scratch, plans and packed sizes equal the runtime's", "[cpu_kernels]") {
  const std::vector<Conv> all = shapes();
  REQUIRE(all.size() > 20000);
  std::map<std::string, int> paths;
  int mismatches = 0;
  auto expect = [&](bool ok, const char* what, const Conv& c, ck::ConvAlgo a) {
    if (ok) return;
    if (++mismatches <= 20)
      FAIL_CHECK(what << " differs for " << str(c) << (a == ck::ConvAlgo::Auto ? " (Auto)" : " (PerImage)"));
  };
  for (const Conv& c : all) {
    for (ck::ConvAlgo a : {ck::ConvAlgo::PerImage, ck::ConvAlgo::Auto}) {
      const rk::ConvAlgo r = rt_algo(a);
      // Forward (conv2d; conv1d is its H = 1 case), and the transposed convolution's data gradient.
      expect(ck::conv2d_scratch(c.C, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups, c.OH, c.OW, c.N, c.K, a, c.dh,
                                c.dw) == rk::conv2d_scratch(c.C, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups, c.OH,
                                                            c.OW, c.N, c.K, r, c.dh, c.dw),
             "conv2d_scratch", c, a);
      expect(ck::conv2d_scratch_sized(c.C, c.H, c.W, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups, c.OH, c.OW, c.N,
                                      c.K, a, c.dh, c.dw) ==
                 rk::detail::conv2d_scratch_sized(c.C, c.H, c.W, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups, c.OH,
                                                  c.OW, c.N, c.K, r, c.dh, c.dw),
             "conv2d_scratch_sized", c, a);
      expect(ck::conv2d_grad_input_scratch(c.N, c.C, c.H, c.W, c.K, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw,
                                           c.groups, c.OH, c.OW, a) ==
                 rk::conv2d_grad_input_scratch(c.N, c.C, c.H, c.W, c.K, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw,
                                               c.groups, c.OH, c.OW, r),
             "conv2d_grad_input_scratch", c, a);
      expect(ck::conv_transpose2d_grad_input_scratch(c.N, c.C, c.H, c.W, c.K, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.dh,
                                                     c.dw, c.groups, c.OH, c.OW, a) ==
                 rk::conv_transpose2d_grad_input_scratch(c.N, c.C, c.H, c.W, c.K, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw,
                                                         c.dh, c.dw, c.groups, c.OH, c.OW, r),
             "conv_transpose2d_grad_input_scratch", c, a);
      expect(ck::conv2d_grad_weight_scratch(c.C, c.H, c.W, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups, c.OH, c.OW,
                                            c.N, c.K, a, c.dh, c.dw) ==
                 rk::conv2d_grad_weight_scratch(c.C, c.H, c.W, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups, c.OH,
                                                c.OW, c.N, c.K, r, c.dh, c.dw),
             "conv2d_grad_weight_scratch", c, a);
      expect(ck::conv2d_grad_input_flipped(a, c.C, c.groups, c.sh, c.sw, c.H, c.W, c.OH, c.OW) ==
                 rk::conv2d_grad_input_flipped(r, c.C, c.groups, c.sh, c.sw, c.H, c.W, c.OH, c.OW),
             "conv2d_grad_input_flipped", c, a);
      const int64_t tile = ck::winograd_tile(c.OH, c.OW);
      expect(tile == rk::detail::winograd_tile(c.OH, c.OW), "winograd_tile", c, a);
      expect(ck::winograd_images(a, c.N, c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.dh, c.dw, c.groups, c.OH, c.OW, tile) ==
                 rk::detail::winograd_images(r, c.N, c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.dh, c.dw, c.groups, c.OH, c.OW,
                                             tile),
             "winograd_images", c, a);
      // Which path the forward kernel takes (the plan's functions above, asked of the compiler's side).
      if (a == ck::ConvAlgo::Auto) {
        const int64_t R = c.C / c.groups * c.KH * c.KW, P = c.OH * c.OW;
        const ck::ConvPlan plan = ck::conv2d_plan(a, c.N, c.C, c.K, c.KH, c.KW, c.groups, P);
        const rk::ConvPlan rplan = rk::detail::conv2d_plan(r, c.N, c.C, c.K, c.KH, c.KW, c.groups, P);
        expect(static_cast<int>(plan.mode) == static_cast<int>(rplan.mode) && plan.images == rplan.images,
               "conv2d_plan", c, a);
        if (ck::winograd_images(a, c.N, c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.dh, c.dw, c.groups, c.OH, c.OW, tile))
          ++paths[tile == 4 ? "winograd F(4x4)" : "winograd F(2x2)"];
        else if (ck::winograd_packs(c.N, c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.dh, c.dw, c.groups, c.OH, c.OW))
          ++paths["winograd, packed weights"];
        else if (ck::conv_direct(plan, c.sh, c.sw, R))
          ++paths["direct"];
        else if (ck::conv_polyphase(plan, c.KH, c.KW, c.sh, c.sw, c.dh, c.dw, c.groups, R, c.OW))
          ++paths["polyphase"];
        else if (plan.mode == ck::ConvPlan::Batched)
          ++paths["im2col, batched"];
        else if (ck::conv_group(plan, c.N, c.K / c.groups, P, R, R * P, c.K / c.groups * P) > 1)
          ++paths["im2col, grouped images"];
        else if (ck::conv_is_pointwise(c.KH, c.KW, c.sh, c.sw, c.ph, c.pw))
          ++paths["pointwise"];
        else
          ++paths["im2col, per image"];
        if (ck::conv2d_grad_input_flipped(a, c.C, c.groups, c.sh, c.sw, c.H, c.W, c.OH, c.OW)) ++paths["flipped dx"];
      }
    }
    expect(ck::winograd_packs(c.N, c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.dh, c.dw, c.groups, c.OH, c.OW) ==
               rk::detail::winograd_packs(c.N, c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.dh, c.dw, c.groups, c.OH, c.OW),
           "winograd_packs", c, ck::ConvAlgo::Auto);
    // Channels-last (the layout pass's convolutions).
    expect(ck::conv_nhwc_depthwise(c.C, c.K, c.groups) == rk::conv_nhwc_depthwise(c.C, c.K, c.groups),
           "conv_nhwc_depthwise", c, ck::ConvAlgo::Auto);
    expect(ck::conv2d_nhwc_supports(c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups) ==
               rk::conv2d_nhwc_supports(c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups),
           "conv2d_nhwc_supports", c, ck::ConvAlgo::Auto);
    expect(ck::conv2d_nhwc_scratch(c.C, c.K, c.KH, c.KW, c.groups) ==
               rk::conv2d_nhwc_scratch(c.C, c.K, c.KH, c.KW, c.groups),
           "conv2d_nhwc_scratch", c, ck::ConvAlgo::Auto);
    if (ck::conv_nhwc_depthwise(c.C, c.K, c.groups)) ++paths["nhwc depthwise"];
    else if (ck::conv2d_nhwc_supports(c.C, c.K, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.groups)) ++paths["nhwc pointwise"];
    // Packed sizes at this build's vector width (the generated code's C++ computes them with its own).
    if (c.N != std::numeric_limits<int64_t>::max()) {
      const int vec = rk::gemm_detail::kVec;
      expect(ck::packed_b_size(c.K, c.C, vec) == rk::packed_b_size(c.K, c.C), "packed_b_size", c, ck::ConvAlgo::Auto);
      expect(ck::winograd_packed_size(c.K, c.C, c.OH, c.OW, vec) == rk::winograd_packed_size(c.K, c.C, c.OH, c.OW),
             "winograd_packed_size", c, ck::ConvAlgo::Auto);
    }
  }
  CHECK(mismatches == 0);
  // Every path was exercised (so the equalities above cover each branch of the formulas).
  for (const char* p : {"winograd F(4x4)", "winograd F(2x2)", "winograd, packed weights", "direct", "polyphase",
                        "im2col, batched", "im2col, grouped images", "pointwise", "im2col, per image", "flipped dx",
                        "nhwc depthwise", "nhwc pointwise"}) {
    INFO(p);
    CHECK(paths[p] > 0);
  }
}

TEST_CASE("cpu kernel facts: packed sizes at every vector width", "[cpu_kernels]") {
  // The estimate (`mithril check`) uses the widest vector; the widths the runtime builds for are 4, 8 and 16.
  // packed_b_size's definition for each, written out: whole panels of 2 * vec columns, a last one of at most vec
  // columns one vector wide.
  for (int vec : {4, 8, 16})
    for (int64_t N = 0; N < 200; ++N) {
      const int64_t nr = 2 * vec;
      int64_t cols = 0;
      for (int64_t p = 0; p * nr < N; ++p) {
        const int64_t rest = N - p * nr;
        cols += rest >= nr ? nr : (rest > vec ? nr : vec);
      }
      INFO("vec " << vec << ", N " << N);
      CHECK(ck::packed_b_size(N, 7, vec) == cols * 7);
    }
  CHECK(ck::packed_b_size(40, 3) == (40 + 15) / 16 * 16 * 3);  // the width-16 estimate of Linear's and nhwc's packs
}
