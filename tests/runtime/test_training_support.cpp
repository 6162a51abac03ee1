// test_training_support.cpp - the reporting side of `mithril train`:
// classification metrics (against numpy / sklearn definitions in
// metrics_ref.py), the progress display (fake clock), the run report files
// (parsed by Python's json, csv and xml.dom.minidom) and checkpoints (keep,
// latest by step number, temp leftovers, model mismatch, failed writes).
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "mithril/rt/checkpoint.h"
#include "mithril/rt/file_io.h"
#include "mithril/rt/init.h"
#include "mithril/rt/metrics.h"
#include "mithril/rt/npy.h"
#include "mithril/rt/progress.h"
#include "mithril/rt/report.h"
#include "mithril/rt/safetensors.h"
#include "test_support.h"

using namespace mithril::rt;
using Catch::Contains;
using rt_test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

void run_reference(const std::string& mode, const TempDir& dir) {
    std::string output;
    const int rc = rt_test::run_python("metrics_ref.py", {mode, dir.path().string()}, output);
    INFO(output);
    REQUIRE(rc == 0);
}

// Random logits for `classes` classes with the awkward cases in them: class
// `never` is never predicted (but is a label), class classes-1 is neither
// predicted nor a label, rows with tied maxima, rows of all-equal values,
// quantized values (many top-k ties) and, when with_nan, a few NaN logits.
void make_logits(std::int64_t n, std::int64_t classes, std::int64_t never, bool with_nan, std::vector<float>& logits,
                 std::vector<std::int64_t>& labels) {
    Rng rng(20261124);
    logits.assign(static_cast<std::size_t>(n * classes), 0.f);
    labels.assign(static_cast<std::size_t>(n), 0);
    for (std::int64_t i = 0; i < n; ++i) {
        float* row = logits.data() + i * classes;
        for (std::int64_t c = 0; c < classes; ++c) row[c] = static_cast<float>(std::round(rng.normal() * 4) / 2);
        row[never] = -50.f;
        row[classes - 1] = -60.f;
        labels[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(rng.uniform() * static_cast<double>(classes - 1));
        if (i % 17 == 3) {  // a tie for the maximum between two classes
            row[1] = row[4] = 9.f;
        }
        if (i % 23 == 5)  // all equal except the two excluded classes
            for (std::int64_t c = 0; c < classes; ++c)
                if (c != never && c != classes - 1) row[c] = 0.25f;
        if (with_nan && i % 31 == 7) row[2] = std::nanf("");
    }
}

void check_against_numpy(const ClassificationMetrics& m, const TempDir& dir, std::int64_t k) {
    const Tensor ref = load_npy(dir / "ref.npy");
    const double* r = ref.data<double>();
    const double topk = k == 5 ? r[1] : k == 3 ? r[2] : r[3];
    CHECK(m.accuracy() == Approx(r[0]).epsilon(1e-12));
    CHECK(m.top_k_accuracy() == Approx(topk).epsilon(1e-12));
    CHECK(m.precision_macro() == Approx(r[4]).epsilon(1e-12));
    CHECK(m.recall_macro() == Approx(r[5]).epsilon(1e-12));
    CHECK(m.f1_macro() == Approx(r[6]).epsilon(1e-12));
    const Tensor conf = load_npy(dir / "confusion.npy");
    const auto ours = m.confusion();
    REQUIRE(static_cast<std::int64_t>(ours.size()) == conf.numel());
    for (std::size_t i = 0; i < ours.size(); ++i) CHECK(ours[i] == conf.data<std::int64_t>()[i]);
}

// Everything written to a FILE* so far.
std::string contents(std::FILE* f) {
    std::fflush(f);
    const long size = std::ftell(f);
    std::string s(static_cast<std::size_t>(size), '\0');
    std::rewind(f);
    const std::size_t got = std::fread(s.data(), 1, s.size(), f);
    s.resize(got);
    std::fseek(f, 0, SEEK_END);
    return s;
}

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> out;
    std::size_t begin = 0;
    while (begin < s.size()) {
        const std::size_t end = s.find('\n', begin);
        out.push_back(s.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
        if (end == std::string::npos) break;
        begin = end + 1;
    }
    return out;
}

std::size_t count_char(const std::string& s, char c) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), c)); }

Tensor filled(Shape shape, float start) {
    Tensor t = Tensor::zeros(DType::Float32, std::move(shape));
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = start + static_cast<float>(i);
    return t;
}

