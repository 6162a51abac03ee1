// metrics.h - running classification metrics over an epoch (mean loss,
// accuracy, top-k accuracy, macro precision / recall / F1, confusion matrix).
//
// Feed it each batch's logits (row-major [n, classes]) and integer labels; read
// the metrics at the end of the epoch, then reset(). Semantics follow numpy and
// scikit-learn, so numbers match a Python evaluation of the same outputs:
//   - prediction = argmax of the row; ties go to the first maximum (numpy.argmax),
//     a NaN logit counts as larger than every number (numpy.argmax returns the first NaN);
//   - top-k: the label is among the k largest logits, ties broken towards the lower
//     class index as in a stable descending sort (so top-1 equals accuracy); k is
//     clipped to the number of classes;
//   - precision / recall / F1 "macro": the unweighted mean of the per-class values
//     over the classes that occur in the labels or the predictions (sklearn's
//     labels=None); a class with no predicted samples has precision 0, one with no
//     true samples recall 0, and F1 = 2PR / (P + R) is 0 when P + R = 0
//     (sklearn's zero_division=0); F1 macro is the mean of the per-class F1 values;
//   - confusion()[t * classes + p] counts samples of true class t predicted as p
//     (sklearn.metrics.confusion_matrix layout).
// With no samples added, every rate is NaN (loss() too, until add_loss()).
// add() does not allocate; labels outside [0, classes) throw Error.
//
//   mithril::rt::ClassificationMetrics m(10);          // 10 classes, top-5
//   for (auto& batch : val) {
//       forward(batch);
//       m.add(logits, batch.labels, batch.n);
//       m.add_loss(loss_mean * batch.n, batch.n);
//   }
//   std::printf("val loss %.4f acc %.4f top5 %.4f f1 %.4f\n", m.loss(), m.accuracy(), m.top_k_accuracy(),
//               m.f1_macro());
#pragma once

#include <cstdint>
#include <vector>

namespace mithril::rt {

class ClassificationMetrics {
public:
    // The confusion matrix is kept only up to this many classes (32 MiB of
    // counters); above it confusion() throws and every other metric still works.
    static constexpr std::int64_t kMaxConfusionClasses = 2048;

    // Throws Error unless classes >= 1 and top_k >= 1.
    explicit ClassificationMetrics(std::int64_t classes, std::int64_t top_k = 5);

    void reset();
    // logits: row-major [n, classes]; labels: n class indices in [0, classes).
    // Throws Error (naming the row and label) for a label out of range; the
    // batch is then not counted at all.
    void add(const float* logits, const std::int64_t* labels, std::int64_t n);
    void add(const double* logits, const std::int64_t* labels, std::int64_t n);
    // Adds the sum of n per-sample losses (e.g. batch mean * n).
    void add_loss(double loss_sum, std::int64_t n);

    std::int64_t classes() const { return classes_; }
    // k after clipping to the number of classes.
    std::int64_t top_k() const { return top_k_; }
    // Samples added through add().
    std::int64_t count() const { return count_; }
    // Mean loss over the samples given to add_loss().
    double loss() const;
    double accuracy() const;
    double top_k_accuracy() const;
    double precision_macro() const;
    double recall_macro() const;
    double f1_macro() const;
    // Row-major [classes, classes]: rows are true classes, columns predictions.
    std::vector<std::int64_t> confusion() const;

private:
    template <class T> void add_impl(const T* logits, const std::int64_t* labels, std::int64_t n);
    enum class Kind { Precision, Recall, F1 };
    double macro(Kind kind) const;

    std::int64_t classes_;
    std::int64_t top_k_;
    std::int64_t count_ = 0;
    std::int64_t correct_ = 0;
    std::int64_t top_k_correct_ = 0;
    double loss_sum_ = 0;
    std::int64_t loss_count_ = 0;
    std::vector<std::int64_t> true_positive_;  // per class
    std::vector<std::int64_t> predicted_;      // per class: samples predicted as it
    std::vector<std::int64_t> actual_;         // per class: samples labelled as it
    std::vector<std::int64_t> confusion_;      // [classes, classes] or empty above kMaxConfusionClasses
};

}  // namespace mithril::rt
