// profile.h - time per layer of generated code (`--profile`).
//
// Every node of a generated program opens a ProfileScope with its static facts
// (layer name, op, forward/backward/update) and its floating-point operation
// count (matrix products and convolutions; 0 for the rest). While profiling is
// off (the default) a scope costs one predictable branch; while it is on, each
// scope reads the steady clock twice and adds the time to its layer.
//
//   mithril::rt::set_profiling(true);
//   for (int i = 0; i < runs; ++i) model.run(...);
//   std::fputs(mithril::rt::profile_report(runs).c_str(), stdout);
//
// The report lists the layers by time with their share and, where they have a
// FLOP count, GFLOP/s; then the same per op; then the share of matrix products
// and convolutions (the nodes with a FLOP count) and their combined GFLOP/s.
// Times are wall-clock per node: a node's own threads (OpenMP, BLAS) run inside it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace mithril::rt {

// What a generated node says about itself; generated code makes these `static constexpr`.
struct ProfileNode {
    const char* name;  // the layer, as in the model file (conv1, layer1.0.bn1, ...)
    const char* op;    // its op (Conv2d, Linear, FusedElementwise, ...)
    const char* pass;  // "forward", "backward" or "update"
};

namespace detail {
inline bool profiling_on = false;
void profile_add(const ProfileNode& node, double seconds, double flops);
}  // namespace detail

inline bool profiling() { return detail::profiling_on; }
// Turns recording on or off; turning it on clears what was recorded before.
void set_profiling(bool on);
void profile_reset();

// Times one run of a node while profiling is on.
class ProfileScope {
public:
    using Clock = std::chrono::steady_clock;
    ProfileScope(const ProfileNode& node, double flops) : node_(detail::profiling_on ? &node : nullptr), flops_(flops) {
        if (node_) start_ = Clock::now();
    }
    ~ProfileScope() {
        if (node_) detail::profile_add(*node_, std::chrono::duration<double>(Clock::now() - start_).count(), flops_);
    }
    ProfileScope(const ProfileScope&) = delete;
    ProfileScope& operator=(const ProfileScope&) = delete;

private:
    const ProfileNode* node_;
    double flops_;
    Clock::time_point start_{};
};

// One recorded layer: totals over all runs since recording started.
struct ProfileRow {
    std::string name, op, pass;
    long long calls = 0;
    double seconds = 0, flops = 0;
};
// The recorded layers, in the order they first ran.
std::vector<ProfileRow> profile_rows();

// The report as text: `runs` divides the totals into per-run times; `top` layers are listed
// (the rest summed in one line), then every op, then the matrix-product share.
std::string profile_report(int runs, std::size_t top = 25);

}  // namespace mithril::rt
