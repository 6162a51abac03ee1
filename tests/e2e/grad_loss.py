#!/usr/bin/env python3
"""End to end: gradients of the losses (CrossEntropy, NLL, BinaryCrossEntropy,
MSE, L1, Huber, KLDivergence), Embedding and Dropout.

Usage: grad_loss.py MITHRIL ROOT

1. A float64 model, every loss in every reduction and its arguments, each on
   inputs of its own: `--check-grad` against central finite differences (tol
   1e-6) for the input and, for float targets, the target; the Embedding table
   (float64, repeated indices, padding_idx) likewise.
2. The same layers in float32 against PyTorch 1.13 autograd with a random
   dL/d(output) per output (rtol 1e-4, atol 1e-5), including the padding_idx
   row that PyTorch leaves without a gradient even where it is used.
3. Dropout: eval mode is the identity (finite differences); in train mode the
   gradient is checked structurally against the forward output: 0 exactly
   where an element was dropped, dy / (1-p) where it was kept, with the kept
   fraction near 1-p, even for inputs that are exactly 0 (so the mask is the
   forward pass's, not read off the output). Two Dropout layers draw two masks.
Class-index targets never get gradients.
"""
import sys
import tempfile
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from harness import Runner, model_yaml

RTOL32, ATOL32 = 1e-4, 1e-5


def cases(rng):
    """(name, op, args, input, target, target has a gradient); the arrays in float64."""
    def logits(*s):
        return rng.standard_normal(s)

    def probs(*s):
        p = rng.uniform(0.1, 1, s)
        return p / p.sum(1, keepdims=True)

    def log_probs(*s):
        x = rng.standard_normal(s)
        return x - np.log(np.exp(x).sum(1, keepdims=True))

    cls = np.array([0, 4, -100, 2, 1, 4], dtype=np.int64)
    cls3 = np.array([[0, 3], [2, 2], [1, -100]], dtype=np.int32)
    out = []
    for red in ("mean", "sum", "none"):
        out.append((f"ce_{red}", "CrossEntropy", {"reduction": red}, logits(6, 5), cls, False))
        out.append((f"ce3_ls_{red}", "CrossEntropy", {"reduction": red, "label_smoothing": 0.25}, logits(3, 4, 2), cls3, False))
        out.append((f"cep_ls_{red}", "CrossEntropy", {"reduction": red, "label_smoothing": 0.1}, logits(6, 5), probs(6, 5), True))
        out.append((f"nll_{red}", "NLL", {"reduction": red}, log_probs(6, 5), cls, False))
        out.append((f"nll3_{red}", "NLL", {"reduction": red}, log_probs(3, 4, 2), cls3, False))
        out.append((f"bce_{red}", "BinaryCrossEntropy", {"reduction": red}, logits(3, 4), rng.uniform(0, 1, (3, 4)), True))
        # pointwise losses: differences kept away from 0 (L1's kink) and from +-delta (Huber's)
        d = rng.choice([-1, 1], (4, 5)) * rng.uniform(0.1, 2, (4, 5))
        d[np.abs(np.abs(d) - 0.5) < 0.05] += 0.2
        a = rng.standard_normal((4, 5))
        out.append((f"mse_{red}", "MSE", {"reduction": red}, a, a - d, True))
        out.append((f"l1_{red}", "L1", {"reduction": red}, a + 0.1, a + 0.1 - d, True))
        out.append((f"huber_{red}", "Huber", {"reduction": red, "delta": 0.5}, a - 0.2, a - 0.2 - d, True))
    for red in ("mean", "sum", "none", "batchmean"):
        out.append((f"kl_{red}", "KLDivergence", {"reduction": red}, log_probs(3, 4), probs(3, 4), True))
        out.append((f"kllog_{red}", "KLDivergence", {"reduction": red, "log_target": True}, log_probs(3, 4), log_probs(3, 4), True))
    # ignore_index other than -100, label smoothing with an ignored target
    out.append(("ce_ign1_ls", "CrossEntropy", {"ignore_index": 1, "label_smoothing": 0.3},
                logits(6, 5), np.array([1, 3, 1, 0, 2, 1], dtype=np.int64), False))
    out.append(("nll_ign4", "NLL", {"ignore_index": 4}, log_probs(6, 5), np.array([0, 4, 3, 2, 1, 4], dtype=np.int64), False))
    out.append(("cep3", "CrossEntropy", {"reduction": "sum"}, logits(2, 3, 4), probs(2, 3, 4), True))
    return out


