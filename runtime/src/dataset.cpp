// dataset.cpp - CSV / gzip CSV / .npy tables, memory-mapped token files, and
// seeded splits and batches (see dataset.h).
#include "mithril/rt/dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <numeric>
#include <optional>
#include <utility>

#include "mithril/rt/npy.h"

namespace mithril::rt {

namespace {

std::string errno_text() { return std::strerror(errno); }

// ---------------------------------------------------------------------------
// Byte sources: a plain file or a gzip stream (zlib), read in chunks.

class ByteSource {
public:
    explicit ByteSource(const std::filesystem::path& path) : path_(path) {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) throw Error("CSV file " + path.string() + ": file not found");
        if (std::filesystem::is_directory(path, ec))
            throw Error("CSV file " + path.string() + ": is a directory, not a file");
        file_ = std::fopen(path.c_str(), "rb");
        if (!file_) throw Error("CSV file " + path.string() + ": cannot open: " + errno_text());
        unsigned char magic[2] = {0, 0};
        const std::size_t got = std::fread(magic, 1, 2, file_);
        if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
            std::fclose(file_);
            file_ = nullptr;
            gz_ = gzopen(path.c_str(), "rb");
            if (!gz_) throw Error("CSV file " + path.string() + ": cannot open: " + errno_text());
            gzbuffer(gz_, 1u << 17);
        } else {
            std::rewind(file_);
        }
    }
    ~ByteSource() {
        if (file_) std::fclose(file_);
        if (gz_) gzclose(gz_);
    }
    ByteSource(const ByteSource&) = delete;
    ByteSource& operator=(const ByteSource&) = delete;

    // Reads up to n bytes; 0 at the end of the data. Throws on read errors and
    // on corrupt or truncated gzip data.
    std::size_t read(char* dst, std::size_t n) {
        if (file_) {
            const std::size_t got = std::fread(dst, 1, n, file_);
            if (got < n && std::ferror(file_))
                throw Error("CSV file " + path_.string() + ": read error: " + errno_text());
            return got;
        }
        const int got = gzread(gz_, dst, static_cast<unsigned>(std::min<std::size_t>(n, INT_MAX)));
        int err = Z_OK;
        const char* msg = gzerror(gz_, &err);
        if (err == Z_BUF_ERROR)
            throw Error("CSV file " + path_.string() +
                        ": corrupt gzip data: the compressed stream ends early (truncated file?)");
        if (got < 0 || err != Z_OK) {
            // zlib's message starts with the path it was opened with; drop that.
            std::string text = err == Z_ERRNO ? errno_text() : std::string(msg ? msg : "unknown error");
            const std::string prefix = path_.string() + ": ";
            if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
            throw Error("CSV file " + path_.string() + ": corrupt gzip data (zlib: " + text + ")");
        }
        return static_cast<std::size_t>(got);
    }

private:
    std::filesystem::path path_;
    std::FILE* file_ = nullptr;
    gzFile gz_ = nullptr;
};

// Splits the byte stream into lines (without "\n" or "\r\n"), numbered from 1.
class LineReader {
public:
    explicit LineReader(const std::filesystem::path& path) : src_(path) {}

    // The next line; the view is valid until the next call.
    bool next(std::string_view& line) {
        for (;;) {
            const auto nl = buf_.find('\n', scan_);
            if (nl != std::string::npos) {
                line = std::string_view(buf_).substr(pos_, nl - pos_);
                pos_ = scan_ = nl + 1;
                return finish(line);
            }
            if (eof_) {
                if (pos_ >= buf_.size()) return false;
                line = std::string_view(buf_).substr(pos_);
                pos_ = scan_ = buf_.size();
                return finish(line);
            }
            // Keep the partial line, drop what was consumed, read more.
            buf_.erase(0, pos_);
            scan_ = buf_.size();  // no '\n' in what is left
            pos_ = 0;
            const std::size_t old = buf_.size();
            buf_.resize(old + kChunk);
            const std::size_t got = src_.read(buf_.data() + old, kChunk);
            buf_.resize(old + got);
            if (got == 0) eof_ = true;
        }
    }
    std::int64_t line_no() const { return line_no_; }

private:
    static constexpr std::size_t kChunk = 1u << 16;

    bool finish(std::string_view& line) {
        ++line_no_;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line_no_ == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // UTF-8 BOM
        return true;
    }

    ByteSource src_;
    std::string buf_;
    std::size_t pos_ = 0, scan_ = 0;
    bool eof_ = false;
    std::int64_t line_no_ = 0;
};

// ---------------------------------------------------------------------------
// Numbers.

enum class Num { Ok, NotNumber, OutOfRange };

