// test_dataset.cpp - training data: CSV / gzip CSV / .npy tables checked against
// NumPy (dataset_ref.py), every bad input's message, token files, and the seeded
// splits and batches checked against an independent Python implementation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "mithril/rt/dataset.h"
#include "mithril/rt/npy.h"
#include "test_support.h"

using namespace mithril::rt;
using Catch::Contains;
using Catch::Equals;
using Catch::StartsWith;
using rt_test::TempDir;
namespace fs = std::filesystem;

namespace {

void run_reference(const std::vector<std::string>& args) {
    std::string output;
    const int rc = rt_test::run_python("dataset_ref.py", args, output);
    INFO(output);
    REQUIRE(rc == 0);
}

// One of sklearn's data sets (digits.csv.gz, iris.csv...), looked up in
// $MITHRIL_DATASETS_DIR, the project's samples/data, then /work/shared/datasets.
// An empty path when it is in none of them.
fs::path find_dataset(const std::string& name) {
    std::vector<fs::path> dirs;
    if (const char* env = std::getenv("MITHRIL_DATASETS_DIR")) dirs.emplace_back(env);
    dirs.push_back(fs::path(MITHRIL_RT_TEST_DIR) / ".." / ".." / "samples" / "data");
    dirs.emplace_back("/work/shared/datasets");
    for (const auto& d : dirs)
        if (fs::exists(d / name)) return d / name;
    return {};
}

fs::path write_text(const TempDir& dir, const std::string& name, const std::string& text) {
    rt_test::write_bytes(dir / name, text);
    return dir / name;
}

template <class T>
std::vector<T> values(const Tensor& t) {
    const T* p = t.data<T>();
    return std::vector<T>(p, p + t.numel());
}

std::vector<std::vector<std::int64_t>> read_int_lines(const fs::path& path) {
    std::ifstream in(path);
    std::vector<std::vector<std::int64_t>> out;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        std::vector<std::int64_t> v;
        std::int64_t x;
        while (ss >> x) v.push_back(x);
        out.push_back(std::move(v));
    }
    return out;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

// Compares a loaded table with the arrays numpy read (dataset_ref.py csv).
void check_against_numpy(const Table& t, const fs::path& file, const TempDir& dir) {
    const std::string prefix = (dir / file.filename().string()).string();
    run_reference({"csv", file.string(), prefix});
    const Tensor x = load_npy(prefix + "_x.npy");
    const Tensor y = load_npy(prefix + "_y.npy");
    REQUIRE(t.features.dtype() == DType::Float32);
    REQUIRE(t.labels.dtype() == DType::Int64);
    REQUIRE(t.features.shape() == x.shape());
    REQUIRE(t.labels.shape() == y.shape());
    CHECK(std::memcmp(t.features.raw_data(), x.raw_data(), x.nbytes()) == 0);  // bit for bit
    CHECK(values<std::int64_t>(t.labels) == values<std::int64_t>(y));
}

}  // namespace

// ---------------------------------------------------------------------------
// Real data sets

TEST_CASE("dataset: digits.csv.gz (gzip, no header) matches numpy", "[dataset]") {
    const fs::path file = find_dataset("digits.csv.gz");
    if (file.empty()) FAIL("digits.csv.gz not found in $MITHRIL_DATASETS_DIR, samples/data or /work/shared/datasets");
    const Table t = load_csv(file);
    REQUIRE(t.rows() == 1797);
    REQUIRE(t.num_features() == 64);
    CHECK(t.features.shape() == Shape{1797, 64});
    CHECK(t.labels.shape() == Shape{1797});
    REQUIRE(t.columns.size() == 64);
    CHECK(t.columns.front() == "c0");
    CHECK(t.columns.back() == "c63");
    CHECK(t.label_column == "c64");
    // sklearn's documented class counts for load_digits().
    std::vector<std::int64_t> counts(10, 0);
    for (auto v : values<std::int64_t>(t.labels)) {
        REQUIRE((v >= 0 && v < 10));
        ++counts[static_cast<std::size_t>(v)];
    }
    CHECK(counts == std::vector<std::int64_t>{178, 182, 177, 183, 181, 182, 181, 179, 174, 180});
    CHECK_NOTHROW(check_class_labels(t, 10, "digits"));
    TempDir dir;
    check_against_numpy(t, file, dir);
}

TEST_CASE("dataset: sklearn CSVs (header: rows, features, class names) match numpy", "[dataset]") {
    const fs::path iris_csv = find_dataset("iris.csv");
    if (iris_csv.empty()) {
        WARN("iris.csv not found in $MITHRIL_DATASETS_DIR, samples/data or /work/shared/datasets: skipped");
        return;
    }
    TempDir dir;
    const Table iris = load_csv(iris_csv);
    CHECK(iris.features.shape() == Shape{150, 4});
    CHECK(iris.columns == std::vector<std::string>{"c0", "c1", "c2", "c3"});
    CHECK(iris.label_column == "c4");
    CHECK(iris.class_names == std::vector<std::string>{"setosa", "versicolor", "virginica"});
    CHECK(iris.features.data<float>()[0] == 5.1f);
    check_against_numpy(iris, iris_csv, dir);
    const std::map<std::string, std::pair<std::int64_t, std::int64_t>> others{{"wine_data.csv", {178, 13}},
                                                                             {"breast_cancer.csv", {569, 30}}};
    for (const auto& [name, shape] : others) {
        const fs::path path = find_dataset(name);
        if (path.empty()) continue;
        INFO(name);
        const Table t = load_csv(path);
        CHECK(t.features.shape() == Shape{shape.first, shape.second});
        CHECK(t.class_names.size() == (name == "wine_data.csv" ? 3u : 2u));
        check_against_numpy(t, path, dir);
    }
    // The label by index from either end is the same column.
    CsvOptions by_index;
    by_index.label = "4";
    const Table four = load_csv(iris_csv, by_index);
    CHECK(values<std::int64_t>(four.labels) == values<std::int64_t>(iris.labels));
    CHECK(four.class_names == iris.class_names);
    // Column 2 holds petal lengths, which are not class labels.
    CsvOptions petal;
    petal.label = "2";
    REQUIRE_THROWS_WITH(load_csv(iris_csv, petal),
                        Contains("iris.csv:2: label column 2: '1.4' is not a class label"));
    petal.float_labels = true;
    const Table reg = load_csv(iris_csv, petal);
    CHECK(reg.labels.dtype() == DType::Float32);
    CHECK(reg.labels.data<float>()[0] == 1.4f);
    CHECK(reg.columns == std::vector<std::string>{"c0", "c1", "c3", "c4"});
    CHECK(reg.label_column == "c2");
    CHECK(reg.class_names.empty());
    CHECK(reg.features.data<float>()[3] == 0.0f);  // row 0's class moved into the features
    CsvOptions by_name;
    by_name.label = "virginica";
    REQUIRE_THROWS_WITH(load_csv(iris_csv, by_name),
                        Contains("unknown label column 'virginica': the header gives no column names (scikit-learn "
                                 "style: rows, features, class names), so give an index from -5 to 4"));
}

