// Shape, dtype and parameter rules of the conv, pool, norm and nn families.
//
// Expected sizes follow the "Shape" sections of the PyTorch docs:
//   Conv:          out = floor((in + 2p - d(k-1) - 1) / s) + 1
//   ConvTranspose: out = (in-1)s - 2p + d(k-1) + output_padding + 1
//   Pool:          out = floor((in + 2p - d(k-1) - 1 + (ceil_mode ? s-1 : 0)) / s) + 1,
//                  with ceil_mode one less if (out-1)s >= in + p (aten/src/ATen/native/Pool.h)
// The tables of concrete sizes below were computed with PyTorch 1.13 (Debian's
// python3-torch) by hand; the tests do not need it.
#include "helpers.h"

using namespace mithril;
using namespace mithril::test;
using Catch::Contains;
using Strings = std::vector<std::string>;

namespace {

// The single output type of one op, e.g. "float32[N, 16, 30, 30]".
std::string out1(const std::string& op, const std::string& args,
                 const std::vector<std::pair<std::string, std::string>>& inputs) {
  return infer_op(op, args, inputs).at(0);
}

// A one-layer model on `input`, for looking at the parameters it creates.
Graph one_layer(const std::string& op, const std::string& args, const std::string& input_type) {
  auto lb = input_type.find('[');
  return check_text(fmt::format("name: t\ninputs:\n  input: {{shape: {}, dtype: {}}}\nlayers:\n  - {{op: {}, args: {}}}\n",
                                input_type.substr(lb), input_type.substr(0, lb), op, args));
}

// The init spec of the parameter or state named `name`.
json init_of(const Graph& g, const std::string& name) {
  for (auto& v : g.values)
    if (v.name == name) return v.init;
  FAIL("no value " << name);
  return {};
}

}  // namespace

// ---- conv ---------------------------------------------------------------------

TEST_CASE("Conv2d output sizes with stride, padding, dilation and groups", "[nn]") {
  CHECK(out1("Conv2d", "{out_channels: 16, kernel_size: 3}", {{"input", "float32[2, 3, 32, 32]"}}) == "float32[2, 16, 30, 30]");
  CHECK(out1("Conv2d", "{out_channels: 16, kernel_size: 3, stride: 2, padding: 1}", {{"input", "float32[2, 3, 32, 32]"}}) ==
        "float32[2, 16, 16, 16]");
  // PyTorch: Conv2d(4, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1)) on 17x10 -> 8x10
  CHECK(out1("Conv2d", "{out_channels: 8, kernel_size: [3, 5], stride: [2, 1], padding: [1, 2], dilation: [2, 1]}",
             {{"input", "float32[2, 4, 17, 10]"}}) == "float32[2, 8, 8, 10]");
  CHECK(out1("Conv2d", "{out_channels: 8, kernel_size: 3, groups: 2}", {{"input", "float32[1, 4, 9, 9]"}}) == "float32[1, 8, 7, 7]");
  CHECK(out1("Conv2d", "{out_channels: 4, kernel_size: 1}", {{"input", "float64[N, 4, 5, 6]"}}) == "float64[N, 4, 5, 6]");
}

TEST_CASE("Conv2d keeps batch and spatial dims symbolic", "[nn]") {
  CHECK(out1("Conv2d", "{out_channels: 16, kernel_size: 3, padding: 1}", {{"input", "float32[N, 3, H, W]"}}) ==
        "float32[N, 16, H, W]");
  CHECK(out1("Conv2d", "{out_channels: 16, kernel_size: 3}", {{"input", "float32[N, 3, H, W]"}}) == "float32[N, 16, H-2, W-2]");
  CHECK(out1("Conv2d", "{out_channels: 16, kernel_size: 3, stride: 2, padding: 1}", {{"input", "float32[N, 3, H, 32]"}}) ==
        "float32[N, 16, (H-1)//2+1, 16]");
  CHECK(out1("Conv2d", "{out_channels: 16, kernel_size: 2, stride: 2}", {{"input", "float32[N, 3, H, W]"}}) ==
        "float32[N, 16, (H-2)//2+1, (W-2)//2+1]");
  // a symbolic size bound with --shape becomes concrete
  CHECK(output_type(check_text("name: t\ninputs:\n  input: {shape: [N, 3, H, W]}\nlayers:\n"
                               "  - Conv2d: {out_channels: 16, kernel_size: 3, stride: 2, padding: 1}\n",
                               {"H=33", "W=64"})) == "float32[N, 16, 17, 32]");
}

