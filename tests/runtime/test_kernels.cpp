// test_kernels.cpp - the kernel library (mithril/rt/kernels.h) against NumPy
// references written from the PyTorch definitions (tests/runtime/kernels_ref.py,
// run with MITHRIL_PYTHON; cross-checked against torch there when available).
//
// Tolerances, |got - want| <= atol + rtol * |want| (NaN must match NaN):
//   float32, elementwise-ish kernels:            rtol 1e-5,  atol 1e-6
//   float32, gemm-based kernels (conv, conv_transpose, attention, matmul):
//                                                rtol 1e-4,  atol 1e-5
//   float64, all kernels:                        rtol 1e-10, atol 1e-12
// Index outputs (argmax, max_pool indices) and data movement must match exactly.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mithril/rt/kernels.h"
#include "mithril/rt/npy.h"
#include "test_support.h"

using namespace mithril::rt;
using rt_test::TempDir;

namespace {

enum class Tol { Elementwise, Gemm, Exact };

template <class T>
std::vector<T> rnd(std::size_t n, unsigned seed, double lo = -1, double hi = 1) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(dist(gen));
    return v;
}

template <class T> std::string dname() { return std::is_same_v<T, float> ? "f32" : "f64"; }

std::string join(const std::vector<std::int64_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

// One Python run for many cases: inputs are saved, results recorded, then
// run() computes the references and compares everything.
class Ref {
public:
    explicit Ref(std::string kernel) : kernel_(std::move(kernel)) {}

    template <class T>
    void in(const std::string& cs, const std::string& arg, const std::vector<T>& v, Shape shape) {
        REQUIRE(checked_numel(shape) == static_cast<std::int64_t>(v.size()));
        save_npy(dir_ / (cs + "." + arg + ".npy"),
                 Tensor::borrow(const_cast<T*>(v.data()), dtype_of_v<T>, std::move(shape)));
    }
    void params(const std::string& cs, const std::string& p) { manifest_ += cs + " " + p + "\n"; }

    // Records the kernel's output `out` of case cs; element type decides the tolerance.
    template <class T>
    void expect(const std::string& cs, const std::string& out, const std::vector<T>& got, Tol tol) {
        Check c{cs, out, {}, tol, std::is_same_v<T, float>};
        for (const T& g : got) c.got.push_back(static_cast<double>(g));
        checks_.push_back(std::move(c));
    }

    void run() {
        rt_test::write_bytes(dir_ / "cases.txt", manifest_);
        std::string output;
        const int rc = rt_test::run_python("kernels_ref.py", {kernel_, dir_.path().string()}, output);
        INFO(output);
        REQUIRE(rc == 0);
        for (const auto& c : checks_) {
            const Tensor ref = load_npy(dir_ / (c.cs + ".ref_" + c.out + ".npy"));
            INFO(kernel_ << " case " << c.cs << " output " << c.out);
            REQUIRE(ref.numel() == static_cast<std::int64_t>(c.got.size()));
            double rtol = 0, atol = 0;
            if (c.tol != Tol::Exact) {
                rtol = !c.is_float ? 1e-10 : c.tol == Tol::Gemm ? 1e-4 : 1e-5;
                atol = !c.is_float ? 1e-12 : c.tol == Tol::Gemm ? 1e-5 : 1e-6;
            }
            std::int64_t bad = 0;
            std::ostringstream first;
            for (std::int64_t i = 0; i < ref.numel(); ++i) {
                const double want = rt_test::element(ref, i), got = c.got[static_cast<std::size_t>(i)];
                const bool ok = std::isnan(want) ? std::isnan(got)
                                : std::isinf(want) ? got == want
                                                   : std::fabs(got - want) <= atol + rtol * std::fabs(want);
                if (!ok && bad++ == 0) first << "first mismatch at " << i << ": got " << got << " want " << want;
            }
            INFO(first.str());
            CHECK(bad == 0);
        }
    }

private:
    struct Check {
        std::string cs, out;
        std::vector<double> got;
        Tol tol;
        bool is_float;
    };
    std::string kernel_;
    TempDir dir_;
    std::string manifest_;
    std::vector<Check> checks_;
};

template <class F>
void for_both(F&& f) {
    f(float{});
    f(double{});
}

std::int64_t out_size(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d, bool ceil) {
    const std::int64_t span = in + 2 * p - d * (k - 1) - 1;
    std::int64_t o = (ceil ? (span + s - 1) / s : span / s) + 1;
    if (ceil && (o - 1) * s >= in + p) --o;  // PyTorch: last window must start inside input or left pad
    return o;
}

}  // namespace

TEST_CASE("kernels: conv2d / conv1d (im2col + gemm) match NumPy window sums", "[kernels]") {
    struct C { std::int64_t N, C, H, W, K, KH, KW, sh, sw, ph, pw, dh, dw, g; bool bias; };
    const std::vector<C> cfgs{
        {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},   // same-padding 3x3
        {1, 4, 9, 8, 6, 3, 2, 2, 3, 1, 0, 2, 1, 2, false},  // stride/dilation/groups, odd sizes
        {2, 6, 5, 5, 6, 3, 3, 2, 2, 1, 1, 1, 1, 6, true},   // depthwise
        {1, 5, 4, 3, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1, true},   // pointwise fast path (no scratch)
        {1, 2, 1, 1, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},  // 1x1 image
        {1, 2, 3, 3, 2, 5, 5, 1, 1, 2, 2, 1, 1, 1, true},   // kernel larger than image, all-padding windows
        {1, 3, 1, 11, 4, 1, 3, 1, 2, 0, 1, 1, 2, 1, true},  // conv1d as H = 1
        {1, 8, 32, 32, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2, true}, // large enough for the OpenMP im2col path
    };
    Ref ref("conv2d");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            const std::int64_t OH = out_size(c.H, c.KH, c.sh, c.ph, c.dh, false);
            const std::int64_t OW = out_size(c.W, c.KW, c.sw, c.pw, c.dw, false);
            auto x = rnd<T>(std::size_t(c.N * c.C * c.H * c.W), 1 + unsigned(ci));
            auto w = rnd<T>(std::size_t(c.K * c.C / c.g * c.KH * c.KW), 100 + unsigned(ci));
            auto b = rnd<T>(std::size_t(c.K), 200 + unsigned(ci));
            std::vector<T> scratch(k::conv2d_scratch(c.C, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.g, OH, OW));
            std::vector<T> out(std::size_t(c.N * c.K * OH * OW), T(-7));
            k::conv2d(out.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, c.N, c.C, c.H, c.W, c.K, c.KH,
                      c.KW, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, c.g, OH, OW, scratch.data());
            if (c.KH == 1 && c.sh == 1 && c.ph == 0 && c.KW == 1 && c.sw == 1 && c.pw == 0) CHECK(scratch.empty());
            ref.in(cs, "x", x, {c.N, c.C, c.H, c.W});
            ref.in(cs, "w", w, {c.K, c.C / c.g, c.KH, c.KW});
            if (c.bias) ref.in(cs, "b", b, {c.K});
            ref.params(cs, "sh=" + std::to_string(c.sh) + " sw=" + std::to_string(c.sw) + " ph=" +
                               std::to_string(c.ph) + " pw=" + std::to_string(c.pw) + " dh=" + std::to_string(c.dh) +
                               " dw=" + std::to_string(c.dw) + " groups=" + std::to_string(c.g));
            ref.expect(cs, "out", out, Tol::Gemm);
            if (c.H == 1 && c.KH == 1) {  // the conv1d entry point gives the same result
                std::vector<T> s1(k::conv1d_scratch(c.C, c.KW, c.sw, c.pw, c.g, OW)), o1(out.size());
                k::conv1d(o1.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, c.N, c.C, c.W, c.K, c.KW, c.sw,
                          c.pw, c.dw, c.g, OW, s1.data());
                CHECK(o1 == out);
            }
        }
    });
    ref.run();
}

