// safetensors.cpp - safetensors reader (strict validation of the JSON header
// and offsets) and atomic writer.
#include "mithril/rt/safetensors.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <sys/types.h>

#include "json.h"
#include "mithril/rt/file_io.h"

namespace mithril::rt {

namespace {

struct StCode {
    std::string_view code;
    DType dtype;
};
constexpr std::array<StCode, 10> kCodes{{
    {"F32", DType::Float32}, {"F64", DType::Float64}, {"I32", DType::Int32}, {"I64", DType::Int64},
    {"U8", DType::UInt8},    {"BOOL", DType::Bool},   {"U16", DType::UInt16}, {"I8", DType::Int8},
    {"F16", DType::Float16}, {"BF16", DType::BFloat16},
}};

constexpr std::string_view kMetadataKey = "__metadata__";

std::string ranges_str(std::size_t begin, std::size_t end) {
    return "[" + std::to_string(begin) + "," + std::to_string(end) + "]";
}

// Validates one header entry (name -> {dtype, shape, data_offsets}).
class EntryParser {
public:
    EntryParser(std::string what, std::size_t buffer_size) : what_(std::move(what)), buffer_size_(buffer_size) {}

    TensorInfo parse(const std::string& name, const json::Value& v) const {
        const std::string where = what_ + ": tensor '" + name + "'";
        if (!v.is_object()) throw Error(where + ": entry is not a JSON object");
        const json::Value* dtype = nullptr;
        const json::Value* shape = nullptr;
        const json::Value* offsets = nullptr;
        for (const auto& [key, value] : std::get<json::Object>(v.v)) {
            if (key == "dtype") dtype = &value;
            else if (key == "shape") shape = &value;
            else if (key == "data_offsets") offsets = &value;
            else throw Error(where + ": unexpected key \"" + key + "\"");
        }
        if (!dtype || !shape || !offsets) throw Error(where + ": entry needs \"dtype\", \"shape\" and \"data_offsets\"");
        TensorInfo info;
        if (!dtype->is_string()) throw Error(where + ": \"dtype\" must be a string");
        try {
            info.dtype = dtype_from_safetensors_code(std::get<std::string>(dtype->v));
        } catch (const Error& e) {
            throw Error(where + ": " + e.what());
        }
        info.shape = parse_shape(*shape, where);
        parse_offsets(*offsets, where, info);
        return info;
    }

private:
    static std::uint64_t as_unsigned(const json::Value& v, const std::string& where, const char* field) {
        if (!v.is_unsigned()) throw Error(where + ": \"" + field + "\" must hold non-negative integers");
        return std::get<std::uint64_t>(v.v);
    }

    static Shape parse_shape(const json::Value& v, const std::string& where) {
        if (!v.is_array()) throw Error(where + ": \"shape\" must be an array");
        Shape shape;
        for (const auto& d : std::get<json::Array>(v.v)) {
            const auto u = as_unsigned(d, where, "shape");
            if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                throw Error(where + ": dimension too large");
            shape.push_back(static_cast<std::int64_t>(u));
        }
        try {
            checked_numel(shape);
            contiguous_strides(shape);
        } catch (const Error& e) {
            throw Error(where + ": " + e.what());
        }
        return shape;
    }

    void parse_offsets(const json::Value& v, const std::string& where, TensorInfo& info) const {
        if (!v.is_array() || std::get<json::Array>(v.v).size() != 2)
            throw Error(where + ": \"data_offsets\" must be [begin, end]");
        const auto& arr = std::get<json::Array>(v.v);
        const auto begin = as_unsigned(arr[0], where, "data_offsets");
        const auto end = as_unsigned(arr[1], where, "data_offsets");
        if (begin > end) throw Error(where + ": data_offsets " + ranges_str(begin, end) + " has begin > end");
        if (end > buffer_size_)
            throw Error(where + ": data_offsets " + ranges_str(begin, end) + " past the end of the " +
                        std::to_string(buffer_size_) + "-byte data buffer");
        const auto numel = static_cast<std::uint64_t>(checked_numel(info.shape));
        const auto elem = dtype_size(info.dtype);
        if (numel > std::numeric_limits<std::uint64_t>::max() / elem || end - begin != numel * elem)
            throw Error(where + ": data_offsets " + ranges_str(begin, end) + " span " + std::to_string(end - begin) +
                        " bytes but " + type_str(info.dtype, info.shape) + " needs " + std::to_string(numel * elem));
        info.begin = begin;
        info.end = end;
    }

    std::string what_;
    std::size_t buffer_size_;
};

std::map<std::string, std::string> parse_metadata(const json::Value& v, const std::string& what) {
    if (!v.is_object()) throw Error(what + ": \"__metadata__\" must be an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : std::get<json::Object>(v.v)) {
        if (!value.is_string()) throw Error(what + ": \"__metadata__\" value for \"" + key + "\" is not a string");
        out[key] = std::get<std::string>(value.v);
    }
    return out;
}

// Non-empty tensors must not share bytes.
void check_no_overlap(const std::map<std::string, TensorInfo, std::less<>>& tensors, const std::string& what) {
    std::vector<const std::pair<const std::string, TensorInfo>*> order;
    for (const auto& entry : tensors)
        if (entry.second.end > entry.second.begin) order.push_back(&entry);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->second.begin < b->second.begin; });
    for (std::size_t i = 1; i < order.size(); ++i) {
        const auto& [prev_name, prev] = *order[i - 1];
        const auto& [name, cur] = *order[i];
        if (cur.begin < prev.end)
            throw Error(what + ": tensor '" + name + "' data_offsets " + ranges_str(cur.begin, cur.end) +
                        " overlap tensor '" + prev_name + "' " + ranges_str(prev.begin, prev.end));
    }
}

