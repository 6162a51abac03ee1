// test_misc.cpp - threads, timer/median, the per-layer profiler and atomic file writes.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <thread>

#include "mithril/rt/device.h"
#include "mithril/rt/file_io.h"
#include "mithril/rt/profile.h"
#include "mithril/rt/threads.h"
#include "mithril/rt/timer.h"
#include "test_support.h"

using namespace mithril::rt;
using Catch::Contains;

namespace {
// Sets an environment variable for one scope, restoring the old value.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old, had_ = true;
        if (value) setenv(name, value, 1);
        else unsetenv(name);
    }
    ~ScopedEnv() {
        if (had_) setenv(name_, old_.c_str(), 1);
        else unsetenv(name_);
    }

private:
    const char* name_;
    std::string old_;
    bool had_ = false;
};
}  // namespace

TEST_CASE("default thread count: MITHRIL_NUM_THREADS, then OMP_NUM_THREADS, then hardware", "[threads]") {
    {
        ScopedEnv m("MITHRIL_NUM_THREADS", "3"), o("OMP_NUM_THREADS", "5");
        CHECK(default_num_threads() == 3);
    }
    {
        ScopedEnv m("MITHRIL_NUM_THREADS", nullptr), o("OMP_NUM_THREADS", "5,2");
        CHECK(default_num_threads() == 5);
    }
    {
        ScopedEnv m("MITHRIL_NUM_THREADS", nullptr), o("OMP_NUM_THREADS", "junk");
        const unsigned hw = std::thread::hardware_concurrency();
        CHECK(default_num_threads() == (hw == 0 ? 1 : static_cast<int>(hw)));
    }
    {
        ScopedEnv m("MITHRIL_NUM_THREADS", "0");
        REQUIRE_THROWS_WITH(default_num_threads(), Contains("MITHRIL_NUM_THREADS='0' is not a positive integer"));
    }
}

TEST_CASE("set_num_threads applies one count", "[threads]") {
    CHECK(set_num_threads(2) == 2);
    CHECK(num_threads() == 2);
    ScopedEnv m("MITHRIL_NUM_THREADS", "1");
    CHECK(set_num_threads(0) == 1);
    CHECK(num_threads() == 1);
#if defined(MITHRIL_RT_HAVE_OPENMP)
    CHECK(have_openmp());
#endif
}

TEST_CASE("timer and median", "[timer]") {
    Timer t;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    CHECK(t.elapsed_ms() >= 2.0);
    t.reset();
    CHECK(t.elapsed_s() < 1.0);
    CHECK(median({5.0}) == 5.0);
    CHECK(median({3.0, 1.0, 2.0}) == 2.0);
    CHECK(median({4.0, 1.0, 3.0, 2.0}) == 2.5);
    REQUIRE_THROWS_WITH(median({}), Contains("empty"));
}

TEST_CASE("the profiler records layers only while on, and reports shares and GFLOP/s", "[profile]") {
    static constexpr ProfileNode conv{"conv1", "Conv2d", "forward"};
    static constexpr ProfileNode relu{"relu", "Relu", "forward"};
    auto spin = [](double seconds) {
        Timer t;
        while (t.elapsed_s() < seconds) {
        }
    };
    set_profiling(false);
    { const ProfileScope p(conv, 1e9); spin(0.001); }
    CHECK(profile_rows().empty());  // off: nothing recorded
    set_profiling(true);
    for (int run = 0; run < 3; ++run) {
        { const ProfileScope p(conv, 2e6); spin(0.004); }
        { const ProfileScope p(relu, 0); spin(0.001); }
    }
    set_profiling(false);
    { const ProfileScope p(relu, 0); spin(0.001); }  // off again: not counted
    auto rows = profile_rows();
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].name == "conv1");  // in the order they first ran
    CHECK(rows[0].op == "Conv2d");
    CHECK(rows[0].calls == 3);
    CHECK(rows[1].calls == 3);
    CHECK(rows[0].flops == 6e6);
    CHECK(rows[0].seconds >= 0.012);
    CHECK(rows[1].seconds >= 0.003);
    CHECK(rows[0].seconds > rows[1].seconds);
    std::string report = profile_report(3);
    CHECK_THAT(report, Contains("profile: 2 layers"));
    CHECK_THAT(report, Contains("conv1 (Conv2d, forward)"));
    CHECK_THAT(report, Contains("Relu (forward): 1"));
    CHECK_THAT(report, Contains("matrix products and convolutions:"));
    CHECK_THAT(report, Contains("0.002 GFLOP per run"));
    // The layer lines come by time: conv1 (longer) first.
    CHECK(report.find("conv1 (Conv2d") < report.find("relu (Relu"));
    set_profiling(true);  // turning it on starts afresh
    CHECK(profile_rows().empty());
    set_profiling(false);
}

TEST_CASE("atomic_write_file replaces the file only on success", "[file_io]") {
    rt_test::TempDir dir;
    const auto path = dir / "out.bin";
    atomic_write_file(path, [](FileWriter& w) { w.write("first"); });
    CHECK(rt_test::read_bytes(path) == "first");

    // A failure half-way leaves the old file intact and no temp file behind.
    REQUIRE_THROWS_WITH(atomic_write_file(path,
                                          [](FileWriter& w) {
                                              w.write("partial");
                                              throw Error("boom");
                                          }),
                        Contains("boom"));
    CHECK(rt_test::read_bytes(path) == "first");
    CHECK(dir.entries() == std::vector<std::string>{"out.bin"});

    // A folder that does not exist, or a "folder" that is a file.
    REQUIRE_THROWS_WITH(atomic_write_file(dir / "missing" / "x.bin", [](FileWriter&) {}),
                        Contains("cannot write") && Contains("missing"));
    REQUIRE_THROWS_WITH(atomic_write_file(dir / "out.bin" / "x.bin", [](FileWriter&) {}), Contains("cannot write"));
    CHECK(dir.entries() == std::vector<std::string>{"out.bin"});
}

TEST_CASE("the CPU device names the machine and the threads in use", "[device]") {
    mithril::rt::set_num_threads(1);
    mithril::rt::Device d = mithril::rt::cpu_device();
    CHECK(d.kind == "cpu");
    CHECK_FALSE(d.name.empty());
    CHECK(d.cores >= 1);
    CHECK(d.threads == 1);
    CHECK_THAT(d.describe(), Catch::Contains("1 threads of"));
    mithril::rt::set_num_threads(0);
}
