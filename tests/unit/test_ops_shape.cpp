// Shape and dtype rules of the shape family.
#include "helpers.h"

using namespace mithril;
using namespace mithril::test;
using Catch::Contains;
using Types = std::vector<std::string>;

namespace {

// Constant has no input ports, so it is checked inside a model whose input feeds another layer.
std::string constant_model(const std::string& args) {
  return fmt::format(
      "name: t\ninputs:\n  x: {{shape: [2], dtype: float32}}\noutputs: [y, c]\nlayers:\n"
      "  - {{op: Identity, input: x, output: y}}\n"
      "  - {{op: Constant, args: {}, output: c}}\n",
      args);
}
std::string constant_type(const std::string& args) { return output_type(check_text(constant_model(args)), "c"); }
std::string constant_error(const std::string& args) { return check_error(constant_model(args)); }

}  // namespace

TEST_CASE("Reshape infers -1 and copies 0, with symbolic sizes", "[shape]") {
  CHECK(infer_op("Reshape", "{shape: [0, 0, 12, 64]}", {{"input", "float32[N, T, 768]"}}) == Types{"float32[N, T, 12, 64]"});
  CHECK(infer_op("Reshape", "{shape: [0, 0, -1]}", {{"input", "float32[N, T, 12, 64]"}}) == Types{"float32[N, T, 768]"});
  CHECK(infer_op("Reshape", "{shape: [-1, 1, 28, 28]}", {{"input", "float32[N, 784]"}}) == Types{"float32[N, 1, 28, 28]"});
  CHECK(infer_op("Reshape", "{shape: [-1]}", {{"input", "int64[N, 3, 4]"}}) == Types{"int64[N*12]"});
  CHECK(infer_op("Reshape", "{shape: [6, 4]}", {{"input", "float32[2, 3, 4]"}}) == Types{"float32[6, 4]"});
  CHECK(infer_op("Reshape", "{shape: [2, -1]}", {{"input", "float32[4, 3]"}}) == Types{"float32[2, 6]"});
  CHECK(infer_op("Reshape", "{shape: []}", {{"input", "float32[1, 1]"}}) == Types{"float32[]"});
  CHECK(infer_op("Reshape", "{shape: [-1]}", {{"input", "float32[]"}}) == Types{"float32[1]"});
  CHECK(infer_op("Reshape", "{shape: [0, -1, 4]}", {{"input", "float32[N, T, 8]"}}) == Types{"float32[N, T*2, 4]"});
}

TEST_CASE("Reshape errors name both shapes", "[shape]") {
  CHECK_THAT(infer_op_error("Reshape", "{shape: [5, 5]}", {{"input", "float32[4, 6]"}}),
             Contains("cannot reshape float32[4, 6] (24 elements) to [5, 5] = [5, 5] (25 elements)"));
  CHECK_THAT(infer_op_error("Reshape", "{shape: [0, 10]}", {{"input", "float32[N, 784]"}}),
             Contains("cannot reshape float32[N, 784] (N*784 elements) to [0, 10] = [N, 10]"));
  CHECK_THAT(infer_op_error("Reshape", "{shape: [-1, 5]}", {{"input", "float32[4, 6]"}}),
             Contains("cannot reshape float32[4, 6] to [-1, 5]: the input's 24 elements are not a multiple of 5"));
  CHECK_THAT(infer_op_error("Reshape", "{shape: [-1, 2]}", {{"input", "float32[N]"}}),
             Contains("the input's N elements are not known to be a multiple of 2"));
  CHECK_THAT(infer_op_error("Reshape", "{shape: [-1, -1]}", {{"input", "float32[4, 6]"}}), Contains("more than one -1"));
  CHECK_THAT(infer_op_error("Reshape", "{shape: [4, -2]}", {{"input", "float32[4, 6]"}}), Contains("has -2 at position 1"));
  CHECK_THAT(infer_op_error("Reshape", "{shape: [0, 0, -1]}", {{"input", "float32[24]"}}),
             Contains("'shape' [0, 0, -1] has 0 at position 1, which copies the input's size there, but the input float32[24] has rank 1"));
  CHECK_THAT(infer_op_error("Reshape", "{shape: [0, -1]}", {{"input", "float32[0, 5]"}}),
             Contains("cannot infer the -1 in 'shape' [0, -1]: the other sizes multiply to 0"));
  CHECK_THAT(infer_op_error("Reshape", "{}", {{"input", "float32[4]"}}), Contains("Reshape requires argument 'shape'"));
}

