// metrics.cpp - running classification metrics (see metrics.h).
#include "mithril/rt/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "mithril/rt/error.h"

namespace mithril::rt {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Order used for argmax and top-k: NaN above every number (numpy.argmax), NaNs equal.
template <class T> bool greater(T a, T b) { return std::isnan(a) ? !std::isnan(b) : a > b; }
template <class T> bool same(T a, T b) { return std::isnan(a) ? std::isnan(b) : a == b; }

}  // namespace

ClassificationMetrics::ClassificationMetrics(std::int64_t classes, std::int64_t top_k) : classes_(classes) {
    if (classes < 1)
        throw Error("classification metrics: the number of classes must be at least 1, got " + std::to_string(classes));
    if (top_k < 1) throw Error("classification metrics: top-k must be at least 1, got " + std::to_string(top_k));
    top_k_ = std::min(top_k, classes);
    const auto c = static_cast<std::size_t>(classes);
    true_positive_.assign(c, 0);
    predicted_.assign(c, 0);
    actual_.assign(c, 0);
    if (classes <= kMaxConfusionClasses) confusion_.assign(c * c, 0);
}

void ClassificationMetrics::reset() {
    count_ = correct_ = top_k_correct_ = loss_count_ = 0;
    loss_sum_ = 0;
    std::fill(true_positive_.begin(), true_positive_.end(), 0);
    std::fill(predicted_.begin(), predicted_.end(), 0);
    std::fill(actual_.begin(), actual_.end(), 0);
    std::fill(confusion_.begin(), confusion_.end(), 0);
}

template <class T>
void ClassificationMetrics::add_impl(const T* logits, const std::int64_t* labels, std::int64_t n) {
    if (n < 0) throw Error("classification metrics: negative batch size " + std::to_string(n));
    if (n == 0) return;
    if (!logits || !labels) throw Error("classification metrics: null logits or labels for a batch of " + std::to_string(n));
    for (std::int64_t i = 0; i < n; ++i)
        if (labels[i] < 0 || labels[i] >= classes_)
            throw Error("classification metrics: label " + std::to_string(labels[i]) + " of sample " + std::to_string(i) +
                        " in the batch is outside [0, " + std::to_string(classes_) +
                        "): the labels do not match the model's " + std::to_string(classes_) + " classes");
    const bool keep_confusion = !confusion_.empty();
    for (std::int64_t i = 0; i < n; ++i) {
        const T* row = logits + i * classes_;
        const std::int64_t label = labels[i];
        std::int64_t pred = 0;
        for (std::int64_t c = 1; c < classes_; ++c)
            if (greater(row[c], row[pred])) pred = c;
        // Rank of the label in a stable descending sort: larger logits, plus equal ones at a lower index.
        const T v = row[label];
        std::int64_t rank = 0;
        for (std::int64_t c = 0; c < classes_ && rank < top_k_; ++c)
            if (greater(row[c], v) || (c < label && same(row[c], v))) ++rank;
        if (rank < top_k_) ++top_k_correct_;
        if (pred == label) {
            ++correct_;
            ++true_positive_[static_cast<std::size_t>(label)];
        }
        ++predicted_[static_cast<std::size_t>(pred)];
        ++actual_[static_cast<std::size_t>(label)];
        if (keep_confusion) ++confusion_[static_cast<std::size_t>(label * classes_ + pred)];
    }
    count_ += n;
}

void ClassificationMetrics::add(const float* logits, const std::int64_t* labels, std::int64_t n) {
    add_impl(logits, labels, n);
}

void ClassificationMetrics::add(const double* logits, const std::int64_t* labels, std::int64_t n) {
    add_impl(logits, labels, n);
}

void ClassificationMetrics::add_loss(double loss_sum, std::int64_t n) {
    if (n < 0) throw Error("classification metrics: negative sample count " + std::to_string(n) + " for a loss");
    loss_sum_ += loss_sum;
    loss_count_ += n;
}

double ClassificationMetrics::loss() const {
    return loss_count_ == 0 ? kNaN : loss_sum_ / static_cast<double>(loss_count_);
}

double ClassificationMetrics::accuracy() const {
    return count_ == 0 ? kNaN : static_cast<double>(correct_) / static_cast<double>(count_);
}

double ClassificationMetrics::top_k_accuracy() const {
    return count_ == 0 ? kNaN : static_cast<double>(top_k_correct_) / static_cast<double>(count_);
}

double ClassificationMetrics::macro(Kind kind) const {
    if (count_ == 0) return kNaN;
    double sum = 0;
    std::int64_t present = 0;
    for (std::size_t c = 0; c < actual_.size(); ++c) {
        const std::int64_t tp = true_positive_[c], pred = predicted_[c], act = actual_[c];
        if (pred == 0 && act == 0) continue;  // in neither labels nor predictions: not averaged (sklearn)
        ++present;
        switch (kind) {
            case Kind::Precision: sum += pred == 0 ? 0.0 : static_cast<double>(tp) / static_cast<double>(pred); break;
            case Kind::Recall: sum += act == 0 ? 0.0 : static_cast<double>(tp) / static_cast<double>(act); break;
            case Kind::F1: {
                // 2PR/(P+R) = 2tp / (pred + act); pred + act > 0 here.
                sum += 2.0 * static_cast<double>(tp) / static_cast<double>(pred + act);
                break;
            }
        }
    }
    return sum / static_cast<double>(present);
}

double ClassificationMetrics::precision_macro() const { return macro(Kind::Precision); }
double ClassificationMetrics::recall_macro() const { return macro(Kind::Recall); }
double ClassificationMetrics::f1_macro() const { return macro(Kind::F1); }

std::vector<std::int64_t> ClassificationMetrics::confusion() const {
    if (confusion_.empty())
        throw Error("classification metrics: no confusion matrix is kept for " + std::to_string(classes_) +
                    " classes (at most " + std::to_string(kMaxConfusionClasses) + ")");
    return confusion_;
}

}  // namespace mithril::rt
