// The `mithril` command line. Thin: parses options, calls the library, prints.
#include <CLI/CLI.hpp>

#include <iostream>

#include "driver/build.h"
#include "driver/check.h"
#include "driver/process.h"
#include "driver/train.h"
#include "codegen/plan.h"
#include "codegen/target.h"
#include "mithril/rt/npy.h"

#include <csignal>
#include <filesystem>
#include <sys/wait.h>
#include "passes/passes.h"
#include "ops/registry.h"
#include "support/limits.h"

using namespace mithril;

namespace {

void print_warnings(const Graph& g) {
  for (auto& w : g.warnings) std::cerr << format_diagnostic(w.loc, "warning", w.message) << "\n";
}

json parse_arg_overrides(const std::vector<std::string>& items) {
  json out = json::object();
  for (auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      fail(SourceLoc{"--arg " + item, 0, 0}, "expected NAME=VALUE, e.g. --arg layers=4");
    std::string v = item.substr(eq + 1);
    json val;
    try {
      val = json::parse(v);
    } catch (...) {
      val = v;
    }
    out[item.substr(0, eq)] = val;
  }
  return out;
}

std::string op_help(const OpDef& op) {
  std::string s = fmt::format("{} ({}): {}\n", op.name, op.family, op.summary);
  for (auto& p : op.inputs)
    if (!p.internal)
      s += fmt::format("  in   {:<18} {}{}\n", p.name,
                     p.kind == PortKind::Param ? "parameter" : p.kind == PortKind::State ? "state" : "data",
                     std::string(p.optional ? ", optional" : "") + (p.variadic ? ", list" : ""));
  for (auto& p : op.outputs) s += fmt::format("  out  {:<18} {}\n", p.name, p.variadic ? "list" : "");
  for (auto& a : op.args) {
    std::string def = !a.default_value ? "required" : a.default_value->is_null() ? "optional" : "default " + a.default_value->dump();
    std::string choices = a.choices.empty() ? "" : fmt::format(" [{}]", fmt::join(a.choices, "|"));
    s += fmt::format("  arg  {:<18} {} ({}){}{}\n", a.name, arg_type_name(a.type), def, choices, a.doc.empty() ? "" : ": " + a.doc);
  }
  return s;
}

// docs/ops.md: every op, generated from the registry so the docs cannot drift.
// `mithril targets [NAME]`: each target's language, programs, late passes and op coverage (with a
// NAME, every op it has code for and every one it lacks).
std::string targets_text(const std::string& only) {
  std::vector<const OpDef*> primitives, internal;
  for (const OpDef* op : all_ops()) (op->has_trait("internal") ? internal : primitives).push_back(op);
  auto wrap = [](const std::vector<std::string>& words, const std::string& indent) {
    std::string out, line = indent;
    for (size_t i = 0; i < words.size(); ++i) {
      std::string w = words[i] + (i + 1 < words.size() ? "," : "");
      if (line.size() + w.size() + 1 > 100 && line != indent) {
        out += line + "\n";
        line = indent;
      }
      line += (line == indent ? "" : " ") + w;
    }
    return out + line + "\n";
  };
  std::string out;
  for (const Target& t : targets()) {
    if (!only.empty() && t.name != only) continue;
    std::vector<std::string> has, lacks;
    for (const OpDef* op : primitives) (op->target(t.name) ? has : lacks).push_back(op->name);
    std::vector<std::string> programs = {"inference"};
    if (t.gradients) programs.push_back("gradients (--grad)");
    if (t.training) programs.push_back("training (compile --train, mithril train)");
    out += fmt::format("{}\n  {}\n", t.name, t.summary);
    out += fmt::format("  language: {}; model source: <name>{}\n", t.language, t.source_ext);
    out += fmt::format("  programs: {}\n", fmt::join(programs, ", "));
    out += fmt::format("  build: {}; needs CMake, a C++20 compiler, {}\n",
                       t.runs_here ? "mithril run / train, or mithril compile -o DIR then CMake"
                                   : "mithril run --target " + t.name + " (a CMake build in the cache), or mithril compile --target " +
                                         t.name + " -o DIR then CMake",
                       t.build_needs);
    out += fmt::format("  late passes: {}\n", fmt::join(t.late_passes, ", "));
    out += fmt::format("  ops: {} of the {} primitives{}\n", has.size(), primitives.size(),
                       lacks.empty() ? " (all)" : only.empty() ? fmt::format(" (`mithril targets {}` lists them)", t.name) : "");
    if (!only.empty()) {
      out += "  has code for:\n" + wrap(has, "    ");
      if (!lacks.empty()) out += "  not yet:\n" + wrap(lacks, "    ");
      // The ops passes add (gradients, optimizer updates, fused chains), which models never name.
      std::vector<std::string> ihas, ilacks;
      for (const OpDef* op : internal) (op->target(t.name) ? ihas : ilacks).push_back(op->name);
      out += fmt::format("  internal ops (backward pass, optimizers, fusion): {} of {}\n", ihas.size(), internal.size());
      if (!ihas.empty()) out += "  has code for:\n" + wrap(ihas, "    ");
      if (!ilacks.empty()) out += "  not yet:\n" + wrap(ilacks, "    ");
    }
    out += "\n";
  }
  return out;
}

std::string ops_markdown() {
  std::string s =
      "# Ops\n\nGenerated by `mithril ops --markdown` from the op registry; do not edit by hand.\n"
      "Ports marked *parameter* or *state* are created (with an inferred shape) when a layer leaves them unbound;\n"
      "binding them to a name shares them. See [format.md](format.md) for how layers bind ports.\n";
  std::string family;
  for (auto* op : all_ops()) {
    if (op->has_trait("internal")) continue;
    if (op->family != family) s += fmt::format("\n## {}\n", op->family);
    family = op->family;
    s += fmt::format("\n### {}\n\n{}\n\n", op->name, op->summary);
    s += fmt::format("Gradient: {}.\n\n", op->gradient ? "yes" : op->has_trait("no_gradient") ? "none flows through it" : "not yet");
    s += "| port | direction | kind |\n| --- | --- | --- |\n";
    for (auto& p : op->inputs)
      if (!p.internal)
        s += fmt::format("| `{}` | in | {}{}{} |\n", p.name,
                       p.kind == PortKind::Param ? "parameter" : p.kind == PortKind::State ? "state" : "data",
                       p.optional ? ", optional" : "", p.variadic ? ", list" : "");
    for (auto& p : op->outputs) s += fmt::format("| `{}` | out | data{} |\n", p.name, p.variadic ? ", list" : "");
    if (!op->args.empty()) {
      s += "\n| argument | type | default | meaning |\n| --- | --- | --- | --- |\n";
      for (auto& a : op->args) {
        std::string def = !a.default_value ? "required" : a.default_value->is_null() ? "-" : "`" + a.default_value->dump() + "`";
        std::string doc = a.doc;
        if (!a.choices.empty()) doc += fmt::format(" ({})", fmt::join(a.choices, ", "));
        s += fmt::format("| `{}` | {} | {} | {} |\n", a.name, arg_type_name(a.type), def, doc);
      }
    }
  }
  return s;
}

}  // namespace