TEST_CASE("Flatten merges start_dim..end_dim as torch.flatten", "[shape]") {
  CHECK(infer_op("Flatten", "", {{"input", "float32[N, 16, 5, 5]"}}) == Types{"float32[N, 400]"});
  CHECK(infer_op("Flatten", "", {{"input", "float32[N, C, H, W]"}}) == Types{"float32[N, C*H*W]"});
  CHECK(infer_op("Flatten", "{start_dim: 0}", {{"input", "int32[2, 3]"}}) == Types{"int32[6]"});
  CHECK(infer_op("Flatten", "{start_dim: 1, end_dim: 2}", {{"input", "float32[N, 2, 3, 4]"}}) == Types{"float32[N, 6, 4]"});
  CHECK(infer_op("Flatten", "{start_dim: -2}", {{"input", "float32[N, 2, 3]"}}) == Types{"float32[N, 6]"});
  CHECK(infer_op("Flatten", "{start_dim: 0}", {{"input", "float32[]"}}) == Types{"float32[1]"});
  CHECK(infer_op("Flatten", "", {{"input", "float32[N, 5]"}}) == Types{"float32[N, 5]"});
  CHECK_THAT(infer_op_error("Flatten", "{start_dim: 2, end_dim: 1}", {{"input", "float32[N, 2, 3]"}}),
             Contains("'start_dim' 2 (axis 2) comes after 'end_dim' 1 (axis 1) for input float32[N, 2, 3]"));
  CHECK_THAT(infer_op_error("Flatten", "", {{"input", "float32[7]"}}), Contains("axis 1 is out of range for rank 1"));
  CHECK_THAT(infer_op_error("Flatten", "{end_dim: 4}", {{"input", "float32[N, 2, 3]"}}), Contains("axis 4 is out of range"));
}

TEST_CASE("Transpose swaps two axes, the last two by default", "[shape]") {
  CHECK(infer_op("Transpose", "", {{"input", "float32[N, M, K]"}}) == Types{"float32[N, K, M]"});
  CHECK(infer_op("Transpose", "{dim0: 1, dim1: 2}", {{"input", "float32[N, T, 12, 64]"}}) == Types{"float32[N, 12, T, 64]"});
  CHECK(infer_op("Transpose", "{dim0: 0, dim1: 0}", {{"input", "int64[2, 3]"}}) == Types{"int64[2, 3]"});
  CHECK(infer_op("Transpose", "{dim0: -1, dim1: 0}", {{"input", "bool[2, 3, 4]"}}) == Types{"bool[4, 3, 2]"});
  CHECK_THAT(infer_op_error("Transpose", "", {{"input", "float32[5]"}}), Contains("axis -2 is out of range for rank 1"));
  CHECK_THAT(infer_op_error("Transpose", "{dim1: 3}", {{"input", "float32[2, 3]"}}), Contains("axis 3 is out of range"));
}

