// report.h - the per-epoch record of a training run, kept in the run folder as
// metrics.jsonl, metrics.csv and curves.svg.
//
// Every add() rewrites all three files atomically (atomic_write_file), so they
// always describe the same epochs and a crash never leaves a half-written one:
//   metrics.jsonl  one JSON object per epoch, keys in this order: epoch,
//                  train_loss, val_loss, val_accuracy, seconds, then the extras:
//                  {"epoch":3,"train_loss":0.4123,"val_loss":0.3811,"val_accuracy":0.9012,"seconds":12.3,"lr":0.01}
//   metrics.csv    a header and one row per epoch with the same columns (the
//                  extras: every extra name in order of first appearance; a value
//                  an epoch lacks is left empty)
//   curves.svg     a self-contained picture: train and val loss per epoch (left),
//                  val accuracy per epoch (right), with axes, ticks and a legend
// Numbers are written in their shortest exact form. A NaN or infinite value is
// written as null in JSON (it reads back as NaN), as nan / inf / -inf in CSV,
// and is left out of the curves.
//
// For --resume, load() reads RUNDIR/metrics.jsonl back and truncate(n) drops the
// epochs after the checkpoint's epoch n before training continues.
//
//   mithril::rt::RunReport report("runs/lenet");
//   if (resume) { report.load(); report.truncate(checkpoint_epoch); }
//   report.add({epoch, train_loss, val_loss, val_acc, seconds, {{"lr", lr}, {"val_top5", top5}}});
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace mithril::rt {

struct EpochRecord {
    std::int64_t epoch = 0;
    double train_loss = 0;
    double val_loss = 0;
    double val_accuracy = 0;
    double seconds = 0;
    std::vector<std::pair<std::string, double>> extra;  // e.g. lr, val_top5, val_f1
};

class RunReport {
public:
    // Nothing is read or written until load() / add(); the folder is created by
    // the first write if needed.
    explicit RunReport(std::filesystem::path rundir);

    const std::filesystem::path& rundir() const { return rundir_; }
    std::filesystem::path jsonl_path() const { return rundir_ / "metrics.jsonl"; }
    std::filesystem::path csv_path() const { return rundir_ / "metrics.csv"; }
    std::filesystem::path svg_path() const { return rundir_ / "curves.svg"; }

    // Replaces the records with those in RUNDIR/metrics.jsonl (none when the file
    // does not exist). Throws Error naming the file and line for a line that is
    // not such an object (bad JSON, a missing key, a non-number value, epochs
    // not increasing).
    void load();
    // Keeps the records with epoch <= epochs; rewrites the files when any was dropped.
    void truncate(std::int64_t epochs);
    // Appends a record and rewrites the three files. Throws Error when the epoch
    // is not above the last one recorded (truncate() first when resuming), or an
    // extra name is empty, repeated, one of the fixed columns, or holds a
    // character other than letters, digits and _ . - /.
    void add(const EpochRecord& record);
    const std::vector<EpochRecord>& records() const { return records_; }
    // Rewrites the three files from records() (add() and truncate() call it).
    void write() const;

private:
    std::filesystem::path rundir_;
    std::vector<EpochRecord> records_;
};

// The SVG picture of `records` that write() puts in curves.svg; `title` is
// XML-escaped. Exposed for tests and for tools that plot other runs.
std::string render_curves_svg(const std::vector<EpochRecord>& records, const std::string& title);

}  // namespace mithril::rt
