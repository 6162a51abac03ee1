// test_kernel_geometry.cpp - the kernels that take their geometry by name (Conv2dGeom,
// Pool2dGeom, AttentionGeom: what generated code calls) give the same bytes as the positional
// kernels they forward to, on shapes where every size differs (so a field passed in the wrong
// place changes the result or trips the kernel's size checks).
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <vector>

#include "mithril/rt/kernels.h"

using namespace mithril::rt;

namespace {

std::vector<float> random_values(size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) x = u(gen);
    return v;
}

}  // namespace

TEST_CASE("kernels: conv kernels with Conv2dGeom match the positional ones", "[kernels]") {
    // x [2, 4, 9, 7], weight [6, 2, 3, 2] (groups 2), stride (2, 1), padding (1, 0), dilation (1, 2).
    const k::Conv2dGeom g{.n = 2, .c_in = 4, .h = 9, .w = 7, .c_out = 6, .kernel_h = 3, .kernel_w = 2, .stride_h = 2,
                          .stride_w = 1, .pad_h = 1, .pad_w = 0, .dil_h = 1, .dil_w = 2, .groups = 2, .out_h = 5, .out_w = 5};
    const auto x = random_values(2 * 4 * 9 * 7, 1), w = random_values(6 * 2 * 3 * 2, 2), b = random_values(6, 3);
    const auto dy = random_values(2 * 6 * 5 * 5, 4);
    for (auto algo : {k::ConvAlgo::PerImage, k::ConvAlgo::Auto}) {
        const size_t s = k::conv2d_scratch(4, 3, 2, 2, 1, 1, 0, 2, 9, 7, 2, 6, algo, 1, 2) +
                         k::conv2d_grad_input_scratch(2, 4, 9, 7, 6, 3, 2, 2, 1, 1, 0, 1, 2, 2, 5, 5, algo) +
                         k::conv2d_grad_weight_scratch(4, 9, 7, 3, 2, 2, 1, 1, 0, 2, 5, 5, 2, 6, algo, 1, 2) + 4096;
        std::vector<float> scratch(s);
        std::vector<float> y1(2 * 6 * 5 * 5), y2(y1.size());
        k::conv2d(y1.data(), x.data(), w.data(), b.data(), 2, 4, 9, 7, 6, 3, 2, 2, 1, 1, 0, 1, 2, 2, 5, 5, scratch.data(), algo);
        k::conv2d(y2.data(), x.data(), w.data(), b.data(), g, scratch.data(), algo);
        CHECK(y1 == y2);
        std::vector<float> dx1(x.size()), dx2(x.size());
        k::conv2d_grad_input(dx1.data(), dy.data(), w.data(), 2, 4, 9, 7, 6, 3, 2, 2, 1, 1, 0, 1, 2, 2, 5, 5, scratch.data(), algo);
        k::conv2d_grad_input(dx2.data(), dy.data(), w.data(), g, scratch.data(), algo);
        CHECK(dx1 == dx2);
        std::vector<float> dw1(w.size()), dw2(w.size());
        k::conv2d_grad_weight(dw1.data(), dy.data(), x.data(), 2, 4, 9, 7, 6, 3, 2, 2, 1, 1, 0, 1, 2, 2, 5, 5, scratch.data(), algo);
        k::conv2d_grad_weight(dw2.data(), dy.data(), x.data(), g, scratch.data(), algo);
        CHECK(dw1 == dw2);
    }
    // Transposed: x [2, 4, 3, 4] -> y [2, 6, 7, 5], weight [4, 3, 3, 2] (groups 2), stride (2, 1), padding (1, 0).
    const k::Conv2dGeom t{.n = 2, .c_in = 4, .h = 3, .w = 4, .c_out = 6, .kernel_h = 3, .kernel_w = 2, .stride_h = 2,
                          .stride_w = 1, .pad_h = 0, .pad_w = 0, .dil_h = 1, .dil_w = 1, .groups = 2, .out_h = 7, .out_w = 5};
    const auto tx = random_values(2 * 4 * 3 * 4, 5), tw = random_values(4 * 3 * 3 * 2, 6);
    std::vector<float> scratch(k::conv_transpose2d_scratch(6, 3, 2, 2, 3, 4) + 4096);
    std::vector<float> y1(2 * 6 * 7 * 5), y2(y1.size());
    k::conv_transpose2d(y1.data(), tx.data(), tw.data(), b.data(), 2, 4, 3, 4, 6, 3, 2, 2, 1, 0, 0, 1, 1, 2, 7, 5, scratch.data());
    k::conv_transpose2d(y2.data(), tx.data(), tw.data(), b.data(), t, scratch.data());
    CHECK(y1 == y2);
}

TEST_CASE("kernels: conv2d_nhwc with Conv2dGeom matches the positional one", "[kernels]") {
    // Depthwise, channels-last: x [2, 9, 7, 5], weight [5, 1, 3, 3], stride (2, 1), padding (1, 1).
    const k::Conv2dGeom g{.n = 2, .c_in = 5, .h = 9, .w = 7, .c_out = 5, .kernel_h = 3, .kernel_w = 3, .stride_h = 2,
                          .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 5, .out_h = 5, .out_w = 7};
    const auto x = random_values(2 * 9 * 7 * 5, 7), w = random_values(5 * 3 * 3, 8), b = random_values(5, 9);
    std::vector<float> scratch(k::conv2d_nhwc_scratch(5, 5, 3, 3, 5) + 4096);
    std::vector<float> y1(2 * 5 * 7 * 5), y2(y1.size());
    k::conv2d_nhwc(y1.data(), x.data(), w.data(), b.data(), 2, 5, 9, 7, 5, 3, 3, 2, 1, 1, 1, 1, 1, 5, 5, 7, scratch.data());
    k::conv2d_nhwc(y2.data(), x.data(), w.data(), b.data(), g, scratch.data());
    CHECK(y1 == y2);
}