std::vector<std::string> temp_leftovers(const TempDir& dir) {
    std::vector<std::string> out;
    for (const auto& name : dir.entries())
        if (name.find(".tmp-") != std::string::npos) out.push_back(name);
    return out;
}

}  // namespace

// --- metrics ----------------------------------------------------------------

TEST_CASE("metrics: accuracy, top-k, macro P/R/F1 and confusion match numpy/sklearn on random logits",
          "[training-support]") {
    const std::int64_t n = 613, classes = 9, never = 6;
    for (bool with_nan : {false, true}) {
        INFO("with NaN logits: " << with_nan);
        std::vector<float> logits;
        std::vector<std::int64_t> labels;
        make_logits(n, classes, never, with_nan, logits, labels);
        TempDir dir;
        save_npy(dir / "logits.npy", Tensor::borrow(logits.data(), DType::Float32, {n, classes}));
        save_npy(dir / "labels.npy", Tensor::borrow(labels.data(), DType::Int64, {n}));
        run_reference("metrics", dir);

        for (std::int64_t k : {5, 3, 1}) {
            INFO("top-" << k);
            ClassificationMetrics m(classes, k);
            // Uneven batches, including an empty one.
            const std::int64_t cuts[] = {0, 100, 100, 357, 613};
            for (std::size_t b = 0; b + 1 < std::size(cuts); ++b)
                m.add(logits.data() + cuts[b] * classes, labels.data() + cuts[b], cuts[b + 1] - cuts[b]);
            CHECK(m.count() == n);
            check_against_numpy(m, dir, k);
            // The class that is never predicted is in the confusion matrix as an empty column.
            const auto conf = m.confusion();
            std::int64_t column = 0, row = 0;
            for (std::int64_t t = 0; t < classes; ++t) column += conf[static_cast<std::size_t>(t * classes + never)];
            for (std::int64_t p = 0; p < classes; ++p) row += conf[static_cast<std::size_t>(never * classes + p)];
            CHECK(column == 0);
            CHECK(row > 0);
            if (k == 1) CHECK(m.top_k_accuracy() == m.accuracy());

            // The double overload gives the same numbers.
            std::vector<double> wide(logits.begin(), logits.end());
            ClassificationMetrics md(classes, k);
            md.add(wide.data(), labels.data(), n);
            CHECK(md.accuracy() == m.accuracy());
            CHECK(md.top_k_accuracy() == m.top_k_accuracy());
            CHECK(md.f1_macro() == m.f1_macro());
            CHECK(md.confusion() == m.confusion());
        }
    }
}

TEST_CASE("metrics: small hand-checked case, ties, k clipped, loss mean, reset and empty state", "[training-support]") {
    // 3 classes; rows: tie 0/1 -> predicts 0; clear 2; all equal -> 0; clear 1.
    const float logits[] = {1, 1, 0, 0, 0, 5, 2, 2, 2, 0, 3, 1};
    const std::int64_t labels[] = {1, 2, 0, 0};
    ClassificationMetrics m(3, 10);
    CHECK(m.top_k() == 3);
    CHECK(std::isnan(m.accuracy()));
    CHECK(std::isnan(m.loss()));
    CHECK(std::isnan(m.f1_macro()));
    m.add(logits, labels, 4);
    m.add_loss(2.0, 4);
    m.add_loss(1.0, 2);
    CHECK(m.count() == 4);
    CHECK(m.accuracy() == Approx(0.5));  // rows 1 and 2 right
    CHECK(m.top_k_accuracy() == 1.0);    // k clipped to 3: everything is in the top 3
    CHECK(m.loss() == Approx(0.5));
    // Predictions 0, 2, 0, 1 vs labels 1, 2, 0, 0:
    // class 0: tp 1, predicted 2, actual 2 -> P 0.5 R 0.5 F1 0.5
    // class 1: tp 0, predicted 1, actual 1 -> 0, 0, 0
    // class 2: tp 1, predicted 1, actual 1 -> 1, 1, 1
    CHECK(m.precision_macro() == Approx(0.5));
    CHECK(m.recall_macro() == Approx(0.5));
    CHECK(m.f1_macro() == Approx(0.5));
    CHECK(m.confusion() == std::vector<std::int64_t>{1, 1, 0, 1, 0, 0, 0, 0, 1});

    // Top-2 with ties broken towards the lower index: row 0 (label 1) ties 0 and 1 -> ranks 0, 1: hit.
    // Row 2 (label 0, all equal) -> rank 0: hit. Row 3 (label 0, logits 0 3 1) -> rank 2: miss.
    ClassificationMetrics m2(3, 2);
    m2.add(logits, labels, 4);
    CHECK(m2.top_k_accuracy() == Approx(0.75));

    m.reset();
    CHECK(m.count() == 0);
    CHECK(std::isnan(m.accuracy()));
    CHECK(std::isnan(m.loss()));
    CHECK(m.confusion() == std::vector<std::int64_t>(9, 0));
}