Num parse_double(std::string_view s, double& v) {
    if (!s.empty() && s[0] == '+') {
        s.remove_prefix(1);
        if (!s.empty() && (s[0] == '+' || s[0] == '-')) return Num::NotNumber;
    }
    if (s.empty()) return Num::NotNumber;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (p != s.data() + s.size()) return Num::NotNumber;
    if (ec == std::errc::result_out_of_range) return Num::OutOfRange;
    return ec == std::errc() ? Num::Ok : Num::NotNumber;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    std::int64_t v = 0;
    if (s.empty()) return std::nullopt;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

// A double that is a non-negative integer class label, exactly representable.
bool class_label_value(double d, std::int64_t& out) {
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740992.0) return false;
    out = static_cast<std::int64_t>(d);
    return true;
}

std::string format_double(double d) {
    char buf[40];
    const auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
    return ec == std::errc() ? std::string(buf, p) : std::to_string(d);
}

float half_to_float(std::uint16_t h) {
    const int exp = (h >> 10) & 31, mant = h & 1023;
    float v;
    if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
    else if (exp == 31) v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    else v = std::ldexp(static_cast<float>(mant + 1024), exp - 25);
    return (h & 0x8000) ? -v : v;
}

// Calls f(i, value-as-double) for every element of a contiguous tensor.
template <class F>
void for_each_value(const Tensor& t, F&& f) {
    const std::int64_t n = t.numel();
    const void* raw = t.raw_data();
    if (t.dtype() == DType::Float16 || t.dtype() == DType::BFloat16) {
        const auto* p = static_cast<const std::uint16_t*>(raw);
        const bool half = t.dtype() == DType::Float16;
        for (std::int64_t i = 0; i < n; ++i)
            f(i, static_cast<double>(half ? half_to_float(p[i])
                                          : std::bit_cast<float>(static_cast<std::uint32_t>(p[i]) << 16)));
        return;
    }
    visit_dtype(t.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* p = static_cast<const T*>(raw);
        for (std::int64_t i = 0; i < n; ++i) f(i, static_cast<double>(p[i]));
    });
}

bool is_integer_dtype(DType d) {
    return d == DType::Int32 || d == DType::Int64 || d == DType::UInt8 || d == DType::UInt16 || d == DType::Int8 ||
           d == DType::Bool;
}

// ---------------------------------------------------------------------------
// CSV fields.

class FieldSplitter {
public:
    FieldSplitter(char delim, std::string file) : delim_(delim), file_(std::move(file)) {}

    const std::vector<std::string_view>& split(std::string_view line, std::int64_t line_no) {
        fields_.clear();
        scratch_.clear();
        std::size_t i = 0;
        if (delim_ == ' ') {
            while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
            while (i < line.size() && line[i] == ' ') ++i;
        }
        const std::size_t end = line.size();
        for (;;) {
            while (i < end && is_pad(line[i])) ++i;
            if (i < end && line[i] == '"') {
                // Quoted field: "" inside stands for one quote.
                std::size_t j = i + 1;
                bool escaped = false;
                for (;;) {
                    const auto q = line.find('"', j);
                    if (q == std::string_view::npos)
                        throw Error(file_ + ":" + std::to_string(line_no) + ": field " +
                                    std::to_string(fields_.size()) +
                                    " has an unterminated quote (quoted fields cannot span lines)");
                    if (q + 1 < end && line[q + 1] == '"') {
                        escaped = true;
                        j = q + 2;
                        continue;
                    }
                    std::string_view inner = line.substr(i + 1, q - i - 1);
                    if (escaped) {
                        std::string& s = scratch_.emplace_back();
                        for (std::size_t k = 0; k < inner.size(); ++k) {
                            s += inner[k];
                            if (inner[k] == '"') ++k;
                        }
                        inner = s;
                    }
                    fields_.push_back(inner);
                    i = q + 1;
                    break;
                }
                while (i < end && is_pad(line[i])) ++i;
                if (i < end && line[i] != delim_)
                    throw Error(file_ + ":" + std::to_string(line_no) +
                                ": unexpected text after the closing quote of field " +
                                std::to_string(fields_.size() - 1));
            } else {
                std::size_t j = line.find(delim_, i);
                if (j == std::string_view::npos) j = end;
                std::size_t e = j;
                while (e > i && is_pad(line[e - 1])) --e;
                fields_.push_back(line.substr(i, e - i));
                i = j;
            }
            if (i >= end) break;
            ++i;  // the delimiter
            if (delim_ == ' ')
                while (i < end && line[i] == ' ') ++i;
        }
        return fields_;
    }

private:
    bool is_pad(char c) const { return (c == ' ' || c == '\t') && c != delim_; }

    char delim_;
    std::string file_;
    std::vector<std::string_view> fields_;
    std::deque<std::string> scratch_;  // unescaped quoted fields (deque: stable references)
};

bool is_blank(std::string_view line) {
    return line.find_first_not_of(" \t") == std::string_view::npos;
}

std::string column_desc(std::int64_t i, const std::vector<std::string>& names, bool has_header) {
    std::string s = "column " + std::to_string(i);
    if (has_header) s += " ('" + names[static_cast<std::size_t>(i)] + "')";
    return s;
}

