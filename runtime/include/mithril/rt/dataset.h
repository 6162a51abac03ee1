// dataset.h - training data for `mithril train`: tables of features and labels
// (CSV, gzip CSV, .npy), token streams for language models (memory-mapped
// binary token files), and seeded, bit-reproducible splits and batches.
//
// Tables
//   load_csv reads plain or gzip-compressed CSV (gzip is detected by its magic
//   bytes 1f 8b, not by the file name) in one streaming pass. The first line is
//   a header when any of its fields is not a number; a header of numbers only,
//   such as pandas' default "0,1,2", needs CsvOptions::header = CsvHeader::Yes.
//   scikit-learn's bundled CSVs (iris.csv, wine_data.csv, breast_cancer.csv)
//   start with "n_samples,n_features,class names..." instead of column names,
//   e.g. "150,4,setosa,versicolor,virginica": such a header (two integers, the
//   second being the data rows' field count - 1, then names) is skipped, the
//   columns are named c0, c1... and the names go to Table::class_names. One
//   column is the label, chosen by header name or by index (negative counts
//   from the end: -1, the default, is the last column); every other column is a
//   float32 feature. Class labels must be non-negative integers ("3", "3.0",
//   "3e0"); CsvOptions::float_labels reads float32 regression targets instead.
//   Blank lines, CRLF line ends, a UTF-8 byte-order mark, spaces around fields
//   and double-quoted fields ("a,b" or "say ""hi""") are accepted. Every problem
//   throws Error naming FILE:LINE (where there is a line) and the column, e.g.
//     digits.csv:17: row has 63 fields, expected 65 (as in line 1)
//     data.csv:9: column 2 ('petal_length'): 'abc' is not a number
//   Errors are raised while reading, so a bad row is reported without parsing the
//   rest of the file.
//
//   load_npy_table reads features and labels from .npy files (numpy's
//   np.save): features of any numeric dtype (converted to float32, trailing
//   shape kept: [rows, 1, 8, 8] stays so; a 1-D array becomes [rows, 1]) and
//   integer labels (-> int64) or float labels (-> float32 targets), or a single
//   2-D array whose label is one of its columns.
//
//   Row numbers in messages about a Table (check_class_labels) count data rows
//   from 0, as numpy indexes them.
//
// Token streams
//   TokenFile memory-maps a flat binary file of uint16 or int32 tokens (numpy's
//   arr.astype(np.uint16).tofile(path), nanoGPT's train.bin), read-only, so
//   files larger than memory work. sample_windows draws a batch of random
//   (input, target) windows for next-token prediction.
//
// Splits and batches
//   Everything random is driven by rt::Rng (xoshiro256**) with our own integer
//   draw and Fisher-Yates shuffle, so the same seed gives the same rows, in the
//   same order, on every machine and standard library:
//     uniform_index(rng, n) = min(n - 1, floor(rng.uniform() * n))
//     shuffle: for i = n-1 down to 1: swap(v[i], v[uniform_index(rng, i + 1)])
//   The epoch order of a BatchSampler is a function of (seed, epoch) only, so a
//   run resumed at epoch 7 sees the batches the uninterrupted run would have.
//
// Example
//   using namespace mithril::rt;
//   Table t = load_csv("digits.csv.gz");                    // label = last column
//   check_class_labels(t, 10, "digits.csv.gz column " + t.label_column);
//   Split s = split_rows(t.rows(), 0.2, /*seed=*/42);
//   BatchSampler train(s.train, /*batch_size=*/32, /*shuffle=*/true, /*seed=*/42);
//   std::vector<float> x(32 * t.num_features());
//   std::vector<std::int64_t> y(32);
//   for (std::int64_t epoch = 0; epoch < 10; ++epoch) {
//       train.start_epoch(epoch);
//       std::span<const std::int64_t> batch;
//       while (train.next(batch)) {                         // the last batch may be smaller
//           gather_rows(t.features, batch, x.data());
//           gather_rows(t.labels, batch, y.data());
//           // ... step(x, y, batch.size()) ...
//       }
//   }
//
//   TokenFile tokens("train.bin", DType::UInt16);
//   tokens.check_vocab(50257);
//   Rng rng(1337);
//   sample_windows(tokens, 0, tokens.size(), /*batch=*/8, /*T=*/256, rng, in.data(), tgt.data());
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "mithril/rt/init.h"
#include "mithril/rt/tensor.h"

