#!/usr/bin/env python3
"""End to end: the gradients of every sample model's parameters under a
cross-entropy loss, against PyTorch autograd on the same weights and inputs.

Each sample is imported into a small training model that adds the loss
(`CrossEntropy` of the logits against integer labels, mean over the batch), so
the model's one output is the scalar loss and `mithril run --grad` seeds it with
1. The references are the PyTorch modules of the forward tests
(samples_cnn.py, samples_more.py, samples_gpt2.py), run in float64.

Tolerance: per parameter, the norm-wise relative error against float64 PyTorch,
||ours - torch64|| / max(||torch64||, 1e-3), must be below 1e-4. The floor 1e-3
covers gradients that are exactly zero in theory (a conv bias before a
train-mode BatchNorm), where any float32 run gives rounding noise. The loss
itself must agree to 1e-5 relative.

Max pooling's gradient is discontinuous where two values of a window tie: it
goes to whichever one is larger. ResNet-18's stem pools 400k windows, and a
random input gives a few whose two largest values differ by less than float32
resolves (one seen at 4e-8 relative); float32 and float64 then route that
window's gradient to different pixels, which moves conv1.weight's gradient by
1e-4 while every other gradient agrees to 1e-6 (measured: with the reference
routed the float32 way, conv1.weight agrees to 5.5e-7). That is the input,
not the arithmetic, so the ResNet-18 input is drawn until no stem window's
two largest values are within 1e-6 (relative) of each other.
Samples: MLP, LeNet, tiny_resnet (BatchNorm in eval and in train mode),
ResNet-18 (batch 2), GPT-2 in a small configuration (tied embedding), and
two_tower (two outputs, both output gradients given, no loss).

Usage: grad_samples.py MITHRIL ROOT
"""
import os
import sys
import tempfile

import numpy as np
import torch
from torch import nn

from harness import Runner, torch_weights
import samples_cnn
import samples_gpt2
import samples_more

REL = 1e-4


def wrapper(root, sample, model_name, in_name, in_shape, out_name, classes, labels_shape, flatten=False):
    """A model file that imports a sample and adds the loss."""
    lines = [f"name: {sample}_loss", f"import: {os.path.join(root, 'samples', sample + '.yaml')}", "inputs:",
             f"  {in_name}: {{shape: {list(in_shape[0])}, dtype: {in_shape[1]}}}",
             f"  labels: {{shape: {list(labels_shape)}, dtype: int64}}", "outputs: [loss]", "layers:",
             f"  - {{op: {model_name}, name: net, {in_name}: {in_name}, {out_name}: logits}}"]
    if flatten:  # [N, T, V] logits against [N, T] labels: one row per token
        lines += [f"  - {{op: Reshape, args: {{shape: [-1, {classes}]}}, input: logits, output: rows}}",
                  "  - {op: Reshape, args: {shape: [-1]}, input: labels, output: targets}",
                  "  - {op: CrossEntropy, input: rows, target: targets, output: loss}"]
    else:
        lines.append("  - {op: CrossEntropy, input: logits, target: labels, output: loss}")
    return "\n".join(lines) + "\n"


def rel(a, ref):
    return np.linalg.norm(a.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-3)


def compare(r, name, grads, loss, net_params, ref_loss):
    """grads: ours ({"net.<param>": array}); net_params: {param: float64 torch tensor with .grad}."""
    if grads is None:
        return
    if abs(float(loss) - ref_loss) > 1e-5 * max(1.0, abs(ref_loss)):
        r.failures.append(f"{name}: loss {float(loss)} vs torch {ref_loss}")
    else:
        print(f"ok   {name}: loss {float(loss):.6f}")
    missing = [k for k in net_params if "net." + k not in grads]
    if missing:
        r.failures.append(f"{name}: no gradient for {missing}")
    worst = (0.0, "")
    for k, p in net_params.items():
        g = grads.get("net." + k)
        if g is None:
            continue
        ref = p.grad.numpy()
        if g.shape != ref.shape:
            r.failures.append(f"{name}: d/d{k} has shape {g.shape}, torch {ref.shape}")
            continue
        err = rel(g, ref)
        worst = max(worst, (err, k))
        if not err < REL:
            r.failures.append(f"{name}: d/d{k}: relative error {err:.3g} (limit {REL:.3g})")
    print(f"     {name}: {len(net_params)} parameter gradients, worst relative error {worst[0]:.2g} ({worst[1]})")


