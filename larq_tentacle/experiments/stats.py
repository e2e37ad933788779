"""The numbers of a sweep: Δ against FP32 per point, mean / spread / 95% interval over seeds,
and paired differences at equal memory.

Δ is measured against the FP32 baseline's mean test accuracy over the seeds (or the
`fp32_accuracy` given), in percentage points, as in the paper's Fig. 3 and Table 2.
The interval of a mean over seeds is Student's t (`confidence.mean_interval`). At equal
memory, TentacleNet n and a BENN of N members with about the same paper size are
compared seed by seed (same seed, same data split), each with the BENN of its own
recipe (a point's `recipe`: "paper", or "best" in a sweep with a best recipe): the mean
difference, its t interval and how many seeds TentacleNet wins. `paired_recipes`
compares the best recipe with the paper's at the same method and n, seed by seed.
"""

from typing import Dict, List, Optional

import numpy as np

from larq_tentacle.experiments.confidence import mean_interval, paired_difference
from larq_tentacle.experiments.plan import METHODS, recipe_of

# A BENN is "at equal memory" with a TentacleNet when their paper sizes differ by at most
# this fraction of the TentacleNet's (TentacleNet n vs BENN N=n differ by ~1-2 %).
EQUAL_MEMORY_TOLERANCE = 0.1

# One row per point (sweep.csv) and one per (method, recipe, n) over the seeds (summary.csv).
CSV_COLUMNS = (
    "model", "dataset", "method", "recipe", "n", "seed", "test_accuracy", "fp32_accuracy",
    "delta_pp", "paper_kb", "paper_kb_exact", "wall_time_s", "epochs_completed",
    "member_accuracies", "input_shape", "point", "learning_rate", "teacher",
    "width", "float_test_accuracy", "tflite_bytes",
)
SUMMARY_COLUMNS = (
    "method", "recipe", "n", "seeds", "accuracy_mean", "accuracy_std", "accuracy_ci95_low",
    "accuracy_ci95_high", "accuracy_min", "accuracy_max", "delta_pp_mean", "delta_pp_std",
    "delta_pp_ci95", "paper_kb", "wall_time_s_mean", "width", "float_accuracy_mean",
    "tflite_bytes",
)
PAIRED_COLUMNS = (
    "recipe", "n", "paper_kb", "method", "benn_n", "benn_paper_kb", "seeds", "diff_pp_mean",
    "diff_pp_ci95_low", "diff_pp_ci95_high", "wins", "ties", "losses",
)


def fp32_reference(points: List[dict], fp32_accuracy: Optional[float] = None) -> Optional[float]:
    """The FP32 accuracy Δ is measured against: the given one, else the mean over FP32 seeds."""
    if fp32_accuracy is not None:
        return float(fp32_accuracy)
    accuracies = [p["test_accuracy"] for p in points if p["method"] == "fp32"]
    return float(np.mean(accuracies)) if accuracies else None


def rows_with_delta(points: List[dict], reference: Optional[float]) -> List[dict]:
    """The sweep.csv rows: every point with the FP32 reference and its Δ (pp)."""
    rows = []
    order = {m: i for i, m in enumerate(METHODS)}
    def key(point):
        return (order.get(point["method"], 9), recipe_of(point) != "paper", point["n"],
                point.get("width") or 0.0, point["seed"])

    for point in sorted(points, key=key):
        row = {column: point.get(column) for column in CSV_COLUMNS}
        row["recipe"] = recipe_of(point)
        row["fp32_accuracy"] = reference
        row["delta_pp"] = (
            None if reference is None else 100.0 * (point["test_accuracy"] - reference)
        )
        rows.append(row)
    return rows


def summarize(rows: List[dict]) -> List[dict]:
    """Mean / std / min / max over seeds per (method, recipe, n, width)."""
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        key = (row["method"], recipe_of(row), row["n"], row.get("width"))
        groups.setdefault(key, []).append(row)
    return [
        dict(_summary_row(method, recipe, n, members), **_int8_columns(width, members))
        for (method, recipe, n, width), members in groups.items()
    ]


def _int8_columns(width, members: List[dict]) -> dict:
    """An int8 point's width, its float model's mean accuracy and its file's mean bytes."""
    if width is None:
        return dict(width=None, float_accuracy_mean=None, tflite_bytes=None)
    floats = [100.0 * r["float_test_accuracy"] for r in members]
    return dict(width=width, float_accuracy_mean=float(np.mean(floats)),
                tflite_bytes=int(round(np.mean([r["tflite_bytes"] for r in members]))))


