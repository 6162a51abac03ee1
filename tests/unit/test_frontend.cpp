// The front end: documents with locations, `$` expressions, flattening,
// ordering and shape binding.
#include "frontend/document.h"
#include "frontend/expr.h"
#include "helpers.h"

using namespace mithril;
using namespace mithril::test;
using Catch::Contains;

static std::vector<std::string> param_names(const Graph& g) {
  std::vector<std::string> out;
  for (int id : g.values_of_kind(ValueKind::Param)) out.push_back(g.value(id).name);
  return out;
}

static std::vector<std::string> node_names(const Graph& g) {
  std::vector<std::string> out;
  for (auto& n : g.nodes) out.push_back(n.name);
  return out;
}

TEST_CASE("documents keep 1-based locations for YAML and JSON", "[frontend]") {
  Doc y = parse_document("a: 1\nlayers:\n  - {op: Relu}\n", "m.yaml", false);
  const Doc* layer = &y.get("layers")->items[0];
  CHECK(layer->loc.str() == "m.yaml:3:5");
  CHECK(layer->get("op")->loc.str() == "m.yaml:3:10");
  Doc j = parse_document("{\n  \"a\": 1,\n  \"b\": [true, \"x\", 2.5]\n}", "m.json", true);
  CHECK(j.get("b")->items[0].scalar == json(true));
  CHECK(j.get("b")->items[2].scalar == json(2.5));
  CHECK(j.get("b")->loc.line == 3);
  // quoted scalars stay strings
  Doc q = parse_document("a: \"12\"\nb: 12\nc: '1.5'\n", "q.yaml", false);
  CHECK(q.get("a")->scalar == json("12"));
  CHECK(q.get("b")->scalar == json(12));
  CHECK(q.get("c")->scalar == json("1.5"));
}

TEST_CASE("$ expressions evaluate over model arguments", "[frontend]") {
  json env = {{"dim", 768}, {"heads", 12}, {"stride", 2}, {"down", false}, {"p", 0.5}};
  SourceLoc loc{"m.yaml", 1, 1};
  auto ev = [&](const char* e) { return resolve_expressions(json(e), env, loc, "M"); };
  CHECK(ev("$dim") == json(768));
  CHECK(ev("$dim * 4") == json(3072));
  CHECK(ev("$dim // $heads") == json(64));
  CHECK(ev("$dim / 12") == json(64));
  CHECK(ev("$dim / 5") == json(153.6));
  CHECK(ev("$(dim + 1) * 2") == json(1538));
  CHECK(ev("$-dim % 5") == json(2));
  CHECK(ev("$stride != 1") == json(true));
  CHECK(ev("$(not down) and stride == 2") == json(true));
  CHECK(ev("$p * 2") == json(1.0));
  CHECK(resolve_expressions(json::array({"$heads", 3}), env, loc, "M") == json::array({12, 3}));
  CHECK(resolve_expressions(json("plain"), env, loc, "M") == json("plain"));
  CHECK_THROWS_WITH(ev("$dimm"), Contains("unknown argument '$dimm' (did you mean 'dim'?)"));
  CHECK_THROWS_WITH(ev("$dim +"), Contains("expected a name or a number"));
  CHECK_THROWS_WITH(ev("$dim // 0"), Contains("division by zero"));
  CHECK_THROWS_WITH(ev("$not dim"), Contains("'not' needs true or false"));
}

TEST_CASE("unnamed layers are named by index, nested names are dotted paths", "[frontend]") {
  Graph g = check_text(R"(
name: t
inputs: {input: {shape: [N, 4]}}
models:
  Block:
    layers:
      - Linear: {dimension: 4}
      - {op: Relu, name: act}
layers:
  - {op: Block, name: b}
  - Block
  - Linear: {dimension: 2}
)");
  CHECK(node_names(g) == std::vector<std::string>{"b.0", "b.act", "1.0", "1.act", "2"});
  CHECK(param_names(g) == std::vector<std::string>{"b.0.weight", "b.0.bias", "1.0.weight", "1.0.bias", "2.weight", "2.bias"});
}

TEST_CASE("repeat chains copies named name.0 .. name.K-1 with their own parameters", "[frontend]") {
  Graph g = check_text(R"(
name: t
args: {n: 3}
inputs: {input: {shape: [N, 4]}}
layers:
  - {op: Linear, name: h, args: {dimension: 4}, repeat: $n}
  - {op: Linear, name: out, args: {dimension: 2}, output: output}
)");
  CHECK(node_names(g) == std::vector<std::string>{"h.0", "h.1", "h.2", "out"});
  CHECK(count_params(g).trainable == 3 * 20 + 10);
  CHECK(g.nodes[1].inputs[0][0] == g.nodes[0].outputs[0][0]);  // h.1 reads h.0
}

