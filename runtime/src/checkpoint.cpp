// checkpoint.cpp - checkpoint files of a training run (see checkpoint.h).
#include "mithril/rt/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <system_error>

#include "json.h"
#include "mithril/rt/error.h"
#include "mithril/rt/file_io.h"
#include "mithril/rt/safetensors.h"

namespace mithril::rt {

namespace {

constexpr std::string_view kPrefix = "checkpoint-";
constexpr std::string_view kSuffix = ".safetensors";
// A header larger than this is not one we wrote (it would mean ~millions of tensors).
constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{1} << 30;

}  // namespace

std::string checkpoint_filename(std::int64_t step) {
    return std::string(kPrefix) + std::to_string(step) + std::string(kSuffix);
}

std::optional<std::int64_t> checkpoint_step(const std::filesystem::path& file) {
    const std::string name = file.filename().string();
    if (name.size() <= kPrefix.size() + kSuffix.size() || !name.starts_with(kPrefix) || !name.ends_with(kSuffix))
        return std::nullopt;
    const std::string_view digits(name.data() + kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    if (digits.size() > 1 && digits[0] == '0') return std::nullopt;  // we never write leading zeros
    std::int64_t step = 0;
    const auto res = std::from_chars(digits.data(), digits.data() + digits.size(), step);
    if (res.ec != std::errc() || res.ptr != digits.data() + digits.size()) return std::nullopt;
    return step;
}

std::vector<std::filesystem::path> remove_stale_temporaries(const std::filesystem::path& rundir) {
    // atomic_write_file's temp names: "<final name>.tmp-" and 8 lower-case hex digits.
    constexpr std::string_view kTmp = ".tmp-";
    auto is_temp = [&](const std::string& name) {
        const auto at = name.rfind(kTmp);
        if (at == std::string::npos || name.size() != at + kTmp.size() + 8) return false;
        const std::string_view hex(name.data() + at + kTmp.size(), 8);
        const auto is_hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
        return std::all_of(hex.begin(), hex.end(), is_hex) && checkpoint_step(name.substr(0, at)).has_value();
    };
    std::vector<std::filesystem::path> removed;
    std::error_code ec;
    if (!std::filesystem::is_directory(rundir, ec)) return removed;
    std::filesystem::directory_iterator it(rundir, ec);
    if (ec) throw Error("cannot list run folder " + rundir.string() + ": " + ec.message());
    std::vector<std::filesystem::path> stale;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
        std::error_code fec;
        if (is_temp(it->path().filename().string()) && it->is_regular_file(fec)) stale.push_back(it->path());
    }
    if (ec) throw Error("cannot list run folder " + rundir.string() + ": " + ec.message());
    std::sort(stale.begin(), stale.end());
    for (const auto& p : stale) {
        std::error_code rm;
        if (std::filesystem::remove(p, rm)) removed.push_back(p);
    }
    return removed;
}

std::vector<std::pair<std::int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& rundir) {
    std::vector<std::pair<std::int64_t, std::filesystem::path>> out;
    std::error_code ec;
    if (!std::filesystem::exists(rundir, ec)) return out;
    if (!std::filesystem::is_directory(rundir, ec))
        throw Error("run folder " + rundir.string() + " is a file, not a folder: give -o a folder name");
    std::filesystem::directory_iterator it(rundir, ec);
    if (ec) throw Error("cannot list run folder " + rundir.string() + ": " + ec.message());
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
        const auto step = checkpoint_step(it->path());
        std::error_code fec;
        if (step && it->is_regular_file(fec)) out.emplace_back(*step, it->path());
    }
    if (ec) throw Error("cannot list run folder " + rundir.string() + ": " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
}

std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& rundir) {
    auto all = list_checkpoints(rundir);
    if (all.empty()) return std::nullopt;
    return all.back().second;
}