// ---------------------------------------------------------------------------
// CSV details

TEST_CASE("dataset: CSV label by name or index, header detection, float labels", "[dataset]") {
    TempDir dir;
    const auto f = write_text(dir, "t.csv", "x,cls,y\n1.5,2,-3\n2.5,0,4e1\n");
    for (const std::string label : {"cls", "1", "-2"}) {
        INFO(label);
        CsvOptions opt;
        opt.label = label;
        const Table t = load_csv(f, opt);
        CHECK(t.columns == std::vector<std::string>{"x", "y"});
        CHECK(t.label_column == "cls");
        CHECK(values<float>(t.features) == std::vector<float>{1.5f, -3.f, 2.5f, 40.f});
        CHECK(values<std::int64_t>(t.labels) == std::vector<std::int64_t>{2, 0});
    }
    CsvOptions first;
    first.label = "0";
    REQUIRE_THROWS_WITH(load_csv(f, first), Contains("t.csv:2: label column 0 ('x'): '1.5' is not a class label"));
    first.float_labels = true;
    const Table reg = load_csv(f, first);
    CHECK(reg.label_column == "x");
    CHECK(values<float>(reg.labels) == std::vector<float>{1.5f, 2.5f});
    CHECK(values<float>(reg.features) == std::vector<float>{2.f, -3.f, 0.f, 40.f});

    // No header: columns are c0.., the label is an index.
    const auto nh = write_text(dir, "nh.csv", "1,2,3\n4,5,6\n");
    const Table t = load_csv(nh);
    CHECK(t.columns == std::vector<std::string>{"c0", "c1"});
    CHECK(t.label_column == "c2");
    CHECK(values<std::int64_t>(t.labels) == std::vector<std::int64_t>{3, 6});
    // A header of numbers only must be declared.
    CsvOptions yes;
    yes.header = CsvHeader::Yes;
    const Table h = load_csv(nh, yes);
    CHECK(h.rows() == 1);
    CHECK(h.columns == std::vector<std::string>{"1", "2"});
    CsvOptions no;
    no.header = CsvHeader::No;
    const auto named = write_text(dir, "named.csv", "a,b\n1,2\n");
    REQUIRE_THROWS_WITH(load_csv(named, no), Contains("named.csv:1: column 0: 'a' is not a number"));

    // An integer label that is also another column's name is ambiguous.
    const auto amb = write_text(dir, "amb.csv", "id,3,x,y\n1,2,3,0\n");
    CsvOptions three;
    three.label = "3";
    CHECK_THAT(error_of([&] { load_csv(amb, three); }),
               Equals("CSV file " + amb.string() + ": label column '3' is ambiguous: column 1 is named '3', and index 3 "
                      "is column 3 ('y'); give the index counted from the end (-1) or the column's name"));
    three.label = "y";
    CHECK(values<std::int64_t>(load_csv(amb, three).labels) == std::vector<std::int64_t>{0});
    // A header whose field count differs from the rows (and is not sklearn's).
    CHECK_THAT(error_of([&] { load_csv(write_text(dir, "hc.csv", "a,b,c\n1,2,3,0\n")); }),
               Equals(dir.path().string() + "/hc.csv:2: row has 4 fields, expected 3 (as in the header, line 1)"));
    const Table sk = load_csv(write_text(dir, "sk.csv", "3,2,cat,dog\n1,2,0\n3,4,1\n5,6,1\n"));
    CHECK(sk.columns == std::vector<std::string>{"c0", "c1"});
    CHECK(sk.class_names == std::vector<std::string>{"cat", "dog"});
    CHECK(values<std::int64_t>(sk.labels) == std::vector<std::int64_t>{0, 1, 1});
    CHECK_THAT(error_of([&] { load_csv(write_text(dir, "sk2.csv", "3,2,cat,dog\n1,2,0\n3,4\n")); }),
               Equals(dir.path().string() + "/sk2.csv:3: row has 2 fields, expected 3 (as in line 2)"));

    // Class labels written as "3.0" or "1e1" are integers.
    const auto intish = write_text(dir, "intish.csv", "0.5,3.0\n1,1e1\n2,-0\n");
    CHECK(values<std::int64_t>(load_csv(intish).labels) == std::vector<std::int64_t>{3, 10, 0});
}