def torch_loss(op, args, x, t):
    red = args.get("reduction", "mean")
    if op == "CrossEntropy":
        return F.cross_entropy(x, t, reduction=red, label_smoothing=args.get("label_smoothing", 0.0),
                               ignore_index=args.get("ignore_index", -100))
    if op == "NLL":
        return F.nll_loss(x, t, reduction=red, ignore_index=args.get("ignore_index", -100))
    if op == "BinaryCrossEntropy":
        return F.binary_cross_entropy_with_logits(x, t, reduction=red)
    if op == "MSE":
        return F.mse_loss(x, t, reduction=red)
    if op == "L1":
        return F.l1_loss(x, t, reduction=red)
    if op == "Huber":
        return F.huber_loss(x, t, reduction=red, delta=args["delta"])
    if op == "KLDivergence":
        return F.kl_div(x, t, reduction=red, log_target=args.get("log_target", False))
    raise ValueError(op)


def flow(args):
    return "{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in args.items()) + "}"


def loss_model(name, cs, dtype, emb):
    """Every case as a layer on inputs <case>_x / <case>_t; plus Embedding layers on ids."""
    inputs, layers, outputs, grad_inputs = {}, [], [], []
    for (cname, op, args, x, t, tgrad) in cs:
        inputs[f"{cname}_x"] = x.astype(dtype)
        inputs[f"{cname}_t"] = t.astype(dtype) if t.dtype.kind == "f" else t
        layers.append(f"{{op: {op}, name: {cname}, input: {cname}_x, target: {cname}_t, output: {cname}, args: {flow(args)}}}")
        outputs.append(cname)
        grad_inputs.append(f"{cname}_x")
        if tgrad:
            grad_inputs.append(f"{cname}_t")
    dt = np.dtype(dtype).name
    inputs.update(emb)
    layers.append(f"{{op: Embedding, name: emb, input: ids, output: e1, args: {{num_embeddings: 7, dimension: 3, dtype: {dt}}}}}")
    layers.append(f"{{op: Embedding, name: embp, input: ids32, output: e2, "
                  f"args: {{num_embeddings: 6, dimension: 4, padding_idx: -2, dtype: {dt}}}}}")
    outputs += ["e1", "e2"]
    return model_yaml(name, inputs, layers, outputs), inputs, grad_inputs


