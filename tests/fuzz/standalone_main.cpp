// standalone_main.cpp - a small driver for the fuzz targets where libFuzzer is
// not available (the g++ build): `fuzz_<name>_check`.
//
//   fuzz_npy_check [--seconds S] [--seed N] [--timeout S] [--max-len N]
//                  [--rss-limit-mb N] [--artifacts DIR] [--keep-going] FILE_OR_FOLDER...
//
// Runs LLVMFuzzerTestOneInput on every corpus file, then on random mutations of
// them (bit flips, byte changes, inserts, deletes, copies, splices between
// files, numbers replaced by extreme ones; seeded, so the same seed gives the
// same inputs in the same order) until S seconds (default 10) have passed;
// --seconds 0 runs the given files only (to reproduce a finding). Without
// coverage feedback it finds less than libFuzzer, but it runs in every build.
//
// A finding is an exception escaping the target (the targets catch their clean
// error types), a crash signal, or an input running longer than --timeout
// seconds (default 5). The input is saved as DIR/<target>-<kind>-<hash>
// (default DIR: fuzz-findings) and the driver exits 1 naming it. With
// --keep-going it saves one input per distinct exception (type and message
// without the words that hold digits) and goes on, exiting 1 at the end;
// crashes and hangs still stop it.
#include <cxxabi.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include "fuzz_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define MITHRIL_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MITHRIL_FUZZ_ASAN 1
#endif
#endif
#ifdef MITHRIL_FUZZ_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

struct Options {
    double seconds = 10;
    std::uint64_t seed = 1;
    double timeout = 5;
    std::size_t max_len = 0;  // 0: twice the largest corpus file, at least 4096
    long rss_limit_mb = 4096;
    fs::path artifacts = "fuzz-findings";
    bool keep_going = false;
    std::vector<fs::path> inputs;
};

std::string g_target = "fuzz";  // the program's name, in messages and file names

// The input being run, for the watchdog and the crash handler.
std::mutex g_mutex;
Bytes g_current;
Clock::time_point g_started;
bool g_running = false;
std::atomic<bool> g_stop{false};
// Prepared before any input runs: the crash handler may only use async-signal-safe calls.
std::string g_crash_dir, g_crash_path;

[[noreturn]] void usage(const std::string& msg) {
    std::cerr << g_target << ": " << msg << "\nusage: " << g_target
              << " [--seconds S] [--seed N] [--timeout S] [--max-len N] [--rss-limit-mb N] [--artifacts DIR] "
                 "[--keep-going] FILE_OR_FOLDER...\n";
    std::exit(2);
}

Options parse_args(int argc, char** argv) {
    Options o;
    auto value = [&](int& i) -> std::string {
        if (i + 1 >= argc) usage(std::string("missing value for ") + argv[i]);
        return argv[++i];
    };
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--seconds") o.seconds = std::stod(value(i));
            else if (a == "--seed") o.seed = std::stoull(value(i));
            else if (a == "--timeout") o.timeout = std::stod(value(i));
            else if (a == "--max-len") o.max_len = std::stoull(value(i));
            else if (a == "--rss-limit-mb") o.rss_limit_mb = std::stol(value(i));
            else if (a == "--artifacts") o.artifacts = value(i);
            else if (a == "--keep-going") o.keep_going = true;
            else if (a.starts_with("--")) usage("unknown option " + a);
            else o.inputs.emplace_back(a);
        }
    } catch (const std::logic_error&) {  // std::stod and friends
        usage("bad number in the options");
    }
    if (o.inputs.empty()) usage("no corpus files or folders given");
    return o;
}

std::string hex64(std::uint64_t h) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

std::uint64_t fnv1a(const Bytes& b) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::uint8_t c : b) h = (h ^ c) * 0x100000001b3ULL;
    return h;
}

// Saves the input as DIR/<target>-<kind>-<hash> and returns the path.
fs::path save_finding(const Options& o, const std::string& kind, const Bytes& input) {
    std::error_code ec;
    fs::create_directories(o.artifacts, ec);
    const fs::path p = o.artifacts / (g_target + "-" + kind + "-" + hex64(fnv1a(input)));
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(input.data()),
                                             static_cast<std::streamsize>(input.size()));
    return fs::absolute(p, ec);
}

[[noreturn]] void report(const Options& o, const std::string& kind, const std::string& what, const Bytes& input) {
    const fs::path p = save_finding(o, kind, input);
    std::cerr << g_target << ": FINDING (" << kind << "): " << what << "\n"
              << g_target << ": the input (" << input.size() << " bytes) is saved as " << p.string() << "\n"
              << g_target << ": reproduce with: " << g_target << " --seconds 0 " << p.string() << "\n";
    std::error_code ec;
    fs::remove_all(mithril_fuzz::scratch().dir(), ec);  // _Exit skips the destructor that would
    std::_Exit(1);
}