TEST_CASE("dataset: CSV formatting: CRLF, blank lines, BOM, quotes, spaces, delimiters", "[dataset]") {
    TempDir dir;
    const std::vector<float> want_x{1.f, 2.f, 3.f, 4.f};
    const std::vector<std::int64_t> want_y{0, 1};
    const std::map<std::string, std::string> variants{
        {"crlf.csv", "a,b,y\r\n1,2,0\r\n3,4,1\r\n"},
        {"blank_trailing.csv", "a,b,y\n1,2,0\n3,4,1\n\n\n  \n"},
        {"blank_inside.csv", "\na,b,y\n\n1,2,0\n\r\n3,4,1"},  // and no final newline
        {"bom.csv", "\xEF\xBB\xBF" "a,b,y\n1,2,0\n3,4,1\n"},
        {"quoted.csv", "\"a\",\"b\",\"y\"\n\"1\",2,\"0\"\n3,\"4\",1\n"},
        {"spaces.csv", "a , b, y\n 1, 2 ,0\n3 ,\t4, 1 \n"},
        {"plus.csv", "a,b,y\n+1,2.,+0\n3,4.0e0,1\n"},
    };
    for (const auto& [name, text] : variants) {
        INFO(name);
        const Table t = load_csv(write_text(dir, name, text));
        CHECK(t.columns == std::vector<std::string>{"a", "b"});
        CHECK(values<float>(t.features) == want_x);
        CHECK(values<std::int64_t>(t.labels) == want_y);
    }
    CsvOptions semi;
    semi.delimiter = ';';
    CHECK(values<float>(load_csv(write_text(dir, "semi.csv", "a;b;y\n1;2;0\n3;4;1\n"), semi).features) == want_x);
    CsvOptions tab;
    tab.delimiter = '\t';
    CHECK(values<float>(load_csv(write_text(dir, "tab.tsv", "a\tb\ty\n1\t2\t0\n3\t4\t1\n"), tab).features) == want_x);
    CsvOptions space;
    space.delimiter = ' ';
    CHECK(values<float>(load_csv(write_text(dir, "space.txt", "  1  2 0\n3 4   1  \n"), space).features) == want_x);
    // Escaped quotes and delimiters inside a quoted header name.
    const Table q = load_csv(write_text(dir, "q.csv", "\"say \"\"hi\"\"\",\"x,y\",label\n1,2,0\n"));
    CHECK(q.columns == std::vector<std::string>{"say \"hi\"", "x,y"});
    CHECK(q.label_column == "label");
}

TEST_CASE("dataset: CSV lines longer than the read chunk and many rows", "[dataset]") {
    TempDir dir;
    const int rows = 300, cols = 3001;  // ~25 KB per line: lines straddle the 64 KiB chunks
    std::string text;
    for (int c = 0; c < cols; ++c) text += (c ? ",f" : "f") + std::to_string(c);
    text += "\n";
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols - 1; ++c) text += std::to_string(r * 7 + c) + ".25,";
        text += std::to_string(r % 5) + "\n";
    }
    const Table t = load_csv(write_text(dir, "wide.csv", text));
    REQUIRE(t.features.shape() == Shape{rows, cols - 1});
    const float* x = t.features.data<float>();
    bool ok = true;
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols - 1; ++c) ok = ok && x[r * (cols - 1) + c] == static_cast<float>(r * 7 + c) + 0.25f;
    CHECK(ok);
    CHECK(t.labels.data<std::int64_t>()[rows - 1] == (rows - 1) % 5);
    CHECK(t.columns.back() == "f2999");
    CHECK(t.label_column == "f3000");
}

