"""NumPy references for the kernel tests (run with Debian's /usr/bin/python3).

  kernels_ref.py KERNEL DIR

DIR/cases.txt has one line per case: `NAME key=value ...`. Inputs are
DIR/NAME.ARG.npy; each reference output is written to DIR/NAME.ref_OUT.npy
(float64, or int64 for indices). The references are written from the PyTorch
documentation's definitions (naive loops / einsum over a padded input), not
from the C++ code. When torch is importable the references of the layer
kernels are additionally cross-checked against torch (float64); the tests do
not need torch.
"""
import math
import os
import sys

import numpy as np

torch = None
if os.environ.get("MITHRIL_KERNELS_TORCH") == "1":
    import torch
    import torch.nn.functional as F


def parse(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


class Case:
    def __init__(self, d, line):
        parts = line.split()
        self.d, self.name = d, parts[0]
        self.p = dict(kv.split("=", 1) for kv in parts[1:])
        self.p = {k: parse(v) for k, v in self.p.items()}

    def __getitem__(self, k):
        return self.p[k]

    def get(self, k, default=None):
        return self.p.get(k, default)

    def path(self, arg):
        return os.path.join(self.d, f"{self.name}.{arg}.npy")

    def has(self, arg):
        return os.path.exists(self.path(arg))

    def arr(self, arg):
        a = np.load(self.path(arg))
        return a.astype(np.float64) if a.dtype.kind == "f" else a

    def opt(self, arg):
        return self.arr(arg) if self.has(arg) else None

    def out(self, name, value):
        value = np.ascontiguousarray(value)
        value = value.astype(np.int64) if value.dtype.kind in "iub" else value.astype(np.float64)
        np.save(os.path.join(self.d, f"{self.name}.ref_{name}.npy"), value)


def torch_check(c, what, ref, fn, rtol=1e-9, atol=1e-11):
    """Optional cross-check of a reference against torch (float64)."""
    if torch is None:
        return
    with torch.no_grad():
        got = np.asarray(fn())
    if not np.allclose(ref, got, rtol=rtol, atol=atol, equal_nan=True):
        raise AssertionError(f"{c.name} {what}: numpy reference disagrees with torch\n{ref}\n{got}")


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------- convolution
def conv2d_ref(x, w, b, sh, sw, ph, pw, dh, dw, groups):
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    out = np.zeros((N, K, OH, OW))
    Kg = K // groups
    for g in range(groups):
        for kh in range(KH):
            for kw in range(KW):
                # patch[n, c, oh, ow] = xp[n, c, oh*sh + kh*dh, ow*sw + kw*dw]
                patch = xp[:, g * Cg:(g + 1) * Cg, kh * dh:kh * dh + sh * (OH - 1) + 1:sh,
                           kw * dw:kw * dw + sw * (OW - 1) + 1:sw]
                out[:, g * Kg:(g + 1) * Kg] += np.einsum("nchw,kc->nkhw", patch, w[g * Kg:(g + 1) * Kg, :, kh, kw])
    if b is not None:
        out += b[None, :, None, None]
    return out


def k_conv2d(c):
    x, w, b = c.arr("x"), c.arr("w"), c.opt("b")
    a = [c[k] for k in ("sh", "sw", "ph", "pw", "dh", "dw", "groups")]
    ref = conv2d_ref(x, w, b, *a)
    torch_check(c, "conv2d", ref, lambda: F.conv2d(T(x), T(w), None if b is None else T(b), (a[0], a[1]),
                                                     (a[2], a[3]), (a[4], a[5]), a[6]))
    c.out("out", ref)


def k_conv_transpose2d(c):
    x, w, b = c.arr("x"), c.arr("w"), c.opt("b")
    sh, sw, ph, pw, dh, dw, groups, OH, OW = (c[k] for k in ("sh", "sw", "ph", "pw", "dh", "dw", "groups", "OH", "OW"))
    N, C, H, W = x.shape
    _, Kg, KH, KW = w.shape
    Cg = C // groups
    # out[n, g*Kg+k, ih*sh - ph + kh*dh, iw*sw - pw + kw*dw] += x[n, g*Cg+c, ih, iw] * w[g*Cg+c, k, kh, kw]
    BH = max(sh * (H - 1) + dh * (KH - 1) + 1, ph + OH)
    BW = max(sw * (W - 1) + dw * (KW - 1) + 1, pw + OW)
    buf = np.zeros((N, Kg * groups, BH, BW))
    for g in range(groups):
        for kh in range(KH):
            for kw in range(KW):
                contrib = np.einsum("nchw,ck->nkhw", x[:, g * Cg:(g + 1) * Cg], w[g * Cg:(g + 1) * Cg, :, kh, kw])
                buf[:, g * Kg:(g + 1) * Kg, kh * dh:kh * dh + sh * (H - 1) + 1:sh,
                    kw * dw:kw * dw + sw * (W - 1) + 1:sw] += contrib
    ref = buf[:, :, ph:ph + OH, pw:pw + OW]
    if b is not None:
        ref = ref + b[None, :, None, None]
    oph = OH - ((H - 1) * sh - 2 * ph + dh * (KH - 1) + 1)
    opw = OW - ((W - 1) * sw - 2 * pw + dw * (KW - 1) + 1)
    torch_check(c, "conv_transpose2d", ref, lambda: F.conv_transpose2d(
        T(x), T(w), None if b is None else T(b), (sh, sw), (ph, pw), (oph, opw), groups, (dh, dw)))
    c.out("out", ref)


# ---------------------------------------------------------------- pooling
def k_max_pool2d(c):
    x = c.arr("x")
    KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = (
        c[k] for k in ("KH", "KW", "sh", "sw", "ph", "pw", "dh", "dw", "OH", "OW"))
    N, C, H, W = x.shape
    # -inf everywhere outside the input (padding and the ceil_mode overhang)
    BH = max(ph + H, sh * (OH - 1) + dh * (KH - 1) + 1)
    BW = max(pw + W, sw * (OW - 1) + dw * (KW - 1) + 1)
    xp = np.full((N, C, BH, BW), -np.inf)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    patches, where = [], []
    for kh in range(KH):
        for kw in range(KW):
            patches.append(xp[:, :, kh * dh:kh * dh + sh * (OH - 1) + 1:sh, kw * dw:kw * dw + sw * (OW - 1) + 1:sw])
            oh = np.arange(OH)[:, None] * sh + kh * dh - ph
            ow = np.arange(OW)[None, :] * sw + kw * dw - pw
            where.append(oh * W + ow)
    stack = np.stack(patches)  # window position first, row-major window order
    ref = stack.max(axis=0)
    first = stack.argmax(axis=0)  # first occurrence of the max
    idx = np.take_along_axis(np.stack([np.broadcast_to(wh, (N, C, OH, OW)) for wh in where]), first[None], 0)[0]
    if torch is not None:
        ceil = c.get("ceil", 0) == 1
        tv, ti = F.max_pool2d(T(x), (KH, KW), (sh, sw), (ph, pw), (dh, dw), ceil_mode=ceil, return_indices=True)
        assert tv.shape == ref.shape, (tv.shape, ref.shape)
        torch_check(c, "max_pool2d", ref, lambda: tv)
        torch_check(c, "max_pool2d indices", idx, lambda: ti)
    c.out("out", ref)
    c.out("idx", idx)


def k_avg_pool2d(c):
    x = c.arr("x")
    KH, KW, sh, sw, ph, pw, OH, OW, cip, div = (
        c[k] for k in ("KH", "KW", "sh", "sw", "ph", "pw", "OH", "OW", "cip", "div"))
    N, C, H, W = x.shape
    ref = np.zeros((N, C, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            # window in padded coordinates, clipped to the padded input
            h0, w0 = oh * sh - ph, ow * sw - pw
            h1, w1 = min(h0 + KH, H + ph), min(w0 + KW, W + pw)
            padded_count = (h1 - h0) * (w1 - w0)
            a0, b0, a1, b1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            if a0 >= a1 or b0 >= b1:
                continue
            s = x[:, :, a0:a1, b0:b1].sum(axis=(2, 3))
            d = div if div > 0 else (padded_count if cip else (a1 - a0) * (b1 - b0))
            ref[:, :, oh, ow] = s / d
    if torch is not None:
        tv = F.avg_pool2d(T(x), (KH, KW), (sh, sw), (ph, pw), ceil_mode=c.get("ceil", 0) == 1,
                          count_include_pad=bool(cip), divisor_override=div if div > 0 else None)
        assert tv.shape == ref.shape, (tv.shape, ref.shape)
        torch_check(c, "avg_pool2d", ref, lambda: tv)
    c.out("out", ref)


def k_adaptive_pool2d(c):
    x = c.arr("x")
    OH, OW = c["OH"], c["OW"]
    N, C, H, W = x.shape
    avg, mx = np.zeros((N, C, OH, OW)), np.zeros((N, C, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            h0, h1 = (oh * H) // OH, -((-(oh + 1) * H) // OH)
            w0, w1 = (ow * W) // OW, -((-(ow + 1) * W) // OW)
            avg[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
            mx[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].max(axis=(2, 3))
    torch_check(c, "adaptive_avg", avg, lambda: F.adaptive_avg_pool2d(T(x), (OH, OW)))
    torch_check(c, "adaptive_max", mx, lambda: F.adaptive_max_pool2d(T(x), (OH, OW)))
    c.out("avg", avg)
    c.out("max", mx)
    c.out("gap", x.mean(axis=(2, 3)))


# ---------------------------------------------------------------- normalisation
def k_batch_norm(c):
    x, w, b = c.arr("x"), c.opt("w"), c.opt("b")
    eps, mom = c["eps"], c["momentum"]
    C = x.shape[1]
    wb = (np.ones(C) if w is None else w)[None, :, None]
    bb = (np.zeros(C) if b is None else b)[None, :, None]
    # inference with given statistics
    mean, var = c.arr("mean"), c.arr("var")
    c.out("inf", (x - mean[None, :, None]) / np.sqrt(var[None, :, None] + eps) * wb + bb)
    # training: biased batch statistics over (N, HW)
    bm = x.mean(axis=(0, 2))
    bv = ((x - bm[None, :, None]) ** 2).mean(axis=(0, 2))
    n = x.shape[0] * x.shape[2]
    c.out("train", (x - bm[None, :, None]) / np.sqrt(bv[None, :, None] + eps) * wb + bb)
    c.out("bmean", bm)
    c.out("bvar", bv)
    c.out("rmean", (1 - mom) * mean + mom * bm)
    c.out("rvar", (1 - mom) * var + mom * bv * n / (n - 1))
    if torch is not None:
        rm, rv = T(mean.copy()), T(var.copy())
        got = F.batch_norm(T(x), rm, rv, None if w is None else T(w), None if b is None else T(b), True, mom, eps)
        torch_check(c, "batch_norm train", (x - bm[None, :, None]) / np.sqrt(bv[None, :, None] + eps) * wb + bb,
                    lambda: got)
        torch_check(c, "running_var", (1 - mom) * var + mom * bv * n / (n - 1), lambda: rv)


def k_layer_norm(c):
    x, w, b, eps = c.arr("x"), c.opt("w"), c.opt("b"), c["eps"]
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    ref = (x - mean) / np.sqrt(var + eps)
    if w is not None:
        ref = ref * w
    if b is not None:
        ref = ref + b
    torch_check(c, "layer_norm", ref, lambda: F.layer_norm(T(x), (x.shape[1],), None if w is None else T(w),
                                                             None if b is None else T(b), eps))
    c.out("out", ref)
    c.out("mean", mean[:, 0])
    c.out("rstd", 1 / np.sqrt(var[:, 0] + eps))
    rms = x / np.sqrt((x ** 2).mean(axis=1, keepdims=True) + eps)
    c.out("rms", rms if w is None else rms * w)


def k_group_norm(c):
    x, w, b, eps, G = c.arr("x"), c.opt("w"), c.opt("b"), c["eps"], c["groups"]
    N, C, HW = x.shape
    xg = x.reshape(N, G, -1)
    mean = xg.mean(axis=2, keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=2, keepdims=True)
    ref = ((xg - mean) / np.sqrt(var + eps)).reshape(N, C, HW)
    if w is not None:
        ref = ref * w[None, :, None]
    if b is not None:
        ref = ref + b[None, :, None]
    torch_check(c, "group_norm", ref, lambda: F.group_norm(T(x), G, None if w is None else T(w),
                                                             None if b is None else T(b), eps))
    c.out("out", ref)
    c.out("mean", mean.reshape(N, G))
    c.out("rstd", (1 / np.sqrt(var + eps)).reshape(N, G))


# ---------------------------------------------------------------- softmax, reductions
def k_reduce(c):
    x = c.arr("x").reshape(c["outer"], c["len"], c["inner"])
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    c.out("softmax", e / e.sum(axis=1, keepdims=True))
    c.out("log_softmax", x - m - np.log(e.sum(axis=1, keepdims=True)))
    c.out("sum", x.sum(axis=1))
    c.out("mean", x.mean(axis=1))
    c.out("prod", x.prod(axis=1))
    c.out("max", x.max(axis=1))
    c.out("min", x.min(axis=1))
    corr = c["corr"]
    c.out("var", ((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / max(0, x.shape[1] - corr))
    c.out("std", np.sqrt(((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / max(0, x.shape[1] - corr)))
    c.out("logsumexp", np.log(np.exp(x - m).sum(axis=1)) + m[:, 0, :])
    c.out("argmax", np.argmax(x, axis=1))
    c.out("argmin", np.argmin(x, axis=1))


# ---------------------------------------------------------------- attention, matmul
def k_sdpa(c):
    q, k, v = c.arr("q"), c.arr("k"), c.arr("v")
    mask, bias = c.opt("mask"), c.opt("bias")
    scale, causal = c["scale"], c["causal"] == 1
    B, L, E = q.shape
    S = k.shape[1]
    s = scale * np.einsum("ble,bse->bls", q, k)
    if bias is not None:
        s = s + bias
    allowed = np.ones((B, L, S), dtype=bool)
    if mask is not None:
        allowed &= mask.astype(bool)
    if causal:
        allowed &= np.tril(np.ones((L, S), dtype=bool))[None]
    s = np.where(allowed, s, -np.inf)
    m = s.max(axis=2, keepdims=True)
    full = np.isneginf(m)
    e = np.where(full, 0.0, np.exp(s - np.where(full, 0.0, m)))
    den = e.sum(axis=2, keepdims=True)
    p = np.where(full, 0.0, e / np.where(full, 1.0, den))  # fully masked row -> zeros
    c.out("out", np.einsum("bls,bsv->blv", p, v))


def k_matmul(c):
    c.out("out", np.matmul(c.arr("a"), c.arr("b")))


# ---------------------------------------------------------------- data movement
def k_data(c):
    op = c["op"]
    x = c.arr("x")
    if op == "embedding":
        c.out("out", x[c.arr("idx")])
    elif op == "permute":
        c.out("out", np.transpose(x, [int(p) for p in str(c["perm"]).split(",")]))
    elif op == "concat":
        parts = [c.arr(f"p{i}") for i in range(c["nparts"])]
        c.out("out", np.concatenate(parts, axis=c["axis"]))
    elif op == "slice":
        ax, start, step, n = c["axis"], c["start"], c["step"], c["n"]
        idx = [start + j * step for j in range(n)]
        c.out("out", np.take(x, idx, axis=ax))
    elif op == "pad":
        before = [int(p) for p in str(c["before"]).split(",")]
        after = [int(p) for p in str(c["after"]).split(",")]
        # crop for negative pads, then np.pad with the non-negative ones
        sl = tuple(slice(max(0, -b), x.shape[d] - max(0, -a)) for d, (b, a) in enumerate(zip(before, after)))
        ref = np.pad(x[sl], [(max(0, b), max(0, a)) for b, a in zip(before, after)], constant_values=c["value"])
        c.out("out", ref)
    elif op == "take":
        c.out("out", np.take(x, c.arr("idx"), axis=c["axis"]))
    elif op == "expand":
        c.out("out", np.broadcast_to(x, [int(s) for s in str(c["shape"]).split(",")]))
    else:
        raise ValueError(op)


# ---------------------------------------------------------------- losses
def reduce(l, r, denom=None):
    if r == "none":
        return l
    if r == "sum":
        return np.sum(l)
    return np.sum(l) / (l.size if denom is None else denom)


def k_loss(c):
    op, r = c["op"], c["red"]
    x = c.arr("x")
    if op in ("ce", "nll"):
        t, w = c.arr("t"), c.opt("w")
        N, C = x.shape[0], x.shape[1]
        xr = x.reshape(N, C, -1)
        tr = t.reshape(N, -1)
        ls, ign = c.get("ls", 0.0), c["ignore"]
        logp = xr - xr.max(axis=1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True)) if op == "ce" else xr
        wc = np.ones(C) if w is None else w
        keep = tr != ign
        tc = np.where(keep, tr, 0)
        picked = np.take_along_axis(logp, tc[:, None, :], 1)[:, 0, :]
        nll = np.where(keep, -wc[tc] * picked, 0.0)
        denom = np.where(keep, wc[tc], 0.0).sum()
        loss = nll
        if op == "ce" and ls > 0:
            smooth = np.where(keep, -(logp * wc[None, :, None]).sum(axis=1), 0.0)
            loss = (1 - ls) * nll + ls / C * smooth
        ref = reduce(loss.reshape(t.shape), r, denom)
        if torch is not None:
            if op == "ce":
                tv = F.cross_entropy(T(x), T(t.astype(np.int64)), None if w is None else T(w), ignore_index=ign,
                                     reduction=r, label_smoothing=ls)
            else:
                tv = F.nll_loss(T(x), T(t.astype(np.int64)), None if w is None else T(w), ignore_index=ign,
                                reduction=r)
            torch_check(c, op, ref, lambda: tv)
        c.out("out", ref)
    elif op == "ce_probs":
        p, w, ls = c.arr("t"), c.opt("w"), c.get("ls", 0.0)
        N, C = x.shape[0], x.shape[1]
        logp = x - x.max(axis=1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
        pt = p * (1 - ls) + ls / C
        wc = (np.ones(C) if w is None else w).reshape((1, C) + (1,) * (x.ndim - 2))
        loss = -(wc * pt * logp).sum(axis=1)
        ref = reduce(loss, r, x.size / C)
        if torch is not None:
            tv = F.cross_entropy(T(x), T(p), None if w is None else T(w), reduction=r, label_smoothing=ls)
            torch_check(c, op, ref, lambda: tv)
        c.out("out", ref)
    elif op == "bce":
        y, w, pw = c.arr("y"), c.opt("w"), c.opt("pw")
        # loss = -[pw * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x))], in a stable form:
        # log(sigmoid(x)) = -log1p(exp(-x)), log(1 - sigmoid(x)) = -x - log1p(exp(-x))
        lsp = np.logaddexp(0, -x)  # log(1 + exp(-x))
        pwb = 1.0 if pw is None else pw
        loss = pwb * y * lsp + (1 - y) * (x + lsp)
        if w is not None:
            loss = loss * w
        ref = reduce(loss, r)
        if torch is not None:
            tv = F.binary_cross_entropy_with_logits(T(x), T(y), None if w is None else T(w), reduction=r,
                                                    pos_weight=None if pw is None else T(pw))
            torch_check(c, op, ref, lambda: tv)
        c.out("out", ref)
    elif op in ("mse", "l1", "huber", "smooth_l1"):
        y = c.arr("y")
        d = np.abs(x - y)
        if op == "mse":
            loss = d ** 2
        elif op == "l1":
            loss = d
        elif op == "huber":
            dl = c["delta"]
            loss = np.where(d < dl, 0.5 * d ** 2, dl * (d - 0.5 * dl))
        else:
            b = c["delta"]
            loss = np.where(d < b, 0.5 * d ** 2 / b, d - 0.5 * b)
        c.out("out", reduce(loss, r))
    elif op == "kl":
        y, lt = c.arr("y"), c["log_target"] == 1
        loss = np.exp(y) * (y - x) if lt else np.where(y > 0, y * np.log(np.where(y > 0, y, 1)), 0) - y * x
        ref = np.sum(loss) / x.shape[0] if r == "batchmean" else reduce(loss, r)
        if torch is not None:
            torch_check(c, op, ref, lambda: F.kl_div(T(x), T(y), reduction=r, log_target=lt))
        c.out("out", ref)
    else:
        raise ValueError(op)


# ---------------------------------------------------------------- scalar functions
def k_scalar(c):
    x = c.arr("x")
    erf = np.vectorize(math.erf)
    sig = np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))
    sp = lambda z, beta=1.0, th=20.0: np.where(z * beta > th, z, np.log1p(np.exp(np.minimum(z * beta, th))) / beta)
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    relu6 = lambda z: np.clip(z, 0, 6)
    outs = {
        "relu": np.maximum(x, 0),
        "sigmoid": sig,
        "gelu": 0.5 * x * (1 + erf(x / math.sqrt(2))),
        "gelu_tanh": 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
        "silu": x * sig,
        "softplus": sp(x),
        "softplus2": sp(x, 2.0, 3.0),
        "elu": np.where(x > 0, x, 0.7 * np.expm1(x)),
        "selu": scale * np.where(x > 0, x, alpha * np.expm1(x)),
        "leaky_relu": np.where(x > 0, x, 0.2 * x),
        "hardtanh": np.clip(x, -1, 1),
        "hardsigmoid": relu6(x + 3) / 6,
        "hardswish": x * relu6(x + 3) / 6,
        "mish": x * np.tanh(np.log1p(np.exp(x))),
        "rsqrt": 1 / np.sqrt(np.abs(x) + 0.5),
        "sign": np.sign(x),
        "exp": np.exp(x),
        "gelu_grad": 0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),
        "gelu_tanh_grad": (lambda t: 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x))(
            np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    }
    if torch is not None:
        tx = T(x)
        for name, fn in {"gelu": F.gelu, "gelu_tanh": lambda z: F.gelu(z, approximate="tanh"), "silu": F.silu,
                         "softplus": F.softplus, "softplus2": lambda z: F.softplus(z, 2.0, 3.0),
                         "elu": lambda z: F.elu(z, 0.7), "selu": F.selu, "mish": F.mish,
                         "hardsigmoid": F.hardsigmoid, "hardswish": F.hardswish, "sigmoid": torch.sigmoid}.items():
            torch_check(c, name, outs[name], lambda: fn(tx))
    for name, v in outs.items():
        c.out(name, v)


KERNELS = {name[2:]: fn for name, fn in globals().items() if name.startswith("k_")}

if __name__ == "__main__":
    kernel, d = sys.argv[1], sys.argv[2]
    with open(os.path.join(d, "cases.txt")) as f:
        for line in f:
            if line.strip():
                KERNELS[kernel](Case(d, line))
    print("ok")