def stem_pool_near_ties(net, x, gap=1e-6):
    """Windows of ResNet-18's stem max pooling (3x3, stride 2, padding 1, after conv1, bn1 and relu;
    eval mode, float64) whose two largest values are positive and within `gap` relative."""
    with torch.no_grad():
        a = torch.relu(nn.functional.batch_norm(
            nn.functional.conv2d(torch.from_numpy(x).double(), net.conv1.weight.double(), None, 2, 3),
            net.bn1.running_mean.double(), net.bn1.running_var.double(), net.bn1.weight.double(),
            net.bn1.bias.double(), False, 0.0, net.bn1.eps))
        p = nn.functional.pad(a, (1, 1, 1, 1), value=-1.0)
        windows = p.unfold(2, 3, 2).unfold(3, 3, 2).reshape(*a.shape[:2], -1, 9)
        top = windows.topk(2, dim=-1).values
        return int(((top[..., 0] > 0) & (top[..., 0] - top[..., 1] < gap * top[..., 0])).sum())


def torch_case(r, root, name, net, sample, model_name, in_name, x, out_name, classes, mode="eval", extra=()):
    net = net.double()
    net.train(mode == "train")
    gen = np.random.default_rng(11)
    labels = gen.integers(0, classes, (x.shape[0],)).astype(np.int64)
    weights = torch_weights(net, "net.")
    text = wrapper(root, sample, model_name, in_name, (x.shape, "float32"), out_name, classes, labels.shape)
    outs, grads = r.run_grad(text, {in_name: x, "labels": labels}, weights, extra=["--mode", mode, *extra], name=name)
    # The reference runs on the float32 weights, in float64.
    net.load_state_dict({k[4:]: torch.from_numpy(v.astype(np.float64)) for k, v in weights.items()}, strict=False)
    loss = nn.functional.cross_entropy(net(torch.from_numpy(x.astype(np.float64))), torch.from_numpy(labels))
    loss.backward()
    if outs is not None:
        compare(r, name, grads, outs["loss"], dict(net.named_parameters()), loss.item())


