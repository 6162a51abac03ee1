// progress.cpp - terminal progress bar / periodic log lines (see progress.h).
#include "mithril/rt/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "mithril/rt/error.h"

namespace mithril::rt {

namespace {

double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Appends printf-style text to buf[len..cap); keeps len <= cap - 1.
template <class... Args>
void append(char* buf, std::size_t cap, std::size_t& len, const char* fmt, Args... args) {
    if (len + 1 >= cap) return;
    const int n = std::snprintf(buf + len, cap - len, fmt, args...);
    if (n > 0) len = std::min(cap - 1, len + static_cast<std::size_t>(n));
}

void append_loss(char* buf, std::size_t cap, std::size_t& len, double loss) {
    const double a = std::fabs(loss);
    if (std::isfinite(loss) && a != 0 && (a < 1e-3 || a >= 1e6))
        append(buf, cap, len, "  loss %.3e", loss);
    else
        append(buf, cap, len, "  loss %.4f", loss);
}

void append_rate(char* buf, std::size_t cap, std::size_t& len, double rate) {
    if (std::isfinite(rate) && rate >= 100)
        append(buf, cap, len, "  %.0f samples/s", rate);
    else
        append(buf, cap, len, "  %.3g samples/s", rate);
}

void append_eta(char* buf, std::size_t cap, std::size_t& len, double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) {
        append(buf, cap, len, "%s", "  ETA --:--");
        return;
    }
    const auto s = static_cast<long long>(std::llround(std::min(seconds, 1e9)));
    if (s >= 3600)
        append(buf, cap, len, "  ETA %lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        append(buf, cap, len, "  ETA %lld:%02lld", s / 60, s % 60);
}

}  // namespace

Progress::Progress(std::int64_t total_steps, std::string label, bool interactive)
    : Progress(total_steps, std::move(label), interactive, stderr, steady_seconds) {}

Progress::Progress(std::int64_t total_steps, std::string label, bool interactive, std::FILE* out, Clock now)
    : total_(total_steps), label_(std::move(label)), interactive_(interactive), out_(out), now_(std::move(now)) {
    if (total_steps < 0) throw Error("progress '" + label_ + "': negative number of steps " + std::to_string(total_steps));
    if (!out_) throw Error("progress '" + label_ + "': no output stream");
    if (!now_) throw Error("progress '" + label_ + "': no clock");
    start_ = now_();
    last_draw_ = start_;
}

Progress::~Progress() {
    if (interactive_ && drawn_ && !finished_) {
        std::fputc('\n', out_);
        std::fflush(out_);
    }
}

bool Progress::stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

void Progress::update(std::int64_t step, double loss, double samples_per_s) {
    if (finished_) return;
    step = std::max<std::int64_t>(step, 0);
    if (total_ > 0) step = std::min(step, total_);
    const double t = now_();
    bool due;
    if (interactive_) {
        due = !drawn_ || t - last_draw_ >= kRedrawInterval || (total_ > 0 && step == total_);
    } else {
        // Quarters passed so far (25%, 50%, 75%; the end is the finish line).
        const int q = total_ > 0 ? static_cast<int>(std::min<std::int64_t>(step * 4 / total_, 3)) : 0;
        // Epochs shorter than kQuarterAfter get only their finish line.
        due = (q > quarter_ && t - start_ >= kQuarterAfter) || t - last_draw_ >= kLogInterval;
        if (due) quarter_ = std::max(quarter_, q);
    }
    if (due) draw(step, loss, samples_per_s, t);
}

void Progress::draw(std::int64_t step, double loss, double samples_per_s, double now) {
    constexpr std::size_t kCap = 256;
    char buf[kCap];
    std::size_t len = 0;
    if (total_ > 0) {
        if (interactive_) {
            const auto filled = static_cast<int>(step * kBarWidth / total_);
            char bar[kBarWidth + 1];
            for (int i = 0; i < kBarWidth; ++i) bar[i] = i < filled ? '#' : '.';
            bar[kBarWidth] = '\0';
            append(buf, kCap, len, " [%s] %lld/%lld", bar, static_cast<long long>(step), static_cast<long long>(total_));
        } else {
            append(buf, kCap, len, " %lld/%lld (%lld%%)", static_cast<long long>(step), static_cast<long long>(total_),
                   static_cast<long long>(step * 100 / total_));
        }
    } else {
        append(buf, kCap, len, " step %lld", static_cast<long long>(step));
    }
    append_loss(buf, kCap, len, loss);
    append_rate(buf, kCap, len, samples_per_s);
    if (total_ > 0) {
        const double eta = step > 0 ? (now - start_) / static_cast<double>(step) * static_cast<double>(total_ - step)
                                    : std::nan("");
        append_eta(buf, kCap, len, eta);
    }

    if (interactive_) std::fputc('\r', out_);
    std::fwrite(label_.data(), 1, label_.size(), out_);
    std::fwrite(buf, 1, len, out_);
    const std::size_t width = label_.size() + len;
    if (interactive_) {
        for (std::size_t i = width; i < last_width_; ++i) std::fputc(' ', out_);  // blank a longer previous line
        last_width_ = width;
    } else {
        std::fputc('\n', out_);
    }
    std::fflush(out_);
    drawn_ = true;
    last_draw_ = now;
}

void Progress::finish(const std::string& summary) {
    if (finished_) return;
    finished_ = true;
    if (interactive_ && drawn_) std::fputc('\r', out_);
    std::fwrite(label_.data(), 1, label_.size(), out_);
    std::size_t width = label_.size();
    if (!summary.empty()) {
        std::fputc(' ', out_);
        std::fwrite(summary.data(), 1, summary.size(), out_);
        width += 1 + summary.size();
    }
    if (interactive_)
        for (std::size_t i = width; i < last_width_; ++i) std::fputc(' ', out_);
    std::fputc('\n', out_);
    std::fflush(out_);
}

}  // namespace mithril::rt