TEST_CASE("if leaves layers out, and the last kept layer becomes the output", "[frontend]") {
  std::string text = R"(
name: t
args: {extra: false}
inputs: {input: {shape: [N, 4]}}
layers:
  - Relu
  - {op: Tanh, if: $extra}
)";
  Graph off = check_text(text);
  CHECK(node_names(off) == std::vector<std::string>{"0"});
  CHECK(off.outputs[0] == off.nodes[0].outputs[0][0]);
  Program p = program_from_model(parse_model(parse_document(text, "t.yaml", false), "t"));
  CheckOptions opts;
  opts.flatten.args = {{"extra", true}};
  CHECK(node_names(check_program(p, opts)) == std::vector<std::string>{"0", "1"});
  CHECK_THAT(check_error("name: t\ninputs: {input: {shape: [2]}}\nlayers:\n  - {op: Relu, if: 3}\n"),
             Contains("'if' must be true, false or a $ expression"));
}

TEST_CASE("binding parameter ports to one name shares the parameter", "[frontend]") {
  Graph g = check_text(R"(
name: tied
inputs: {tokens: {shape: [N, T], dtype: int64}}
outputs: [logits]
layers:
  - {op: Embedding, args: {num_embeddings: 50, dimension: 8}, input: tokens, weight: emb}
  - {op: Linear, name: head, args: {dimension: 50, bias: false}, weight: emb, output: logits}
)");
  CHECK(param_names(g) == std::vector<std::string>{"emb"});
  CHECK(count_params(g).trainable == 400);
  CHECK(output_type(g, "logits") == "float32[N, T, 50]");
}

TEST_CASE("declared params and composite parameters bound from outside", "[frontend]") {
  Graph g = check_text(R"(
name: t
inputs: {input: {shape: [N, 4]}}
params:
  w: {shape: [3, 4], init: {kind: normal, std: 0.02}}
models:
  Proj:
    params: {weight: {shape: [3, 4]}}
    layers:
      - {op: Linear, args: {dimension: 3, bias: false}, weight: weight}
layers:
  - {op: Proj, name: a, weight: w, output: x}
  - {op: Proj, name: b, weight: w, input: input, output: y}
  - {op: Add, left: x, right: y}
)");
  CHECK(param_names(g) == std::vector<std::string>{"w"});
  CHECK(g.value(g.values_of_kind(ValueKind::Param)[0]).init == json{{"kind", "normal"}, {"std", 0.02}});
}

TEST_CASE("layers may be written out of order, the order pass sorts them", "[frontend]") {
  Graph g = check_text(R"(
name: t
inputs: {input: {shape: [N, 4]}}
outputs: [y]
layers:
  - {op: Tanh, name: last, input: h, output: y}
  - {op: Relu, name: first, input: input, output: h}
)");
  CHECK(node_names(g) == std::vector<std::string>{"first", "last"});
  verify_graph(g);
}

TEST_CASE("shape bindings (--shape) bind inputs or single symbols and rejects contradictions", "[frontend]") {
  std::string text = "name: t\ninputs:\n  a: {shape: [N, T]}\n  b: {shape: [N, 3]}\nlayers:\n  - {op: Sum, input: a, output: output}\n  - {op: Sum, input: b, output: o2}\noutputs: [output, o2]\n";
  Graph g = check_text(text, {"a=2,5"});
  CHECK(type_of(g, g.value(g.inputs[1])) == "float32[2, 3]");
  CHECK(g.bindings == std::map<std::string, int64_t>{{"N", 2}, {"T", 5}});
  CHECK(check_text(text, {"T=7"}).bindings.at("T") == 7);
  CHECK_THAT(check_error(text, {"a=2,5", "b=3,3"}), Contains("dimension N is bound to 2 by --shape a and to 3 by --shape b"));
  CHECK_THAT(check_error(text, {"b=2,4"}), Contains("declared as [N, 3], but the given shape is [2, 4] (dimension 1 differs)"));
  CHECK_THAT(check_error(text, {"a=2"}), Contains("input 'a' has rank 2 ([N, T]), but the given shape [2] has 1 sizes"));
}

