#!/usr/bin/env python3
"""End to end: CPU code generation of the tensor op families (reductions, shape
ops, MatMul, losses) against NumPy.

Usage: ops_tensor.py MITHRIL ROOT

One model (one generated project, one build) holds every layer, each written to
its own model output. The references are computed here in NumPy from the
definitions in the NumPy/PyTorch documentation (numpy.sum/var/take/pad/matmul,
torch.nn.functional.cross_entropy/nll_loss/kl_div/...), in float64 from the same
inputs, never from anything Mithril produced. One input has a symbolic batch
dim N, bound at run time from the .npy.
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Runner, runtime_prefix_arg  # noqa: E402

# Tolerances: float32 results are compared with float64 references; integers,
# bools and indices exactly.
TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-10, 1e-12)}

def build(N):
    """The inputs (batch N for xf), the layers and the NumPy references."""
    rng = np.random.default_rng(20240611)


    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)


    def f64(*shape):
        return rng.standard_normal(shape)


    # ---- inputs -------------------------------------------------------------------
    inputs = {
        "xf": f32(N, 3, 4, 5),                                       # float32[N, 3, 4, 5]
        "xd": f64(2, 3, 4, 5),
        "s1": f32(3, 1, 4),
        "xi": rng.integers(-3, 4, (3, 4, 5)).astype(np.int32),
        "xl": rng.integers(-1000, 1000, (4, 6)).astype(np.int64),
        "v1": f32(4),
        "ma": f32(2, 1, 3, 4),
        "mb": f32(5, 4, 6),
        "w5": f32(5, 2),
        "da": f64(3, 4),
        "db": f64(4),
        "dc": f64(4, 2),
        "mia": rng.integers(-50, 50, (2, 3, 4)).astype(np.int32),
        "mib": rng.integers(-50, 50, (4, 2)).astype(np.int32),
        "mlv": rng.integers(-10**6, 10**6, (3,)).astype(np.int64),
        "mlm": rng.integers(-10**6, 10**6, (3, 2)).astype(np.int64),
        "idx": np.array([[0, 2, -1], [1, -3, 2]], dtype=np.int64),
        "idx32": np.array([4, -5, 0, 2], dtype=np.int32),
        "logits": f32(6, 5),
        "cls": np.array([0, 4, -100, 2, 1, 4], dtype=np.int64),
        "probs": None,
        "logp": None,
        "logits3": f64(3, 4, 2),
        "cls3": np.array([[0, 3], [2, 2], [1, -100]], dtype=np.int32),
        "pa": f32(4, 5),
        "pb": f32(4, 5),
        "bt": rng.uniform(0, 1, (4, 5)).astype(np.float32),
        "kt": None,
        "ktl": None,
        "qa": f64(3, 7),
        "qb": f64(3, 7),
    }
    p = rng.uniform(0.1, 1, (6, 5))
    inputs["probs"] = (p / p.sum(1, keepdims=True)).astype(np.float32)
    lg = f32(6, 5).astype(np.float64)
    inputs["logp"] = (lg - np.log(np.exp(lg).sum(1, keepdims=True))).astype(np.float32)
    kt = rng.uniform(0, 1, (4, 5))
    kt[0, 1] = kt[2, 3] = 0.0  # 0 * log 0 counts as 0
    inputs["kt"] = (kt / kt.sum(1, keepdims=True)).astype(np.float32)
    inputs["ktl"] = np.log(rng.uniform(0.1, 1, (4, 5))).astype(np.float32)

    # ---- layers and references ------------------------------------------------------
    layers = []   # YAML flow mappings
    refs = {}     # output name -> expected array (dtype matters)


    def layer(op, out, args=None, **ports):
        """One layer writing model output `out`; ports bind input names (lists for Concat)."""
        d = {"op": op, "name": out}
        if args:
            d["args"] = args
        d.update(ports)
        if "output" not in ports:
            d["output"] = out
        layers.append(json.dumps(d))


    def add(op, out, want, args=None, **ports):
        layer(op, out, args, **ports)
        refs[out] = np.asarray(want)


    X = {k: v for k, v in inputs.items()}
    xf, xd, xi, xl = (X[k].astype(np.float64) if X[k].dtype.kind == "f" else X[k] for k in ("xf", "xd", "xi", "xl"))
    s1 = X["s1"].astype(np.float64)


    def keep(a, dt):
        return np.asarray(a).astype(dt)


    F32, F64, I32, I64 = np.float32, np.float64, np.int32, np.int64


    def lse(a, axis, keepdims=False):
        m = np.max(a, axis=axis, keepdims=True)
        r = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
        return r if keepdims else np.squeeze(r, axis=axis)


    # Reductions, float32 with the symbolic batch dim.
    add("Sum", "sum_all", keep(xf.sum(), F32), input="xf")
    add("Sum", "sum_13k", keep(xf.sum(axis=(1, 3), keepdims=True), F32), {"axis": [1, 3], "keepdim": True}, input="xf")
    add("Sum", "sum_m3m1", keep(xf.sum(axis=(1, 3)), F32), {"axis": [-1, -3]}, input="xf")
    add("Mean", "mean_last", keep(xf.mean(axis=-1), F32), {"axis": -1}, input="xf")
    add("Mean", "mean_023", keep(xf.mean(axis=(0, 2, 3)), F32), {"axis": [0, 2, 3]}, input="xf")
    add("Max", "max_02k", keep(xf.max(axis=(0, 2), keepdims=True), F32), {"axis": [0, 2], "keepdim": True}, input="xf")
    add("Min", "min_1", keep(xf.min(axis=1), F32), {"axis": 1}, input="xf")
    add("Min", "min_all", keep(xf.min(), F32), input="xf")
    add("Prod", "prod_13", keep(xf.prod(axis=(1, 3)), F32), {"axis": [1, 3]}, input="xf")
    add("Prod", "prod_2", keep(xf.prod(axis=2), F32), {"axis": 2}, input="xf")
    add("Variance", "var_13", keep(xf.var(axis=(1, 3), ddof=1), F32), {"axis": [1, 3]}, input="xf")
    add("Variance", "var_23_c0", keep(xf.var(axis=(2, 3), ddof=0), F32), {"axis": [2, 3], "correction": 0}, input="xf")
    add("Variance", "var_all", keep(xf.var(ddof=1), F32), input="xf")
    add("Variance", "var_02k", keep(xf.var(axis=(0, 2), ddof=1, keepdims=True), F32),
        {"axis": [0, -2], "keepdim": True}, input="xf")
    add("LogSumExp", "lse_03k", keep(lse(xf, (0, 3), True), F32), {"axis": [0, 3], "keepdim": True}, input="xf")
    add("LogSumExp", "lse_2", keep(lse(xf, 2), F32), {"axis": 2}, input="xf")
    add("LogSumExp", "lse_all", keep(lse(xf, None), F32), input="xf")
    add("ArgMax", "argmax_flat", keep(np.argmax(xf), I64), input="xf")
    add("ArgMax", "argmax_m2k", keep(np.expand_dims(np.argmax(xf, axis=-2), -2), I64), {"axis": -2, "keepdim": True}, input="xf")
    add("ArgMin", "argmin_1", keep(np.argmin(xf, axis=1), I64), {"axis": 1}, input="xf")
    # Size-1 dims.
    add("Sum", "s1_sum_02", keep(s1.sum(axis=(0, 2)), F32), {"axis": [0, 2]}, input="s1")
    add("Mean", "s1_mean_1k", keep(s1.mean(axis=1, keepdims=True), F32), {"axis": 1, "keepdim": True}, input="s1")
    add("ArgMax", "s1_argmax_1", keep(np.argmax(s1, axis=1), I64), {"axis": 1}, input="s1")
    add("Variance", "s1_var_02", keep(s1.var(axis=(0, 2), ddof=1), F32), {"axis": [0, 2]}, input="s1")
    # float64.
    add("Sum", "d_sum_m10", xd.sum(axis=(0, 3)), {"axis": [-1, 0]}, input="xd")
    add("Mean", "d_mean_allk", xd.mean(keepdims=True), {"keepdim": True}, input="xd")
    add("Variance", "d_var_1", xd.var(axis=1, ddof=1), {"axis": 1}, input="xd")
    add("Variance", "d_var_03_c0", xd.var(axis=(0, 3), ddof=0), {"axis": [0, 3], "correction": 0}, input="xd")
    add("LogSumExp", "d_lse_all", lse(xd, None), input="xd")
    add("LogSumExp", "d_lse_13", lse(xd, (1, 3)), {"axis": [1, 3]}, input="xd")
    add("Max", "d_max_3", xd.max(axis=3), {"axis": 3}, input="xd")
    add("Prod", "d_prod_2", xd.prod(axis=2), {"axis": 2}, input="xd")
    add("ArgMin", "d_argmin_flatk", keep(np.argmin(xd).reshape(1, 1, 1, 1), I64), {"keepdim": True}, input="xd")
    # A scalar (rank 0), from a Constant: `mithril run` cannot take a rank-0 .npy input yet.
    sc = np.array(2.5)
    add("Constant", "sc", sc, {"value": 2.5, "dtype": "float64"})
    add("Sum", "sc_sum", sc, input="sc")
    add("Variance", "sc_var_c0", np.array(0.0), {"correction": 0}, input="sc")
    add("LogSumExp", "sc_lse", sc, input="sc")
    add("ArgMax", "sc_argmax", np.array(0, dtype=np.int64), input="sc")
    add("Permute", "sc_perm", sc, {"dims": []}, input="sc")
    add("Expand", "sc_ex", np.full((3,), 2.5), {"shape": [3]}, input="sc")
    add("MatMul", "mm_l_vv", np.array(X["mlv"] @ X["mlv"]), left="mlv", right="mlv")
    # Integers (dtype kept).
    add("Sum", "i_sum_02", keep(xi.sum(axis=(0, 2)), I32), {"axis": [0, 2]}, input="xi")
    add("Prod", "i_prod_1", keep(xi.prod(axis=1), I32), {"axis": 1}, input="xi")
    add("Max", "i_max_all", keep(xi.max(), I32), input="xi")
    add("Min", "i_min_m1k", keep(xi.min(axis=-1, keepdims=True), I32), {"axis": -1, "keepdim": True}, input="xi")
    add("ArgMax", "i_argmax_0", keep(np.argmax(xi, axis=0), I64), {"axis": 0}, input="xi")
    add("ArgMin", "i_argmin_flat", keep(np.argmin(xi), I64), input="xi")
    add("Sum", "l_sum_1", keep(xl.sum(axis=1), I64), {"axis": 1}, input="xl")
    add("Max", "l_max_0", keep(xl.max(axis=0), I64), {"axis": 0}, input="xl")

    # Shape ops.
    add("Transpose", "tr_default", keep(np.swapaxes(xf, -2, -1), F32), input="xf")
    add("Transpose", "tr_i02", np.swapaxes(xi, 0, 2), {"dim0": 0, "dim1": -1}, input="xi")
    add("Permute", "perm_nhwc", keep(np.transpose(xf, (0, 2, 3, 1)), F32), {"dims": [0, 2, 3, 1]}, input="xf")
    add("Permute", "perm_l", xl.T, {"dims": [-1, 0]}, input="xl")
    add("Permute", "perm_d", np.transpose(xd, (3, 1, 0, 2)), {"dims": [3, 1, 0, 2]}, input="xd")
    add("Concat", "cat_last", keep(np.concatenate([xf, xf], -1), F32), {"axis": -1}, input=["xf", "xf"])
    add("Concat", "cat_batch", keep(np.concatenate([xf, xf], 0), F32), {"axis": 0}, input=["xf", "xf"])
    add("Slice", "d_rev1", xd[:, ::-1], {"axis": 1, "start": -1, "step": -1}, input="xd")
    add("Concat", "cat_d", np.concatenate([xd, xd[:, ::-1]], 1), {"axis": 1}, input=["xd", "d_rev1"])
    add("Concat", "cat_l", np.concatenate([xl, xl, xl], 1), {"axis": 1}, input=["xl", "xl", "xl"])
    layer("Split", "split_f", {"axis": 1, "sizes": [1, 2]}, input="xf", output=["split_f0", "split_f1"])
    refs["split_f0"], refs["split_f1"] = keep(xf[:, :1], F32), keep(xf[:, 1:], F32)
    layer("Split", "split_d", {"axis": -2, "sections": 2}, input="xd", output=["split_d0", "split_d1"])
    refs["split_d0"], refs["split_d1"] = xd[:, :, :2], xd[:, :, 2:]
    layer("Split", "split_n", {"axis": 2, "sections": 2}, input="xf", output=["split_n0", "split_n1"])
    refs["split_n0"], refs["split_n1"] = keep(xf[:, :, :2], F32), keep(xf[:, :, 2:], F32)
    layer("Split", "split_l", {"axis": 0, "sizes": [1, 3]}, input="xl", output=["split_l0", "split_l1"])
    refs["split_l0"], refs["split_l1"] = xl[:1], xl[1:]
    add("Slice", "sl_1", keep(xf[:, 1:], F32), {"axis": 1, "start": 1}, input="xf")
    add("Slice", "sl_batch", keep(xf[1:], F32), {"axis": 0, "start": 1}, input="xf")
    add("Slice", "sl_batch_rev", keep(xf[::-1], F32), {"axis": 0, "start": -1, "step": -1}, input="xf")
    add("Slice", "sl_rev", keep(xf[..., ::-1], F32), {"axis": -1, "start": -1, "step": -1}, input="xf")
    add("Slice", "sl_step2", keep(xf[..., 0:5:2], F32), {"axis": 3, "start": 0, "stop": 5, "step": 2}, input="xf")
    add("Slice", "sl_d_neg2", xd[:, :, 3:0:-2], {"axis": 2, "start": 3, "stop": 0, "step": -2}, input="xd")
    add("Slice", "sl_d_clamp", xd[:, -10:100], {"axis": 1, "start": -10, "stop": 100}, input="xd")
    add("Slice", "sl_i", xi[:, :, 1:-1], {"axis": 2, "start": 1, "stop": -1}, input="xi")
    add("Slice", "sl_i_step3", xi[:, ::3], {"axis": 1, "step": 3}, input="xi")
    add("Gather", "ga_f", keep(np.take(xf, X["idx"], axis=1), F32), {"axis": 1}, input="xf", indices="idx")
    add("Gather", "ga_d", np.take(xd, X["idx32"], axis=-1), {"axis": -1}, input="xd", indices="idx32")
    add("Constant", "gidx", np.array([0, 0, 2], dtype=np.int64), {"value": [0, 0, 2], "dtype": "int64"})
    add("Gather", "ga_l", np.take(xl, [0, 0, 2], axis=0), {"axis": 0}, input="xl", indices="gidx")
    add("Expand", "ex_v", keep(np.broadcast_to(X["v1"], (2, 3, 4)), F32), {"shape": [2, 3, 4]}, input="v1")
    add("Expand", "ex_s1", keep(np.broadcast_to(s1, (2, 3, 5, 4)), F32), {"shape": [2, -1, 5, -1]}, input="s1")
    add("Expand", "ex_l", np.broadcast_to(xl, (2, 4, 6)), {"shape": [2, 4, 6]}, input="xl")
    add("Constant", "cbool", np.array([True, False, True]), {"value": [True, False, True], "dtype": "bool"})
    add("Expand", "ex_b", np.broadcast_to(np.array([True, False, True]), (2, 3)), {"shape": [2, 3]}, input="cbool")
    add("Pad", "pad_f", keep(np.pad(xf, [(0, 0)] * 3 + [(1, 2)]), F32), {"pads": [1, 2]}, input="xf")
    add("Pad", "pad_d", np.pad(xd, [(0, 0), (0, 0), (2, 0), (0, 1)], constant_values=-1.5),
        {"pads": [0, 1, 2, 0], "value": -1.5}, input="xd")
    add("Pad", "pad_i", np.pad(xi, [(1, 1)] * 3, constant_values=7), {"pads": [1, 1, 1, 1, 1, 1], "value": 7}, input="xi")
    add("Arange", "ar_n", np.arange(N, dtype=np.int64), {"axis": 0}, input="xf")
    add("Arange", "ar_d", np.arange(5, dtype=np.float64), {"dtype": "float64"}, input="xd")
    add("Arange", "ar_i", np.arange(6, dtype=np.int32), {"axis": 1, "dtype": "int32"}, input="xl")
    add("Constant", "c_f", np.array([[1.5, -2, 3.25], [0.1, 1e-3, 7e30]], dtype=np.float32),
        {"value": [[1.5, -2, 3.25], [0.1, 1e-3, 7e30]]})
    add("Constant", "c_d", np.array(3.141592653589793), {"value": 3.141592653589793, "dtype": "float64"})
    add("Constant", "c_l", np.array([1, -2, 9223372036854775807, -9223372036854775808], dtype=np.int64),
        {"value": [1, -2, 9223372036854775807, -9223372036854775808], "dtype": "int64"})
    add("Constant", "c_i", np.array([[-2147483648, 5]], dtype=np.int32), {"value": [[-2147483648, 5]], "dtype": "int32"})

    # MatMul (numpy.matmul semantics).
    ma, mb, v1 = (X[k].astype(np.float64) for k in ("ma", "mb", "v1"))
    add("MatMul", "mm_bcast", keep(ma @ mb, F32), left="ma", right="mb")
    add("MatMul", "mm_vec_left", keep(v1 @ mb, F32), left="v1", right="mb")
    add("MatMul", "mm_vec_right", keep(ma @ v1, F32), left="ma", right="v1")
    add("MatMul", "mm_dot", keep(v1 @ v1, F32), left="v1", right="v1")
    add("MatMul", "mm_batch", keep(xf @ X["w5"].astype(np.float64), F32), left="xf", right="w5")
    add("MatMul", "mm_d_mv", X["da"] @ X["db"], left="da", right="db")
    add("MatMul", "mm_d_mm", X["da"] @ X["dc"], left="da", right="dc")
    add("MatMul", "mm_i", (X["mia"] @ X["mib"]).astype(np.int32), left="mia", right="mib")
    add("MatMul", "mm_l_vm", X["mlv"] @ X["mlm"], left="mlv", right="mlm")

    # Losses (torch.nn.functional semantics).
    logits = X["logits"].astype(np.float64)
    cls = X["cls"]


    def log_softmax(a, axis):
        return a - lse(a, axis, True)


    def ce_index(lg, t, ls=0.0, red="mean", ignore=-100):
        """torch.nn.functional.cross_entropy with class indices; classes on axis 1."""
        lp = np.moveaxis(log_softmax(lg, 1), 1, -1)  # [N, ..., C]
        C = lp.shape[-1]
        valid = t != ignore
        tt = np.where(valid, t, 0)
        picked = np.take_along_axis(lp, tt[..., None], -1)[..., 0]
        loss = -(1 - ls) * picked - ls / C * lp.sum(-1)
        loss = np.where(valid, loss, 0.0)
        if red == "none":
            return loss
        if red == "sum":
            return loss.sum()
        return loss.sum() / valid.sum()


    def ce_probs(lg, pr, ls=0.0, red="mean"):
        C = lg.shape[1]
        pt = pr * (1 - ls) + ls / C
        loss = -(pt * log_softmax(lg, 1)).sum(1)
        return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[red]


    def nll(lp, t, red="mean", ignore=-100):
        lpm = np.moveaxis(lp, 1, -1)
        valid = t != ignore
        loss = np.where(valid, -np.take_along_axis(lpm, np.where(valid, t, 0)[..., None], -1)[..., 0], 0.0)
        return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / valid.sum()}[red]


    def reduce(loss, red):
        return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[red]


    for red in ("mean", "sum", "none"):
        add("CrossEntropy", f"ce_{red}", keep(ce_index(logits, cls, red=red), F32), {"reduction": red},
            input="logits", target="cls")
    add("CrossEntropy", "ce_ls", keep(ce_index(logits, cls, ls=0.1), F32), {"label_smoothing": 0.1}, input="logits", target="cls")
    add("CrossEntropy", "ce_d3", ce_index(X["logits3"], X["cls3"]), input="logits3", target="cls3")
    add("CrossEntropy", "ce_d3_none_ls", ce_index(X["logits3"], X["cls3"], ls=0.25, red="none"),
        {"reduction": "none", "label_smoothing": 0.25}, input="logits3", target="cls3")
    probs = X["probs"].astype(np.float64)
    add("CrossEntropy", "ce_p", keep(ce_probs(logits, probs), F32), input="logits", target="probs")
    add("CrossEntropy", "ce_p_ls_sum", keep(ce_probs(logits, probs, 0.2, "sum"), F32),
        {"label_smoothing": 0.2, "reduction": "sum"}, input="logits", target="probs")
    logp = X["logp"].astype(np.float64)
    add("NLL", "nll_mean", keep(nll(logp, cls), F32), input="logp", target="cls")
    add("NLL", "nll_none", keep(nll(logp, cls, "none"), F32), {"reduction": "none"}, input="logp", target="cls")
    add("NLL", "nll_d3_sum", nll(log_softmax(X["logits3"], 1), X["cls3"], "sum"), {"reduction": "sum"},
        input="d3_logp", target="cls3")
    pa, pb, bt = (X[k].astype(np.float64) for k in ("pa", "pb", "bt"))
    bce = np.maximum(pa, 0) - pa * bt + np.log1p(np.exp(-np.abs(pa)))
    for red in ("mean", "sum", "none"):
        add("BinaryCrossEntropy", f"bce_{red}", keep(reduce(bce, red), F32), {"reduction": red}, input="pa", target="bt")
        add("MSE", f"mse_{red}", keep(reduce((pa - pb) ** 2, red), F32), {"reduction": red}, input="pa", target="pb")
    add("L1", "l1_mean", keep(np.abs(pa - pb).mean(), F32), input="pa", target="pb")
    add("L1", "l1_none", keep(np.abs(pa - pb), F32), {"reduction": "none"}, input="pa", target="pb")


    def huber(a, b, delta):
        d = np.abs(a - b)
        return np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))


    add("Huber", "huber_mean", keep(huber(pa, pb, 1.0).mean(), F32), input="pa", target="pb")
    add("Huber", "huber_d05_none", keep(huber(pa, pb, 0.5), F32), {"delta": 0.5, "reduction": "none"}, input="pa", target="pb")
    qa, qb = X["qa"], X["qb"]
    add("MSE", "d_mse_sum", ((qa - qb) ** 2).sum(), {"reduction": "sum"}, input="qa", target="qb")
    add("Huber", "d_huber_sum", huber(qa, qb, 0.75).sum(), {"delta": 0.75, "reduction": "sum"}, input="qa", target="qb")
    add("L1", "d_l1_none", np.abs(qa - qb), {"reduction": "none"}, input="qa", target="qb")
    kin = log_softmax(pa, 1)
    ktg = X["kt"].astype(np.float64)
    kl = np.where(ktg == 0, 0.0, ktg * np.log(np.where(ktg == 0, 1.0, ktg))) - ktg * kin
    for red in ("mean", "sum", "none"):
        add("KLDivergence", f"kl_{red}", keep(reduce(kl, red), F32), {"reduction": red}, input="kin", target="kt")
    add("KLDivergence", "kl_batchmean", keep(kl.sum() / kl.shape[0], F32), {"reduction": "batchmean"}, input="kin", target="kt")
    ktl = X["ktl"].astype(np.float64)
    add("KLDivergence", "kl_logt_bm", keep((np.exp(ktl) * (ktl - kin)).sum() / 4, F32),
        {"reduction": "batchmean", "log_target": True}, input="kin", target="ktl")
    return inputs, layers, refs


SYMBOLIC = {"xf": "[N, 3, 4, 5]"}  # declared shapes that differ from the example arrays


def model_text(inputs, layers, refs):
    lines = ["name: ops_tensor", "inputs:"]
    for n, a in inputs.items():
        shape = SYMBOLIC.get(n, str(list(a.shape)))
        lines.append(f"  {n}: {{shape: {shape}, dtype: {a.dtype.name}}}")
    lines.append(f"outputs: [{', '.join(refs)}]")
    lines.append("layers:")
    pre = [
        # log-probabilities for NLL and KLDivergence: x - logsumexp(x) (keepdim, broadcast by Subtract).
        json.dumps({"op": "LogSumExp", "name": "d3_lse", "args": {"axis": 1, "keepdim": True}, "input": "logits3",
                    "output": "d3_lse"}),
        json.dumps({"op": "Subtract", "name": "d3_logp", "left": "logits3", "right": "d3_lse", "output": "d3_logp"}),
        json.dumps({"op": "LogSumExp", "name": "pa_lse", "args": {"axis": -1, "keepdim": True}, "input": "pa",
                    "output": "pa_lse"}),
        json.dumps({"op": "Subtract", "name": "kin", "left": "pa", "right": "pa_lse", "output": "kin"}),
    ]
    lines += [f"  - {l}" for l in pre + layers]
    return "\n".join(lines) + "\n"


def compare(r, got, refs, tag):
    for name, want in refs.items():
        what = f"{tag}{name}"
        g = got.get(name)
        expect_dt = want.dtype
        if g is not None and g.dtype != expect_dt:
            r.failures.append(f"{what}: dtype {g.dtype}, expected {expect_dt}")
            continue
        if want.dtype.kind == "f":
            rtol, atol = TOL[want.dtype]
            r.check(what, g, want.astype(np.float64), rtol, atol)
        else:
            r.check(what, g, want, 0, 0)


def main():
    mithril, _root = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        # 1. mithril run: the input shapes bind N (every size known when the code is generated).
        inputs, layers, refs = build(2)
        text = model_text(inputs, layers, refs)
        got = r.run(text, inputs, name="ops_tensor")
        if got is not None:
            compare(r, got, refs, "")
        # 2. N left to run time (--max N=4): one binary, built with -Werror, run at N=3 and N=1.
        proj = os.path.join(tmp, "sym")
        model = os.path.join(tmp, "ops_tensor.yaml")
        with open(model, "w") as f:
            f.write(text)
        c = subprocess.run([mithril, "compile", model, "-o", proj, "--max", "N=4"], capture_output=True, text=True)
        b = None
        if c.returncode == 0:
            b = subprocess.run(f"cmake -S {proj} -B {proj}/b {shlex.quote(runtime_prefix_arg(mithril))} -DCMAKE_CXX_FLAGS=-Werror > {proj}/build.log 2>&1 && "
                               f"cmake --build {proj}/b -j 2 >> {proj}/build.log 2>&1", shell=True)
        if c.returncode != 0:
            r.failures.append(f"symbolic: mithril compile failed: {c.stderr}")
        elif b.returncode != 0:
            log = open(os.path.join(proj, "build.log"), errors="replace").read()
            r.failures.append(f"symbolic: the --max N=4 project does not build with -Werror:\n{log[-3000:]}")
        else:
            for n in (3, 1):
                inputs, layers, refs = build(n)
                got = r.run_binary(os.path.join(proj, "b", "ops_tensor"), inputs, f"symbolic N={n}")
                if got is None:
                    continue
                compare(r, got, refs, f"N={n} ")
        print(f"{len(refs)} outputs per run checked")
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
