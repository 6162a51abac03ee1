// trainer.cpp - the non-template parts of the training loop (trainer.h):
// options, the learning-rate schedule, loading data into batches, metrics.
#include "mithril/rt/trainer.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>

namespace mithril::rt {

namespace {

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

double to_double(const std::string& opt, const std::string& v) {
    try {
        std::size_t used = 0;
        double d = std::stod(v, &used);
        if (used == v.size()) return d;
    } catch (...) {
    }
    throw Error("option " + opt + " expects a number, got '" + v + "'");
}

std::int64_t to_int(const std::string& opt, const std::string& v) {
    try {
        std::size_t used = 0;
        long long d = std::stoll(v, &used);
        if (used == v.size()) return d;
    } catch (...) {
    }
    throw Error("option " + opt + " expects an integer, got '" + v + "'");
}

void usage(const TrainConfig& c) {
    std::cout << "usage: " << c.model_name << " [--data FILE] [options]   train the model (defaults compiled in)\n"
              << "       " << c.model_name << " --evaluate WEIGHTS --data FILE   print the metrics of trained weights\n\n"
              << "data:\n"
                 "  --data FILE          CSV (.csv, .csv.gz), .npy features (with --labels) or a token file   [" << c.data << "]\n"
                 "  --labels FILE        .npy labels for a .npy data file\n"
                 "  --label COLUMN       CSV label column: a name or an index (-1: the last)   [" << c.label << "]\n"
                 "  --format F           auto, csv, npy, tokens or bytes (a text file, one token per byte)   [" << c.format << "]\n"
                 "  --token-dtype T      uint8, uint16 or int32 (token files)   [" << c.token_dtype << "]\n"
                 "  --val-split F        share held out for validation   [" << c.val_split << "]\n"
                 "training:\n"
                 "  --epochs N           [" << c.epochs << "]\n"
                 "  --batch-size B       [" << c.batch_size << "]\n"
                 "  --seed S             shuffling, initialization and Dropout   [" << c.seed << "]\n"
                 "  --steps-per-epoch N  token data: batches per epoch (0: one pass)   [" << c.steps_per_epoch << "]\n"
                 "  --val-batches N      token data: validation batches (0: one pass)   [" << c.val_batches << "]\n"
                 "optimizer (" << c.optimizer << ", compiled in):\n"
                 "  --lr X               [" << c.hyper.lr << "]\n"
                 "  --momentum X  --dampening X  --nesterov  --weight-decay X  --beta1 X  --beta2 X  --eps X\n"
                 "  --clip-norm X        clip the gradients' global norm (compiled-in clipping only)   [" << c.hyper.clip_norm << "]\n"
                 "  --schedule S         constant, step or cosine   [" << c.schedule << "]\n"
                 "  --warmup N           steps of linear warm-up   [" << c.warmup << "]\n"
                 "  --step-size N --gamma X   step schedule: multiply by gamma every N epochs\n"
                 "  --min-lr X           cosine schedule: the final rate   [" << c.min_lr << "]\n"
                 "output:\n"
                 "  -o, --output DIR     run folder: metrics.jsonl, metrics.csv, curves.svg, checkpoints, weights   [" << c.rundir << "]\n"
                 "  --resume DIR         continue the run in DIR from its last checkpoint\n"
                 "  --weights FILE       start from these weights (safetensors)\n"
                 "  --keep N             checkpoints kept   [" << c.keep << "]\n"
                 "  --top-k K            top-k accuracy reported   [" << c.top_k << "]\n"
                 "  --threads T          0: all cores\n"
                 "  --bench N            time N training steps on the first batch and exit (nothing written)\n"
                 "  --profile            with --bench: time every layer over the timed steps and print the table\n"
                 "  --progress / --no-progress   a progress bar (default: on a terminal)\n";
}

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
    if (g_interrupted.exchange(true)) std::_Exit(130);  // a second Ctrl-C: leave at once
}

}  // namespace

