"""The sweep's outputs, drawn from its finished points at any time.

`render` writes into the workdir

    sweep.csv               one row per (method, recipe, n, seed); recipe "paper" or "best";
                            an int8 CNN row (method "int8", n 1) also has its width,
                            float_test_accuracy and tflite_bytes
    summary.csv             mean / std / 95% interval / min / max over seeds per
                            (method, recipe, n, width)
    fig3_delta.png          Δ accuracy vs FP32 as a function of n (Fig. 3)
    accuracy_vs_kb.png      accuracy vs the paper's size for every method (Pareto view; int8
                            at the paper's rule with 8-bit weights)
    table2.md               Table 2: each method at break-even (or its best), kB, saving;
                            TentacleNet vs BENN at equal memory, paired by seed
"""

import csv
import io
import json
import os
from typing import Optional

from larq_tentacle.experiments import goal, plots, stats, tables
from larq_tentacle.experiments.plan import load_points
from larq_tentacle.experiments.sweep_config import read_stored_config
from larq_tentacle.experiments.sweep_folder import SweepFolder
from larq_tentacle.utils import atomic


def _write_csv(path, rows, columns) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({
            k: json.dumps(v) if isinstance(v, (list, dict)) else ("" if v is None else v)
            for k, v in row.items()
        })
    atomic.write_text(path, buffer.getvalue())


def write_csv(workdir) -> str:
    """Write sweep.csv from the finished points; returns its path."""
    workdir = os.fspath(workdir)
    config = read_stored_config(workdir)
    points = load_points(workdir)
    rows = stats.rows_with_delta(points, stats.fp32_reference(points, config.get("fp32_accuracy")))
    path = SweepFolder(workdir).outputs()["sweep.csv"]
    _write_csv(path, rows, stats.CSV_COLUMNS)
    return path


def render(
    workdir, *, command: Optional[str] = None, session_wall_time_s: Optional[float] = None
) -> dict:
    """Write sweep.csv, summary.csv, the two PNGs and table2.md from the finished points.

    # Returns
        `paths` of the written files, the `table2` rows, the `summary` rows, the
        `paired` rows (TentacleNet vs BENN of its recipe at equal memory, by seed), the
        `recipes` rows (best recipe vs the paper's, by seed; empty without a best recipe)
        the `fp32_reference` accuracy (0..1, or None), `figures`, the legend labels
        (series) of each figure, and `goal`, issue 13's goal judged per recipe.
    """
    workdir = os.fspath(workdir)
    points = load_points(workdir)
    config = read_stored_config(workdir)
    reference = stats.fp32_reference(points, config.get("fp32_accuracy"))
    rows = stats.rows_with_delta(points, reference)
    summary = stats.summarize(rows)
    fp32 = next((s for s in summary if s["method"] == "fp32"), None)
    if fp32 is None and reference is not None:
        fp32 = dict(accuracy_mean=100.0 * reference, paper_kb=None)
    # Only an FP32 row with a size can be drawn at a size or listed in Table 2.
    sized_fp32 = fp32 if fp32 and fp32.get("paper_kb") else None
    paths = SweepFolder(workdir).outputs()
    _write_csv(paths["sweep.csv"], rows, stats.CSV_COLUMNS)
    _write_csv(paths["summary.csv"], summary, stats.SUMMARY_COLUMNS)
    model = points[0]["model"] if points else config.get("model", "?")
    dataset = points[0]["dataset"] if points else config.get("dataset", "?")
    title = f"{model} on {dataset}"
    figures = {
        "fig3_delta.png": plots.plot_delta(summary, paths["fig3_delta.png"], title=title),
        "accuracy_vs_kb.png": plots.plot_pareto(
            summary, paths["accuracy_vs_kb.png"], title=title, fp32=sized_fp32
        ),
    }
    paired = stats.paired_at_equal_memory(rows)
    recipes = stats.paired_recipes(rows)
    report = tables.report_markdown(
        summary, points, title=title, fp32_row=sized_fp32, config=config, command=command,
        session_wall_time_s=session_wall_time_s, paired=paired, recipes=recipes,
    )
    verdicts = [v for v in (goal.judge(summary, paired, recipe=r) for r in ("paper", "best")) if v]
    if verdicts:
        report += "\n" + goal.goal_markdown(verdicts)
    atomic.write_text(paths["table2.md"], report)
    return dict(
        paths=paths, table2=tables.table2_rows(summary), summary=summary, paired=paired,
        recipes=recipes, fp32_reference=reference, figures=figures, goal=verdicts,
    )
