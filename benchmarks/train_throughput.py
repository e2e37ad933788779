"""Training throughput (images/s) of the branched and fused TentacleNet forms.

Forms, all with the same weights and the same maths (tests/test_fusion.py):
  branched  n separate tentacles (lt.build), the naive graph;
  grouped   fused, Keras's grouped QuantConv2D (XLA-compiled), the export form;
  <form>_xla  the same graph with the whole train step XLA-compiled
            (`model.compile(jit_compile=True)`), e.g. branched_xla.
The fused form also merges the n first tentacle convs into one conv with n·F
filters and runs BatchNorm/pooling once over n·F channels. (The fused CPU forms
"split" and "einsum" of earlier runs were dropped: slower than branched at every n,
docs/performance.md.)

Configurations are interleaved: every repetition runs each (n, form) once, so
a change in machine load hits all of them alike. Reported: median, min and max
images/s over the repetitions, and the ratio of medians to branched at the same n.

    python benchmarks/train_throughput.py --n=1,3,5,8 --batch-size=64 --repeats=3 --out=results/

Standalone: needs only the repository (or an installed larq_tentacle) and its
pinned packages; no data set (random images and labels).
"""

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import larq_tentacle as lt  # noqa: E402  (selects Keras 2 before TensorFlow loads)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from larq_tentacle.core import fusion  # noqa: E402
from larq_tentacle.utils import atomic  # noqa: E402
from larq_tentacle.utils.tables import markdown_table  # noqa: E402

BASE_FORMS = ("branched", "grouped")
FORMS = BASE_FORMS + tuple(f"{form}_xla" for form in BASE_FORMS)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="nin", choices=lt.list_models())
    parser.add_argument("--n", default="1,3,5,8", help="comma-separated tentacle counts")
    parser.add_argument(
        "--forms", default=",".join(BASE_FORMS), help=f"comma-separated, from {FORMS}"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--input-size", type=int, default=None, help="square input side (default: the model's)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed rounds over all configurations"
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="timed train steps per configuration and round"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps first (tracing, XLA compilation)"
    )
    parser.add_argument(
        "--max-n",
        default="",
        help="per-form largest n, e.g. 'grouped=3' skips the slow grouped form above n=3",
    )
    parser.add_argument("--out", default=None, help="folder for train_throughput.{md,json}")
    args = parser.parse_args(argv)
    args.n = [int(v) for v in args.n.split(",") if v]
    args.forms = [v for v in args.forms.split(",") if v]
    unknown = sorted(set(args.forms) - set(FORMS))
    if unknown or not args.n or min(args.n) < 1:
        parser.error(f"--forms must be from {FORMS} (got {unknown}) and --n positive integers")
    args.max_n = {k: int(v) for k, v in (item.split("=") for item in args.max_n.split(",") if item)}
    return args


def configurations(args):
    configs = []
    for n in args.n:
        for form in args.forms:
            if n == 1 and form.replace("_xla", "") != "branched":
                continue  # with one tentacle every form is the same graph
            if n > args.max_n.get(form, n):
                continue
            configs.append((n, form))
    return configs


def make_model(model_name, n, form, input_shape):
    branched = lt.build(model_name, tentacles=n, input_shape=input_shape, init="copy")
    graph = form.replace("_xla", "")
    model = branched if graph == "branched" else fusion.fuse(branched, check_lce=False)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        jit_compile=form.endswith("_xla"),
    )
    return model


