// trainer.h - the training loop of generated training programs
// (`mithril compile --train`, `mithril train`, `mithril evaluate`).
//
// One loop for every model: a generated program has two classes, the
// training step (forward, loss, backward, optimizer update; BatchNorm in
// training mode) and the evaluation pass (forward and loss; BatchNorm's
// running statistics), and calls
//
//   mithril::rt::TrainConfig cfg;          // defaults compiled in from the model's `train:` section
//   mithril::rt::parse_train_args(argc, argv, cfg);
//   return mithril::rt::train_main<MlpTrain, Mlp>(cfg);
//
// Data: a table (CSV, optionally gzip-compressed, or .npy) of one sample per
// row, or a token file (uint16/int32, memory-mapped) for language models.
// Per epoch: a seeded shuffle of the training rows, batches (the last one
// partial), the learning-rate schedule per step, then validation, one record
// in RUNDIR/metrics.{jsonl,csv} and curves.svg, and a checkpoint (weights,
// BatchNorm statistics, optimizer state, step) written atomically. The data
// order and Dropout masks are functions of (seed, epoch), so `--resume`
// continues with exactly the weights an uninterrupted run would have.
#pragma once

#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mithril/rt/checkpoint.h"
#include "mithril/rt/dataset.h"
#include "mithril/rt/device.h"
#include "mithril/rt/error.h"
#include "mithril/rt/kernels/optim.h"
#include "mithril/rt/metrics.h"
#include "mithril/rt/profile.h"
#include "mithril/rt/progress.h"
#include "mithril/rt/report.h"
#include "mithril/rt/safetensors.h"
#include "mithril/rt/tensor.h"
#include "mithril/rt/threads.h"
#include "mithril/rt/timer.h"