TEST_CASE("Conv1d output sizes match PyTorch", "[nn]") {
  // {L, kernel, stride, padding, dilation, expected L_out} from torch.nn.Conv1d
  struct Row { int L, k, s, p, d, out; };
  const Row rows[] = {{15, 3, 4, 2, 3, 4}, {16, 1, 2, 1, 2, 9}, {8, 4, 4, 0, 2, 1}, {6, 4, 4, 2, 3, 1}, {5, 4, 3, 3, 3, 1},
                      {12, 4, 2, 0, 1, 5}, {6, 2, 2, 1, 3, 3}, {1, 2, 4, 2, 3, 1}, {20, 5, 3, 0, 1, 6}, {15, 5, 4, 3, 2, 4},
                      {20, 4, 3, 2, 2, 6}};  // the last: Conv1d(3, 5, 4, stride=3, padding=2, dilation=2)
  for (auto r : rows) {
    CAPTURE(r.L, r.k, r.s, r.p, r.d);
    CHECK(out1("Conv1d", fmt::format("{{out_channels: 5, kernel_size: {}, stride: {}, padding: {}, dilation: {}}}", r.k, r.s, r.p, r.d),
               {{"input", fmt::format("float32[N, 3, {}]", r.L)}}) == fmt::format("float32[N, 5, {}]", r.out));
  }
  CHECK(out1("Conv1d", "{out_channels: 8, kernel_size: 3, padding: 1}", {{"input", "float32[N, 2, T]"}}) == "float32[N, 8, T]");
  CHECK(out1("Conv1d", "{out_channels: 8, kernel_size: [3]}", {{"input", "float32[N, 2, T]"}}) == "float32[N, 8, T-2]");
}

TEST_CASE("convolutions create PyTorch-layout parameters with PyTorch's initializers", "[nn]") {
  CHECK(op_params("Conv2d", "{out_channels: 16, kernel_size: 3}", {{"input", "float32[N, 3, 32, 32]"}}) ==
        Strings{"0.weight: float32[16, 3, 3, 3]", "0.bias: float32[16]"});
  CHECK(op_params("Conv2d", "{out_channels: 8, kernel_size: [3, 5], groups: 2, bias: false}", {{"input", "float64[N, 4, 9, 9]"}}) ==
        Strings{"0.weight: float64[8, 2, 3, 5]"});
  CHECK(op_params("Conv2d", "{out_channels: 8, kernel_size: 3, groups: 8}", {{"input", "float32[N, 8, 9, 9]"}}) ==
        Strings{"0.weight: float32[8, 1, 3, 3]", "0.bias: float32[8]"});  // depthwise
  CHECK(op_params("Conv1d", "{out_channels: 5, kernel_size: 4}", {{"input", "float32[N, 3, 20]"}}) ==
        Strings{"0.weight: float32[5, 3, 4]", "0.bias: float32[5]"});
  CHECK(op_params("ConvTranspose2d", "{out_channels: 8, kernel_size: 3, groups: 2}", {{"input", "float32[N, 16, 5, 5]"}}) ==
        Strings{"0.weight: float32[16, 4, 3, 3]", "0.bias: float32[8]"});

  // fan_in = weight.size(1) * prod(kernel) (torch.nn.init._calculate_fan_in_and_fan_out)
  Graph g = one_layer("Conv2d", "{out_channels: 12, kernel_size: [3, 5], groups: 3}", "float32[N, 6, 9, 9]");
  CHECK(init_of(g, "0.weight") == json{{"kind", "kaiming_uniform"}, {"fan_in", 2 * 15}});
  CHECK(init_of(g, "0.bias") == json{{"kind", "uniform_fan_in"}, {"fan_in", 2 * 15}});
  // ConvTranspose2d's weight is [in, out/groups, k...], so PyTorch's fan_in is out/groups * prod(kernel)
  Graph t = one_layer("ConvTranspose2d", "{out_channels: 8, kernel_size: 3, groups: 2}", "float32[N, 16, 5, 5]");
  CHECK(init_of(t, "0.weight") == json{{"kind", "kaiming_uniform"}, {"fan_in", 4 * 9}});
  CHECK(init_of(t, "0.bias") == json{{"kind", "uniform_fan_in"}, {"fan_in", 4 * 9}});
}

