// error.h - the single exception type thrown by the Mithril runtime.
//
// Library code never calls exit(); every failure (bad file, shape mismatch,
// invalid argument) throws mithril::rt::Error with a message that names the
// file / tensor / parameter involved, so a generated program can print it.
#pragma once

#include <stdexcept>
#include <string>

namespace mithril::rt {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace mithril::rt
