// json.h (private) - a minimal, strict JSON reader and string escaper for the
// safetensors header. Supports objects, arrays, strings and integers (plus
// true/false/null); rejects fractions/exponents, duplicate keys, trailing
// commas and trailing text. The runtime cannot depend on a JSON library
// because generated projects copy it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mithril::rt::json {

struct Value;
struct Member;
// Object members are a named struct, not std::pair<std::string, Value>: the pair
// would be instantiated while Value is still incomplete, which clang rejects.
using Object = std::vector<Member>;  // keeps file order
using Array = std::vector<Value>;

struct Value {
    // Integers are stored as int64 when negative, uint64 otherwise.
    std::variant<std::nullptr_t, bool, std::int64_t, std::uint64_t, std::string, Array, Object> v;

    bool is_object() const { return std::holds_alternative<Object>(v); }
    bool is_array() const { return std::holds_alternative<Array>(v); }
    bool is_string() const { return std::holds_alternative<std::string>(v); }
    bool is_unsigned() const { return std::holds_alternative<std::uint64_t>(v); }
    bool is_integer() const { return is_unsigned() || std::holds_alternative<std::int64_t>(v); }
};

struct Member {
    std::string key;
    Value value;
};

// Throws mithril::rt::Error("<what>: corrupt header JSON at byte N: ...").
Value parse(std::string_view text, const std::string& what);

// `s` as a quoted JSON string literal.
std::string quote(std::string_view s);

}  // namespace mithril::rt::json
