"""The numbers of a sweep: Δ against FP32 per point, mean / spread / 95% interval over seeds,
and paired differences at equal memory.

Δ is measured against the FP32 baseline's mean test accuracy over the seeds (or the
`fp32_accuracy` given), in percentage points, as in the paper's Fig. 3 and Table 2.
The interval of a mean over seeds is Student's t (`confidence.mean_interval`). At equal
memory, TentacleNet n and a BENN of N members with about the same paper size are
compared seed by seed (same seed, same data split): the mean difference, its t
interval and how many seeds TentacleNet wins.
"""

from typing import Dict, List, Optional

import numpy as np

from larq_tentacle.experiments.confidence import mean_interval, paired_difference
from larq_tentacle.experiments.plan import METHODS

# A BENN is "at equal memory" with a TentacleNet when their paper sizes differ by at most
# this fraction of the TentacleNet's (TentacleNet n vs BENN N=n differ by ~1-2 %).
EQUAL_MEMORY_TOLERANCE = 0.1

# One row per point (sweep.csv) and one per (method, n) over the seeds (summary.csv).
CSV_COLUMNS = (
    "model", "dataset", "method", "n", "seed", "test_accuracy", "fp32_accuracy", "delta_pp",
    "paper_kb", "paper_kb_exact", "wall_time_s", "epochs_completed", "member_accuracies",
    "input_shape", "point", "learning_rate",
)
SUMMARY_COLUMNS = (
    "method", "n", "seeds", "accuracy_mean", "accuracy_std", "accuracy_ci95_low",
    "accuracy_ci95_high", "accuracy_min", "accuracy_max", "delta_pp_mean", "delta_pp_std",
    "delta_pp_ci95", "paper_kb", "wall_time_s_mean",
)
PAIRED_COLUMNS = (
    "n", "paper_kb", "method", "benn_n", "benn_paper_kb", "seeds", "diff_pp_mean",
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
    interval = mean_interval(accuracy)
    deltas = [r["delta_pp"] for r in members if r["delta_pp"] is not None]
    return dict(
        method=method,
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
    """TentacleNet n minus the BENN of about its paper size, paired by seed (pp).

    For every TentacleNet n and BENN method, the BENN size N nearest in paper kB is
    taken if it is within `tolerance` of TentacleNet's size; seeds both have are paired.
    Each row: n, paper_kb, method, benn_n, benn_paper_kb, seeds, diff_pp_mean, its 95%
    t interval (None for one seed) and wins / ties / losses of TentacleNet over seeds.
    """
    by_point = {(r["method"], r["n"], r["seed"]): 100.0 * r["test_accuracy"] for r in rows}
    sizes = {(r["method"], r["n"]): r["paper_kb"] for r in rows}
    paired = []
    for n in sorted({r["n"] for r in rows if r["method"] == "tentaclenet"}):
        kb = sizes[("tentaclenet", n)]
        for method in ("bagging", "boosting"):
            candidates = [(m_n, m_kb) for (m, m_n), m_kb in sizes.items() if m == method]
            if not candidates:
                continue
            benn_n, benn_kb = min(candidates, key=lambda c: (abs(c[1] - kb), c[0]))
            if abs(benn_kb - kb) > tolerance * kb:
                continue
            seeds = sorted(
                seed for (m, m_n, seed) in by_point
                if m == "tentaclenet" and m_n == n and (method, benn_n, seed) in by_point
            )
            if not seeds:
                continue
            result = paired_difference(
                [by_point[("tentaclenet", n, s)] for s in seeds],
                [by_point[(method, benn_n, s)] for s in seeds],
            )
            paired.append(dict(
                n=n, paper_kb=kb, method=method, benn_n=benn_n, benn_paper_kb=benn_kb,
                seeds=len(seeds), diff_pp_mean=result["mean"], diff_pp_ci95_low=result["low"],
                diff_pp_ci95_high=result["high"], wins=result["wins"], ties=result["ties"],
                losses=result["losses"],
            ))
    return paired