namespace mithril::rt {

struct TrainConfig {
    // Data.
    std::string data;                 // .csv / .csv.gz, .npy (labels: `labels`) or a token file (format tokens)
    std::string labels;               // .npy labels for a .npy data file
    std::string label = "-1";         // CSV label column: a name, or an index (negative counts from the end)
    std::string format = "auto";      // auto (by the file name), csv, npy, tokens
    std::string token_dtype = "uint16";
    double val_split = 0.1;           // share of the rows (tokens: the end of the stream) held out
    // Loop.
    std::int64_t epochs = 10;
    std::int64_t batch_size = 32;
    std::uint64_t seed = 0;
    std::int64_t steps_per_epoch = 0;  // token data: batches per epoch (0: one pass over the tokens)
    std::int64_t val_batches = 0;      // token data: validation batches (0: one pass over the held-out tokens)
    // Optimizer (the kind is compiled in) and schedule.
    std::string optimizer = "adam";
    OptimHyper hyper;
    std::string schedule = "constant";  // constant, step, cosine
    std::int64_t warmup = 0;            // steps of linear warm-up from 0
    std::int64_t step_size = 1;         // step: epochs between decays
    double gamma = 0.1;                 // step: decay factor
    double min_lr = 0.0;                // cosine: the final learning rate
    // Output.
    std::string rundir = "run";
    bool resume = false;
    int keep = 3;                     // checkpoints kept
    std::int64_t top_k = 5;
    std::string weights;              // initial weights (safetensors); default: initialized from the seed
    std::string evaluate;             // evaluate these weights on `data` instead of training
    int threads = 0;
    std::int64_t bench = 0;           // > 0: time this many training steps (after a warm-up) and exit
    bool profile = false;             // with bench: time every layer of the timed steps (profile.h)
    int progress = -1;                // -1: a bar on a terminal, plain lines otherwise; 0: lines; 1: bar
    // Compiled in.
    std::string model_name, fingerprint;
    Shape sample_shape;               // the model input's shape without the batch dimension
    Shape target_shape;               // a target's shape without the batch dimension
    bool class_targets = true;        // integer class indices (CrossEntropy, NLL) or float targets
    std::int64_t classes = 0;         // size of the scores' last dimension
};

// Reads the program's options into `cfg` (which holds the compiled-in defaults). Prints --help and
// exits 0 for -h; throws Error for an unknown option or a bad value.
void parse_train_args(int argc, char** argv, TrainConfig& cfg);
// The learning rate at step `step` (1-based) of epoch `epoch` (1-based) of `total` steps.
double scheduled_lr(const TrainConfig& cfg, std::int64_t step, std::int64_t epoch, std::int64_t total);

// The training data, loaded once and split.
struct TrainData {
    bool tokens = false;
    Table table;                          // rows
    std::optional<TokenFile> stream;      // tokens
    std::vector<std::int64_t> train_rows, val_rows;
    std::int64_t token_split = 0;         // tokens [0, split) train, [split, size) validation
};
TrainData load_train_data(const TrainConfig& cfg, bool whole_for_evaluation);

namespace detail {

// Copies every weight of `Dst` from the same-named one of `Src` (the training step's weights into
// the evaluation pass's; optimizer state stays behind).
template <class Dst, class Src> void copy_weights(Dst& dst, Src& src) {
    if (dst.weight_data() == src.weight_data()) return;  // shared (share_weights)
    static const std::vector<std::pair<std::int64_t, std::int64_t>> plan = [] {
        std::map<std::string, std::int64_t> at;
        for (auto& w : Src::weights()) at[w.name] = w.offset;
        std::vector<std::pair<std::int64_t, std::int64_t>> p;
        for (auto& w : Dst::weights()) {
            auto it = at.find(w.name);
            if (it == at.end()) throw Error(std::string("internal: the training step has no weight '") + w.name + "'");
            std::int64_t n = static_cast<std::int64_t>(dtype_size(w.dtype));
            for (auto d : w.shape) n *= d;
            p.push_back({w.offset, it->second});
            p.push_back({n, 0});
        }
        return p;
    }();
    for (std::size_t i = 0; i < plan.size(); i += 2)
        std::memcpy(dst.weight_data() + plan[i].first, src.weight_data() + plan[i].second, static_cast<std::size_t>(plan[i + 1].first));
}

// True when Src's weight block holds every weight of Dst at Dst's offset (same
// name, dtype and shape): then Dst can read Src's block instead of a copy.
template <class Dst, class Src> bool same_weight_layout() {
    std::map<std::string, const typename Src::Weight*> at;
    for (auto& w : Src::weights()) at[w.name] = &w;
    if (Src::kWeightBytes < Dst::kWeightBytes) return false;
    for (auto& w : Dst::weights()) {
        auto it = at.find(w.name);
        if (it == at.end() || it->second->offset != w.offset || it->second->dtype != w.dtype ||
            it->second->shape != w.shape)
            return false;
    }
    return true;
}

template <class M> std::vector<std::pair<std::string, Tensor>> weight_tensors(M& m, bool with_optimizer) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (auto& w : M::weights())
        if (with_optimizer || !w.optimizer) out.emplace_back(w.name, Tensor::borrow(m.weight_data() + w.offset, w.dtype, w.shape));
    return out;
}

// Batch buffers, allocated once for the largest batch; each step views the first `b` rows.
struct Batch {
    Tensor x, y;
    DType x_dtype, y_dtype;
    Shape x_sample, y_sample;
    std::vector<Tensor> views(std::int64_t b, std::size_t targets) {
        Shape xs = {b}, ys = {b};
        xs.insert(xs.end(), x_sample.begin(), x_sample.end());
        ys.insert(ys.end(), y_sample.begin(), y_sample.end());
        std::vector<Tensor> v = {Tensor::borrow(x.raw_data(), x_dtype, xs)};
        for (std::size_t i = 0; i < targets; ++i) v.push_back(Tensor::borrow(y.raw_data(), y_dtype, ys));
        return v;
    }
};

std::int64_t numel_of(const Shape& s);
// Fills the first rows.size() samples of `batch` from the table (features converted to the input's dtype).
void fill_rows(Batch& batch, const Table& t, std::span<const std::int64_t> rows);
// Fills `b` windows of the token stream in [begin, end) (inputs and next-token targets).
void fill_windows(Batch& batch, const TokenFile& f, std::int64_t begin, std::int64_t end, std::int64_t b, Rng& rng);
// Metrics over a batch's scores (output 1 of the evaluation pass) against its class targets.
void add_scores(ClassificationMetrics& m, const void* scores, DType t, const Tensor& targets, std::int64_t rows);
bool interrupted();            // Ctrl-C was pressed (the loop stops after the step, keeping the last checkpoint)
void install_interrupt_handler();

}  // namespace detail