std::map<std::string, int64_t> parse_max(const std::vector<std::string>& max_dims) {
  std::map<std::string, int64_t> out;
  for (auto& m : max_dims) {
    ShapeBindings b;
    parse_shape_binding(m, b);
    auto& [k, v] = *b.inputs.begin();
    if (v.size() != 1) fail(SourceLoc{"--max " + m, 0, 0}, "expected DIM=VALUE, e.g. N=256");
    out[k] = v[0];
  }
  return out;
}

GradOptions grad_options(bool on, const std::vector<std::string>& inputs, const std::vector<std::string>& freeze) {
  if (!on && !inputs.empty()) fail(SourceLoc{"--grad-inputs", 0, 0}, "--grad-inputs needs --grad");
  if (!on && !freeze.empty()) fail(SourceLoc{"--freeze", 0, 0}, "--freeze needs --grad");
  return GradOptions{on, inputs, freeze, {}};
}

int main(int argc, char** argv) {
  const std::string no_pass_help =
      fmt::format("switch off an optional pass ({}) or all; repeatable", fmt::join(mithril::optional_passes(), ", "));
  CLI::App app{
      "mithril: an ahead-of-time model compiler.\n"
      "Describe a model once in a YAML or JSON file; mithril checks it, infers every shape and\n"
      "generates standalone code for it.\n\n"
      "  mithril check samples/mlp.yaml                  summary: layers, shapes, parameters\n"
      "  mithril check samples/mlp.yaml --shape input=64,784\n"
      "  mithril ops                                     every op with its ports and arguments\n"
      "  mithril train samples/digits_mlp.yaml -o runs/mlp   train (settings from the file's train: section)\n"
      "  mithril evaluate samples/digits_mlp.yaml --weights runs/mlp/weights.safetensors --data FILE\n\n"
      "Docs: docs/format.md (the model format), docs/cli.md (commands), docs/ops.md (ops),\n"
      "docs/training.md (training)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("mithril ") + MITHRIL_VERSION);
  // Limits on what a model file may ask for (docs/security.md); any command, before or after its name.
  std::vector<std::string> limit_args;
  std::string limit_help = "raise a limit on what a model file may ask for; repeatable. Limits:";
  for (auto& l : mithril::limit_table()) limit_help += fmt::format("\n  {}={} ({})", l.name, l.value, l.what);
  app.add_option("--limit", limit_args, limit_help)->type_name("NAME=N");
  app.fallthrough();

  // check
  auto* check = app.add_subcommand("check", "Check a model: flatten, infer shapes and dtypes, print a summary.");
  std::string model_path;
  std::vector<std::string> shapes, arg_overrides, no_pass;
  bool as_json = false, show_ir = false;
  std::string dump_after;
  check->add_option("MODEL", model_path, "model file (.yaml, .yml or .json)")->required();
  check->add_option("--shape", shapes,
                    "bind an input's shape (input=64,784) or one symbolic dim (N=64); repeatable")
      ->type_name("NAME=DIMS");
  check->add_option("--arg", arg_overrides, "override an argument of the main model (layers=4); repeatable")
      ->type_name("NAME=VALUE");
  check->add_flag("--json", as_json, "print the summary as JSON");
  check->add_flag("--ir", show_ir, "print the final graph IR instead of the summary");
  check->add_option("--dump-ir", dump_after, "print the graph IR after pass NAME (bind-shapes, order, infer-shapes)")
      ->type_name("PASS");
  check->add_option("--no-pass", no_pass, no_pass_help)->type_name("PASS");
  std::vector<std::string> max_dims;
  check->add_option("--max", max_dims, "upper bound of a dim left to run time (N=256), for the planned memory")
      ->type_name("DIM=VALUE");
  bool check_codegen = false, check_train = false;
  check->add_flag("--codegen", check_codegen, "run the passes code generation runs too (fusion, layout, pack-weights), as `run` does");
  check->add_flag("--train", check_train, "the training step's graph, as `mithril train` compiles it (the file's train: section)");

  // compile
  auto* compile = app.add_subcommand("compile", "Generate a standalone C++ project for a model.");
  std::string out_dir, target = "cpu", project_name;
  std::string weights, save_weights, seed = "0", bench;
  compile->add_option("MODEL", model_path, "model file")->required();
  compile->add_option("-o,--output", out_dir, "folder to write the project into")->required();
  compile->add_option("--target", target, "code generation target: cpu (default) or cuda (`mithril targets` describes them)");
  compile->add_option("--name", project_name, "project and binary name (default: the model's name)");
  compile->add_option("--shape", shapes, "fix an input's shape (input=64,784) or a dim (N=64): constant loop bounds")
      ->type_name("NAME=DIMS");
  compile->add_option("--max", max_dims, "upper bound of a dim left to run time (N=256); the arena is planned for it")
      ->type_name("DIM=VALUE");
  compile->add_option("--arg", arg_overrides, "override an argument of the main model")->type_name("NAME=VALUE");
  bool embed_weights = false;
  compile->add_option("--weights", weights, "safetensors file to check against the model now (every parameter, exact shapes)");
  compile->add_flag("--embed-weights", embed_weights, "compile the --weights into the binary (one-file deployment)");

  // run
  auto* run = app.add_subcommand("run", "Compile (cached), build and run a model on .npy inputs, writing OUTDIR/<output>.npy.");
  std::vector<std::string> run_inputs;
  bool init_missing = false;
  run->add_option("MODEL", model_path, "model file")->required();
  run->add_option("--input", run_inputs, "an input's data (input=x.npy); its shape binds the model's dims")->type_name("NAME=FILE");
  run->add_option("-o,--output", out_dir, "folder for the outputs (one .npy per model output)");
  run->add_option("--weights", weights, "safetensors file with every parameter (PyTorch names and layouts)");
  run->add_option("--target", target, "cpu (default) or cuda: build the CUDA project with nvcc and CMake (first run of a model "
                                      "builds its runtime too) and run it on the GPU");
  bool emulate_gpu = false;
  run->add_flag("--emulate-gpu", emulate_gpu,
                "with --target cuda: build the program for the CPU's emulation of CUDA instead (the same generated code as "
                "C++, its kernels' threads run on the CPU; for testing without a GPU: slow, and no figure of a GPU's speed)");
  run->add_flag("--init-missing", init_missing, "initialize parameters missing from --weights instead of failing");
  run->add_option("--seed", seed, "seed for initializing parameters when there are no --weights");
  run->add_option("--save-weights", save_weights, "write the parameters used to a safetensors file");
  run->add_option("--bench", bench, "also time N runs after a warm-up and print the median");
  bool run_profile = false;
  run->add_flag("--profile", run_profile, "with --bench: time every layer over the timed runs and print the table "
                                          "(share, ms per run, GFLOP/s of matrix products and convolutions)");
  run->add_option("--arg", arg_overrides, "override an argument of the main model")->type_name("NAME=VALUE");
  std::vector<std::string> output_grads;
  bool check_grad = false;
  run->add_option("--output-grad", output_grads, "dL/d(output) for --grad (output=g.npy); default: ones")->type_name("NAME=FILE");
  run->add_flag("--check-grad", check_grad,
                "compare the gradients with central finite differences of the forward pass (use float64 models)");
  bool want_grad = false;
  std::vector<std::string> grad_inputs, freeze;
  for (auto* sub : {check, compile, run}) {
    sub->add_flag("--grad", want_grad,
                  sub == run ? "also run the backward pass and write OUTDIR/grad/<parameter or input>.npy"
                  : sub == check ? "add the backward pass: summarize it and its planned memory"
                                 : "also generate the backward pass: backward() and forward_backward()");
    sub->add_option("--grad-inputs", grad_inputs, "model inputs that also get gradients (with --grad)")
        ->type_name("NAME,...")->delimiter(',');
    sub->add_option("--freeze", freeze, "parameters that get no gradient: a name (conv1 freezes conv1.*) or a glob (*.bias); repeatable")
        ->type_name("PATTERN");
  }
  for (auto* sub : {compile, run})
    sub->add_option("--no-pass", no_pass, no_pass_help)->type_name("PASS");
  std::string mode = "eval";
  for (auto* sub : {compile, run})
    sub->add_option("--mode", mode, "eval (default): BatchNorm uses running statistics, Dropout is the identity; "
                                    "train: batch statistics (running ones updated) and Dropout masks")
        ->check(CLI::IsMember({"eval", "train"}));

  // train, evaluate (and compile --train): the training settings as flags; each overrides the
  // model file's `train:` section (docs/training.md).
  auto* train = app.add_subcommand("train", "Train a model: compile (cached) its training program and run it, writing RUNDIR/"
                                            "metrics.jsonl, metrics.csv, curves.svg, checkpoints and weights.safetensors.");
  auto* evaluate = app.add_subcommand("evaluate", "Print the metrics (loss, accuracy, top-k, macro precision/recall/F1) of "
                                                  "trained weights on a data set.");
  train->add_option("MODEL", model_path, "model file (its `train:` section gives the defaults)")->required();
  evaluate->add_option("MODEL", model_path, "model file")->required();
  evaluate->add_option("--weights", weights, "trained weights (RUNDIR/weights.safetensors)")->required();
  std::string rundir, resume;
  train->add_option("-o,--output", rundir, "the run folder (default: runs/<model name>)");
  train->add_option("--resume", resume, "continue the run in this folder from its last checkpoint");
  train->add_option("--weights", weights, "start from these weights instead of initializing");
  for (auto* sub : {train, evaluate}) {
    sub->add_option("--target", target, "cpu (default) or cuda: the training program for an NVIDIA GPU (built with nvcc and CMake)");
    sub->add_flag("--emulate-gpu", emulate_gpu,
                  "with --target cuda: build it for the CPU's emulation of CUDA instead (for testing without a GPU; slow)");
  }
  bool compile_train = false;
  compile->add_flag("--train", compile_train,
                    "generate the standalone training program (options as `mithril train`; the model's `train:` section and "
                    "these flags become its defaults)");
  struct TrainFlag {
    const char* key;
    const char* help;
    bool eval;  // also an option of `evaluate`
  };
  const std::vector<TrainFlag> train_flags = {
      {"data", "training data: CSV (.csv, .csv.gz), .npy features, or a token file", true},
      {"labels", ".npy labels for .npy features", true},
      {"label", "CSV label column: a name, or an index (-1: the last)", true},
      {"format", "data format: auto, csv, npy or tokens", true},
      {"token_dtype", "token file element type: uint16 or int32", true},
      {"loss", "the loss op on the model's first output (CrossEntropy, MSE, ...)", true},
      {"optimizer", "sgd, adam or adamw", false},
      {"lr", "learning rate", false},
      {"momentum", "SGD momentum", false},
      {"dampening", "SGD dampening", false},
      {"weight_decay", "weight decay (L2 for sgd and adam, decoupled for adamw)", false},
      {"beta1", "Adam beta1", false},
      {"beta2", "Adam beta2", false},
      {"eps", "Adam epsilon", false},
      {"clip_norm", "clip the gradients' global L2 norm to this", false},
      {"schedule", "learning-rate schedule: constant, step or cosine", false},
      {"warmup", "steps of linear warm-up", false},
      {"step_size", "step schedule: epochs between decays", false},
      {"gamma", "step schedule: decay factor", false},
      {"min_lr", "cosine schedule: the final learning rate", false},
      {"epochs", "passes over the training data", false},
      {"batch_size", "samples per step", true},
      {"val_split", "share of the data held out for validation", false},
      {"seed", "seed of initialization, shuffling and Dropout", false},
      {"steps_per_epoch", "token data: batches per epoch", false},
      {"val_batches", "token data: validation batches (evaluate: batches read)", true},
      {"keep", "checkpoints kept", false},
      {"top_k", "the k of the top-k accuracy", true},
  };
  std::map<std::string, std::string> flag_values;
  std::map<std::string, std::vector<CLI::Option*>> flag_options;
  for (auto& f : train_flags) {
    std::string dashed = f.key;
    for (auto& c : dashed)
      if (c == '_') c = '-';
    for (auto* sub : {train, compile, evaluate}) {
      if (sub == evaluate && !f.eval) continue;
      flag_options[f.key].push_back(sub->add_option("--" + dashed, flag_values[f.key], f.help));
    }
  }
  bool nesterov = false;
  for (auto* sub : {train, compile}) sub->add_flag("--nesterov", nesterov, "SGD with Nesterov momentum");
  std::string blas = blas_choices().front();
  for (auto* sub : {compile, run, train, evaluate})
    sub->add_option("--blas", blas, "BLAS library the generated program links: openblas (default) or blis (libblis-dev)")
        ->check(CLI::IsMember(blas_choices()));
  std::string threads;
  for (auto* sub : {train, evaluate}) {
    sub->add_option("--threads", threads, "threads (default: all cores)");
    sub->add_option("--shape", shapes, "bind a symbolic dim of the input (T=64)")->type_name("DIM=VALUE");
    sub->add_option("--arg", arg_overrides, "override an argument of the main model")->type_name("NAME=VALUE");
  }
  train->add_option("--freeze", freeze, "parameters not trained: a name or a glob; repeatable")->type_name("PATTERN");
  train->add_option("--no-pass", no_pass, no_pass_help)->type_name("PASS");
  bool progress = false, no_progress = false;
  train->add_flag("--progress", progress, "a progress bar even when the output is not a terminal");
  train->add_flag("--no-progress", no_progress, "plain log lines even on a terminal");
  std::string train_bench;
  train->add_option("--bench", train_bench, "time N training steps on the first batch, print the median and peak memory; "
                                            "writes nothing");
  bool train_profile = false;
  train->add_flag("--profile", train_profile, "with --bench: time every layer (forward, backward, update) and print the "
                                              "table: share, ms per step, GFLOP/s");

  // ops
  auto* ops = app.add_subcommand("ops", "List the primitive ops, or describe one.");
  std::string op_name;
  ops->add_option("NAME", op_name, "show one op's ports and arguments");
  bool markdown = false;
  ops->add_flag("--markdown", markdown, "print every op as Markdown (docs/ops.md)");

  // targets
  auto* targets_cmd = app.add_subcommand("targets", "List the code generation targets: language, programs, passes and the ops each has code for.");
  std::string target_name;
  targets_cmd->add_option("NAME", target_name, "show one target, with every op it has code for and every one it lacks");

  // opt
  auto* opt = app.add_subcommand("opt", "Run passes on an IR file (.mir, as --ir prints it) and print the result.");
  std::string mir_path;
  std::vector<std::string> opt_passes;
  opt->add_option("FILE", mir_path, "IR file (docs/ir.md)")->required();
  opt->add_option("--pass", opt_passes, fmt::format("passes to run, in order ({}); repeatable", fmt::join(opt_pass_names(), ", ")))
      ->type_name("NAME[,NAME...]")
      ->delimiter(',');
  bool opt_train_mode = false;
  opt->add_flag("--train-mode", opt_train_mode, "BatchNorm in training mode: fold-batchnorm leaves it alone");
  opt->add_option("--max", max_dims, "bound of a symbolic dim for pack-weights' plan (N=256; default: 64)")->type_name("DIM=VALUE");
  bool verify_each = false;
  for (auto* sub : {check, compile, run, opt})
    sub->add_flag("--verify-each", verify_each, "run the IR verifier after every pass; a failure names the pass and the invariant");

  // runtime build: the runtime for a BLAS library, built once ahead of the first model
  auto* runtime = app.add_subcommand("runtime", "Manage the prebuilt runtime that models link against.");
  runtime->require_subcommand(1);
  auto* runtime_build = runtime->add_subcommand(
      "build", "Build the runtime now (once per BLAS library, compiler and CPU; a no-op when built) and print its folder.");
  std::string runtime_blas = "openblas", runtime_prefix;
  runtime_build->add_option("--blas", runtime_blas, "the BLAS library: openblas (default) or blis");
  runtime_build->add_option("--prefix", runtime_prefix,
                            "install it into this folder instead of the build cache (how `cmake --install` installs it)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;  // --help and --version exit 0; usage errors exit 1 like other user errors
  }

  try {
    for (auto& l : limit_args) set_limit(l);
    if (*check) {
      CheckOptions opts;
      for (auto& s : shapes) parse_shape_binding(s, opts.pipeline.shapes);
      opts.flatten.args = parse_arg_overrides(arg_overrides);
      opts.pipeline.disabled = resolve_disabled_passes(no_pass, opts.pipeline);
      opts.pipeline.grad = grad_options(want_grad || check_grad, grad_inputs, freeze);
      opts.pipeline.dump_after = dump_after;
      opts.pipeline.verify_each = verify_each;
      opts.pipeline.codegen = check_codegen;
      opts.pipeline.on_dump = [](const std::string& pass, const Graph& g) {
        std::cout << "// IR after " << pass << "\n" << print_ir(g);
      };
      if (!dump_after.empty()) {
        std::vector<std::string> names;
        PipelineOptions every = opts.pipeline;
        every.codegen = true;
        for (auto& p : frontend_passes(every)) names.push_back(p.name);
        if (!dump_after.empty() && std::find(names.begin(), names.end(), dump_after) == names.end())
          fail(SourceLoc{"--dump-ir " + dump_after, 0, 0}, "no pass named '{}'{}; passes: {}", dump_after,
               did_you_mean(dump_after, names), fmt::join(names, ", "));
      }
      Graph g = check_train ? training_graph(model_path, opts) : check_model(model_path, opts);
      print_warnings(g);
      if (!dump_after.empty()) return 0;
      if (as_json) std::cout << summary_json(g).dump(2) << "\n";
      else if (show_ir) std::cout << print_ir(g);
      else std::cout << summary_table(g) << memory_summary(g, parse_max(max_dims), packs_weights(opts.pipeline));
      return 0;
    }
    if (*opt) {
      OptOptions oo;
      oo.passes = opt_passes;
      oo.training = opt_train_mode;
      oo.max = parse_max(max_dims);
      std::cout << opt_ir_file(mir_path, oo);
      return 0;
    }
    // The training settings given as flags (only those actually given).
    std::map<std::string, std::string> given;
    for (auto& [key, opts] : flag_options)
      for (auto* o : opts)
        if (o->count() > 0) given[key] = flag_values[key];
    if (nesterov) given["nesterov"] = "true";
    if (*train || *evaluate || (*compile && compile_train)) {
      CompileOptions copts;
      copts.target = target;
      copts.emulate_gpu = emulate_gpu;
      copts.blas = blas;
      copts.name = project_name;
      copts.check.flatten.args = parse_arg_overrides(arg_overrides);
      for (auto& s : shapes) parse_shape_binding(s, copts.check.pipeline.shapes);
      copts.max = parse_max(max_dims);
      copts.check.pipeline.late_passes = find_target(target).late_passes;
      copts.check.pipeline.disabled = resolve_disabled_passes(no_pass, copts.check.pipeline);
      copts.check.pipeline.verify_each = verify_each;
      TrainSettings settings = load_train_settings(model_path, given);
      for (auto& f : freeze) settings.freeze.push_back(f);
      if (*compile) {
        copts.weights = weights;
        TrainProject p = compile_training(model_path, out_dir, copts, settings);
        std::cout << "wrote " << out_dir << ": build it with `cmake -S " << out_dir << " -B " << out_dir
                  << "/build && cmake --build " << out_dir << "/build -j`, then run " << out_dir << "/build/" << p.name
                  << " (--help lists its options)\n";
        return 0;
      }
      // train / evaluate: build without run-time defaults (changing --lr does not rebuild), pass them as flags.
      TrainSettings build = settings;
      build.values.clear();
      for (auto* k : {"batch_size", "clip_norm"})
        if (settings.values.count(k)) build.values[k] = settings.values.at(k);
      // The program's arguments, one string each (no shell in between).
      std::vector<std::string> args = {build_training_cached(model_path, copts, build)};
      for (auto& [key, v] : settings.values) {
        std::string dashed = key;
        for (auto& c : dashed)
          if (c == '_') c = '-';
        if (v.is_boolean()) {
          if (v.get<bool>()) args.push_back("--" + dashed);
        } else {
          args.insert(args.end(), {"--" + dashed, v.is_string() ? v.get<std::string>() : v.dump()});
        }
      }
      if (!threads.empty()) args.insert(args.end(), {"--threads", threads});
      if (*evaluate) {
        args.insert(args.end(), {"--evaluate", weights});
      } else {
        if (!train_bench.empty()) args.insert(args.end(), {"--bench", train_bench});
        if (train_profile) {
          if (train_bench.empty()) fail(SourceLoc{"--profile", 0, 0}, "--profile times the --bench steps: add --bench N");
          args.push_back("--profile");
        }
        if (!resume.empty()) {
          if (!rundir.empty() && rundir != resume) fail(SourceLoc{"--resume", 0, 0}, "give either -o or --resume (the run folder), not both");
          args.insert(args.end(), {"--resume", resume});
        } else {
          Program prog = load_program(model_path);
          args.insert(args.end(), {"-o", rundir.empty() ? "runs/" + prog.main->name : rundir});
        }
        if (!weights.empty()) args.insert(args.end(), {"--weights", weights});
        if (progress) args.push_back("--progress");
        if (no_progress) args.push_back("--no-progress");
      }
      int rc = run_child(args);
      if (WIFSIGNALED(rc)) return 128 + WTERMSIG(rc);
      return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
    }
    if (*compile || *run) {
      CompileOptions copts;
      copts.target = target;
      copts.blas = blas;
      copts.training = mode == "train";
      copts.emulate_gpu = emulate_gpu;
      copts.name = project_name;
      copts.check.flatten.args = parse_arg_overrides(arg_overrides);
      for (auto& s : shapes) parse_shape_binding(s, copts.check.pipeline.shapes);
      copts.max = parse_max(max_dims);
      copts.check.pipeline.grad = grad_options(want_grad || check_grad, grad_inputs, freeze);
      copts.check.pipeline.late_passes = find_target(target).late_passes;
      copts.check.pipeline.disabled = resolve_disabled_passes(no_pass, copts.check.pipeline);
      copts.check.pipeline.verify_each = verify_each;
      if (*compile) {
        copts.weights = weights;
        copts.embed_weights = embed_weights;
        std::string name = compile_model(model_path, out_dir, copts);
        std::cout << "wrote " << out_dir << ": build it with `cmake -S " << out_dir << " -B " << out_dir
                  << "/build && cmake --build " << out_dir << "/build -j`, then run " << out_dir << "/build/" << name << "\n";
        return 0;
      }
      // run: the inputs' shapes specialize the code; the binary is cached by its source.
      std::vector<std::string> args;  // the program's arguments, one string each (no shell in between)
      for (auto& in : run_inputs) {
        auto eq = in.find('=');
        if (eq == std::string::npos || eq == 0) fail(SourceLoc{"--input " + in, 0, 0}, "expected NAME=FILE.npy");
        std::string name = in.substr(0, eq), file = in.substr(eq + 1);
        mithril::rt::Tensor t;
        try {
          t = mithril::rt::load_npy(file);
        } catch (const std::exception& e) {
          fail(SourceLoc{file, 0, 0}, "input '{}': {}", name, e.what());
        }
        std::vector<std::string> dims;
        for (auto d : t.shape()) dims.push_back(std::to_string(d));
        parse_shape_binding(name + "=" + fmt::format("{}", fmt::join(dims, ",")), copts.check.pipeline.shapes);
        copts.check.pipeline.shapes.where[name] = SourceLoc{file, 0, 0};
        args.insert(args.end(), {"--input", in});
      }
      copts.require_all_inputs = true;
      args.insert(args.begin(), build_cached(model_path, copts));
      if (!out_dir.empty()) args.insert(args.end(), {"-o", out_dir});
      if (!weights.empty()) args.insert(args.end(), {"--weights", weights});
      if (init_missing) args.push_back("--init-missing");
      if (!save_weights.empty()) args.insert(args.end(), {"--save-weights", save_weights});
      if (!bench.empty()) args.insert(args.end(), {"--bench", bench});
      if (run_profile) {
        if (bench.empty()) fail(SourceLoc{"--profile", 0, 0}, "--profile times the --bench runs: add --bench N");
        args.push_back("--profile");
      }
      if (!output_grads.empty() && !want_grad) fail(SourceLoc{"--output-grad", 0, 0}, "--output-grad needs --grad");
      if (want_grad) args.push_back("--grad");
      if (check_grad) args.push_back("--check-grad");
      for (auto& og : output_grads) args.insert(args.end(), {"--output-grad", og});
      args.insert(args.end(), {"--seed", seed});
      int rc = run_child(args);
      return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
    }
    if (*ops) {
      if (markdown) {
        std::cout << ops_markdown();
        return 0;
      }
      if (!op_name.empty()) {
        const OpDef* op = find_op(op_name);
        if (!op) fail(SourceLoc{}, "unknown op '{}'{}", op_name, did_you_mean(op_name, op_names()));
        std::cout << op_help(*op);
        return 0;
      }
      std::string family;
      for (auto* op : all_ops()) {
        if (op->has_trait("internal")) continue;  // backward-pass ops, not for model files
        if (op->family != family) std::cout << (family.empty() ? "" : "\n") << op->family << ":\n";
        family = op->family;
        std::cout << fmt::format("  {:<26}{}\n", op->name, op->summary);
      }
      return 0;
    }
    if (*targets_cmd) {
      if (!target_name.empty()) find_target(target_name, "mithril targets");  // unknown: the list of targets
      std::cout << targets_text(target_name);
      return 0;
    }
    if (*runtime_build) {
      std::cout << build_runtime(runtime_blas, runtime_prefix) << "\n";
      return 0;
    }
  } catch (const CompileError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const Interrupted& e) {
    // Told to stop (SIGINT, SIGTERM) while building: the build was stopped too; end as the signal says.
    std::cerr << "mithril: interrupted\n";
    std::signal(e.signal(), SIG_DFL);
    std::raise(e.signal());
    return 128 + e.signal();
  } catch (const std::exception& e) {
    std::cerr << "error: internal compiler error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
