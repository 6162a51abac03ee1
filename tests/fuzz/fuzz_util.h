// fuzz_util.h - helpers shared by the fuzz targets: the libFuzzer entry point
// and a scratch folder for the files the readers under test open.
//
// Each target defines LLVMFuzzerTestOneInput. It catches the clean error types
// (mithril::CompileError, mithril::rt::Error) itself; anything else that
// escapes (std::bad_alloc, std::logic_error, ...) is a finding, and so is a
// crash or a sanitizer report. The same sources build as libFuzzer binaries
// (clang, MITHRIL_FUZZ=ON) and with standalone_main.cpp as `fuzz_<name>_check`.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace mithril_fuzz {

// A folder of this process's own, removed at exit: TMPDIR/mithril-fuzz-<pid>.
class Scratch {
public:
    Scratch() {
        std::error_code ec;
        dir_ = std::filesystem::temp_directory_path(ec);
        if (ec) dir_ = "/tmp";
        dir_ /= "mithril-fuzz-" + std::to_string(::getpid());
        std::filesystem::create_directories(dir_);
    }
    ~Scratch() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    // Writes `bytes` to DIR/name (replacing it) and returns the path.
    std::filesystem::path write(const std::string& name, std::string_view bytes) const {
        const std::filesystem::path p = dir_ / name;
        std::FILE* f = std::fopen(p.c_str(), "wb");
        if (!f) throw std::runtime_error("fuzz: cannot write " + p.string());
        const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
        if (std::fclose(f) != 0 || !ok) throw std::runtime_error("fuzz: cannot write " + p.string());
        return p;
    }
    const std::filesystem::path& dir() const { return dir_; }

private:
    std::filesystem::path dir_;
};

inline const Scratch& scratch() {
    static const Scratch s;
    return s;
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

}  // namespace mithril_fuzz