namespace mithril::rt {

// A loaded data set: one row per sample.
struct Table {
    Tensor features;                   // float32 [rows, F] (or [rows, ...] from a .npy)
    Tensor labels;                     // int64 [rows] class labels, or float32 [rows] targets
    std::vector<std::string> columns;  // feature column names: the header's, or "c0", "c1"...
    std::string label_column;          // the label column's name (header name or "c<index>")
    // Class names from a scikit-learn style header (see load_csv) when the label
    // is its last column (class k is class_names[k]), else empty.
    std::vector<std::string> class_names;

    std::int64_t rows() const { return features.ndim() == 0 ? 0 : features.dim(0); }
    // Values per row: the product of the feature dims after the first.
    std::int64_t num_features() const;
};

enum class CsvHeader : std::uint8_t {
    Auto,  // the first line is a header when any of its fields is not a number
    Yes,   // the first line is always a header
    No,    // there is no header; columns are named c0, c1...
};

struct CsvOptions {
    // The label column: a header name, or an index (negative from the end, so
    // -1 = the last column). An integer that is also the name of a different
    // column (header "id,3,x,y": is "3" column 1 or column 3?) is rejected as
    // ambiguous.
    std::string label = "-1";
    // false: labels are class indices (non-negative integers) -> int64;
    // true: labels are regression targets -> float32.
    bool float_labels = false;
    char delimiter = ',';  // ' ' means runs of spaces, as numpy.loadtxt reads them
    CsvHeader header = CsvHeader::Auto;
};

// Reads a plain or gzip-compressed CSV file (see the top of this header).
Table load_csv(const std::filesystem::path& path, const CsvOptions& opt = {});

// Features from one .npy, labels from another. Features: any numeric dtype,
// shape [rows, ...]; labels: any integer or bool dtype (-> int64) or a float
// dtype (-> float32), shape [rows] or [rows, 1]. The row counts must agree.
Table load_npy_table(const std::filesystem::path& features, const std::filesystem::path& labels);

// A single 2-D .npy [rows, columns] whose column `label` (an integer index,
// negative from the end) holds the labels: non-negative integers (-> int64),
// or any finite values (-> float32) with float_labels.
// A string (or string literal) second argument selects this overload, so pass
// two file names to the overload above as std::filesystem::path; a label that
// names a .npy file gets an error saying so.
Table load_npy_table(const std::filesystem::path& both, const std::string& label, bool float_labels = false);
inline Table load_npy_table(const std::filesystem::path& both, const char* label, bool float_labels = false) {
    return load_npy_table(both, std::string(label), float_labels);
}

// Throws unless every label is an int64 class index in [0, classes), e.g.
// "labels in digits.csv.gz column 64: value 12 at row 301 is out of range for a
// model with 10 classes (...)". `what` names the labels in the message.
void check_class_labels(const Table& t, std::int64_t classes, const std::string& what);

// A read-only memory map of a flat binary file of tokens (little-endian uint16
// or int32, no header). Movable, not copyable.
class TokenFile {
public:
    // dtype must be DType::UInt16 or DType::Int32. Throws for a missing or empty
    // file and for a size that is not a multiple of the token size.
    TokenFile(const std::filesystem::path& path, DType dtype);
    ~TokenFile();
    TokenFile(TokenFile&& other) noexcept;
    TokenFile& operator=(TokenFile&& other) noexcept;
    TokenFile(const TokenFile&) = delete;
    TokenFile& operator=(const TokenFile&) = delete;

