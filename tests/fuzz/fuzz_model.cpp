// fuzz_model.cpp - the model-file loader and the front end, as `mithril check`
// runs them: load, flatten, order, infer, verify, then the summaries; a model
// that checks is checked again with gradients (the autodiff pass).
//
// The input is written to a file named model.json when its first non-blank byte
// is '{' or '[', else model.yaml. A CompileError is a clean rejection; any other
// exception (std::logic_error from verify_graph, std::bad_alloc, ...) escapes
// and is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "driver/check.h"
#include "fuzz_util.h"
#include "support/diag.h"

namespace {

bool looks_like_json(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    return first != std::string_view::npos && (text[first] == '{' || text[first] == '[');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = mithril_fuzz::as_text(data, size);
    const auto path = mithril_fuzz::scratch().write(looks_like_json(text) ? "model.json" : "model.yaml", text);
    try {
        mithril::CheckOptions opts;
        const mithril::Graph g = mithril::check_model(path.string(), opts);
        (void)mithril::summary_table(g);
        (void)mithril::summary_json(g).dump();
        (void)mithril::memory_summary(g, {}, true);
        opts.pipeline.grad.enabled = true;
        const mithril::Graph gg = mithril::check_model(path.string(), opts);
        (void)mithril::memory_summary(gg, {}, true);
    } catch (const mithril::CompileError&) {
    }
    return 0;
}