def main():
    mithril, root = sys.argv[1], os.path.abspath(sys.argv[2])
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(mithril, tmp)

        mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        torch_case(r, root, "mlp", mlp, "mlp", "mlp", "input", rng.standard_normal((4, 784)).astype(np.float32), "output", 10)

        torch_case(r, root, "lenet", samples_cnn.LeNet(), "lenet", "lenet", "input",
                   rng.standard_normal((3, 1, 28, 28)).astype(np.float32), "output", 10)

        for mode in ("eval", "train"):
            net = samples_cnn.TinyResNet()
            samples_cnn.randomize_batchnorm(net, gen)
            torch_case(r, root, f"tiny_resnet_{mode}", net, "tiny_resnet", "tiny_resnet", "image",
                       rng.standard_normal((2, 3, 32, 32)).astype(np.float32), "logits", 10, mode=mode)

        net = samples_more.ResNet18()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
        for draw in range(1, 51):
            x = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
            if stem_pool_near_ties(net, x) == 0:
                break
        print(f"     resnet18: input draw {draw} has no near tie in the stem's max pooling")
        torch_case(r, root, "resnet18", net, "resnet18", "resnet18", "input", x, "output", 1000)

        # GPT-2, small configuration, tied token embedding and head.
        g = samples_gpt2
        f = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)
        w = {"wte": f(g.V, g.C), "wpe.weight": f(g.CTX, g.C), "ln_f.weight": 1 + f(g.C), "ln_f.bias": f(g.C)}
        for i in range(g.L):
            p = f"h.{i}."
            w.update({p + "ln_1.weight": 1 + f(g.C), p + "ln_1.bias": f(g.C), p + "attn.qkv.weight": f(3 * g.C, g.C),
                      p + "attn.qkv.bias": f(3 * g.C), p + "attn.proj.weight": f(g.C, g.C), p + "attn.proj.bias": f(g.C),
                      p + "ln_2.weight": 1 + f(g.C), p + "ln_2.bias": f(g.C), p + "mlp.fc.weight": f(4 * g.C, g.C),
                      p + "mlp.fc.bias": f(4 * g.C), p + "mlp.proj.weight": f(g.C, 4 * g.C), p + "mlp.proj.bias": f(g.C)})
        tokens = rng.integers(0, g.V, (g.N, g.T)).astype(np.int64)
        labels = rng.integers(0, g.V, (g.N, g.T)).astype(np.int64)
        text = wrapper(root, "gpt2", "gpt2", "tokens", (tokens.shape, "int64"), "logits", g.V, labels.shape, flatten=True)
        args = ["--arg", f"vocab={g.V}", "--arg", f"dim={g.C}", "--arg", f"heads={g.H}", "--arg", f"layers={g.L}",
                "--arg", f"context={g.CTX}"]
        # --arg sets the main model's arguments; the sample is imported, so its defaults are replaced
        # by a wrapper-level override of the imported model's args instead.
        text = text.replace("{op: gpt2, name: net,", f"{{op: gpt2, name: net, args: {{vocab: {g.V}, dim: {g.C}, heads: {g.H}, "
                                                     f"layers: {g.L}, context: {g.CTX}}},")
        outs, grads = r.run_grad(text, {"tokens": tokens, "labels": labels}, {"net." + k: v for k, v in w.items()}, name="gpt2")
        t = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in w.items()}
        loss = nn.functional.cross_entropy(g.reference_torch(t, tokens).reshape(-1, g.V), torch.from_numpy(labels).reshape(-1))
        loss.backward()
        if outs is not None:
            compare(r, "gpt2", grads, outs["loss"], t, loss.item())
        del args

        # two_tower: two outputs, both output gradients given.
        f = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)
        w = {"query_proj.weight": f(64, 32), "query_proj.bias": f(64), "item_proj.weight": f(64, 48),
             "item_proj.bias": f(64), "mix.weight": f(64, 64), "mix.bias": f(64), "head.weight": f(1, 64), "head.bias": f(1)}
        q, i = f(3, 32), f(3, 48)
        ds, de = f(3, 1), f(3, 64)
        outs, grads = r.run_grad(open(f"{root}/samples/two_tower.yaml").read(), {"query": q, "item": i}, w,
                                 grad_inputs=["query", "item"], output_grads={"score": ds, "embedding": de}, name="two_tower")
        t = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in w.items()}
        qt, it = torch.tensor(q.astype(np.float64), requires_grad=True), torch.tensor(i.astype(np.float64), requires_grad=True)
        joint = qt @ t["query_proj.weight"].T + t["query_proj.bias"] + it @ t["item_proj.weight"].T + t["item_proj.bias"]
        emb = joint + torch.relu(joint) @ t["mix.weight"].T + t["mix.bias"]
        score = emb @ t["head.weight"].T + t["head.bias"]
        ((score * torch.from_numpy(ds.astype(np.float64))).sum() + (emb * torch.from_numpy(de.astype(np.float64))).sum()).backward()
        if grads is not None:
            t.update({"query": qt, "item": it})
            for k, p in t.items():
                r.check(f"two_tower d/d{k} vs torch", grads.get(k), p.grad.numpy(), 1e-4, 1e-5)
        return r.finish()


if __name__ == "__main__":
    sys.exit(main())