// Async-signal-safe only: writes the input to the prepared path and says so.
void save_crash_input() {
    (void)::mkdir(g_crash_dir.c_str(), 0755);  // made only when needed (one level)
    const int fd = ::open(g_crash_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        std::size_t done = 0;
        while (done < g_current.size()) {
            const ssize_t n = ::write(fd, g_current.data() + done, g_current.size() - done);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
    }
    const char* msg = ": FINDING (crash signal): the input is saved as ";
    (void)!::write(2, g_target.c_str(), g_target.size());
    (void)!::write(2, msg, std::strlen(msg));
    (void)!::write(2, g_crash_path.c_str(), g_crash_path.size());
    (void)!::write(2, "\n", 1);
}

extern "C" void on_crash_signal(int sig) {
    save_crash_input();
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

extern "C" void on_sanitizer_death() { save_crash_input(); }

void install_crash_handlers(const Options& o) {
    std::error_code ec;
    g_crash_dir = fs::absolute(o.artifacts, ec).string();
    g_crash_path = (fs::path(g_crash_dir) / (g_target + "-crash")).string();
#ifdef MITHRIL_FUZZ_ASAN
    // The sanitizers handle the signals and print their report; then this saves the input.
    __sanitizer_set_death_callback(on_sanitizer_death);
#else
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, on_crash_signal);
#endif
}

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g s", s);
    return buf;
}

// Ends the process when one input runs longer than the time limit.
void watchdog(const Options& o) {
    const auto limit = std::chrono::duration<double>(o.timeout);
    while (!g_stop) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_running && Clock::now() - g_started > limit)
            report(o, "hang", "the input ran longer than the limit of " + seconds_text(o.timeout), g_current);
    }
}

std::string exception_type(const std::exception& e) {
    int status = 0;
    char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
    std::string s = status == 0 && name ? name : typeid(e).name();
    std::free(name);
    return s;
}

// --keep-going: the distinct exceptions seen so far.
std::set<std::string> g_seen;

// An exception escaped: stop, or with --keep-going save the input once per kind of message.
void exception_finding(const Options& o, const std::string& what) {
    if (!o.keep_going) report(o, "exception", what, g_current);
    std::string key, word;  // the message without its words that hold digits (offsets, values)
    for (char c : what + " ") {
        if (c != ' ') {
            word += c;
            continue;
        }
        if (std::none_of(word.begin(), word.end(), [](char d) { return std::isdigit(static_cast<unsigned char>(d)); }))
            key += word + " ";
        word.clear();
    }
    if (!g_seen.insert(key).second) return;
    const fs::path p = save_finding(o, "exception", g_current);
    std::cerr << g_target << ": FINDING (exception): " << what << "\n" << g_target << ": the input ("
              << g_current.size() << " bytes) is saved as " << p.string() << "\n";
}

void run_one(const Options& o, const Bytes& input) {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        g_current = input;
        g_started = Clock::now();
        g_running = true;
    }
    try {
        LLVMFuzzerTestOneInput(g_current.data(), g_current.size());
    } catch (const std::exception& e) {
        exception_finding(o, "uncaught " + exception_type(e) + ": " + e.what());
    } catch (...) {
        exception_finding(o, "uncaught exception of unknown type");
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    g_running = false;
}

// --- mutations ----------------------------------------------------------------

class Mutator {
public:
    Mutator(std::uint64_t seed, const std::vector<Bytes>& corpus, std::size_t max_len)
        : rng_(seed), corpus_(corpus), max_len_(max_len) {}