namespace {
// Direct (seven-loop) convolution and its two gradients in double, the reference
// for the planned kernels below.
struct ConvGeom {
    std::int64_t N, C, H, W, K, KH, KW, sh, sw, ph, pw, dh, dw, g;
    std::int64_t OH() const { return (H + 2 * ph - dh * (KH - 1) - 1) / sh + 1; }
    std::int64_t OW() const { return (W + 2 * pw - dw * (KW - 1) - 1) / sw + 1; }
};

// f(n, k, c_in, oh, ow, kh, kw, x index, w index) for every product of the convolution.
template <class F>
void conv_products(const ConvGeom& q, F&& f) {
    const std::int64_t Cg = q.C / q.g, Kg = q.K / q.g, OH = q.OH(), OW = q.OW();
    for (std::int64_t n = 0; n < q.N; ++n)
        for (std::int64_t k = 0; k < q.K; ++k)
            for (std::int64_t c = 0; c < Cg; ++c)
                for (std::int64_t oh = 0; oh < OH; ++oh)
                    for (std::int64_t ow = 0; ow < OW; ++ow)
                        for (std::int64_t kh = 0; kh < q.KH; ++kh)
                            for (std::int64_t kw = 0; kw < q.KW; ++kw) {
                                const std::int64_t ih = oh * q.sh - q.ph + kh * q.dh, iw = ow * q.sw - q.pw + kw * q.dw;
                                if (ih < 0 || ih >= q.H || iw < 0 || iw >= q.W) continue;
                                const std::int64_t ci = (k / Kg) * Cg + c;
                                f(((n * q.K + k) * OH + oh) * OW + ow, ((n * q.C + ci) * q.H + ih) * q.W + iw,
                                  ((k * Cg + c) * q.KH + kh) * q.KW + kw);
                            }
}

// max |got - want| / max |want|.
template <class T>
double rel_err(const std::vector<T>& got, const std::vector<double>& want) {
    double d = 0, m = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        d = std::max(d, std::abs(static_cast<double>(got[i]) - want[i]));
        m = std::max(m, std::abs(want[i]));
    }
    return m > 0 ? d / m : d;
}

// A scratch buffer of exactly `n` elements followed by canaries the kernel must not touch.
template <class T>
struct Guarded {
    std::vector<T> v;
    std::size_t n;
    explicit Guarded(std::size_t n_) : v(n_ + 64, T(12345)), n(n_) {}
    T* data() { return v.data(); }
    bool intact() const {
        for (std::size_t i = n; i < v.size(); ++i)
            if (v[i] != T(12345)) return false;
        return true;
    }
};
}  // namespace

// ConvAlgo::Auto (what generated code with known spatial sizes uses) picks per
// shape: Winograd F(4x4, 3x3) and F(2x2, 3x3), images spread over threads, images batched per
// gemm, the data gradient as a flipped-kernel convolution. Every path, forward
// and both gradients, against the direct sums; the scratch the kernels are
// given is exactly what the *_scratch functions ask for.
// Tolerance (max error over max magnitude): float32 1e-5 (Winograd's transforms
// cost 1-2x the direct sum's rounding), float64 1e-12.
TEST_CASE("kernels: planned convolutions (Winograd, threaded, batched, flipped) match direct sums", "[kernels]") {
    const std::vector<ConvGeom> cfgs{
        {20, 16, 15, 13, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},  // Winograd F(4x4), odd sizes; dx flipped through it
        {16, 16, 16, 16, 24, 3, 3, 1, 1, 0, 0, 1, 1, 1},  // F(4x4), unpadded; dx batched gemm + col2im
        {80, 16, 8, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},    // F(4x4) in chunks of 64 and 16 images
        {20, 16, 7, 7, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},    // F(2x2) (7x7 planes) in chunks of 16 and 4 images
        {5, 16, 15, 13, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // F(2x2) for dw only, odd sizes
        {8, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 1, 1, 1},    // LeNet's: images over threads
        {4, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1},     // too few tiles: batched gemm
        {4, 16, 9, 9, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1},     // strided
        {6, 32, 8, 8, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1},     // pointwise
        {4, 32, 8, 8, 32, 1, 1, 2, 2, 0, 0, 1, 1, 1},     // strided pointwise (ResNet's downsample)
        {4, 32, 12, 12, 32, 3, 3, 1, 1, 2, 2, 2, 2, 2},   // groups and dilation
        {1, 16, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // one image
    };
    for_both([&](auto tag) {
        using T = decltype(tag);
        const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const ConvGeom& q = cfgs[ci];
            INFO(dname<T>() << " case " << ci);
            const std::int64_t OH = q.OH(), OW = q.OW();
            const auto nx = std::size_t(q.N * q.C * q.H * q.W), ny = std::size_t(q.N * q.K * OH * OW),
                       nw = std::size_t(q.K * q.C / q.g * q.KH * q.KW);
            auto x = rnd<T>(nx, 31 + unsigned(ci)), w = rnd<T>(nw, 131 + unsigned(ci)),
                 dy = rnd<T>(ny, 231 + unsigned(ci)), b = rnd<T>(std::size_t(q.K), 331 + unsigned(ci));
            std::vector<double> y_ref(ny), dx_ref(nx, 0.0), dw_ref(nw, 0.0);
            for (std::int64_t i = 0; i < q.N * q.K * OH * OW; ++i) y_ref[std::size_t(i)] = b[std::size_t((i / (OH * OW)) % q.K)];
            conv_products(q, [&](std::int64_t yi, std::int64_t xi, std::int64_t wi) {
                y_ref[std::size_t(yi)] += double(x[std::size_t(xi)]) * double(w[std::size_t(wi)]);
                dx_ref[std::size_t(xi)] += double(dy[std::size_t(yi)]) * double(w[std::size_t(wi)]);
                dw_ref[std::size_t(wi)] += double(dy[std::size_t(yi)]) * double(x[std::size_t(xi)]);
            });
            const auto algo = k::ConvAlgo::Auto;

            Guarded<T> s1(k::conv2d_scratch(q.C, q.KH, q.KW, q.sh, q.sw, q.ph, q.pw, q.g, OH, OW, q.N, q.K, algo,
                                            q.dh, q.dw));
            std::vector<T> y(ny, T(-7));
            k::conv2d(y.data(), x.data(), w.data(), b.data(), q.N, q.C, q.H, q.W, q.K, q.KH, q.KW, q.sh, q.sw, q.ph,
                      q.pw, q.dh, q.dw, q.g, OH, OW, s1.data(), algo);
            CHECK(rel_err(y, y_ref) <= tol);
            CHECK(s1.intact());

            Guarded<T> s2(k::conv2d_grad_input_scratch(q.N, q.C, q.H, q.W, q.K, q.KH, q.KW, q.sh, q.sw, q.ph, q.pw,
                                                       q.dh, q.dw, q.g, OH, OW, algo));
            std::vector<T> dx(nx, T(-7));
            k::conv2d_grad_input(dx.data(), dy.data(), w.data(), q.N, q.C, q.H, q.W, q.K, q.KH, q.KW, q.sh, q.sw, q.ph,
                                 q.pw, q.dh, q.dw, q.g, OH, OW, s2.data(), algo);
            CHECK(rel_err(dx, dx_ref) <= tol);
            CHECK(s2.intact());

            Guarded<T> s3(k::conv2d_grad_weight_scratch(q.C, q.H, q.W, q.KH, q.KW, q.sh, q.sw, q.ph, q.pw, q.g, OH,
                                                        OW, q.N, q.K, algo, q.dh, q.dw));
            std::vector<T> dw(nw, T(-7));
            k::conv2d_grad_weight(dw.data(), dy.data(), x.data(), q.N, q.C, q.H, q.W, q.K, q.KH, q.KW, q.sh, q.sw,
                                  q.ph, q.pw, q.dh, q.dw, q.g, OH, OW, s3.data(), algo);
            CHECK(rel_err(dw, dw_ref) <= tol);
            CHECK(s3.intact());
        }
    });
}

TEST_CASE("kernels: conv2d_scratch for a batch left to run time (N = INT64_MAX) is defined", "[kernels]") {
    // The compiler sizes the scratch of an unbounded batch at N = INT64_MAX (compiler/ops/conv.cpp,
    // batch_scratch); conv_group overflowed there (signed overflow: caught by the MITHRIL_SANITIZE build).
    namespace k = mithril::rt::k;
    struct Geo { int64_t C, K, KH, stride, pad, OH; };
    for (const Geo q : {Geo{3, 8, 3, 2, 1, 8}, Geo{4, 4, 1, 1, 0, 6}, Geo{16, 16, 3, 1, 1, 14}, Geo{8, 32, 5, 2, 2, 3}}) {
        INFO("C " << q.C << " K " << q.K << " kernel " << q.KH << " stride " << q.stride);
        const std::size_t most = k::conv2d_scratch(q.C, q.KH, q.KH, q.stride, q.stride, q.pad, q.pad, 1, q.OH, q.OH,
                                                   std::numeric_limits<int64_t>::max(), q.K, k::ConvAlgo::Auto);
        CHECK(most < (std::size_t{1} << 32));  // a few slots of columns, not an overflowed product
    }
}

TEST_CASE("kernels: conv_transpose2d (gemm + col2im) matches NumPy scatter sums", "[kernels]") {
    struct C { std::int64_t N, C, H, W, K, KH, KW, sh, sw, ph, pw, dh, dw, g, oph, opw; bool bias; };
    const std::vector<C> cfgs{
        {2, 3, 4, 5, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, true},   // typical upsampling with output_padding
        {1, 4, 3, 3, 6, 2, 3, 1, 2, 0, 1, 2, 1, 2, 0, 1, false},  // groups, dilation, odd stride
        {1, 2, 1, 1, 3, 4, 4, 2, 2, 0, 0, 1, 1, 1, 0, 0, true},   // 1x1 input
        {1, 3, 5, 2, 2, 1, 1, 3, 1, 0, 0, 1, 1, 1, 2, 0, true},   // 1x1 kernel with stride (holes)
        {2, 2, 1, 7, 3, 1, 3, 1, 2, 0, 2, 1, 1, 1, 0, 1, false},  // conv_transpose1d as H = 1
    };
    Ref ref("conv_transpose2d");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            const std::int64_t OH = (c.H - 1) * c.sh - 2 * c.ph + c.dh * (c.KH - 1) + c.oph + 1;
            const std::int64_t OW = (c.W - 1) * c.sw - 2 * c.pw + c.dw * (c.KW - 1) + c.opw + 1;
            auto x = rnd<T>(std::size_t(c.N * c.C * c.H * c.W), 11 + unsigned(ci));
            auto w = rnd<T>(std::size_t(c.C * c.K / c.g * c.KH * c.KW), 111 + unsigned(ci));
            auto b = rnd<T>(std::size_t(c.K), 211 + unsigned(ci));
            std::vector<T> scratch(k::conv_transpose2d_scratch(c.K, c.KH, c.KW, c.g, c.H, c.W));
            std::vector<T> out(std::size_t(c.N * c.K * OH * OW), T(-7));
            k::conv_transpose2d(out.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, c.N, c.C, c.H, c.W, c.K,
                                c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, c.g, OH, OW, scratch.data());
            ref.in(cs, "x", x, {c.N, c.C, c.H, c.W});
            ref.in(cs, "w", w, {c.C, c.K / c.g, c.KH, c.KW});
            if (c.bias) ref.in(cs, "b", b, {c.K});
            std::ostringstream p;
            p << "sh=" << c.sh << " sw=" << c.sw << " ph=" << c.ph << " pw=" << c.pw << " dh=" << c.dh
              << " dw=" << c.dw << " groups=" << c.g << " OH=" << OH << " OW=" << OW;
            ref.params(cs, p.str());
            ref.expect(cs, "out", out, Tol::Gemm);
            if (c.H == 1 && c.KH == 1 && c.sh == 1 && c.ph == 0 && c.oph == 0) {
                std::vector<T> s1(k::conv_transpose1d_scratch(c.K, c.KW, c.g, c.W)), o1(out.size());
                k::conv_transpose1d(o1.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, c.N, c.C, c.W, c.K,
                                    c.KW, c.sw, c.pw, c.dw, c.g, OW, s1.data());
                CHECK(o1 == out);
            }
        }
    });
    ref.run();
}