TEST_CASE("metrics: bad arguments are refused with a clear message", "[training-support]") {
    REQUIRE_THROWS_WITH(ClassificationMetrics(0), Contains("number of classes must be at least 1, got 0"));
    REQUIRE_THROWS_WITH(ClassificationMetrics(10, 0), Contains("top-k must be at least 1"));
    ClassificationMetrics m(3);
    const float logits[] = {1, 0, 0, 0, 1, 0};
    const std::int64_t bad[] = {0, 3};
    REQUIRE_THROWS_WITH(m.add(logits, bad, 2), Contains("label 3 of sample 1 in the batch is outside [0, 3)"));
    CHECK(m.count() == 0);  // the batch was not counted at all
    const std::int64_t negative[] = {-100, 0};
    REQUIRE_THROWS_WITH(m.add(logits, negative, 2), Contains("label -100 of sample 0"));
    REQUIRE_THROWS_WITH(m.add(logits, bad, -1), Contains("negative batch size"));
    REQUIRE_THROWS_WITH(m.add_loss(1.0, -1), Contains("negative sample count"));

    // Many classes: no confusion matrix, the rest still works.
    const std::int64_t classes = ClassificationMetrics::kMaxConfusionClasses + 1;
    ClassificationMetrics big(classes);
    std::vector<float> row(static_cast<std::size_t>(classes), 0.f);
    row[7] = 1.f;
    const std::int64_t label = 7;
    big.add(row.data(), &label, 1);
    CHECK(big.accuracy() == 1.0);
    CHECK(big.f1_macro() == 1.0);
    REQUIRE_THROWS_WITH(big.confusion(), Contains("no confusion matrix is kept for 2049 classes"));
}

// --- progress ---------------------------------------------------------------

TEST_CASE("progress: terminal mode redraws one line with \\r at most 10 times a second", "[training-support]") {
    std::FILE* f = std::tmpfile();
    REQUIRE(f);
    double t = 0;
    {
        Progress p(100, "epoch 3/10", true, f, [&] { return t; });
        std::size_t draws = 0;
        for (std::int64_t s = 1; s <= 100; ++s) {
            t = static_cast<double>(s) / 32;  // 1/32 s per step: a redraw every 4 steps (0.125 s)
            const std::size_t before = count_char(contents(f), '\r');
            p.update(s, 0.4123, 1234.4);
            const std::string out = contents(f);
            if (count_char(out, '\r') > before) ++draws;
            if (s == 45) {
                // Drawn (45 = 1 + 4 * 11); ETA = 45/32 s / 45 steps * 55 steps = 1.72 s.
                CHECK(out.substr(out.rfind('\r')) ==
                      "\repoch 3/10 [#########...........] 45/100  loss 0.4123  1234 samples/s  ETA 0:02");
            }
        }
        CHECK(draws == 26);  // steps 1, 5, ..., 97 and the last one
        const std::string out = contents(f);
        CHECK(out.find('\n') == std::string::npos);
        CHECK(out.substr(out.rfind('\r')) ==
              "\repoch 3/10 [####################] 100/100  loss 0.4123  1234 samples/s  ETA 0:00");
        const std::size_t bar_width = out.size() - out.rfind('\r') - 1;
        p.finish("done  val_loss 0.3811");
        p.update(100, 0.1, 1);  // ignored after finish
        const std::string all = contents(f);
        const std::string last = all.substr(all.rfind('\r') + 1);
        CHECK(last.starts_with("epoch 3/10 done  val_loss 0.3811   "));
        CHECK(last.size() == bar_width + 1);  // padded over the whole bar, then '\n'
        CHECK(last.back() == '\n');
        CHECK(count_char(all, '\n') == 1);
    }
    std::fclose(f);

    // A bar left on screen (no finish) gets its newline when the Progress goes away;
    // unknown totals, tiny rates and losses, and ETAs over an hour.
    f = std::tmpfile();
    REQUIRE(f);
    {
        t = 0;
        Progress p(0, "warmup", true, f, [&] { return t; });
        p.update(5, 2.5e-5, 0.5);
        CHECK(contents(f) == "\rwarmup step 5  loss 2.500e-05  0.5 samples/s");
    }
    CHECK(contents(f).back() == '\n');
    std::fclose(f);
}