TEST_CASE("Permute reorders axes by a permutation", "[shape]") {
  CHECK(infer_op("Permute", "{dims: [0, 2, 3, 1]}", {{"input", "float32[N, C, H, W]"}}) == Types{"float32[N, H, W, C]"});
  CHECK(infer_op("Permute", "{dims: [-1, 0]}", {{"input", "int32[3, 4]"}}) == Types{"int32[4, 3]"});
  CHECK(infer_op("Permute", "{dims: []}", {{"input", "float32[]"}}) == Types{"float32[]"});
  CHECK_THAT(infer_op_error("Permute", "{dims: [0, 1]}", {{"input", "float32[N, C, H]"}}),
             Contains("'dims' [0, 1] has 2 entries but the input float32[N, C, H] has rank 3"));
  CHECK_THAT(infer_op_error("Permute", "{dims: [0, 2, -1]}", {{"input", "float32[N, C, H]"}}),
             Contains("'dims' [0, 2, -1] names axis 2 twice (2 and -1)"));
  CHECK_THAT(infer_op_error("Permute", "{dims: [0, 3, 1]}", {{"input", "float32[N, C, H]"}}), Contains("axis 3 is out of range"));
}

TEST_CASE("Squeeze removes size-1 axes", "[shape]") {
  CHECK(infer_op("Squeeze", "", {{"input", "float32[1, N, 1, 3]"}}) == Types{"float32[N, 3]"});
  CHECK(infer_op("Squeeze", "{axis: 2}", {{"input", "float32[1, N, 1, 3]"}}) == Types{"float32[1, N, 3]"});
  CHECK(infer_op("Squeeze", "{axis: [0, -2]}", {{"input", "float32[1, N, 1, 3]"}}) == Types{"float32[N, 3]"});
  CHECK(infer_op("Squeeze", "", {{"input", "int64[1, 1]"}}) == Types{"int64[]"});
  CHECK(infer_op("Squeeze", "", {{"input", "float32[]"}}) == Types{"float32[]"});
  CHECK(infer_op("Squeeze", "", {{"input", "float32[N, 4]"}}) == Types{"float32[N, 4]"});
  CHECK_THAT(infer_op_error("Squeeze", "{axis: 1}", {{"input", "float32[1, 3]"}}),
             Contains("cannot squeeze axis 1 of input float32[1, 3]: its size is 3, not 1"));
  CHECK_THAT(infer_op_error("Squeeze", "{axis: 0}", {{"input", "float32[N, 3]"}}),
             Contains("its size is N (symbolic), not 1"));
  CHECK_THAT(infer_op_error("Squeeze", "{axis: [0, 0]}", {{"input", "float32[1, 3]"}}), Contains("names axis 0 twice"));
  CHECK_THAT(infer_op_error("Squeeze", "{axis: 2}", {{"input", "float32[1, 3]"}}), Contains("axis 2 is out of range"));
}

TEST_CASE("Unsqueeze inserts size-1 axes at output positions", "[shape]") {
  CHECK(infer_op("Unsqueeze", "{axis: 1}", {{"input", "float32[N, D]"}}) == Types{"float32[N, 1, D]"});
  CHECK(infer_op("Unsqueeze", "{axis: -1}", {{"input", "float32[N, D]"}}) == Types{"float32[N, D, 1]"});
  CHECK(infer_op("Unsqueeze", "{axis: 0}", {{"input", "float32[]"}}) == Types{"float32[1]"});
  CHECK(infer_op("Unsqueeze", "{axis: [0, 3]}", {{"input", "int64[T, D]"}}) == Types{"int64[1, T, D, 1]"});
  CHECK(infer_op("Unsqueeze", "{axis: [1, 2]}", {{"input", "float32[N, D]"}}) == Types{"float32[N, 1, 1, D]"});
  CHECK_THAT(infer_op_error("Unsqueeze", "{axis: 3}", {{"input", "float32[N, D]"}}),
             Contains("axis 3 is out of range for rank 3"));
  CHECK_THAT(infer_op_error("Unsqueeze", "{axis: [1, -3]}", {{"input", "float32[N, D]"}}), Contains("names axis 1 twice"));
  CHECK_THAT(infer_op_error("Unsqueeze", "", {{"input", "float32[N, D]"}}), Contains("Unsqueeze requires argument 'axis'"));
}

