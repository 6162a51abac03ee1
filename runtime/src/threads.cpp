// threads.cpp - keeps OpenMP and BLAS (OpenBLAS or BLIS) thread counts in agreement.
#include "mithril/rt/threads.h"

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#if defined(MITHRIL_RT_HAVE_OPENMP)
#include <omp.h>
#endif

#include "mithril/rt/blas.h"
#include "mithril/rt/error.h"

namespace mithril::rt {

namespace {

std::atomic<int> g_threads{0};  // 0 = never set

// Parses a positive int from the start of `text` up to an optional ','.
int parse_positive(std::string_view text) {
    const auto comma = text.find(',');
    if (comma != std::string_view::npos) text = text.substr(0, comma);
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value <= 0) return 0;
    return value;
}

}  // namespace

int default_num_threads() {
    if (const char* env = std::getenv("MITHRIL_NUM_THREADS")) {
        const std::string_view text = env;
        const int n = text.find(',') == std::string_view::npos ? parse_positive(text) : 0;
        if (n <= 0) throw Error("MITHRIL_NUM_THREADS='" + std::string(text) + "' is not a positive integer");
        return n;
    }
    if (const char* env = std::getenv("OMP_NUM_THREADS"))
        if (const int n = parse_positive(env); n > 0) return n;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int>(hw);
}

int set_num_threads(int n) {
    if (n <= 0) n = default_num_threads();
    set_blas_num_threads(n);
#if defined(MITHRIL_RT_HAVE_OPENMP)
    omp_set_num_threads(n);
#endif
    g_threads = n;
    return n;
}

int num_threads() {
    const int n = g_threads.load();
    return n > 0 ? n : set_num_threads(0);
}

bool have_openmp() {
#if defined(MITHRIL_RT_HAVE_OPENMP)
    return true;
#else
    return false;
#endif
}

}  // namespace mithril::rt
