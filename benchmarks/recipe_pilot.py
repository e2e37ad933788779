"""The recipe pilot's table (docs/results/recipe_pilot.md) from finished apps/train.py runs.

    python benchmarks/recipe_pilot.py --workdir=/tmp/recipe_pilot \
        --recipes=paper,react,rprelu,distill,stages2,bop,combo --seeds=0,1,2

Every run is `<workdir>/<recipe>_s<seed>/` (report.json, test_predictions.csv). Per
recipe: mean validation accuracy of the kept (lowest val_loss) models, the one the
choice is made on; test accuracy as mean ± the 95% Student-t half-width over seeds;
the paired difference to `paper` over seeds (mean, t interval, wins / ties / losses);
McNemar's exact p per seed against `paper` on the same 360 test images; and each
seed's test accuracy with its 95% Wilson interval.
"""

import csv
import json
import os
import sys

import numpy as np
from absl import app, flags

import larq_tentacle  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from larq_tentacle.experiments import confidence
from larq_tentacle.utils.tables import markdown_table

flags.DEFINE_string("workdir", "/tmp/recipe_pilot", "Folder holding <recipe>_s<seed>/ runs.")
flags.DEFINE_string("recipes", "paper,react,rprelu,distill,stages2,bop", "Run name prefixes.")
flags.DEFINE_string("baseline", "paper", "The recipe every other one is paired with.")
flags.DEFINE_string("seeds", "0,1,2", "Seeds.")
FLAGS = flags.FLAGS


def load_run(path) -> dict:
    """Accuracies (%) and per-image correctness of one finished run."""
    report_path = os.path.join(path, "report.json")
    if not os.path.isfile(report_path):
        raise FileNotFoundError(f"{report_path} is missing. Fix: finish that run first.")
    with open(report_path) as file:
        report = json.load(file)
    with open(os.path.join(path, "test_predictions.csv")) as file:
        rows = list(csv.DictReader(file))
    correct = np.array([row["label"] == row["prediction"] for row in rows])
    return dict(val=100.0 * report["best_val_accuracy"], test=100.0 * report["test_accuracy"],
                correct=correct, kb=report["paper_size_kb"], time=report["wall_time_s"])


def recipe_row(name, runs, baseline) -> dict:
    test = confidence.mean_interval([r["test"] for r in runs])
    row = dict(
        recipe=name, kb=runs[0]["kb"],
        val=f"{np.mean([r['val'] for r in runs]):.2f}",
        test=f"{test['mean']:.2f} ± {test['half_width']:.2f}",
        range=f"{min(r['test'] for r in runs):.2f} – {max(r['test'] for r in runs):.2f}",
        seeds=" / ".join(_wilson(r) for r in runs),
        diff="–", wins="–", mcnemar="–",
    )
    if name != FLAGS.baseline:
        paired = confidence.paired_difference([r["test"] for r in runs],
                                              [b["test"] for b in baseline])
        row.update(
            diff=f"{paired['mean']:+.2f} [{paired['low']:+.2f}, {paired['high']:+.2f}]",
            wins=f"{paired['wins']} / {paired['ties']} / {paired['losses']}",
            mcnemar=" / ".join(
                f"{confidence.mcnemar_exact(r['correct'], b['correct'])['p_value']:.2f}"
                for r, b in zip(runs, baseline)
            ),
        )
    return row


def _wilson(run) -> str:
    low, high = confidence.wilson_interval(int(run["correct"].sum()), run["correct"].size)
    return f"{run['test']:.2f} [{100 * low:.1f}, {100 * high:.1f}]"


def main(argv):
    seeds = [int(s) for s in FLAGS.seeds.split(",")]
    names = [n for n in FLAGS.recipes.split(",") if n]
    runs = {n: [load_run(os.path.join(FLAGS.workdir, f"{n}_s{s}")) for s in seeds] for n in names}
    rows = [recipe_row(n, runs[n], runs[FLAGS.baseline]) for n in names]
    columns = ["recipe", "kb", "val", "test", "range", "diff", "wins", "mcnemar", "seeds"]
    headers = ["recipe", "paper kB", "val acc % (mean)", "test acc % (mean ± 95% CI)",
               "test min – max", f"test Δ vs {FLAGS.baseline} (pp, paired, 95% CI)",
               "wins / ties / losses", "McNemar p per seed",
               "test % per seed [95% Wilson]"]
    print(markdown_table(rows, columns, headers))
    best = max(names, key=lambda n: np.mean([r["val"] for r in runs[n]]))
    print(f"\nBest mean validation accuracy: {best}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    app.run(main)
