// Shape and dtype rules of the loss family (PyTorch's torch.nn.functional losses):
// mean and sum give a scalar, none one loss per element (per sample for the
// class losses, whose output is the target's batch shape [N, d1, ...]).
#include "helpers.h"

using namespace mithril;
using namespace mithril::test;
using Catch::Contains;

namespace {

std::string loss(const std::string& op, const std::string& args, const std::string& input, const std::string& target) {
  return infer_op(op, args, {{"input", input}, {"target", target}}).at(0);
}

std::string loss_error(const std::string& op, const std::string& args, const std::string& input, const std::string& target) {
  return infer_op_error(op, args, {{"input", input}, {"target", target}});
}

}  // namespace

TEST_CASE("every loss has the loss trait and a reduction argument", "[loss]") {
  for (auto op : {"CrossEntropy", "NLL", "BinaryCrossEntropy", "MSE", "L1", "Huber", "KLDivergence"}) {
    CAPTURE(op);
    REQUIRE(find_op(op));
    CHECK(find_op(op)->family == "loss");
    CHECK(find_op(op)->has_trait("loss"));
    REQUIRE(find_op(op)->find_arg("reduction"));
    CHECK(*find_op(op)->find_arg("reduction")->default_value == "mean");
  }
}

TEST_CASE("CrossEntropy with class indices", "[loss]") {
  CHECK(loss("CrossEntropy", "", "float32[N, 10]", "int64[N]") == "float32[]");
  CHECK(loss("CrossEntropy", "{reduction: sum}", "float64[N, 10]", "int32[N]") == "float64[]");
  CHECK(loss("CrossEntropy", "{reduction: none}", "float32[N, 10]", "int64[N]") == "float32[N]");
  // segmentation: [N, C, H, W] with [N, H, W]; PyTorch's reduction none gives [N, H, W]
  CHECK(loss("CrossEntropy", "{reduction: none}", "float32[N, 5, H, W]", "int64[N, H, W]") == "float32[N, H, W]");
  CHECK(loss("CrossEntropy", "{label_smoothing: 0.1, ignore_index: 0}", "float32[N, 5, T]", "int64[N, T]") == "float32[]");

  CHECK_THAT(loss_error("CrossEntropy", "", "float32[N, 10]", "int64[N, 10]"),
             Contains("class indices 'target' [N, 10] must have the shape of 'input' [N, 10] without the class dimension 1, i.e. [N]"));
  CHECK_THAT(loss_error("CrossEntropy", "", "float32[N, 5, H, W]", "int64[N, W, H]"),
             Contains("'target' [N, W, H] must have the shape of 'input' [N, 5, H, W] without the class dimension 1, i.e. [N, H, W]"));
  CHECK_THAT(loss_error("CrossEntropy", "", "float32[10]", "int64[]"),
             Contains("'input' must be logits of shape [N, C] or [N, C, d1, ...], found float32[10]"));
  CHECK_THAT(loss_error("CrossEntropy", "", "int64[N, 10]", "int64[N]"), Contains("'input' must be float32 or float64, found int64[N, 10]"));
  CHECK_THAT(loss_error("CrossEntropy", "", "float32[N, 10]", "bool[N]"),
             Contains("'target' must be class indices (int32 or int64) or class probabilities (float), found bool[N]"));
  CHECK_THAT(loss_error("CrossEntropy", "{label_smoothing: 1.5}", "float32[N, 10]", "int64[N]"),
             Contains("'label_smoothing' must be between 0 and 1, found 1.5"));
  CHECK_THAT(loss_error("CrossEntropy", "{reduction: average}", "float32[N, 10]", "int64[N]"),
             Contains("argument 'reduction' of CrossEntropy expects one of mean, sum, none, found string \"average\""));
}

