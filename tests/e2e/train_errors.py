"""Bad input to `mithril train` / `evaluate` / the training program: one clear message,
a non-zero exit, and nothing lost (an earlier run's checkpoints stay byte for byte).

Also: errors in a model file's `train:` section point at FILE:LINE:COL; a training program
generated with `mithril compile --train` builds with plain CMake and runs; --resume ends
with exactly the weights of an uninterrupted run.
"""
import gzip
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import runtime_prefix_arg, shared_cache  # noqa: E402

FAILURES = []


def run(args, env, cwd=None):
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd)


def expect_error(name, p, *needles):
    out = p.stdout + p.stderr
    if p.returncode == 0:
        FAILURES.append(f"{name}: expected a failure, got exit 0:\n{out}")
        return
    if "internal" in out.lower():
        FAILURES.append(f"{name}: an internal error instead of a user error:\n{out}")
    for n in needles:
        if n not in out:
            FAILURES.append(f"{name}: message lacks '{n}':\n{out}")
    print(f"{name}: ok ({(p.stderr.strip().splitlines() or [''])[-1][:150]})")


def digest(folder):
    h = {}
    for f in sorted(os.listdir(folder)):
        with open(os.path.join(folder, f), "rb") as fh:
            h[f] = hashlib.sha256(fh.read()).hexdigest()
    return h


MLP = """name: tiny_mlp
inputs:
  x: {shape: [N, 4]}
layers:
  - {op: Linear, name: fc1, args: {dimension: 16}}
  - Relu
  - {op: Linear, name: fc2, args: {dimension: 3}}
train:
  epochs: 3
  batch_size: 16
  optimizer: {kind: adam, lr: 0.01}
"""

OTHER = MLP.replace("name: tiny_mlp", "name: other_mlp").replace("dimension: 16", "dimension: 8")

TOKENS = """name: tiny_lm
inputs:
  tokens: {shape: [N, 8], dtype: int64}
layers:
  - {op: Embedding, name: embed, args: {num_embeddings: 16, dimension: 8}}
  - {op: Linear, name: head, args: {dimension: 16}}
train:
  format: tokens
  token_dtype: uint16
  epochs: 1
  batch_size: 4
  steps_per_epoch: 3
"""