TEST_CASE("kernels: max_pool2d / avg_pool2d with padding, dilation, ceil_mode", "[kernels]") {
    struct C { std::int64_t N, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw; bool ceil, cip; std::int64_t div; };
    const std::vector<C> cfgs{
        {2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1, false, true, 0},   // plain 2x2/2
        {1, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, true, true, 0},    // ceil_mode, padding, count_include_pad
        {1, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, true, false, 0},   // ... without count_include_pad
        {1, 1, 10, 6, 3, 2, 3, 1, 1, 1, 2, 2, false, false, 0}, // dilation (max only), asymmetric
        {1, 2, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, true, true, 0},    // windows reaching into the right pad
        {1, 2, 5, 4, 2, 3, 1, 2, 1, 1, 1, 1, false, true, 5},   // divisor_override
        {1, 3, 1, 12, 1, 3, 1, 2, 0, 1, 1, 1, false, true, 0},  // pool1d as H = 1
        {2, 2, 9, 7, 2, 2, 2, 2, 0, 0, 1, 1, false, true, 0},   // 2x2/2 dropping an odd last row and column
        {1, 3, 7, 10, 2, 2, 2, 2, 0, 0, 1, 1, false, true, 0},  // 2x2/2, even width: a column pass over the plane
    };
    Ref ref("max_pool2d"), aref("avg_pool2d");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            auto x = rnd<T>(std::size_t(c.N * c.C * c.H * c.W), 21 + unsigned(ci));
            {
                const std::int64_t OH = out_size(c.H, c.KH, c.sh, c.ph, c.dh, c.ceil);
                const std::int64_t OW = out_size(c.W, c.KW, c.sw, c.pw, c.dw, c.ceil);
                std::vector<T> out(std::size_t(c.N * c.C * OH * OW));
                std::vector<std::int64_t> idx(out.size());
                k::max_pool2d(out.data(), idx.data(), x.data(), c.N, c.C, c.H, c.W, c.KH, c.KW, c.sh, c.sw, c.ph,
                              c.pw, c.dh, c.dw, OH, OW);
                ref.in(cs, "x", x, {c.N, c.C, c.H, c.W});
                std::ostringstream p;
                p << "KH=" << c.KH << " KW=" << c.KW << " sh=" << c.sh << " sw=" << c.sw << " ph=" << c.ph
                  << " pw=" << c.pw << " dh=" << c.dh << " dw=" << c.dw << " OH=" << OH << " OW=" << OW
                  << " ceil=" << c.ceil;
                ref.params(cs, p.str());
                ref.expect(cs, "out", out, Tol::Exact);
                ref.expect(cs, "idx", idx, Tol::Exact);
                // Without indices (inference; 2x2/2 has its own loop): the same maxima.
                std::vector<T> plain(out.size());
                k::max_pool2d(plain.data(), nullptr, x.data(), c.N, c.C, c.H, c.W, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw,
                              c.dh, c.dw, OH, OW);
                CHECK(plain == out);
                // One plane at a time (the fuse-pool pass's epilogues): the same maxima.
                std::vector<T> planes(out.size());
                for (std::int64_t pl = 0; pl < c.N * c.C; ++pl)
                    k::max_pool2d_plane(planes.data() + pl * OH * OW, x.data() + pl * c.H * c.W, c.H, c.W, c.KH, c.KW,
                                        c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, OH, OW);
                CHECK(planes == out);
                if (c.H == 1 && c.KH == 1 && c.ph == 0) {
                    std::vector<T> o1(out.size());
                    k::max_pool1d(o1.data(), nullptr, x.data(), c.N, c.C, c.W, c.KW, c.sw, c.pw, c.dw, OW);
                    CHECK(o1 == out);
                }
            }
            {
                const std::int64_t OH = out_size(c.H, c.KH, c.sh, c.ph, 1, c.ceil);
                const std::int64_t OW = out_size(c.W, c.KW, c.sw, c.pw, 1, c.ceil);
                std::vector<T> out(std::size_t(c.N * c.C * OH * OW));
                k::avg_pool2d(out.data(), x.data(), c.N, c.C, c.H, c.W, c.KH, c.KW, c.sh, c.sw, c.ph, c.pw, c.cip,
                              c.div, OH, OW);
                aref.in(cs, "x", x, {c.N, c.C, c.H, c.W});
                std::ostringstream p;
                p << "KH=" << c.KH << " KW=" << c.KW << " sh=" << c.sh << " sw=" << c.sw << " ph=" << c.ph
                  << " pw=" << c.pw << " OH=" << OH << " OW=" << OW << " cip=" << c.cip << " div=" << c.div
                  << " ceil=" << c.ceil;
                aref.params(cs, p.str());
                aref.expect(cs, "out", out, Tol::Elementwise);
                std::vector<T> planes(out.size());
                for (std::int64_t pl = 0; pl < c.N * c.C; ++pl)
                    k::avg_pool2d_plane(planes.data() + pl * OH * OW, x.data() + pl * c.H * c.W, c.H, c.W, c.KH, c.KW,
                                        c.sh, c.sw, c.ph, c.pw, c.cip, c.div, OH, OW);
                CHECK(planes == out);
                if (c.H == 1 && c.KH == 1 && c.ph == 0 && c.div == 0) {
                    std::vector<T> o1(out.size());
                    k::avg_pool1d(o1.data(), x.data(), c.N, c.C, c.W, c.KW, c.sw, c.pw, c.cip, OW);
                    CHECK(o1 == out);
                }
            }
        }
    });
    ref.run();
    aref.run();
}