TEST_CASE("ConvTranspose2d output sizes match PyTorch", "[nn]") {
  CHECK(out1("ConvTranspose2d", "{out_channels: 8, kernel_size: 3, stride: 2, padding: 1, output_padding: 1}",
             {{"input", "float32[1, 16, 16, 16]"}}) == "float32[1, 8, 32, 32]");
  CHECK(out1("ConvTranspose2d", "{out_channels: 6, kernel_size: [2, 3], stride: [2, 3], padding: [0, 1], dilation: [1, 2]}",
             {{"input", "float32[1, 4, 5, 7]"}}) == "float32[1, 6, 10, 21]");
  // output_padding may reach the stride when it is below the dilation
  CHECK(out1("ConvTranspose2d", "{out_channels: 6, kernel_size: 3, dilation: 2, output_padding: 1}",
             {{"input", "float32[1, 4, 5, 5]"}}) == "float32[1, 6, 10, 10]");
  // {H, kernel, stride, padding, output_padding, dilation, expected} from torch.nn.ConvTranspose2d
  struct Row { int H, k, s, p, op, d, out; };
  const Row rows[] = {{7, 1, 4, 3, 0, 3, 19}, {4, 1, 2, 1, 0, 2, 5}, {9, 1, 3, 0, 0, 3, 25}, {4, 5, 4, 2, 2, 1, 15},
                      {10, 3, 4, 0, 3, 1, 42}, {8, 4, 4, 0, 1, 2, 36}, {2, 3, 3, 1, 0, 2, 6}, {4, 5, 3, 0, 2, 1, 16}};
  for (auto r : rows) {
    CAPTURE(r.H, r.k, r.s, r.p, r.op, r.d);
    CHECK(out1("ConvTranspose2d",
               fmt::format("{{out_channels: 2, kernel_size: {}, stride: {}, padding: {}, output_padding: {}, dilation: {}}}", r.k,
                           r.s, r.p, r.op, r.d),
               {{"input", fmt::format("float32[N, 3, {}, {}]", r.H, r.H)}}) == fmt::format("float32[N, 2, {}, {}]", r.out, r.out));
  }
  CHECK(out1("ConvTranspose2d", "{out_channels: 8, kernel_size: 4, stride: 2, padding: 1}", {{"input", "float32[N, 16, H, W]"}}) ==
        "float32[N, 8, H*2, W*2]");
}

TEST_CASE("convolution errors say what was expected and found", "[nn]") {
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: 3}", {{"input", "float32[N, 3, 32]"}}),
             Contains("'input' must have rank 4 ([N, C, H, W]), found rank 3: float32[N, 3, 32]"));
  CHECK_THAT(infer_op_error("Conv1d", "{out_channels: 4, kernel_size: 3}", {{"input", "float32[N, 3, 8, 8]"}}),
             Contains("must have rank 3 ([N, C, L])"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: 3}", {{"input", "int32[N, 3, 8, 8]"}}),
             Contains("'input' must be float32 or float64, found int32[N, 3, 8, 8]"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: 3, groups: 2}", {{"input", "float32[N, 3, 8, 8]"}}),
             Contains("the input channel count 3 is not divisible by groups 2"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 5, kernel_size: 3, groups: 2}", {{"input", "float32[N, 4, 8, 8]"}}),
             Contains("out_channels 5 is not divisible by groups 2"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: 3, groups: 0}", {{"input", "float32[N, 4, 8, 8]"}}),
             Contains("'groups' must be positive, found 0"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 0, kernel_size: 3}", {{"input", "float32[N, 4, 8, 8]"}}),
             Contains("'out_channels' must be positive, found 0"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 16, kernel_size: 5}", {{"input", "float32[1, 3, 4, 4]"}}),
             Contains("the output would be empty: input height 4 plus padding 2*0 is smaller than the effective kernel 5"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 16, kernel_size: 3, dilation: [1, 3]}", {{"input", "float32[1, 3, 6, 6]"}}),
             Contains("input width 6 plus padding 2*0 is smaller than the effective kernel 7 (kernel_size 3, dilation 3)"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: 3, stride: 0}", {{"input", "float32[N, 3, 8, 8]"}}),
             Contains("'stride' must be positive, found [0, 0]"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: [3, 0]}", {{"input", "float32[N, 3, 8, 8]"}}),
             Contains("'kernel_size' must be positive, found [3, 0]"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: 3, padding: -1}", {{"input", "float32[N, 3, 8, 8]"}}),
             Contains("'padding' must be non-negative, found [-1, -1]"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: 3, dilation: 0}", {{"input", "float32[N, 3, 8, 8]"}}),
             Contains("'dilation' must be positive, found [0, 0]"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: [3, 3, 3]}", {{"input", "float32[N, 3, 8, 8]"}}),
             Contains("argument 'kernel_size' needs 2 values, found 3"));
  CHECK_THAT(infer_op_error("Conv2d", "{out_channels: 4, kernel_size: 3}", {{"input", "float32[N, C, 8, 8]"}}),
             Contains("the input channel count (dimension 1 of 'input') must be a known size, found symbolic C"));
  CHECK_THAT(infer_op_error("Conv2d", "{kernel_size: 3}", {{"input", "float32[N, 3, 8, 8]"}}),
             Contains("Conv2d requires argument 'out_channels'"));
  CHECK_THAT(infer_op_error("ConvTranspose2d", "{out_channels: 4, kernel_size: 3, stride: 2, output_padding: 2}",
                            {{"input", "float32[1, 4, 5, 5]"}}),
             Contains("'output_padding' must be smaller than either stride or dilation, found output_padding 2 with stride 2 "
                      "and dilation 1 along the height"));
  CHECK_THAT(infer_op_error("ConvTranspose2d", "{out_channels: 4, kernel_size: 3, groups: 2}", {{"input", "float32[1, 5, 5, 5]"}}),
             Contains("the input channel count 5 is not divisible by groups 2"));
  CHECK_THAT(infer_op_error("ConvTranspose2d", "{out_channels: 4, kernel_size: 1, padding: 1}", {{"input", "float32[1, 4, 1, 1]"}}),
             Contains("the output would be empty: height -1"));
}