TEST_CASE("Expand grows size-1 axes and adds leading axes", "[shape]") {
  CHECK(infer_op("Expand", "{shape: [4, 3]}", {{"input", "float32[1, 3]"}}) == Types{"float32[4, 3]"});
  CHECK(infer_op("Expand", "{shape: [2, -1, 5]}", {{"input", "float32[N, 1]"}}) == Types{"float32[2, N, 5]"});
  CHECK(infer_op("Expand", "{shape: [-1, -1]}", {{"input", "int32[N, T]"}}) == Types{"int32[N, T]"});
  CHECK(infer_op("Expand", "{shape: [3, 2]}", {{"input", "float32[]"}}) == Types{"float32[3, 2]"});
  CHECK(infer_op("Expand", "{shape: [3]}", {{"input", "float32[3]"}}) == Types{"float32[3]"});
  CHECK_THAT(infer_op_error("Expand", "{shape: [4, 4]}", {{"input", "float32[2, 4]"}}),
             Contains("cannot expand float32[2, 4] to [4, 4]: axis 0 of the input has size 2, and only size-1 dims can grow"));
  CHECK_THAT(infer_op_error("Expand", "{shape: [4, 3]}", {{"input", "float32[N, 3]"}}),
             Contains("axis 0 of the input has size N"));
  CHECK_THAT(infer_op_error("Expand", "{shape: [3]}", {{"input", "float32[1, 3]"}}),
             Contains("cannot expand float32[1, 3] to [3]: 'shape' has 1 sizes, fewer than the input's rank 2"));
  CHECK_THAT(infer_op_error("Expand", "{shape: [-1, 3]}", {{"input", "float32[3]"}}),
             Contains("-1 at position 0 names a new leading dim"));
  CHECK_THAT(infer_op_error("Expand", "{shape: [-2, 3]}", {{"input", "float32[1, 3]"}}), Contains("-2 at position 0 is not a size"));
}

TEST_CASE("Concat joins along an axis and adds symbolic sizes", "[shape]") {
  CHECK(infer_op("Concat", "{axis: 1}", {{"input", "float32[N, 3]"}, {"input", "float32[N, 5]"}}) == Types{"float32[N, 8]"});
  CHECK(infer_op("Concat", "", {{"input", "float32[N, 3]"}, {"input", "float32[M, 3]"}, {"input", "float32[2, 3]"}}) ==
        Types{"float32[M+N+2, 3]"});
  CHECK(infer_op("Concat", "{axis: -1}", {{"input", "int64[N, T]"}, {"input", "int64[N, T]"}}) == Types{"int64[N, T*2]"});
  CHECK(infer_op("Concat", "", {{"input", "float32[4]"}}) == Types{"float32[4]"});
  CHECK_THAT(infer_op_error("Concat", "{axis: 1}", {{"input", "float32[N, 3]"}, {"input", "float32[M, 5]"}}),
             Contains("shape mismatch: input[0] [N, 3] and input[1] [M, 5] differ on axis 0 (N vs M)"));
  CHECK_THAT(infer_op_error("Concat", "", {{"input", "float32[3]"}, {"input", "float64[3]"}}),
             Contains("dtype mismatch: input[0] is float32[3] but input[1] is float64[3]"));
  CHECK_THAT(infer_op_error("Concat", "", {{"input", "float32[3]"}, {"input", "float32[3, 1]"}}),
             Contains("rank mismatch: input[0] is float32[3] (rank 1) but input[1] is float32[3, 1] (rank 2)"));
  CHECK_THAT(infer_op_error("Concat", "{axis: 2}", {{"input", "float32[3, 1]"}, {"input", "float32[3, 1]"}}),
             Contains("axis 2 is out of range for rank 2"));
  CHECK_THAT(infer_op_error("Concat", "", {{"input", "float32[]"}, {"input", "float32[]"}}),
             Contains("out of range for a scalar input"));
}