TEST_CASE("kernels: max_pool2d 2x2/2 without indices propagates NaN", "[kernels]") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    // One plane of 4x4: windows (top left) with a NaN first, a NaN last, none, and -inf only.
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> x = {nan, 1, 2, 3,  //
                            0,   5, 4, 1,  //
                            7,   8, -inf, -inf,  //
                            9,   nan, -inf, -inf};
    std::vector<float> y(4);
    k::max_pool2d(y.data(), nullptr, x.data(), 1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2);
    CHECK(std::isnan(y[0]));
    CHECK(y[1] == 4.f);
    CHECK(std::isnan(y[2]));
    CHECK(y[3] == -inf);
    // The same windows in a plane of odd width (the row-pair loop; the last column is dropped).
    std::vector<float> x5;
    for (int r = 0; r < 4; ++r) {
        x5.insert(x5.end(), x.begin() + 4 * r, x.begin() + 4 * r + 4);
        x5.push_back(100.f);
    }
    std::vector<float> y5(4);
    k::max_pool2d(y5.data(), nullptr, x5.data(), 1, 1, 4, 5, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2);
    CHECK(std::isnan(y5[0]));
    CHECK(y5[1] == 4.f);
    CHECK(std::isnan(y5[2]));
    CHECK(y5[3] == -inf);
}

TEST_CASE("kernels: global / adaptive pooling", "[kernels]") {
    struct C { std::int64_t N, C, H, W, OH, OW; };
    const std::vector<C> cfgs{{2, 3, 7, 5, 3, 2}, {1, 2, 4, 4, 4, 4}, {1, 1, 5, 7, 1, 1}, {1, 2, 3, 2, 5, 3}};
    Ref ref("adaptive_pool2d");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            auto x = rnd<T>(std::size_t(c.N * c.C * c.H * c.W), 31 + unsigned(ci));
            std::vector<T> avg(std::size_t(c.N * c.C * c.OH * c.OW)), mx(avg.size()), gap(std::size_t(c.N * c.C));
            k::adaptive_avg_pool2d(avg.data(), x.data(), c.N, c.C, c.H, c.W, c.OH, c.OW);
            k::adaptive_max_pool2d(mx.data(), x.data(), c.N, c.C, c.H, c.W, c.OH, c.OW);
            k::global_avg_pool2d(gap.data(), x.data(), c.N * c.C, c.H * c.W);
            ref.in(cs, "x", x, {c.N, c.C, c.H, c.W});
            ref.params(cs, "OH=" + std::to_string(c.OH) + " OW=" + std::to_string(c.OW));
            ref.expect(cs, "avg", avg, Tol::Elementwise);
            ref.expect(cs, "max", mx, Tol::Exact);
            ref.expect(cs, "gap", gap, Tol::Elementwise);
        }
    });
    ref.run();
}

TEST_CASE("kernels: batch_norm inference and training (running stats, unbiased update)", "[kernels]") {
    struct C { std::int64_t N, C, HW; bool affine; };
    const std::vector<C> cfgs{{2, 3, 10, true}, {1, 4, 7, false}, {5, 2, 1, true}, {3, 1, 33, true},
                              {4, 8, 1100, true}};
    Ref ref("batch_norm");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            auto x = rnd<T>(std::size_t(c.N * c.C * c.HW), 41 + unsigned(ci), -2, 3);
            auto w = rnd<T>(std::size_t(c.C), 141 + unsigned(ci));
            auto b = rnd<T>(std::size_t(c.C), 241 + unsigned(ci));
            auto mean = rnd<T>(std::size_t(c.C), 341 + unsigned(ci));
            auto var = rnd<T>(std::size_t(c.C), 441 + unsigned(ci), 0.2, 2);
            const double eps = 1e-5, momentum = 0.1;
            const T* wp = c.affine ? w.data() : nullptr;
            const T* bp = c.affine ? b.data() : nullptr;
            std::vector<T> inf(x.size()), train(x.size()), bm(mean.size()), bv(mean.size());
            k::batch_norm_inference(inf.data(), x.data(), mean.data(), var.data(), wp, bp, c.N, c.C, c.HW, eps);
            auto rm = mean, rv = var;
            k::batch_norm_training(train.data(), bm.data(), bv.data(), rm.data(), rv.data(), x.data(), wp, bp, c.N,
                                   c.C, c.HW, eps, momentum);
            // in-place gives the same result
            auto inplace = x;
            k::batch_norm_inference(inplace.data(), inplace.data(), mean.data(), var.data(), wp, bp, c.N, c.C, c.HW,
                                    eps);
            CHECK(inplace == inf);
            ref.in(cs, "x", x, {c.N, c.C, c.HW});
            if (c.affine) {
                ref.in(cs, "w", w, {c.C});
                ref.in(cs, "b", b, {c.C});
            }
            ref.in(cs, "mean", mean, {c.C});
            ref.in(cs, "var", var, {c.C});
            ref.params(cs, "eps=1e-05 momentum=0.1");
            ref.expect(cs, "inf", inf, Tol::Elementwise);
            ref.expect(cs, "train", train, Tol::Elementwise);
            ref.expect(cs, "bmean", bm, Tol::Elementwise);
            ref.expect(cs, "bvar", bv, Tol::Elementwise);
            ref.expect(cs, "rmean", rm, Tol::Elementwise);
            ref.expect(cs, "rvar", rv, Tol::Elementwise);
        }
    });
    ref.run();
    std::vector<float> one(3), x1(3);
    REQUIRE_THROWS_AS(k::batch_norm_training(one.data(), nullptr, nullptr, nullptr, nullptr, x1.data(), nullptr,
                                             nullptr, 1, 3, 1, 1e-5, 0.1),
                      Error);
}

