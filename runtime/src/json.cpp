// json.cpp - recursive-descent JSON parser (strict subset) and string quoting.
#include "json.h"

#include <set>

#include "mithril/rt/error.h"

namespace mithril::rt::json {

namespace {

constexpr int kMaxDepth = 64;

class Parser {
public:
    Parser(std::string_view s, const std::string& what) : s_(s), what_(what) {}

    Value parse_document() {
        Value v = parse_value(0);
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected text after the JSON value");
        return v;
    }

private:
    [[noreturn]] void fail(const std::string& msg) const {
        throw Error(what_ + ": corrupt header JSON at byte " + std::to_string(pos_) + ": " + msg);
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
    }
    bool consume(char c) {
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!consume(c)) fail(std::string("expected '") + c + "'");
    }
    bool consume_word(std::string_view w) {
        if (s_.substr(pos_, w.size()) != w) return false;
        pos_ += w.size();
        return true;
    }

    Value parse_value(int depth) {
        if (depth > kMaxDepth) fail("nesting too deep");
        skip_ws();
        if (pos_ >= s_.size()) fail("unexpected end of input");
        const char c = s_[pos_];
        if (c == '{') return {parse_object(depth)};
        if (c == '[') return {parse_array(depth)};
        if (c == '"') return {parse_string()};
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
        if (consume_word("true")) return {true};
        if (consume_word("false")) return {false};
        if (consume_word("null")) return {nullptr};
        fail(std::string("unexpected character '") + c + "'");
    }

    Object parse_object(int depth) {
        Object obj;
        std::set<std::string, std::less<>> seen;
        expect('{');
        if (consume('}')) return obj;
        do {
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a string key");
            std::string key = parse_string();
            if (!seen.insert(key).second) fail("duplicate key \"" + key + "\"");
            expect(':');
            Value v = parse_value(depth + 1);
            obj.push_back(Member{std::move(key), std::move(v)});
        } while (consume(','));
        expect('}');
        return obj;
    }

    Array parse_array(int depth) {
        Array arr;
        expect('[');
        if (consume(']')) return arr;
        do arr.push_back(parse_value(depth + 1));
        while (consume(','));
        expect(']');
        return arr;
    }

    Value parse_number() {
        const bool negative = s_[pos_] == '-';
        if (negative) ++pos_;
        const std::size_t start = pos_;
        std::uint64_t v = 0;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
            const auto digit = static_cast<std::uint64_t>(s_[pos_] - '0');
            if (v > (UINT64_MAX - digit) / 10) fail("integer too large");
            v = v * 10 + digit;
            ++pos_;
        }
        if (pos_ == start) fail("expected digits");
        if (s_[start] == '0' && pos_ - start > 1) fail("leading zeros are not allowed");
        if (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E'))
            fail("only integer numbers are supported");
        if (!negative) return {v};
        if (v > static_cast<std::uint64_t>(INT64_MAX) + 1) fail("integer too small");
        return {static_cast<std::int64_t>(0 - v)};
    }

    unsigned parse_hex4() {
        if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
        unsigned cp = 0;
        for (int i = 0; i < 4; ++i) {
            const char h = s_[pos_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') cp |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') cp |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') cp |= static_cast<unsigned>(h - 'A' + 10);
            else fail("bad hex digit in \\u escape");
        }
        return cp;
    }

    unsigned parse_unicode_escape() {
        unsigned cp = parse_hex4();
        if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!consume_word("\\u")) fail("unpaired high surrogate");
            const unsigned lo = parse_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        return cp;
    }

    static void append_utf8(std::string& out, unsigned cp) {
        auto byte = [](unsigned b) { return static_cast<char>(b); };
        if (cp < 0x80) {
            out += byte(cp);
        } else if (cp < 0x800) {
            out += byte(0xC0 | (cp >> 6));
            out += byte(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += byte(0xE0 | (cp >> 12));
            out += byte(0x80 | ((cp >> 6) & 0x3F));
            out += byte(0x80 | (cp & 0x3F));
        } else {
            out += byte(0xF0 | (cp >> 18));
            out += byte(0x80 | ((cp >> 12) & 0x3F));
            out += byte(0x80 | ((cp >> 6) & 0x3F));
            out += byte(0x80 | (cp & 0x3F));
        }
    }

    std::string parse_string() {
        ++pos_;  // opening quote
        std::string out;
        while (true) {
            if (pos_ >= s_.size()) fail("unterminated string");
            const char c = s_[pos_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= s_.size()) fail("unterminated string");
            switch (const char e = s_[pos_++]) {
                case '"': case '\\': case '/': out += e; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': append_utf8(out, parse_unicode_escape()); break;
                default: fail(std::string("bad escape '\\") + e + "'");
            }
        }
    }

    std::string_view s_;
    const std::string& what_;
    std::size_t pos_ = 0;
};

}  // namespace

Value parse(std::string_view text, const std::string& what) { return Parser(text, what).parse_document(); }

std::string quote(std::string_view s) {
    static const char* hex = "0123456789abcdef";
    std::string out = "\"";
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            out += "\\u00";
            out += hex[u >> 4];
            out += hex[u & 15];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace mithril::rt::json
