#!/usr/bin/env python3
"""Names and strings from a hostile model file, built and run for real.

Every place a string from a model file reaches generated code (model, layer,
input, output, parameter and composite names, dims, the train: section's
strings and paths) gets a payload that would end a C++ string literal or a
comment, splice a line, form a trigraph, or name a keyword or macro. The model
must compile, build and compute what NumPy computes; its weights file must hold
the parameter names byte for byte; and no payload may run (each would create a
PWNED file). One inference program (with gradients) and one training program.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from harness import shared_cache, load_safetensors, save_safetensors

MODEL = 'x"); std::system("touch PWNED_model"); //'
IN1, IN2 = 'in"put\\', "and"
OUT1, OUT2 = 'o"ut */ ??/', "not"
PARAM = 'p"}; std::system("touch PWNED_param"); //'
COMP = "??/ comp */"
L = {
    "fc1": 'x"[0] == 0 ? "" : std::system("touch PWNED_ternary") ? "z" : "',
    "relu": '*/ std::system("touch PWNED_comment"); /*',
    "add": "tail\\",
    "mul": "caf\u00e9 \u4e2d\u6587 %s%n{}",
    "comp": "errno",
    "fc2": "linux",
    "sig": "main",
}


def q(s):
    return json.dumps(s)


def file_name(name):
    """The file the generated program writes a tensor to: '/' and '\\' become '_', so no name leaves OUTDIR."""
    return name.replace("/", "_").replace("\\", "_")


def model_text(dim):
    return f"""name: {q(MODEL)}
inputs:
  {q(IN1)}: {{shape: [{dim}, 4]}}
  {q(IN2)}: {{shape: [{dim}, 4]}}
outputs: [{q(OUT1)}, {q(OUT2)}]
params:
  {q(PARAM)}: {{shape: [4], init: {{kind: normal, std: 0.5}}}}
models:
  {q(COMP)}:
    layers: [Tanh]
layers:
  - {{op: Linear, name: {q(L['fc1'])}, input: {q(IN1)}, args: {{dimension: 4}}}}
  - {{op: Relu, name: {q(L['relu'])}}}
  - {{op: Add, name: {q(L['add'])}, right: {q(IN2)}}}
  - {{op: Multiply, name: {q(L['mul'])}, right: {q(PARAM)}}}
  - {{op: {q(COMP)}, name: {q(L['comp'])}}}
  - {{op: Linear, name: {q(L['fc2'])}, args: {{dimension: 3}}, output: {q(OUT1)}}}
  - {{op: Sigmoid, name: {q(L['sig'])}, input: {q(OUT1)}, output: {q(OUT2)}}}