TEST_CASE("progress: log mode writes plain lines at the quarters or every 10 s, and the finish line",
          "[training-support]") {
    std::FILE* f = std::tmpfile();
    REQUIRE(f);
    double t = 0;
    {
        // A fast epoch (3.1 s): lines at 25%, 50%, 75% only.
        Progress p(100, "epoch 3/10", false, f, [&] { return t; });
        for (std::int64_t s = 1; s <= 100; ++s) {
            t = static_cast<double>(s) / 32;
            p.update(s, 0.4123, 1234);
        }
        p.finish("done  loss 0.4012  val_loss 0.3811  3.1s");
        const std::string out = contents(f);
        CHECK(out.find('\r') == std::string::npos);
        const auto lines = split_lines(out);
        REQUIRE(lines.size() == 4);
        // ETA at step 25: 25/32 s / 25 * 75 = 2.34 s.
        CHECK(lines[0] == "epoch 3/10 25/100 (25%)  loss 0.4123  1234 samples/s  ETA 0:02");
        CHECK(lines[1].starts_with("epoch 3/10 50/100 (50%)  loss 0.4123"));
        CHECK(lines[2].starts_with("epoch 3/10 75/100 (75%)"));
        CHECK(lines[3] == "epoch 3/10 done  loss 0.4012  val_loss 0.3811  3.1s");
    }
    std::fclose(f);

    f = std::tmpfile();
    REQUIRE(f);
    {
        // A slow epoch (1 s per step): a line every 10 s, plus the quarters.
        t = 0;
        Progress p(100, "epoch 1/2", false, f, [&] { return t; });
        for (std::int64_t s = 1; s <= 100; ++s) {
            t = static_cast<double>(s);
            p.update(s, 1.5, 12.5);
        }
        p.finish("done");
        std::vector<std::int64_t> steps;
        for (const auto& line : split_lines(contents(f))) {
            long long step = 0;
            if (std::sscanf(line.c_str(), "epoch 1/2 %lld/100", &step) == 1) steps.push_back(step);
        }
        CHECK(steps == std::vector<std::int64_t>{10, 20, 25, 35, 45, 50, 60, 70, 75, 85, 95});
        CHECK(split_lines(contents(f)).back() == "epoch 1/2 done");
        CHECK(split_lines(contents(f)).front() == "epoch 1/2 10/100 (10%)  loss 1.5000  12.5 samples/s  ETA 1:30");
    }
    std::fclose(f);

    f = std::tmpfile();
    REQUIRE(f);
    {
        t = 0;
        Progress p(10000, "e", false, f, [&] { return t; });
        t = 10;
        p.update(1, kNaN, 0.1);
        CHECK(contents(f) == "e 1/10000 (0%)  loss nan  0.1 samples/s  ETA 27:46:30\n");
    }
    CHECK(count_char(contents(f), '\n') == 1);  // no extra newline in log mode
    std::fclose(f);

    REQUIRE_THROWS_WITH(Progress(-1, "x", false, stderr, [] { return 0.0; }), Contains("negative number of steps"));
    REQUIRE_THROWS_WITH(Progress(1, "x", false, nullptr, [] { return 0.0; }), Contains("no output stream"));
    CHECK(Progress::stderr_is_terminal() == (isatty(STDERR_FILENO) == 1));
}

// --- run report -------------------------------------------------------------