def main():
    mithril, root = os.path.abspath(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MITHRIL_CACHE_DIR=shared_cache(tmp))
        w = lambda name, text: open(os.path.join(tmp, name), "w").write(text) and os.path.join(tmp, name)
        mlp, other, lm = w("tiny_mlp.yaml", MLP), w("other.yaml", OTHER), w("lm.yaml", TOKENS)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((120, 4)).round(3)
        y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
        good = os.path.join(tmp, "good.csv")
        with open(good, "w") as f:
            f.write("a,b,c,d,kind\n" + "".join(f"{r[0]},{r[1]},{r[2]},{r[3]},{k}\n" for r, k in zip(x, y)))

        # A good run first: its checkpoints must survive every failure below.
        rundir = os.path.join(tmp, "run")
        p = run([mithril, "train", mlp, "--data", good, "--label", "kind", "-o", rundir, "--no-progress"], env)
        if p.returncode != 0:
            FAILURES.append(f"good run failed:\n{p.stdout}\n{p.stderr}")
            print("\n".join(FAILURES))
            sys.exit(1)
        before = digest(rundir)
        if not any(f.startswith("checkpoint-") for f in before) or "metrics.jsonl" not in before or "curves.svg" not in before:
            FAILURES.append(f"the run folder lacks its files: {sorted(before)}")

        def bad_csv(name, text, gz=False):
            path = os.path.join(tmp, name)
            with (gzip.open(path, "wt") if gz else open(path, "w")) as f:
                f.write(text)
            return path

        train = lambda *a: run([mithril, "train", mlp, "--no-progress", "-o", os.path.join(tmp, "fresh")] + list(a), env)
        expect_error("unknown label column", train("--data", good, "--label", "knid"), "knid", "kind")
        expect_error("label out of range", train("--data", bad_csv("range.csv", "1,2,3,4,0\n1,2,3,4,7\n"), "--label", "-1"),
                     "7", "3 classes")
        expect_error("empty CSV", train("--data", bad_csv("empty.csv", "")), "empty.csv")
        expect_error("ragged CSV", train("--data", bad_csv("ragged.csv.gz", "1,2,3,4,0\n1,2,3,0\n", gz=True)), "ragged.csv.gz:2")
        expect_error("wrong feature count", train("--data", bad_csv("five.csv", "1,2,3,4,5,0\n")), "5 values per sample", "4")
        expect_error("missing data file", train("--data", os.path.join(tmp, "nope.csv")), "nope.csv")
        wrong = os.path.join(tmp, "wrong.safetensors")
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from harness import save_safetensors
        save_safetensors(wrong, {"fc1.weight": np.zeros((8, 4), np.float32), "fc1.bias": np.zeros(8, np.float32),
                                 "fc2.weight": np.zeros((3, 16), np.float32), "fc2.bias": np.zeros(3, np.float32)})
        expect_error("weights that do not fit", train("--data", good, "--weights", wrong), "fc1.weight", "[16,4]")
        expect_error("evaluate with weights that do not fit",
                     run([mithril, "evaluate", mlp, "--weights", wrong, "--data", good, "--label", "kind"], env), "fc1.weight")
        expect_error("another model's run folder",
                     run([mithril, "train", other, "--data", good, "--label", "kind", "-o", rundir, "--no-progress"], env),
                     "tiny_mlp", "other_mlp")
        expect_error("same model without --resume",
                     run([mithril, "train", mlp, "--data", good, "--label", "kind", "-o", rundir, "--no-progress"], env),
                     "--resume")
        nan_dir = os.path.join(tmp, "nan")
        expect_error("loss becomes NaN or infinite",
                     run([mithril, "train", mlp, "--data", good, "--label", "kind", "-o", nan_dir, "--lr", "1e30",
                          "--epochs", "4", "--no-progress"], env), "loss became", "last good checkpoint")
        expect_error("unknown optimizer", train("--data", good, "--optimizer", "adagrad"), "adagrad", "sgd, adam or adamw")
        expect_error("unknown loss", train("--data", good, "--loss", "CrossEntropyy"), "CrossEntropyy", "did you mean")
        if digest(rundir) != before:
            FAILURES.append("a failed command changed the earlier run's files")

        # Errors in the train: section point at the spot.
        for name, section, needle in [
            ("unknown train key", "  epocs: 3\n", ":12:3: error: unknown key 'epocs'"),
            ("ill-typed value", "  lr: fast\n", ":12:7: error: train: 'lr' must be a number"),
            ("unknown loss in file", "  loss: {op: Hinge}\n", ":12:14: error: unknown loss 'Hinge'"),
        ]:
            path = w(f"bad_{len(name)}.yaml", MLP + section)
            expect_error(name, run([mithril, "train", path, "--data", good], env), needle)

        # Token data: values beyond the vocabulary, and an odd byte count.
        toks = os.path.join(tmp, "toks.bin")
        np.array([1, 2, 3, 40, 5] * 20, np.uint16).tofile(toks)
        expect_error("token beyond the vocabulary",
                     run([mithril, "train", lm, "--data", toks, "-o", os.path.join(tmp, "lm"), "--no-progress"], env), "40", "16")
        with open(toks, "wb") as f:
            f.write(b"\x01\x00\x02")
        expect_error("token file of odd size",
                     run([mithril, "train", lm, "--data", toks, "-o", os.path.join(tmp, "lm"), "--no-progress"], env), "toks.bin")
        np.array([1, 2, 3, 4, 5] * 20, np.uint16).tofile(toks)
        p = run([mithril, "train", lm, "--data", toks, "-o", os.path.join(tmp, "lm"), "--no-progress"], env)
        if p.returncode != 0:
            FAILURES.append(f"token training failed:\n{p.stdout}\n{p.stderr}")

        # Resume: 2 epochs then 2 more = 4 epochs at once, bit for bit (Dropout-free model, shuffled data).
        a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        base = [mithril, "train", mlp, "--data", good, "--label", "kind", "--no-progress"]
        r1 = run(base + ["-o", a, "--epochs", "4"], env)
        r2 = run(base + ["-o", b, "--epochs", "2"], env)
        r3 = run(base + ["--resume", b, "--epochs", "4"], env)
        if any(r.returncode for r in (r1, r2, r3)):
            FAILURES.append(f"resume runs failed:\n{r1.stderr}\n{r2.stderr}\n{r3.stderr}")
        elif open(os.path.join(a, "weights.safetensors"), "rb").read() != open(os.path.join(b, "weights.safetensors"), "rb").read():
            FAILURES.append("a resumed run ended with other weights than an uninterrupted one")
        else:
            lines = open(os.path.join(b, "metrics.jsonl")).read().splitlines()
            if len(lines) != 4:
                FAILURES.append(f"the resumed run's metrics.jsonl has {len(lines)} records, expected 4")
            print("resume: ok (identical weights, 4 records)")

        # The standalone training program: generated, built with plain CMake, run.
        proj = os.path.join(tmp, "proj")
        p = run([mithril, "compile", "--train", mlp, "-o", proj, "--data", good, "--label", "kind", "--epochs", "2"], env)
        if p.returncode != 0:
            FAILURES.append(f"compile --train failed:\n{p.stderr}")
        else:
            b1 = run(["cmake", "-S", proj, "-B", proj + "/build", "-DCMAKE_BUILD_TYPE=Release", runtime_prefix_arg(mithril, env)], env)
            b2 = run(["cmake", "--build", proj + "/build", "-j2"], env)
            exe = os.path.join(proj, "build", "tiny_mlp")
            if b1.returncode or b2.returncode or not os.path.exists(exe):
                FAILURES.append(f"the training program did not build:\n{b1.stdout[-2000:]}\n{b2.stdout[-3000:]}")
            else:
                r = run([exe, "-o", os.path.join(tmp, "standalone"), "--no-progress"], env)
                if r.returncode != 0 or not os.path.exists(os.path.join(tmp, "standalone", "weights.safetensors")):
                    FAILURES.append(f"the standalone training program failed:\n{r.stdout}\n{r.stderr}")
                else:
                    print("standalone training program: ok")
                h = run([exe, "--help"], env)
                if h.returncode != 0 or "--lr" not in h.stdout or good not in h.stdout:
                    FAILURES.append(f"--help of the training program lacks its options or compiled-in data:\n{h.stdout}")
    if FAILURES:
        print("\n".join(FAILURES))
        sys.exit(1)
    print("every bad input gave a clear error")


if __name__ == "__main__":
    main()
