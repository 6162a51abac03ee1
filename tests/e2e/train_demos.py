"""The training demos, as the README runs them: `mithril train samples/<demo>.yaml -o RUNDIR`
with no other flag. Checks the issue's bars on the last epoch's validation split:
digits_mlp >= 97% accuracy, digits_cnn >= 98%, and char_gpt's validation loss well below the
loss of predicting the characters' frequencies (computed here with NumPy from the same split:
the training part's byte frequencies scored on the held-out end). Also checks the run
folder's files (metrics.jsonl keys, metrics.csv, curves.svg as XML, weights) and `mithril
evaluate` on the trained weights.

Usage: train_demos.py MITHRIL ROOT [DEMO ...]: the demos named (digits_mlp, digits_cnn, char_gpt),
all three by default; ctest runs one test per demo so that they can run side by side.
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import xml.dom.minidom

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import shared_cache  # noqa: E402

FAILURES = []


def train(mithril, root, demo, tmp, env):
    rundir = os.path.join(tmp, demo)
    p = subprocess.run([mithril, "train", os.path.join(root, "samples", demo + ".yaml"), "-o", rundir], capture_output=True,
                       text=True, env=env)
    if p.returncode != 0:
        FAILURES.append(f"{demo}: training failed:\n{p.stdout}\n{p.stderr[-3000:]}")
        return None
    records = [json.loads(l) for l in open(os.path.join(rundir, "metrics.jsonl"))]
    for key in ("epoch", "train_loss", "val_loss", "val_accuracy", "seconds"):
        if any(key not in r for r in records):
            FAILURES.append(f"{demo}: metrics.jsonl records lack '{key}'")
    rows = list(csv.DictReader(open(os.path.join(rundir, "metrics.csv"))))
    if len(rows) != len(records):
        FAILURES.append(f"{demo}: metrics.csv has {len(rows)} rows, metrics.jsonl {len(records)}")
    try:
        xml.dom.minidom.parse(os.path.join(rundir, "curves.svg"))
    except Exception as e:  # noqa: BLE001
        FAILURES.append(f"{demo}: curves.svg is not well-formed: {e}")
    if not os.path.exists(os.path.join(rundir, "weights.safetensors")):
        FAILURES.append(f"{demo}: no weights.safetensors")
    last = records[-1]
    print(f"{demo}: {len(records)} epochs, last: train_loss {last['train_loss']:.4f} val_loss {last['val_loss']:.4f} "
          f"val_accuracy {last['val_accuracy']:.4f} ({sum(r['seconds'] for r in records):.1f} s of training)")
    return records


def main():
    mithril, root = os.path.abspath(sys.argv[1]), sys.argv[2]
    demos = sys.argv[3:] or ["digits_mlp", "digits_cnn", "char_gpt"]
    unknown = [d for d in demos if d not in ("digits_mlp", "digits_cnn", "char_gpt")]
    if unknown:
        sys.exit(f"train_demos.py: unknown demo {unknown}")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp))
        if "digits_mlp" in demos:
            digits_mlp(mithril, root, tmp, env)
        if "digits_cnn" in demos:
            r = train(mithril, root, "digits_cnn", tmp, env)
            if r and r[-1]["val_accuracy"] < 0.98:
                FAILURES.append(f"digits_cnn: validation accuracy {r[-1]['val_accuracy']:.4f} < 0.98")
        if "char_gpt" in demos:
            char_gpt(mithril, root, tmp, env)
    if FAILURES:
        print("\n".join(FAILURES))
        sys.exit(1)
    print("every demo reached its bar:", ", ".join(demos))


def digits_mlp(mithril, root, tmp, env):
    r = train(mithril, root, "digits_mlp", tmp, env)
    if r and r[-1]["val_accuracy"] < 0.97:
        FAILURES.append(f"digits_mlp: validation accuracy {r[-1]['val_accuracy']:.4f} < 0.97")
    if r:
        p = subprocess.run([mithril, "evaluate", os.path.join(root, "samples", "digits_mlp.yaml"), "--weights",
                            os.path.join(tmp, "digits_mlp", "weights.safetensors")], capture_output=True, text=True, env=env)
        metrics = dict(l.split() for l in p.stdout.splitlines() if len(l.split()) == 2)
        for k in ("loss", "accuracy", "top5_accuracy", "precision_macro", "recall_macro", "f1_macro"):
            if k not in metrics:
                FAILURES.append(f"evaluate: no '{k}' in its output:\n{p.stdout}\n{p.stderr}")
        if p.returncode == 0 and float(metrics.get("accuracy", 0)) < 0.97:
            FAILURES.append(f"evaluate: accuracy {metrics.get('accuracy')} on the whole set")
        print("evaluate:", ", ".join(f"{k} {v}" for k, v in metrics.items()))


def char_gpt(mithril, root, tmp, env):
    r = train(mithril, root, "char_gpt", tmp, env)
    if r:
        text = np.frombuffer(open(os.path.join(root, "samples", "data", "gnu-licenses.txt"), "rb").read(), np.uint8)
        split = len(text) - int(round(len(text) * 0.1))
        freq = np.bincount(text[:split], minlength=128) + 1e-9
        baseline = float(-np.log((freq / freq.sum())[text[split:]]).mean())
        print(f"char_gpt: frequency baseline {baseline:.3f} nats per character")
        if r[-1]["val_loss"] > 0.75 * baseline:
            FAILURES.append(f"char_gpt: validation loss {r[-1]['val_loss']:.3f} is not clearly below the frequency "
                            f"baseline {baseline:.3f} (bar: 0.75 x)")


if __name__ == "__main__":
    main()