// Evaluation pass over rows (or token windows): loss and classification metrics.
template <class E>
ClassificationMetrics evaluate_model(E& eval, const TrainConfig& cfg, const TrainData& d, detail::Batch& batch, bool use_val) {
    ClassificationMetrics m(std::max<std::int64_t>(cfg.classes, 1), cfg.top_k);
    const std::size_t targets = E::inputs().size() - 1;
    auto run = [&](std::int64_t b) {
        auto in = batch.views(b, targets);
        auto dims = eval.bind(in);
        eval.run(in, dims);
        const Tensor& y = in[1];
        double loss = E::outputs()[0].dtype == DType::Float64 ? *static_cast<const double*>(eval.output(0))
                                                              : *static_cast<const float*>(eval.output(0));
        std::int64_t rows = b * std::max<std::int64_t>(1, detail::numel_of(cfg.target_shape));
        m.add_loss(loss * static_cast<double>(rows), rows);
        if (cfg.class_targets && E::outputs().size() > 1) detail::add_scores(m, eval.output(1), E::outputs()[1].dtype, y, rows);
    };
    if (d.tokens) {
        const std::int64_t T = cfg.sample_shape.at(0);
        std::int64_t begin = use_val ? d.token_split : 0, end = use_val ? d.stream->size() : d.token_split;
        std::int64_t n = cfg.val_batches > 0 ? cfg.val_batches
                                             : std::max<std::int64_t>(1, (end - begin) / (cfg.batch_size * T));
        Rng rng(cfg.seed ^ 0x5eedULL);  // the same windows every epoch
        for (std::int64_t i = 0; i < n; ++i) {
            detail::fill_windows(batch, *d.stream, begin, end, cfg.batch_size, rng);
            run(cfg.batch_size);
        }
    } else {
        const auto& rows = use_val ? d.val_rows : d.train_rows;
        BatchSampler s(rows, cfg.batch_size, false, cfg.seed);
        s.start_epoch(0);
        std::span<const std::int64_t> b;
        while (s.next(b)) {
            detail::fill_rows(batch, d.table, b);
            run(static_cast<std::int64_t>(b.size()));
        }
    }
    return m;
}

template <class E> detail::Batch make_batch(const TrainConfig& cfg) {
    detail::Batch b;
    b.x_dtype = E::inputs()[0].dtype;
    b.y_dtype = E::inputs().size() > 1 ? E::inputs()[1].dtype : DType::Int64;
    b.x_sample = cfg.sample_shape;
    b.y_sample = cfg.target_shape;
    Shape xs = {cfg.batch_size}, ys = {cfg.batch_size};
    xs.insert(xs.end(), cfg.sample_shape.begin(), cfg.sample_shape.end());
    ys.insert(ys.end(), cfg.target_shape.begin(), cfg.target_shape.end());
    b.x = Tensor::zeros(b.x_dtype, xs);
    b.y = Tensor::zeros(b.y_dtype, ys);
    return b;
}

void print_metrics(const ClassificationMetrics& m, bool class_targets);
void print_bench(std::vector<double>& times, const TrainConfig& cfg);

// --bench N: N training steps on the data's first batches (after a warm-up of N/10), timed one by
// one; prints the median, min and max step time and the peak resident memory. Nothing is written.
template <class M> int bench_steps(M& model, const TrainConfig& cfg, const TrainData& d, detail::Batch& batch) {
    if (!cfg.weights.empty()) model.load_weights(cfg.weights, true, cfg.seed);
    else model.init_weights(cfg.seed);
    model.hyper() = cfg.hyper;
    const std::size_t targets = M::inputs().size() - 1;
    std::int64_t b = cfg.batch_size;
    Rng windows(cfg.seed);
    if (d.tokens) {
        detail::fill_windows(batch, *d.stream, 0, d.token_split, b, windows);
    } else {
        std::vector<std::int64_t> rows(d.train_rows.begin(), d.train_rows.begin() + std::min<std::int64_t>(b, d.train_rows.size()));
        b = static_cast<std::int64_t>(rows.size());
        detail::fill_rows(batch, d.table, rows);
    }
    auto in = batch.views(b, targets);
    auto dims = model.bind(in);
    std::vector<double> times;
    for (std::int64_t i = 0; i < std::max<std::int64_t>(1, cfg.bench / 10); ++i) model.run_train_step(in, dims);
    set_profiling(cfg.profile);
    for (std::int64_t i = 0; i < cfg.bench; ++i) {
        Timer t;
        model.run_train_step(in, dims);
        times.push_back(t.elapsed_ms());
    }
    set_profiling(false);
    print_bench(times, cfg);
    return 0;
}
EpochRecord epoch_record(std::int64_t epoch, double train_loss, const ClassificationMetrics* val, double seconds, double lr,
                         bool class_targets);