TEST_CASE("dataset: every bad CSV gives one clear message with FILE:LINE", "[dataset]") {
    TempDir dir;
    auto err = [&](const std::string& name, const std::string& text, const CsvOptions& opt = {}) {
        const auto path = write_text(dir, name, text);
        return error_of([&] { load_csv(path, opt); });
    };
    const std::string d = dir.path().string() + "/";

    SECTION("missing file and directory") {
        CHECK_THAT(error_of([&] { load_csv(dir / "nope.csv"); }), Equals("CSV file " + d + "nope.csv: file not found"));
        CHECK_THAT(error_of([&] { load_csv(dir.path()); }), Contains("is a directory"));
    }
    SECTION("empty file, blank lines only, header only") {
        CHECK_THAT(err("e.csv", ""), Equals("CSV file " + d + "e.csv: empty file (no header, no data rows)"));
        CHECK_THAT(err("b.csv", "\n \n\r\n"), Contains("b.csv: no data rows (the file has only blank lines)"));
        CHECK_THAT(err("h.csv", "a,b,label\n\n"), Equals("CSV file " + d + "h.csv: no data rows after the header on line 1"));
    }
    SECTION("ragged rows") {
        std::string text;
        for (int i = 0; i < 16; ++i) text += "1,2,3,0\n";
        text += "1,2,0\n";
        CHECK_THAT(err("r.csv", text), Equals(d + "r.csv:17: row has 3 fields, expected 4 (as in line 1)"));
        CHECK_THAT(err("r2.csv", "\na,b,y\n1,2,0\n1,2,0,5\n"),
                   Equals(d + "r2.csv:4: row has 4 fields, expected 3 (as in line 2)"));
        CHECK_THAT(err("r3.csv", "a,b,y\n1,2,0,\n"), Contains("r3.csv:2: row has 4 fields, expected 3"));
    }
    SECTION("non-numeric, empty and non-finite feature values name the column") {
        CHECK_THAT(err("n.csv", "a,b,y\n1,2,0\n1,abc,0\n"), Equals(d + "n.csv:3: column 1 ('b'): 'abc' is not a number"));
        CHECK_THAT(err("n2.csv", "1,2,0\n1,2x,0\n"), Equals(d + "n2.csv:2: column 1: '2x' is not a number"));
        CHECK_THAT(err("n3.csv", "a,b,y\n1,,0\n"), Contains("n3.csv:2: column 1 ('b'): empty value"));
        CHECK_THAT(err("n4.csv", "a,b,y\nnan,1,0\n"), Contains("n4.csv:2: column 0 ('a'): 'nan' is not a finite"));
        CHECK_THAT(err("n5.csv", "a,b,y\n1e39,1,0\n"), Contains("'1e39' is not a finite float32 number"));
        CHECK_THAT(err("n6.csv", "a,b,y\n1e999,1,0\n"), Contains("'1e999' is not a finite float32 number"));
        // A first line of numbers plus an empty field is data, with a hint about headers.
        CHECK_THAT(err("n7.csv", ",1,2\n3,4,0\n"),
                   Contains("n7.csv:1: column 0: empty value") && Contains("header = CsvHeader::Yes"));
    }
    SECTION("class labels must be non-negative integers") {
        for (const std::string bad : {"3.5", "-1", "cat", "", "1e300", "inf"}) {
            INFO(bad);
            CHECK_THAT(err("l.csv", "a,b,label\n1,2,0\n3,4," + bad + "\n"),
                       StartsWith(d + "l.csv:3: label column 2 ('label'): '" + bad + "' is not a class label") &&
                           Contains("non-negative integers"));
        }
        CsvOptions fl;
        fl.float_labels = true;
        CHECK_THAT(err("lf.csv", "a,b,label\n1,2,0.5\n3,4,x\n", fl),
                   Equals(d + "lf.csv:3: label column 2 ('label'): 'x' is not a finite float32 number"));
    }
    SECTION("unknown label column lists the columns or the index range") {
        CsvOptions o;
        o.label = "species";
        CHECK_THAT(err("u.csv", "a,b,label\n1,2,0\n", o),
                   Equals("CSV file " + d + "u.csv: unknown label column 'species'; the columns are 'a', 'b', 'label' "
                          "(or give an index from -3 to 2)"));
        CHECK_THAT(err("u2.csv", "1,2,0\n", o),
                   Contains("u2.csv: unknown label column 'species': the file has no header line, so give an index "
                            "from -3 to 2"));
        o.label = "3";
        CHECK_THAT(err("u3.csv", "a,b,label\n1,2,0\n", o),
                   Contains("u3.csv: label column index 3 is out of range: the file has 3 columns, so the index must "
                            "be from -3 to 2"));
        o.label = "-4";
        CHECK_THAT(err("u4.csv", "1,2,0\n", o), Contains("label column index -4 is out of range"));
        o.label = "a";
        CHECK_THAT(err("u5.csv", "a,b,a\n1,2,0\n", o), Contains("label column 'a' is ambiguous: columns 0 and 2"));
    }
    SECTION("wrong delimiter, binary file, broken quotes") {
        CHECK_THAT(err("s.csv", "a;b;y\n1;2;0\n"),
                   Contains("s.csv:1: found 1 column with delimiter ','") && Contains("contains ';'"));
        CHECK_THAT(err("z.csv", std::string("a,b\n1,\0,2\n", 10)), Contains("z.csv:2: contains a NUL byte"));
        CHECK_THAT(err("qq.csv", "a,b,y\n\"1,2,0\n"), Contains("qq.csv:2: field 0 has an unterminated quote"));
        CHECK_THAT(err("qx.csv", "a,b,y\n\"1\"x,2,0\n"), Contains("qx.csv:2: unexpected text after the closing quote"));
        CsvOptions o;
        o.delimiter = '"';
        CHECK_THAT(err("dq.csv", "1,2\n", o), Contains("invalid delimiter"));
    }
}

TEST_CASE("dataset: gzip CSV is detected by magic bytes, and corrupt gzip is an error", "[dataset]") {
    TempDir dir;
    run_reference({"gzip", dir.path().string()});
    const Table plain = load_csv(dir / "plain.csv");
    REQUIRE(plain.rows() == 1000);
    CHECK(plain.columns == std::vector<std::string>{"a", "b"});
    for (const char* name : {"good.csv", "multi.csv.gz"}) {
        INFO(name);
        const Table t = load_csv(dir / name);
        REQUIRE(t.features.shape() == plain.features.shape());
        CHECK(values<float>(t.features) == values<float>(plain.features));
        CHECK(values<std::int64_t>(t.labels) == values<std::int64_t>(plain.labels));
        CHECK(t.columns == plain.columns);
    }
    CHECK(plain.features.data<float>()[2 * 999 + 1] == 499.5f);
    CHECK_THAT(error_of([&] { load_csv(dir / "truncated.csv.gz"); }),
               Contains("truncated.csv.gz: corrupt gzip data") && Contains("ends early"));
    CHECK_THAT(error_of([&] { load_csv(dir / "badcrc.csv.gz"); }),
               Contains("badcrc.csv.gz: corrupt gzip data (zlib: incorrect data check)"));
    CHECK_THAT(error_of([&] { load_csv(dir / "garbage.csv.gz"); }), Contains("garbage.csv.gz: corrupt gzip data"));
}

// ---------------------------------------------------------------------------
// .npy tables and label checks