"""


def main():
    mithril, root = os.path.abspath(sys.argv[1]), sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="mithril-hostile-names-")
    env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp))
    failures = []
    rng = np.random.default_rng(7)

    # Inference with gradients. The dim is named EOF, a macro of <cstdio>.
    d = os.path.join(tmp, "run")
    os.makedirs(d)
    path = os.path.join(d, "model.yaml")
    with open(path, "w") as f:
        f.write(model_text("EOF"))
    x1 = rng.standard_normal((3, 4)).astype(np.float32)
    x2 = rng.standard_normal((3, 4)).astype(np.float32)
    w = {L["fc1"] + ".weight": rng.standard_normal((4, 4)).astype(np.float32),
         L["fc1"] + ".bias": rng.standard_normal(4).astype(np.float32),
         PARAM: rng.standard_normal(4).astype(np.float32),
         L["fc2"] + ".weight": rng.standard_normal((3, 4)).astype(np.float32),
         L["fc2"] + ".bias": rng.standard_normal(3).astype(np.float32)}
    save_safetensors(os.path.join(d, "w.safetensors"), w)
    np.save(os.path.join(d, "x1.npy"), x1)
    np.save(os.path.join(d, "x2.npy"), x2)
    cmd = [mithril, "run", path, "--input", f"{IN1}=x1.npy", "--input", f"{IN2}=x2.npy", "--weights", "w.safetensors",
           "--save-weights", "saved.safetensors", "--grad", "-o", "out"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=d, env=env, timeout=900)
    if p.returncode != 0:
        failures.append(f"mithril run failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    else:
        h = np.maximum(x1 @ w[L["fc1"] + ".weight"].T + w[L["fc1"] + ".bias"], 0)
        h = np.tanh((h + x2) * w[PARAM])
        y1 = h @ w[L["fc2"] + ".weight"].T + w[L["fc2"] + ".bias"]
        y2 = 1 / (1 + np.exp(-y1))
        for name, want in ((OUT1, y1), (OUT2, y2)):
            got = np.load(os.path.join(d, "out", file_name(name) + ".npy"))
            if not np.allclose(got, want, rtol=1e-5, atol=1e-5):
                failures.append(f"output {name!r}: {got} != {want}")
        saved = load_safetensors(os.path.join(d, "saved.safetensors"))
        if sorted(saved) != sorted(w):
            failures.append(f"saved weights are named {sorted(saved)}, expected {sorted(w)}")
        grads = sorted(f[:-4] for f in os.listdir(os.path.join(d, "out", "grad")))
        if grads != sorted(file_name(n) for n in w):
            failures.append(f"gradients are named {grads}, expected {sorted(w)}")
        print("ok   inference program: outputs, weight names and gradient names intact")

    run_failed = bool(failures)

    # Training: the strings of the train: section become the program's defaults; the data file's
    # path has quotes, a backslash and a trigraph in it.
    d = os.path.join(tmp, "train")
    data_dir = os.path.join(d, 'da"ta\\ ??/ dir')
    os.makedirs(data_dir)
    xs = rng.standard_normal((64, 4)).astype(np.float32)
    ys = (xs.sum(axis=1) > 0).astype(np.int64)
    with open(os.path.join(data_dir, "d.csv"), "w") as f:
        for row, y in zip(xs, ys):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{y}\n")
    data_path = q(os.path.join('da"ta\\ ??/ dir', "d.csv"))
    text = f"""name: {q(MODEL)}
inputs:
  {q(IN1)}: {{shape: [N, 4]}}
outputs: [{q(OUT1)}]
layers:
  - {{op: Linear, name: {q(L['fc1'])}, args: {{dimension: 8}}}}
  - {{op: Relu, name: {q(L['relu'])}}}
  - {{op: Linear, name: {q(L['fc2'])}, args: {{dimension: 2}}, output: {q(OUT1)}}}
train:
  data: {data_path}
  label: -1
  loss: CrossEntropy
  optimizer: {{kind: sgd, lr: 0.1}}
  epochs: 2
  batch_size: 16
  val_split: 0.25
"""
    path = os.path.join(d, "model.yaml")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([mithril, "train", path, "-o", "run"], capture_output=True, text=True, cwd=d, env=env, timeout=900)
    if p.returncode != 0:
        failures.append(f"mithril train failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    else:
        saved = load_safetensors(os.path.join(d, "run", "weights.safetensors"))
        want = sorted([L["fc1"] + ".weight", L["fc1"] + ".bias", L["fc2"] + ".weight", L["fc2"] + ".bias"])
        if sorted(saved) != want:
            failures.append(f"trained weights are named {sorted(saved)}, expected {want}")
        print("ok   training program: trained on the data file, weight names intact")

    train_failed = len(failures) > run_failed

    pwned = []
    for dirpath, _, names in os.walk(tmp):
        pwned += [os.path.join(dirpath, n) for n in names if n.startswith("PWNED")]
    pwned += [n for n in os.listdir(root) if n.startswith("PWNED")]
    if pwned:
        failures.append(f"a model file ran code: {pwned}")
    for f in failures:
        print("FAIL", f)
    bad = int(run_failed) + int(train_failed) + int(bool(pwned))
    print(f"{3 - bad} passed, {bad} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