TEST_CASE("Split cuts by sizes or equal sections", "[shape]") {
  CHECK(infer_op("Split", "{axis: -1, sections: 3}", {{"input", "float32[N, T, 2304]"}}, 3) ==
        Types{"float32[N, T, 768]", "float32[N, T, 768]", "float32[N, T, 768]"});
  // A declared shape takes only names, so a [N, T, C*3] tensor is made by a Concat first.
  Graph g = check_text(
      "name: t\ninputs:\n  x: {shape: [N, T, C], dtype: float32}\noutputs: [q, k, v]\nlayers:\n"
      "  - {op: Concat, args: {axis: -1}, input: [x, x, x], output: qkv}\n"
      "  - {op: Split, args: {axis: -1, sections: 3}, input: qkv, output: [q, k, v]}\n");
  for (auto out : {"q", "k", "v"}) CHECK(output_type(g, out) == "float32[N, T, C]");
  CHECK(infer_op("Split", "{sizes: [1, 3]}", {{"input", "int32[4, N]"}}, 2) == Types{"int32[1, N]", "int32[3, N]"});
  CHECK(infer_op("Split", "{axis: 1, sizes: [2, 0, 2]}", {{"input", "float32[N, 4]"}}, 3) ==
        Types{"float32[N, 2]", "float32[N, 0]", "float32[N, 2]"});
  CHECK(infer_op("Split", "{sections: 1}", {{"input", "float32[N]"}}, 1) == Types{"float32[N]"});
  CHECK(find_op("Split")->output_count(json{{"axis", 0}, {"sizes", {1, 2, 3}}, {"sections", nullptr}}) == 3);
  CHECK(find_op("Split")->output_count(json{{"axis", 0}, {"sizes", nullptr}, {"sections", 4}}) == 4);
}

TEST_CASE("Split reports bad sizes, sections and output counts", "[shape]") {
  CHECK_THAT(infer_op_error("Split", "{sizes: [1, 2]}", {{"input", "float32[4, 2]"}}, 2),
             Contains("'sizes' [1, 2] add up to 3, but axis 0 of input float32[4, 2] has size 4"));
  CHECK_THAT(infer_op_error("Split", "{sizes: [1, 1]}", {{"input", "float32[N]"}}, 2), Contains("add up to 2") && Contains("has size N"));
  CHECK_THAT(infer_op_error("Split", "{sizes: [5, -1]}", {{"input", "float32[4]"}}, 2), Contains("has a negative size -1"));
  CHECK_THAT(infer_op_error("Split", "{sizes: []}", {{"input", "float32[4]"}}, 1), Contains("'sizes' is empty"));
  CHECK_THAT(infer_op_error("Split", "{sections: 3}", {{"input", "float32[N, 10]"}}, 3),
             Contains("cannot split axis 0 of input float32[N, 10] into 3 equal sections: its size N is not known to be divisible by 3"));
  CHECK_THAT(infer_op_error("Split", "{axis: 1, sections: 3}", {{"input", "float32[N, 10]"}}, 3),
             Contains("its size 10 is not divisible by 3"));
  CHECK_THAT(infer_op_error("Split", "{sections: 0}", {{"input", "float32[4]"}}, 1), Contains("'sections' must be 1 or more, found 0"));
  CHECK_THAT(infer_op_error("Split", "{}", {{"input", "float32[4]"}}, 2),
             Contains("Split needs exactly one of 'sizes' (a list of sizes) or 'sections' (a number of equal parts), found neither"));
  CHECK_THAT(infer_op_error("Split", "{sizes: [2, 2], sections: 2}", {{"input", "float32[4]"}}, 2), Contains("found both"));
  CHECK_THAT(infer_op_error("Split", "{sections: 2}", {{"input", "float32[4]"}}, 3),
             Contains("'output' names 3 value(s), but Split makes 2 (sections: 2)"));
  CHECK_THAT(infer_op_error("Split", "{sizes: [1, 3]}", {{"input", "float32[4]"}}, 1),
             Contains("'output' names 1 value(s), but Split makes 2 (sizes: [1, 3])"));
  CHECK_THAT(infer_op_error("Split", "{sections: 2}", {{"input", "float32[]"}}, 2), Contains("out of range for a scalar input"));
}