TEST_CASE("dataset: .npy tables (any feature dtype, trailing shape kept)", "[dataset]") {
    TempDir dir;
    run_reference({"npy", dir.path().string()});
    const auto p = [&](const std::string& n) { return dir / n; };

    const Table img = load_npy_table(p("img_x.npy"), p("img_y.npy"));
    CHECK(img.features.shape() == Shape{20, 1, 8, 8});
    CHECK(img.features.dtype() == DType::Float32);
    CHECK(img.num_features() == 64);
    CHECK(img.rows() == 20);
    CHECK(img.columns.size() == 64);
    CHECK(img.label_column == "img_y.npy");
    const Tensor raw = load_npy(p("img_x.npy"));
    bool same = true;
    for (std::int64_t i = 0; i < raw.numel(); ++i)
        same = same && img.features.data<float>()[i] == static_cast<float>(raw.data<std::uint8_t>()[i]);
    CHECK(same);
    CHECK(img.labels.dtype() == DType::Int64);
    CHECK(img.labels.data<std::int64_t>()[13] == 3);
    CHECK(values<std::int64_t>(load_npy_table(p("img_x.npy"), p("img_y64_col.npy")).labels) ==
          values<std::int64_t>(img.labels));
    CHECK_NOTHROW(check_class_labels(img, 10, "img"));

    const Table reg = load_npy_table(p("reg_x.npy"), p("reg_y.npy"));
    CHECK(reg.labels.dtype() == DType::Float32);
    const Tensor rx = load_npy(p("reg_x.npy"));
    CHECK(reg.features.data<float>()[5] == static_cast<float>(rx.data<double>()[5]));
    CHECK(reg.labels.data<float>()[0] == -1.f);
    CHECK(reg.labels.data<float>()[6] == 1.f);

    const Table vec = load_npy_table(p("vec_x.npy"), p("vec_y.npy"));
    CHECK(vec.features.shape() == Shape{4, 1});
    CHECK(values<float>(vec.features) == std::vector<float>{0.f, 1.f, 2.f, 3.f});
    CHECK(values<std::int64_t>(vec.labels) == std::vector<std::int64_t>{0, 1, 1, 0});

    // One 2-D array with the class in a column.
    const Table both = load_npy_table(p("both.npy"), "-1");
    CHECK(both.features.shape() == Shape{6, 3});
    CHECK(values<std::int64_t>(both.labels) == std::vector<std::int64_t>{0, 2, 1, 1, 0, 2});
    CHECK(both.columns == std::vector<std::string>{"c0", "c1", "c2"});
    CHECK(both.label_column == "c3");
    const Tensor ba = load_npy(p("both.npy"));
    CHECK(both.features.data<float>()[4] == static_cast<float>(ba.data<double>()[5]));
    const Table mid = load_npy_table(p("both_int.npy"), std::string("1"));
    CHECK(values<float>(mid.features) == std::vector<float>{0, 2, 3, 5, 6, 8, 9, 11});
    CHECK(values<std::int64_t>(mid.labels) == std::vector<std::int64_t>{1, 4, 7, 10});
    CHECK(mid.columns == std::vector<std::string>{"c0", "c2"});
    const Table regb = load_npy_table(p("both_frac.npy"), std::string("3"), /*float_labels=*/true);
    CHECK(regb.labels.data<float>()[4] == 1.5f);
}

TEST_CASE("dataset: float16 features convert exactly", "[dataset]") {
    TempDir dir;
    run_reference({"npy", dir.path().string()});
    save_npy(dir / "y2.npy", Tensor::zeros(DType::Int64, {2}));
    const Table t = load_npy_table(dir / "half_x.npy", dir / "y2.npy");
    CHECK(t.features.data<float>()[0] == 0.5f);
    CHECK(t.features.data<float>()[1] == -2.f);
    CHECK(t.features.data<float>()[2] == 65504.f);
    CHECK(t.features.data<float>()[3] == std::ldexp(1.f, -23));  // the subnormal half nearest 1e-7
}

TEST_CASE("dataset: bad .npy tables give one clear message", "[dataset]") {
    TempDir dir;
    run_reference({"npy", dir.path().string()});
    const std::string d = dir.path().string() + "/";
    const auto p = [&](const std::string& n) { return dir / n; };
    CHECK_THAT(error_of([&] { load_npy_table(p("img_x.npy"), p("img_y19.npy")); }),
               Equals("features " + d + "img_x.npy has 20 rows (uint8[20,1,8,8]) but labels " + d +
                      "img_y19.npy has 19 (int64[19]); they must have one label per row"));
    CHECK_THAT(error_of([&] { load_npy_table(p("img_x.npy"), p("img_yneg.npy")); }),
               Contains("labels " + d + "img_yneg.npy: value -3 at row 0 is not a class label"));
    CHECK_THAT(error_of([&] { load_npy_table(p("img_x.npy"), p("img_y2d.npy")); }),
               Contains("labels must have shape [rows] or [rows, 1], found int64[20,2]"));
    CHECK_THAT(error_of([&] { load_npy_table(p("nan_x.npy"), p("vec_y.npy")); }),
               Contains("nan_x.npy: value nan at row 2 (flat index 5) is not a finite float32 number"));
    CHECK_THAT(error_of([&] { load_npy_table(p("scalar.npy"), p("vec_y.npy")); }), Contains("0-d float32[]"));
    CHECK_THAT(error_of([&] { load_npy_table(p("empty_x.npy"), p("vec_y.npy")); }), Contains("no data rows"));
    CHECK_THAT(error_of([&] { load_npy_table(p("missing.npy"), p("vec_y.npy")); }),
               Contains("missing.npy") && Contains("file not found"));
    CHECK_THAT(error_of([&] { load_npy_table(p("both.npy"), std::string("label")); }),
               Contains("must be an integer index (-1 = the last column), got 'label'"));
    CHECK_THAT(error_of([&] { load_npy_table(p("both.npy"), (dir / "y.npy").string()); }),
               Contains("pass both as std::filesystem::path"));
    CHECK_THAT(error_of([&] { load_npy_table("x.npy", "y.npy"); }), Contains("got 'y.npy'; to read features"));
    CHECK_THAT(error_of([&] { load_npy_table(p("both.npy"), std::string("4")); }),
               Contains("label column index 4 is out of range for 4 columns: it must be from -4 to 3"));
    CHECK_THAT(error_of([&] { load_npy_table(p("img_x.npy"), std::string("-1")); }),
               Contains("expected a 2-D array [rows, columns]") && Contains("uint8[20,1,8,8]"));
    CHECK_THAT(error_of([&] { load_npy_table(p("both_frac.npy"), std::string("-1")); }),
               Equals("npy table " + d + "both_frac.npy: label 1.5 at row 4 (column 3) is not a class label: class "
                      "labels are non-negative integers (0, 1, 2...); map class names to integers first, or read "
                      "regression targets with float_labels"));
}

