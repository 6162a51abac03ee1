// The logical model: what a model file says, before flattening.
//
// A ModelDef is one model (the file's top-level model or a composite under
// `models:`): its arguments, input/output terminals, declared parameters,
// layers and nested definitions. Layers name an op (primitive or composite)
// and bind its ports to connection names. Nothing is resolved here: `$`
// expressions, op names and connections are checked when flattening.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frontend/document.h"

namespace mithril {

struct TensorDecl {
  std::string name;
  json shape;                 // list of ints / symbol names / `$` expressions; null when not given
  std::string dtype = "float32";
  json init;                  // parameters: initializer spec (null = op default)
  SourceLoc loc;
};

struct Binding {
  std::string port;
  std::vector<std::string> names;
  bool is_list = false;  // written as a list (variadic ports)
  SourceLoc loc;
};

struct LayerDef {
  std::string op;
  std::string name;  // empty: named by its index in `layers`
  json args = json::object();
  std::map<std::string, SourceLoc> arg_locs;      // where each argument's value is
  std::map<std::string, SourceLoc> arg_key_locs;  // where each argument's name is
  std::vector<Binding> bindings;
  json repeat = 1;    // integer or `$` expression
  json when = true;   // `if:`: a bool or `$` expression; a false layer is left out
  SourceLoc loc;
  SourceLoc op_loc;

  const Binding* binding(const std::string& port) const;
};

struct ModelDef {
  std::string name;
  std::string file;
  json args = json::object();  // name -> default (null: required)
  std::map<std::string, SourceLoc> arg_locs;
  std::vector<TensorDecl> inputs;
  bool inputs_declared = false;
  std::vector<std::string> outputs;  // empty: the default terminal `output`
  SourceLoc outputs_loc;
  std::vector<TensorDecl> params;
  std::vector<LayerDef> layers;
  std::vector<std::pair<std::string, std::shared_ptr<ModelDef>>> models;
  std::vector<std::string> imports;
  std::vector<SourceLoc> import_locs;
  json extra = json::object();  // sections owned by later stages (`train:`, `doc:`), kept verbatim
  std::shared_ptr<const Doc> train_doc;  // the `train:` section with its source locations (driver/train.cpp)
  SourceLoc loc;

  std::vector<std::string> input_names() const;   // declared inputs, else {"input"}
  std::vector<std::string> output_names() const;  // declared outputs, else {"output"}
  const ModelDef* find_model(const std::string& n) const;
};

// Parse one model definition from a document node; `default_name` is used when it has no `name:`.
ModelDef parse_model(const Doc& node, const std::string& default_name);

// The file format, canonical (compact layer forms where possible); equal models give equal JSON.
json model_to_json(const ModelDef& m);
std::string model_to_yaml(const ModelDef& m);
bool operator==(const ModelDef& a, const ModelDef& b);

// A main model plus every composite definition it can see: its imports (recursively) and the
// shipped standard library. Two imported definitions of one name are an error; a definition in
// the user's files takes precedence over a standard-library model of the same name.
struct Program {
  std::shared_ptr<ModelDef> main;
  std::map<std::string, std::shared_ptr<const ModelDef>> library;  // imports and stdlib, by name
  std::vector<std::string> files;                                  // every file read, main first
  const ModelDef* find_library_model(const std::string& n) const;
};

Program load_program(const std::string& path);
Program program_from_model(ModelDef main);  // for models built in C++: stdlib only
// The standard library shipped inside the compiler (compiler/stdlib/*.yaml).
const std::vector<std::shared_ptr<const ModelDef>>& stdlib_models();

}  // namespace mithril