TEST_CASE("Slice follows Python slicing on known sizes", "[shape]") {
  auto slice = [](const std::string& args, const std::string& type = "float32[N, 10]") {
    return infer_op("Slice", args, {{"input", type}})[0];
  };
  CHECK(slice("{axis: 1, start: 2, stop: 5}") == "float32[N, 3]");
  CHECK(slice("{axis: 1, start: 2}") == "float32[N, 8]");
  CHECK(slice("{axis: -1, start: -3}") == "float32[N, 3]");
  CHECK(slice("{axis: 1, stop: -1}") == "float32[N, 9]");
  CHECK(slice("{axis: 1, start: 1, step: 2}") == "float32[N, 5]");
  CHECK(slice("{axis: 1, step: 3}") == "float32[N, 4]");
  CHECK(slice("{axis: 1, start: -1, step: -1}") == "float32[N, 10]");
  CHECK(slice("{axis: 1, start: 8, stop: 2, step: -2}") == "float32[N, 3]");
  CHECK(slice("{axis: 1, step: -1}") == "float32[N, 1]");  // x[0::-1]
  CHECK(slice("{axis: 1, start: 5, stop: 100}") == "float32[N, 5]");
  CHECK(slice("{axis: 1, start: -100, stop: 3}") == "float32[N, 3]");
  CHECK(slice("{axis: 1, start: 7, stop: 3}") == "float32[N, 0]");
  CHECK(slice("{axis: 1, start: 20}") == "float32[N, 0]");
  CHECK(slice("{axis: 1, start: 100, step: -1}") == "float32[N, 10]");
  CHECK(slice("{axis: 0, start: 1}", "int64[0]") == "int64[0]");
}

TEST_CASE("Slice on symbolic sizes counts from the front or the end", "[shape]") {
  auto slice = [](const std::string& args) { return infer_op("Slice", args, {{"input", "float32[N, T]"}})[0]; };
  CHECK(slice("{axis: 1, start: 1}") == "float32[N, T-1]");
  CHECK(slice("{axis: 1, start: 2, stop: 5}") == "float32[N, 3]");
  CHECK(slice("{axis: 1, start: -3}") == "float32[N, 3]");
  CHECK(slice("{axis: 1, start: -3, stop: -1}") == "float32[N, 2]");
  CHECK(slice("{axis: 1, start: 1, stop: -1}") == "float32[N, T-2]");
  CHECK(slice("{axis: 1}") == "float32[N, T]");
  CHECK(slice("{axis: 1, start: -1, step: -1}") == "float32[N, T]");
  CHECK(slice("{axis: 1, start: 4, stop: 1, step: -1}") == "float32[N, 3]");
  CHECK(slice("{axis: 1, step: 2}") == "float32[N, (T+1)//2]");
  CHECK(slice("{axis: 1, start: 5, stop: 2}") == "float32[N, 0]");
  CHECK_THAT(infer_op_error("Slice", "{axis: 1, start: -3, stop: 2}", {{"input", "float32[N, T]"}}),
             Contains("cannot slice axis 1 of input float32[N, T] from -3 to 2: with a symbolic size, the length would depend on T"));
  CHECK_THAT(infer_op_error("Slice", "{axis: 1, start: 2, stop: -2, step: -1}", {{"input", "float32[N, T]"}}),
             Contains("the length would depend on T"));
}

TEST_CASE("Slice rejects a zero step and bad axes", "[shape]") {
  CHECK_THAT(infer_op_error("Slice", "{step: 0}", {{"input", "float32[4]"}}), Contains("'step' must be nonzero"));
  CHECK_THAT(infer_op_error("Slice", "{axis: 2}", {{"input", "float32[4, 4]"}}), Contains("axis 2 is out of range for rank 2"));
  CHECK_THAT(infer_op_error("Slice", "", {{"input", "float32[]"}}), Contains("out of range for a scalar input"));
}

