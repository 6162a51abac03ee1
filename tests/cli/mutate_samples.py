#!/usr/bin/env python3
"""Robustness: `mithril check` on many broken variants of every sample must
either succeed (exit 0) or print exactly one `FILE:LINE:COL: error:` style line
and exit 1: never crash, hang, or report an internal error.

Mutations are deterministic (fixed seed): delete, duplicate or swap lines,
delete or insert characters, replace numbers and names.
"""
import glob
import os
import random
import re
import subprocess
import sys
import tempfile

MUTANTS_PER_FILE = int(os.environ.get("MITHRIL_MUTANTS", "60"))


def mutate(text, rng):
    lines = text.splitlines(keepends=True)
    kind = rng.randrange(7)
    if kind == 0 and len(lines) > 1:
        del lines[rng.randrange(len(lines))]
    elif kind == 1:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == 2 and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        s = "".join(lines)
        pos = rng.randrange(len(s))
        if kind == 3:
            return s[:pos] + s[pos + 1:]
        if kind == 4:
            return s[:pos] + rng.choice("{}[]:,-$ \n\"'#0x") + s[pos:]
        if kind == 5:
            nums = list(re.finditer(r"\d+", s))
            if nums:
                m = rng.choice(nums)
                return s[:m.start()] + rng.choice(["0", "-1", "999999999", "1.5", "N", "true"]) + s[m.end():]
        words = list(re.finditer(r"[A-Za-z_]+", s))
        if words:
            m = rng.choice(words)
            return s[:m.start()] + rng.choice(["input", "output", "x", "Relu", "Linear", "$input", "null", "args", "op"]) + s[m.end():]
    return "".join(lines)


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    files = sorted(glob.glob(os.path.join(root, "samples", "*.yaml")))
    rng = random.Random(1234)
    bad = 0
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            text = open(f, encoding="utf-8").read()
            for i in range(MUTANTS_PER_FILE):
                mutant = mutate(text, rng)
                path = os.path.join(tmp, f"m{i}_" + os.path.basename(f))
                with open(path, "w", encoding="utf-8") as out:
                    out.write(mutant)
                try:
                    p = subprocess.run([mithril, "check", path], capture_output=True, text=True, timeout=20)
                except subprocess.TimeoutExpired:
                    print(f"HANG on a mutant of {f}:\n{mutant}")
                    bad += 1
                    continue
                total += 1
                lines = [l for l in p.stderr.splitlines() if "warning:" not in l and l.strip()]
                ok = p.returncode == 0 or (p.returncode == 1 and len(lines) == 1 and " error: " in lines[0] and "internal" not in lines[0])
                if not ok:
                    bad += 1
                    print(f"--- mutant of {f} (exit {p.returncode}):\n{mutant}\n--- stderr:\n{p.stderr}")
    print(f"{total} mutants checked, {bad} bad")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