std::string list_columns(const std::vector<std::string>& names) {
    std::string s;
    const std::size_t n = names.size();
    for (std::size_t i = 0; i < n; ++i) {
        if (n > 24 && i == 10) {
            s += ", ... (" + std::to_string(n - 20) + " more)";
            i = n - 10;
        }
        s += (s.empty() ? "'" : ", '") + names[i] + "'";
    }
    return s;
}

std::string delimiter_name(char c) {
    if (c == '\t') return "'\\t'";
    return std::string("'") + c + "'";
}

// Resolves the label column (by name or index) among `names`.
// `no_names` says why there are no column names to match (when has_header is false).
std::int64_t resolve_label(const std::string& label, const std::vector<std::string>& names, bool has_header,
                           const std::string& file, const std::string& no_names) {
    const auto ncols = static_cast<std::int64_t>(names.size());
    std::vector<std::int64_t> by_name;
    if (has_header)
        for (std::int64_t i = 0; i < ncols; ++i)
            if (names[static_cast<std::size_t>(i)] == label) by_name.push_back(i);
    const auto as_int = parse_int(label);
    std::optional<std::int64_t> by_index;
    if (as_int && *as_int >= -ncols && *as_int < ncols) by_index = *as_int < 0 ? ncols + *as_int : *as_int;
    const std::string range = "an index from " + std::to_string(-ncols) + " to " + std::to_string(ncols - 1);

    if (by_name.size() > 1)
        throw Error(file + ": label column '" + label + "' is ambiguous: columns " + std::to_string(by_name[0]) +
                    " and " + std::to_string(by_name[1]) + " are both named so; give the label column as " + range);
    if (by_name.size() == 1 && by_index && *by_index != by_name[0])
        throw Error(file + ": label column '" + label + "' is ambiguous: column " + std::to_string(by_name[0]) +
                    " is named '" + label + "', and index " + label + " is " +
                    column_desc(*by_index, names, has_header) + "; give the index counted from the end (" +
                    std::to_string(*by_index - ncols) + ") or the column's name");
    if (by_name.size() == 1) return by_name[0];
    if (by_index) return *by_index;
    if (as_int)
        throw Error(file + ": label column index " + label + " is out of range: the file has " +
                    std::to_string(ncols) + " columns, so the index must be from " + std::to_string(-ncols) + " to " +
                    std::to_string(ncols - 1) + " (-1 = the last column)");
    if (!has_header)
        throw Error(file + ": unknown label column '" + label + "': " + no_names + ", so give " + range +
                    " (-1 = the last column)");
    throw Error(file + ": unknown label column '" + label + "'; the columns are " + list_columns(names) + " (or give " +
                range + ")");
}

// scikit-learn's bundled CSVs start with "n_samples,n_features,class names...",
// e.g. "150,4,setosa,versicolor,virginica", not with column names.
bool is_sklearn_header(const std::vector<std::string>& h, std::int64_t data_fields) {
    if (h.size() < 3) return false;
    const auto n = parse_int(h[0]), f = parse_int(h[1]);
    if (!n || !f || *n <= 0 || *f + 1 != data_fields) return false;
    for (std::size_t i = 2; i < h.size(); ++i) {
        double d;
        if (h[i].empty() || parse_double(h[i], d) != Num::NotNumber) return false;
    }
    return true;
}

Tensor float_tensor(const std::vector<float>& v, Shape shape) {
    Tensor t = Tensor::zeros(DType::Float32, std::move(shape));
    if (!v.empty()) std::memcpy(t.raw_data(), v.data(), v.size() * sizeof(float));
    return t;
}

Tensor int64_tensor(const std::vector<std::int64_t>& v) {
    Tensor t = Tensor::zeros(DType::Int64, {static_cast<std::int64_t>(v.size())});
    if (!v.empty()) std::memcpy(t.raw_data(), v.data(), v.size() * sizeof(std::int64_t));
    return t;
}

std::string class_label_hint() {
    return "class labels are non-negative integers (0, 1, 2...); map class names to integers first, or read "
           "regression targets with float_labels";
}

}  // namespace

// ---------------------------------------------------------------------------
// Table

std::int64_t Table::num_features() const {
    if (features.ndim() == 0) return 0;
    if (features.ndim() == 1) return features.dim(0) > 0 ? 1 : 0;
    std::int64_t n = 1;
    for (std::size_t i = 1; i < features.shape().size(); ++i) n *= features.shape()[i];
    return n;
}