    Bytes next() {
        Bytes b = corpus_[below(corpus_.size())];
        const std::size_t n = 1 + below(4);
        for (std::size_t i = 0; i < n; ++i) mutate(b);
        if (b.size() > max_len_) b.resize(max_len_);
        return b;
    }

private:
    std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng_() % n); }

    const Bytes& other() { return corpus_[below(corpus_.size())]; }

    void mutate(Bytes& b) {
        static const std::uint8_t kBytes[] = {0, 1, 0x7f, 0x80, 0xff, '\n', '\r', '"', '\'', ',', ';', ' ', '\t',
                                              ':', '{', '}', '[', ']', '(', ')', '-', '$', '#', '0', '9', '.'};
        static const char* const kNumbers[] = {
            "0", "1", "-1", "2", "255", "65536", "2147483647", "2147483648", "4294967296", "-9223372036854775808",
            "4611686018427387904", "9223372036854775807", "18446744073709551615", "99999999999999999999",
            "1e308", "1e-320", "nan", "inf", "-0", "0.5"};
        static const std::uint64_t kWords[] = {0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000,
                                               0xffffffff, 0x100000000, 0x7fffffffffffffff, 0xffffffffffffffff};
        switch (below(b.empty() ? 3 : 10)) {
            case 0: {  // insert bytes: random or from the list
                const std::size_t at = below(b.size() + 1), n = 1 + below(8);
                for (std::size_t i = 0; i < n; ++i)
                    b.insert(b.begin() + static_cast<std::ptrdiff_t>(at),
                             below(2) ? static_cast<std::uint8_t>(rng_()) : kBytes[below(std::size(kBytes))]);
                break;
            }
            case 1: {  // insert a chunk of another corpus file
                const Bytes& o = other();
                if (o.empty()) break;
                const std::size_t from = below(o.size()), n = 1 + below(std::min<std::size_t>(64, o.size() - from));
                b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)), o.begin() + static_cast<std::ptrdiff_t>(from),
                         o.begin() + static_cast<std::ptrdiff_t>(from + n));
                break;
            }
            case 2: {  // splice: a prefix of this input and a suffix of another
                const Bytes& o = other();
                Bytes s(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)));
                s.insert(s.end(), o.begin() + static_cast<std::ptrdiff_t>(below(o.size() + 1)), o.end());
                b = std::move(s);
                break;
            }
            case 3:  // flip a bit
                b[below(b.size())] ^= static_cast<std::uint8_t>(1u << below(8));
                break;
            case 4:  // set a byte
                b[below(b.size())] = below(2) ? static_cast<std::uint8_t>(rng_()) : kBytes[below(std::size(kBytes))];
                break;
            case 5: {  // delete a range
                const std::size_t at = below(b.size()), n = 1 + below(std::min<std::size_t>(16, b.size() - at));
                b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
                break;
            }
            case 6: {  // copy a range over another place in the input
                const std::size_t from = below(b.size()), n = 1 + below(std::min<std::size_t>(32, b.size() - from));
                const Bytes chunk(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(from + n));
                b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)), chunk.begin(), chunk.end());
                break;
            }
            case 7:
            case 8: {  // replace a run of digits with an extreme number
                std::vector<std::size_t> starts;
                for (std::size_t i = 0; i < b.size(); ++i)
                    if (std::isdigit(b[i]) && (i == 0 || !std::isdigit(b[i - 1]))) starts.push_back(i);
                if (starts.empty()) break;
                const std::size_t at = starts[below(starts.size())];
                std::size_t end = at;
                while (end < b.size() && std::isdigit(b[end])) ++end;
                const std::string num = kNumbers[below(std::size(kNumbers))];
                b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(end));
                b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), num.begin(), num.end());
                break;
            }
            default: {  // overwrite 1, 2, 4 or 8 bytes with a little-endian extreme value
                const std::size_t width = std::size_t{1} << below(4);
                if (b.size() < width) break;
                const std::uint64_t v = kWords[below(std::size(kWords))];
                const std::size_t at = below(b.size() - width + 1);
                for (std::size_t i = 0; i < width; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
            }
        }
    }

    std::mt19937_64 rng_;  // fully specified by the standard: the same inputs everywhere
    const std::vector<Bytes>& corpus_;
    std::size_t max_len_;
};

std::vector<fs::path> corpus_files(const std::vector<fs::path>& inputs) {
    std::vector<fs::path> files;
    for (const auto& in : inputs) {
        std::error_code ec;
        if (fs::is_directory(in, ec)) {
            std::vector<fs::path> found;
            for (const auto& e : fs::recursive_directory_iterator(in))
                if (e.is_regular_file()) found.push_back(e.path());
            std::sort(found.begin(), found.end());
            files.insert(files.end(), found.begin(), found.end());
        } else if (fs::is_regular_file(in, ec)) {
            files.push_back(in);
        } else {
            usage("no such file or folder: " + in.string());
        }
    }
    return files;
}

Bytes read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
    g_target = fs::path(argv[0]).filename().string();
    Options o = parse_args(argc, argv);
#ifndef MITHRIL_FUZZ_ASAN
    // A memory limit turns runaway allocations into std::bad_alloc, a finding
    // (ASan reserves far more address space than this, so not under ASan).
    if (o.rss_limit_mb > 0) {
        const rlim_t bytes = static_cast<rlim_t>(o.rss_limit_mb) << 20;
        rlimit lim{bytes, bytes};
        setrlimit(RLIMIT_AS, &lim);
    }
#endif
    std::vector<Bytes> corpus;
    std::size_t largest = 0;
    for (const auto& p : corpus_files(o.inputs)) {
        corpus.push_back(read_file(p));
        largest = std::max(largest, corpus.back().size());
    }
    if (corpus.empty()) usage("the corpus is empty");
    if (o.max_len == 0) o.max_len = std::max<std::size_t>(4096, 2 * largest);

    install_crash_handlers(o);
    std::thread dog(watchdog, std::cref(o));

    const auto start = Clock::now();
    for (const auto& input : corpus) run_one(o, input);
    std::size_t mutants = 0;
    Mutator m(o.seed, corpus, o.max_len);
    const auto budget = std::chrono::duration<double>(o.seconds);
    while (Clock::now() - start < budget) {
        run_one(o, m.next());
        ++mutants;
    }
    const double took = std::chrono::duration<double>(Clock::now() - start).count();
    g_stop = true;
    dog.join();
    std::printf("%s: %zu corpus files and %zu mutated inputs in %.1f s (seed %llu): ", g_target.c_str(), corpus.size(),
                mutants, took, static_cast<unsigned long long>(o.seed));
    if (g_seen.empty()) {
        std::printf("no findings\n");
        return 0;
    }
    std::printf("%zu distinct findings, saved in %s\n", g_seen.size(), o.artifacts.c_str());
    return 1;
}
