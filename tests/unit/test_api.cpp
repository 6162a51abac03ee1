// The C++ logical-model API and conversions between C++, YAML and JSON.
#include <filesystem>

#include "api/mithril.h"
#include "helpers.h"

using namespace mithril;
using Catch::Contains;

static const std::string kSamples = std::string(MITHRIL_SOURCE_DIR) + "/samples/";

TEST_CASE("operators build sequences, |= reads the model input", "[api]") {
  Model m("net");
  m.input("input", {"N", 8});
  m |= Linear(4);
  m += Relu();
  m |= Linear(4)({{"output", "second"}});  // reads `input` again, not the Relu
  m.outputs({"output", "second"});
  // the Relu is the last layer without an explicit output... it is not: `second` is last
  json j = m.to_json();
  CHECK(j["layers"][0] == json{{"Linear", {{"dimension", 4}}}});
  CHECK(j["layers"][2]["input"] == "input");
  CHECK_THAT(test::check_error(m.to_yaml()), Contains("output 'output' is never produced"));
}

TEST_CASE("a C++ model round-trips through YAML and JSON", "[api]") {
  Model block("Block");
  block.arg("width", 8);
  block |= Layer("Linear", {{"dimension", "$width"}}).named("fc");
  block += Gelu();
  Model m("round_trip");
  m.input("x", {"N", "T", 16}).input("mask", {"N", "T"}, "bool").outputs({"y", "z"});
  m.param("shared", {32, 16}, {{"kind", "normal"}, {"std", 0.02}});
  m |= Layer(block)({{"input", "x"}, {"output", "h"}}).named("b").arg("width", 16).repeat(2);
  m += Layer("Where")({{"condition", "mask"}, {"left", "h"}, {"right", "h"}, {"output", "y"}}).when(true);
  m += Layer("Split", {{"axis", -1}, {"sections", 2}}).bind("input", "y").bind("output", std::vector<std::string>{"a", "b2"});
  m += Layer("Linear", {{"dimension", 32}, {"bias", false}})({{"input", "a"}, {"weight", "shared"}, {"output", "z"}});
  Model from_yaml = Model::from_text(m.to_yaml());
  Model from_json = Model::from_text(m.to_json().dump(2), true);
  CHECK(from_yaml == m);
  CHECK(from_json == m);
  CHECK(from_yaml.to_yaml() == m.to_yaml());
}

TEST_CASE("every sample round-trips file -> model -> YAML -> model", "[api]") {
  for (auto& entry : std::filesystem::directory_iterator(kSamples)) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path());
    Model m = Model::from_file(entry.path().string());
    Model back = Model::from_text(m.to_yaml());
    CHECK(back == m);
    CHECK(Model::from_text(m.to_json().dump(), true) == m);
  }
}

TEST_CASE("the JSON spelling of a model checks like the YAML one", "[api]") {
  Graph from_yaml = check_model(kSamples + "tiny_resnet.yaml");
  std::string json_text = Model::from_file(kSamples + "tiny_resnet.yaml").to_json().dump(1);
  Graph from_json = test::check_text(json_text, {}, "tiny_resnet.json");
  CHECK(dump_ir(from_yaml) == dump_ir(from_json));
  CHECK(count_params(from_json).trainable == 9962);
}

TEST_CASE("composites used in C++ keep one definition per name", "[api]") {
  Model a("Block");
  a |= Relu();
  Model b("Block");
  b |= Tanh();
  Model m("m");
  m.input("input", {"N", 2});
  m += a;
  m += a;
  CHECK(m.def().models.size() == 1);
  CHECK_THROWS_WITH(m += b, Contains("already uses a different model named 'Block'"));
}