TEST_CASE("kernels: layer_norm / rms_norm / group_norm", "[kernels]") {
    struct C { std::int64_t rows, cols; bool w, b; };
    const std::vector<C> cfgs{{4, 16, true, true}, {3, 7, false, false}, {1, 1, true, false}, {5, 33, false, true}};
    Ref ref("layer_norm");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            auto x = rnd<T>(std::size_t(c.rows * c.cols), 51 + unsigned(ci), -2, 3);
            auto w = rnd<T>(std::size_t(c.cols), 151 + unsigned(ci));
            auto b = rnd<T>(std::size_t(c.cols), 251 + unsigned(ci));
            std::vector<T> out(x.size()), mean(std::size_t(c.rows)), rstd(mean.size()), rms(x.size());
            k::layer_norm(out.data(), mean.data(), rstd.data(), x.data(), c.w ? w.data() : nullptr,
                          c.b ? b.data() : nullptr, c.rows, c.cols, 1e-5);
            k::rms_norm(rms.data(), x.data(), c.w ? w.data() : nullptr, c.rows, c.cols, 1e-5);
            auto inplace = x;
            k::layer_norm(inplace.data(), nullptr, nullptr, inplace.data(), c.w ? w.data() : nullptr,
                          c.b ? b.data() : nullptr, c.rows, c.cols, 1e-5);
            CHECK(inplace == out);
            ref.in(cs, "x", x, {c.rows, c.cols});
            if (c.w) ref.in(cs, "w", w, {c.cols});
            if (c.b) ref.in(cs, "b", b, {c.cols});
            ref.params(cs, "eps=1e-05");
            ref.expect(cs, "out", out, Tol::Elementwise);
            ref.expect(cs, "mean", mean, Tol::Elementwise);
            ref.expect(cs, "rstd", rstd, Tol::Elementwise);
            ref.expect(cs, "rms", rms, Tol::Elementwise);
        }
    });
    ref.run();

    struct G { std::int64_t N, C, HW, groups; bool affine; };
    const std::vector<G> gcfgs{{2, 6, 5, 3, true}, {2, 4, 1, 2, false}, {3, 8, 9, 1, true}, {1, 5, 7, 5, true}};
    Ref gref("group_norm");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < gcfgs.size(); ++ci) {
            const G& c = gcfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            auto x = rnd<T>(std::size_t(c.N * c.C * c.HW), 61 + unsigned(ci), -2, 3);
            auto w = rnd<T>(std::size_t(c.C), 161 + unsigned(ci));
            auto b = rnd<T>(std::size_t(c.C), 261 + unsigned(ci));
            std::vector<T> out(x.size()), mean(std::size_t(c.N * c.groups)), rstd(mean.size());
            k::group_norm(out.data(), mean.data(), rstd.data(), x.data(), c.affine ? w.data() : nullptr,
                          c.affine ? b.data() : nullptr, c.N, c.C, c.HW, c.groups, 1e-5);
            gref.in(cs, "x", x, {c.N, c.C, c.HW});
            if (c.affine) {
                gref.in(cs, "w", w, {c.C});
                gref.in(cs, "b", b, {c.C});
            }
            gref.params(cs, "eps=1e-05 groups=" + std::to_string(c.groups));
            gref.expect(cs, "out", out, Tol::Elementwise);
            gref.expect(cs, "mean", mean, Tol::Elementwise);
            gref.expect(cs, "rstd", rstd, Tol::Elementwise);
        }
    });
    gref.run();
}

TEST_CASE("kernels: softmax, log_softmax and reductions over (outer, len, inner)", "[kernels]") {
    struct C { std::int64_t outer, len, inner, corr; };
    const std::vector<C> cfgs{{3, 10, 1, 1},  {2, 5, 7, 0},  {1, 1, 1, 0},   {4, 1, 3, 0},
                              {1, 17, 70, 1}, {2, 9, 130, 2}, {6, 33, 1, 1}, {1, 3, 65, 1},
                              {8, 64, 70, 1}, {600, 60, 1, 0}};  // the last two take the OpenMP paths
    Ref ref("reduce");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            const std::size_t n = std::size_t(c.outer * c.len * c.inner), m = std::size_t(c.outer * c.inner);
            auto x = rnd<T>(n, 71 + unsigned(ci), -3, 3);
            if (ci == 1) {  // ties: argmax/argmin must return the first occurrence
                x[std::size_t(2 * c.inner + 1)] = x[std::size_t(4 * c.inner + 1)] = T(5);
                x[std::size_t(0 * c.inner + 2)] = x[std::size_t(3 * c.inner + 2)] = T(-5);
            }
            std::vector<T> sm(n), lsm(n), sum(m), mean(m), prod(m), mx(m), mn(m), var(m), sd(m), lse(m);
            std::vector<std::int64_t> am(m), an(m);
            k::softmax(sm.data(), x.data(), c.outer, c.len, c.inner);
            k::log_softmax(lsm.data(), x.data(), c.outer, c.len, c.inner);
            k::reduce_sum(sum.data(), x.data(), c.outer, c.len, c.inner);
            k::reduce_mean(mean.data(), x.data(), c.outer, c.len, c.inner);
            k::reduce_prod(prod.data(), x.data(), c.outer, c.len, c.inner);
            k::reduce_max(mx.data(), x.data(), c.outer, c.len, c.inner);
            k::reduce_min(mn.data(), x.data(), c.outer, c.len, c.inner);
            k::reduce_var(var.data(), x.data(), c.outer, c.len, c.inner, c.corr);
            k::reduce_std(sd.data(), x.data(), c.outer, c.len, c.inner, c.corr);
            k::reduce_logsumexp(lse.data(), x.data(), c.outer, c.len, c.inner);
            k::argmax(am.data(), x.data(), c.outer, c.len, c.inner);
            k::argmin(an.data(), x.data(), c.outer, c.len, c.inner);
            auto inplace = x;
            k::softmax(inplace.data(), inplace.data(), c.outer, c.len, c.inner);
            CHECK(inplace == sm);
            ref.in(cs, "x", x, {c.outer, c.len, c.inner});
            std::ostringstream p;
            p << "outer=" << c.outer << " len=" << c.len << " inner=" << c.inner << " corr=" << c.corr;
            ref.params(cs, p.str());
            ref.expect(cs, "softmax", sm, Tol::Elementwise);
            ref.expect(cs, "log_softmax", lsm, Tol::Elementwise);
            ref.expect(cs, "sum", sum, Tol::Elementwise);
            ref.expect(cs, "mean", mean, Tol::Elementwise);
            ref.expect(cs, "prod", prod, Tol::Elementwise);
            ref.expect(cs, "max", mx, Tol::Exact);
            ref.expect(cs, "min", mn, Tol::Exact);
            ref.expect(cs, "var", var, Tol::Elementwise);
            ref.expect(cs, "std", sd, Tol::Elementwise);
            ref.expect(cs, "logsumexp", lse, Tol::Elementwise);
            ref.expect(cs, "argmax", am, Tol::Exact);
            ref.expect(cs, "argmin", an, Tol::Exact);
        }
    });
    ref.run();
}

