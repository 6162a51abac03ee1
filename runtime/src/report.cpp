// report.cpp - metrics.jsonl / metrics.csv / curves.svg of a training run (see report.h).
#include "mithril/rt/report.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <system_error>

#include "json.h"
#include "mithril/rt/error.h"
#include "mithril/rt/file_io.h"

namespace mithril::rt {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kFixedColumns[] = {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds"};

bool is_fixed_column(std::string_view name) {
    return std::find(std::begin(kFixedColumns), std::end(kFixedColumns), name) != std::end(kFixedColumns);
}

// Shortest text that reads back as exactly `v` (finite values only).
std::string shortest(double v) {
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, res.ptr);
}

std::string json_number(double v) { return std::isfinite(v) ? shortest(v) : "null"; }

std::string csv_number(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return shortest(v);
}

void check_extra_names(const EpochRecord& r) {
    for (std::size_t i = 0; i < r.extra.size(); ++i) {
        const std::string& name = r.extra[i].first;
        const std::string where = "run report, epoch " + std::to_string(r.epoch) + ": extra value ";
        if (name.empty()) throw Error(where + "with an empty name");
        if (is_fixed_column(name))
            throw Error(where + "'" + name + "' has the name of a fixed column; give it another name");
        for (char c : name) {
            const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                            c == '.' || c == '-' || c == '/';
            if (!ok)
                throw Error(where + "'" + name + "': names may hold only letters, digits and _ . - / (they are CSV columns)");
        }
        for (std::size_t j = 0; j < i; ++j)
            if (r.extra[j].first == name) throw Error(where + "'" + name + "' is given twice");
    }
}

// --- reading metrics.jsonl: flat objects of numbers (or null) ---------------

class LineParser {
public:
    LineParser(std::string_view s, std::string what) : s_(s), what_(std::move(what)) {}

    EpochRecord parse() {
        EpochRecord r;
        bool seen[5] = {false, false, false, false, false};
        expect('{');
        skip_ws();
        if (peek() != '}') {
            for (;;) {
                const std::string key = parse_key();
                expect(':');
                skip_ws();
                const std::size_t fixed = static_cast<std::size_t>(
                    std::find(std::begin(kFixedColumns), std::end(kFixedColumns), key) - std::begin(kFixedColumns));
                if (fixed < 5) {
                    if (seen[fixed]) fail("key \"" + key + "\" appears twice");
                    seen[fixed] = true;
                    if (fixed == 0)
                        r.epoch = parse_epoch();
                    else
                        (fixed == 1 ? r.train_loss : fixed == 2 ? r.val_loss : fixed == 3 ? r.val_accuracy : r.seconds) =
                            parse_number(key);
                } else {
                    for (const auto& e : r.extra)
                        if (e.first == key) fail("key \"" + key + "\" appears twice");
                    r.extra.emplace_back(key, parse_number(key));
                }
                skip_ws();
                if (peek() == ',') {
                    ++pos_;
                    continue;
                }
                break;
            }
        }
        expect('}');
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected text after the object");
        for (std::size_t i = 0; i < 5; ++i)
            if (!seen[i]) fail(std::string("missing key \"") + kFixedColumns[i] + "\"");
        return r;
    }

private:
    [[noreturn]] void fail(const std::string& msg) const {
        throw Error(what_ + ", column " + std::to_string(pos_ + 1) + ": " + msg +
                    " (each line must be an object like {\"epoch\":1,\"train_loss\":0.5,...})");
    }
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
    }
    void expect(char c) {
        skip_ws();
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    std::string parse_key() {
        expect('"');
        std::string out;
        for (;;) {
            if (pos_ >= s_.size()) fail("unterminated key");
            const char c = s_[pos_++];
            if (c == '"') return out;
            if (c == '\\') {
                const char e = peek();
                ++pos_;
                switch (e) {
                    case '"': out += '"'; break;
                    case '\\': out += '\\'; break;
                    case '/': out += '/'; break;
                    default: fail("unsupported escape in a key");
                }
            } else {
                out += c;
            }
        }
    }
    std::string_view number_token() {
        const std::size_t begin = pos_;
        while (pos_ < s_.size() && (std::string_view("+-0123456789.eE").find(s_[pos_]) != std::string_view::npos)) ++pos_;
        return s_.substr(begin, pos_ - begin);
    }
    double parse_number(const std::string& key) {
        if (s_.substr(pos_, 4) == "null") {
            pos_ += 4;
            return kNaN;
        }
        const std::size_t begin = pos_;
        const std::string_view tok = number_token();
        double v = 0;
        const auto res = std::from_chars(tok.data(), tok.data() + tok.size(), v);
        if (tok.empty() || res.ec != std::errc() || res.ptr != tok.data() + tok.size()) {
            pos_ = begin;
            fail("value of \"" + key + "\" is not a number or null");
        }
        return v;
    }
    std::int64_t parse_epoch() {
        const std::size_t begin = pos_;
        const std::string_view tok = number_token();
        std::int64_t v = 0;
        const auto res = std::from_chars(tok.data(), tok.data() + tok.size(), v);
        if (tok.empty() || res.ec != std::errc() || res.ptr != tok.data() + tok.size()) {
            pos_ = begin;
            fail("value of \"epoch\" is not an integer");
        }
        return v;
    }

    std::string_view s_;
    std::string what_;
    std::size_t pos_ = 0;
};

// --- curves.svg -------------------------------------------------------------

std::string xml_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default:
                // Control characters are not allowed in XML 1.0 text.
                if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n')
                    out += ' ';
                else
                    out += c;
        }
    }
    return out;
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string fmt_prec(int decimals, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

// Value text for the summary line: 4 significant digits.
std::string fmt_value(double v) { return fmt("%.4g", v); }

struct Axis {
    double lo = 0, hi = 1, step = 0.25;
    int decimals = 2;
    std::vector<double> ticks;
};

// Step of about range/target rounded to 1, 2, 2.5 or 5 times a power of ten.
double nice_step(double range, int target, int& decimals) {
    const double raw = range / target;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double f = raw / mag;
    double m = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    const double step = m * mag;
    decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)) + (m == 2.5 ? 1 : 0));
    return step;
}

