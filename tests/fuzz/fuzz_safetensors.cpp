// fuzz_safetensors.cpp - the runtime's safetensors reader (and the checkpoint
// metadata reader, which parses the same header). A file that loads must also
// survive a save and a reload unchanged; rt::Error is a clean rejection.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_util.h"
#include "mithril/rt/checkpoint.h"
#include "mithril/rt/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace rt = mithril::rt;
    const auto path = mithril_fuzz::scratch().write("in.safetensors", mithril_fuzz::as_text(data, size));
    try {
        (void)rt::read_checkpoint_metadata(path);
    } catch (const rt::Error&) {
    }
    std::vector<std::pair<std::string, rt::Tensor>> tensors;
    std::map<std::string, std::string> metadata;
    try {
        const rt::SafetensorsFile file(path);
        for (const auto& name : file.names()) tensors.emplace_back(name, file.get(name));
        metadata = file.metadata();
    } catch (const rt::Error&) {
        return 0;
    }
    // What was read must write and read back the same (save rejects only the
    // reserved name "__metadata__", which the reader never returns as a tensor).
    const auto again = mithril_fuzz::scratch().dir() / "again.safetensors";
    rt::save_safetensors(again, tensors, metadata);
    const rt::SafetensorsFile file(again);
    if (file.names().size() != tensors.size() || file.metadata() != metadata)
        throw std::logic_error("safetensors round trip changed the names or the metadata");
    for (const auto& [name, t] : tensors) {
        const rt::Tensor u = file.get(name);
        if (u.dtype() != t.dtype() || u.shape() != t.shape() ||
            (t.nbytes() != 0 && std::memcmp(u.raw_data(), t.raw_data(), t.nbytes()) != 0))
            throw std::logic_error("safetensors round trip changed tensor '" + name + "'");
    }
    return 0;
}
