// profile.cpp - recording and reporting of per-layer times (profile.h).
#include "mithril/rt/profile.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <vector>

namespace mithril::rt {
namespace {

struct Recorder {
    std::unordered_map<const ProfileNode*, std::size_t> index;
    std::vector<ProfileRow> rows;
};

Recorder& recorder() {
    static Recorder r;
    return r;
}

std::string line(const char* fmt, double share, double ms, double gflops, const std::string& what) {
    char buf[512];
    char rate[32] = "";
    if (gflops > 0) std::snprintf(rate, sizeof rate, "%8.1f", gflops);
    std::snprintf(buf, sizeof buf, fmt, share, ms, rate, what.c_str());
    return buf;
}

}  // namespace

namespace detail {
void profile_add(const ProfileNode& node, double seconds, double flops) {
    Recorder& r = recorder();
    auto [it, fresh] = r.index.try_emplace(&node, r.rows.size());
    if (fresh) r.rows.push_back({node.name, node.op, node.pass});
    ProfileRow& row = r.rows[it->second];
    row.calls += 1;
    row.seconds += seconds;
    row.flops += flops;
}
}  // namespace detail

void profile_reset() {
    recorder().index.clear();
    recorder().rows.clear();
}

void set_profiling(bool on) {
    if (on) profile_reset();
    detail::profiling_on = on;
}

std::vector<ProfileRow> profile_rows() { return recorder().rows; }

std::string profile_report(int runs, std::size_t top) {
    std::vector<ProfileRow> rows = profile_rows();
    if (runs < 1) runs = 1;
    double total = 0;
    for (auto& r : rows) total += r.seconds;
    const char* const fmt = "  %5.1f%%  %9.4f  %8s  %s\n";
    auto share = [&](double s) { return total > 0 ? 100 * s / total : 0.0; };
    auto ms = [&](double s) { return 1e3 * s / runs; };
    auto gflops = [](const ProfileRow& r) { return r.flops > 0 && r.seconds > 0 ? r.flops / r.seconds * 1e-9 : 0.0; };

    std::string out;
    char head[256];
    std::snprintf(head, sizeof head, "profile: %zu layers, %.4f ms per run in them (%d runs)\n", rows.size(), ms(total), runs);
    out += head;
    out += "  share    ms/run   GFLOP/s  layer (op, pass)\n";
    std::vector<ProfileRow> by_time = rows;
    std::stable_sort(by_time.begin(), by_time.end(), [](auto& a, auto& b) { return a.seconds > b.seconds; });
    ProfileRow rest{"", "", ""};
    std::size_t rest_count = 0;
    for (std::size_t i = 0; i < by_time.size(); ++i) {
        const ProfileRow& r = by_time[i];
        if (i < top) {
            out += line(fmt, share(r.seconds), ms(r.seconds), gflops(r), r.name + " (" + r.op + ", " + r.pass + ")");
        } else {
            rest.seconds += r.seconds;
            ++rest_count;
        }
    }
    if (rest_count)
        out += line(fmt, share(rest.seconds), ms(rest.seconds), 0, "... " + std::to_string(rest_count) + " more layers");

    // Per op (and pass), by time.
    std::map<std::string, ProfileRow> ops;
    for (auto& r : rows) {
        ProfileRow& o = ops[r.op + " (" + r.pass + ")"];
        o.name = r.op + " (" + r.pass + ")";
        o.calls += 1;
        o.seconds += r.seconds;
        o.flops += r.flops;
    }
    std::vector<ProfileRow> op_rows;
    for (auto& [k, o] : ops) op_rows.push_back(o);
    std::stable_sort(op_rows.begin(), op_rows.end(), [](auto& a, auto& b) { return a.seconds > b.seconds; });
    out += "by op:\n  share    ms/run   GFLOP/s  op (pass): layers\n";
    for (auto& o : op_rows)
        out += line(fmt, share(o.seconds), ms(o.seconds), gflops(o), o.name + ": " + std::to_string(o.calls));

    // Matrix products and convolutions: the nodes with a FLOP count.
    ProfileRow prod;
    for (auto& r : rows)
        if (r.flops > 0) {
            prod.seconds += r.seconds;
            prod.flops += r.flops;
        }
    char tail[256];
    std::snprintf(tail, sizeof tail,
                  "matrix products and convolutions: %.1f%% of the time, %.4g GFLOP per run, %.1f GFLOP/s\n",
                  share(prod.seconds), prod.flops / runs * 1e-9, gflops(prod));
    out += tail;
    return out;
}

}  // namespace mithril::rt