TEST_CASE("Gather takes along an axis like numpy.take", "[shape]") {
  CHECK(infer_op("Gather", "", {{"input", "float32[50257, 768]"}, {"indices", "int64[N, T]"}}) == Types{"float32[N, T, 768]"});
  CHECK(infer_op("Gather", "{axis: 1}", {{"input", "float32[A, B, C]"}, {"indices", "int32[K]"}}) == Types{"float32[A, K, C]"});
  CHECK(infer_op("Gather", "{axis: -1}", {{"input", "int64[A, B]"}, {"indices", "int64[]"}}) == Types{"int64[A]"});
  CHECK(infer_op("Gather", "", {{"input", "float32[5]"}, {"indices", "int32[2, 3]"}}) == Types{"float32[2, 3]"});
  CHECK_THAT(infer_op_error("Gather", "", {{"input", "float32[5, 3]"}, {"indices", "float32[N]"}}),
             Contains("'indices' must hold integer indices (int32 or int64), found float32[N]"));
  CHECK_THAT(infer_op_error("Gather", "{axis: 2}", {{"input", "float32[5, 3]"}, {"indices", "int64[N]"}}),
             Contains("axis 2 is out of range for rank 2"));
  CHECK_THAT(infer_op_error("Gather", "", {{"input", "float32[]"}, {"indices", "int64[N]"}}), Contains("scalar input"));
}

TEST_CASE("Pad adds (left, right) pairs from the last axis", "[shape]") {
  CHECK(infer_op("Pad", "{pads: [1, 1]}", {{"input", "float32[N, C, H, W]"}}) == Types{"float32[N, C, H, W+2]"});
  CHECK(infer_op("Pad", "{pads: [1, 2, 3, 4]}", {{"input", "float32[N, 3, 8, 8]"}}) == Types{"float32[N, 3, 15, 11]"});
  CHECK(infer_op("Pad", "{pads: [0, 0, 0, 0, 1, 0]}", {{"input", "int32[2, 3, 4]"}}) == Types{"int32[3, 3, 4]"});
  CHECK(infer_op("Pad", "{pads: [], value: 5}", {{"input", "float32[]"}}) == Types{"float32[]"});
  CHECK(infer_op("Pad", "{pads: [1, 0], value: -1}", {{"input", "int64[T]"}}) == Types{"int64[T+1]"});
  CHECK_THAT(infer_op_error("Pad", "{pads: [1, 2, 3]}", {{"input", "float32[4, 4]"}}),
             Contains("'pads' [1, 2, 3] has 3 values; it holds (left, right) pairs"));
  CHECK_THAT(infer_op_error("Pad", "{pads: [1, 1, 1, 1, 1, 1]}", {{"input", "float32[4, 4]"}}),
             Contains("'pads' [1, 1, 1, 1, 1, 1] pads 3 dims, but the input float32[4, 4] has rank 2"));
  CHECK_THAT(infer_op_error("Pad", "{pads: [1, -1]}", {{"input", "float32[4, 4]"}}),
             Contains("'pads' [1, -1] has a negative amount -1"));
  CHECK_THAT(infer_op_error("Pad", "{pads: [1, 1], mode: reflect}", {{"input", "float32[4]"}}),
             Contains("argument 'mode' of Pad expects one of constant"));
  CHECK_THAT(infer_op_error("Pad", "{pads: [1, 1], value: 0.5}", {{"input", "int32[4]"}}),
             Contains("fill value 0.5 cannot be stored in input int32[4]: int32 is not an integer"));
  CHECK_THAT(infer_op_error("Pad", "{pads: [1, 1], value: 2}", {{"input", "bool[4]"}}), Contains("a bool holds only 0 or 1"));
}