Table load_csv(const std::filesystem::path& path, const CsvOptions& opt) {
    const std::string file = path.string();
    if (opt.delimiter == '"' || opt.delimiter == '\n' || opt.delimiter == '\r' || opt.delimiter == '\0')
        throw Error("CSV file " + file + ": invalid delimiter " + delimiter_name(opt.delimiter));
    LineReader in(path);
    FieldSplitter splitter(opt.delimiter, file);
    auto at = [&](std::int64_t line) { return file + ":" + std::to_string(line) + ": "; };

    Table t;
    bool has_header = false, named = false, saw_first = false, any_line = false;
    std::int64_t first_line = 0, cols_line = 0, ncols = 0, label = 0;
    std::vector<std::string> header, names;
    std::vector<float> feats;
    std::vector<std::int64_t> class_labels;
    std::vector<float> float_labels;
    std::int64_t rows = 0;

    std::string_view line;
    while (in.next(line)) {
        any_line = true;
        const std::int64_t ln = in.line_no();
        if (line.find('\0') != std::string_view::npos)
            throw Error(at(ln) + "contains a NUL byte: this is a binary file, not a CSV text file");
        if (is_blank(line)) continue;
        const auto& fields = splitter.split(line, ln);
        const auto nf = static_cast<std::int64_t>(fields.size());

        if (!saw_first) {
            saw_first = true;
            first_line = ln;
            if (nf < 2) {
                std::string hint;
                for (char c : {',', ';', '\t', '|'})
                    if (c != opt.delimiter && line.find(c) != std::string_view::npos) {
                        hint = " (the line contains " + delimiter_name(c) + ": is that the delimiter?)";
                        break;
                    }
                throw Error(at(ln) + "found 1 column with delimiter " + delimiter_name(opt.delimiter) +
                            "; a table needs at least 2 (features and a label)" + hint);
            }
            if (opt.header == CsvHeader::Auto) {
                for (const auto f : fields) {
                    double d;
                    if (!f.empty() && parse_double(f, d) == Num::NotNumber) has_header = true;
                }
            } else {
                has_header = opt.header == CsvHeader::Yes;
            }
            if (has_header) {
                header.assign(fields.begin(), fields.end());
                continue;
            }
        }

        if (ncols == 0) {
            // The first data row: settle the columns and the label.
            ncols = nf;
            cols_line = ln;
            if (has_header && is_sklearn_header(header, nf)) {
                // "150,4,setosa,versicolor,virginica": rows, features, class names.
                t.class_names.assign(header.begin() + 2, header.end());
            } else if (has_header) {
                if (nf != static_cast<std::int64_t>(header.size()))
                    throw Error(at(ln) + "row has " + std::to_string(nf) + " fields, expected " +
                                std::to_string(header.size()) + " (as in the header, line " +
                                std::to_string(first_line) + ")");
                names = header;
                named = true;
                cols_line = first_line;
            }
            if (!named)
                for (std::int64_t i = 0; i < ncols; ++i) names.push_back("c" + std::to_string(i));
            label = resolve_label(opt.label, names, named, "CSV file " + file,
                                  has_header ? "the header gives no column names (scikit-learn style: rows, "
                                               "features, class names)"
                                             : "the file has no header line");
        }

        if (nf != ncols)
            throw Error(at(ln) + "row has " + std::to_string(nf) + " fields, expected " + std::to_string(ncols) +
                        " (as in line " + std::to_string(cols_line) + ")");
        const std::string header_hint =
            (!has_header && ln == first_line && opt.header == CsvHeader::Auto)
                ? " (if line " + std::to_string(ln) +
                      " is a header of numbers, read the file with header = CsvHeader::Yes)"
                : "";
        const std::size_t base = feats.size();
        feats.resize(base + static_cast<std::size_t>(ncols - 1));
        float* out = feats.data() + base;
        for (std::int64_t c = 0; c < ncols; ++c) {
            const std::string_view f = fields[static_cast<std::size_t>(c)];
            double d = 0;
            const Num r = parse_double(f, d);
            if (c == label) {
                if (opt.float_labels) {
                    if (r != Num::Ok || !std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
                        throw Error(at(ln) + "label " + column_desc(c, names, named) + ": '" + std::string(f) +
                                    "' is not a finite float32 number" + header_hint);
                    float_labels.push_back(static_cast<float>(d));
                } else {
                    std::int64_t v = 0;
                    if (r != Num::Ok || !class_label_value(d, v))
                        throw Error(at(ln) + "label " + column_desc(c, names, named) + ": '" + std::string(f) +
                                    "' is not a class label: " + class_label_hint() + header_hint);
                    class_labels.push_back(v);
                }
                continue;
            }
            if (f.empty())
                throw Error(at(ln) + column_desc(c, names, named) +
                            ": empty value (missing values are not supported; fill or drop them first)" + header_hint);
            if (r == Num::NotNumber)
                throw Error(at(ln) + column_desc(c, names, named) + ": '" + std::string(f) + "' is not a number" +
                            header_hint);
            if (r == Num::OutOfRange || !std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
                throw Error(at(ln) + column_desc(c, names, named) + ": '" + std::string(f) +
                            "' is not a finite float32 number" + header_hint);
            *out++ = static_cast<float>(d);
        }
        ++rows;
    }

    if (!any_line) throw Error("CSV file " + file + ": empty file (no header, no data rows)");
    if (!saw_first) throw Error("CSV file " + file + ": no data rows (the file has only blank lines)");
    if (rows == 0)
        throw Error("CSV file " + file + ": no data rows after the header on line " + std::to_string(first_line));

    t.features = float_tensor(feats, {rows, ncols - 1});
    t.labels = opt.float_labels ? float_tensor(float_labels, {rows}) : int64_tensor(class_labels);
    for (std::int64_t c = 0; c < ncols; ++c)
        if (c != label) t.columns.push_back(names[static_cast<std::size_t>(c)]);
    t.label_column = names[static_cast<std::size_t>(label)];
    if (label != ncols - 1 || opt.float_labels) t.class_names.clear();  // they name the last column's classes
    return t;
}

// ---------------------------------------------------------------------------
// .npy tables

namespace {

// Features -> float32 with the same shape (a 1-D array becomes [rows, 1]),
// rejecting NaN/inf and values outside the float32 range.
Tensor npy_features(const Tensor& src, const std::string& what) {
    if (src.ndim() == 0) throw Error(what + ": features must have a row dimension, found a 0-d " + src.type_str());
    if (src.dim(0) == 0) throw Error(what + ": no data rows (" + src.type_str() + ")");
    Shape shape = src.shape();
    if (shape.size() == 1) shape.push_back(1);
    const std::int64_t per_row = src.numel() / src.dim(0);
    Tensor out = src.dtype() == DType::Float32 && src.ndim() > 1 ? src : Tensor::zeros(DType::Float32, shape);
    float* dst = out.data<float>();
    for_each_value(src, [&](std::int64_t i, double v) {
        if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max())
            throw Error(what + ": value " + format_double(v) + " at row " + std::to_string(i / per_row) +
                        " (flat index " + std::to_string(i) + ") is not a finite float32 number");
        dst[i] = static_cast<float>(v);
    });
    return out;
}

std::vector<std::string> c_names(std::int64_t n, std::int64_t skip = -1) {
    std::vector<std::string> v;
    for (std::int64_t i = 0; i < n; ++i)
        if (i != skip) v.push_back("c" + std::to_string(i));
    return v;
}

}  // namespace

Table load_npy_table(const std::filesystem::path& features, const std::filesystem::path& labels) {
    const std::string fwhat = "features " + features.string(), lwhat = "labels " + labels.string();
    const Tensor x = load_npy(features);
    const Tensor y = load_npy(labels);
    Table t;
    t.features = npy_features(x, fwhat);
    const std::int64_t rows = t.features.dim(0);
    if (y.ndim() == 0 || y.ndim() > 2 || (y.ndim() == 2 && y.dim(1) != 1))
        throw Error(lwhat + ": labels must have shape [rows] or [rows, 1], found " + y.type_str());
    if (y.dim(0) != rows)
        throw Error("features " + features.string() + " has " + std::to_string(rows) + " rows (" + x.type_str() +
                    ") but labels " + labels.string() + " has " + std::to_string(y.dim(0)) + " (" + y.type_str() +
                    "); they must have one label per row");
    if (is_integer_dtype(y.dtype())) {
        t.labels = Tensor::zeros(DType::Int64, {rows});
        auto* dst = t.labels.data<std::int64_t>();
        visit_dtype(y.dtype(), [&](auto tag) {
            using T = decltype(tag);
            const T* p = static_cast<const T*>(y.raw_data());
            for (std::int64_t i = 0; i < rows; ++i) {
                const auto v = static_cast<std::int64_t>(p[i]);
                if (v < 0)
                    throw Error(lwhat + ": value " + std::to_string(v) + " at row " + std::to_string(i) +
                                " is not a class label: " + class_label_hint());
                dst[i] = v;
            }
        });
    } else {
        t.labels = Tensor::zeros(DType::Float32, {rows});
        auto* dst = t.labels.data<float>();
        for_each_value(y, [&](std::int64_t i, double v) {
            if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max())
                throw Error(lwhat + ": value " + format_double(v) + " at row " + std::to_string(i) +
                            " is not a finite float32 number");
            dst[i] = static_cast<float>(v);
        });
    }
    t.columns = c_names(t.num_features());
    t.label_column = labels.filename().string();
    return t;
}