// An axis over [lo, hi] (finite, lo <= hi) with nice ticks; `clamp_lo/hi` bound
// the padded range (e.g. accuracy in [0, 1], loss >= 0); `integer` for epochs.
Axis make_axis(double lo, double hi, double clamp_lo, double clamp_hi, bool integer) {
    Axis a;
    if (lo == hi) {
        const double pad = integer ? 1.0 : (lo == 0 ? 1.0 : std::fabs(lo) * 0.1);
        lo -= pad;
        hi += pad;
    }
    a.step = nice_step(hi - lo, integer ? 8 : 5, a.decimals);
    if (integer) {
        a.step = std::max(1.0, std::round(a.step));
        a.decimals = 0;
    }
    a.lo = std::floor(lo / a.step + 1e-9) * a.step;
    a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
    a.lo = std::max(a.lo, clamp_lo);
    a.hi = std::min(a.hi, clamp_hi);
    if (!(a.hi > a.lo)) a.hi = a.lo + a.step;
    const double first = std::ceil(a.lo / a.step - 1e-9) * a.step;
    for (int i = 0; i < 200; ++i) {
        const double t = first + i * a.step;
        if (t > a.hi + a.step * 1e-6) break;
        a.ticks.push_back(std::fabs(t) < a.step * 1e-9 ? 0.0 : t);
    }
    return a;
}

struct Series {
    std::string name;
    std::string color;
    std::vector<std::pair<double, double>> points;  // (epoch, value), value may be non-finite
};

struct Panel {
    double left, top, width, height;  // plot area
    std::string title, ylabel;
    double clamp_lo, clamp_hi;        // y range limits when the data lie inside
    bool legend_bottom;               // legend in the bottom right corner (else top right)
};

