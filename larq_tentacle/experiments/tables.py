"""The sweep's markdown: Table 2, the equal-memory view, every point, and table2.md.

Table 2 of the paper puts each method at its break-even point with FP32 (the smallest
n whose mean Δ ≥ 0), otherwise at its best mean accuracy, with its paper size.
Accuracies are mean ± the half-width of the 95% Student-t interval over seeds; at equal
memory, TentacleNet and BENN are also compared seed by seed (`paired_markdown`). A sweep
with a best recipe has every view for both recipes ("TentacleNet (best recipe)"), each
TentacleNet next to the BENN of its own recipe, and the best recipe against the paper's
(`recipes_markdown`). The int8 CNN baseline (one row per channel width, its size by the
paper's rule with 8-bit weights) is listed next to every TentacleNet at about equal
memory and on its own (`int8_markdown`).
"""

import json
from typing import List, Optional

from larq_tentacle.experiments.best_recipe import describe
from larq_tentacle.experiments.plan import LABELS, METHODS, label, recipe_of
from larq_tentacle.utils.tables import markdown_table


def table2_rows(summary: List[dict]) -> List[dict]:
    """Each method at its break-even point (smallest n with mean Δ ≥ 0), else at its best accuracy.

    The saving is TentacleNet's size relative to the smallest BENN row, as in the paper,
    where every method reached FP32. It is only given when TentacleNet and at least one
    BENN method broke even: sizes of rows at unequal accuracy say nothing (for those,
    see `equal_memory_markdown`).
    """
    rows = []
    for method, recipe in [(m, r) for m in ("bagging", "boosting", "tentaclenet")
                           for r in ("paper", "best")]:
        candidates = sorted(
            (s for s in summary if s["method"] == method and recipe_of(s) == recipe),
            key=lambda s: s["n"],
        )
        if not candidates:
            continue
        even = [
            s for s in candidates if s["delta_pp_mean"] is not None and s["delta_pp_mean"] >= 0
        ]
        if even:
            chosen, criterion = even[0], "break-even"
        else:
            best = max(s["accuracy_mean"] for s in candidates)
            chosen = next(s for s in candidates if s["accuracy_mean"] == best)
            criterion = "best accuracy"
        rows.append(dict(chosen, criterion=criterion))
    for row in rows:
        benn_even = [r for r in rows if r["method"] != "tentaclenet"
                     and r["criterion"] == "break-even" and recipe_of(r) == recipe_of(row)]
        row["saving"] = _saving(row, benn_even) if row["method"] == "tentaclenet" else ""
    return rows


def _saving(tentaclenet: dict, benn_even: List[dict]) -> str:
    if tentaclenet["criterion"] != "break-even":
        return "n/a (TentacleNet did not reach FP32)"
    if not benn_even:
        return "n/a (no BENN reached FP32)"
    smallest = min(r["paper_kb"] for r in benn_even)
    return f"{100.0 * (1 - tentaclenet['paper_kb'] / smallest):.1f}% vs {smallest} kB"


def equal_memory_markdown(summary: List[dict]) -> str:
    """Each TentacleNet point next to the BENN point of each method (and of its recipe)
    and the int8 CNN closest in paper kB."""

    def nearest(method, recipe, kb):
        benn = [s for s in summary if s["method"] == method and recipe_of(s) == recipe]
        if not benn:
            return "-"
        row = min(benn, key=lambda s: (abs(s["paper_kb"] - kb), s["n"], s.get("width") or 0))
        size = f"×{row['width']:g}" if method == "int8" else f"N={row['n']}"
        return f"{size} ({row['paper_kb']} kB): {_accuracy_cell(row)}"

    tentaclenets = sorted(
        (s for s in summary if s["method"] == "tentaclenet"),
        key=lambda s: (recipe_of(s) != "paper", s["n"]),
    )
    rows = [
        dict(recipe=recipe_of(s), n=s["n"], kb=s["paper_kb"], tn=_accuracy_cell(s),
             bagging=nearest("bagging", recipe_of(s), s["paper_kb"]),
             boosting=nearest("boosting", recipe_of(s), s["paper_kb"]),
             int8=nearest("int8", "paper", s["paper_kb"]))
        for s in tentaclenets
    ]
    columns = ["n", "kb", "tn", "bagging", "boosting"]
    headers = ["tentacles", "paper kB", "TentacleNet accuracy % (mean ± 95% CI)",
               "BENN bagging, nearest size", "BENN boosting, nearest size"]
    if any(s["method"] == "int8" for s in summary):
        columns.append("int8")
        headers.append("int8 CNN (8-bit kB), nearest size")
    return markdown_table(rows, *_with_recipe(rows, columns, headers))


def _with_recipe(rows: List[dict], columns: List[str], headers: List[str]) -> tuple:
    """A leading recipe column when the rows have more than the paper's recipe."""
    if all(row["recipe"] == "paper" for row in rows):
        return columns, headers
    return ["recipe"] + columns, ["recipe"] + headers