std::map<std::string, std::string> checkpoint_metadata(const TrainConfig& cfg, std::int64_t epoch, std::int64_t step);

template <class M, class E> int train_main(TrainConfig& cfg) {
    try {
        set_num_threads(cfg.threads);
        if (cfg.batch_size < 1) throw Error("--batch-size must be at least 1");
        if (cfg.data.empty()) throw Error("no training data: pass --data FILE (CSV, .npy or a token file)");
        if (E::inputs().size() < 2) throw Error("internal: the evaluation pass has no target input");
        auto eval = std::make_unique<E>();
        auto batch = make_batch<E>(cfg);

        if (!cfg.evaluate.empty()) {
            TrainData d = load_train_data(cfg, true);
            eval->load_weights(cfg.evaluate);
            auto m = evaluate_model(*eval, cfg, d, batch, false);
            print_metrics(m, cfg.class_targets);
            return 0;
        }

        TrainData d = load_train_data(cfg, false);
        auto model = std::make_unique<M>();
        if (cfg.bench > 0) return bench_steps(*model, cfg, d, batch);
        // The evaluation pass reads the training step's weights in place where their layouts
        // agree (the compiler places the model's weights first in both): no second copy.
        if (detail::same_weight_layout<E, M>()) eval->share_weights(model->weight_block());
        namespace fs = std::filesystem;
        std::error_code ec;
        fs::create_directories(cfg.rundir, ec);
        if (ec) throw Error("cannot create the run folder " + cfg.rundir + ": " + ec.message());
        check_rundir(cfg.rundir, cfg.fingerprint, cfg.model_name);
        // Leftovers of a checkpoint write that was killed (the checkpoints themselves are whole).
        for (const auto& tmp : remove_stale_temporaries(cfg.rundir))
            std::printf("removed %s, left by an interrupted checkpoint write\n", tmp.string().c_str());
        RunReport report(cfg.rundir);
        std::int64_t first_epoch = 1;
        auto latest = latest_checkpoint(cfg.rundir);
        if (cfg.resume) {
            if (!latest) throw Error("--resume " + cfg.rundir + ": the folder holds no checkpoint to continue from");
            model->load_weights(latest->string());
            SafetensorsFile f(*latest);
            first_epoch = std::stoll(f.metadata().at("epoch")) + 1;
            model->hyper().step = std::stoll(f.metadata().at("step"));
            report.load();
            report.truncate(first_epoch - 1);
            std::printf("resuming %s from %s (epoch %lld, step %lld)\n", cfg.model_name.c_str(), latest->string().c_str(),
                        static_cast<long long>(first_epoch - 1), static_cast<long long>(model->hyper().step));
        } else {
            if (latest)
                throw Error("run folder " + cfg.rundir + " already holds a run of this model (" + latest->filename().string() +
                            "): pass --resume " + cfg.rundir + " to continue it, or choose another -o folder");
            if (!cfg.weights.empty()) model->load_weights(cfg.weights, true, cfg.seed);
            else model->init_weights(cfg.seed);
        }
        OptimHyper& h = model->hyper();
        const std::int64_t step0 = h.step;
        h = cfg.hyper;
        h.step = step0;

        const std::size_t targets = M::inputs().size() - 1;
        BatchSampler sampler(d.train_rows, cfg.batch_size, true, cfg.seed);
        const std::int64_t T = d.tokens ? cfg.sample_shape.at(0) : 0;
        const std::int64_t steps = d.tokens ? (cfg.steps_per_epoch > 0 ? cfg.steps_per_epoch
                                                                       : std::max<std::int64_t>(1, d.token_split / (cfg.batch_size * T)))
                                            : sampler.batches_per_epoch();
        const std::int64_t total = steps * cfg.epochs;
        const bool bar = cfg.progress < 0 ? Progress::stderr_is_terminal() : cfg.progress == 1;
        detail::install_interrupt_handler();
        std::printf("training %s: %lld samples (%lld held out), %lld steps per epoch, %s\n", cfg.model_name.c_str(),
                    static_cast<long long>(d.tokens ? d.token_split : static_cast<std::int64_t>(d.train_rows.size())),
                    static_cast<long long>(d.tokens ? d.stream->size() - d.token_split : static_cast<std::int64_t>(d.val_rows.size())),
                    static_cast<long long>(steps), cfg.optimizer.c_str());
        std::fflush(stdout);
        for (std::int64_t epoch = first_epoch; epoch <= cfg.epochs; ++epoch) {
            Timer timer;
            model->reseed(cfg.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(epoch));
            sampler.start_epoch(epoch);
            Rng windows(cfg.seed * 0x9E3779B97F4A7C15ULL ^ (static_cast<std::uint64_t>(epoch) << 20));
            Progress progress(steps, "epoch " + std::to_string(epoch) + "/" + std::to_string(cfg.epochs), bar);
            double loss_sum = 0;
            std::int64_t seen = 0;
            for (std::int64_t s = 0; s < steps; ++s) {
                std::int64_t b = cfg.batch_size;
                if (d.tokens) {
                    detail::fill_windows(batch, *d.stream, 0, d.token_split, b, windows);
                } else {
                    std::span<const std::int64_t> rows;
                    if (!sampler.next(rows)) break;
                    b = static_cast<std::int64_t>(rows.size());
                    detail::fill_rows(batch, d.table, rows);
                }
                h.lr = scheduled_lr(cfg, h.step + 1, epoch, total);
                auto in = batch.views(b, targets);
                auto dims = model->bind(in);
                double loss = model->run_train_step(in, dims);
                if (!std::isfinite(loss)) {
                    progress.finish("stopped");
                    throw Error("the loss became " + std::string(std::isnan(loss) ? "NaN" : "infinite") + " at epoch " +
                                std::to_string(epoch) + ", step " + std::to_string(h.step) +
                                ": training stopped; the last good checkpoint is kept in " + cfg.rundir +
                                " (try a lower --lr or --clip-norm)");
                }
                loss_sum += loss * static_cast<double>(b);
                seen += b;
                progress.update(s + 1, loss_sum / static_cast<double>(seen), static_cast<double>(seen) / std::max(1e-9, timer.elapsed_s()));
                if (detail::interrupted()) {
                    progress.finish("interrupted");
                    throw Error("interrupted at epoch " + std::to_string(epoch) + ": the last checkpoint is kept in " + cfg.rundir +
                                " (continue with --resume " + cfg.rundir + ")");
                }
            }
            const double train_loss = loss_sum / static_cast<double>(std::max<std::int64_t>(1, seen));
            const double train_seconds = timer.elapsed_s();
            detail::copy_weights(*eval, *model);
            std::optional<ClassificationMetrics> val;
            if (d.tokens ? d.token_split < d.stream->size() : !d.val_rows.empty()) val = evaluate_model(*eval, cfg, d, batch, true);
            EpochRecord rec = epoch_record(epoch, train_loss, val ? &*val : nullptr, timer.elapsed_s(), h.lr, cfg.class_targets);
            char summary[256];
            std::snprintf(summary, sizeof summary, "train_loss %.4f  val_loss %.4f  val_accuracy %.4f  (%.1f s, %.0f samples/s)",
                          rec.train_loss, rec.val_loss, rec.val_accuracy, rec.seconds,
                          static_cast<double>(seen) / std::max(1e-9, train_seconds));
            progress.finish(summary);
            report.add(rec);
            save_checkpoint(cfg.rundir, h.step, detail::weight_tensors(*model, true), checkpoint_metadata(cfg, epoch, h.step), cfg.keep);
        }
        detail::copy_weights(*eval, *model);
        std::string out = (std::filesystem::path(cfg.rundir) / "weights.safetensors").string();
        eval->save_weights(out);
        std::printf("wrote %s, %s/metrics.jsonl, metrics.csv and curves.svg\n", out.c_str(), cfg.rundir.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: error: %s\n", cfg.model_name.c_str(), e.what());
        return 1;
    }
}

}  // namespace mithril::rt