Table load_npy_table(const std::filesystem::path& both, const std::string& label, bool float_labels) {
    const std::string what = "npy table " + both.string();
    const auto idx = parse_int(label);
    if (!idx) {
        std::string hint;
        if (label.size() > 4 && label.substr(label.size() - 4) == ".npy")
            hint = "; to read features and labels from two files, pass both as std::filesystem::path";
        throw Error(what + ": the label column of a .npy table must be an integer index (-1 = the last column), got '" +
                    label + "'" + hint);
    }
    const Tensor a = load_npy(both);
    if (a.ndim() != 2)
        throw Error(what + ": expected a 2-D array [rows, columns] holding the label as a column, found " +
                    a.type_str() + "; save features and labels as two .npy files instead");
    const std::int64_t rows = a.dim(0), cols = a.dim(1);
    if (rows == 0) throw Error(what + ": no data rows (" + a.type_str() + ")");
    if (cols < 2) throw Error(what + ": needs at least 2 columns (features and a label), found " + a.type_str());
    if (*idx < -cols || *idx >= cols)
        throw Error(what + ": label column index " + label + " is out of range for " + std::to_string(cols) +
                    " columns: it must be from " + std::to_string(-cols) + " to " + std::to_string(cols - 1) +
                    " (-1 = the last column)");
    const std::int64_t lc = *idx < 0 ? cols + *idx : *idx;

    Table t;
    t.features = Tensor::zeros(DType::Float32, {rows, cols - 1});
    float* fx = t.features.data<float>();
    t.labels = Tensor::zeros(float_labels ? DType::Float32 : DType::Int64, {rows});
    void* ly = t.labels.raw_data();
    for_each_value(a, [&](std::int64_t i, double v) {
        const std::int64_t r = i / cols, c = i % cols;
        if (c == lc) {
            if (float_labels) {
                if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max())
                    throw Error(what + ": label " + format_double(v) + " at row " + std::to_string(r) + " (column " +
                                std::to_string(c) + ") is not a finite float32 number");
                static_cast<float*>(ly)[r] = static_cast<float>(v);
            } else {
                std::int64_t k = 0;
                if (!class_label_value(v, k))
                    throw Error(what + ": label " + format_double(v) + " at row " + std::to_string(r) + " (column " +
                                std::to_string(c) + ") is not a class label: " + class_label_hint());
                static_cast<std::int64_t*>(ly)[r] = k;
            }
            return;
        }
        if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max())
            throw Error(what + ": value " + format_double(v) + " at row " + std::to_string(r) + ", column " +
                        std::to_string(c) + " is not a finite float32 number");
        fx[r * (cols - 1) + (c < lc ? c : c - 1)] = static_cast<float>(v);
    });
    t.columns = c_names(cols, lc);
    t.label_column = "c" + std::to_string(lc);
    return t;
}