def forward_macs(model) -> int:
    """Multiply-accumulates of one image's forward pass through the conv and dense layers.

    A training step costs about 3x this (forward, input gradient, weight gradient), so
    images/s x 6 x MACs is the arithmetic rate the step reached; when that is near what
    the CPU can do, no re-formulation of the same maths can be much faster.
    """
    total = 0
    for layer in model.layers:
        # the fused form's SharedGroupConv2D is a Conv2D subclass
        if isinstance(layer, tf.keras.layers.Conv2D):
            kernel = layer.kernel.shape  # (kh, kw, in / groups, out)
            out_h, out_w = layer.output.shape[1:3]
            total += int(out_h) * int(out_w) * int(np.prod(kernel))
        elif isinstance(layer, tf.keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The float32 rate of one large matmul on this device: a measured ceiling for the table."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    multiply = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    multiply()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        multiply().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def device_description() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)} x{len(gpus)}"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def run(args) -> dict:
    spec = lt.get_spec(args.model)
    size = args.input_size
    input_shape = spec.input_shape if size is None else (size, size, spec.input_shape[2])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch_size,) + tuple(input_shape)).astype(np.float32)
    y = rng.integers(0, spec.num_classes, size=args.batch_size)
    configs = configurations(args)
    print(
        f"{device_description()}; {args.model} {input_shape} batch {args.batch_size}; "
        f"{len(configs)} configurations",
        flush=True,
    )

    models, macs = {}, {}
    for n, form in configs:
        start = time.perf_counter()
        models[(n, form)] = make_model(args.model, n, form, input_shape)
        macs[(n, form)] = forward_macs(models[(n, form)])
        for _ in range(args.warmup):
            models[(n, form)].train_on_batch(x, y)
        print(
            f"  built + warmed up n={n} {form} in {time.perf_counter() - start:.1f} s", flush=True
        )

    ceiling = matmul_gflops()
    print(f"  float32 matmul 2048x2048: {ceiling:.1f} GFLOP/s (ceiling for the table)", flush=True)
    samples = {config: [] for config in configs}
    for repeat in range(args.repeats):
        # rotate the order so no configuration always runs first after a pause
        order = configs[repeat % len(configs) :] + configs[: repeat % len(configs)]
        for n, form in order:
            model = models[(n, form)]
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            rate = args.steps * args.batch_size / (time.perf_counter() - start)
            samples[(n, form)].append(rate)
            print(f"  round {repeat + 1}/{args.repeats} n={n} {form}: {rate:.2f} img/s", flush=True)
        if args.out:  # results so far survive an interrupted run
            write(
                summarize(
                    args,
                    input_shape,
                    configs,
                    samples,
                    rounds=repeat + 1,
                    macs=macs,
                    ceiling=ceiling,
                ),
                args.out,
            )
    return summarize(
        args, input_shape, configs, samples, rounds=args.repeats, macs=macs, ceiling=ceiling
    )


def summarize(args, input_shape, configs, samples, *, rounds: int, macs=None, ceiling=None) -> dict:
    rows = []
    for n, form in configs:
        values = samples[(n, form)]
        base = samples.get((n, "branched"))
        rows.append(
            dict(
                n=n,
                form=form,
                median=statistics.median(values),
                min=min(values),
                max=max(values),
                vs_branched=statistics.median(values) / statistics.median(base)
                if base
                else float("nan"),
                forward_gmac=(macs or {}).get((n, form), 0) / 1e9,
                # forward + two backward convolutions, 2 FLOPs per MAC
                train_gflops=6 * (macs or {}).get((n, form), 0) * statistics.median(values) / 1e9,
                samples=values,
            )
        )
    return dict(
        benchmark="train_throughput",
        device=device_description(),
        model=args.model,
        input_shape=list(input_shape),
        batch_size=args.batch_size,
        repeats=rounds,
        steps=args.steps,
        warmup=args.warmup,
        versions=lt.versions(),
        matmul_gflops=ceiling,
        command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        rows=rows,
    )


def write(result: dict, out: str) -> None:
    atomic.write_json(os.path.join(out, "train_throughput.json"), result)
    atomic.write_text(os.path.join(out, "train_throughput.md"), to_markdown(result))


def to_markdown(result: dict) -> str:
    table = markdown_table(
        result["rows"],
        ["n", "form", "median", "min", "max", "vs_branched", "forward_gmac", "train_gflops"],
        [
            "n",
            "form",
            "median img/s",
            "min",
            "max",
            "median / branched",
            "forward GMAC/img",
            "≈ GFLOP/s reached",
        ],
    )
    return (
        f"Training throughput, {result['model']} {tuple(result['input_shape'])}, batch "
        f"{result['batch_size']}, {result['device']}; {result['repeats']} interleaved rounds of "
        f"{result['steps']} train_on_batch steps. A float32 2048x2048 matmul reached "
        f"{result.get('matmul_gflops') or float('nan'):.1f} GFLOP/s on the same device in the "
        f"same run (the ceiling for the last column).\n\n{table}\n"
    )


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    markdown = to_markdown(result)
    print(markdown)
    if args.out:
        write(result, args.out)


if __name__ == "__main__":
    main()
