r"""GPU proxy for the fused-vs-branched training question, in JAX (XLA).

Why a twin of gpu_grouped_conv_proxy.py: the lent GPU machines have JAX but no
TensorFlow, and TensorFlow's jit_compile=True path lowers to XLA as this does, so
it is nearer to TF than cuDNN-via-PyTorch. Same NiN tentacle body (stem 192 ->
per tentacle 160, 96, pool, 192 5x5, 192, 192, pool, 192 3x3, 192 -> GAP), NHWC
activations and HWIO kernels (TF's layout), in both forms:

  branched  n separate tentacles, outputs concatenated;
  fused     first tentacle conv with n*160 filters, later convs with
            feature_group_count=n (the form of larq_tentacle.core.fusion).

Binarization as in the library: sign with a straight-through estimator (|x|<=1) on
activations, alpha*sign(w) on weights. BatchNorm uses batch statistics only (no
running averages: they cost an elementwise update, equal in both forms). Plain SGD,
not Adam as in the torch proxy: the update is elementwise, equal in both forms.
float32 at JAX's default precision (TF32 on tensor-core GPUs, as TF's default).
Compilation (XLA autotuning included) is timed apart as compile_s.

    python benchmarks/gpu_grouped_conv_proxy_jax.py --n=1,3,5,8 --batch-size=64 --repeats=5 \
        --check --out=DIR
"""

import argparse
import json
import os
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

WIDTHS = [(160, 1), (96, 1), "pool", (192, 5), (192, 1), (192, 1), "pool", (192, 3), (192, 1)]
EPS = 1e-5  # torch's BatchNorm2d default, so both proxies normalize alike


@jax.custom_vjp
def sign_ste(x):
    return jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype)


sign_ste.defvjp(lambda x: (sign_ste(x), x), lambda x, g: (g * (jnp.abs(x) <= 1).astype(g.dtype),))


def conv(x, w, groups=1):
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups
    )


def batch_norm(x, gamma, beta):
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    return (x - mean) * jax.lax.rsqrt(var + EPS) * gamma + beta


def max_pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")


def binary_conv(x, layer, groups):
    w = layer["w"]
    # Per output channel; for a grouped kernel axis 2 holds only that group's inputs.
    alpha = jax.lax.stop_gradient(jnp.abs(w).mean(axis=(0, 1, 2)))
    return conv(sign_ste(x), alpha * sign_ste(w), groups) + layer["b"]


def init_layer(key, k, c_in, c_out):
    w = jax.random.normal(key, (k, k, c_in, c_out)) * np.sqrt(2.0 / (k * k * c_in))
    return dict(w=w, b=jnp.zeros(c_out), gamma=jnp.ones(c_out), beta=jnp.zeros(c_out))


def init_branched(key, n, classes=10):
    """Parameters of n separate tentacles; fuse() derives the fused form from them."""
    keys = iter(jax.random.split(key, 2 + n * len(WIDTHS)))
    bodies = []
    for _ in range(n):
        layers, c_in = [], 192
        for item in WIDTHS:
            if item != "pool":
                layers.append(init_layer(next(keys), item[1], c_in, item[0]))
                c_in = item[0]
        bodies.append(layers)
    head_w = jax.random.normal(next(keys), (c_in * n, classes)) / np.sqrt(c_in * n)
    return dict(
        stem=init_layer(next(keys), 5, 3, 192),
        bodies=bodies,
        head=dict(w=head_w, b=jnp.zeros(classes)),
    )


def fuse(params):
    # HWIO grouped kernels are (kh, kw, in/groups, out) with out ordered group-major,
    # so concatenating tentacles along the last axis is exactly the fused layout.
    fused = jax.tree.map(lambda *a: jnp.concatenate(a, axis=-1), *params["bodies"])
    return dict(params, bodies=[fused])


def body(layers, x, groups):
    it = iter(layers)
    for i, item in enumerate(WIDTHS):
        if item == "pool":
            x = max_pool(x)
            continue
        layer = next(it)
        x = batch_norm(
            binary_conv(x, layer, 1 if i == 0 else groups), layer["gamma"], layer["beta"]
        )
    return x


def forward(params, x, groups):
    stem = params["stem"]
    s = batch_norm(conv(x, stem["w"]) + stem["b"], stem["gamma"], stem["beta"])
    features = jnp.concatenate(
        [body(b, s, groups).mean(axis=(1, 2)) for b in params["bodies"]], axis=1
    )
    return features @ params["head"]["w"] + params["head"]["b"]


