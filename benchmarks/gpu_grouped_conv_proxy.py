"""GPU proxy for the fused-vs-branched training question, in PyTorch (cuDNN).

Why a proxy: the lent GPU machines have PyTorch but no TensorFlow, and cannot
download it (no network; the TF wheel is ~600 MB, far above what a run may carry).
This script trains the same NiN tentacle body (stem 192 -> per tentacle 160, 96,
pool, 192 5x5, 192, 192, pool, 192 3x3, 192 -> GAP) in both forms:

  branched  n separate tentacles, outputs concatenated;
  fused     first tentacle conv with n*160 filters, later convs with groups=n
            (the form of larq_tentacle.core.fusion).

Binarization as in the library: sign with a straight-through estimator (|x|<=1) on
activations, alpha*sign(w) on weights. It measures cuDNN's grouped convolution
against n separate convolutions; it says nothing about TensorFlow's own kernels.

    python benchmarks/gpu_grouped_conv_proxy.py --n=1,3,5,8 --batch-size=64 --repeats=5 --out=DIR
"""

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

WIDTHS = [(160, 1), (96, 1), "pool", (192, 5), (192, 1), (192, 1), "pool", (192, 3), (192, 1)]


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class BinaryConv(nn.Conv2d):
    def forward(self, x):
        w = self.weight
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        return F.conv2d(
            SignSTE.apply(x),
            alpha * SignSTE.apply(w),
            self.bias,
            self.stride,
            self.padding,
            1,
            self.groups,
        )


def tentacle_body(n_in, n, fused):
    """One tentacle (fused=False, n=1) or the fused body of n tentacles."""
    layers, channels, first = [], n_in, True
    for item in WIDTHS:
        if item == "pool":
            layers.append(nn.MaxPool2d(3, 2, 1))
            continue
        width, k = item
        out = width * (n if fused else 1)
        groups = 1 if (first or not fused) else n
        layers += [BinaryConv(channels, out, k, padding=k // 2, groups=groups), nn.BatchNorm2d(out)]
        channels, first = out, False
    return nn.Sequential(*layers), channels


class Net(nn.Module):
    def __init__(self, n, form, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 192, 5, padding=2), nn.BatchNorm2d(192))
        if form == "fused":
            body, width = tentacle_body(192, n, True)
            self.bodies = nn.ModuleList([body])
        else:
            pairs = [tentacle_body(192, 1, False) for _ in range(n)]
            self.bodies = nn.ModuleList([b for b, _ in pairs])
            width = pairs[0][1] * n
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        s = self.stem(x)
        features = torch.cat(
            [F.adaptive_avg_pool2d(b(s), 1).flatten(1) for b in self.bodies], dim=1
        )
        return self.head(features)


def _synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_steps(model, opt, x, y, steps):
    _synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    _synchronize()
    return steps * x.shape[0] / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", default="1,3,5,8")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default=".")
    a = p.parse_args()
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ns = [int(v) for v in a.n.split(",")]
    configs = [(n, f) for n in ns for f in ("branched", "fused") if not (n == 1 and f == "fused")]
    runs = {}
    for n, form in configs:
        torch.manual_seed(0)
        model = Net(n, form).to(device)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        x = torch.randn(a.batch_size, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (a.batch_size,), device=device)
        time_steps(model, opt, x, y, 3)  # warm-up: cuDNN autotuning
        runs[(n, form)] = (model, opt, x, y, [])
    for r in range(a.repeats):  # interleaved, so drifts hit every configuration alike
        for key, (model, opt, x, y, samples) in runs.items():
            samples.append(time_steps(model, opt, x, y, a.steps))
        print(f"round {r + 1}/{a.repeats} done", flush=True)
    rows = []
    for (n, form), (*_, samples) in runs.items():
        base = statistics.median(runs[(n, "branched")][4])
        med = statistics.median(samples)
        spread = dict(median=med, min=min(samples), max=max(samples), vs_branched=med / base)
        rows.append(dict(n=n, form=form, **spread))
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    lines = [
        f"device: {name}, torch {torch.__version__}, batch {a.batch_size}, "
        f"{a.repeats} rounds x {a.steps} steps",
        "",
        "| n | form | img/s median | min | max | fused/branched |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['n']} | {r['form']} | {r['median']:.0f} | {r['min']:.0f} | {r['max']:.0f} "
        f"| {r['vs_branched']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "gpu_proxy.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(a.out, "gpu_proxy.json"), "w") as f:
        json.dump(
            dict(device=name, torch=torch.__version__, batch_size=a.batch_size, rows=rows),
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()