TEST_CASE("Arange gives positions along an axis of its input", "[shape]") {
  CHECK(infer_op("Arange", "{axis: 1}", {{"input", "int64[N, T]"}}) == Types{"int64[T]"});
  CHECK(infer_op("Arange", "", {{"input", "float32[N, T, D]"}}) == Types{"int64[D]"});
  CHECK(infer_op("Arange", "{axis: 0, dtype: float32}", {{"input", "float32[7]"}}) == Types{"float32[7]"});
  CHECK(infer_op("Arange", "{dtype: int32}", {{"input", "bool[3, 5]"}}) == Types{"int32[5]"});
  CHECK_THAT(infer_op_error("Arange", "", {{"input", "float32[]"}}), Contains("out of range for a scalar input"));
  CHECK_THAT(infer_op_error("Arange", "{axis: 2}", {{"input", "int64[N, T]"}}), Contains("axis 2 is out of range"));
  CHECK_THAT(infer_op_error("Arange", "{dtype: bool}", {{"input", "int64[N, T]"}}),
             Contains("'dtype' must be an integer or float type, found bool"));
}

TEST_CASE("Constant takes its shape from the nesting", "[shape]") {
  CHECK(constant_type("{value: 3.5}") == "float32[]");
  CHECK(constant_type("{value: [1, 2, 3]}") == "float32[3]");
  CHECK(constant_type("{value: [[1, 2, 3], [4, 5, 6]], dtype: int64}") == "int64[2, 3]");
  CHECK(constant_type("{value: [[[1], [2]]], dtype: int32}") == "int32[1, 2, 1]");
  CHECK(constant_type("{value: [], dtype: float64}") == "float64[0]");
  CHECK(constant_type("{value: [[], []]}") == "float32[2, 0]");
  CHECK(constant_type("{value: [true, false], dtype: bool}") == "bool[2]");
  CHECK(constant_type("{value: 2.0, dtype: int64}") == "int64[]");
}

TEST_CASE("Constant rejects ragged lists and values its dtype cannot hold", "[shape]") {
  CHECK_THAT(constant_error("{value: [[1, 2], [3]]}"),
             Contains("'value' is ragged: value[1] has 1 elements, but the first list at that depth has 2"));
  CHECK_THAT(constant_error("{value: [[1, 2], 3]}"), Contains("'value' is ragged: value[1] is 3, but a list of 2 was expected"));
  CHECK_THAT(constant_error("{value: [1, [2]]}"), Contains("'value' is ragged: value[1] is a list"));
  CHECK_THAT(constant_error("{value: [[], [1]]}"), Contains("value[1] has 1 elements, but the first list at that depth has 0"));
  CHECK_THAT(constant_error("{value: [1, two]}"), Contains("value[1] is \"two\"; a float32 constant holds numbers"));
  CHECK_THAT(constant_error("{value: [1, 2.5], dtype: int32}"),
             Contains("value[1] is 2.5, which cannot be stored as int32: int32 is not an integer"));
  CHECK_THAT(constant_error("{value: 3000000000, dtype: int32}"), Contains("out of the range of int32"));
  CHECK_THAT(constant_error("{value: [true, 1], dtype: bool}"), Contains("value[1] is 1; a bool constant holds true or false"));
  CHECK_THAT(constant_error("{value: [true]}"), Contains("value[0] is true; a float32 constant holds numbers"));
  CHECK_THAT(constant_error("{value: null}"), Contains("value is null"));
  CHECK_THAT(constant_error("{dtype: int32}"), Contains("Constant requires argument 'value'"));
}

TEST_CASE("shape ops are documented", "[shape]") {
  for (auto name : {"Reshape", "Flatten", "Transpose", "Permute", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice",
                    "Gather", "Expand", "Pad", "Arange", "Constant"}) {
    INFO(name);
    const OpDef* op = find_op(name);
    REQUIRE(op);
    CHECK(op->family == "shape");
    CHECK(!op->summary.empty());
    for (auto& a : op->args) CHECK(!a.doc.empty());
  }
  CHECK(find_op("Concat")->inputs[0].variadic);
  CHECK(find_op("Split")->outputs[0].variadic);
  CHECK(find_op("Constant")->inputs.empty());
}