TEST_CASE("report: metrics.jsonl, metrics.csv and curves.svg are valid and reload for --resume",
          "[training-support]") {
    TempDir dir;
    const fs::path rundir = dir / "run1";
    {
        RunReport r(rundir);
        r.load();  // nothing there yet
        CHECK(r.records().empty());
        r.add({1, 2.25, 2.0, 0.125, 10.5, {{"lr", 0.01}, {"val_top5", 0.5}}});
        r.add({2, kNaN, kInf, 0.25, 11, {{"lr", 0.005}, {"val_top5", 0.75}}});
        r.add({3, 1.0 / 3, 0.3811, 0.9012, 9.75, {{"lr", 0.0025}, {"val_f1", 0.8}}});
        CHECK(r.records().size() == 3);
    }
    for (const char* name : {"metrics.jsonl", "metrics.csv", "curves.svg"}) CHECK(fs::exists(rundir / name));
    CHECK(split_lines(rt_test::read_bytes(rundir / "metrics.jsonl"))[0] ==
          "{\"epoch\":1,\"train_loss\":2.25,\"val_loss\":2,\"val_accuracy\":0.125,\"seconds\":10.5,\"lr\":0.01,"
          "\"val_top5\":0.5}");
    CHECK(split_lines(rt_test::read_bytes(rundir / "metrics.csv"))[2] == "2,nan,inf,0.25,11,0.005,0.75,");

    // Python checks: json lines, csv columns/values, svg well-formed with finite coordinates.
    TempDir check;
    for (const char* name : {"metrics.jsonl", "metrics.csv", "curves.svg"}) fs::copy_file(rundir / name, check / name);
    rt_test::write_bytes(check / "expected.json",
                         R"({"columns": ["epoch","train_loss","val_loss","val_accuracy","seconds","lr","val_top5","val_f1"],
  "rows": [[1, 2.25, 2.0, 0.125, 10.5, 0.01, 0.5, "absent"],
           [2, null, null, 0.25, 11, 0.005, 0.75, "absent"],
           [3, 0.3333333333333333, 0.3811, 0.9012, 9.75, 0.0025, "absent", 0.8]]})");
    // One epoch, none, and many, through the same renderer.
    std::vector<EpochRecord> many;
    for (std::int64_t e = 1; e <= 500; ++e)
        many.push_back({e, 2.0 / static_cast<double>(e), 2.2 / static_cast<double>(e) + 0.1,
                        1.0 - 1.0 / static_cast<double>(e + 1), 1.0, {}});
    many[100].val_loss = kNaN;  // a gap in the curve
    rt_test::write_bytes(check / "many.svg", render_curves_svg(many, "Training run <many> & \"more\""));
    rt_test::write_bytes(check / "one.svg", render_curves_svg({{7, 0.5, 0.6, 0.7, 1.0, {}}}, "one epoch"));
    rt_test::write_bytes(check / "none.svg", render_curves_svg({}, "no epochs"));
    rt_test::write_bytes(check / "flat.svg",
                         render_curves_svg({{1, 0, 0, 1, 1, {}}, {2, 0, 0, 1, 1, {}}}, "perfect and flat"));
    run_reference("report", check);
    const std::string svg = rt_test::read_bytes(rundir / "curves.svg");
    CHECK_THAT(svg, Contains("Training run run1"));
    CHECK_THAT(svg, Contains("train loss"));
    CHECK_THAT(svg, Contains("val accuracy"));
    CHECK_THAT(svg, Contains("best val accuracy 0.9012 at epoch 3"));

    // --resume: load, truncate to the checkpoint's epoch, continue.
    RunReport r(rundir);
    r.load();
    REQUIRE(r.records().size() == 3);
    CHECK(r.records()[0].train_loss == 2.25);
    CHECK(std::isnan(r.records()[1].train_loss));
    CHECK(std::isnan(r.records()[1].val_loss));  // inf was written as null
    CHECK(r.records()[2].train_loss == 1.0 / 3);  // shortest form reads back exactly
    REQUIRE(r.records()[2].extra.size() == 2);
    CHECK(r.records()[2].extra[1] == std::pair<std::string, double>{"val_f1", 0.8});
    REQUIRE_THROWS_WITH(r.add({3, 1, 1, 1, 1, {}}), Contains("epoch 3 is not after the last recorded epoch 3"));
    r.truncate(5);  // nothing to drop
    CHECK(r.records().size() == 3);
    r.truncate(1);
    CHECK(r.records().size() == 1);
    CHECK(split_lines(rt_test::read_bytes(rundir / "metrics.jsonl")).size() == 1);
    CHECK(split_lines(rt_test::read_bytes(rundir / "metrics.csv")).size() == 2);
    r.add({2, 0.5, 0.5, 0.5, 1, {}});
    RunReport again(rundir);
    again.load();
    REQUIRE(again.records().size() == 2);
    CHECK(again.records()[1].epoch == 2);
    CHECK(again.records()[1].train_loss == 0.5);
    CHECK(temp_leftovers(dir).empty());
}