def main():
    warnings.filterwarnings("ignore", message="reduction: 'mean' divides")  # kl_div's note on batchmean
    mithril = sys.argv[1]
    rng = np.random.default_rng(7)
    cs = cases(rng)
    tmp = tempfile.mkdtemp(prefix="mithril_grad_loss_")
    r = Runner(mithril, tmp)

    # ---- 1. float64: finite differences --------------------------------------------
    # ids repeat rows; ids32 avoids the padding row (4) here: it gets no gradient although the
    # forward pass reads it, which finite differences would see (checked against PyTorch below).
    emb64 = {"ids": np.array([[0, 3, 3], [6, 0, 3]], dtype=np.int64), "ids32": np.array([1, 5, 1, 0], dtype=np.int32)}
    w64 = {"emb.weight": rng.standard_normal((7, 3)), "embp.weight": rng.standard_normal((6, 4))}
    text, inputs, gi = loss_model("grad_loss64", cs, np.float64, emb64)
    r.grad_check(text, inputs, w64, grad_inputs=gi, tol=1e-6, name="losses float64",
                 expect=gi + ["emb.weight", "embp.weight"])

    # ---- 2. float32 against PyTorch autograd -----------------------------------------
    emb32 = {"ids": np.array([[0, 3, 3], [6, 0, 3]], dtype=np.int64), "ids32": np.array([4, 5, 1, 4, 1], dtype=np.int32)}
    w32 = {k: v.astype(np.float32) for k, v in w64.items()}
    text, inputs, gi = loss_model("grad_loss32", cs, np.float32, emb32)
    ograds, want = {}, {}
    for (cname, op, args, x, t, tgrad) in cs:
        tx = torch.tensor(inputs[f"{cname}_x"], requires_grad=True)
        tt = torch.tensor(inputs[f"{cname}_t"], requires_grad=tgrad)
        if not tgrad and tt.dtype != torch.float32:
            tt = tt.long()  # torch takes int64 class indices only
        loss = torch_loss(op, args, tx, tt)
        g = rng.uniform(-1, 1, tuple(loss.shape)).astype(np.float32)
        ograds[cname] = g
        loss.backward(torch.tensor(g))
        want[f"{cname}_x"] = tx.grad.numpy()
        if tgrad:
            want[f"{cname}_t"] = tt.grad.numpy()
    for port, wname, pad in (("ids", "emb.weight", None), ("ids32", "embp.weight", -2)):
        tw = torch.tensor(w32[wname], requires_grad=True)
        e = F.embedding(torch.tensor(inputs[port]).long(), tw, padding_idx=pad)
        g = rng.uniform(-1, 1, tuple(e.shape)).astype(np.float32)
        ograds["e1" if port == "ids" else "e2"] = g
        e.backward(torch.tensor(g))
        want[wname] = tw.grad.numpy()
    _, grads = r.run_grad(text, inputs, w32, grad_inputs=gi, output_grads=ograds, name="losses float32")
    if grads is not None:
        for k, v in want.items():
            r.check(f"float32 vs torch: d/d{k}", grads.get(k), v, RTOL32, ATOL32)
        for (cname, op, args, x, t, tgrad) in cs:
            if not tgrad and f"{cname}_t" in grads:
                r.failures.append(f"{cname}: class-index target got a gradient")

    # ---- 3. Dropout -------------------------------------------------------------------
    P = 0.3
    x = rng.standard_normal((50, 80)).astype(np.float64)
    x[::7, ::3] = 0.0  # exact zeros: their output is 0 whatever the mask
    dtext = model_yaml("dropout", {"x": x, "x2": x}, [
        f"{{op: Dropout, name: d1, input: x, output: y, args: {{p: {P}}}}}",
        f"{{op: Dropout, name: d2, input: x2, output: y2, args: {{p: {P}}}}}",
        "{op: Dropout, name: d0, input: x, output: y0, args: {p: 0.0}}",
    ], ["y", "y2", "y0"])
    # eval mode: the identity, finite differences
    r.grad_check(dtext, {"x": x, "x2": x}, grad_inputs=["x", "x2"], tol=1e-6, name="Dropout eval", expect=["x", "x2"])
    x32 = x.astype(np.float32)
    g = {k: rng.uniform(0.5, 1.5, x.shape).astype(np.float32) for k in ("y", "y2", "y0")}
    outs, grads = r.run_grad(dtext.replace("float64", "float32"), {"x": x32, "x2": x32}, grad_inputs=["x", "x2"],
                             output_grads=g, extra=["--mode", "train", "--seed", "5"], name="Dropout train")
    if grads is not None:
        scale = np.float32(1 / (1 - P))
        nz = x32 != 0
        kept_total = {}
        for yname, xname, extra_g in (("y", "x", g["y0"]), ("y2", "x2", None)):
            y, dx = outs[yname], grads[xname].copy()
            if extra_g is not None:
                dx = dx - extra_g  # x also feeds the p = 0 layer, whose gradient is the identity
            kept = dx != 0
            kept_total[yname] = kept
            # where x != 0 the output shows the mask: dropped <=> y == 0
            same = np.array_equal(kept[nz], y[nz] != 0)
            r.check(f"Dropout train {yname}: gradient is 0 exactly where the output was dropped", np.array(same), np.array(True), 0, 0)
            r.check(f"Dropout train {yname}: kept elements get dy / (1-p)", dx[kept], (g[yname] * scale)[kept], 1e-6, 1e-6)
            frac = kept.mean()
            r.check(f"Dropout train {yname}: kept fraction {frac:.3f} near 1-p", np.array(abs(frac - (1 - P)) < 0.03), np.array(True), 0, 0)
            fz = kept[~nz].mean()  # the mask, not the output, decides at exact zeros
            r.check(f"Dropout train {yname}: kept fraction at zero inputs {fz:.3f} near 1-p",
                    np.array(abs(fz - (1 - P)) < 0.12), np.array(True), 0, 0)
            r.check(f"Dropout train {yname}: output is x / (1-p) where kept", y[kept], (x32 * scale)[kept], 1e-6, 1e-6)
        r.check("Dropout train: two layers draw different masks",
                np.array(not np.array_equal(kept_total["y"], kept_total["y2"])), np.array(True), 0, 0)
    sys.exit(r.finish())


if __name__ == "__main__":
    main()