TEST_CASE("dataset: check_class_labels names the value, row and class count", "[dataset]") {
    Table t;
    t.features = Tensor::zeros(DType::Float32, {400, 2});
    t.labels = Tensor::zeros(DType::Int64, {400});
    auto* y = t.labels.data<std::int64_t>();
    for (int i = 0; i < 400; ++i) y[i] = i % 10;
    CHECK_NOTHROW(check_class_labels(t, 10, "digits.csv.gz column 64"));
    y[301] = 12;
    y[350] = 11;
    CHECK_THAT(error_of([&] { check_class_labels(t, 10, "digits.csv.gz column 64"); }),
               Equals("labels in digits.csv.gz column 64: value 12 at row 301 is out of range for a model with 10 "
                      "classes (labels must be in 0..9; 2 of 400 rows are outside, the largest label is 12: does the "
                      "model need 13 classes?)"));
    y[301] = -1;
    y[350] = 0;
    CHECK_THAT(error_of([&] { check_class_labels(t, 10, "x"); }),
               Contains("value -1 at row 301") && Contains("the smallest label is -1"));
    CHECK_THAT(error_of([&] { check_class_labels(t, 0, "x"); }), Contains("at least 1 class"));
    t.labels = Tensor::zeros(DType::Float32, {400});
    CHECK_THAT(error_of([&] { check_class_labels(t, 10, "y.npy"); }),
               Contains("labels in y.npy are float32[400], not int64 class indices"));
}

// ---------------------------------------------------------------------------
// Token files

TEST_CASE("dataset: TokenFile maps uint16 and int32 tokens", "[dataset]") {
    TempDir dir;
    std::vector<std::uint16_t> u16(1000);
    for (std::size_t i = 0; i < u16.size(); ++i) u16[i] = static_cast<std::uint16_t>((i * 37) % 50000 + (i == 999 ? 15000 : 0));
    rt_test::write_bytes(dir / "u16.bin", std::string(reinterpret_cast<const char*>(u16.data()), u16.size() * 2));
    std::vector<std::int32_t> i32{0, 5, 70000, 3, 70000, 2};
    rt_test::write_bytes(dir / "i32.bin", std::string(reinterpret_cast<const char*>(i32.data()), i32.size() * 4));

    TokenFile a(dir / "u16.bin", DType::UInt16);
    REQUIRE(a.size() == 1000);
    CHECK(a.dtype() == DType::UInt16);
    bool same = true;
    for (std::int64_t i = 0; i < a.size(); ++i) same = same && a[i] == u16[static_cast<std::size_t>(i)];
    CHECK(same);
    CHECK_NOTHROW(a.check_vocab(65000));
    CHECK_NOTHROW(a.check_vocab(70000));  // every uint16 fits
    const std::string ua = (dir / "u16.bin").string();
    CHECK_THAT(error_of([&] { a.check_vocab(50000); }),
               StartsWith("token file " + ua + ": token 51963 at position 999 is outside the vocabulary of 50000 (1 of "
                          "1000 tokens are outside, the largest is 51963"));

    TokenFile b(dir / "i32.bin", DType::Int32);
    CHECK(b.size() == 6);
    CHECK(b[2] == 70000);
    CHECK_NOTHROW(b.check_vocab(70001));
    CHECK_THAT(error_of([&] { b.check_vocab(50257); }),
               StartsWith("token file " + (dir / "i32.bin").string() +
                          ": token 70000 at position 2 is outside the vocabulary of 50257 (2 of 6 tokens"));
    i32[4] = -7;
    rt_test::write_bytes(dir / "neg.bin", std::string(reinterpret_cast<const char*>(i32.data()), i32.size() * 4));
    CHECK_THAT(error_of([&] { TokenFile(dir / "neg.bin", DType::Int32).check_vocab(100000); }),
               Contains("token -7 at position 4") && Contains("the smallest is -7"));

    // Moves keep the mapping valid.
    TokenFile moved = std::move(a);
    CHECK(moved.size() == 1000);
    CHECK(moved[999] == u16[999]);
    CHECK(a.size() == 0);
    moved = std::move(b);
    CHECK(moved[2] == 70000);
}

TEST_CASE("dataset: a text file read byte by byte is a uint8 token stream", "[dataset]") {
    TempDir dir;
    rt_test::write_bytes(dir / "text.txt", "hello, world\n");
    TokenFile t(dir / "text.txt", DType::UInt8);
    REQUIRE(t.size() == 13);
    CHECK(t[0] == 'h');
    CHECK(t[12] == '\n');
    CHECK_NOTHROW(t.check_vocab(128));
    CHECK_THAT(error_of([&] { t.check_vocab(100); }), Contains("token 104 at position 0 is outside the vocabulary of 100"));
    Rng rng(1);
    std::int64_t in[8], tg[8];
    sample_windows(t, 0, 13, 2, 4, rng, in, tg);
    for (int b = 0; b < 2; ++b)
        for (int k = 0; k < 3; ++k) CHECK(tg[b * 4 + k] == in[b * 4 + k + 1]);
}

