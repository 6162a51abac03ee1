#include "support/diag.h"

#include <algorithm>

namespace mithril {

std::string SourceLoc::str() const {
  if (file.empty()) return "<unknown>";
  if (!known()) return file;
  return fmt::format("{}:{}:{}", file, line, col);
}

CompileError::CompileError(SourceLoc loc, std::string message)
    : std::runtime_error(format_diagnostic(loc, "error", message)), loc_(std::move(loc)), message_(std::move(message)) {}

std::string format_diagnostic(const SourceLoc& loc, const std::string& severity, const std::string& message) {
  if (loc.file.empty()) return fmt::format("{}: {}", severity, message);
  return fmt::format("{}: {}: {}", loc.str(), severity, message);
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t subst = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_d = 0;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (!best || d < best_d) best = &c, best_d = d;
  }
  if (!best) return "";
  size_t limit = std::max<size_t>(2, word.size() / 3);
  if (best_d > limit) return "";
  return fmt::format(" (did you mean '{}'?)", *best);
}

}  // namespace mithril