    std::int64_t size() const { return size_; }  // number of tokens
    DType dtype() const { return dtype_; }
    const std::filesystem::path& path() const { return path_; }
    // The mapped tokens (const std::uint16_t* or const std::int32_t*, per dtype()).
    const void* data() const { return data_; }
    // Token i, 0 <= i < size() (not checked: this is the sampling hot path).
    std::int64_t operator[](std::int64_t i) const {
        return dtype_ == DType::UInt8    ? static_cast<std::int64_t>(static_cast<const std::uint8_t*>(data_)[i])
               : dtype_ == DType::UInt16 ? static_cast<std::int64_t>(static_cast<const std::uint16_t*>(data_)[i])
                                         : static_cast<std::int64_t>(static_cast<const std::int32_t*>(data_)[i]);
    }
    // Throws unless every token is in [0, vocab): "token file X: token 70000 at
    // position 123 is outside the vocabulary of 50257 (...)".
    void check_vocab(std::int64_t vocab) const;

private:
    void release() noexcept;

    std::filesystem::path path_;
    DType dtype_ = DType::UInt16;
    const void* data_ = nullptr;
    std::size_t bytes_ = 0;
    std::int64_t size_ = 0;
};

// Fills `batch` windows of T tokens: for b in [0, batch), an offset o_b drawn
// uniformly from [begin, end - T - 1] (inclusive), inputs[b*T + t] = f[o_b + t]
// and targets[b*T + t] = f[o_b + t + 1]. Throws when [begin, end) is not inside
// the file or holds fewer than T + 1 tokens.
void sample_windows(const TokenFile& f, std::int64_t begin, std::int64_t end, std::int64_t batch, std::int64_t T,
                    Rng& rng, std::int64_t* inputs, std::int64_t* targets);

// A uniform integer in [0, n), n > 0 (see the top of this header).
std::int64_t uniform_index(Rng& rng, std::int64_t n);
// Seeded Fisher-Yates shuffle (see the top of this header).
void shuffle_rows(std::span<std::int64_t> v, Rng& rng);

struct Split {
    std::vector<std::int64_t> train, val;  // each sorted ascending
};

// Splits rows 0..rows-1: val is the first round(rows * val_fraction) entries of
// a permutation seeded by `seed`, train the rest; both are returned sorted (the
// BatchSampler shuffles). val_fraction must be in [0, 1); 0 gives an empty val.
// Throws when a non-zero fraction rounds to no validation rows or to no
// training rows.
Split split_rows(std::int64_t rows, double val_fraction, std::uint64_t seed);

// Hands out batches of row indices, epoch by epoch. With shuffle, the order of
// an epoch is a seeded permutation of `rows` that depends on (seed, epoch) only;
// without, it is `rows` as given. Epoch 0 is started by the constructor.
class BatchSampler {
public:
    BatchSampler(std::vector<std::int64_t> rows, std::int64_t batch_size, bool shuffle, std::uint64_t seed);
    void start_epoch(std::int64_t epoch);
    // The next batch of the epoch (the last one may be smaller: nothing is
    // dropped); false once the epoch is exhausted. The span stays valid until
    // the next start_epoch.
    bool next(std::span<const std::int64_t>& batch);
    std::int64_t batches_per_epoch() const;
    std::int64_t samples() const { return static_cast<std::int64_t>(rows_.size()); }
    std::int64_t batch_size() const { return batch_size_; }
    std::int64_t epoch() const { return epoch_; }

private:
    std::vector<std::int64_t> rows_, order_;
    std::int64_t batch_size_;
    bool shuffle_;
    std::uint64_t seed_;
    std::int64_t epoch_ = 0;
    std::size_t pos_ = 0;
};

// Copies src's rows (everything after dim 0) with the given indices, in order,
// contiguously into dst (rows.size() * row bytes; nothing is allocated). Any
// dtype; src must be contiguous. Throws for an index outside [0, src.dim(0)).
void gather_rows(const Tensor& src, std::span<const std::int64_t> rows, void* dst);

}  // namespace mithril::rt