TEST_CASE("report: bad records and bad metrics.jsonl lines are refused by name and line", "[training-support]") {
    TempDir dir;
    RunReport r(dir.path());
    REQUIRE_THROWS_WITH(r.add({1, 1, 1, 1, 1, {{"val_loss", 1}}}), Contains("'val_loss' has the name of a fixed column"));
    REQUIRE_THROWS_WITH(r.add({1, 1, 1, 1, 1, {{"a,b", 1}}}), Contains("names may hold only letters"));
    REQUIRE_THROWS_WITH(r.add({1, 1, 1, 1, 1, {{"lr", 1}, {"lr", 2}}}), Contains("'lr' is given twice"));
    REQUIRE_THROWS_WITH(r.add({1, 1, 1, 1, 1, {{"", 1}}}), Contains("with an empty name"));
    CHECK(r.records().empty());

    const std::string good = "{\"epoch\":1,\"train_loss\":1e-3,\"val_loss\":null,\"val_accuracy\":0.5,\"seconds\":-2.5E+1}\n";
    const std::pair<std::string, std::string> bad[] = {
        {"{\"epoch\":2,\"train_loss\":1,\"val_loss\":1,\"val_accuracy\":1}", "missing key \"seconds\""},
        {"{\"epoch\":2.5,\"train_loss\":1,\"val_loss\":1,\"val_accuracy\":1,\"seconds\":1}", "value of \"epoch\" is not an integer"},
        {"{\"epoch\":2,\"train_loss\":\"x\",\"val_loss\":1,\"val_accuracy\":1,\"seconds\":1}",
         "value of \"train_loss\" is not a number or null"},
        {"{\"epoch\":1,\"train_loss\":1,\"val_loss\":1,\"val_accuracy\":1,\"seconds\":1}", "epoch 1 follows epoch 1"},
        {"{\"epoch\":2,\"train_loss\":1,\"val_loss\":1,\"val_accuracy\":1,\"seconds\":1,\"seconds\":2}",
         "key \"seconds\" appears twice"},
        {"{\"epoch\":2,\"train_loss\":1,\"val_loss\":1,\"val_accuracy\":1,\"seconds\":1} x", "unexpected text"},
        {"{\"epoch\":2,\"train_loss\":1", "expected '}'"},
    };
    for (const auto& [line, message] : bad) {
        INFO(line);
        rt_test::write_bytes(dir / "metrics.jsonl", good + line + "\n");
        RunReport rr(dir.path());
        REQUIRE_THROWS_WITH(rr.load(), Contains("metrics file " + (dir / "metrics.jsonl").string() + " line 2") &&
                                           Contains(message));
    }
    rt_test::write_bytes(dir / "metrics.jsonl", good + "\n  \n");
    RunReport ok(dir.path());
    ok.load();
    REQUIRE(ok.records().size() == 1);
    CHECK(ok.records()[0].train_loss == 1e-3);
    CHECK(std::isnan(ok.records()[0].val_loss));
    CHECK(ok.records()[0].seconds == -25);
}

// --- checkpoints ------------------------------------------------------------

TEST_CASE("checkpoint: fingerprint is 64-bit FNV-1a", "[training-support]") {
    // Test vectors of the FNV reference (http://www.isthe.com/chongo/tech/comp/fnv/).
    CHECK(fingerprint("") == "cbf29ce484222325");
    CHECK(fingerprint("a") == "af63dc4c8601ec8c");
    CHECK(fingerprint("foobar") == "85944171f73967e8");
    CHECK(fingerprint("{\"name\":\"lenet\"}") != fingerprint("{\"name\":\"mlp\"}"));
}

