// The C++ logical-model API: build the same models as the file format, with
// the seed's composition operators, and convert to and from files.
//
//   mithril::Model m("mlp");
//   m.input("input", {"N", 784});
//   m |= Linear(512);                  // connect to the model's input
//   m += Relu();                       // chain to the previous output
//   m += Linear(10);
//   m += Conv2d(16, 3)({{"input", "image"}, {"output", "features"}});  // explicit terminals
//   std::cout << m.to_yaml();          // the model file
//   mithril::Graph g = m.check({"input=64,784"});
//
// A Model used as a layer (`m += block`) becomes a composite: its definition is
// added to m's `models:` and every use gets its own parameters.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "frontend/model.h"
#include "ir/graph.h"

namespace mithril {

class Model;

class Layer {
 public:
  explicit Layer(std::string op, json args = json::object());
  Layer(const Model& composite);  // NOLINT: a model is usable wherever a layer is

  // Bind ports to connection names, as the seed's `layer(input="x", output="y")`.
  Layer operator()(std::initializer_list<std::pair<std::string, std::string>> bindings) const;
  Layer& bind(const std::string& port, const std::string& connection);
  Layer& bind(const std::string& port, const std::vector<std::string>& connections);  // list ports
  Layer& named(std::string name);
  Layer& arg(const std::string& key, json value);
  Layer& repeat(json times);
  Layer& when(json condition);  // `if:`

  const LayerDef& def() const { return def_; }

 private:
  friend class Model;
  LayerDef def_;
  std::shared_ptr<const ModelDef> composite_;
};

class Model {
 public:
  explicit Model(std::string name = "model");
  static Model from_file(const std::string& path);  // a single file's main model (imports are not inlined)
  static Model from_text(const std::string& text, bool is_json = false);
  explicit Model(ModelDef def) : def_(std::move(def)) {}

  Model& operator|=(Layer layer);  // add a layer reading the model's `input`
  Model& operator+=(Layer layer);  // add a layer reading the previous layer's output

  // Declarations.
  Model& input(const std::string& name, json shape = nullptr, const std::string& dtype = "float32");
  Model& outputs(std::vector<std::string> names);
  Model& arg(const std::string& name, json default_value = nullptr);  // null: required
  Model& param(const std::string& name, json shape, json init = nullptr, const std::string& dtype = "float32");

  const ModelDef& def() const { return def_; }
  const std::string& name() const { return def_.name; }
  json to_json() const { return model_to_json(def_); }
  std::string to_yaml() const { return model_to_yaml(def_); }
  // Flatten and infer, as `mithril check`; shapes like "input=64,784". Throws CompileError.
  Graph check(const std::vector<std::string>& shapes = {}) const;

  friend bool operator==(const Model& a, const Model& b) { return a.def_ == b.def_; }

 private:
  void add(Layer layer, bool from_input);
  ModelDef def_;
};

// Primitive layers with their common arguments; any op is available as Layer("Name", {args}).
Layer Linear(int64_t dimension, bool bias = true);
Layer Conv2d(int64_t out_channels, json kernel_size, json stride = 1, json padding = 0, bool bias = true);
Layer BatchNorm2d();
Layer LayerNorm();
Layer MaxPool2d(json kernel_size, json stride = nullptr, json padding = 0);
Layer AvgPool2d(json kernel_size, json stride = nullptr, json padding = 0);
Layer GlobalAvgPool2d();
Layer Flatten();
Layer Dropout(double p);
Layer Embedding(int64_t num_embeddings, int64_t dimension);
Layer Softmax(int64_t axis = -1);
Layer LogSoftmax(int64_t axis = -1);
Layer Relu();
Layer Gelu();
Layer Tanh();
Layer Sigmoid();
Layer Add();
Layer Multiply();
Layer MatMul();

}  // namespace mithril
