// fuzz_npy.cpp - the runtime's .npy reader. An input that loads must also
// survive a save and a reload unchanged; rt::Error is a clean rejection.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "fuzz_util.h"
#include "mithril/rt/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace rt = mithril::rt;
    const auto path = mithril_fuzz::scratch().write("in.npy", mithril_fuzz::as_text(data, size));
    rt::Tensor t;
    try {
        t = rt::load_npy(path);
    } catch (const rt::Error&) {
        return 0;
    }
    // What was read must write and read back the same.
    const auto again = mithril_fuzz::scratch().dir() / "again.npy";
    rt::save_npy(again, t);
    const rt::Tensor u = rt::load_npy(again);
    if (u.dtype() != t.dtype() || u.shape() != t.shape() ||
        (t.nbytes() != 0 && std::memcmp(u.raw_data(), t.raw_data(), t.nbytes()) != 0))
        throw std::logic_error("npy round trip changed " + t.type_str() + " into " + u.type_str());
    return 0;
}