TEST_CASE("checkpoint: save, keep, latest by step number, leftovers ignored, load", "[training-support]") {
    TempDir dir;
    const fs::path rundir = dir / "run1";
    CHECK_FALSE(latest_checkpoint(rundir));  // no folder yet
    const std::string fp = fingerprint("model text");
    const std::map<std::string, std::string> md{{"model", fp}, {"model_name", "lenet"}, {"epoch", "1"}};
    for (std::int64_t step : {1, 2, 3, 4, 5}) {
        const fs::path p = save_checkpoint(rundir, step, {{"w", filled({2, 3}, static_cast<float>(step))}}, md);
        CHECK(p == rundir / ("checkpoint-" + std::to_string(step) + ".safetensors"));
    }
    std::vector<std::int64_t> steps;
    for (const auto& [s, p] : list_checkpoints(rundir)) steps.push_back(s);
    CHECK(steps == std::vector<std::int64_t>{3, 4, 5});  // keep = 3

    // 9 then 10: latest by number (string order would say 9), whatever the mtimes.
    save_checkpoint(rundir, 10, {{"w", filled({2, 3}, 10)}}, md, 0);
    save_checkpoint(rundir, 9, {{"w", filled({2, 3}, 9)}}, md, 0);
    REQUIRE(latest_checkpoint(rundir));
    CHECK(*latest_checkpoint(rundir) == rundir / "checkpoint-10.safetensors");
    // Writing step 9 with keep 2 keeps one smaller step (5); 10 is larger and stays.
    save_checkpoint(rundir, 9, {{"w", filled({2, 3}, 9)}}, md, 2);
    steps.clear();
    for (const auto& [s, p] : list_checkpoints(rundir)) steps.push_back(s);
    CHECK(steps == std::vector<std::int64_t>{5, 9, 10});

    // Leftovers of interrupted writes and other names are ignored.
    rt_test::write_bytes(rundir / "checkpoint-99.safetensors.tmp-0123abcd", "partial");
    rt_test::write_bytes(rundir / "checkpoint-100.safetensors.tmp", "partial");
    rt_test::write_bytes(rundir / "checkpoint-011.safetensors", "x");
    rt_test::write_bytes(rundir / "checkpoint-x.safetensors", "x");
    rt_test::write_bytes(rundir / "checkpoint-99999999999999999999.safetensors", "x");
    fs::create_directories(rundir / "checkpoint-50.safetensors");
    CHECK(*latest_checkpoint(rundir) == rundir / "checkpoint-10.safetensors");
    CHECK(list_checkpoints(rundir).size() == 3);
    CHECK(checkpoint_step("a/checkpoint-0.safetensors") == 0);
    CHECK_FALSE(checkpoint_step("checkpoint-.safetensors"));
    CHECK_FALSE(checkpoint_step("checkpoint-5.safetensors.tmp"));

    const Checkpoint c = load_checkpoint(rundir / "checkpoint-10.safetensors");
    REQUIRE(c.tensors.size() == 1);
    CHECK(c.tensors[0].first == "w");
    CHECK(c.tensors[0].second.shape() == Shape{2, 3});
    CHECK(c.tensors[0].second.data<float>()[5] == 15.f);
    CHECK(c.metadata.at("step") == "10");
    CHECK(c.metadata.at("model") == fp);
    CHECK(c.metadata.at("epoch") == "1");
    CHECK(read_checkpoint_metadata(rundir / "checkpoint-10.safetensors") == c.metadata);

    REQUIRE_THROWS_WITH(save_checkpoint(rundir, -1, {}, md), Contains("negative step -1"));
    rt_test::write_bytes(dir / "afile", "x");
    REQUIRE_THROWS_WITH(save_checkpoint(dir / "afile", 1, {}, md), Contains("afile"));
    REQUIRE_THROWS_WITH(latest_checkpoint(dir / "afile"), Contains("is a file, not a folder"));
}

TEST_CASE("checkpoint: temporaries of interrupted writes are removed, nothing else", "[training-support]") {
    TempDir dir;
    const fs::path rundir = dir / "run1";
    CHECK(remove_stale_temporaries(rundir).empty());  // no folder yet
    const std::map<std::string, std::string> md{{"model", "m"}};
    save_checkpoint(rundir, 1, {{"w", filled({4}, 1)}}, md);

    // A write interrupted after its temp file was created: keep a copy of the temp
    // file (named by atomic_write_file itself) and put it back after the failure.
    std::string temp_name;
    try {
        atomic_write_file(rundir / "checkpoint-2.safetensors", [&](FileWriter& w) {
            w.write("partial");
            for (const auto& e : fs::directory_iterator(rundir))
                if (e.path().filename().string().starts_with("checkpoint-2.safetensors.tmp-"))
                    temp_name = e.path().filename().string();
            fs::copy_file(rundir / temp_name, dir / "kept");
            throw Error("killed");
        });
    } catch (const Error&) {
    }
    REQUIRE(temp_name.size() == std::string("checkpoint-2.safetensors.tmp-").size() + 8);
    fs::rename(dir / "kept", rundir / temp_name);
    rt_test::write_bytes(rundir / "checkpoint-30.safetensors.tmp-0123abcd", "partial");
    const std::vector<std::string> others{
        "checkpoint-1.safetensors",                // a checkpoint
        "checkpoint-2.safetensors.tmp-0123abc",    // 7 hex digits
        "checkpoint-2.safetensors.tmp-0123ABCD",   // not written by us: upper case
        "checkpoint-2.safetensors.tmp-0123abcde",  // 9 hex digits
        "checkpoint-02.safetensors.tmp-0123abcd",  // not a checkpoint name
        "checkpoint-x.safetensors.tmp-0123abcd",
        "metrics.jsonl.tmp-0123abcd",              // another file's temporary
        "weights.safetensors.tmp-0123abcd",
        "notes.txt",
    };
    for (const auto& name : others)
        if (!fs::exists(rundir / name)) rt_test::write_bytes(rundir / name, "x");
    fs::create_directories(rundir / "checkpoint-4.safetensors.tmp-00000000");  // a folder: left alone

    const auto removed = remove_stale_temporaries(rundir);
    REQUIRE(removed.size() == 2);
    CHECK(removed[0] == rundir / temp_name);
    CHECK(removed[1] == rundir / "checkpoint-30.safetensors.tmp-0123abcd");
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(rundir)) left.push_back(e.path().filename().string());
    std::sort(left.begin(), left.end());
    std::vector<std::string> expected = others;
    expected.push_back("checkpoint-4.safetensors.tmp-00000000");
    std::sort(expected.begin(), expected.end());
    CHECK(left == expected);
    CHECK(remove_stale_temporaries(rundir).empty());
    CHECK(*latest_checkpoint(rundir) == rundir / "checkpoint-1.safetensors");
}

