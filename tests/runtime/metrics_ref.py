"""Python side of the training-support tests (run with Debian's /usr/bin/python3).

  metrics_ref.py metrics DIR   DIR/logits.npy [n, C] + DIR/labels.npy [n] -> DIR/ref.npy, DIR/confusion.npy
  metrics_ref.py report DIR    check DIR/metrics.jsonl, DIR/metrics.csv (against DIR/expected.json)
                               and that every DIR/*.svg is well-formed SVG with finite coordinates

The metrics are computed here with numpy alone, following numpy.argmax and
scikit-learn's definitions (precision/recall/f1_score with average="macro",
zero_division=0, labels=None; confusion_matrix); when scikit-learn is
installed the numbers are checked against it too.
"""
import csv
import glob
import json
import math
import os
import re
import sys
import xml.dom.minidom

import numpy as np


def topk_hits(logits, labels, k):
    # NaN ranks above every number (as numpy.argmax); ties go to the lower class index.
    key = np.where(np.isnan(logits), np.inf, logits)
    assert not np.isinf(logits).any(), "the test logits must not hold infinities"
    hits = 0
    for row, label in zip(key, labels):
        v = row[label]
        rank = np.count_nonzero(row > v) + np.count_nonzero(row[:label] == v)
        hits += rank < k
    return hits


def macro(labels, pred, classes):
    present = np.union1d(labels, pred)  # sklearn's labels=None
    p, r, f = [], [], []
    for c in present:
        tp = np.count_nonzero((pred == c) & (labels == c))
        npred = np.count_nonzero(pred == c)
        nact = np.count_nonzero(labels == c)
        pc = tp / npred if npred else 0.0
        rc = tp / nact if nact else 0.0
        p.append(pc)
        r.append(rc)
        f.append(2 * pc * rc / (pc + rc) if pc + rc > 0 else 0.0)
    return np.mean(p), np.mean(r), np.mean(f)


def metrics(d):
    logits = np.load(os.path.join(d, "logits.npy"))
    labels = np.load(os.path.join(d, "labels.npy"))
    n, classes = logits.shape
    pred = np.argmax(logits, axis=1)
    acc = np.mean(pred == labels)
    prec, rec, f1 = macro(labels, pred, classes)
    conf = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(conf, (labels, pred), 1)
    ref = np.array([acc, topk_hits(logits, labels, 5) / n, topk_hits(logits, labels, 3) / n,
                    topk_hits(logits, labels, 1) / n, prec, rec, f1], dtype=np.float64)
    np.save(os.path.join(d, "ref.npy"), ref)
    np.save(os.path.join(d, "confusion.npy"), conf)
    try:
        import sklearn.metrics as skm
    except ImportError:
        print("scikit-learn not installed: numpy reference only")
        return
    if np.isnan(logits).any():
        return
    kw = dict(average="macro", zero_division=0)
    np.testing.assert_allclose(prec, skm.precision_score(labels, pred, **kw), rtol=1e-12)
    np.testing.assert_allclose(rec, skm.recall_score(labels, pred, **kw), rtol=1e-12)
    np.testing.assert_allclose(f1, skm.f1_score(labels, pred, **kw), rtol=1e-12)
    np.testing.assert_array_equal(conf, skm.confusion_matrix(labels, pred, labels=list(range(classes))))
    print("checked against scikit-learn", skm.__name__)


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a == b


def report(d):
    with open(os.path.join(d, "expected.json")) as f:
        expected = json.load(f)  # {"columns": [...], "rows": [[...], ...]} with null for non-finite
    columns, rows = expected["columns"], expected["rows"]

    with open(os.path.join(d, "metrics.jsonl")) as f:
        lines = f.read().splitlines()
    assert len(lines) == len(rows), f"{len(lines)} jsonl lines, expected {len(rows)}"
    for line, row in zip(lines, rows):
        obj = json.loads(line)  # strict: NaN/Infinity would parse, so check below
        assert "NaN" not in line and "Infinity" not in line, line
        assert list(obj)[:5] == columns[:5], f"key order {list(obj)}"
        for col, want in zip(columns, row):
            if want == "absent":
                assert col not in obj, f"{col} should be absent in {line}"
            else:
                assert same(obj[col], want), f"{col}: {obj.get(col)!r} != {want!r} in {line}"
        assert isinstance(obj["epoch"], int)

    with open(os.path.join(d, "metrics.csv"), newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == columns, f"csv header {table[0]} != {columns}"
    assert len(table) == len(rows) + 1
    for got, want in zip(table[1:], rows):
        assert len(got) == len(columns), got
        for col, g, w in zip(columns, got, want):
            if w == "absent":
                assert g == "", f"{col}: {g!r} should be empty"
            elif w is None:
                assert g in ("nan", "inf", "-inf"), f"{col}: {g!r}"
            else:
                assert float(g) == w, f"{col}: {g!r} != {w!r}"

    svgs = sorted(glob.glob(os.path.join(d, "*.svg")))
    assert svgs, "no svg files"
    number = re.compile(r"^-?\d+(\.\d+)?$")
    for path in svgs:
        doc = xml.dom.minidom.parse(path)
        root = doc.documentElement
        assert root.tagName == "svg" and root.getAttribute("xmlns") == "http://www.w3.org/2000/svg", path
        texts = [t.firstChild.data for t in doc.getElementsByTagName("text") if t.firstChild]
        assert "epoch" in texts, f"{path}: no x axis label"
        for tag, attrs in (("line", "x1 y1 x2 y2"), ("circle", "cx cy r"), ("rect", "x y width height"),
                           ("text", "x y")):
            for el in doc.getElementsByTagName(tag):
                for a in attrs.split():
                    v = el.getAttribute(a)
                    if v and not v.endswith("%"):
                        assert number.match(v) and math.isfinite(float(v)), f"{path}: <{tag} {a}={v!r}>"
        for pl in doc.getElementsByTagName("polyline"):
            for pair in pl.getAttribute("points").split():
                x, y = pair.split(",")
                assert number.match(x) and number.match(y), f"{path}: polyline point {pair!r}"
        print(path, "ok:", len(doc.getElementsByTagName("polyline")), "polylines,",
              len(doc.getElementsByTagName("circle")), "markers")


if __name__ == "__main__":
    {"metrics": metrics, "report": report}[sys.argv[1]](sys.argv[2])
