#!/usr/bin/env python3
"""End to end: samples/gpt2.yaml in a small configuration (2 blocks, width 32,
4 heads, vocabulary 65, T = 16, batch 2) against a reference written here in
PyTorch (Debian's python3-torch 1.13) directly from GPT-2's definition:
token + position embeddings, per block x + proj(attn(ln_1(x))) with causal
softmax(q k^T / sqrt(d)) v over 4 heads, then x + fc2(gelu_tanh(fc1(ln_2(x)))),
a final layer norm and the head tied to the token embedding. The weights use
Mithril's names; the reference reads them from the same dict.
Tolerance: float32, rtol 1e-4, atol 1e-4.
"""
import sys
import tempfile

import numpy as np

from harness import Runner

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("samples_gpt2.py needs python3-torch for its reference (tools/setup.sh installs it)")

V, C, H, L, CTX, N, T = 65, 32, 4, 2, 64, 2, 16


def reference(w, tokens):
    return reference_torch({k: torch.from_numpy(v).double() for k, v in w.items()}, tokens).numpy()


def reference_torch(t, tokens):
    """GPT-2 from its definition on torch tensors `t` (named as the sample's parameters); differentiable."""
    x = t["wte"][torch.from_numpy(tokens)] + t["wpe.weight"][:T]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for i in range(L):
        p = f"h.{i}."
        a = F.layer_norm(x, (C,), t[p + "ln_1.weight"], t[p + "ln_1.bias"], 1e-5)
        qkv = a @ t[p + "attn.qkv.weight"].T + t[p + "attn.qkv.bias"]
        q, k, v = qkv.split(C, dim=-1)
        heads = lambda z: z.view(N, T, H, C // H).transpose(1, 2)
        q, k, v = heads(q), heads(k), heads(v)
        s = (q @ k.transpose(-1, -2)) / np.sqrt(C // H)
        s = s.masked_fill(mask, float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(N, T, C)
        x = x + y @ t[p + "attn.proj.weight"].T + t[p + "attn.proj.bias"]
        m = F.layer_norm(x, (C,), t[p + "ln_2.weight"], t[p + "ln_2.bias"], 1e-5)
        m = F.gelu(m @ t[p + "mlp.fc.weight"].T + t[p + "mlp.fc.bias"], approximate="tanh")
        x = x + m @ t[p + "mlp.proj.weight"].T + t[p + "mlp.proj.bias"]
    x = F.layer_norm(x, (C,), t["ln_f.weight"], t["ln_f.bias"], 1e-5)
    return x @ t["wte"].T


def main():
    mithril, root = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(3)
    f = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)
    w = {"wte": f(V, C), "wpe.weight": f(CTX, C), "ln_f.weight": 1 + f(C), "ln_f.bias": f(C)}
    for i in range(L):
        p = f"h.{i}."
        w.update({p + "ln_1.weight": 1 + f(C), p + "ln_1.bias": f(C), p + "attn.qkv.weight": f(3 * C, C),
                  p + "attn.qkv.bias": f(3 * C), p + "attn.proj.weight": f(C, C), p + "attn.proj.bias": f(C),
                  p + "ln_2.weight": 1 + f(C), p + "ln_2.bias": f(C), p + "mlp.fc.weight": f(4 * C, C),
                  p + "mlp.fc.bias": f(4 * C), p + "mlp.proj.weight": f(C, 4 * C), p + "mlp.proj.bias": f(C)})
    tokens = rng.integers(0, V, (N, T)).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)
        text = open(f"{root}/samples/gpt2.yaml").read()
        out = r.run(text, {"tokens": tokens}, w, name="gpt2",
                    extra=["--arg", f"vocab={V}", "--arg", f"dim={C}", "--arg", f"heads={H}", "--arg", f"layers={L}",
                           "--arg", f"context={CTX}"])
        if out is not None:
            r.check("gpt2 (small configuration) logits", out["logits"], reference(w, tokens), 1e-4, 1e-4)
        sys.exit(r.finish())


if __name__ == "__main__":
    main()