def make_step(groups, lr=1e-2):
    def loss_fn(params, x, y):
        logp = jax.nn.log_softmax(forward(params, x, groups))
        return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()

    def step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), loss

    return step


def check(batch_size=8):
    """Fused and branched must give the same logits from the same weights (n=2)."""
    kp, kx = jax.random.split(jax.random.key(1))
    params = init_branched(kp, 2)
    # sign() is discontinuous: with generic weights the two forms' last-bit rounding
    # differences flip signs of values at ~0 and the logits part (seen: 0.23). With
    # |w| one power of two per output channel, binarized sums and BatchNorm centering
    # are exact (small power-of-two batch keeps the means exact too), so any remaining
    # gap is a real layout error.
    def pow2(w):
        return jnp.sign(w) * 2.0 ** jnp.round(jnp.log2(jnp.abs(w).mean(axis=(0, 1, 2))))

    params["bodies"] = [[dict(layer, w=pow2(layer["w"])) for layer in b] for b in params["bodies"]]
    x = jax.random.normal(kx, (batch_size, 32, 32, 3))
    with jax.default_matmul_precision("highest"):  # TF32 would blur the comparison
        diff = float(jnp.abs(forward(params, x, 1) - forward(fuse(params), x, 2)).max())
    print(f"check n=2: max |fused - branched| logits = {diff:.3g}", flush=True)
    assert diff < 1e-4, diff
    return diff


def time_steps(fn, params, x, y, steps):
    params = jax.block_until_ready(params)
    start = time.perf_counter()
    for _ in range(steps):
        params, _ = fn(params, x, y)
    jax.block_until_ready(params)
    return steps * x.shape[0] / (time.perf_counter() - start), params


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", default="1,3,5,8")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--check", action="store_true")
    p.add_argument("--out", default=".")
    a = p.parse_args()
    dev = jax.devices()[0]
    name = dev.device_kind
    print(f"device: {name} ({dev.platform}), jax {jax.__version__}", flush=True)
    diff = check() if a.check else None
    ns = [int(v) for v in a.n.split(",")]
    configs = [(n, f) for n in ns for f in ("branched", "fused") if not (n == 1 and f == "fused")]
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (a.batch_size, 32, 32, 3))
    y = jax.random.randint(ky, (a.batch_size,), 0, 10)
    runs = {}
    for n, form in configs:
        params = init_branched(jax.random.key(n), n)
        params, groups = (fuse(params), n) if form == "fused" else (params, 1)
        start = time.perf_counter()
        # Donation lets XLA update the weights in place, as the torch optimizer does.
        fn = jax.jit(make_step(groups), donate_argnums=0).lower(params, x, y).compile()
        compile_s = time.perf_counter() - start
        _, params = time_steps(fn, params, x, y, a.warmup)
        print(f"n={n} {form}: compile {compile_s:.1f}s", flush=True)
        runs[(n, form)] = [fn, params, compile_s, []]
    for r in range(a.repeats):  # interleaved, so drifts hit every configuration alike
        for run in runs.values():
            rate, run[1] = time_steps(run[0], run[1], x, y, a.steps)
            run[3].append(rate)
        print(f"round {r + 1}/{a.repeats} done", flush=True)
    rows = []
    for (n, form), (_, _, compile_s, samples) in runs.items():
        base = statistics.median(runs[(n, "branched")][3])
        med = statistics.median(samples)
        rows.append(
            dict(
                n=n,
                form=form,
                median=med,
                min=min(samples),
                max=max(samples),
                vs_branched=med / base,
                compile_s=compile_s,
            )
        )
    lines = [
        f"device: {name}, jax {jax.__version__}, batch {a.batch_size}, "
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
    lines += [
        "",
        "compile_s: " + ", ".join(f"{r['n']} {r['form']} {r['compile_s']:.1f}" for r in rows),
    ]
    if diff is not None:
        lines.append(f"check n=2: max |fused - branched| logits = {diff:.3g}")
    text = "\n".join(lines)
    print(text, flush=True)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"
    stem = os.path.join(a.out, f"{slug}_batch{a.batch_size}")
    os.makedirs(a.out, exist_ok=True)
    with open(stem + ".md", "w") as f:
        f.write(text + "\n")
    with open(stem + ".json", "w") as f:
        json.dump(
            dict(
                device=name,
                jax=jax.__version__,
                batch_size=a.batch_size,
                repeats=a.repeats,
                steps=a.steps,
                warmup=a.warmup,
                check_max_abs_diff=diff,
                rows=rows,
            ),
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()
