// timer.h - steady-clock timing for benchmark loops (--bench N).
//
//   std::vector<double> ms;
//   for (int i = 0; i < n; ++i) { mithril::rt::Timer t; run(); ms.push_back(t.elapsed_ms()); }
//   double typical = mithril::rt::median(ms);
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <sys/resource.h>

#include "mithril/rt/error.h"

namespace mithril::rt {

class Timer {
public:
    using Clock = std::chrono::steady_clock;

    Timer() : start_(Clock::now()) {}
    void reset() { start_ = Clock::now(); }
    double elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
    double elapsed_ms() const { return elapsed_s() * 1e3; }

private:
    Clock::time_point start_;
};

// Median of the samples (mean of the two middle values for an even count).
// Throws Error for an empty vector.
inline double median(std::vector<double> samples) {
    if (samples.empty()) throw Error("median of an empty sample set");
    const auto mid = samples.begin() + static_cast<std::ptrdiff_t>(samples.size() / 2);
    std::nth_element(samples.begin(), mid, samples.end());
    if (samples.size() % 2 == 1) return *mid;
    const double below = *std::max_element(samples.begin(), mid);
    return (below + *mid) / 2;
}

// The process's peak resident memory so far, in bytes: VmHWM of /proc/self/status
// (the high-water mark of this program's own address space). ru_maxrss is only
// the fallback: Linux carries it over from the parent across fork and exec, so a
// program started by a large process would report that process's peak.
inline long long peak_rss_bytes() {
    if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
        char line[256];
        long long kib = -1;
        while (std::fgets(line, sizeof line, f))
            if (std::sscanf(line, "VmHWM: %lld kB", &kib) == 1) break;
        std::fclose(f);
        if (kib >= 0) return kib * 1024;
    }
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<long long>(u.ru_maxrss) * 1024;
}

}  // namespace mithril::rt