std::filesystem::path save_checkpoint(const std::filesystem::path& rundir, std::int64_t step,
                                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                                      std::map<std::string, std::string> metadata, int keep) {
    if (step < 0) throw Error("checkpoint in " + rundir.string() + ": negative step " + std::to_string(step));
    std::error_code ec;
    std::filesystem::create_directories(rundir, ec);
    if (ec) throw Error("cannot create run folder " + rundir.string() + ": " + ec.message());
    if (!std::filesystem::is_directory(rundir, ec))
        throw Error("run folder " + rundir.string() + " is a file, not a folder: give -o a folder name");
    metadata["step"] = std::to_string(step);
    const std::filesystem::path path = rundir / checkpoint_filename(step);
    save_safetensors(path, tensors, metadata);  // atomic and fsynced; throws on failure

    if (keep > 0) {
        // Only now that the new checkpoint is safely on disk: drop older ones beyond `keep`.
        std::vector<std::filesystem::path> older;
        for (const auto& [s, p] : list_checkpoints(rundir))
            if (s < step) older.push_back(p);
        const auto keep_older = static_cast<std::size_t>(keep - 1);
        if (older.size() > keep_older) {
            for (std::size_t i = 0; i < older.size() - keep_older; ++i) {
                std::error_code rm;
                std::filesystem::remove(older[i], rm);  // one that cannot be removed is left in place
            }
        }
    }
    return path;
}

Checkpoint load_checkpoint(const std::filesystem::path& path) {
    SafetensorsFile file(path);
    Checkpoint c;
    for (const auto& name : file.names()) c.tensors.emplace_back(name, file.get(name));
    c.metadata = file.metadata();
    return c;
}

std::map<std::string, std::string> read_checkpoint_metadata(const std::filesystem::path& path) {
    const std::string what = "checkpoint " + path.string();
    FileReader reader(path, what);
    unsigned char len_bytes[8];
    reader.read(len_bytes, 8, "header length");
    std::uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
    if (len > reader.remaining() || len > kMaxHeaderBytes)
        throw Error(what + ": header length " + std::to_string(len) + " exceeds the file (" +
                    std::to_string(reader.size()) + " bytes): not a safetensors file, or a damaged one");
    const std::string header = reader.read_string(static_cast<std::size_t>(len), "header");
    const json::Value root = json::parse(header, what);
    if (!root.is_object()) throw Error(what + ": header is not a JSON object");
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : std::get<json::Object>(root.v)) {
        if (key != "__metadata__") continue;
        if (!value.is_object()) throw Error(what + ": \"__metadata__\" must be an object of strings");
        for (const auto& [k, v] : std::get<json::Object>(value.v)) {
            if (!v.is_string()) throw Error(what + ": \"__metadata__\" value for \"" + k + "\" is not a string");
            out[k] = std::get<std::string>(v.v);
        }
    }
    return out;
}

void check_rundir(const std::filesystem::path& rundir, const std::string& model_fingerprint,
                  const std::string& model_name) {
    const std::string this_model = (model_name.empty() ? "this model" : "this model '" + model_name + "'") +
                                   " (fingerprint " + model_fingerprint + ")";
    for (const auto& [step, path] : list_checkpoints(rundir)) {
        const auto md = read_checkpoint_metadata(path);
        const auto model = md.find("model");
        if (model == md.end())
            throw Error("run folder " + rundir.string() + " holds " + path.filename().string() +
                        ", which does not say which model it belongs to (no \"model\" metadata), not " + this_model +
                        ": use another -o folder or delete it");
        if (model->second == model_fingerprint) continue;
        const auto name = md.find("model_name");
        const std::string other = name == md.end() ? "another model" : "model '" + name->second + "'";
        throw Error("run folder " + rundir.string() + " holds checkpoints of " + other + " (fingerprint " +
                    model->second + "), not of " + this_model + ": use another -o folder or delete it");
    }
}

std::string fingerprint(std::string_view text) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i) {
        out[static_cast<std::size_t>(i)] = kHex[h & 15];
        h >>= 4;
    }
    return out;
}

}  // namespace mithril::rt
