// file_io.cpp - atomic writes (temp file + rename) and checked reads.
#include "mithril/rt/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <system_error>

namespace mithril::rt {

namespace {

std::string errno_text() { return std::strerror(errno); }

std::string random_suffix() {
    static thread_local std::mt19937_64 gen{std::random_device{}()};
    const char* hex = "0123456789abcdef";
    std::string s(8, '0');
    auto bits = gen();
    for (char& c : s) {
        c = hex[bits & 15];
        bits >>= 4;
    }
    return s;
}

// Creates a fresh temp file next to `path` ("wbx" = fail if it exists).
std::pair<std::FILE*, std::filesystem::path> create_temp(const std::filesystem::path& path) {
    for (int attempt = 0; attempt < 16; ++attempt) {
        std::filesystem::path tmp = path;
        tmp += ".tmp-" + random_suffix();
        if (std::FILE* f = std::fopen(tmp.c_str(), "wbx")) return {f, tmp};
        if (errno != EEXIST)
            throw Error("cannot write " + path.string() + ": cannot create temporary file " + tmp.string() + ": " +
                        errno_text());
    }
    throw Error("cannot write " + path.string() + ": no free temporary file name");
}

// Makes the rename of a file in `dir` durable. File systems that cannot sync a
// folder (EINVAL, e.g. some network or FUSE mounts) are accepted as they are.
void sync_folder(const std::filesystem::path& dir, const std::filesystem::path& path) {
    const std::filesystem::path folder = dir.empty() ? std::filesystem::path(".") : dir;
    const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == EACCES) return;  // a folder we may write but not read: nothing more we can do
        throw Error("cannot write " + path.string() + ": cannot open folder " + folder.string() +
                    " to sync it: " + errno_text());
    }
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0 && err != EINVAL && err != EROFS)
        throw Error("cannot write " + path.string() + ": syncing folder " + folder.string() +
                    " failed: " + std::strerror(err));
}

}  // namespace

void FileWriter::write(const void* data, std::size_t n) {
    if (n != 0 && std::fwrite(data, 1, n, f_) != n)
        throw Error("cannot write " + path_.string() + ": " + errno_text());
}

void atomic_write_file(const std::filesystem::path& path, const std::function<void(FileWriter&)>& body) {
    auto [f, tmp] = create_temp(path);
    try {
        FileWriter writer(f, path);
        body(writer);
        // Flush and fsync before the rename: after a crash or power loss PATH
        // holds either the old contents or all of the new ones, never a prefix.
        bool ok = std::fflush(f) == 0 && !std::ferror(f);
        int err = ok ? 0 : errno;
        if (ok && ::fsync(::fileno(f)) != 0) {
            ok = false;
            err = errno;
        }
        const bool closed = std::fclose(f) == 0;
        if (ok && !closed) err = errno;
        f = nullptr;
        if (!ok || !closed)
            throw Error("cannot write " + path.string() + ": " + (err != 0 ? std::strerror(err) : "write error"));
        std::error_code ec;
        std::filesystem::rename(tmp, path, ec);
        if (ec) throw Error("cannot write " + path.string() + ": rename from " + tmp.string() + " failed: " + ec.message());
        sync_folder(path.parent_path(), path);
    } catch (...) {
        if (f) std::fclose(f);
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw;
    }
}

FileReader::FileReader(const std::filesystem::path& path, std::string what) : what_(std::move(what)) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw Error(what_ + ": file not found");
    if (std::filesystem::is_directory(path, ec)) throw Error(what_ + ": is a directory, not a file");
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) throw Error(what_ + ": cannot open: " + errno_text());
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) {
        std::fclose(f_);
        throw Error(what_ + ": cannot get file size: " + ec.message());
    }
    size_ = static_cast<std::size_t>(size);
}

FileReader::~FileReader() {
    if (f_) std::fclose(f_);
}

void FileReader::require(std::size_t n, std::string_view part) const {
    if (n > remaining())
        throw Error(what_ + ": truncated " + std::string(part) + ": expected " + std::to_string(n) +
                    " bytes, found " + std::to_string(remaining()));
}

void FileReader::read(void* dst, std::size_t n, std::string_view part) {
    require(n, part);
    if (n != 0 && std::fread(dst, 1, n, f_) != n)
        throw Error(what_ + ": read error in " + std::string(part) + ": " + errno_text());
    pos_ += n;
}

std::string FileReader::read_string(std::size_t n, std::string_view part) {
    require(n, part);  // before allocating n bytes
    std::string s(n, '\0');
    read(s.data(), n, part);
    return s;
}

}  // namespace mithril::rt
