// Shape and dtype rules of the reduce family.
#include "helpers.h"

using namespace mithril;
using namespace mithril::test;
using Catch::Contains;
using Types = std::vector<std::string>;

TEST_CASE("reductions over all axes by default", "[reduce]") {
  for (auto op : {"Sum", "Mean", "Max", "Min", "Prod", "Variance", "LogSumExp"}) {
    INFO(op);
    CHECK(infer_op(op, "", {{"input", "float32[N, 3, 5]"}}) == Types{"float32[]"});
    CHECK(infer_op(op, "{keepdim: true}", {{"input", "float64[N, 3, 5]"}}) == Types{"float64[1, 1, 1]"});
    CHECK(infer_op(op, "{axis: 1}", {{"input", "float32[N, 3, 5]"}}) == Types{"float32[N, 5]"});
    CHECK(infer_op(op, "{axis: -1, keepdim: true}", {{"input", "float32[N, T, D]"}}) == Types{"float32[N, T, 1]"});
    CHECK(infer_op(op, "{axis: [0, -1]}", {{"input", "float32[N, T, D]"}}) == Types{"float32[T]"});
    CHECK(infer_op(op, "{axis: [2, 0], keepdim: true}", {{"input", "float32[N, T, D]"}}) == Types{"float32[1, T, 1]"});
  }
}

TEST_CASE("reductions keep the dtype, accept ints where numeric, and handle scalars", "[reduce]") {
  for (auto op : {"Sum", "Max", "Min", "Prod"}) {
    INFO(op);
    CHECK(infer_op(op, "{axis: 0}", {{"input", "int64[N, 4]"}}) == Types{"int64[4]"});
    CHECK(infer_op(op, "", {{"input", "int32[2, 3]"}}) == Types{"int32[]"});
  }
  CHECK(infer_op("Sum", "", {{"input", "float32[]"}}) == Types{"float32[]"});
  CHECK(infer_op("Mean", "{keepdim: true}", {{"input", "float32[]"}}) == Types{"float32[]"});
  CHECK(infer_op("Sum", "{axis: 1}", {{"input", "float32[N, 1, 4]"}}) == Types{"float32[N, 4]"});
  CHECK(infer_op("Sum", "{axis: 0}", {{"input", "float32[0, 4]"}}) == Types{"float32[4]"});
  CHECK(infer_op("Variance", "{axis: 1, correction: 0}", {{"input", "float32[N, 1]"}}) == Types{"float32[N]"});
  CHECK(infer_op("Variance", "{axis: 0}", {{"input", "float32[N, 4]"}}) == Types{"float32[4]"});
}

TEST_CASE("reductions reject bad dtypes", "[reduce]") {
  for (auto op : {"Mean", "Variance", "LogSumExp"}) {
    INFO(op);
    CHECK_THAT(infer_op_error(op, "", {{"input", "int32[N, 3]"}}),
               Contains("'input' must be float32 or float64, found int32[N, 3]"));
  }
  for (auto op : {"Sum", "Max", "Min", "Prod"}) {
    INFO(op);
    CHECK_THAT(infer_op_error(op, "", {{"input", "bool[3]"}}), Contains("'input' must be numeric, found bool[3]"));
  }
}

TEST_CASE("reductions reject bad axes", "[reduce]") {
  CHECK_THAT(infer_op_error("Sum", "{axis: 3}", {{"input", "float32[N, 3, 5]"}}),
             Contains("axis 3 is out of range for rank 3 (valid: -3..2)"));
  CHECK_THAT(infer_op_error("Sum", "{axis: [-4]}", {{"input", "float32[N, 3, 5]"}}), Contains("axis -4 is out of range"));
  CHECK_THAT(infer_op_error("Mean", "{axis: 0}", {{"input", "float32[]"}}), Contains("out of range for a scalar input"));
  CHECK_THAT(infer_op_error("Sum", "{axis: [1, -2]}", {{"input", "float32[N, 3, 5]"}}),
             Contains("'axis' [1, -2] names axis 1 twice (1 and -2) for input float32[N, 3, 5]"));
  CHECK_THAT(infer_op_error("Sum", "{axis: []}", {{"input", "float32[3]"}}), Contains("'axis' is an empty list"));
  CHECK_THAT(infer_op_error("Sum", "{axis: x}", {{"input", "float32[3]"}}),
             Contains("argument 'axis' of Sum expects an integer or a list of integers"));
  CHECK_THAT(infer_op_error("Mean", "{keepdim: 1}", {{"input", "float32[3]"}}),
             Contains("argument 'keepdim' of Mean expects true or false"));
}