def _accuracy_cell(row) -> str:
    """mean ± half-width of the 95% interval over seeds ("1 seed": no interval)."""
    if row.get("accuracy_ci95_high") is None:
        return f"{row['accuracy_mean']:.2f} (1 seed)"
    return f"{row['accuracy_mean']:.2f} ± {row['accuracy_ci95_high'] - row['accuracy_mean']:.2f}"


def paired_markdown(paired: List[dict]) -> str:
    """TentacleNet n - BENN N at about equal paper kB, paired by seed (`stats.paired_...`)."""
    if not paired:
        return "No BENN point within 10% of a TentacleNet's paper size."
    rows = [
        dict(
            recipe=recipe_of(p), n=p["n"], kb=p["paper_kb"],
            benn=f"{label(p['method'], recipe_of(p))} N={p['benn_n']} ({p['benn_paper_kb']} kB)",
            **_paired_cells(p),
        )
        for p in paired
    ]
    columns = ["n", "kb", "benn", "seeds", "diff", "interval", "wins"]
    headers = ["tentacles", "paper kB", "vs (equal memory)", "paired seeds",
               "TentacleNet − BENN (pp, mean)", "95% CI", "TentacleNet wins / ties / losses"]
    return markdown_table(rows, *_with_recipe(rows, columns, headers))


def _paired_cells(p: dict) -> dict:
    return dict(
        seeds=p["seeds"], diff=f"{p['diff_pp_mean']:+.2f}",
        interval="n/a (1 seed)" if p["diff_pp_ci95_low"] is None
        else f"[{p['diff_pp_ci95_low']:+.2f}, {p['diff_pp_ci95_high']:+.2f}]",
        wins=f"{p['wins']} / {p['ties']} / {p['losses']}",
    )


def recipes_markdown(paired: List[dict]) -> str:
    """The best recipe minus the paper's at the same method and n (`stats.paired_recipes`)."""
    rows = [
        dict(method=LABELS[p["method"]], n=p["n"], kb=f"{p['paper_kb']} / {p['best_paper_kb']}",
             **_paired_cells(p))
        for p in paired
    ]
    return markdown_table(
        rows, ["method", "n", "kb", "seeds", "diff", "interval", "wins"],
        ["method", "n", "paper kB (paper / best recipe)", "paired seeds",
         "best − paper recipe (pp, mean)", "95% CI", "best recipe wins / ties / losses"],
    )


def _fmt(value, spec="+.2f"):
    return "n/a" if value is None else format(value, spec)


def table2_markdown(summary: List[dict], *, fp32_row: Optional[dict] = None) -> str:
    """Table 2 (`table2_rows`), below the FP32 reference row when `fp32_row` is given."""
    rows = [
        dict(
            method=label(row["method"], recipe_of(row)),
            n=row["n"],
            delta=f"{_fmt(row['delta_pp_mean'])} ± {_fmt(row.get('delta_pp_ci95'), '.2f')}",
            accuracy=f"{row['accuracy_mean']:.2f}",
            kb=row["paper_kb"],
            criterion=row["criterion"],
            saving=row["saving"],
        )
        for row in table2_rows(summary)
    ]
    if fp32_row is not None:
        rows.insert(0, dict(method="FP32", n="", delta="0 (reference)",
                            accuracy=f"{fp32_row['accuracy_mean']:.2f}",
                            kb=fp32_row["paper_kb"], criterion="", saving=""))
    return markdown_table(
        rows,
        ["method", "n", "delta", "accuracy", "kb", "criterion", "saving"],
        ["method", "#ensemble / tentacles", "Δ vs FP32 (pp, mean ± 95% CI)", "accuracy %",
         "paper kB", "chosen at", "TentacleNet saving vs smallest BENN"],
    )


def int8_markdown(summary: List[dict]) -> str:
    """The int8 CNN per width: the int8 file's accuracy, its float model's, both sizes."""
    rows = [
        dict(
            width=f"×{s['width']:g}", seeds=s["seeds"], accuracy=_accuracy_cell(s),
            float=f"{s['float_accuracy_mean']:.2f}",
            drop=f"{s['accuracy_mean'] - s['float_accuracy_mean']:+.2f}",
            kb=s["paper_kb"], tflite=f"{s['tflite_bytes'] / 1024:.1f}",
        )
        for s in sorted((s for s in summary if s["method"] == "int8"), key=lambda s: s["width"])
    ]
    return markdown_table(
        rows, ["width", "seeds", "accuracy", "float", "drop", "kb", "tflite"],
        ["channel width", "seeds", "int8 .tflite accuracy % (mean ± 95% CI)",
         "float model accuracy %", "int8 − float (pp)", "paper kB, 8-bit weights",
         ".tflite kB"],
    )


