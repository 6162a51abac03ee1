// safetensors.h - read and write safetensors weight files.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON mapping
// tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the byte buffer that follows) plus an optional "__metadata__"
// object of string -> string, then the byte buffer.
//
// SafetensorsFile reads the header and validates everything up front (header
// length vs file size, dtypes, shapes, offsets inside the buffer and consistent
// with dtype*shape, no overlaps); tensor data is read when asked for, straight
// into its destination (a model's weights are never held twice); a BOOL
// element's non-zero byte reads as 1. Every failure
// throws Error naming the file and, where there is one, the tensor.
//
//   mithril::rt::SafetensorsFile w("model.safetensors");
//   w.load_into("block1.conv2.weight", dst, DType::Float32, {16, 16, 3, 3});
//   mithril::rt::save_safetensors("out.safetensors", {{"w", tensor}}, {{"format", "pt"}});
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mithril/rt/tensor.h"

namespace mithril::rt {

struct TensorInfo {
    DType dtype = DType::Float32;
    Shape shape;
    std::size_t begin = 0;  // byte offsets in the data buffer
    std::size_t end = 0;
};

// Safetensors dtype code ("F32", "BF16", ...) <-> DType.
std::string_view safetensors_dtype_code(DType dtype);
DType dtype_from_safetensors_code(std::string_view code);

class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::filesystem::path& path);

    const std::filesystem::path& path() const { return path_; }
    // Tensor names in sorted order.
    std::vector<std::string> names() const;
    bool has(std::string_view name) const;
    // Throws Error naming the file and tensor when `name` is absent.
    const TensorInfo& info(std::string_view name) const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

    // The tensor, read into a new buffer.
    Tensor get(std::string_view name) const;

    // Copies the tensor into dst after checking it is exactly dtype[shape]:
    // "weights file W: parameter 'p' expected float32[16,16,3,3], file holds float32[16,8,3,3]".
    void load_into(std::string_view name, void* dst, DType dtype, const Shape& shape) const;

private:
    std::string what() const;
    // Reads bytes [begin, end) of the data buffer into dst.
    void read_data(const TensorInfo& ti, void* dst) const;

    std::filesystem::path path_;
    std::map<std::string, TensorInfo, std::less<>> tensors_;
    std::map<std::string, std::string> metadata_;
    std::shared_ptr<std::FILE> file_;  // open for the data reads
    std::size_t data_offset_ = 0;      // where the data buffer starts in the file
    std::size_t buffer_size_ = 0;
};

// Writes tensors in sorted name order, header padded with spaces to 8-byte
// alignment, atomically (temp file + rename). Duplicate names throw Error.
void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace mithril::rt
