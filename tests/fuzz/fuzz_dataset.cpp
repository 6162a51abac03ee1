// fuzz_dataset.cpp - the runtime's training-data readers: CSV (plain and gzip),
// .npy tables and token files, then what the trainer does with a loaded table
// (label check, split, batches, gather). rt::Error is a clean rejection.
//
// The first byte picks the reader; for the letters below it is not part of the file:
//   'n' .npy table, label = last column      'N' the same, float labels
//   'u' / 't' / 'T' token file of uint8 / uint16 / int32 tokens
//   'f' CSV, float labels      'h' CSV, header = Yes     'x' CSV, header = No
//   's' CSV, delimiter ';'     'w' CSV, delimiter ' '    'l' CSV, label column named "label"
// Any other first byte: the whole input is a CSV file read with the default options.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "mithril/rt/dataset.h"

namespace {

namespace rt = mithril::rt;

void use_table(const rt::Table& t) {
    try {
        rt::check_class_labels(t, 10, "fuzz input");
    } catch (const rt::Error&) {
    }
    const rt::Split s = rt::split_rows(t.rows(), t.rows() >= 4 ? 0.25 : 0.0, 7);
    rt::BatchSampler sampler(s.train, 3, true, 7);
    std::vector<unsigned char> buf(static_cast<std::size_t>(3 * t.num_features()) * 4 + 8);
    std::vector<std::int64_t> labels(3);
    std::span<const std::int64_t> batch;
    while (sampler.next(batch)) {
        rt::gather_rows(t.features, batch, buf.data());
        rt::gather_rows(t.labels, batch, labels.data());
    }
}

void use_tokens(const rt::TokenFile& f) {
    try {
        f.check_vocab(300);
    } catch (const rt::Error&) {
    }
    rt::Rng rng(3);
    const std::int64_t T = 4;
    if (f.size() < T + 1) return;
    std::vector<std::int64_t> in(2 * T), tg(2 * T);
    rt::sample_windows(f, 0, f.size(), 2, T, rng, in.data(), tg.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view all = mithril_fuzz::as_text(data, size);
    const char mode = size > 0 ? all[0] : '\0';
    const std::string_view rest = size > 0 ? all.substr(1) : all;
    const auto& scratch = mithril_fuzz::scratch();
    try {
        switch (mode) {
            case 'n':
            case 'N':
                use_table(rt::load_npy_table(scratch.write("table.npy", rest), "-1", mode == 'N'));
                break;
            case 'u':
            case 't':
            case 'T': {
                const rt::DType d = mode == 'u' ? rt::DType::UInt8 : mode == 't' ? rt::DType::UInt16 : rt::DType::Int32;
                use_tokens(rt::TokenFile(scratch.write("tokens.bin", rest), d));
                break;
            }
            default: {
                rt::CsvOptions opt;
                std::string_view csv = rest;
                switch (mode) {
                    case 'f': opt.float_labels = true; break;
                    case 'h': opt.header = rt::CsvHeader::Yes; break;
                    case 'x': opt.header = rt::CsvHeader::No; break;
                    case 's': opt.delimiter = ';'; break;
                    case 'w': opt.delimiter = ' '; break;
                    case 'l': opt.label = "label"; break;
                    default: csv = all;
                }
                use_table(rt::load_csv(scratch.write("table.csv", csv), opt));
            }
        }
    } catch (const rt::Error&) {
    }
    return 0;
}