def summary_markdown(summary: List[dict]) -> str:
    """Every (method, n) of the sweep: accuracy over seeds, Δ, size and time."""
    order = {m: i for i, m in enumerate(METHODS)}
    rows = [
        dict(
            method=label(s["method"], recipe_of(s)),
            n=f"×{s['width']:g}" if s["method"] == "int8" else s["n"],
            seeds=s["seeds"],
            accuracy=_accuracy_cell(s),
            std=f"{s['accuracy_std']:.2f}",
            range=f"{s['accuracy_min']:.2f} – {s['accuracy_max']:.2f}",
            delta=_fmt(s["delta_pp_mean"]),
            kb=s["paper_kb"],
            time=f"{s['wall_time_s_mean']:.0f}",
        )
        for s in sorted(summary, key=lambda s: (
            order.get(s["method"], 9), recipe_of(s) != "paper", s["n"], s.get("width") or 0))
    ]
    return markdown_table(
        rows,
        ["method", "n", "seeds", "accuracy", "std", "range", "delta", "kb", "time"],
        ["method", "n (int8: width)", "seeds", "accuracy % (mean ± 95% CI)", "std",
         "min – max", "Δ vs FP32 (pp)", "paper kB (int8: 8-bit weights)", "wall s / point"],
    )


def report_markdown(
    summary: List[dict],
    points: List[dict],
    *,
    title: str,
    fp32_row: Optional[dict],
    config: dict,
    command: Optional[str] = None,
    session_wall_time_s: Optional[float] = None,
    paired: Optional[List[dict]] = None,
    recipes: Optional[List[dict]] = None,
) -> str:
    """table2.md: Table 2, the equal-memory views, the recipes compared (`recipes`, rows of
    `stats.paired_recipes`), every point, the command and the config."""
    reference = "(given)." if config.get("fp32_accuracy") is not None else (
        "(mean FP32 test accuracy over the seeds).")
    compute = sum(p["wall_time_s"] for p in points)
    lines = [
        f"# TentacleNet vs BENN: {title}",
        "",
        "Table 2 of the paper, recomputed: each method at its break-even point with FP32 "
        "(smallest n whose mean Δ ≥ 0), otherwise at its best mean accuracy. Δ in percentage "
        "points against the FP32 reference " + reference,
        *_recipe_lines(config, recipes),
        "",
        table2_markdown(summary, fp32_row=fp32_row),
        "",
        "## At about equal memory",
        "",
        equal_memory_markdown(summary),
        "",
        "## Paired by seed at equal memory",
        "",
        "TentacleNet n minus the BENN within 10% of its paper size, seed by seed (same "
        "seed, same data split); the 95% interval is Student's t over the paired seeds.",
        "",
        paired_markdown(paired or []),
        "",
        *_int8_lines(summary),
        "## Every point (mean over seeds)",
        "",
        summary_markdown(summary),
        "",
        f"Points: {len(points)}; training compute (sum of per-point wall times): "
        f"{compute / 60:.1f} min.",
    ]
    lines += _fp32_learning_rates(points)
    if session_wall_time_s is not None:
        lines.append(
            f"Wall time of the last `run_sweep` session: {session_wall_time_s / 60:.1f} min."
        )
    if command:
        lines += ["", "Command:", "", "```", command, "```"]
    if config:
        lines += ["", "Sweep config:", "", "```json", json.dumps(config, indent=2, sort_keys=True),
                  "```"]
    return "\n".join(lines) + "\n"


def _int8_lines(summary: List[dict]) -> List[str]:
    if not any(s["method"] == "int8" for s in summary):
        return []
    return [
        "## The int8 CNN baseline", "",
        "The float model with every hidden layer's channels times the width, trained with the "
        "FP32 recipe, exported by `lt.export(quantize=\"int8\")` (calibrated on training "
        "images) and scored as the `.tflite` on the test split. Its paper kB counts 8 bits "
        "per weight (the paper's rule with 8-bit instead of 32-bit floats; the file also "
        "holds int32 biases, scales and the graph).", "",
        int8_markdown(summary), "",
    ]


def _recipe_lines(config: dict, recipes: Optional[List[dict]]) -> List[str]:
    """What "best recipe" means in this sweep, and best vs paper paired by seed."""
    best = config.get("best_recipe")
    if not best and not recipes:
        return []
    teacher = (" (teacher=fp32: distilled from the FP32 point of the same seed)"
               if "teacher" in (best or {}) else "")
    lines = ["", f"Two recipes: *paper*, the sweep's recipe, and *best recipe*, the same with "
             f"{describe(best) or '?'}{teacher}. Each TentacleNet is compared with the BENN of "
             "its own recipe (boosting: paper only).", "", "## Best recipe vs the paper's, "
             "paired by seed", ""]
    return lines + [recipes_markdown(recipes or [])]


def _fp32_learning_rates(points: List[dict]) -> List[str]:
    """A line per FP32 point whose learning rate was chosen on validation (`lr_grid`)."""
    searched = sorted(
        (p for p in points if p["method"] == "fp32" and p.get("lr_search")),
        key=lambda p: p["seed"],
    )
    if not searched:
        return []
    lines = ["", "FP32 learning rate chosen per seed on the validation split (full budget "
             "per candidate; val accuracy % of each):", ""]
    for point in searched:
        candidates = ", ".join(
            f"{c['learning_rate']:g}: {100 * c['val_accuracy']:.2f}"
            for c in point["lr_search"]["candidates"]
        )
        lines.append(f"- seed {point['seed']}: {point['lr_search']['learning_rate']:g} "
                     f"(of {candidates})")
    return lines