void render_panel(std::string& svg, const Panel& p, const std::vector<Series>& series, const Axis& xa) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& s : series)
        for (const auto& [x, y] : s.points)
            if (std::isfinite(y)) {
                lo = std::min(lo, y);
                hi = std::max(hi, y);
            }
    const bool empty = !(lo <= hi);
    if (empty) {
        lo = 0;
        hi = 1;
    }
    const bool inside_lo = lo >= p.clamp_lo, inside_hi = hi <= p.clamp_hi;
    const double margin = (hi - lo) * 0.05;  // keep points off the frame
    lo -= margin;
    hi += margin;
    const Axis ya = make_axis(lo, hi, inside_lo ? p.clamp_lo : -std::numeric_limits<double>::infinity(),
                              inside_hi ? p.clamp_hi : std::numeric_limits<double>::infinity(), false);
    const double right = p.left + p.width, bottom = p.top + p.height;
    auto px = [&](double x) { return p.left + (x - xa.lo) / (xa.hi - xa.lo) * p.width; };
    auto py = [&](double y) { return bottom - (y - ya.lo) / (ya.hi - ya.lo) * p.height; };

    svg += "<g>\n";
    svg += "<text x=\"" + fmt("%.1f", p.left + p.width / 2) + "\" y=\"" + fmt("%.1f", p.top - 12) +
           "\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" + xml_escape(p.title) + "</text>\n";
    svg += "<rect x=\"" + fmt("%.1f", p.left) + "\" y=\"" + fmt("%.1f", p.top) + "\" width=\"" + fmt("%.1f", p.width) +
           "\" height=\"" + fmt("%.1f", p.height) + "\" fill=\"#ffffff\" stroke=\"#444444\"/>\n";
    // Grid lines and tick labels.
    for (double t : ya.ticks) {
        const std::string y = fmt("%.2f", py(t));
        svg += "<line x1=\"" + fmt("%.1f", p.left) + "\" y1=\"" + y + "\" x2=\"" + fmt("%.1f", right) + "\" y2=\"" + y +
               "\" stroke=\"#e0e0e0\"/>\n";
        svg += "<line x1=\"" + fmt("%.1f", p.left - 5) + "\" y1=\"" + y + "\" x2=\"" + fmt("%.1f", p.left) + "\" y2=\"" +
               y + "\" stroke=\"#444444\"/>\n";
        svg += "<text x=\"" + fmt("%.1f", p.left - 8) + "\" y=\"" + y +
               "\" text-anchor=\"end\" dominant-baseline=\"middle\" font-size=\"11\">" + fmt_prec(ya.decimals, t) +
               "</text>\n";
    }
    for (double t : xa.ticks) {
        const std::string x = fmt("%.2f", px(t));
        svg += "<line x1=\"" + x + "\" y1=\"" + fmt("%.1f", p.top) + "\" x2=\"" + x + "\" y2=\"" + fmt("%.1f", bottom) +
               "\" stroke=\"#f0f0f0\"/>\n";
        svg += "<line x1=\"" + x + "\" y1=\"" + fmt("%.1f", bottom) + "\" x2=\"" + x + "\" y2=\"" +
               fmt("%.1f", bottom + 5) + "\" stroke=\"#444444\"/>\n";
        svg += "<text x=\"" + x + "\" y=\"" + fmt("%.1f", bottom + 18) + "\" text-anchor=\"middle\" font-size=\"11\">" +
               fmt_prec(0, t) + "</text>\n";
    }
    svg += "<text x=\"" + fmt("%.1f", p.left + p.width / 2) + "\" y=\"" + fmt("%.1f", bottom + 38) +
           "\" text-anchor=\"middle\" font-size=\"12\">epoch</text>\n";
    const std::string ly = fmt("%.1f", p.top + p.height / 2), lx = fmt("%.1f", p.left - 52);
    svg += "<text x=\"" + lx + "\" y=\"" + ly + "\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 " + lx +
           " " + ly + ")\">" + xml_escape(p.ylabel) + "</text>\n";
    if (empty)
        svg += "<text x=\"" + fmt("%.1f", p.left + p.width / 2) + "\" y=\"" + fmt("%.1f", p.top + p.height / 2) +
               "\" text-anchor=\"middle\" font-size=\"13\" fill=\"#888888\">no data yet</text>\n";

    // The curves: one polyline per run of finite values, markers while they stay readable.
    std::size_t total_points = 0;
    for (const auto& s : series) total_points += s.points.size();
    const bool markers = total_points <= 120;
    for (const auto& s : series) {
        std::string run;
        std::size_t run_len = 0;
        auto flush = [&] {
            if (run_len >= 2)
                svg += "<polyline fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"2\" points=\"" + run + "\"/>\n";
            run.clear();
            run_len = 0;
        };
        for (const auto& [x, y] : s.points) {
            if (!std::isfinite(y)) {
                flush();
                continue;
            }
            const std::string cx = fmt("%.2f", px(x)), cy = fmt("%.2f", py(y));
            run += (run.empty() ? "" : " ") + cx + "," + cy;
            ++run_len;
            if (markers || s.points.size() == 1)
                svg += "<circle cx=\"" + cx + "\" cy=\"" + cy + "\" r=\"3\" fill=\"" + s.color + "\"><title>" +
                       xml_escape(s.name) + ", epoch " + fmt_prec(0, x) + ": " + fmt("%.6g", y) + "</title></circle>\n";
        }
        flush();
    }
    // Legend, in a corner inside the plot.
    const double legend_h = 18.0 * static_cast<double>(series.size()) + 8;
    svg += "<rect x=\"" + fmt("%.1f", right - 128) + "\" y=\"" +
           fmt("%.1f", p.legend_bottom ? bottom - 8 - legend_h : p.top + 8) + "\" width=\"120\" height=\"" +
           fmt("%.1f", legend_h) + "\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#cccccc\"/>\n";
    double y = (p.legend_bottom ? bottom - 8 - legend_h : p.top + 8) + 13;
    for (const auto& s : series) {
        const double x = right - 120;
        svg += "<line x1=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.1f", y) + "\" x2=\"" + fmt("%.1f", x + 22) +
               "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"" + s.color + "\" stroke-width=\"2\"/>\n";
        svg += "<text x=\"" + fmt("%.1f", x + 28) + "\" y=\"" + fmt("%.1f", y) +
               "\" dominant-baseline=\"middle\" font-size=\"12\">" + xml_escape(s.name) + "</text>\n";
        y += 18;
    }
    svg += "</g>\n";
}