void check_class_labels(const Table& t, std::int64_t classes, const std::string& what) {
    if (classes <= 0)
        throw Error("labels in " + what + ": the model must have at least 1 class, got " + std::to_string(classes));
    if (t.labels.dtype() != DType::Int64)
        throw Error("labels in " + what + " are " + t.labels.type_str() +
                    ", not int64 class indices; a classifier needs integer class labels (for .npy labels save "
                    "y.astype(np.int64); for CSV do not set float_labels)");
    if (t.labels.numel() != t.rows())
        throw Error("labels in " + what + ": " + std::to_string(t.labels.numel()) + " labels for " +
                    std::to_string(t.rows()) + " rows");
    const std::int64_t* y = t.labels.data<std::int64_t>();
    const std::int64_t n = t.labels.numel();
    std::int64_t bad = 0, first = -1, lo = 0, hi = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        lo = std::min(lo, y[i]);
        hi = std::max(hi, y[i]);
        if (y[i] < 0 || y[i] >= classes) {
            if (first < 0) first = i;
            ++bad;
        }
    }
    if (bad == 0) return;
    std::string extra = "labels must be in 0.." + std::to_string(classes - 1) + "; " + std::to_string(bad) + " of " +
                        std::to_string(n) + " rows are outside";
    if (lo < 0) extra += ", the smallest label is " + std::to_string(lo);
    if (hi >= classes)
        extra += ", the largest label is " + std::to_string(hi) + ": does the model need " + std::to_string(hi + 1) +
                 " classes?";
    throw Error("labels in " + what + ": value " + std::to_string(y[first]) + " at row " + std::to_string(first) +
                " is out of range for a model with " + std::to_string(classes) + " classes (" + extra + ")");
}

// ---------------------------------------------------------------------------
// Token files

TokenFile::TokenFile(const std::filesystem::path& path, DType dtype) : path_(path), dtype_(dtype) {
    const std::string what = "token file " + path.string();
    if (dtype != DType::UInt8 && dtype != DType::UInt16 && dtype != DType::Int32)
        throw Error(what + ": token dtype must be uint8 (bytes), uint16 or int32, got " + std::string(dtype_name(dtype)));
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) throw Error(what + ": file not found");
        throw Error(what + ": cannot open: " + errno_text());
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const std::string e = errno_text();
        ::close(fd);
        throw Error(what + ": cannot stat: " + e);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(what + ": not a regular file");
    }
    const auto bytes = static_cast<std::size_t>(st.st_size);
    const std::size_t esz = dtype_size(dtype);
    if (bytes == 0) {
        ::close(fd);
        throw Error(what + ": empty file (no tokens)");
    }
    if (bytes % esz != 0) {
        ::close(fd);
        throw Error(what + ": size " + std::to_string(bytes) + " bytes is not a multiple of " + std::to_string(esz) +
                    " (the size of a " + std::string(dtype_name(dtype)) +
                    " token): is the dtype right, or is the file truncated?");
    }
    void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);
    if (p == MAP_FAILED)
        throw Error(what + ": cannot memory-map " + std::to_string(bytes) + " bytes: " + std::strerror(map_errno));
    data_ = p;
    bytes_ = bytes;
    size_ = static_cast<std::int64_t>(bytes / esz);
}