TEST_CASE("kernels: reductions propagate NaN like torch, ints, empty axes", "[kernels]") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> x{1, nan, 3, nan, 0, -1};  // outer 2, len 3
    std::vector<float> mx(2), mn(2);
    std::vector<std::int64_t> am(2), an(2);
    k::reduce_max(mx.data(), x.data(), 2, 3, 1);
    k::reduce_min(mn.data(), x.data(), 2, 3, 1);
    k::argmax(am.data(), x.data(), 2, 3, 1);
    k::argmin(an.data(), x.data(), 2, 3, 1);
    CHECK(std::isnan(mx[0]));
    CHECK(std::isnan(mn[1]));
    CHECK(am == std::vector<std::int64_t>{1, 0});
    CHECK(an == std::vector<std::int64_t>{1, 0});
    const std::vector<std::int32_t> xi{4, -2, 9, 9, 0, -7};
    std::vector<std::int32_t> mi(2), si(2);
    k::reduce_max(mi.data(), xi.data(), 2, 3, 1);
    k::reduce_sum(si.data(), xi.data(), 2, 3, 1);
    k::argmax(am.data(), xi.data(), 2, 3, 1);
    CHECK(mi == std::vector<std::int32_t>{9, 9});
    CHECK(si == std::vector<std::int32_t>{11, 2});
    CHECK(am == std::vector<std::int64_t>{2, 0});
    REQUIRE_THROWS_AS(k::reduce_max(mx.data(), x.data(), 2, 0, 1), Error);
    k::reduce_sum(mx.data(), x.data(), 2, 0, 1);
    CHECK(mx == std::vector<float>{0, 0});
}

TEST_CASE("kernels: scaled_dot_product_attention (mask, bias, causal, fully masked rows)", "[kernels]") {
    struct C { std::int64_t B, L, S, E, Ev; bool mask, bias, causal; };
    const std::vector<C> cfgs{{2, 5, 5, 8, 8, false, false, false}, {3, 4, 6, 5, 3, true, false, false},
                              {2, 6, 4, 4, 7, false, false, true},  {1, 3, 3, 2, 2, true, true, true},
                              {2, 1, 1, 3, 4, false, true, false},  {1, 7, 9, 16, 5, true, false, true}};
    Ref ref("sdpa");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            auto q = rnd<T>(std::size_t(c.B * c.L * c.E), 81 + unsigned(ci), -2, 2);
            auto kk = rnd<T>(std::size_t(c.B * c.S * c.E), 181 + unsigned(ci), -2, 2);
            auto v = rnd<T>(std::size_t(c.B * c.S * c.Ev), 281 + unsigned(ci));
            auto bias = rnd<T>(std::size_t(c.B * c.L * c.S), 381 + unsigned(ci));
            std::vector<std::uint8_t> mask(std::size_t(c.B * c.L * c.S));
            std::mt19937 gen(481 + unsigned(ci));
            for (auto& m : mask) m = gen() % 4 != 0;
            if (c.mask) std::fill(mask.begin() + c.S, mask.begin() + 2 * c.S, std::uint8_t{0});  // a fully masked row
            const double scale = 1 / std::sqrt(double(c.E));
            std::vector<T> out(std::size_t(c.B * c.L * c.Ev), T(-7)),
                scratch(k::scaled_dot_product_attention_scratch(c.L, c.S));
            k::scaled_dot_product_attention(out.data(), q.data(), kk.data(), v.data(),
                                            c.mask ? mask.data() : nullptr, c.bias ? bias.data() : nullptr, c.B,
                                            c.L, c.S, c.E, c.Ev, scale, c.causal, scratch.data());
            ref.in(cs, "q", q, {c.B, c.L, c.E});
            ref.in(cs, "k", kk, {c.B, c.S, c.E});
            ref.in(cs, "v", v, {c.B, c.S, c.Ev});
            if (c.mask) ref.in(cs, "mask", mask, {c.B, c.L, c.S});
            if (c.bias) ref.in(cs, "bias", bias, {c.B, c.L, c.S});
            std::ostringstream p;
            p.precision(17);
            p << "scale=" << scale << " causal=" << c.causal;
            ref.params(cs, p.str());
            ref.expect(cs, "out", out, Tol::Gemm);
        }
    });
    ref.run();
}

TEST_CASE("kernels: matmul with NumPy batch broadcasting", "[kernels]") {
    struct C { Shape a_batch, b_batch; std::int64_t M, K, N; };
    const std::vector<C> cfgs{
        {{3}, {3}, 4, 5, 6},          // equal batches -> gemm_batched
        {{2, 3}, {}, 5, 4, 3},        // b broadcast -> one tall gemm
        {{}, {4}, 3, 2, 5},           // a broadcast -> gemm_batched stride 0
        {{2, 1}, {1, 3}, 2, 3, 4},    // general broadcast
        {{1, 4, 1}, {3, 1, 2}, 1, 1, 1},
        {{2}, {2}, 1, 7, 1},          // vector-like shapes
    };
    Ref ref("matmul");
    for_both([&](auto tag) {
        using T = decltype(tag);
        for (std::size_t ci = 0; ci < cfgs.size(); ++ci) {
            const C& c = cfgs[ci];
            const std::string cs = dname<T>() + "_" + std::to_string(ci);
            const std::size_t rank = std::max(c.a_batch.size(), c.b_batch.size());
            Shape ab(rank, 1), bb(rank, 1), ob(rank, 1);
            std::copy(c.a_batch.begin(), c.a_batch.end(), ab.begin() + std::ptrdiff_t(rank - c.a_batch.size()));
            std::copy(c.b_batch.begin(), c.b_batch.end(), bb.begin() + std::ptrdiff_t(rank - c.b_batch.size()));
            for (std::size_t d = 0; d < rank; ++d) ob[d] = std::max(ab[d], bb[d]);
            Shape as = c.a_batch, bs = c.b_batch, os = ob;
            as.insert(as.end(), {c.M, c.K});
            bs.insert(bs.end(), {c.K, c.N});
            os.insert(os.end(), {c.M, c.N});
            auto a = rnd<T>(std::size_t(checked_numel(as)), 91 + unsigned(ci));
            auto b = rnd<T>(std::size_t(checked_numel(bs)), 191 + unsigned(ci));
            std::vector<T> out(std::size_t(checked_numel(os)), T(-7));
            k::matmul(out.data(), a.data(), b.data(), ab.data(), bb.data(), ob.data(), std::int64_t(rank), c.M, c.K,
                      c.N);
            ref.in(cs, "a", a, as);
            ref.in(cs, "b", b, bs);
            ref.params(cs, "x=0");
            ref.expect(cs, "out", out, Tol::Gemm);
        }
    });
    ref.run();
}