def _summary_row(method: str, recipe: str, n: int, members: List[dict]) -> dict:
    accuracy = np.array([100.0 * r["test_accuracy"] for r in members])
    interval = mean_interval(accuracy)
    deltas = [r["delta_pp"] for r in members if r["delta_pp"] is not None]
    return dict(
        method=method,
        recipe=recipe,
        n=n,
        seeds=len(members),
        accuracy_mean=float(accuracy.mean()),
        accuracy_std=float(accuracy.std(ddof=1)) if len(accuracy) > 1 else 0.0,
        accuracy_ci95_low=interval["low"],
        accuracy_ci95_high=interval["high"],
        accuracy_min=float(accuracy.min()),
        accuracy_max=float(accuracy.max()),
        delta_pp_mean=float(np.mean(deltas)) if deltas else None,
        delta_pp_std=_spread(deltas),
        # Δ = accuracy - a fixed reference: the same half-width as the accuracy's interval.
        delta_pp_ci95=interval["half_width"] if deltas else None,
        paper_kb=members[0]["paper_kb"],
        wall_time_s_mean=float(np.mean([r["wall_time_s"] for r in members])),
    )


def _spread(deltas: List[float]) -> Optional[float]:
    """Sample std of the Δs; 0 for one seed, None without an FP32 reference."""
    if len(deltas) > 1:
        return float(np.std(deltas, ddof=1))
    return 0.0 if deltas else None


def paired_at_equal_memory(
    rows: List[dict], *, tolerance: float = EQUAL_MEMORY_TOLERANCE
) -> List[dict]:
    """TentacleNet n minus the BENN of about its paper size and of its recipe, by seed (pp).

    For every TentacleNet (recipe, n) and BENN method with points of that recipe, the BENN
    size N nearest in paper kB is taken if it is within `tolerance` of TentacleNet's size;
    seeds both have are paired. Each row: recipe, n, paper_kb, method, benn_n,
    benn_paper_kb, seeds, diff_pp_mean, its 95% t interval (None for one seed) and
    wins / ties / losses of TentacleNet over seeds.
    """
    accuracies = _accuracies_by_seed(rows)
    sizes = {(r["method"], recipe_of(r), r["n"]): r["paper_kb"] for r in rows}
    paired = []
    for recipe, n in sorted({(recipe_of(r), r["n"]) for r in rows
                             if r["method"] == "tentaclenet"}, key=lambda k: (k[0] != "paper", k)):
        kb = sizes[("tentaclenet", recipe, n)]
        for method in ("bagging", "boosting"):
            candidates = [(m_n, m_kb) for (m, m_r, m_n), m_kb in sizes.items()
                          if m == method and m_r == recipe]
            if not candidates:
                continue
            benn_n, benn_kb = min(candidates, key=lambda c: (abs(c[1] - kb), c[0]))
            if abs(benn_kb - kb) > tolerance * kb:
                continue
            result = _paired(accuracies[("tentaclenet", recipe, n)],
                             accuracies[(method, recipe, benn_n)])
            if result is not None:
                paired.append(dict(recipe=recipe, n=n, paper_kb=kb, method=method,
                                   benn_n=benn_n, benn_paper_kb=benn_kb, **result))
    return paired


def paired_recipes(rows: List[dict]) -> List[dict]:
    """The best recipe minus the paper's, per method and n, paired by seed (pp).

    Each row: method, n, paper_kb (the paper recipe's), best_paper_kb, seeds,
    diff_pp_mean, its 95% t interval and wins / ties / losses of the best recipe.
    """
    accuracies = _accuracies_by_seed(rows)
    sizes = {(r["method"], recipe_of(r), r["n"]): r["paper_kb"] for r in rows}
    paired = []
    order = {m: i for i, m in enumerate(METHODS)}
    for method, recipe, n in sorted(accuracies, key=lambda k: (order.get(k[0], 9), k[2])):
        if recipe != "best" or (method, "paper", n) not in accuracies:
            continue
        result = _paired(accuracies[(method, "best", n)], accuracies[(method, "paper", n)])
        if result is not None:
            paired.append(dict(method=method, n=n, paper_kb=sizes[(method, "paper", n)],
                               best_paper_kb=sizes[(method, "best", n)], **result))
    return paired


def _accuracies_by_seed(rows: List[dict]) -> Dict[tuple, Dict[int, float]]:
    """{(method, recipe, n): {seed: accuracy %}}."""
    accuracies: Dict[tuple, Dict[int, float]] = {}
    for r in rows:
        key = (r["method"], recipe_of(r), r["n"])
        accuracies.setdefault(key, {})[r["seed"]] = 100.0 * r["test_accuracy"]
    return accuracies


def _paired(first: Dict[int, float], second: Dict[int, float]) -> Optional[dict]:
    """first - second over the seeds both have (None if none): mean, interval, wins."""
    seeds = sorted(set(first) & set(second))
    if not seeds:
        return None
    result = paired_difference([first[s] for s in seeds], [second[s] for s in seeds])
    return dict(
        seeds=len(seeds), diff_pp_mean=result["mean"], diff_pp_ci95_low=result["low"],
        diff_pp_ci95_high=result["high"], wins=result["wins"], ties=result["ties"],
        losses=result["losses"],
    )