TEST_CASE("CrossEntropy with class probabilities", "[loss]") {
  CHECK(loss("CrossEntropy", "", "float32[N, 10]", "float32[N, 10]") == "float32[]");
  // PyTorch: cross_entropy([4, 5, 6], probabilities [4, 5, 6], reduction='none') is [4, 6]
  CHECK(loss("CrossEntropy", "{reduction: none}", "float32[N, 5, T]", "float32[N, 5, T]") == "float32[N, T]");
  CHECK(loss("CrossEntropy", "{reduction: none, label_smoothing: 0.2}", "float64[N, 10]", "float64[N, 10]") == "float64[N]");

  CHECK_THAT(loss_error("CrossEntropy", "", "float32[N, 10]", "float32[N]"),
             Contains("float 'target' holds class probabilities and must have the shape of 'input' [N, 10], found [N] "
                      "(class indices must be int32 or int64)"));
  CHECK_THAT(loss_error("CrossEntropy", "", "float32[N, 10]", "float64[N, 10]"),
             Contains("dtype mismatch: 'input' is float32[N, 10] but 'target' is float64[N, 10]"));
  // PyTorch: "ignore_index is not supported for floating point target"
  CHECK_THAT(loss_error("CrossEntropy", "{ignore_index: 0}", "float32[N, 10]", "float32[N, 10]"),
             Contains("'ignore_index' (0) applies to class indices, not to float class probabilities"));
}

TEST_CASE("NLL takes log-probabilities and class indices", "[loss]") {
  CHECK(loss("NLL", "", "float32[N, 10]", "int64[N]") == "float32[]");
  CHECK(loss("NLL", "{reduction: none, ignore_index: 3}", "float32[N, 10, T]", "int32[N, T]") == "float32[N, T]");
  CHECK_THAT(loss_error("NLL", "", "float32[N, 10]", "float32[N]"),
             Contains("'target' must hold integer indices (int32 or int64), found float32[N]"));
  CHECK_THAT(loss_error("NLL", "", "float32[N, 10]", "int64[M]"),
             Contains("class indices 'target' [M] must have the shape of 'input' [N, 10] without the class dimension 1, i.e. [N]"));
  CHECK_THAT(loss_error("NLL", "", "float32[N]", "int64[N]"),
             Contains("'input' must be log-probabilities of shape [N, C] or [N, C, d1, ...], found float32[N]"));
}

TEST_CASE("elementwise losses need input and target of one shape and dtype", "[loss]") {
  for (auto op : {"BinaryCrossEntropy", "MSE", "L1", "Huber", "KLDivergence"}) {
    CAPTURE(op);
    CHECK(loss(op, "", "float32[N, 3]", "float32[N, 3]") == "float32[]");
    CHECK(loss(op, "{reduction: sum}", "float64[N]", "float64[N]") == "float64[]");
    CHECK(loss(op, "{reduction: none}", "float32[N, 3, H]", "float32[N, 3, H]") == "float32[N, 3, H]");
    CHECK(loss(op, "{reduction: none}", "float32[]", "float32[]") == "float32[]");
    CHECK_THAT(loss_error(op, "", "float32[N, 3]", "float32[N, 1]"),
               Contains("shape mismatch: 'input' [N, 3] and 'target' [N, 1] must have the same shape"));
    CHECK_THAT(loss_error(op, "", "float32[N, 3]", "float64[N, 3]"),
               Contains("dtype mismatch: 'input' is float32[N, 3] but 'target' is float64[N, 3]"));
    CHECK_THAT(loss_error(op, "", "int32[N, 3]", "int32[N, 3]"), Contains("'input' must be float32 or float64, found int32[N, 3]"));
  }
  CHECK(loss("Huber", "{delta: 0.5, reduction: none}", "float32[N]", "float32[N]") == "float32[N]");
  CHECK_THAT(loss_error("Huber", "{delta: 0}", "float32[N]", "float32[N]"), Contains("'delta' must be positive, found 0"));
  CHECK_THAT(loss_error("MSE", "{reduction: batchmean}", "float32[N]", "float32[N]"),
             Contains("argument 'reduction' of MSE expects one of mean, sum, none, found string \"batchmean\""));
}

TEST_CASE("KLDivergence takes batchmean and log targets", "[loss]") {
  CHECK(loss("KLDivergence", "{reduction: batchmean}", "float32[N, 10]", "float32[N, 10]") == "float32[]");
  CHECK(loss("KLDivergence", "{reduction: none, log_target: true}", "float32[N, 10]", "float32[N, 10]") == "float32[N, 10]");
  CHECK_THAT(loss_error("KLDivergence", "{reduction: batchmean}", "float32[]", "float32[]"),
             Contains("reduction batchmean needs a batch dimension, found a scalar 'input'"));
  CHECK_THAT(loss_error("KLDivergence", "{reduction: avg}", "float32[N]", "float32[N]"),
             Contains("expects one of mean, sum, none, batchmean"));
}