TEST_CASE("kernels: pooling with Pool2dGeom matches the positional kernels", "[kernels]") {
    // x [2, 3, 9, 8], window (3, 2), stride (2, 3), padding (1, 0), dilation (1, 2) for max pooling.
    const auto x = random_values(2 * 3 * 9 * 8, 10);
    const k::Pool2dGeom m{.n = 2, .c = 3, .h = 9, .w = 8, .kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 3,
                          .pad_h = 1, .pad_w = 0, .dil_h = 1, .dil_w = 2, .out_h = 5, .out_w = 2};
    std::vector<float> y1(2 * 3 * 5 * 2), y2(y1.size());
    k::max_pool2d(y1.data(), static_cast<int64_t*>(nullptr), x.data(), 2, 3, 9, 8, 3, 2, 2, 3, 1, 0, 1, 2, 5, 2);
    k::max_pool2d(y2.data(), static_cast<int64_t*>(nullptr), x.data(), m);
    CHECK(y1 == y2);
    std::vector<float> p1(5 * 2), p2(p1.size());
    k::max_pool2d_plane(p1.data(), x.data(), 9, 8, 3, 2, 2, 3, 1, 0, 1, 2, 5, 2);
    k::max_pool2d_plane(p2.data(), x.data(), m);
    CHECK(p1 == p2);
    const auto dy = random_values(y1.size(), 11);
    std::vector<float> d1(x.size()), d2(x.size());
    k::max_pool2d_grad(d1.data(), dy.data(), x.data(), 2, 3, 9, 8, 3, 2, 2, 3, 1, 0, 1, 2, 5, 2);
    k::max_pool2d_grad(d2.data(), dy.data(), x.data(), m);
    CHECK(d1 == d2);
    for (bool include : {true, false}) {
        const k::Pool2dGeom a{.n = 2, .c = 3, .h = 9, .w = 8, .kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 3,
                              .pad_h = 1, .pad_w = 1, .out_h = 5, .out_w = 3, .count_include_pad = include};
        std::vector<float> a1(2 * 3 * 5 * 3), a2(a1.size());
        k::avg_pool2d(a1.data(), x.data(), 2, 3, 9, 8, 3, 2, 2, 3, 1, 1, include, 0, 5, 3);
        k::avg_pool2d(a2.data(), x.data(), a);
        CHECK(a1 == a2);
        std::vector<float> q1(5 * 3), q2(q1.size());
        k::avg_pool2d_plane(q1.data(), x.data(), 9, 8, 3, 2, 2, 3, 1, 1, include, 0, 5, 3);
        k::avg_pool2d_plane(q2.data(), x.data(), a);
        CHECK(q1 == q2);
        const auto ady = random_values(a1.size(), 12);
        std::vector<float> e1(x.size()), e2(x.size());
        k::avg_pool2d_grad(e1.data(), ady.data(), 2, 3, 9, 8, 3, 2, 2, 3, 1, 1, include, 0, 5, 3);
        k::avg_pool2d_grad(e2.data(), ady.data(), a);
        CHECK(e1 == e2);
    }
}

TEST_CASE("kernels: attention with AttentionGeom matches the positional kernels", "[kernels]") {
    // batch 3, queries [5, 4], keys [6, 4], values [6, 7], causal.
    const auto q = random_values(3 * 5 * 4, 13), kk = random_values(3 * 6 * 4, 14), v = random_values(3 * 6 * 7, 15);
    const k::AttentionGeom g{.batch = 3, .len_q = 5, .len_kv = 6, .dim_qk = 4, .dim_v = 7, .scale = 0.375, .causal = true};
    std::vector<float> scratch(k::scaled_dot_product_attention_backward_scratch(5, 6));
    std::vector<float> y1(3 * 5 * 7), y2(y1.size());
    k::scaled_dot_product_attention(y1.data(), q.data(), kk.data(), v.data(), nullptr, nullptr, 3, 5, 6, 4, 7, 0.375, true,
                                    scratch.data());
    k::scaled_dot_product_attention(y2.data(), q.data(), kk.data(), v.data(), nullptr, nullptr, g, scratch.data());
    CHECK(y1 == y2);
    const auto dout = random_values(y1.size(), 16);
    std::vector<float> dq1(q.size()), dk1(kk.size()), dv1(v.size()), dq2(q.size()), dk2(kk.size()), dv2(v.size());
    k::scaled_dot_product_attention_backward(dq1.data(), dk1.data(), dv1.data(), dout.data(), q.data(), kk.data(), v.data(),
                                             nullptr, nullptr, 3, 5, 6, 4, 7, 0.375, true, scratch.data());
    k::scaled_dot_product_attention_backward(dq2.data(), dk2.data(), dv2.data(), dout.data(), q.data(), kk.data(), v.data(),
                                             nullptr, nullptr, g, scratch.data());
    CHECK(dq1 == dq2);
    CHECK(dk1 == dk2);
    CHECK(dv1 == dv2);
}