// ---- pool ---------------------------------------------------------------------

TEST_CASE("MaxPool1d output sizes match PyTorch, ceil_mode included", "[nn]") {
  // {L, kernel, stride, padding, dilation, ceil_mode, expected} from torch.nn.MaxPool1d
  struct Row { int L, k, s, p, d; bool ceil; int out; };
  const Row rows[] = {{11, 2, 4, 0, 3, true, 3},   {18, 1, 3, 0, 3, false, 6}, {7, 1, 1, 0, 2, true, 7},
                      {3, 5, 4, 2, 1, true, 2},    {8, 1, 2, 0, 2, true, 4},   {19, 5, 2, 0, 2, true, 6},
                      {18, 4, 3, 2, 2, false, 6},  {12, 3, 2, 0, 1, true, 6},  {10, 5, 4, 2, 2, true, 3},
                      {20, 1, 1, 0, 3, true, 20},  {11, 2, 4, 0, 2, false, 3}, {3, 5, 3, 2, 2, true, 1},
                      {16, 5, 4, 0, 1, false, 3},  {7, 3, 2, 1, 1, true, 4},   {32, 3, 2, 1, 1, true, 17},
                      {5, 2, 2, 0, 1, true, 3},    {5, 1, 2, 0, 1, true, 3},   {6, 1, 2, 0, 1, true, 3},
                      {4, 2, 3, 1, 1, true, 2},    {10, 3, 3, 1, 1, true, 4},  {11, 3, 2, 1, 2, true, 5}};
  for (auto r : rows) {
    CAPTURE(r.L, r.k, r.s, r.p, r.d, r.ceil);
    CHECK(out1("MaxPool1d",
               fmt::format("{{kernel_size: {}, stride: {}, padding: {}, dilation: {}, ceil_mode: {}}}", r.k, r.s, r.p, r.d, r.ceil),
               {{"input", fmt::format("float32[N, 2, {}]", r.L)}}) == fmt::format("float32[N, 2, {}]", r.out));
  }
}

TEST_CASE("pooling output sizes, stride defaulting to the kernel, symbolic dims", "[nn]") {
  CHECK(out1("MaxPool2d", "{kernel_size: 2}", {{"input", "float32[1, 3, 32, 31]"}}) == "float32[1, 3, 16, 15]");
  CHECK(out1("MaxPool2d", "{kernel_size: 4, padding: 2}", {{"input", "float32[1, 3, 32, 31]"}}) == "float32[1, 3, 9, 8]");
  CHECK(out1("MaxPool2d", "{kernel_size: 3, stride: 2, padding: 1}", {{"input", "float32[N, 64, 112, 112]"}}) ==
        "float32[N, 64, 56, 56]");
  // PyTorch: AvgPool2d((3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True) on 8x9 -> 5x8
  CHECK(out1("AvgPool2d", "{kernel_size: [3, 2], stride: [2, 1], padding: [1, 0], ceil_mode: true}",
             {{"input", "float32[1, 3, 8, 9]"}}) == "float32[1, 3, 5, 8]");
  CHECK(out1("AvgPool2d", "{kernel_size: 2, count_include_pad: false}", {{"input", "float64[N, 3, 8, 9]"}}) == "float64[N, 3, 4, 4]");
  CHECK(out1("MaxPool1d", "{kernel_size: 2}", {{"input", "float32[N, C, 9]"}}) == "float32[N, C, 4]");

  // symbolic sizes
  CHECK(out1("MaxPool2d", "{kernel_size: 2}", {{"input", "float32[N, 3, H, W]"}}) == "float32[N, 3, (H-2)//2+1, (W-2)//2+1]");
  CHECK(out1("MaxPool2d", "{kernel_size: 3, stride: 1, padding: 1}", {{"input", "float32[N, C, H, W]"}}) == "float32[N, C, H, W]");
  // ceil_mode on a symbolic size where the last window can never start in the padding (s + p <= d(k-1)+1)
  CHECK(out1("MaxPool2d", "{kernel_size: 3, stride: 2, padding: 1, ceil_mode: true}", {{"input", "float32[N, 3, H, W]"}}) ==
        "float32[N, 3, (H)//2+1, (W)//2+1]");
  CHECK(out1("MaxPool1d", "{kernel_size: 2, ceil_mode: true}", {{"input", "float32[N, 3, T]"}}) == "float32[N, 3, (T-1)//2+1]");
  CHECK(out1("AvgPool2d", "{kernel_size: 2, ceil_mode: true}", {{"input", "float32[N, 3, H, 7]"}}) == "float32[N, 3, (H-1)//2+1, 4]");
}