TEST_CASE("kernels: data movement (embedding, permute, concat, slice, pad, take, expand)", "[kernels]") {
    Ref ref("data");
    for_both([&](auto tag) {
        using T = decltype(tag);
        const std::string d = dname<T>();
        {  // embedding, int32 and int64 indices
            auto w = rnd<T>(7 * 5, 1);
            const std::vector<std::int64_t> idx{3, 0, 6, 3, 1};
            const std::vector<std::int32_t> idx32(idx.begin(), idx.end());
            std::vector<T> out(idx.size() * 5), out32(out.size());
            k::embedding(out.data(), idx.data(), w.data(), 5, 5, 7);
            k::embedding(out32.data(), idx32.data(), w.data(), 5, 5, 7);
            CHECK(out == out32);
            ref.in(d + "_emb", "x", w, {7, 5});
            ref.in(d + "_emb", "idx", idx, {5});
            ref.params(d + "_emb", "op=embedding");
            ref.expect(d + "_emb", "out", out, Tol::Exact);
        }
        const std::vector<std::pair<Shape, Shape>> perms{
            {{2, 3, 4}, {2, 0, 1}}, {{2, 3, 4, 5}, {0, 2, 3, 1}}, {{5, 1, 3}, {1, 2, 0}},
            {{3, 4}, {0, 1}},       {{2, 1, 3, 1, 2, 3, 1, 2}, {7, 6, 5, 4, 3, 2, 1, 0}}};
        for (std::size_t i = 0; i < perms.size(); ++i) {
            const auto& [shape, perm] = perms[i];
            const std::string cs = d + "_perm" + std::to_string(i);
            auto x = rnd<T>(std::size_t(checked_numel(shape)), 2 + unsigned(i));
            std::vector<T> out(x.size());
            k::permute(out.data(), x.data(), std::int64_t(shape.size()), shape.data(), perm.data());
            ref.in(cs, "x", x, shape);
            ref.params(cs, "op=permute perm=" + join(perm));
            ref.expect(cs, "out", out, Tol::Exact);
        }
        {  // concat along axis 1 of [2, *, 3]
            const std::vector<std::int64_t> lens{2, 0, 3, 1};
            std::vector<std::vector<T>> parts;
            std::vector<const T*> ptrs;
            const std::string cs = d + "_cat";
            for (std::size_t p = 0; p < lens.size(); ++p) {
                parts.push_back(rnd<T>(std::size_t(2 * lens[p] * 3), 10 + unsigned(p)));
                ref.in(cs, "p" + std::to_string(p), parts.back(), {2, lens[p], 3});
            }
            for (auto& p : parts) ptrs.push_back(p.data());
            std::vector<T> out(2 * 6 * 3);
            k::concat(out.data(), ptrs.data(), lens.data(), 4, 2, 3);
            ref.in(cs, "x", parts[0], {2, 2, 3});
            ref.params(cs, "op=concat nparts=4 axis=1");
            ref.expect(cs, "out", out, Tol::Exact);
        }
        {  // slices of [3, 8, 2] along axis 1
            auto x = rnd<T>(3 * 8 * 2, 20);
            const std::vector<std::array<std::int64_t, 3>> sl{{1, 2, 4}, {7, -3, 3}, {0, 1, 8}, {5, 1, 0}};
            for (std::size_t i = 0; i < sl.size(); ++i) {
                const std::string cs = d + "_slice" + std::to_string(i);
                std::vector<T> out(std::size_t(3 * sl[i][2] * 2));
                k::slice(out.data(), x.data(), 3, 8, 2, sl[i][0], sl[i][1], sl[i][2]);
                ref.in(cs, "x", x, {3, 8, 2});
                ref.params(cs, "op=slice axis=1 start=" + std::to_string(sl[i][0]) + " step=" +
                                   std::to_string(sl[i][1]) + " n=" + std::to_string(sl[i][2]));
                ref.expect(cs, "out", out, Tol::Exact);
            }
        }
        {  // pads, including negative (cropping)
            const std::vector<std::array<Shape, 3>> pads{{Shape{2, 3, 4}, Shape{0, 1, 2}, Shape{1, 0, 3}},
                                                         {Shape{3, 5}, Shape{-1, 2}, Shape{1, -2}},
                                                         {Shape{4}, Shape{0}, Shape{0}},
                                                         {Shape{2, 2}, Shape{-2, 0}, Shape{1, 1}}};
            for (std::size_t i = 0; i < pads.size(); ++i) {
                const auto& [shape, before, after] = pads[i];
                const std::string cs = d + "_pad" + std::to_string(i);
                auto x = rnd<T>(std::size_t(checked_numel(shape)), 30 + unsigned(i));
                Shape os(shape.size());
                for (std::size_t k2 = 0; k2 < shape.size(); ++k2) os[k2] = shape[k2] + before[k2] + after[k2];
                std::vector<T> out(std::size_t(checked_numel(os)));
                k::pad_constant(out.data(), x.data(), std::int64_t(shape.size()), shape.data(), before.data(),
                                after.data(), T(0.5));
                ref.in(cs, "x", x, shape);
                ref.params(cs, "op=pad before=" + join(before) + " after=" + join(after) + " value=0.5");
                ref.expect(cs, "out", out, Tol::Exact);
            }
        }
        {  // take along axis 1 of [2, 5, 3] with negative indices
            auto x = rnd<T>(2 * 5 * 3, 40);
            const std::vector<std::int32_t> idx{4, -1, 0, 2, -5, 4};
            std::vector<T> out(2 * idx.size() * 3);
            k::take(out.data(), x.data(), idx.data(), 2, 5, 3, std::int64_t(idx.size()));
            ref.in(d + "_take", "x", x, {2, 5, 3});
            ref.in(d + "_take", "idx", idx, {std::int64_t(idx.size())});
            ref.params(d + "_take", "op=take axis=1");
            ref.expect(d + "_take", "out", out, Tol::Exact);
        }
        {  // expand
            const std::vector<std::pair<Shape, Shape>> ex{
                {{1, 3, 1}, {2, 3, 4}}, {{1, 1}, {3, 2}}, {{4, 1, 2}, {4, 3, 2}}, {{1, 1, 5}, {2, 3, 5}}};
            for (std::size_t i = 0; i < ex.size(); ++i) {
                const auto& [is, os] = ex[i];
                const std::string cs = d + "_expand" + std::to_string(i);
                auto x = rnd<T>(std::size_t(checked_numel(is)), 50 + unsigned(i));
                std::vector<T> out(std::size_t(checked_numel(os)));
                k::expand(out.data(), x.data(), std::int64_t(is.size()), is.data(), os.data());
                ref.in(cs, "x", x, is);
                ref.params(cs, "op=expand shape=" + join(os));
                ref.expect(cs, "out", out, Tol::Exact);
            }
        }
    });
    ref.run();
}

TEST_CASE("kernels: embedding and take reject out-of-range indices with Error", "[kernels]") {
    std::vector<float> w(4 * 2), out(4);
    const std::vector<std::int64_t> bad{1, 4};
    REQUIRE_THROWS_WITH(k::embedding(out.data(), bad.data(), w.data(), 2, 2, 4),
                        "embedding: index 4 is out of range [0, 4)");
    const std::vector<std::int32_t> neg{-1};
    REQUIRE_THROWS_WITH(k::embedding(out.data(), neg.data(), w.data(), 1, 2, 4),
                        "embedding: index -1 is out of range [0, 4)");
    const std::vector<std::int64_t> far{-5};
    REQUIRE_THROWS_WITH(k::take(out.data(), w.data(), far.data(), 1, 4, 2, 1), Catch::Contains("index -5"));
    const std::vector<std::int64_t> tgt{3};
    REQUIRE_THROWS_WITH(k::cross_entropy(out.data(), w.data(), tgt.data(), nullptr, 1, 2, 1, -100, 0.0,
                                         k::Reduction::Mean),
                        Catch::Contains("index 3"));
}

