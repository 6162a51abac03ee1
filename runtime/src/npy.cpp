// npy.cpp - NumPy .npy reader/writer. The header is a Python dict literal,
// e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, parsed
// here by a small strict parser.
#include "mithril/rt/npy.h"

#include <array>
#include <bit>
#include <cstdint>
#include <optional>

#include "mithril/rt/file_io.h"

namespace mithril::rt {

static_assert(std::endian::native == std::endian::little, "the runtime assumes a little-endian host");

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";

struct NpyDescr {
    std::string_view code;  // kind + size, without the byte-order character
    DType dtype;
};
constexpr std::array<NpyDescr, 9> kDescrs{{
    {"f4", DType::Float32}, {"f8", DType::Float64}, {"i4", DType::Int32},
    {"i8", DType::Int64},   {"u1", DType::UInt8},   {"b1", DType::Bool},
    {"u2", DType::UInt16},  {"i1", DType::Int8},    {"f2", DType::Float16},
}};

std::string npy_what(const std::filesystem::path& path) { return "npy file " + path.string(); }

DType dtype_from_descr(const std::string& descr, const std::string& what) {
    std::string_view code = descr;
    char order = '=';
    if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
        order = code[0];
        code.remove_prefix(1);
    }
    for (const auto& d : kDescrs) {
        if (d.code != code) continue;
        if (order == '>' && dtype_size(d.dtype) > 1) break;
        return d.dtype;
    }
    throw Error(what + ": unsupported dtype '" + descr +
                "' (supported: little-endian f4 f8 f2 i4 i8 i1 u1 u2 b1)");
}

std::string descr_of(DType dtype) {
    for (const auto& d : kDescrs)
        if (d.dtype == dtype) return (dtype_size(dtype) == 1 ? "|" : "<") + std::string(d.code);
    throw Error("dtype " + std::string(dtype_name(dtype)) + " cannot be stored in a .npy file");
}

struct NpyHeader {
    DType dtype = DType::Float32;
    bool fortran_order = false;
    Shape shape;
};

// Strict parser for the header dict: exactly the keys descr, fortran_order, shape.
class HeaderParser {
public:
    HeaderParser(std::string_view text, std::string what) : s_(text), what_(std::move(what)) {}

    NpyHeader parse() {
        std::optional<std::string> descr;
        std::optional<bool> fortran;
        std::optional<Shape> shape;
        expect('{');
        while (!peek_is('}')) {
            const std::string key = parse_string();
            expect(':');
            if (key == "descr") descr = parse_descr();
            else if (key == "fortran_order") fortran = parse_bool();
            else if (key == "shape") shape = parse_shape();
            else fail("unexpected key '" + key + "'");
            if (!peek_is('}')) expect(',');
        }
        expect('}');
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected text after the dict");
        if (!descr || !fortran || !shape) fail("header must contain 'descr', 'fortran_order' and 'shape'");
        NpyHeader h;
        h.dtype = dtype_from_descr(*descr, what_);
        h.fortran_order = *fortran;
        h.shape = std::move(*shape);
        return h;
    }

private:
    [[noreturn]] void fail(const std::string& msg) const {
        throw Error(what_ + ": corrupt header: " + msg + " at offset " + std::to_string(pos_) + " of header '" +
                    std::string(s_) + "'");
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
    }
    bool peek_is(char c) {
        skip_ws();
        return pos_ < s_.size() && s_[pos_] == c;
    }
    void expect(char c) {
        if (!peek_is(c)) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    std::string parse_string() {
        skip_ws();
        if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) fail("expected a quoted string");
        const char quote = s_[pos_++];
        const auto end = s_.find(quote, pos_);
        if (end == std::string_view::npos) fail("unterminated string");
        std::string out(s_.substr(pos_, end - pos_));
        pos_ = end + 1;
        return out;
    }
    std::string parse_descr() {
        if (peek_is('[')) fail("structured dtypes are not supported (unsupported dtype)");
        return parse_string();
    }
    bool parse_bool() {
        skip_ws();
        for (auto [word, value] : {std::pair{std::string_view("True"), true}, {std::string_view("False"), false}}) {
            if (s_.substr(pos_, word.size()) == word) {
                pos_ += word.size();
                return value;
            }
        }
        fail("expected True or False");
    }
    std::int64_t parse_int() {
        skip_ws();
        const std::size_t start = pos_;
        std::int64_t v = 0;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
            const int digit = s_[pos_++] - '0';
            if (v > (INT64_MAX - digit) / 10) fail("dimension too large");
            v = v * 10 + digit;
        }
        if (pos_ == start) fail("expected a non-negative integer dimension");
        if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 long suffix
        return v;
    }
    Shape parse_shape() {
        Shape shape;
        expect('(');
        while (!peek_is(')')) {
            shape.push_back(parse_int());
            if (peek_is(',')) ++pos_;
            else if (!peek_is(')')) fail("expected ',' or ')' in shape");
        }
        expect(')');
        return shape;
    }

    std::string_view s_;
    std::string what_;
    std::size_t pos_ = 0;
};