void TokenFile::release() noexcept {
    if (data_) ::munmap(const_cast<void*>(data_), bytes_);
    data_ = nullptr;
    bytes_ = 0;
    size_ = 0;
}

TokenFile::~TokenFile() { release(); }

TokenFile::TokenFile(TokenFile&& other) noexcept
    : path_(std::move(other.path_)),
      dtype_(other.dtype_),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      size_(std::exchange(other.size_, 0)) {}

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
    if (this != &other) {
        release();
        path_ = std::move(other.path_);
        dtype_ = other.dtype_;
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void TokenFile::check_vocab(std::int64_t vocab) const {
    const std::string what = "token file " + path_.string();
    if (vocab <= 0) throw Error(what + ": vocabulary size must be positive, got " + std::to_string(vocab));
    if (dtype_ == DType::UInt16 && vocab > 65535) return;  // every uint16 token fits
    if (dtype_ == DType::UInt8 && vocab > 255) return;
    std::int64_t lo = 0, hi = 0;
    // One vectorizable pass for the range; a second only when something is out of it.
    if (dtype_ == DType::UInt8) {
        const auto* p = static_cast<const std::uint8_t*>(data_);
        std::uint8_t m = 0;
        for (std::int64_t i = 0; i < size_; ++i) m = std::max(m, p[i]);
        hi = m;
    } else if (dtype_ == DType::UInt16) {
        const auto* p = static_cast<const std::uint16_t*>(data_);
        std::uint16_t m = 0;
        for (std::int64_t i = 0; i < size_; ++i) m = std::max(m, p[i]);
        hi = m;
    } else {
        const auto* p = static_cast<const std::int32_t*>(data_);
        std::int32_t mn = std::numeric_limits<std::int32_t>::max(), mx = std::numeric_limits<std::int32_t>::min();
        for (std::int64_t i = 0; i < size_; ++i) {
            mn = std::min(mn, p[i]);
            mx = std::max(mx, p[i]);
        }
        lo = mn;
        hi = mx;
    }
    if (lo >= 0 && hi < vocab) return;
    std::int64_t first = -1, bad = 0;
    for (std::int64_t i = 0; i < size_; ++i) {
        const std::int64_t v = (*this)[i];
        if (v < 0 || v >= vocab) {
            if (first < 0) first = i;
            ++bad;
        }
    }
    std::string extra = std::to_string(bad) + " of " + std::to_string(size_) + " tokens are outside";
    if (lo < 0) extra += ", the smallest is " + std::to_string(lo);
    if (hi >= vocab) extra += ", the largest is " + std::to_string(hi);
    extra += "; check the model's vocab_size and the tokenizer, and that the file holds " +
             std::string(dtype_name(dtype_)) + " tokens";
    throw Error(what + ": token " + std::to_string((*this)[first]) + " at position " + std::to_string(first) +
                " is outside the vocabulary of " + std::to_string(vocab) + " (" + extra + ")");
}

void sample_windows(const TokenFile& f, std::int64_t begin, std::int64_t end, std::int64_t batch, std::int64_t T,
                    Rng& rng, std::int64_t* inputs, std::int64_t* targets) {
    const std::string what = "token file " + f.path().string();
    if (batch <= 0 || T <= 0)
        throw Error(what + ": sample_windows needs batch > 0 and T > 0, got batch " + std::to_string(batch) + ", T " +
                    std::to_string(T));
    if (begin < 0 || end > f.size() || begin > end)
        throw Error(what + ": token range [" + std::to_string(begin) + ", " + std::to_string(end) +
                    ") is not inside the file's " + std::to_string(f.size()) + " tokens");
    if (end - begin < T + 1)
        throw Error(what + ": token range [" + std::to_string(begin) + ", " + std::to_string(end) + ") has " +
                    std::to_string(end - begin) + " tokens, but a window of T = " + std::to_string(T) +
                    " needs T + 1 = " + std::to_string(T + 1) +
                    " (inputs plus the next token as target); use a shorter context or more data");
    if (!inputs || !targets) throw Error(what + ": sample_windows: null output buffer");
    const std::int64_t choices = end - begin - T;  // offsets begin .. end - T - 1
    auto fill = [&](const auto* tok) {
        for (std::int64_t b = 0; b < batch; ++b) {
            const std::int64_t o = begin + uniform_index(rng, choices);
            const auto* src = tok + o;
            std::int64_t* in = inputs + b * T;
            std::int64_t* tg = targets + b * T;
            for (std::int64_t t = 0; t < T; ++t) {
                in[t] = static_cast<std::int64_t>(src[t]);
                tg[t] = static_cast<std::int64_t>(src[t + 1]);
            }
        }
    };
    if (f.dtype() == DType::UInt8) fill(static_cast<const std::uint8_t*>(f.data()));
    else if (f.dtype() == DType::UInt16) fill(static_cast<const std::uint16_t*>(f.data()));
    else fill(static_cast<const std::int32_t*>(f.data()));
}

// ---------------------------------------------------------------------------
// Seeded permutations, splits, batches

std::int64_t uniform_index(Rng& rng, std::int64_t n) {
    if (n <= 0) throw Error("uniform_index: n must be positive, got " + std::to_string(n));
    const auto k = static_cast<std::int64_t>(rng.uniform() * static_cast<double>(n));
    return k < n ? k : n - 1;
}

void shuffle_rows(std::span<std::int64_t> v, Rng& rng) {
    for (std::size_t i = v.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(uniform_index(rng, static_cast<std::int64_t>(i)));
        std::swap(v[i - 1], v[j]);
    }
}

Split split_rows(std::int64_t rows, double val_fraction, std::uint64_t seed) {
    if (rows < 0) throw Error("split_rows: row count must not be negative, got " + std::to_string(rows));
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        throw Error("validation fraction must be in [0, 1) (0 = no validation rows), got " +
                    format_double(val_fraction));
    const auto nval = static_cast<std::int64_t>(std::llround(static_cast<double>(rows) * val_fraction));
    if (val_fraction > 0 && nval == 0)
        throw Error("validation fraction " + format_double(val_fraction) + " of " + std::to_string(rows) +
                    " rows rounds to no validation rows; use a larger fraction, or 0 for no validation");
    if (nval >= rows && rows > 0)
        throw Error("validation fraction " + format_double(val_fraction) + " of " + std::to_string(rows) +
                    " rows leaves no training rows; use a smaller fraction");
    std::vector<std::int64_t> perm(static_cast<std::size_t>(rows));
    std::iota(perm.begin(), perm.end(), std::int64_t{0});
    Rng rng(seed);
    shuffle_rows(perm, rng);
    Split s;
    s.val.assign(perm.begin(), perm.begin() + nval);
    s.train.assign(perm.begin() + nval, perm.end());
    std::sort(s.val.begin(), s.val.end());
    std::sort(s.train.begin(), s.train.end());
    return s;
}

namespace {
std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
}  // namespace

BatchSampler::BatchSampler(std::vector<std::int64_t> rows, std::int64_t batch_size, bool shuffle, std::uint64_t seed)
    : rows_(std::move(rows)), batch_size_(batch_size), shuffle_(shuffle), seed_(seed) {
    if (batch_size <= 0) throw Error("batch size must be positive, got " + std::to_string(batch_size));
    order_.reserve(rows_.size());
    start_epoch(0);
}

void BatchSampler::start_epoch(std::int64_t epoch) {
    if (epoch < 0) throw Error("BatchSampler: epoch must not be negative, got " + std::to_string(epoch));
    epoch_ = epoch;
    order_.assign(rows_.begin(), rows_.end());
    if (shuffle_) {
        // The epoch's generator depends on (seed, epoch) only.
        Rng rng(mix64(seed_ ^ mix64(static_cast<std::uint64_t>(epoch) + 0x9E3779B97F4A7C15ull)));
        shuffle_rows(order_, rng);
    }
    pos_ = 0;
}

bool BatchSampler::next(std::span<const std::int64_t>& batch) {
    if (pos_ >= order_.size()) return false;
    const std::size_t n = std::min(order_.size() - pos_, static_cast<std::size_t>(batch_size_));
    batch = std::span<const std::int64_t>(order_.data() + pos_, n);
    pos_ += n;
    return true;
}

std::int64_t BatchSampler::batches_per_epoch() const {
    return (static_cast<std::int64_t>(rows_.size()) + batch_size_ - 1) / batch_size_;
}

void gather_rows(const Tensor& src, std::span<const std::int64_t> rows, void* dst) {
    if (src.ndim() == 0) throw Error("gather_rows: a 0-d " + src.type_str() + " has no rows");
    if (!src.is_contiguous()) throw Error("gather_rows: the source " + src.type_str() + " must be contiguous");
    const std::int64_t n = src.dim(0);
    if (rows.empty()) return;
    if (!dst) throw Error("gather_rows: null destination");
    std::size_t row_bytes = dtype_size(src.dtype());
    for (std::size_t i = 1; i < src.shape().size(); ++i) row_bytes *= static_cast<std::size_t>(src.shape()[i]);
    const auto* base = static_cast<const unsigned char*>(src.raw_data());
    auto* out = static_cast<unsigned char*>(dst);
    for (const std::int64_t r : rows) {
        if (r < 0 || r >= n)
            throw Error("gather_rows: row " + std::to_string(r) + " is out of range for " + src.type_str() + " (" +
                        std::to_string(n) + " rows)");
        std::memcpy(out, base + static_cast<std::size_t>(r) * row_bytes, row_bytes);
        out += row_bytes;
    }
}

}  // namespace mithril::rt