void parse_train_args(int argc, char** argv, TrainConfig& c) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw Error("option " + a + " needs a value");
            return argv[++i];
        };
        if (a == "-h" || a == "--help") {
            usage(c);
            std::exit(0);
        } else if (a == "--data") c.data = value();
        else if (a == "--labels") c.labels = value();
        else if (a == "--label") c.label = value();
        else if (a == "--format") c.format = value();
        else if (a == "--token-dtype") c.token_dtype = value();
        else if (a == "--val-split") c.val_split = to_double(a, value());
        else if (a == "--epochs") c.epochs = to_int(a, value());
        else if (a == "--batch-size") c.batch_size = to_int(a, value());
        else if (a == "--seed") c.seed = static_cast<std::uint64_t>(to_int(a, value()));
        else if (a == "--steps-per-epoch") c.steps_per_epoch = to_int(a, value());
        else if (a == "--val-batches") c.val_batches = to_int(a, value());
        else if (a == "--lr") c.hyper.lr = to_double(a, value());
        else if (a == "--momentum") c.hyper.momentum = to_double(a, value());
        else if (a == "--dampening") c.hyper.dampening = to_double(a, value());
        else if (a == "--nesterov") c.hyper.nesterov = true;
        else if (a == "--weight-decay") c.hyper.weight_decay = to_double(a, value());
        else if (a == "--beta1") c.hyper.beta1 = to_double(a, value());
        else if (a == "--beta2") c.hyper.beta2 = to_double(a, value());
        else if (a == "--eps") c.hyper.eps = to_double(a, value());
        else if (a == "--clip-norm") c.hyper.clip_norm = to_double(a, value());
        else if (a == "--schedule") c.schedule = value();
        else if (a == "--warmup") c.warmup = to_int(a, value());
        else if (a == "--step-size") c.step_size = to_int(a, value());
        else if (a == "--gamma") c.gamma = to_double(a, value());
        else if (a == "--min-lr") c.min_lr = to_double(a, value());
        else if (a == "-o" || a == "--output") c.rundir = value();
        else if (a == "--resume") {
            c.rundir = value();
            c.resume = true;
        } else if (a == "--weights") c.weights = value();
        else if (a == "--evaluate") c.evaluate = value();
        else if (a == "--keep") c.keep = static_cast<int>(to_int(a, value()));
        else if (a == "--top-k") c.top_k = to_int(a, value());
        else if (a == "--threads") c.threads = static_cast<int>(to_int(a, value()));
        else if (a == "--bench") c.bench = to_int(a, value());
        else if (a == "--profile") c.profile = true;
        else if (a == "--progress") c.progress = 1;
        else if (a == "--no-progress") c.progress = 0;
        else throw Error("unknown option '" + a + "' (see --help)");
    }
    if (c.schedule != "constant" && c.schedule != "step" && c.schedule != "cosine")
        throw Error("--schedule: expected constant, step or cosine, got '" + c.schedule + "'");
    if (c.epochs < 1) throw Error("--epochs must be at least 1");
    if (c.hyper.lr <= 0 || !std::isfinite(c.hyper.lr)) throw Error("--lr must be a positive number");
    if (c.step_size < 1) throw Error("--step-size must be at least 1");
    if (c.keep < 1) throw Error("--keep must be at least 1");
    if (c.profile && c.bench <= 0) throw Error("--profile times the --bench steps: add --bench N");
}

double scheduled_lr(const TrainConfig& c, std::int64_t step, std::int64_t epoch, std::int64_t total) {
    const double base = c.hyper.lr;
    if (c.warmup > 0 && step <= c.warmup) return base * static_cast<double>(step) / static_cast<double>(c.warmup);
    if (c.schedule == "step") return base * std::pow(c.gamma, static_cast<double>((epoch - 1) / c.step_size));
    if (c.schedule == "cosine") {
        const double span = static_cast<double>(std::max<std::int64_t>(1, total - c.warmup));
        const double t = std::min(1.0, static_cast<double>(step - c.warmup) / span);
        return c.min_lr + (base - c.min_lr) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
    }
    return base;
}