TEST_CASE("GlobalAvgPool2d averages over H and W", "[nn]") {
  CHECK(out1("GlobalAvgPool2d", "", {{"input", "float32[N, 512, 7, 7]"}}) == "float32[N, 512, 1, 1]");
  CHECK(out1("GlobalAvgPool2d", "", {{"input", "float64[N, C, H, W]"}}) == "float64[N, C, 1, 1]");
  CHECK_THAT(infer_op_error("GlobalAvgPool2d", "", {{"input", "float32[N, 512]"}}),
             Contains("'input' must have rank 4 ([N, C, H, W]), found rank 2: float32[N, 512]"));
  CHECK_THAT(infer_op_error("GlobalAvgPool2d", "", {{"input", "int64[N, 3, 4, 4]"}}), Contains("must be float32 or float64"));
}

TEST_CASE("pooling errors say what was expected and found", "[nn]") {
  // PyTorch: "pad should be at most half of kernel size"
  CHECK_THAT(infer_op_error("MaxPool2d", "{kernel_size: 3, padding: 2}", {{"input", "float32[1, 3, 32, 31]"}}),
             Contains("'padding' must be at most half the kernel size, found padding [2, 2] with kernel_size [3, 3]"));
  CHECK_THAT(infer_op_error("MaxPool2d", "{kernel_size: 3, padding: 2, dilation: 2}", {{"input", "float32[1, 3, 32, 31]"}}),
             Contains("at most half the kernel size"));
  CHECK_THAT(infer_op_error("AvgPool2d", "{kernel_size: 3}", {{"input", "float32[1, 3, 2, 2]"}}),
             Contains("the output would be empty: input height 2 plus padding 2*0 is smaller than the effective kernel 3"));
  CHECK_THAT(infer_op_error("MaxPool1d", "{kernel_size: 5, stride: 1, padding: 2, dilation: 3, ceil_mode: true}",
                            {{"input", "float32[1, 3, 8]"}}),
             Contains("the output would be empty: input length 8 plus padding 2*2 is smaller than the effective kernel 13"));
  CHECK_THAT(infer_op_error("MaxPool1d", "{kernel_size: 1, stride: 2, ceil_mode: true}", {{"input", "float32[N, 3, T]"}}),
             Contains("ceil_mode needs a known input length here, found symbolic T"));
  CHECK_THAT(infer_op_error("MaxPool2d", "{kernel_size: 2, stride: 0}", {{"input", "float32[1, 3, 4, 4]"}}),
             Contains("'stride' must be positive, found [0, 0]"));
  CHECK_THAT(infer_op_error("MaxPool2d", "{kernel_size: 0}", {{"input", "float32[1, 3, 4, 4]"}}),
             Contains("'kernel_size' must be positive, found [0, 0]"));
  CHECK_THAT(infer_op_error("MaxPool2d", "{kernel_size: 2, dilation: 0}", {{"input", "float32[1, 3, 4, 4]"}}),
             Contains("'dilation' must be positive, found [0, 0]"));
  CHECK_THAT(infer_op_error("MaxPool2d", "{kernel_size: 2, padding: -1}", {{"input", "float32[1, 3, 4, 4]"}}),
             Contains("'padding' must be non-negative, found [-1, -1]"));
  CHECK_THAT(infer_op_error("MaxPool2d", "{kernel_size: 2}", {{"input", "float32[3, 4, 4]"}}),
             Contains("'input' must have rank 4 ([N, C, H, W]), found rank 3: float32[3, 4, 4]"));
  CHECK_THAT(infer_op_error("AvgPool2d", "{kernel_size: 2, dilation: 2}", {{"input", "float32[1, 3, 4, 4]"}}),
             Contains("unknown argument 'dilation' for AvgPool2d"));
  CHECK_THAT(infer_op_error("MaxPool2d", "{}", {{"input", "float32[1, 3, 4, 4]"}}), Contains("MaxPool2d requires argument 'kernel_size'"));
}

// ---- norm ---------------------------------------------------------------------

