"""The sweep's figures: Fig. 3 (Δ vs n) and the Pareto view (accuracy vs paper kB).

The int8 CNN baseline (one point per channel width, sized by the paper's rule with
8-bit weights) is drawn in the Pareto view only: its n is always 1.

matplotlib is imported on first use with the Agg backend, so figures are drawn
without a display.
"""

from typing import List, Optional

import numpy as np

from larq_tentacle.experiments.plan import label, recipe_of
from larq_tentacle.utils import atomic

# One curve per (method, recipe): the best recipe's in a darker shade, same marker.
_STYLE = {
    ("tentaclenet", "paper"): dict(color="tab:blue", marker="o", linestyle="-"),
    ("tentaclenet", "best"): dict(color="tab:red", marker="D", linestyle="-"),
    ("bagging", "paper"): dict(color="tab:orange", marker="s", linestyle="--"),
    ("bagging", "best"): dict(color="tab:purple", marker="s", linestyle="-."),
    ("boosting", "paper"): dict(color="tab:green", marker="^", linestyle="--"),
    ("boosting", "best"): dict(color="tab:olive", marker="^", linestyle="-."),
    ("int8", "paper"): dict(color="tab:brown", marker="P", linestyle=":"),
}


def _series(summary: List[dict], key):
    """(style key, rows sorted by `key`) per (method, recipe) that has rows."""
    for method, recipe in _STYLE:
        rows = sorted(
            (s for s in summary if s["method"] == method and recipe_of(s) == recipe), key=key
        )
        if rows:
            yield (method, recipe), rows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(figure, path) -> None:
    with atomic.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")


def plot_delta(summary: List[dict], path, *, title: str) -> List[str]:
    """Fig. 3: Δ accuracy vs FP32 against n, mean with min–max band over seeds.

    Returns the legend's labels (the series drawn).
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    with_delta = [s for s in summary if s["delta_pp_mean"] is not None and s["method"] != "int8"]
    for (method, recipe), rows in _series(with_delta, key=lambda s: s["n"]):
        n = [s["n"] for s in rows]
        mean = np.array([s["delta_pp_mean"] for s in rows])
        offset = mean - np.array([s["accuracy_mean"] for s in rows])  # accuracy -> Δ
        low = np.array([s["accuracy_min"] for s in rows]) + offset
        high = np.array([s["accuracy_max"] for s in rows]) + offset
        style = _STYLE[(method, recipe)]
        unit = "tentacles" if method == "tentaclenet" else "members"
        axis.plot(n, mean, label=f"{label(method, recipe)} (n = {unit})", **style)
        axis.fill_between(n, low, high, color=style["color"], alpha=0.15, linewidth=0)
    axis.axhline(0.0, color="black", linestyle=":", linewidth=1, label="break-even (FP32)")
    axis.set_xlabel("n (tentacles / ensemble members)")
    axis.set_ylabel("Δ accuracy vs FP32 (pp)")
    axis.set_title(title + "\nmean over seeds, band = min–max", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    _save_figure(figure, path)
    plt.close(figure)
    return axis.get_legend_handles_labels()[1]


def plot_pareto(summary: List[dict], path, *, title: str, fp32: Optional[dict]) -> List[str]:
    """Accuracy against the paper's model size: the memory/accuracy trade-off per method.

    Returns the legend's labels (the series drawn).
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for (method, recipe), rows in _series(summary, key=lambda s: s["paper_kb"]):
        kb = [s["paper_kb"] for s in rows]
        mean = [s["accuracy_mean"] for s in rows]
        std = [s["accuracy_std"] for s in rows]
        style = _STYLE[(method, recipe)]
        name = label(method, recipe) + (" (8-bit weights)" if method == "int8" else "")
        axis.errorbar(kb, mean, yerr=std, label=name, capsize=2, **style)
        for s in rows:
            text = f"×{s['width']:g}" if method == "int8" else str(s["n"])
            axis.annotate(text, (s["paper_kb"], s["accuracy_mean"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points", color=style["color"])
    if fp32 is not None:
        axis.axhline(fp32["accuracy_mean"], color="black", linestyle=":", linewidth=1,
                     label="FP32 accuracy")
        axis.plot([fp32["paper_kb"]], [fp32["accuracy_mean"]], marker="*", color="black",
                  markersize=10, linestyle="none", label="FP32")
    axis.set_xscale("log")
    axis.set_xlabel("paper model size (kB, log scale)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(title + "\nmean ± std over seeds, labels = n (int8: ×width)", fontsize=10)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    _save_figure(figure, path)
    plt.close(figure)
    return axis.get_legend_handles_labels()[1]