// "best val accuracy 0.91 at epoch 7, lowest val loss 0.38 at epoch 6".
std::string summary_line(const std::vector<EpochRecord>& records) {
    if (records.empty()) return "no epochs recorded yet";
    std::string s = records.size() == 1 ? "epoch " + std::to_string(records.front().epoch)
                                        : "epochs " + std::to_string(records.front().epoch) + "-" +
                                              std::to_string(records.back().epoch);
    const EpochRecord* best_acc = nullptr;
    const EpochRecord* best_loss = nullptr;
    for (const auto& r : records) {
        if (std::isfinite(r.val_accuracy) && (!best_acc || r.val_accuracy > best_acc->val_accuracy)) best_acc = &r;
        if (std::isfinite(r.val_loss) && (!best_loss || r.val_loss < best_loss->val_loss)) best_loss = &r;
    }
    if (best_acc)
        s += ", best val accuracy " + fmt_value(best_acc->val_accuracy) + " at epoch " + std::to_string(best_acc->epoch);
    if (best_loss)
        s += ", lowest val loss " + fmt_value(best_loss->val_loss) + " at epoch " + std::to_string(best_loss->epoch);
    return s;
}

}  // namespace

std::string render_curves_svg(const std::vector<EpochRecord>& records, const std::string& title) {
    constexpr double kWidth = 960, kHeight = 440;
    std::vector<Series> loss{{"train loss", "#1f77b4", {}}, {"val loss", "#ff7f0e", {}}};
    std::vector<Series> acc{{"val accuracy", "#2ca02c", {}}};
    for (const auto& r : records) {
        const auto e = static_cast<double>(r.epoch);
        loss[0].points.emplace_back(e, r.train_loss);
        loss[1].points.emplace_back(e, r.val_loss);
        acc[0].points.emplace_back(e, r.val_accuracy);
    }
    const Axis xa = records.empty() ? make_axis(0, 1, 0, std::numeric_limits<double>::infinity(), true)
                                    : make_axis(static_cast<double>(records.front().epoch),
                                                static_cast<double>(records.back().epoch),
                                                -std::numeric_limits<double>::infinity(),
                                                std::numeric_limits<double>::infinity(), true);
    std::string svg;
    svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", kWidth) + "\" height=\"" +
           fmt("%.0f", kHeight) + "\" viewBox=\"0 0 " + fmt("%.0f", kWidth) + " " + fmt("%.0f", kHeight) +
           "\" font-family=\"sans-serif\">\n";
    svg += "<title>" + xml_escape(title) + "</title>\n";
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", kWidth / 2) + "\" y=\"26\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">" +
           xml_escape(title) + "</text>\n";
    svg += "<text x=\"" + fmt("%.1f", kWidth / 2) + "\" y=\"46\" text-anchor=\"middle\" font-size=\"12\" fill=\"#555555\">" +
           xml_escape(summary_line(records)) + "</text>\n";
    const double inf = std::numeric_limits<double>::infinity();
    render_panel(svg, {72, 90, 380, 280, "Loss", "loss", 0, inf, false}, loss, xa);
    render_panel(svg, {72 + 480, 90, 380, 280, "Validation accuracy", "val accuracy", 0, 1, true}, acc, xa);
    svg += "</svg>\n";
    return svg;
}