std::uint32_t read_le(const unsigned char* p, int bytes) {
    std::uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

NpyHeader read_header(FileReader& in) {
    unsigned char pre[8];
    if (in.size() < kMagic.size() || in.read_string(kMagic.size(), "magic") != kMagic)
        throw Error(in.what() + ": bad magic (not a NumPy .npy file)");
    in.read(pre, 2, "header");
    const int major = pre[0];
    if (major < 1 || major > 3)
        throw Error(in.what() + ": unsupported format version " + std::to_string(major) + "." + std::to_string(pre[1]));
    const int len_bytes = major == 1 ? 2 : 4;
    in.read(pre, static_cast<std::size_t>(len_bytes), "header");
    const std::uint32_t header_len = read_le(pre, len_bytes);
    const std::string text = in.read_string(header_len, "header");
    NpyHeader h = HeaderParser(text, in.what()).parse();
    try {
        checked_numel(h.shape);
        contiguous_strides(h.shape);
    } catch (const Error& e) {
        throw Error(in.what() + ": " + e.what());
    }
    return h;
}

}  // namespace

Tensor load_npy(const std::filesystem::path& path) {
    FileReader in(path, npy_what(path));
    const NpyHeader h = read_header(in);
    if (h.fortran_order)
        throw Error(in.what() + ": fortran_order=True arrays are not supported; save a C-order array "
                                "(np.ascontiguousarray) instead");
    const auto numel = static_cast<std::uint64_t>(checked_numel(h.shape));
    const std::uint64_t elem = dtype_size(h.dtype);
    if (numel > in.remaining() / elem) {  // compared by division: numel * elem may not fit in 64 bits
        const std::string needs = numel > UINT64_MAX / elem
                                      ? std::to_string(numel) + " elements of " + std::to_string(elem) + " bytes"
                                      : std::to_string(numel * elem) + " bytes";
        throw Error(in.what() + ": truncated data: " + type_str(h.dtype, h.shape) + " needs " + needs + ", found " +
                    std::to_string(in.remaining()));
    }
    const std::uint64_t expected = numel * elem;
    if (expected < in.remaining())
        throw Error(in.what() + ": " + std::to_string(in.remaining() - expected) + " unexpected bytes after the " +
                    std::to_string(expected) + " bytes of " + type_str(h.dtype, h.shape) + " data");
    Tensor t = Tensor::zeros(h.dtype, h.shape);
    in.read(t.raw_data(), t.nbytes(), "data");
    if (h.dtype == DType::Bool) normalize_bools(t.raw_data(), t.nbytes());
    return t;
}

Tensor load_npy_expect(const std::filesystem::path& path, std::string_view name, DType dtype, const Shape& shape) {
    Tensor t;
    try {
        t = load_npy(path);
    } catch (const Error& e) {
        throw Error("input '" + std::string(name) + "': " + e.what());
    }
    if (t.dtype() != dtype || t.shape() != shape)
        throw Error("input '" + std::string(name) + "': expected " + type_str(dtype, shape) + ", file " +
                    path.string() + " holds " + t.type_str());
    return t;
}

void save_npy(const std::filesystem::path& path, const Tensor& tensor) {
    std::string shape = "(";
    for (std::int64_t d : tensor.shape()) shape += std::to_string(d) + ", ";
    if (tensor.ndim() > 1) shape.resize(shape.size() - 2);
    else if (tensor.ndim() == 1) shape.resize(shape.size() - 1);
    shape += ")";
    std::string header = "{'descr': '" + descr_of(tensor.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";

    // Pad with spaces so magic + version + length + header (ending in '\n') is a multiple of 64.
    const bool v1 = header.size() + 1 + 10 <= 65535;
    const std::size_t prefix = v1 ? 10 : 12;
    header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
    header += '\n';

    const Tensor data = tensor.is_contiguous() ? tensor : tensor.clone();
    atomic_write_file(path, [&](FileWriter& w) {
        w.write(kMagic);
        const unsigned char version[2] = {static_cast<unsigned char>(v1 ? 1 : 2), 0};
        w.write(version, 2);
        unsigned char len[4];
        for (std::size_t i = 0; i < 4; ++i) len[i] = static_cast<unsigned char>(header.size() >> (8 * i));
        w.write(len, v1 ? 2 : 4);
        w.write(header);
        w.write(data.raw_data(), data.nbytes());
    });
}

}  // namespace mithril::rt
