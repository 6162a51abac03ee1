// Building logical models in C++ with the seed's composition operators.
//
// Builds samples/mlp.yaml and samples/tiny_resnet.yaml in code, prints them in
// the file format, checks them, and confirms they equal the files.
//
//   build/samples/cpp/build_models samples
#include <iostream>

#include "api/mithril.h"
#include "driver/check.h"

using namespace mithril;

Model build_mlp() {
  Model m("mlp");
  m.input("input", {"N", 784});
  m |= Linear(512);  // reads the model's input
  m += Relu();       // each next layer reads the previous output
  m += Linear(512);
  m += Relu();
  m += Linear(10);  // the last output becomes `output`
  return m;
}

Model build_tiny_resnet() {
  // A reusable block with named terminals; `$channels` refers to its argument.
  Model block("ResBlock");
  block.arg("channels", 16);
  block |= Layer("Conv2d", {{"out_channels", "$channels"}, {"kernel_size", 3}, {"padding", 1}})({{"output", "conv1"}});
  block += BatchNorm2d()({{"input", "conv1"}, {"output", "bn1"}});
  block += Relu()({{"input", "bn1"}, {"output", "relu1"}});
  block += Layer("Conv2d", {{"out_channels", "$channels"}, {"kernel_size", 3}, {"padding", 1}})(
      {{"input", "relu1"}, {"output", "conv2"}});
  block += Add()({{"left", "input"}, {"right", "conv2"}, {"output", "output"}});

  Model m("tiny_resnet");
  m.input("image", {"N", 3, 32, 32}).outputs({"logits"});
  m |= Conv2d(16, 3, 1, 1)({{"input", "image"}}).named("stem");
  m += Layer(block).named("block1");  // two uses, two sets of parameters
  m += Layer(block).named("block2");
  m += GlobalAvgPool2d();
  m += Flatten();
  m += Linear(10)({{"output", "logits"}}).named("head");
  return m;
}

int main(int argc, char** argv) {
  std::string samples = argc > 1 ? argv[1] : "samples";
  int failures = 0;
  for (auto& [model, file] : {std::pair{build_mlp(), samples + "/mlp.yaml"},
                              std::pair{build_tiny_resnet(), samples + "/tiny_resnet.yaml"}}) {
    std::cout << "# " << model.name() << ", built in C++:\n" << model.to_yaml() << "\n";
    Graph g = model.check();
    std::cout << "trainable parameters: " << with_commas(count_params(g).trainable) << "\n";
    bool same = model == Model::from_file(file);
    std::cout << (same ? "equal to " : "DIFFERENT from ") << file << "\n\n";
    failures += !same;
  }
  return failures;
}
