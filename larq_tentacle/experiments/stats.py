"""The numbers of a sweep: Δ against FP32 per point, and mean / spread over seeds.

Δ is measured against the FP32 baseline's mean test accuracy over the seeds (or the
`fp32_accuracy` given), in percentage points, as in the paper's Fig. 3 and Table 2.
"""

from typing import Dict, List, Optional

import numpy as np

from larq_tentacle.experiments.plan import METHODS

# One row per point (sweep.csv) and one per (method, n) over the seeds (summary.csv).
CSV_COLUMNS = (
    "model", "dataset", "method", "n", "seed", "test_accuracy", "fp32_accuracy", "delta_pp",
    "paper_kb", "paper_kb_exact", "wall_time_s", "epochs_completed", "member_accuracies",
    "input_shape", "point",
)
SUMMARY_COLUMNS = (
    "method", "n", "seeds", "accuracy_mean", "accuracy_std", "accuracy_min", "accuracy_max",
    "delta_pp_mean", "delta_pp_std", "paper_kb", "wall_time_s_mean",
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
    for point in sorted(points, key=lambda p: (order.get(p["method"], 9), p["n"], p["seed"])):
        row = {column: point.get(column) for column in CSV_COLUMNS}
        row["fp32_accuracy"] = reference
        row["delta_pp"] = (
            None if reference is None else 100.0 * (point["test_accuracy"] - reference)
        )
        rows.append(row)
    return rows


def summarize(rows: List[dict]) -> List[dict]:
    """Mean / std / min / max over seeds per (method, n)."""
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["n"]), []).append(row)
    return [_summary_row(method, n, members) for (method, n), members in groups.items()]


def _summary_row(method: str, n: int, members: List[dict]) -> dict:
    accuracy = np.array([100.0 * r["test_accuracy"] for r in members])
    deltas = [r["delta_pp"] for r in members if r["delta_pp"] is not None]
    return dict(
        method=method,
        n=n,
        seeds=len(members),
        accuracy_mean=float(accuracy.mean()),
        accuracy_std=float(accuracy.std(ddof=1)) if len(accuracy) > 1 else 0.0,
        accuracy_min=float(accuracy.min()),
        accuracy_max=float(accuracy.max()),
        delta_pp_mean=float(np.mean(deltas)) if deltas else None,
        delta_pp_std=_spread(deltas),
        paper_kb=members[0]["paper_kb"],
        wall_time_s_mean=float(np.mean([r["wall_time_s"] for r in members])),
    )


def _spread(deltas: List[float]) -> Optional[float]:
    """Sample std of the Δs; 0 for one seed, None without an FP32 reference."""
    if len(deltas) > 1:
        return float(np.std(deltas, ddof=1))
    return 0.0 if deltas else None