TEST_CASE("dataset: bad token files", "[dataset]") {
    TempDir dir;
    rt_test::write_bytes(dir / "odd.bin", "abc");
    rt_test::write_bytes(dir / "six.bin", "abcdef");
    rt_test::write_bytes(dir / "empty.bin", "");
    const std::string d = dir.path().string() + "/";
    CHECK_THAT(error_of([&] { TokenFile(dir / "odd.bin", DType::UInt16); }),
               Equals("token file " + d + "odd.bin: size 3 bytes is not a multiple of 2 (the size of a uint16 token): "
                      "is the dtype right, or is the file truncated?"));
    CHECK_THAT(error_of([&] { TokenFile(dir / "six.bin", DType::Int32); }), Contains("size 6 bytes is not a multiple of 4"));
    CHECK_NOTHROW(TokenFile(dir / "six.bin", DType::UInt16));
    CHECK_THAT(error_of([&] { TokenFile(dir / "empty.bin", DType::UInt16); }),
               Equals("token file " + d + "empty.bin: empty file (no tokens)"));
    CHECK_THAT(error_of([&] { TokenFile(dir / "nope.bin", DType::UInt16); }),
               Equals("token file " + d + "nope.bin: file not found"));
    CHECK_THAT(error_of([&] { TokenFile(dir.path(), DType::UInt16); }), Contains("not a regular file"));
    CHECK_THAT(error_of([&] { TokenFile(dir / "six.bin", DType::Float32); }),
               Contains("token dtype must be uint8 (bytes), uint16 or int32, got float32"));
    CHECK_THAT(error_of([&] { TokenFile(dir / "six.bin", DType::UInt16).check_vocab(0); }),
               Contains("vocabulary size must be positive"));
}

TEST_CASE("dataset: sample_windows gives inputs and next-token targets", "[dataset]") {
    TempDir dir;
    const int n = 5000;
    std::vector<std::uint16_t> tok(n);
    for (int i = 0; i < n; ++i) tok[static_cast<std::size_t>(i)] = static_cast<std::uint16_t>(i);  // token = position
    rt_test::write_bytes(dir / "t.bin", std::string(reinterpret_cast<const char*>(tok.data()), tok.size() * 2));
    std::vector<std::int32_t> tok32(tok.begin(), tok.end());
    rt_test::write_bytes(dir / "t32.bin", std::string(reinterpret_cast<const char*>(tok32.data()), tok32.size() * 4));
    const TokenFile f(dir / "t.bin", DType::UInt16);
    const TokenFile f32(dir / "t32.bin", DType::Int32);
    run_reference({"perm", dir.path().string()});
    const auto ref = read_int_lines(dir / "perm.txt");
    REQUIRE(ref.size() == 10);

    const std::int64_t B = 16, T = 8;
    std::vector<std::int64_t> in(B * T), tg(B * T), in32(B * T), tg32(B * T);
    // [100, 1108): 1000 possible offsets 100..1099; the draws match Python's.
    Rng rng(99), rng32(99);
    sample_windows(f, 100, 1100 + T, B, T, rng, in.data(), tg.data());
    sample_windows(f32, 100, 1100 + T, B, T, rng32, in32.data(), tg32.data());
    CHECK(in == in32);
    CHECK(tg == tg32);
    for (std::int64_t b = 0; b < B; ++b) {
        INFO(b);
        CHECK(in[static_cast<std::size_t>(b * T)] == 100 + ref[9][static_cast<std::size_t>(b)]);
        for (std::int64_t t = 0; t < T; ++t) {
            CHECK(in[static_cast<std::size_t>(b * T + t)] == in[static_cast<std::size_t>(b * T)] + t);
            CHECK(tg[static_cast<std::size_t>(b * T + t)] == in[static_cast<std::size_t>(b * T + t)] + 1);
        }
    }
    // Every offset of a small range is drawn, none outside it; the last target is end - 1.
    std::set<std::int64_t> seen;
    Rng r2(5);
    std::vector<std::int64_t> i1(T), t1(T);
    for (int k = 0; k < 400; ++k) {
        sample_windows(f, 10, 10 + T + 3, 1, T, r2, i1.data(), t1.data());
        seen.insert(i1[0]);
        CHECK(t1[T - 1] <= 10 + T + 3 - 1);
    }
    CHECK(seen == std::set<std::int64_t>{10, 11, 12});
    sample_windows(f, 4990 - T, 4990 + 1, 1, T, r2, i1.data(), t1.data());  // exactly T + 1 tokens: one window
    CHECK(i1[0] == 4990 - T);
    CHECK(t1[T - 1] == 4990);

    const std::string file = (dir / "t.bin").string();
    CHECK_THAT(error_of([&] { sample_windows(f, 0, T, 1, T, r2, i1.data(), t1.data()); }),
               Contains("token file " + file + ": token range [0, 8) has 8 tokens, but a window of T = 8 needs T + 1 = 9"));
    CHECK_THAT(error_of([&] { sample_windows(f, 0, n + 1, 1, T, r2, i1.data(), t1.data()); }),
               Contains("[0, 5001) is not inside the file's 5000 tokens"));
    CHECK_THAT(error_of([&] { sample_windows(f, 0, n, 0, T, r2, i1.data(), t1.data()); }), Contains("batch > 0"));
}

// ---------------------------------------------------------------------------
// Splits, batches, gather

TEST_CASE("dataset: split_rows and BatchSampler match the reference shuffle bit for bit", "[dataset]") {
    TempDir dir;
    run_reference({"perm", dir.path().string()});
    const auto ref = read_int_lines(dir / "perm.txt");
    REQUIRE(ref.size() == 10);
    const Split a = split_rows(10, 0.3, 42);
    CHECK(a.train == ref[0]);
    CHECK(a.val == ref[1]);
    CHECK(a.val.size() == 3);
    const Split b = split_rows(1797, 0.2, 0);
    CHECK(b.train == ref[2]);
    CHECK(b.val == ref[3]);
    CHECK(b.val.size() == 359);
    const Split c = split_rows(5, 0.2, ~std::uint64_t{0});
    CHECK(c.train == ref[4]);
    CHECK(c.val == ref[5]);

    const std::vector<std::int64_t> rows{3, 5, 8, 13, 21, 34, 55, 89, 144, 233};
    BatchSampler s(rows, 4, true, 1234);
    int k = 6;
    for (std::int64_t epoch : {0, 1, 7}) {
        s.start_epoch(epoch);
        std::vector<std::int64_t> order;
        std::span<const std::int64_t> batch;
        while (s.next(batch)) order.insert(order.end(), batch.begin(), batch.end());
        CHECK(order == ref[static_cast<std::size_t>(k++)]);
    }
}

