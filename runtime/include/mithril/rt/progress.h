// progress.h - the per-epoch progress display of `mithril train`.
//
// On a terminal one line is redrawn in place with '\r', at most 10 times a
// second (and always on the last step):
//   epoch 3/10 [#########...........] 45/100  loss 0.4123  1234 samples/s  ETA 0:04
// Elsewhere (a log file, CI) it writes plain lines without '\r': one when the
// epoch passes 25%, 50% and 75% of its steps, or when 10 s went by since the
// previous line, whichever comes first, plus the finish line:
//   epoch 3/10 25/100 (25%)  loss 0.4123  1234 samples/s  ETA 0:04
//   epoch 3/10 done  loss 0.4012  val_loss 0.3811  val_acc 0.9012  12.3s
// A total of 0 steps (unknown) drops the bar, the percentage and the ETA.
// The ETA is the mean time per step so far times the steps left, as m:ss
// (h:mm:ss from one hour). update() does not allocate; lines it skips cost a
// clock read and a comparison.
//
// Output goes to stderr with the steady clock by default; tests pass their own
// FILE* and clock (seconds as a double, any origin, never decreasing).
//
//   mithril::rt::Progress bar(steps, "epoch 3/10", mithril::rt::Progress::stderr_is_terminal());
//   for (int64_t s = 0; s < steps; ++s) { train_step(); bar.update(s + 1, loss, samples_per_s); }
//   bar.finish("loss 0.4012  val_loss 0.3811  12.3s");
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace mithril::rt {

class Progress {
public:
    using Clock = std::function<double()>;  // seconds

    static constexpr double kRedrawInterval = 0.1;  // terminal: seconds between redraws
    static constexpr double kLogInterval = 10.0;    // log: seconds between lines (besides the quarters)
    static constexpr double kQuarterAfter = 0.5;    // log: no quarter lines before the epoch ran this long
    static constexpr int kBarWidth = 20;

    // Writes to stderr, timed by the steady clock.
    Progress(std::int64_t total_steps, std::string label, bool interactive);
    // Writes to `out` (not owned), timed by `now`. Throws Error for a null out or
    // clock, or a negative total.
    Progress(std::int64_t total_steps, std::string label, bool interactive, std::FILE* out, Clock now);
    // Ends a bar left on screen (no finish(), e.g. an exception) with a newline,
    // so that what is printed next starts on a line of its own.
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    // `step` steps of total_steps are done (1-based; clamped to [0, total]).
    void update(std::int64_t step, double loss, double samples_per_s);
    // Ends the display with "<label> <summary>" on its own line (on a terminal
    // it replaces the bar). Further update() calls are ignored.
    void finish(const std::string& summary);

    // True when stderr is a terminal (isatty).
    static bool stderr_is_terminal();

private:
    void draw(std::int64_t step, double loss, double samples_per_s, double now);

    std::int64_t total_;
    std::string label_;
    bool interactive_;
    std::FILE* out_;
    Clock now_;
    double start_;
    double last_draw_ = 0;
    bool drawn_ = false;
    int quarter_ = 0;            // log mode: quarters of the epoch already reported
    std::size_t last_width_ = 0; // terminal: length of the line on screen, to blank leftovers
    bool finished_ = false;
};

}  // namespace mithril::rt