std::string header_entry(const TensorInfo& info) {
    std::string shape = "[";
    for (std::size_t i = 0; i < info.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(info.shape[i]);
    return "{\"dtype\":\"" + std::string(safetensors_dtype_code(info.dtype)) + "\",\"shape\":" + shape +
           "],\"data_offsets\":[" + std::to_string(info.begin) + "," + std::to_string(info.end) + "]}";
}

}  // namespace

std::string_view safetensors_dtype_code(DType dtype) {
    for (const auto& c : kCodes)
        if (c.dtype == dtype) return c.code;
    throw Error("invalid dtype value");
}

DType dtype_from_safetensors_code(std::string_view code) {
    for (const auto& c : kCodes)
        if (c.code == code) return c.dtype;
    throw Error("unsupported dtype \"" + std::string(code) + "\" (supported: F32 F64 I32 I64 U8 BOOL U16 I8 F16 BF16)");
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
    FileReader in(path, what());
    if (in.size() < 8)
        throw Error(what() + ": truncated: file is " + std::to_string(in.size()) +
                    " bytes, too small for the 8-byte header length");
    unsigned char len_bytes[8];
    in.read(len_bytes, 8, "header length");
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
    if (header_len > in.remaining())
        throw Error(what() + ": header length " + std::to_string(header_len) + " exceeds the " +
                    std::to_string(in.remaining()) + " bytes after the length field (truncated or corrupt file)");
    const std::string header = in.read_string(static_cast<std::size_t>(header_len), "header");
    buffer_size_ = in.remaining();

    const json::Value root = json::parse(header, what());
    if (!root.is_object()) throw Error(what() + ": header JSON is not an object");
    const EntryParser entries(what(), buffer_size_);
    for (const auto& [name, value] : std::get<json::Object>(root.v)) {
        if (name == kMetadataKey) metadata_ = parse_metadata(value, what());
        else tensors_.emplace(name, entries.parse(name, value));
    }
    check_no_overlap(tensors_, what());

    data_offset_ = in.position();
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw Error(what() + ": cannot open: " + std::strerror(errno));
    file_ = std::shared_ptr<std::FILE>(f, [](std::FILE* q) { std::fclose(q); });
}

void SafetensorsFile::read_data(const TensorInfo& ti, void* dst) const {
    const std::size_t n = ti.end - ti.begin;
    if (n == 0) return;
    // The header was checked against the file's size; a file cut short since reads short.
    if (fseeko(file_.get(), static_cast<off_t>(data_offset_ + ti.begin), SEEK_SET) != 0 ||
        std::fread(dst, 1, n, file_.get()) != n)
        throw Error(what() + ": truncated data: cannot read bytes " + std::to_string(ti.begin) + ".." +
                    std::to_string(ti.end) + " of the data buffer (was the file changed while loading?)");
    if (ti.dtype == DType::Bool) normalize_bools(dst, n);
}

std::string SafetensorsFile::what() const { return "weights file " + path_.string(); }

std::vector<std::string> SafetensorsFile::names() const {
    std::vector<std::string> out;
    for (const auto& entry : tensors_) out.push_back(entry.first);
    return out;
}

bool SafetensorsFile::has(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end())
        throw Error(what() + ": parameter '" + std::string(name) + "' not found (the file holds " +
                    std::to_string(tensors_.size()) + " tensors)");
    return it->second;
}

Tensor SafetensorsFile::get(std::string_view name) const {
    const TensorInfo& ti = info(name);
    Tensor t = Tensor::zeros(ti.dtype, ti.shape);
    read_data(ti, t.raw_data());
    return t;
}

void SafetensorsFile::load_into(std::string_view name, void* dst, DType dtype, const Shape& shape) const {
    const TensorInfo& ti = info(name);
    if (ti.dtype != dtype || ti.shape != shape)
        throw Error(what() + ": parameter '" + std::string(name) + "' expected " + type_str(dtype, shape) +
                    ", file holds " + type_str(ti.dtype, ti.shape));
    read_data(ti, dst);
}

void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    std::vector<const std::pair<std::string, Tensor>*> order;
    for (const auto& entry : tensors) order.push_back(&entry);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
    for (std::size_t i = 0; i < order.size(); ++i) {
        if (order[i]->first == kMetadataKey)
            throw Error("cannot write " + path.string() + ": tensor name \"__metadata__\" is reserved");
        if (i > 0 && order[i]->first == order[i - 1]->first)
            throw Error("cannot write " + path.string() + ": duplicate tensor name '" + order[i]->first + "'");
    }

    std::string header = "{";
    if (!metadata.empty()) {
        header += json::quote(kMetadataKey) + ":{";
        for (const auto& [k, v] : metadata) header += json::quote(k) + ":" + json::quote(v) + ",";
        header.back() = '}';
        header += ",";
    }
    std::size_t offset = 0;
    for (const auto* entry : order) {
        const Tensor& t = entry->second;
        const TensorInfo info{t.dtype(), t.shape(), offset, offset + t.nbytes()};
        header += json::quote(entry->first) + ":" + header_entry(info) + ",";
        offset = info.end;
    }
    if (header.size() > 1) header.pop_back();
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' ');

    atomic_write_file(path, [&](FileWriter& w) {
        unsigned char len[8];
        for (std::size_t i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(std::uint64_t{header.size()} >> (8 * i));
        w.write(len, 8);
        w.write(header);
        for (const auto* entry : order) {
            const Tensor& t = entry->second;
            const Tensor data = t.is_contiguous() ? t : t.clone();
            w.write(data.raw_data(), data.nbytes());
        }
    });
}

}  // namespace mithril::rt
