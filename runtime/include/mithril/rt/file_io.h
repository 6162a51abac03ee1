// file_io.h - small file helpers shared by the .npy and safetensors code and
// usable by generated programs: atomic writes and whole/partial reads that
// throw Error naming the file.
//
// atomic_write_file writes to "PATH.tmp-XXXXXXXX" in the same folder and
// renames it over PATH only after every byte was written, so readers never
// see a half-written file; on any failure the temp file is removed.
//
//   mithril::rt::atomic_write_file("out.bin", [&](mithril::rt::FileWriter& w) {
//       w.write(buf.data(), buf.size());
//   });
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "mithril/rt/error.h"

namespace mithril::rt {

class FileWriter {
public:
    FileWriter(std::FILE* f, std::filesystem::path path) : f_(f), path_(std::move(path)) {}
    // Throws Error when fewer than n bytes could be written.
    void write(const void* data, std::size_t n);
    void write(std::string_view s) { write(s.data(), s.size()); }

private:
    std::FILE* f_;
    std::filesystem::path path_;
};

void atomic_write_file(const std::filesystem::path& path, const std::function<void(FileWriter&)>& body);

// Reads an exact byte range of a file; throws Error (naming `what` and the
// file) on open failure or when the file ends early.
class FileReader {
public:
    // `what` prefixes every message, e.g. "npy file x.npy".
    FileReader(const std::filesystem::path& path, std::string what);
    ~FileReader();
    FileReader(const FileReader&) = delete;
    FileReader& operator=(const FileReader&) = delete;

    std::size_t size() const { return size_; }
    std::size_t position() const { return pos_; }
    std::size_t remaining() const { return size_ - pos_; }
    // Reads n bytes; when the file is shorter, throws "<what>: truncated <part>:
    // expected N bytes, found M".
    void read(void* dst, std::size_t n, std::string_view part);
    std::string read_string(std::size_t n, std::string_view part);
    const std::string& what() const { return what_; }

private:
    void require(std::size_t n, std::string_view part) const;

    std::FILE* f_ = nullptr;
    std::string what_;
    std::size_t size_ = 0;
    std::size_t pos_ = 0;
};

}  // namespace mithril::rt