TrainData load_train_data(const TrainConfig& c, bool whole) {
    TrainData d;
    std::string fmt = c.format;
    const std::string name = lower(c.data);
    if (fmt == "auto") {
        if (ends_with(name, ".npy")) fmt = "npy";
        else if (ends_with(name, ".csv") || ends_with(name, ".csv.gz")) fmt = "csv";
        else if (ends_with(name, ".txt")) fmt = "bytes";
        else if (ends_with(name, ".bin") || ends_with(name, ".tokens") || ends_with(name, ".u16") || ends_with(name, ".i32")) fmt = "tokens";
        else fmt = c.class_targets && c.sample_shape.size() == 1 && c.target_shape.size() == 1 ? "tokens" : "csv";
    }
    const bool model_tokens = c.target_shape.size() == 1 && c.class_targets;  // [N, T] against [N, T]
    std::string token_dtype = c.token_dtype;
    if (fmt == "bytes") {  // a text file: every byte is a token
        fmt = "tokens";
        token_dtype = "uint8";
    }
    if (fmt == "tokens") {
        if (!model_tokens)
            throw Error("data " + c.data + " is a token stream, but the model does not read token windows (its input is [N, " +
                        std::to_string(c.sample_shape.empty() ? 0 : c.sample_shape[0]) + "...] against per-sample targets)");
        d.tokens = true;
        DType t = token_dtype == "uint8"    ? DType::UInt8
                  : token_dtype == "uint16" ? DType::UInt16
                  : token_dtype == "int32"  ? DType::Int32
                                            : throw Error("--token-dtype: expected uint8, uint16 or int32, got '" + token_dtype + "'");
        d.stream.emplace(c.data, t);
        d.stream->check_vocab(c.classes);
        const std::int64_t n = d.stream->size();
        d.token_split = whole ? 0 : n - static_cast<std::int64_t>(std::llround(static_cast<double>(n) * c.val_split));
        const std::int64_t T = c.sample_shape.at(0);
        if ((whole ? n : d.token_split) < T + 1)
            throw Error("token file " + c.data + ": " + std::to_string(whole ? n : d.token_split) +
                        " tokens are too few for windows of " + std::to_string(T) + " (+1) tokens");
        if (!whole && d.token_split < n && n - d.token_split < T + 1)
            throw Error("token file " + c.data + ": the validation part (" + std::to_string(n - d.token_split) +
                        " tokens) is shorter than one window of " + std::to_string(T + 1) + "; raise --val-split or use 0");
        if (whole) d.token_split = n;  // evaluation reads [0, split)
        return d;
    }
    if (model_tokens && c.sample_shape.size() == 1 && fmt != "npy")
        throw Error("the model reads token windows [N, " + std::to_string(c.sample_shape[0]) + "]: pass a token file (--format tokens)");
    if (fmt == "npy") {
        d.table = c.labels.empty() ? load_npy_table(c.data, c.label, !c.class_targets) : load_npy_table(std::filesystem::path(c.data), std::filesystem::path(c.labels));
    } else if (fmt == "csv") {
        CsvOptions o;
        o.label = c.label;
        o.float_labels = !c.class_targets;
        d.table = load_csv(c.data, o);
    } else {
        throw Error("--format: expected auto, csv, npy, tokens or bytes, got '" + fmt + "'");
    }
    const std::int64_t per = detail::numel_of(c.sample_shape);
    std::int64_t have = 1;
    for (std::size_t k = 1; k < d.table.features.shape().size(); ++k) have *= d.table.features.dim(static_cast<int>(k));
    if (have != per) {
        std::string shape;
        for (auto s : c.sample_shape) shape += (shape.empty() ? "" : ", ") + std::to_string(s);
        throw Error("data " + c.data + " has " + std::to_string(have) + " values per sample, but the model's input takes [" + shape +
                    "] = " + std::to_string(per) + " per sample");
    }
    if (c.class_targets) check_class_labels(d.table, c.classes, c.data);
    else if (detail::numel_of(c.target_shape) != 1)
        throw Error("the model's target has " + std::to_string(detail::numel_of(c.target_shape)) +
                    " values per sample; table data gives one label per row");
    if (whole) {
        for (std::int64_t r = 0; r < d.table.rows(); ++r) d.train_rows.push_back(r);
    } else {
        Split s = split_rows(d.table.rows(), c.val_split, c.seed);
        d.train_rows = std::move(s.train);
        d.val_rows = std::move(s.val);
        if (d.train_rows.empty()) throw Error("data " + c.data + ": no rows left to train on after the validation split");
    }
    return d;
}