TEST_CASE("kernels: losses (cross_entropy, nll, bce_with_logits, mse, l1, huber, kl_div)", "[kernels]") {
    Ref ref("loss");
    const std::vector<std::pair<k::Reduction, std::string>> reds{
        {k::Reduction::None, "none"}, {k::Reduction::Mean, "mean"}, {k::Reduction::Sum, "sum"}};
    for_both([&](auto tag) {
        using T = decltype(tag);
        const std::string d = dname<T>();
        int seed = 0;
        for (const auto& [red, rname] : reds) {
            // class-index cross_entropy / nll on [N, C] and [N, C, d1]
            struct CE { std::int64_t N, C, inner; bool weight; double ls; std::int64_t ignore; };
            const std::vector<CE> ces{{5, 4, 1, false, 0.0, -100}, {4, 3, 2, true, 0.0, 1}, {6, 5, 1, true, 0.2, 2},
                                      {3, 4, 3, false, 0.1, -100}};
            for (std::size_t i = 0; i < ces.size(); ++i) {
                const CE& c = ces[i];
                auto x = rnd<T>(std::size_t(c.N * c.C * c.inner), unsigned(++seed), -3, 3);
                auto w = rnd<T>(std::size_t(c.C), unsigned(++seed), 0.2, 2);
                std::vector<std::int64_t> t(std::size_t(c.N * c.inner));
                for (std::size_t j = 0; j < t.size(); ++j) t[j] = std::int64_t((j * 7 + i) % std::size_t(c.C));
                const std::size_t nout = red == k::Reduction::None ? t.size() : 1;
                Shape xs{c.N, c.C}, ts{c.N};
                if (c.inner > 1) {
                    xs.push_back(c.inner);
                    ts.push_back(c.inner);
                }
                for (const char* op : {"ce", "nll"}) {
                    const std::string cs = d + "_" + op + std::to_string(i) + "_" + rname;
                    std::vector<T> out(nout);
                    if (std::string(op) == "ce")
                        k::cross_entropy(out.data(), x.data(), t.data(), c.weight ? w.data() : nullptr, c.N, c.C,
                                         c.inner, c.ignore, c.ls, red);
                    else
                        k::nll_loss(out.data(), x.data(), t.data(), c.weight ? w.data() : nullptr, c.N, c.C, c.inner,
                                    c.ignore, red);
                    ref.in(cs, "x", x, xs);
                    ref.in(cs, "t", t, ts);
                    if (c.weight) ref.in(cs, "w", w, {c.C});
                    ref.params(cs, std::string("op=") + op + " red=" + rname + " ignore=" + std::to_string(c.ignore) +
                                       " ls=" + std::to_string(c.ls));
                    ref.expect(cs, "out", out, Tol::Elementwise);
                }
                // probability targets
                const std::string cs = d + "_cep" + std::to_string(i) + "_" + rname;
                auto p = rnd<T>(x.size(), unsigned(++seed), 0, 1);
                std::vector<T> out(nout);
                k::cross_entropy_probs(out.data(), x.data(), p.data(), c.weight ? w.data() : nullptr, c.N, c.C,
                                       c.inner, c.ls, red);
                ref.in(cs, "x", x, xs);
                ref.in(cs, "t", p, xs);
                if (c.weight) ref.in(cs, "w", w, {c.C});
                ref.params(cs, "op=ce_probs red=" + rname + " ls=" + std::to_string(c.ls));
                ref.expect(cs, "out", out, Tol::Elementwise);
            }
            // elementwise losses on [3, 4]
            auto x = rnd<T>(12, unsigned(++seed), -4, 4);
            auto y = rnd<T>(12, unsigned(++seed), -2, 2);
            auto y01 = rnd<T>(12, unsigned(++seed), 0, 1);
            auto w = rnd<T>(12, unsigned(++seed), 0, 2);
            auto pw = rnd<T>(4, unsigned(++seed), 0.5, 3);
            const std::size_t nout = red == k::Reduction::None ? 12 : 1;
            for (int variant = 0; variant < 2; ++variant) {
                const std::string cs = d + "_bce" + std::to_string(variant) + "_" + rname;
                std::vector<T> out(nout);
                k::bce_with_logits(out.data(), x.data(), y01.data(), variant ? w.data() : nullptr,
                                   variant ? pw.data() : nullptr, 12, 4, red);
                ref.in(cs, "x", x, {3, 4});
                ref.in(cs, "y", y01, {3, 4});
                if (variant) {
                    ref.in(cs, "w", w, {3, 4});
                    ref.in(cs, "pw", pw, {4});
                }
                ref.params(cs, "op=bce red=" + rname);
                ref.expect(cs, "out", out, Tol::Elementwise);
            }
            for (const char* op : {"mse", "l1", "huber", "smooth_l1"}) {
                const std::string cs = d + "_" + op + "_" + rname, o = op;
                std::vector<T> out(nout);
                if (o == "mse") k::mse_loss(out.data(), x.data(), y.data(), 12, red);
                if (o == "l1") k::l1_loss(out.data(), x.data(), y.data(), 12, red);
                if (o == "huber") k::huber_loss(out.data(), x.data(), y.data(), 12, 1.5, red);
                if (o == "smooth_l1") k::smooth_l1_loss(out.data(), x.data(), y.data(), 12, 1.5, red);
                ref.in(cs, "x", x, {3, 4});
                ref.in(cs, "y", y, {3, 4});
                ref.params(cs, "op=" + o + " red=" + rname + " delta=1.5");
                ref.expect(cs, "out", out, Tol::Elementwise);
            }
        }
        // kl_div: log-prob input, prob / log-prob target (with exact zeros), all reductions + batchmean
        auto lx = rnd<T>(12, 900, -3, 0);
        auto ty = rnd<T>(12, 901, 0, 1);
        ty[3] = ty[7] = T(0);
        auto lty = rnd<T>(12, 902, -3, 0);
        const std::vector<std::pair<k::Reduction, std::string>> kreds{{k::Reduction::None, "none"},
                                                                        {k::Reduction::Mean, "mean"},
                                                                        {k::Reduction::Sum, "sum"},
                                                                        {k::Reduction::BatchMean, "batchmean"}};
        for (const auto& [red, rname] : kreds)
            for (int lt = 0; lt < 2; ++lt) {
                const std::string cs = d + "_kl" + std::to_string(lt) + "_" + rname;
                std::vector<T> out(red == k::Reduction::None ? 12 : 1);
                k::kl_div(out.data(), lx.data(), lt ? lty.data() : ty.data(), 12, 3, lt == 1, red);
                ref.in(cs, "x", lx, {3, 4});
                ref.in(cs, "y", lt ? lty : ty, {3, 4});
                ref.params(cs, "op=kl red=" + rname + " log_target=" + std::to_string(lt));
                ref.expect(cs, "out", out, Tol::Elementwise);
            }
    });
    ref.run();
}

TEST_CASE("kernels: scalar activation functions", "[kernels]") {
    Ref ref("scalar");
    for_both([&](auto tag) {
        using T = decltype(tag);
        auto x = rnd<T>(200, 7, -8, 8);
        x[0] = T(0);
        x[1] = T(-30);
        x[2] = T(30);
        x[3] = T(2.5);  // softplus(beta=2, threshold=3) switch point neighbourhood
        const std::string cs = dname<T>();
        const std::vector<std::pair<std::string, std::function<T(T)>>> fns{
            {"relu", [](T v) { return k::relu(v); }},
            {"sigmoid", [](T v) { return k::sigmoid(v); }},
            {"gelu", [](T v) { return k::gelu(v); }},
            {"gelu_tanh", [](T v) { return k::gelu_tanh(v); }},
            {"silu", [](T v) { return k::silu(v); }},
            {"softplus", [](T v) { return k::softplus(v); }},
            {"softplus2", [](T v) { return k::softplus(v, T(2), T(3)); }},
            {"elu", [](T v) { return k::elu(v, T(0.7)); }},
            {"selu", [](T v) { return k::selu(v); }},
            {"leaky_relu", [](T v) { return k::leaky_relu(v, T(0.2)); }},
            {"hardtanh", [](T v) { return k::hardtanh(v); }},
            {"hardsigmoid", [](T v) { return k::hardsigmoid(v); }},
            {"hardswish", [](T v) { return k::hardswish(v); }},
            {"mish", [](T v) { return k::mish(v); }},
            {"rsqrt", [](T v) { return k::rsqrt(std::fabs(v) + T(0.5)); }},
            {"sign", [](T v) { return k::sign(v); }},
            {"exp", [](T v) { return k::exp_(v); }},
            {"gelu_grad", [](T v) { return k::gelu_grad(v); }},
            {"gelu_tanh_grad", [](T v) { return k::gelu_tanh_grad(v); }},
        };
        for (const auto& [name, f] : fns) {
            std::vector<T> out(x.size());
            for (std::size_t i = 0; i < x.size(); ++i) out[i] = f(x[i]);
            ref.expect(cs, name, out, Tol::Elementwise);
        }
        ref.in(cs, "x", x, {200});
        ref.params(cs, "n=200");
    });
    ref.run();
    CHECK(k::sign(std::numeric_limits<float>::quiet_NaN()) == 0.f);  // torch.sign(nan) == 0
}
