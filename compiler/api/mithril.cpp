#include "api/mithril.h"

#include "driver/check.h"

namespace mithril {

// ---- Layer -----------------------------------------------------------------

Layer::Layer(std::string op, json args) {
  def_.op = std::move(op);
  for (auto& [k, v] : args.items())
    if (!v.is_null()) def_.args[k] = v;  // null means "use the default"
}

Layer::Layer(const Model& composite) : composite_(std::make_shared<ModelDef>(composite.def())) { def_.op = composite.name(); }

Layer Layer::operator()(std::initializer_list<std::pair<std::string, std::string>> bindings) const {
  Layer copy = *this;
  for (auto& [port, conn] : bindings) copy.bind(port, conn);
  return copy;
}

Layer& Layer::bind(const std::string& port, const std::string& connection) {
  for (auto& b : def_.bindings)
    if (b.port == port) {
      b.names = {connection};
      b.is_list = false;
      return *this;
    }
  def_.bindings.push_back({port, {connection}, false, {}});
  return *this;
}

Layer& Layer::bind(const std::string& port, const std::vector<std::string>& connections) {
  bind(port, connections.empty() ? std::string() : connections[0]);
  for (auto& b : def_.bindings)
    if (b.port == port) b.names = connections, b.is_list = true;
  return *this;
}

Layer& Layer::named(std::string name) {
  def_.name = std::move(name);
  return *this;
}

Layer& Layer::arg(const std::string& key, json value) {
  def_.args[key] = std::move(value);
  return *this;
}

Layer& Layer::repeat(json times) {
  def_.repeat = std::move(times);
  return *this;
}

Layer& Layer::when(json condition) {
  def_.when = std::move(condition);
  return *this;
}

// ---- Model -----------------------------------------------------------------

Model::Model(std::string name) { def_.name = std::move(name); }

Model Model::from_file(const std::string& path) { return Model(*load_program(path).main); }

Model Model::from_text(const std::string& text, bool is_json) {
  return Model(parse_model(parse_document(text, is_json ? "<text>.json" : "<text>.yaml", is_json), "model"));
}

void Model::add(Layer layer, bool from_input) {
  // `|=` on an empty model is what the first layer does anyway: no binding needed.
  if (from_input && !def_.layers.empty() && !layer.def_.binding("input")) layer.bind("input", "input");
  if (layer.composite_) {
    const std::string& n = layer.composite_->name;
    auto it = std::find_if(def_.models.begin(), def_.models.end(), [&](auto& e) { return e.first == n; });
    if (it == def_.models.end()) {
      def_.models.emplace_back(n, std::make_shared<ModelDef>(*layer.composite_));
    } else if (!(*it->second == *layer.composite_)) {
      throw CompileError({}, "model '" + def_.name + "' already uses a different model named '" + n + "'");
    }
  }
  def_.layers.push_back(std::move(layer.def_));
}

Model& Model::operator|=(Layer layer) {
  add(std::move(layer), true);
  return *this;
}

Model& Model::operator+=(Layer layer) {
  add(std::move(layer), false);
  return *this;
}

Model& Model::input(const std::string& name, json shape, const std::string& dtype) {
  def_.inputs_declared = true;
  def_.inputs.push_back({name, std::move(shape), dtype, nullptr, {}});
  return *this;
}

Model& Model::outputs(std::vector<std::string> names) {
  def_.outputs = std::move(names);
  return *this;
}

Model& Model::arg(const std::string& name, json default_value) {
  def_.args[name] = std::move(default_value);
  return *this;
}

Model& Model::param(const std::string& name, json shape, json init, const std::string& dtype) {
  def_.params.push_back({name, std::move(shape), dtype, std::move(init), {}});
  return *this;
}

Graph Model::check(const std::vector<std::string>& shapes) const {
  CheckOptions opts;
  for (auto& s : shapes) parse_shape_binding(s, opts.pipeline.shapes);
  return check_program(program_from_model(def_), opts);
}

// ---- primitive layers ------------------------------------------------------

Layer Linear(int64_t dimension, bool bias) {
  json args = {{"dimension", dimension}};
  if (!bias) args["bias"] = false;
  return Layer("Linear", args);
}
Layer Conv2d(int64_t out_channels, json kernel_size, json stride, json padding, bool bias) {
  json args = {{"out_channels", out_channels}, {"kernel_size", kernel_size}};
  if (stride != json(1)) args["stride"] = stride;
  if (padding != json(0)) args["padding"] = padding;
  if (!bias) args["bias"] = false;
  return Layer("Conv2d", args);
}
Layer BatchNorm2d() { return Layer("BatchNorm2d"); }
Layer LayerNorm() { return Layer("LayerNorm"); }
static json pool_args(json kernel_size, json stride, json padding) {
  json args = {{"kernel_size", kernel_size}};
  if (!stride.is_null()) args["stride"] = stride;
  if (padding != json(0)) args["padding"] = padding;
  return args;
}
Layer MaxPool2d(json kernel_size, json stride, json padding) { return Layer("MaxPool2d", pool_args(kernel_size, stride, padding)); }
Layer AvgPool2d(json kernel_size, json stride, json padding) { return Layer("AvgPool2d", pool_args(kernel_size, stride, padding)); }
Layer GlobalAvgPool2d() { return Layer("GlobalAvgPool2d"); }
Layer Flatten() { return Layer("Flatten"); }
Layer Dropout(double p) { return Layer("Dropout", {{"p", p}}); }
Layer Embedding(int64_t num_embeddings, int64_t dimension) {
  return Layer("Embedding", {{"num_embeddings", num_embeddings}, {"dimension", dimension}});
}
Layer Softmax(int64_t axis) { return axis == -1 ? Layer("Softmax") : Layer("Softmax", {{"axis", axis}}); }
Layer LogSoftmax(int64_t axis) { return axis == -1 ? Layer("LogSoftmax") : Layer("LogSoftmax", {{"axis", axis}}); }
Layer Relu() { return Layer("Relu"); }
Layer Gelu() { return Layer("Gelu"); }
Layer Tanh() { return Layer("Tanh"); }
Layer Sigmoid() { return Layer("Sigmoid"); }
Layer Add() { return Layer("Add"); }
Layer Multiply() { return Layer("Multiply"); }
Layer MatMul() { return Layer("MatMul"); }

}  // namespace mithril