namespace detail {

std::int64_t numel_of(const Shape& s) {
    std::int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

void fill_rows(Batch& b, const Table& t, std::span<const std::int64_t> rows) {
    const std::int64_t per = numel_of(b.x_sample);
    const float* src = t.features.data<float>();
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const float* row = src + rows[i] * per;
        if (b.x_dtype == DType::Float64) {
            double* dst = b.x.data<double>() + static_cast<std::int64_t>(i) * per;
            for (std::int64_t k = 0; k < per; ++k) dst[k] = row[k];
        } else if (b.x_dtype == DType::Float32) {
            std::memcpy(b.x.data<float>() + static_cast<std::int64_t>(i) * per, row, static_cast<std::size_t>(per) * sizeof(float));
        } else {
            throw Error("the model's input is " + std::string(dtype_name(b.x_dtype)) + "; table data gives float features");
        }
        if (b.y_dtype == DType::Int64) b.y.data<std::int64_t>()[i] = t.labels.data<std::int64_t>()[rows[i]];
        else if (b.y_dtype == DType::Float32) b.y.data<float>()[i] = t.labels.data<float>()[rows[i]];
        else if (b.y_dtype == DType::Float64) b.y.data<double>()[i] = t.labels.data<float>()[rows[i]];
        else throw Error("unsupported target dtype " + std::string(dtype_name(b.y_dtype)));
    }
}

void fill_windows(Batch& b, const TokenFile& f, std::int64_t begin, std::int64_t end, std::int64_t n, Rng& rng) {
    if (b.x_dtype != DType::Int64 || b.y_dtype != DType::Int64) throw Error("token windows need int64 inputs and targets");
    sample_windows(f, begin, end, n, b.x_sample.at(0), rng, b.x.data<std::int64_t>(), b.y.data<std::int64_t>());
}

void add_scores(ClassificationMetrics& m, const void* scores, DType t, const Tensor& targets, std::int64_t rows) {
    const std::int64_t* y = static_cast<const std::int64_t*>(targets.raw_data());
    if (t == DType::Float64) m.add(static_cast<const double*>(scores), y, rows);
    else m.add(static_cast<const float*>(scores), y, rows);
}

bool interrupted() { return g_interrupted.load(); }

void install_interrupt_handler() {
    g_interrupted = false;
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
}

}  // namespace detail

void print_metrics(const ClassificationMetrics& m, bool class_targets) {
    std::printf("samples %lld\nloss %.6f\n", static_cast<long long>(m.count() ? m.count() : 0), m.loss());
    if (!class_targets) return;
    std::printf("accuracy %.6f\ntop%lld_accuracy %.6f\nprecision_macro %.6f\nrecall_macro %.6f\nf1_macro %.6f\n", m.accuracy(),
                static_cast<long long>(m.top_k()), m.top_k_accuracy(), m.precision_macro(), m.recall_macro(), m.f1_macro());
}

void print_bench(std::vector<double>& times, const TrainConfig& c) {
    std::printf("median %.4f ms per training step (min %.4f, max %.4f, %zu steps, batch %lld, %s; %s)\n", median(times),
                *std::min_element(times.begin(), times.end()), *std::max_element(times.begin(), times.end()), times.size(),
                static_cast<long long>(c.batch_size), c.optimizer.c_str(), cpu_device().describe().c_str());
    std::printf("peak resident memory %.1f MiB\n", static_cast<double>(peak_rss_bytes()) / (1 << 20));
    if (c.profile) std::fputs(profile_report(static_cast<int>(times.size())).c_str(), stdout);
}

EpochRecord epoch_record(std::int64_t epoch, double train_loss, const ClassificationMetrics* val, double seconds, double lr,
                         bool class_targets) {
    EpochRecord r;
    r.epoch = epoch;
    r.train_loss = train_loss;
    const double nan = std::nan("");
    r.val_loss = val ? val->loss() : nan;
    r.val_accuracy = val && class_targets ? val->accuracy() : nan;
    r.seconds = seconds;
    r.extra.push_back({"lr", lr});
    if (val && class_targets) {
        r.extra.push_back({"val_top" + std::to_string(val->top_k()) + "_accuracy", val->top_k_accuracy()});
        r.extra.push_back({"val_precision_macro", val->precision_macro()});
        r.extra.push_back({"val_recall_macro", val->recall_macro()});
        r.extra.push_back({"val_f1_macro", val->f1_macro()});
    }
    return r;
}

std::map<std::string, std::string> checkpoint_metadata(const TrainConfig& c, std::int64_t epoch, std::int64_t step) {
    return {{"model", c.fingerprint}, {"model_name", c.model_name}, {"epoch", std::to_string(epoch)},
            {"step", std::to_string(step)}, {"seed", std::to_string(c.seed)}, {"optimizer", c.optimizer},
            {"format", "pt"},           {"generator", "mithril"}};
}

}  // namespace mithril::rt