TEST_CASE("dataset: splits and batches are seeded, complete and reproducible", "[dataset]") {
    const Split s = split_rows(1797, 0.2, 7);
    CHECK(s.val.size() == 359);
    CHECK(s.train.size() == 1438);
    std::vector<std::int64_t> all = s.train;
    all.insert(all.end(), s.val.begin(), s.val.end());
    std::sort(all.begin(), all.end());
    std::vector<std::int64_t> iota(1797);
    std::iota(iota.begin(), iota.end(), 0);
    CHECK(all == iota);
    CHECK(split_rows(1797, 0.2, 7).val == s.val);
    CHECK(split_rows(1797, 0.2, 8).val != s.val);
    CHECK(split_rows(50, 0.0, 7).val.empty());
    CHECK(split_rows(50, 0.0, 7).train.size() == 50);
    CHECK(split_rows(0, 0.0, 7).train.empty());
    CHECK_THAT(error_of([] { split_rows(10, 1.0, 1); }), Contains("validation fraction must be in [0, 1)"));
    CHECK_THAT(error_of([] { split_rows(10, -0.1, 1); }), Contains("must be in [0, 1)"));
    CHECK_THAT(error_of([] { split_rows(10, std::nan(""), 1); }), Contains("must be in [0, 1)"));
    CHECK_THAT(error_of([] { split_rows(50, 0.001, 1); }), Contains("rounds to no validation rows"));
    CHECK_THAT(error_of([] { split_rows(10, 0.99, 1); }), Contains("leaves no training rows"));

    auto epoch_batches = [](BatchSampler& b, std::int64_t epoch) {
        b.start_epoch(epoch);
        std::vector<std::vector<std::int64_t>> out;
        std::span<const std::int64_t> batch;
        while (b.next(batch)) out.emplace_back(batch.begin(), batch.end());
        return out;
    };
    BatchSampler a(s.train, 64, true, 42);
    CHECK(a.samples() == 1438);
    CHECK(a.batches_per_epoch() == 23);  // 22 full batches + 30
    const auto e0 = epoch_batches(a, 0);
    REQUIRE(e0.size() == 23);
    for (std::size_t i = 0; i + 1 < e0.size(); ++i) CHECK(e0[i].size() == 64);
    CHECK(e0.back().size() == 1438 - 22 * 64);
    std::vector<std::int64_t> flat;
    for (const auto& v : e0) flat.insert(flat.end(), v.begin(), v.end());
    std::sort(flat.begin(), flat.end());
    CHECK(flat == s.train);  // every row exactly once
    const auto e1 = epoch_batches(a, 1);
    CHECK(e1 != e0);
    // A fresh sampler (a resumed run) at epoch 1 sees epoch 1's order; the order
    // does not depend on which epochs ran before.
    BatchSampler resumed(s.train, 64, true, 42);
    CHECK(epoch_batches(resumed, 1) == e1);
    CHECK(epoch_batches(a, 0) == e0);
    BatchSampler other_seed(s.train, 64, true, 43);
    CHECK(epoch_batches(other_seed, 0) != e0);
    // The constructor starts epoch 0.
    BatchSampler fresh(s.train, 64, true, 42);
    std::span<const std::int64_t> first;
    REQUIRE(fresh.next(first));
    CHECK(std::vector<std::int64_t>(first.begin(), first.end()) == e0[0]);

    BatchSampler in_order({4, 2, 9, 7, 1}, 2, false, 0);
    CHECK(epoch_batches(in_order, 3) == std::vector<std::vector<std::int64_t>>{{4, 2}, {9, 7}, {1}});
    BatchSampler empty({}, 8, true, 0);
    CHECK(empty.batches_per_epoch() == 0);
    CHECK(epoch_batches(empty, 0).empty());
    CHECK_THAT(error_of([] { BatchSampler({1}, 0, true, 0); }), Contains("batch size must be positive"));
}

TEST_CASE("dataset: gather_rows copies rows of any dtype and shape", "[dataset]") {
    Tensor x = Tensor::zeros(DType::Float32, {5, 1, 2, 2});
    for (int i = 0; i < 20; ++i) x.data<float>()[i] = static_cast<float>(i);
    Tensor y = Tensor::zeros(DType::Int64, {5});
    for (int i = 0; i < 5; ++i) y.data<std::int64_t>()[i] = 10 * i;
    Tensor u = Tensor::zeros(DType::UInt8, {5, 3});
    for (int i = 0; i < 15; ++i) u.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(i);
    const std::vector<std::int64_t> rows{4, 0, 4, 2};
    std::vector<float> xb(16);
    std::vector<std::int64_t> yb(4);
    std::vector<std::uint8_t> ub(12);
    gather_rows(x, rows, xb.data());
    gather_rows(y, rows, yb.data());
    gather_rows(u, rows, ub.data());
    CHECK(xb == std::vector<float>{16, 17, 18, 19, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11});
    CHECK(yb == std::vector<std::int64_t>{40, 0, 40, 20});
    CHECK(ub == std::vector<std::uint8_t>{12, 13, 14, 0, 1, 2, 12, 13, 14, 6, 7, 8});
    gather_rows(x, {}, nullptr);  // nothing to copy
    const std::vector<std::int64_t> bad{1, 5};
    CHECK_THAT(error_of([&] { gather_rows(y, bad, yb.data()); }),
               Equals("gather_rows: row 5 is out of range for int64[5] (5 rows)"));
    const Tensor strided = Tensor::borrow(u.raw_data(), DType::UInt8, {3, 5}, {1, 3});
    CHECK_THAT(error_of([&] { gather_rows(strided, rows, ub.data()); }), Contains("must be contiguous"));
}