TEST_CASE("BatchNorm2d: affine parameters and running statistics as state", "[nn]") {
  CHECK(out1("BatchNorm2d", "", {{"input", "float32[N, 16, H, W]"}}) == "float32[N, 16, H, W]");
  CHECK(op_params("BatchNorm2d", "", {{"input", "float32[N, 5, 8, 8]"}}) ==
        Strings{"0.weight: float32[5]", "0.bias: float32[5]", "0.running_mean: float32[5]", "0.running_var: float32[5]"});
  CHECK(op_params("BatchNorm2d", "{affine: false, eps: 0.001, momentum: 0.01}", {{"input", "float64[N, 5, 8, 8]"}}) ==
        Strings{"0.running_mean: float64[5]", "0.running_var: float64[5]"});

  Graph g = one_layer("BatchNorm2d", "{}", "float32[N, 5, 8, 8]");
  CHECK(g.values_of_kind(ValueKind::Param).size() == 2);
  CHECK(g.values_of_kind(ValueKind::State).size() == 2);
  CHECK(init_of(g, "0.weight") == json{{"kind", "ones"}});
  CHECK(init_of(g, "0.bias") == json{{"kind", "zeros"}});
  CHECK(init_of(g, "0.running_mean") == json{{"kind", "zeros"}});
  CHECK(init_of(g, "0.running_var") == json{{"kind", "ones"}});

  CHECK_THAT(infer_op_error("BatchNorm2d", "", {{"input", "float32[N, 16]"}}),
             Contains("'input' must have rank 4 ([N, C, H, W]), found rank 2: float32[N, 16]"));
  CHECK_THAT(infer_op_error("BatchNorm2d", "", {{"input", "float32[N, C, 4, 4]"}}),
             Contains("the channel count (dimension 1 of 'input') must be a known size, found symbolic C"));
  CHECK_THAT(infer_op_error("BatchNorm2d", "{momentum: 1.5}", {{"input", "float32[N, 3, 4, 4]"}}),
             Contains("'momentum' must be between 0 and 1, found 1.5"));
  CHECK_THAT(infer_op_error("BatchNorm2d", "{eps: -1}", {{"input", "float32[N, 3, 4, 4]"}}), Contains("'eps' must be non-negative, found -1"));
  CHECK_THAT(infer_op_error("BatchNorm2d", "", {{"input", "int32[N, 3, 4, 4]"}}), Contains("must be float32 or float64"));
}

TEST_CASE("LayerNorm normalizes the trailing dims given by normalized_shape", "[nn]") {
  CHECK(out1("LayerNorm", "", {{"input", "float32[N, T, 64]"}}) == "float32[N, T, 64]");
  CHECK(op_params("LayerNorm", "", {{"input", "float32[N, T, 64]"}}) == Strings{"0.weight: float32[64]", "0.bias: float32[64]"});
  CHECK(op_params("LayerNorm", "{normalized_shape: [4, 5]}", {{"input", "float32[N, 3, 4, 5]"}}) ==
        Strings{"0.weight: float32[4, 5]", "0.bias: float32[4, 5]"});
  CHECK(op_params("LayerNorm", "{normalized_shape: 5}", {{"input", "float64[N, T, 5]"}}) ==
        Strings{"0.weight: float64[5]", "0.bias: float64[5]"});
  CHECK(op_params("LayerNorm", "{bias: false}", {{"input", "float32[N, 8]"}}) == Strings{"0.weight: float32[8]"});
  CHECK(op_params("LayerNorm", "{elementwise_affine: false}", {{"input", "float32[N, 8]"}}).empty());
  Graph g = one_layer("LayerNorm", "{}", "float32[N, 8]");
  CHECK(init_of(g, "0.weight") == json{{"kind", "ones"}});
  CHECK(init_of(g, "0.bias") == json{{"kind", "zeros"}});

  CHECK_THAT(infer_op_error("LayerNorm", "{normalized_shape: [4, 6]}", {{"input", "float32[N, 3, 4, 5]"}}),
             Contains("the trailing dimensions of 'input' must equal normalized_shape [4, 6], found input float32[N, 3, 4, 5]"));
  CHECK_THAT(infer_op_error("LayerNorm", "{normalized_shape: [2, 3, 4]}", {{"input", "float32[3, 4]"}}),
             Contains("must equal normalized_shape [2, 3, 4], found input float32[3, 4]"));
  CHECK_THAT(infer_op_error("LayerNorm", "{normalized_shape: 8}", {{"input", "float32[N, D]"}}),
             Contains("must equal normalized_shape [8], found input float32[N, D]"));
  CHECK_THAT(infer_op_error("LayerNorm", "", {{"input", "float32[N, D]"}}),
             Contains("the normalized size (last dimension of 'input') must be a known size, found symbolic D"));
  CHECK_THAT(infer_op_error("LayerNorm", "", {{"input", "float32[]"}}), Contains("'input' must have rank 1 or more, found a scalar"));
  CHECK_THAT(infer_op_error("LayerNorm", "{normalized_shape: [0]}", {{"input", "float32[N, 0]"}}),
             Contains("'normalized_shape' must be positive, found [0]"));
  CHECK_THAT(infer_op_error("LayerNorm", "{normalized_shape: []}", {{"input", "float32[N, 3]"}}),
             Contains("'normalized_shape' must not be empty"));
}

