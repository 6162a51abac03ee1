// init.h - parameter initialization and small helpers for generated code.
//
// Initializers follow PyTorch's defaults in distribution (not bit for bit:
// PyTorch's generator is not reproduced):
//   kaiming_uniform (Linear/Conv weight, a = sqrt(5)) and uniform_fan_in (their bias):
//       U(-1/sqrt(fan_in), 1/sqrt(fan_in))
//   normal (Embedding: std 1; GPT-2 style declared params: their std): N(0, std^2)
//   ones, zeros (normalization weight/bias and running statistics)
// The same seed gives the same values on every machine and for any number of threads
// (xoshiro256** and our own uniform/normal transforms, not the implementation-defined
// std:: distributions; each tensor's values in chunks with generators of their own).
#pragma once

#include <cstdint>
#include <string>

namespace mithril::rt {

// floor(a / b) for b > 0, as the compiler's symbolic dims define it.
constexpr std::int64_t floordiv(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

class Rng {
public:
    explicit Rng(std::uint64_t seed);
    double uniform();   // [0, 1)
    double normal();    // standard normal (Box-Muller)
    std::uint64_t bits();  // the next 64 random bits
private:
    std::uint64_t state_[4];
};

// Fill n values by `kind` ("kaiming_uniform", "uniform_fan_in", "normal", "ones", "zeros").
// `arg` is fan_in for the uniform kinds and std for normal. Unknown kinds throw Error.
void init_values(float* p, std::int64_t n, const std::string& kind, double arg, Rng& rng);
void init_values(double* p, std::int64_t n, const std::string& kind, double arg, Rng& rng);

}  // namespace mithril::rt