TEST_CASE("checkpoint: a run folder of another model is refused", "[training-support]") {
    TempDir dir;
    const fs::path rundir = dir / "run1";
    check_rundir(rundir, "0000000000000000", "mlp");  // missing folder: fine
    const std::string lenet = fingerprint("lenet model"), mlp = fingerprint("mlp model");
    save_checkpoint(rundir, 1, {{"w", filled({1}, 0)}}, {{"model", lenet}, {"model_name", "lenet"}});
    check_rundir(rundir, lenet, "lenet");
    check_rundir(rundir, lenet);
    REQUIRE_THROWS_WITH(check_rundir(rundir, mlp, "mlp"),
                        "run folder " + rundir.string() + " holds checkpoints of model 'lenet' (fingerprint " + lenet +
                            "), not of this model 'mlp' (fingerprint " + mlp + "): use another -o folder or delete it");
    save_checkpoint(rundir, 2, {{"w", filled({1}, 0)}}, {});
    REQUIRE_THROWS_WITH(check_rundir(rundir, lenet, "lenet"),
                        Contains("holds checkpoint-2.safetensors, which does not say which model it belongs to"));
    fs::remove(rundir / "checkpoint-2.safetensors");
    rt_test::write_bytes(rundir / "checkpoint-3.safetensors", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8));
    REQUIRE_THROWS_WITH(check_rundir(rundir, lenet), Contains("checkpoint-3.safetensors: header length"));
}

TEST_CASE("checkpoint: a failed write throws and leaves the previous checkpoint intact", "[training-support]") {
    TempDir dir;
    const fs::path rundir = dir / "run1";
    const std::map<std::string, std::string> md{{"model", "m"}};
    save_checkpoint(rundir, 1, {{"w", filled({4}, 1)}}, md, 1);
    const std::string before = rt_test::read_bytes(rundir / "checkpoint-1.safetensors");

    auto check_intact = [&] {
        CHECK(*latest_checkpoint(rundir) == rundir / "checkpoint-1.safetensors");
        CHECK(rt_test::read_bytes(rundir / "checkpoint-1.safetensors") == before);
        CHECK_FALSE(fs::exists(rundir / "checkpoint-2.safetensors"));
        for (const auto& e : fs::directory_iterator(rundir))
            CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
    };

    // The disk fills up in the middle of the write (a file size limit gives the
    // same EFBIG-style short write, and works for root too).
    {
        rlimit old{};
        REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
        const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit small = old;
        small.rlim_cur = 64 * 1024;
        REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
        std::string message;
        try {
            save_checkpoint(rundir, 2, {{"w", filled({1 << 20}, 0)}}, md, 1);
        } catch (const Error& e) {
            message = e.what();
        }
        setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
        CHECK_THAT(message, Contains("cannot write " + (rundir / "checkpoint-2.safetensors").string() + ": "));
        check_intact();
    }

    // A read-only folder (root may write anyway, so only checked for other users).
    if (geteuid() != 0) {
        fs::permissions(rundir, fs::perms::owner_read | fs::perms::owner_exec);
        std::string message;
        try {
            save_checkpoint(rundir, 2, {{"w", filled({4}, 2)}}, md, 1);
        } catch (const Error& e) {
            message = e.what();
        }
        fs::permissions(rundir, fs::perms::owner_all);
        CHECK_THAT(message, Contains("cannot write " + (rundir / "checkpoint-2.safetensors").string()) &&
                                Contains("Permission denied"));
        check_intact();
    }

    // After the failures, the next write works and prunes to keep = 1.
    save_checkpoint(rundir, 2, {{"w", filled({4}, 2)}}, md, 1);
    CHECK(*latest_checkpoint(rundir) == rundir / "checkpoint-2.safetensors");
    CHECK_FALSE(fs::exists(rundir / "checkpoint-1.safetensors"));
}