TEST_CASE("GroupNorm normalizes channel groups", "[nn]") {
  CHECK(out1("GroupNorm", "{num_groups: 2}", {{"input", "float32[N, 6, H, W]"}}) == "float32[N, 6, H, W]");
  CHECK(out1("GroupNorm", "{num_groups: 3}", {{"input", "float32[N, 6]"}}) == "float32[N, 6]");
  CHECK(op_params("GroupNorm", "{num_groups: 2}", {{"input", "float32[N, 6, 5]"}}) ==
        Strings{"0.weight: float32[6]", "0.bias: float32[6]"});
  CHECK(op_params("GroupNorm", "{num_groups: 2, affine: false}", {{"input", "float32[N, 6, 5]"}}).empty());
  CHECK_THAT(infer_op_error("GroupNorm", "{num_groups: 4}", {{"input", "float32[N, 6, 8, 8]"}}),
             Contains("the channel count 6 is not divisible by num_groups 4 (input float32[N, 6, 8, 8])"));
  CHECK_THAT(infer_op_error("GroupNorm", "{num_groups: 0}", {{"input", "float32[N, 6, 8, 8]"}}),
             Contains("'num_groups' must be positive, found 0"));
  CHECK_THAT(infer_op_error("GroupNorm", "{num_groups: 1}", {{"input", "float32[6]"}}),
             Contains("'input' must have rank 2 or more ([N, C, ...]), found rank 1: float32[6]"));
  CHECK_THAT(infer_op_error("GroupNorm", "", {{"input", "float32[N, 6]"}}), Contains("GroupNorm requires argument 'num_groups'"));
}

// ---- nn -----------------------------------------------------------------------

TEST_CASE("Embedding looks up rows by integer index", "[nn]") {
  CHECK(out1("Embedding", "{num_embeddings: 10, dimension: 3}", {{"input", "int64[N, T]"}}) == "float32[N, T, 3]");
  CHECK(out1("Embedding", "{num_embeddings: 10, dimension: 3}", {{"input", "int32[]"}}) == "float32[3]");
  CHECK(op_params("Embedding", "{num_embeddings: 10, dimension: 3}", {{"input", "int64[N]"}}) == Strings{"0.weight: float32[10, 3]"});
  Graph g = one_layer("Embedding", "{num_embeddings: 10, dimension: 3}", "int64[N]");
  CHECK(init_of(g, "0.weight") == json{{"kind", "normal"}, {"std", 1.0}});
  // PyTorch zeroes the padding_idx row after the normal draw; a negative index counts from the end
  Graph p = one_layer("Embedding", "{num_embeddings: 10, dimension: 3, padding_idx: -1}", "int64[N]");
  CHECK(init_of(p, "0.weight") == json{{"kind", "normal"}, {"std", 1.0}, {"padding_idx", 9}});

  CHECK_THAT(infer_op_error("Embedding", "{num_embeddings: 10, dimension: 3}", {{"input", "float32[N]"}}),
             Contains("'input' must hold integer indices (int32 or int64), found float32[N]"));
  CHECK_THAT(infer_op_error("Embedding", "{num_embeddings: 10, dimension: 3, padding_idx: 10}", {{"input", "int64[N]"}}),
             Contains("'padding_idx' 10 is out of range for num_embeddings 10 (valid: -10..9)"));
  CHECK_THAT(infer_op_error("Embedding", "{num_embeddings: 0, dimension: 3}", {{"input", "int64[N]"}}),
             Contains("'num_embeddings' must be positive, found 0"));
  CHECK_THAT(infer_op_error("Embedding", "{num_embeddings: 4, dimension: -3}", {{"input", "int64[N]"}}),
             Contains("'dimension' must be positive, found -3"));
  CHECK_THAT(infer_op_error("Embedding", "{num_embeddings: 4}", {{"input", "int64[N]"}}), Contains("Embedding requires argument 'dimension'"));
}

TEST_CASE("Dropout, Softmax and LogSoftmax keep the shape", "[nn]") {
  CHECK(out1("Dropout", "", {{"input", "float32[N, 128]"}}) == "float32[N, 128]");
  CHECK(out1("Dropout", "{p: 0}", {{"input", "float64[N]"}}) == "float64[N]");
  CHECK(find_op("Dropout")->has_trait("random"));
  CHECK_THAT(infer_op_error("Dropout", "{p: 1}", {{"input", "float32[N]"}}), Contains("'p' must be in [0, 1), found 1"));
  CHECK_THAT(infer_op_error("Dropout", "{p: -0.5}", {{"input", "float32[N]"}}), Contains("'p' must be in [0, 1), found -0.5"));
  CHECK_THAT(infer_op_error("Dropout", "", {{"input", "int32[N]"}}), Contains("must be float32 or float64"));

  for (auto op : {"Softmax", "LogSoftmax"}) {
    CHECK(out1(op, "", {{"input", "float32[N, 10]"}}) == "float32[N, 10]");
    CHECK(out1(op, "{axis: 1}", {{"input", "float64[N, T, 10]"}}) == "float64[N, T, 10]");
    CHECK(out1(op, "{axis: -3}", {{"input", "float32[N, T, 10]"}}) == "float32[N, T, 10]");
    CHECK_THAT(infer_op_error(op, "{axis: 3}", {{"input", "float32[N, T, 10]"}}),
               Contains("axis 3 is out of range for rank 3 (valid: -3..2)"));
    CHECK_THAT(infer_op_error(op, "", {{"input", "int64[N, 10]"}}), Contains("'input' must be float32 or float64, found int64[N, 10]"));
  }
}