TEST_CASE("a composite that uses itself is reported", "[frontend]") {
  CHECK_THAT(check_error("name: t\ninputs: {input: {shape: [2]}}\nmodels:\n  A: {layers: [A]}\nlayers: [A]\n"),
             Contains("model 'A' instantiates itself"));
}

TEST_CASE("the IR dump prints one node per line with types and names", "[frontend]") {
  Graph g = check_text("name: t\ninputs: {input: {shape: [N, 4]}}\nlayers:\n  - Linear: {dimension: 2}\n  - Relu\n");
  std::string ir = dump_ir(g);
  CHECK_THAT(ir, Contains("%0 = input \"input\" : [N, 4]"));
  CHECK_THAT(ir, Contains("= Linear(%0:input, %3:weight, %4:bias) {\"dimension\":2,\"bias\":true} : [N, 2]  # 0"));
  CHECK_THAT(ir, Contains("%1 = Relu(%2:input) : [N, 2]  # 1"));
  CHECK_THAT(ir, Contains("return output=%1"));
}

TEST_CASE("samples check with the documented totals", "[frontend][samples]") {
  // Totals computed by hand (and matching torchvision / Hugging Face for ResNet-18 and GPT-2):
  //   mlp: 784*512+512 + 512*512+512 + 512*10+10
  //   lenet: (150+6) + (2400+16) + (400*120+120) + (120*84+84) + (84*10+10)
  //   tiny_resnet: stem 448 + 2 blocks * (2320 + 32 + 2320) + head 170 = 9962; state: 2 BatchNorms * (16 + 16) = 64
  const std::string dir = std::string(MITHRIL_SOURCE_DIR) + "/samples/";
  CHECK(count_params(check_model(dir + "mlp.yaml")).trainable == 669706);
  CHECK(count_params(check_model(dir + "lenet.yaml")).trainable == 61706);
  ParamCounts tiny = count_params(check_model(dir + "tiny_resnet.yaml"));
  CHECK(tiny.trainable == 9962);
  CHECK(tiny.state == 64);
  Graph resnet = check_model(dir + "resnet18.yaml");
  CHECK(count_params(resnet).trainable == 11689512);
  CHECK(output_type(resnet) == "float32[N, 1000]");
  Graph gpt = check_model(dir + "gpt2.yaml");
  CHECK(count_params(gpt).trainable == 124439808);
  CHECK(output_type(gpt, "logits") == "float32[N, T, 50257]");
  Graph two = check_model(dir + "two_tower.yaml");
  CHECK(output_type(two, "score") == "float32[N, 1]");
  CHECK(output_type(two, "embedding") == "float32[N, 64]");
  CHECK(two.inputs.size() == 2);
}

TEST_CASE("review fixes: repeat naming, single inputs, declared composite params", "[frontend]") {
  // `repeat:` written means indexed names, even for one copy (as PyTorch's ModuleList)
  Graph g1 = check_text("name: t\nargs: {n: 1}\ninputs: {input: {shape: [N, 4]}}\nlayers:\n  - {op: Relu, name: h, repeat: $n}\n");
  CHECK(node_names(g1) == std::vector<std::string>{"h.0"});
  // a model whose only input is not called `input` starts its sequence there
  Graph g2 = check_text("name: t\ninputs: {image: {shape: [N, 4]}}\nlayers:\n  - Relu\n");
  CHECK(g2.nodes[0].inputs[0][0] == g2.inputs[0]);
  // a composite's declared parameter shape holds when the caller binds the port
  Graph g3 = check_text(R"(
name: t
inputs: {input: {shape: [N, 4]}}
models:
  Scale:
    params: {gain: {shape: [4], init: {kind: ones}}}
    layers:
      - {op: Multiply, left: input, right: gain}
layers:
  - {op: Scale, gain: g}
)");
  CHECK(param_names(g3) == std::vector<std::string>{"g"});
  CHECK(type_of(g3, g3.value(g3.values_of_kind(ValueKind::Param)[0])) == "float32[4]");
  CHECK_THAT(check_error(R"(
name: t
inputs: {input: {shape: [N, 4]}}
params: {g: {shape: [5]}}
models:
  Scale:
    params: {gain: {shape: [4]}}
    layers:
      - {op: Multiply, left: input, right: gain}
layers:
  - {op: Scale, gain: g}
)"), Contains("parameter 'gain' of model 'Scale' is declared as float32[4], but it is bound to 'g' of type float32[5]"));
}