RunReport::RunReport(std::filesystem::path rundir) : rundir_(std::move(rundir)) {}

void RunReport::load() {
    const std::filesystem::path path = jsonl_path();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        records_.clear();
        return;
    }
    FileReader reader(path, "metrics file " + path.string());
    const std::string text = reader.read_string(reader.size(), "contents");
    std::vector<EpochRecord> records;
    std::size_t begin = 0, line_no = 0;
    while (begin < text.size()) {
        std::size_t end = text.find('\n', begin);
        if (end == std::string::npos) end = text.size();
        ++line_no;
        const std::string_view line(text.data() + begin, end - begin);
        begin = end + 1;
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        const std::string what = "metrics file " + path.string() + " line " + std::to_string(line_no);
        EpochRecord r = LineParser(line, what).parse();
        if (!records.empty() && r.epoch <= records.back().epoch)
            throw Error(what + ": epoch " + std::to_string(r.epoch) + " follows epoch " +
                        std::to_string(records.back().epoch) + "; epochs must increase");
        records.push_back(std::move(r));
    }
    records_ = std::move(records);
}

void RunReport::truncate(std::int64_t epochs) {
    const auto keep = std::partition_point(records_.begin(), records_.end(),
                                           [&](const EpochRecord& r) { return r.epoch <= epochs; });
    if (keep == records_.end()) return;
    records_.erase(keep, records_.end());
    write();
}

void RunReport::add(const EpochRecord& record) {
    if (!records_.empty() && record.epoch <= records_.back().epoch)
        throw Error("run report " + jsonl_path().string() + ": epoch " + std::to_string(record.epoch) +
                    " is not after the last recorded epoch " + std::to_string(records_.back().epoch) +
                    " (when resuming, truncate the report to the checkpoint's epoch first)");
    check_extra_names(record);
    records_.push_back(record);
    try {
        write();
    } catch (...) {
        records_.pop_back();
        throw;
    }
}

void RunReport::write() const {
    std::error_code ec;
    std::filesystem::create_directories(rundir_, ec);
    if (ec) throw Error("cannot create run folder " + rundir_.string() + ": " + ec.message());

    std::vector<std::string> extra_names;
    for (const auto& r : records_)
        for (const auto& [name, value] : r.extra)
            if (std::find(extra_names.begin(), extra_names.end(), name) == extra_names.end()) extra_names.push_back(name);

    std::string jsonl, csv;
    for (const char* c : kFixedColumns) csv += std::string(csv.empty() ? "" : ",") + c;
    for (const auto& name : extra_names) csv += "," + name;
    csv += "\n";
    for (const auto& r : records_) {
        jsonl += "{\"epoch\":" + std::to_string(r.epoch) + ",\"train_loss\":" + json_number(r.train_loss) +
                 ",\"val_loss\":" + json_number(r.val_loss) + ",\"val_accuracy\":" + json_number(r.val_accuracy) +
                 ",\"seconds\":" + json_number(r.seconds);
        for (const auto& [name, value] : r.extra) jsonl += "," + json::quote(name) + ":" + json_number(value);
        jsonl += "}\n";
        csv += std::to_string(r.epoch) + "," + csv_number(r.train_loss) + "," + csv_number(r.val_loss) + "," +
               csv_number(r.val_accuracy) + "," + csv_number(r.seconds);
        for (const auto& name : extra_names) {
            csv += ",";
            for (const auto& [n, value] : r.extra)
                if (n == name) csv += csv_number(value);
        }
        csv += "\n";
    }
    std::filesystem::path named = rundir_;
    if (!named.has_filename()) named = named.parent_path();
    const std::string run_name = named.filename().empty() ? rundir_.string() : named.filename().string();
    const std::string svg = render_curves_svg(records_, "Training run " + run_name);

    atomic_write_file(jsonl_path(), [&](FileWriter& w) { w.write(jsonl); });
    atomic_write_file(csv_path(), [&](FileWriter& w) { w.write(csv); });
    atomic_write_file(svg_path(), [&](FileWriter& w) { w.write(svg); });
}

}  // namespace mithril::rt