TEST_CASE("ScaledDotProductAttention: shapes, broadcasting and masks", "[nn]") {
  auto sdpa = [](const std::string& args, std::vector<std::pair<std::string, std::string>> in) {
    return out1("ScaledDotProductAttention", args, in);
  };
  auto sdpa_error = [](const std::string& args, std::vector<std::pair<std::string, std::string>> in) {
    return infer_op_error("ScaledDotProductAttention", args, in);
  };
  CHECK(sdpa("", {{"query", "float32[N, 8, L, 64]"}, {"key", "float32[N, 8, S, 64]"}, {"value", "float32[N, 8, S, 32]"}}) ==
        "float32[N, 8, L, 32]");
  CHECK(sdpa("{causal: true, scale: 0.125}", {{"query", "float64[T, 16]"}, {"key", "float64[T, 16]"}, {"value", "float64[T, 16]"}}) ==
        "float64[T, 16]");
  // batch dims broadcast: [2, 1] with [3] and [1]
  CHECK(sdpa("", {{"query", "float32[2, 1, 5, 8]"}, {"key", "float32[3, 7, 8]"}, {"value", "float32[1, 7, 4]"}}) ==
        "float32[2, 3, 5, 4]");
  CHECK(sdpa("", {{"query", "float32[N, H, L, 8]"}, {"key", "float32[N, H, S, 8]"}, {"value", "float32[N, H, S, 8]"},
                  {"mask", "bool[L, S]"}}) == "float32[N, H, L, 8]");
  CHECK(sdpa("", {{"query", "float32[N, H, L, 8]"}, {"key", "float32[N, H, S, 8]"}, {"value", "float32[N, H, S, 8]"},
                  {"mask", "float32[N, 1, 1, S]"}}) == "float32[N, H, L, 8]");

  CHECK_THAT(sdpa_error("", {{"query", "float32[N, L, 8]"}, {"key", "float32[N, S, 16]"}, {"value", "float32[N, S, 8]"}}),
             Contains("'query' [N, L, 8] and 'key' [N, S, 16] must have the same feature size (last dimension), found 8 and 16"));
  CHECK_THAT(sdpa_error("", {{"query", "float32[N, L, 8]"}, {"key", "float32[N, S, 8]"}, {"value", "float32[N, T, 8]"}}),
             Contains("'key' [N, S, 8] and 'value' [N, T, 8] must have the same length S (dimension -2), found S and T"));
  CHECK_THAT(sdpa_error("", {{"query", "float32[2, L, 8]"}, {"key", "float32[3, S, 8]"}, {"value", "float32[3, S, 8]"}}),
             Contains("the batch dimensions of 'query' and 'key' [2] and [3] cannot be broadcast together"));
  CHECK_THAT(sdpa_error("", {{"query", "float32[L, 8]"}, {"key", "float64[S, 8]"}, {"value", "float64[S, 8]"}}),
             Contains("dtype mismatch: 'query' is float32[L, 8] but 'key' is float64[S, 8]"));
  CHECK_THAT(sdpa_error("", {{"query", "int32[L, 8]"}, {"key", "int32[S, 8]"}, {"value", "int32[S, 8]"}}),
             Contains("'query' must be float32 or float64"));
  CHECK_THAT(sdpa_error("", {{"query", "float32[8]"}, {"key", "float32[S, 8]"}, {"value", "float32[S, 8]"}}),
             Contains("'query' must have rank 2 or more ([..., length, features]), found float32[8]"));
  CHECK_THAT(sdpa_error("", {{"query", "float32[L, 8]"}, {"key", "float32[S, 8]"}, {"value", "float32[S, 8]"}, {"mask", "bool[L, T]"}}),
             Contains("'mask' [L, T] does not broadcast to the attention scores [..., L, S] = [L, S]"));
  CHECK_THAT(sdpa_error("", {{"query", "float32[L, 8]"}, {"key", "float32[S, 8]"}, {"value", "float32[S, 8]"}, {"mask", "bool[2, L, S]"}}),
             Contains("'mask' [2, L, S] does not broadcast to the attention scores [..., L, S] = [L, S]"));
  CHECK_THAT(sdpa_error("", {{"query", "float32[L, 8]"}, {"key", "float32[S, 8]"}, {"value", "float32[S, 8]"}, {"mask", "int64[L, S]"}}),
             Contains("'mask' must be bool (true = attend) or float32 like 'query' (added to the scores), found int64[L, S]"));
  CHECK_THAT(sdpa_error("{causal: true}",
                        {{"query", "float32[L, 8]"}, {"key", "float32[S, 8]"}, {"value", "float32[S, 8]"}, {"mask", "bool[L, S]"}}),
             Contains("'mask' and causal: true cannot be combined"));
}
