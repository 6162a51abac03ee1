// gradcheck.h - gradients of a generated model against central finite differences.
//
// The loss is L = sum_i <r_i, y_i> for random r_i (one per float output), so dL/dy_i = r_i is the
// seed of the backward pass. For each gradient (a parameter or an input), up to `max_elems`
// entries are perturbed by +-h and L is re-evaluated with the forward pass:
//   numeric = (L(x + h) - L(x - h)) / 2h,   error = |analytic - numeric| / max(1, |numeric|).
// Meant for float64 models (h = 1e-6 then gives errors near 1e-9); float32 needs h near 1e-2
// and a loose tolerance. Inputs and weights are restored exactly after each probe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "mithril/rt/init.h"
#include "mithril/rt/tensor.h"

namespace mithril::rt {

struct GradCheckResult {
    std::string name;
    int64_t checked = 0;
    double max_error = 0;
    int64_t worst = -1;  // flat index of the worst entry
    double analytic = 0, numeric = 0;
};

namespace detail {
inline double get(const void* p, DType t, int64_t i) {
    return t == DType::Float64 ? static_cast<const double*>(p)[i] : static_cast<const float*>(p)[i];
}
inline void set(void* p, DType t, int64_t i, double v) {
    if (t == DType::Float64) static_cast<double*>(p)[i] = v;
    else static_cast<float*>(p)[i] = static_cast<float>(v);
}
inline int64_t numel(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}
}  // namespace detail

template <class Model>
std::vector<GradCheckResult> check_gradients(Model& m, std::vector<Tensor>& inputs, const typename Model::Dims& d, uint64_t seed,
                                             int64_t max_elems, double h) {
    const auto& outs = Model::outputs();
    Rng rng(seed);
    std::vector<Tensor> seeds;
    for (size_t i = 0; i < outs.size(); ++i) {
        Tensor t = Tensor::zeros(outs[i].dtype, m.output_shape(i, d));
        if (outs[i].dtype == DType::Float32 || outs[i].dtype == DType::Float64)
            for (int64_t k = 0; k < t.numel(); ++k) detail::set(t.raw_data(), t.dtype(), k, 2 * rng.uniform() - 1);
        seeds.push_back(t);
    }
    auto loss = [&]() {
        m.run(inputs, d);
        double L = 0;
        for (size_t i = 0; i < outs.size(); ++i) {
            if (outs[i].dtype != DType::Float32 && outs[i].dtype != DType::Float64) continue;
            for (int64_t k = 0; k < seeds[i].numel(); ++k)
                L += detail::get(seeds[i].raw_data(), outs[i].dtype, k) * detail::get(m.output(i), outs[i].dtype, k);
        }
        return L;
    };
    loss();
    m.run_backward(seeds);
    // Copy the analytic gradients before the probes overwrite the arena.
    std::vector<std::vector<double>> analytic;
    for (size_t g = 0; g < Model::gradients().size(); ++g) {
        int64_t n = detail::numel(m.gradient_shape(g, d));
        std::vector<double> a(static_cast<size_t>(n));
        for (int64_t k = 0; k < n; ++k) a[static_cast<size_t>(k)] = detail::get(m.gradient(g), Model::gradients()[g].dtype, k);
        analytic.push_back(std::move(a));
    }
    std::vector<GradCheckResult> results;
    for (size_t g = 0; g < Model::gradients().size(); ++g) {
        GradCheckResult r;
        r.name = Model::gradients()[g].name;
        DType t = Model::gradients()[g].dtype;
        // Where the value lives: a weight, or an input.
        void* data = nullptr;
        for (auto& w : Model::weights())
            if (r.name == w.name) data = m.weight_data() + w.offset;
        for (size_t i = 0; i < Model::inputs().size() && !data; ++i)
            if (r.name == Model::inputs()[i].name) data = inputs[i].raw_data();
        const int64_t n = static_cast<int64_t>(analytic[g].size());
        std::vector<int64_t> picks;
        if (n <= max_elems) {
            for (int64_t k = 0; k < n; ++k) picks.push_back(k);
        } else {
            for (int64_t k = 0; k < max_elems; ++k) picks.push_back(static_cast<int64_t>(rng.uniform() * static_cast<double>(n)) % n);
        }
        for (int64_t k : picks) {
            const double orig = detail::get(data, t, k);
            detail::set(data, t, k, orig + h);
            const double up = loss();
            detail::set(data, t, k, orig - h);
            const double down = loss();
            detail::set(data, t, k, orig);
            const double num = (up - down) / (2 * h);
            const double a = analytic[g][static_cast<size_t>(k)];
            const double err = std::abs(a - num) / std::max(1.0, std::abs(num));
            ++r.checked;
            if (err > r.max_error || r.worst < 0) {
                r.max_error = err;
                r.worst = k;
                r.analytic = a;
                r.numeric = num;
            }
        }
        results.push_back(r);
    }
    return results;
}

}  // namespace mithril::rt
