#!/usr/bin/env python3
"""End to end: the CPU code generator's neural-network ops against NumPy.

One float32 model with many layers and outputs (one generated project to
build) covers Conv1d, Conv2d, ConvTranspose2d, MaxPool1d, MaxPool2d, AvgPool2d,
GlobalAvgPool2d, BatchNorm2d, LayerNorm, GroupNorm, Softmax, LogSoftmax,
Embedding and ScaledDotProductAttention in several configurations; a smaller
float64 model repeats the float ops. Inference mode: BatchNorm uses its running
statistics.

The references below are written from the PyTorch definitions (torch.nn docs
and the ATen CPU kernels' window rules for pooling), in float64 NumPy, never
from Mithril's code. Parameters use PyTorch's names and layouts.

Usage: ops_nn.py MITHRIL ROOT
"""
import math
import sys
import tempfile

import numpy as np

from harness import Runner, model_yaml

RTOL32, ATOL32 = 1e-4, 1e-5
RTOL64, ATOL64 = 1e-9, 1e-11


# ---- references (float64) ---------------------------------------------------

def pair(v, n=2):
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


def conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv2d(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d: out[n, o] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, g*Cg + c, oh*s + i*d, ow*s + j*d]."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    OH, OW = conv_out(H, KH, sh, ph, dh), conv_out(W, KW, sw, pw, dw)
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    out = np.zeros((N, K, OH, OW))
    Kg = K // groups
    for g in range(groups):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Kg:(g + 1) * Kg].astype(np.float64)
        for i in range(KH):
            for j in range(KW):
                patch = xg[:, :, i * dh:i * dh + sh * (OH - 1) + 1:sh, j * dw:j * dw + sw * (OW - 1) + 1:sw]
                out[:, g * Kg:(g + 1) * Kg] += np.einsum("nchw,oc->nohw", patch, wg[:, :, i, j])
    if b is not None:
        out += b.reshape(1, K, 1, 1)
    return out