TEST_CASE("Max and Min need elements, Variance needs more elements than its correction", "[reduce]") {
  CHECK_THAT(infer_op_error("Max", "{axis: 1}", {{"input", "float32[N, 0]"}}),
             Contains("Max over axis 1 of size 0 has no result: input float32[N, 0]"));
  CHECK_THAT(infer_op_error("Min", "", {{"input", "int64[3, 0]"}}), Contains("Min over axis 1 of size 0"));
  CHECK(infer_op("Max", "{axis: 0}", {{"input", "float32[N, 0]"}}) == Types{"float32[0]"});
  CHECK_THAT(infer_op_error("Variance", "{axis: 1}", {{"input", "float32[N, 1]"}}),
             Contains("Variance over 1 element(s) with correction 1 divides by 0") && Contains("float32[N, 1]"));
  CHECK_THAT(infer_op_error("Variance", "{correction: 6}", {{"input", "float32[2, 3]"}}),
             Contains("Variance over 6 element(s) with correction 6"));
  CHECK_THAT(infer_op_error("Variance", "{correction: -1}", {{"input", "float32[N, 3]"}}),
             Contains("'correction' must be 0 or more, found -1"));
  CHECK_THAT(infer_op_error("Sum", "{correction: 1}", {{"input", "float32[3]"}}), Contains("unknown argument 'correction'"));
}

TEST_CASE("ArgMax and ArgMin give int64 indices", "[reduce]") {
  for (auto op : {"ArgMax", "ArgMin"}) {
    INFO(op);
    CHECK(infer_op(op, "", {{"input", "float32[N, 10]"}}) == Types{"int64[]"});
    CHECK(infer_op(op, "{keepdim: true}", {{"input", "float32[N, 10]"}}) == Types{"int64[1, 1]"});
    CHECK(infer_op(op, "{axis: -1}", {{"input", "float32[N, T, 10]"}}) == Types{"int64[N, T]"});
    CHECK(infer_op(op, "{axis: 1, keepdim: true}", {{"input", "int32[N, 10, 3]"}}) == Types{"int64[N, 1, 3]"});
    CHECK(infer_op(op, "{axis: 0}", {{"input", "float64[1]"}}) == Types{"int64[]"});
    CHECK(infer_op(op, "", {{"input", "float32[]"}}) == Types{"int64[]"});
    CHECK_THAT(infer_op_error(op, "{axis: 2}", {{"input", "float32[N, 10]"}}), Contains("axis 2 is out of range for rank 2"));
    CHECK_THAT(infer_op_error(op, "{axis: [0, 1]}", {{"input", "float32[N, 10]"}}),
               Contains("expects an integer, found list [0,1]"));
    CHECK_THAT(infer_op_error(op, "", {{"input", "bool[3]"}}), Contains("'input' must be numeric, found bool[3]"));
    CHECK_THAT(infer_op_error(op, "{axis: 1}", {{"input", "float32[N, 0]"}}), Contains("over axis 1 of size 0 has no result"));
  }
}

TEST_CASE("reduce ops are documented and carry the reduction trait", "[reduce]") {
  for (auto name : {"Sum", "Mean", "Max", "Min", "Prod", "Variance", "LogSumExp", "ArgMax", "ArgMin"}) {
    INFO(name);
    const OpDef* op = find_op(name);
    REQUIRE(op);
    CHECK(op->family == "reduce");
    CHECK(op->has_trait("reduction"));
    CHECK(!op->summary.empty());
    for (auto& a : op->args) CHECK(!a.doc.empty());
  }
  CHECK(find_op("Variance")->find_arg("correction")->default_value == json(1));
}
