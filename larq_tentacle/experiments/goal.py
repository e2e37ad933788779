"""Issue 13's accuracy goal, judged from a sweep's own numbers.

The goal a recipe's TentacleNet has to reach on a sweep:

1. *close to FP32*: at some n <= 3, its mean test accuracy over the seeds is within
   0.5 pp of the FP32 reference's mean (Δ ≥ -0.5 pp);
2. *above bagging at equal memory*: at every n that has a BENN bagging ensemble of about
   its paper size (`stats.paired_at_equal_memory`), TentacleNet is more accurate on at
   least 4 of every 5 paired seeds.

`judge` says for each part whether it is reached and, when not, by how much it is
missed, so a results page states the verdict with its numbers instead of an adjective.
"""

import math
from typing import List, Optional

__all__ = ["WITHIN_PP", "MAX_N", "WIN_SHARE", "judge", "goal_markdown"]

WITHIN_PP = 0.5
MAX_N = 3
WIN_SHARE = 4 / 5


def judge(summary: List[dict], paired: List[dict], *, recipe: str) -> Optional[dict]:
    """The goal for `recipe`'s TentacleNet rows, or None if the sweep has none with a Δ.

    `summary`: rows of `stats.summarize`; `paired`: rows of `stats.paired_at_equal_memory`.
    """
    candidates = [
        row for row in summary
        if row["method"] == "tentaclenet" and row["recipe"] == recipe and row["n"] <= MAX_N
        and row.get("delta_pp_mean") is not None
    ]
    if not candidates:
        return None
    closest = max(candidates, key=lambda row: (row["delta_pp_mean"], -row["n"]))
    close = dict(
        passed=closest["delta_pp_mean"] >= -WITHIN_PP, n=closest["n"],
        delta_pp=closest["delta_pp_mean"], seeds=closest["seeds"],
        short_by_pp=max(0.0, -WITHIN_PP - closest["delta_pp_mean"]),
    )
    versus = [
        dict(n=row["n"], benn_n=row["benn_n"], seeds=row["seeds"], wins=row["wins"],
             needed=math.ceil(WIN_SHARE * row["seeds"] - 1e-9), diff_pp=row["diff_pp_mean"])
        for row in sorted(paired, key=lambda row: row["n"])
        if row["recipe"] == recipe and row["method"] == "bagging"
    ]
    for row in versus:
        row["passed"] = row["wins"] >= row["needed"]
    above = dict(passed=bool(versus) and all(row["passed"] for row in versus), rows=versus)
    return dict(recipe=recipe, close=close, above_bagging=above,
                passed=close["passed"] and above["passed"])


def goal_markdown(verdicts: List[dict]) -> str:
    """The verdicts (one per recipe) as the results page's goal section."""
    lines = [
        "## The goal",
        "",
        f"TentacleNet at n ≤ {MAX_N} within {WITHIN_PP} pp of the FP32 reference's mean, and "
        f"above BENN bagging at equal memory at every n on at least "
        f"{round(WIN_SHARE * 5)} of 5 paired seeds.",
        "",
    ]
    for verdict in verdicts:
        close, above = verdict["close"], verdict["above_bagging"]
        lines.append(
            f"- **{verdict['recipe']} recipe: {'reached' if verdict['passed'] else 'not reached'}"
            f".** Closest to FP32 at n ≤ {MAX_N}: n={close['n']}, Δ {close['delta_pp']:+.2f} pp "
            f"over {close['seeds']} seeds"
            + ("" if close["passed"] else f" (short by {close['short_by_pp']:.2f} pp)") + ". "
            + _bagging_sentence(above)
        )
    return "\n".join(lines) + "\n"


def _bagging_sentence(above: dict) -> str:
    if not above["rows"]:
        return "No bagging ensemble at equal memory to compare with."
    cells = ", ".join(
        f"n={row['n']} {row['wins']}/{row['seeds']} ({row['diff_pp']:+.2f} pp)"
        for row in above["rows"]
    )
    missed = [str(row["n"]) for row in above["rows"] if not row["passed"]]
    tail = "every n reaches it" if not missed else f"missed at n={', '.join(missed)}"
    return f"Seeds won against bagging at equal memory: {cells}; {tail}."