def conv1d(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    return conv2d(x[:, :, None, :], w[:, :, None, :], b, (1, stride), (0, padding), (1, dilation), groups)[:, :, 0, :]


def conv_transpose2d(x, w, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose2d: each input pixel (ih, iw) scatters x * w[c, o, i, j]
    to output (ih*s - p + i*d, iw*s - p + j*d); weight [C, K/groups, KH, KW]."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    N, C, H, W = x.shape
    _, Kg, KH, KW = w.shape
    K, Cg = Kg * groups, C // groups
    OH = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oph + 1
    OW = (W - 1) * sw - 2 * pw + dw * (KW - 1) + opw + 1
    full = np.zeros((N, K, (H - 1) * sh + dh * (KH - 1) + 1 + oph + ph, (W - 1) * sw + dw * (KW - 1) + 1 + opw + pw))
    for g in range(groups):
        xg = x[:, g * Cg:(g + 1) * Cg].astype(np.float64)
        wg = w[g * Cg:(g + 1) * Cg].astype(np.float64)
        for i in range(KH):
            for j in range(KW):
                full[:, g * Kg:(g + 1) * Kg, i * dh:i * dh + sh * (H - 1) + 1:sh, j * dw:j * dw + sw * (W - 1) + 1:sw] += \
                    np.einsum("nchw,co->nohw", xg, wg[:, :, i, j])
    out = full[:, :, ph:ph + OH, pw:pw + OW]
    if b is not None:
        out = out + b.reshape(1, K, 1, 1)
    return out


def pool_out(size, k, s, p, d, ceil):
    """ATen pooling_output_shape."""
    e = size + 2 * p - d * (k - 1) - 1
    o = (e + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= size + p:
        o -= 1
    return o


def max_pool2d(x, k, s=None, p=0, d=1, ceil=False):
    """torch max_pool2d: max over the window positions oh*s - p + i*d inside the input (padding never wins)."""
    (kh, kw) = pair(k)
    (sh, sw) = pair(s if s is not None else k)
    (ph, pw), (dh, dw) = pair(p), pair(d)
    N, C, H, W = x.shape
    OH, OW = pool_out(H, kh, sh, ph, dh, ceil), pool_out(W, kw, sw, pw, dw, ceil)
    out = np.empty((N, C, OH, OW))
    for oh in range(OH):
        hs = [oh * sh - ph + i * dh for i in range(kh) if 0 <= oh * sh - ph + i * dh < H]
        for ow in range(OW):
            ws = [ow * sw - pw + j * dw for j in range(kw) if 0 <= ow * sw - pw + j * dw < W]
            out[:, :, oh, ow] = x[:, :, hs][:, :, :, ws].max(axis=(2, 3))
    return out


def max_pool1d(x, k, s=None, p=0, d=1, ceil=False):
    return max_pool2d(x[:, :, None, :], (1, k), (1, s if s is not None else k), (0, p), (1, d), ceil)[:, :, 0, :]


def avg_pool2d(x, k, s=None, p=0, ceil=False, count_include_pad=True):
    """ATen avg_pool2d (CPU): the window [start, start+k) is clipped to the padded input, whose size is the
    divisor with count_include_pad, then to the input, whose size is the divisor without."""
    (kh, kw) = pair(k)
    (sh, sw) = pair(s if s is not None else k)
    (ph, pw) = pair(p)
    N, C, H, W = x.shape
    OH, OW = pool_out(H, kh, sh, ph, 1, ceil), pool_out(W, kw, sw, pw, 1, ceil)
    out = np.empty((N, C, OH, OW))
    for oh in range(OH):
        h0 = oh * sh - ph
        h1 = min(h0 + kh, H + ph)
        hp = h1 - h0
        h0, h1 = max(h0, 0), min(h1, H)
        for ow in range(OW):
            w0 = ow * sw - pw
            w1 = min(w0 + kw, W + pw)
            wp = w1 - w0
            w0, w1 = max(w0, 0), min(w1, W)
            div = hp * wp if count_include_pad else (h1 - h0) * (w1 - w0)
            out[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / div
    return out


def batch_norm(x, mean, var, w, b, eps=1e-5):
    sh = (1, -1, 1, 1)
    y = (x - mean.reshape(sh)) / np.sqrt(var.reshape(sh).astype(np.float64) + eps)
    if w is not None:
        y = y * w.reshape(sh) + b.reshape(sh)
    return y


def layer_norm(x, n, w, b, eps=1e-5):
    axes = tuple(range(x.ndim - n, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)  # biased, as torch
    y = (x - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def group_norm(x, groups, w, b, eps=1e-5):
    N, C = x.shape[:2]
    xg = x.reshape(N, groups, -1)
    mu = xg.mean(axis=2, keepdims=True)
    var = ((xg - mu) ** 2).mean(axis=2, keepdims=True)
    y = ((xg - mu) / np.sqrt(var + eps)).reshape(x.shape)
    if w is not None:
        sh = (1, C) + (1,) * (x.ndim - 2)
        y = y * w.reshape(sh) + b.reshape(sh)
    return y


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def sdpa(q, k, v, mask=None, causal=False, scale=None):
    """torch.nn.functional.scaled_dot_product_attention (dropout 0): bool mask True = attend, float mask added."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q.astype(np.float64) @ np.swapaxes(k, -1, -2)) * scale
    L, S = s.shape[-2:]
    if causal:
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == np.bool_ else s + mask
    return softmax(s, -1) @ v


# ---- the models -------------------------------------------------------------

class Model:
    """Collects layers, parameters and references."""

    def __init__(self, rng, dtype):
        self.rng, self.dtype = rng, dtype
        self.layers, self.weights, self.refs = [], {}, {}

    def param(self, name, shape, lo=-0.5, hi=0.5):
        a = self.rng.uniform(lo, hi, shape).astype(self.dtype)
        self.weights[name] = a
        return a

    def layer(self, op, name, ports, args=None, ref=None):
        parts = [f"op: {op}", f"name: {name}"] + [f"{p}: {v}" for p, v in ports.items()] + [f"output: {name}_out"]
        if args:
            parts.append("args: {" + ", ".join(f"{k}: {v}" for k, v in args.items()) + "}")
        self.layers.append("{" + ", ".join(parts) + "}")
        self.refs[f"{name}_out"] = ref


def yaml_val(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def add_float_ops(m, x, s, t, q, k, v, full=True):
    """Layers over the float inputs x [N, C, H, W], s [N, C, L], t [A, B, D] and q/k/v; `full` adds more configurations."""
    C = x.shape[1]

    def conv(name, out_ch, ks, bias=True, **kw):
        groups = kw.get("groups", 1)
        kk = pair(ks)
        w = m.param(f"{name}.weight", (out_ch, C // groups, *kk))
        b = m.param(f"{name}.bias", (out_ch,)) if bias else None
        args = {"out_channels": out_ch, "kernel_size": ks, "bias": yaml_val(bias), **kw}
        m.layer("Conv2d", name, {"input": "x"}, args, conv2d(x, w, b, **kw))
        return m.refs[f"{name}_out"]

    c1 = conv("conv_a", 6, 3, padding=1)
    conv("conv_b", 8, [3, 2], bias=False, stride=[2, 1], padding=[1, 0], dilation=[1, 2], groups=2)
    if full:
        conv("conv_pw", 5, 1)                                    # pointwise: no im2col scratch
        conv("conv_dw", 8, 3, stride=2, padding=2, dilation=2, groups=C)  # depthwise

    Cs = s.shape[1]
    for name, out_ch, ks, kw in [("conv1d_a", 4, 3, dict(stride=2, padding=1, dilation=2)),
                                 ("conv1d_b", 6, 1, dict(groups=3))][:2 if full else 1]:
        w = m.param(f"{name}.weight", (out_ch, Cs // kw.get("groups", 1), ks))
        b = m.param(f"{name}.bias", (out_ch,))
        m.layer("Conv1d", name, {"input": "s"}, {"out_channels": out_ch, "kernel_size": ks, **kw}, conv1d(s, w, b, **kw))

    for name, out_ch, ks, bias, kw in [
            ("convt_a", 3, 3, True, dict(stride=2, padding=1, output_padding=1)),
            ("convt_b", 6, [2, 3], False, dict(stride=[1, 2], output_padding=[1, 1], dilation=2, groups=2))][:2 if full else 1]:
        groups = kw.get("groups", 1)
        w = m.param(f"{name}.weight", (C, out_ch // groups, *pair(ks)))
        b = m.param(f"{name}.bias", (out_ch,)) if bias else None
        m.layer("ConvTranspose2d", name, {"input": "x"},
                {"out_channels": out_ch, "kernel_size": ks, "bias": yaml_val(bias), **kw}, conv_transpose2d(x, w, b, **kw))

    m.layer("MaxPool2d", "maxpool_a", {"input": "x"}, {"kernel_size": 2}, max_pool2d(x, 2))
    m.layer("MaxPool2d", "maxpool_b", {"input": "x"}, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": "true"},
            max_pool2d(x, 3, 2, 1, ceil=True))
    if full:
        m.layer("MaxPool2d", "maxpool_c", {"input": "x"}, {"kernel_size": [2, 3], "stride": [1, 2], "dilation": [2, 1]},
                max_pool2d(x, (2, 3), (1, 2), 0, (2, 1)))
        m.layer("MaxPool1d", "maxpool1d_a", {"input": "s"}, {"kernel_size": 3, "stride": 2, "padding": 1},
                max_pool1d(s, 3, 2, 1))
        m.layer("MaxPool1d", "maxpool1d_b", {"input": "s"}, {"kernel_size": 3, "dilation": 2, "ceil_mode": "true"},
                max_pool1d(s, 3, None, 0, 2, ceil=True))
    m.layer("AvgPool2d", "avgpool_a", {"input": "x"}, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": "true"},
            avg_pool2d(x, 3, 2, 1, ceil=True))
    m.layer("AvgPool2d", "avgpool_b", {"input": "x"},
            {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": "true", "count_include_pad": "false"},
            avg_pool2d(x, 3, 2, 1, ceil=True, count_include_pad=False))
    if full:
        m.layer("AvgPool2d", "avgpool_c", {"input": "x"}, {"kernel_size": [2, 3], "stride": 2, "ceil_mode": "true"},
                avg_pool2d(x, (2, 3), 2, 0, ceil=True))
    m.layer("GlobalAvgPool2d", "gap", {"input": "x"}, None, x.mean(axis=(2, 3), keepdims=True))

    # BatchNorm2d on conv_a's output (affine) and on x (not affine); positive running variances.
    def bn(name, src, ref_in, affine):
        ch = ref_in.shape[1]
        mean = m.param(f"{name}.running_mean", (ch,))
        var = m.param(f"{name}.running_var", (ch,), 0.5, 2.0)
        w = m.param(f"{name}.weight", (ch,)) if affine else None
        b = m.param(f"{name}.bias", (ch,)) if affine else None
        args = {"affine": yaml_val(affine)}
        if affine:
            args["eps"] = 0.001
        m.layer("BatchNorm2d", name, {"input": src}, args, batch_norm(ref_in, mean, var, w, b, 0.001 if affine else 1e-5))

    bn("bn_a", "conv_a_out", c1, True)
    bn("bn_b", "x", x, False)

    # LayerNorm over t's last dim, over its last two, without affine, without bias.
    D = t.shape[-1]
    for name, ns, affine, bias in [("ln_a", None, True, True), ("ln_b", [t.shape[1], D], True, True),
                                   ("ln_c", None, False, True), ("ln_d", None, True, False)][:4 if full else 2]:
        shape = (D,) if ns is None else tuple(ns)
        w = m.param(f"{name}.weight", shape) if affine else None
        b = m.param(f"{name}.bias", shape) if affine and bias else None
        args = {"elementwise_affine": yaml_val(affine), "bias": yaml_val(bias)}
        if ns is not None:
            args["normalized_shape"] = ns
        m.layer("LayerNorm", name, {"input": "t"}, args, layer_norm(t, len(shape), w, b))

    for name, src, ref_in, groups, affine in [("gn_a", "x", x, 2, True), ("gn_b", "conv_a_out", c1, 3, False),
                                              ("gn_c", "s", s, 3, True)][:3 if full else 1]:
        ch = ref_in.shape[1]
        w = m.param(f"{name}.weight", (ch,)) if affine else None
        b = m.param(f"{name}.bias", (ch,)) if affine else None
        m.layer("GroupNorm", name, {"input": src}, {"num_groups": groups, "affine": yaml_val(affine)},
                group_norm(ref_in, groups, w, b))

    for axis in ([-1, 1, 0] if full else [-1, 1]):
        tag = str(axis).replace("-", "m")
        m.layer("Softmax", f"softmax_{tag}", {"input": "t"}, {"axis": axis}, softmax(t, axis))
        m.layer("LogSoftmax", f"logsoftmax_{tag}", {"input": "t"}, {"axis": axis}, log_softmax(t, axis))

    # Attention: q [2, 3, L, E], k [2, 3, S, E], v [2, 3, S, Ev].
    m.layer("ScaledDotProductAttention", "attn_a", {"query": "q", "key": "k", "value": "v"}, None, sdpa(q, k, v))
    m.layer("ScaledDotProductAttention", "attn_causal", {"query": "q", "key": "k", "value": "v"},
            {"causal": "true", "scale": 0.3}, sdpa(q, k, v, causal=True, scale=0.3))


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    del root
    rng = np.random.default_rng(2024)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)

        # ---- float32: everything ----
        f32 = np.float32
        x = rng.standard_normal((2, 4, 10, 9)).astype(f32)
        s = rng.standard_normal((2, 6, 20)).astype(f32)
        t = rng.standard_normal((4, 3, 10)).astype(f32)
        q = rng.standard_normal((2, 3, 5, 8)).astype(f32)
        k = rng.standard_normal((2, 3, 7, 8)).astype(f32)
        v = rng.standard_normal((2, 3, 7, 6)).astype(f32)
        mask = rng.random((2, 3, 5, 7)) < 0.6
        mask[..., 0] = True  # no fully masked rows
        mask_b = rng.random((5, 7)) < 0.5  # broadcast over the batch dims
        mask_b[:, 2] = True
        fmask = rng.standard_normal((3, 1, 7)).astype(f32)  # additive, broadcast
        ids = rng.integers(0, 11, (2, 5)).astype(np.int64)
        ids32 = np.array([3, 0, 6, 3], np.int32)
        inputs = dict(x=x, s=s, t=t, q=q, k=k, v=v, mask=mask, mask_b=mask_b, fmask=fmask, ids=ids, ids32=ids32)

        m = Model(rng, f32)
        add_float_ops(m, x, s, t, q, k, v)
        m.layer("ScaledDotProductAttention", "attn_mask", {"query": "q", "key": "k", "value": "v", "mask": "mask"}, None,
                sdpa(q, k, v, mask))
        m.layer("ScaledDotProductAttention", "attn_mask_b", {"query": "q", "key": "k", "value": "v", "mask": "mask_b"},
                None, sdpa(q, k, v, mask_b))
        m.layer("ScaledDotProductAttention", "attn_fmask", {"query": "q", "key": "k", "value": "v", "mask": "fmask"},
                None, sdpa(q, k, v, fmask))
        m.layer("ScaledDotProductAttention", "attn_3d", {"query": "t", "key": "t", "value": "t"}, None, sdpa(t, t, t))
        emb = rng.standard_normal((11, 4)).astype(f32)
        m.weights["emb_a.weight"] = emb
        m.layer("Embedding", "emb_a", {"input": "ids"}, {"num_embeddings": 11, "dimension": 4}, emb[ids])
        emb2 = rng.standard_normal((7, 3)).astype(f32)
        m.weights["emb_b.weight"] = emb2
        m.layer("Embedding", "emb_b", {"input": "ids32"}, {"num_embeddings": 7, "dimension": 3, "padding_idx": 0}, emb2[ids32])

        text = model_yaml("ops_nn_f32", inputs, m.layers, list(m.refs))
        got = r.run(text, inputs, m.weights, name="ops_nn_f32")
        worst = 0.0
        for name, ref in m.refs.items():
            g = None if got is None else got.get(name)
            if g is not None and g.shape == ref.shape:
                worst = max(worst, float(np.abs(g.astype(np.float64) - ref).max()) if g.size else 0.0)
                if g.dtype != np.float32:
                    r.failures.append(f"float32 {name}: dtype {g.dtype}")
            r.check(f"float32 {name}", g, ref, RTOL32, ATOL32)
        print(f"float32: {len(m.refs)} outputs, max abs error {worst:.3g}")

        # ---- float64: the float ops again, fewer configurations ----
        f64 = np.float64
        x, s, t = (a.astype(f64) for a in (x, s, t))
        q, k, v = (a.astype(f64) for a in (q, k, v))
        inputs = dict(x=x, s=s, t=t, q=q, k=k, v=v)
        m = Model(rng, f64)
        add_float_ops(m, x, s, t, q, k, v, full=False)
        text = model_yaml("ops_nn_f64", inputs, m.layers, list(m.refs))
        got = r.run(text, inputs, m.weights, name="ops_nn_f64")
        worst = 0.0
        for name, ref in m.refs.items():
            g = None if got is None else got.get(name)
            if g is not None and g.shape == ref.shape:
                worst = max(worst, float(np.abs(g - ref).max()) if g.size else 0.0)
                if g.dtype != np.float64:
                    r.failures.append(f"float64 {name}: dtype {g.dtype}")
            r.check(f"float64 {name}", g, ref, RTOL64, ATOL64)
        print(f"float64: {len(m.refs)} outputs, max abs error {worst:.3g}")
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
