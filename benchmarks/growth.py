"""Growth curves: cost(n) / cost(1) for training and inference, as a PNG.

Reads the JSON written by `train_throughput.py --out=DIR` and/or `inference.py
--out=DIR` and plots, per form, training time per image and single-image
latency relative to the one-tentacle BNN. No measurement happens here.

    python benchmarks/growth.py --results=results/ --out=docs/growth.png
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from larq_tentacle.utils import atomic  # noqa: E402


def training_curves(result: dict) -> dict:
    """form -> [(n, (seconds per image at n) / (seconds per image at n=1))], from medians."""
    rows = result["rows"]
    base = [r["median"] for r in rows if r["n"] == 1 and r["form"] == "branched"]
    if not base:
        return {}
    # Every curve is relative to the branched BNN, so the forms compare with each other.
    # n=1 is the same graph for every fused form (they get branched's point); a form
    # measured at n=1 itself (e.g. branched_xla) keeps its own.
    own_n1 = {r["form"] for r in rows if r["n"] == 1}
    curves = {}
    for row in rows:
        if row["n"] > 1:
            forms = [row["form"]]
        elif row["form"] == "branched":
            forms = sorted({r["form"] for r in rows} - (own_n1 - {"branched"}))
        else:
            forms = [row["form"]]
        for form in forms:
            curves.setdefault(form, []).append((row["n"], base[0] / row["median"]))
    return {form: sorted(set(points)) for form, points in curves.items()}


def inference_curves(result: dict, key: str = "indirect_1t_ms") -> dict:
    """(model, form) -> [(n, latency(n) / latency(BNN))] for the LCE exports."""
    curves = {}
    for model in sorted({r["model"] for r in result["rows"]}):
        rows = [r for r in result["rows"] if r["model"] == model and key in r]
        base = [r[key] for r in rows if r["n"] == 1 and r["form"] == "branched"]
        if not base:
            continue
        for row in rows:
            forms = [row["form"]] if row["n"] > 1 else ["branched", "fused"]
            for form in forms:
                curves.setdefault((model, form), []).append((row["n"], row[key] / base[0]))
    return {k: sorted(v) for k, v in curves.items()}


def plot(train: dict, infer: dict, path: str) -> None:
    candidates = (
        ("training (CPU): time per image / n=1", train),
        ("inference (LCE x86 reference kernels, 1 thread): latency / n=1", infer),
    )
    panels = [p for p in candidates if p[1]]
    if not panels:
        raise SystemExit(
            "no results to plot: pass --results with train_throughput.json or inference.json"
        )
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for axis, (title, curves) in zip(axes[0], panels):
        largest = 1
        for label, points in curves.items():
            ns, ratios = zip(*points)
            largest = max(largest, max(ns))
            axis.plot(
                ns, ratios, marker="o", label=label if isinstance(label, str) else " ".join(label)
            )
        axis.plot([1, largest], [1, largest], linestyle=":", color="grey", label="linear (n)")
        axis.set_xlabel("tentacles n")
        axis.set_ylabel("cost(n) / cost(1)")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--results", required=True, help="folder with train_throughput.json / inference.json"
    )
    parser.add_argument("--out", default="growth.png")
    args = parser.parse_args(argv)
    train = infer = {}
    path = os.path.join(args.results, "train_throughput.json")
    if os.path.exists(path):
        with open(path) as file:
            train = training_curves(json.load(file))
    path = os.path.join(args.results, "inference.json")
    if os.path.exists(path):
        with open(path) as file:
            infer = inference_curves(json.load(file))
    plot(train, infer, args.out)
    for title, curves in (("training", train), ("inference", infer)):
        for label, points in curves.items():
            print(title, label, ", ".join(f"n={n}: {r:.2f}x" for n, r in points))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
