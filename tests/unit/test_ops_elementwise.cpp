// Shape and dtype rules of the elementwise and linear-algebra families.
#include "helpers.h"

using namespace mithril;
using namespace mithril::test;
using Catch::Contains;

TEST_CASE("unary ops keep shape and dtype") {
  for (auto op : {"Exp", "Tanh", "Sigmoid", "Gelu", "Silu", "Erf", "Floor", "Rsqrt"}) {
    CHECK(infer_op(op, "", {{"input", "float32[N, 3, 5]"}}) == std::vector<std::string>{"float32[N, 3, 5]"});
    CHECK(infer_op(op, "", {{"input", "float64[]"}}) == std::vector<std::string>{"float64[]"});
  }
  CHECK(infer_op("Relu", "", {{"input", "int32[4]"}}) == std::vector<std::string>{"int32[4]"});
  CHECK(infer_op("Gelu", "{approximate: tanh}", {{"input", "float32[2]"}})[0] == "float32[2]");
}

TEST_CASE("unary ops reject wrong dtypes and arguments") {
  CHECK_THAT(infer_op_error("Exp", "", {{"input", "int64[3]"}}), Contains("must be float32 or float64") && Contains("int64[3]"));
  CHECK_THAT(infer_op_error("Gelu", "{approximate: fast}", {{"input", "float32[3]"}}),
             Contains("argument 'approximate' of Gelu expects one of none, tanh, found string \"fast\""));
  CHECK_THAT(infer_op_error("Clip", "{min: 2, max: 1}", {{"input", "float32[3]"}}), Contains("min 2 is greater than max 1"));
  CHECK(infer_op("Cast", "{dtype: int32}", {{"input", "float32[N, 2]"}})[0] == "int32[N, 2]");
  CHECK_THAT(infer_op_error("Cast", "{dtype: float16}", {{"input", "float32[2]"}}), Contains("expects one of float32"));
}

TEST_CASE("binary ops broadcast like NumPy") {
  CHECK(infer_op("Add", "", {{"left", "float32[N, 1, 5]"}, {"right", "float32[3, 1]"}})[0] == "float32[N, 3, 5]");
  CHECK(infer_op("Multiply", "", {{"left", "float32[]"}, {"right", "float32[4, 2]"}})[0] == "float32[4, 2]");
  CHECK(infer_op("Subtract", "", {{"left", "int64[N, T]"}, {"right", "int64[T]"}})[0] == "int64[N, T]");
  CHECK(infer_op("Greater", "", {{"left", "float32[2, 3]"}, {"right", "float32[3]"}})[0] == "bool[2, 3]");
  CHECK(infer_op("Equal", "", {{"left", "bool[2]"}, {"right", "bool[2]"}})[0] == "bool[2]");
  CHECK(infer_op("Where", "", {{"condition", "bool[N, 1]"}, {"left", "float32[1, 4]"}, {"right", "float32[]"}})[0] ==
        "float32[N, 4]");
}

TEST_CASE("binary ops report shape and dtype mismatches with both sides") {
  CHECK_THAT(infer_op_error("Add", "", {{"left", "float32[N, 3]"}, {"right", "float32[N, 4]"}}),
             Contains("shape mismatch") && Contains("[N, 3]") && Contains("[N, 4]"));
  CHECK_THAT(infer_op_error("Add", "", {{"left", "float32[3]"}, {"right", "float64[3]"}}),
             Contains("dtype mismatch") && Contains("float32[3]") && Contains("float64[3]"));
  CHECK_THAT(infer_op_error("Where", "", {{"condition", "float32[3]"}, {"left", "float32[3]"}, {"right", "float32[3]"}}),
             Contains("'condition' must be bool"));
  CHECK_THAT(infer_op_error("Power", "", {{"left", "int32[3]"}, {"right", "int32[3]"}}), Contains("must be float32 or float64"));
}

TEST_CASE("MatMul follows NumPy: batched, broadcast, vectors promoted") {
  CHECK(infer_op("MatMul", "", {{"left", "float32[N, 3, 4]"}, {"right", "float32[4, 5]"}})[0] == "float32[N, 3, 5]");
  CHECK(infer_op("MatMul", "", {{"left", "float32[2, 1, 3, 4]"}, {"right", "float32[7, 4, 5]"}})[0] == "float32[2, 7, 3, 5]");
  CHECK(infer_op("MatMul", "", {{"left", "float32[4]"}, {"right", "float32[4, 5]"}})[0] == "float32[5]");
  CHECK(infer_op("MatMul", "", {{"left", "float32[3, 4]"}, {"right", "float32[4]"}})[0] == "float32[3]");
  CHECK(infer_op("MatMul", "", {{"left", "float32[4]"}, {"right", "float32[4]"}})[0] == "float32[]");
  CHECK_THAT(infer_op_error("MatMul", "", {{"left", "float32[N, 3]"}, {"right", "float32[4, 5]"}}),
             Contains("contracted dimension (3 vs 4)"));
}

TEST_CASE("Linear infers PyTorch-layout parameters") {
  CHECK(infer_op("Linear", "{dimension: 10}", {{"input", "float32[N, T, 64]"}})[0] == "float32[N, T, 10]");
  CHECK(op_params("Linear", "{dimension: 10}", {{"input", "float32[N, 64]"}}) ==
        std::vector<std::string>{"0.weight: float32[10, 64]", "0.bias: float32[10]"});
  CHECK(op_params("Linear", "{dimension: 10, bias: false}", {{"input", "float64[N, 64]"}}) ==
        std::vector<std::string>{"0.weight: float64[10, 64]"});
  CHECK_THAT(infer_op_error("Linear", "{dimension: 10}", {{"input", "float32[N, D]"}}),
             Contains("must be a known size, found symbolic D"));
  CHECK_THAT(infer_op_error("Linear", "{}", {{"input", "float32[N, 4]"}}), Contains("Linear requires argument 'dimension'"));
  CHECK_THAT(infer_op_error("Linear", "{dimension: ten}", {{"input", "float32[N, 4]"}}),
             Contains("argument 'dimension' of Linear expects an integer, found string \"ten\""));
}
