"""Int8 export vs float-stem export of the same TentacleNet: test accuracy over seeds (issue 14.4).

    python benchmarks/int8_accuracy.py --sweep=/work/sweep_digits5 --seeds=0-4 \
        --workdir=/tmp/int8_accuracy --output=docs/results/int8_accuracy.md

For each seed: the TentacleNet (default FerNet, 16x16 digits, n=3) of the sweep's
`runs/tentaclenet_n<n>_s<seed>` when that run is finished (read only: every file
this script writes goes under --workdir), else trained under --workdir with the
sweep's recipe (its sweep_config.json; without --sweep the committed digits
recipe) and --epochs if given. Both exports go through `lt.export` (verified): the
float-stem `.tflite` (binary tentacles, float stem and head) and the int8 one
(`quantize="int8"`, calibrated on 512 training images); each file is scored on the
whole test split through the LCE interpreter. Printed and written: per-seed
accuracies, the mean paired difference int8 - float with its 95% Student-t interval
(`experiments.confidence`) and whether it is within --tolerance_pp.
"""

import json
import os
import shlex
import sys
import time

from absl import app, flags

import larq_tentacle  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from larq_tentacle import experiments
from larq_tentacle.deploy.workdir import export_workdir
from larq_tentacle.experiments.confidence import paired_difference
from larq_tentacle.experiments.int8_baseline import tflite_test_accuracy
from larq_tentacle.experiments.sweep_config import read_stored_config
from larq_tentacle.training import loop as training
from larq_tentacle.training.report import read_test_predictions
from larq_tentacle.utils import app_logging, atomic
from larq_tentacle.utils.run_folder import RunFolder
from larq_tentacle.utils.tables import markdown_table

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep", None, "A sweep workdir whose runs/ are reused (read only).")
flags.DEFINE_string("workdir", "runs/int8_accuracy", "Where trained runs and exports go.")
flags.DEFINE_string("seeds", "0-4", "Seeds, e.g. 0-4 or 0,2.")
flags.DEFINE_integer("tentacles", 3, "Tentacles of the TentacleNet.")
flags.DEFINE_integer("epochs", None, "Epochs of a run trained here (default: the recipe's).")
flags.DEFINE_float("tolerance_pp", 0.3, "The goal: |int8 - float| within this many pp.")
flags.DEFINE_string("output", None, "Markdown file to write the result to (with the command).")

# The committed digits sweep's recipe (docs/results/digits.md), used without --sweep.
DIGITS_RECIPE = dict(model="fernet", dataset="digits", input_size=16, epochs=20, batch_size=64,
                     learning_rate=1e-2, lr_patience=3)


def parse_seeds(text: str) -> list:
    seeds = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, dash, high = part.partition("-")
        seeds += list(range(int(low), int(high) + 1)) if dash else [int(part)]
    return seeds


def recipe_config() -> experiments.SweepConfig:
    """The sweep's config (paper recipe) or the committed digits recipe."""
    stored = read_stored_config(FLAGS.sweep) if FLAGS.sweep else {}
    values = {k: v for k, v in stored.items() if k != "best_recipe"} or dict(DIGITS_RECIPE)
    if FLAGS.epochs is not None:
        values["epochs"] = FLAGS.epochs
    return experiments.SweepConfig(**values)


def run_for_seed(config, seed: int):
    """(run folder, where it came from): the sweep's finished run, else one trained here."""
    name = f"tentaclenet_n{FLAGS.tentacles}_s{seed}"
    if FLAGS.sweep:
        run = RunFolder(os.path.join(FLAGS.sweep, "runs", name))
        if os.path.isfile(run.report) and FLAGS.epochs is None:
            return run, "sweep run"
    run = RunFolder(os.path.join(FLAGS.workdir, "runs", name))
    train_config = config.train_config(tentacles=FLAGS.tentacles, seed=seed)
    if not os.path.isfile(run.report):
        training.train(train_config, run.path)
    return run, f"trained here ({train_config.epochs} epochs)"


def score_seed(config, seed: int) -> dict:
    run, source = run_for_seed(config, seed)
    folder = os.path.join(FLAGS.workdir, f"s{seed}")
    os.makedirs(folder, exist_ok=True)
    row = dict(seed=seed, source=source,
               keras=100.0 * run.read_json(run.report)["test_accuracy"])
    for mode in ("float", "int8"):
        path = os.path.join(folder, f"tentaclenet_n{FLAGS.tentacles}_{mode}.tflite")
        if _exported_from(path) != os.path.abspath(run.best_model):
            export_workdir(run.path, output=path, quantize="int8" if mode == "int8" else "none")
        row[mode] = 100.0 * tflite_test_accuracy(path, run.path)
        row["images"] = len(read_test_predictions(run.path)[0])
        row[f"{mode}_kb"] = os.path.getsize(path) / 1024
    row["diff"] = row["int8"] - row["float"]
    return row


def _exported_from(path):
    """The model file an earlier export at `path` came from (its sidecar, written last)."""
    if not os.path.isfile(path + ".json"):
        return None
    with open(path + ".json") as file:
        return json.load(file).get("source")


def report(rows, command: str, elapsed_s: float) -> str:
    result = paired_difference([r["int8"] for r in rows], [r["float"] for r in rows])
    tolerance = FLAGS.tolerance_pp
    low, high = result["low"], result["high"]
    interval = "n/a (1 seed)" if low is None else f"[{low:+.2f}, {high:+.2f}]"
    inside = low is not None and -tolerance <= low and high <= tolerance
    verdict = (
        f"Mean paired difference int8 − float: {result['mean']:+.2f} pp, 95% CI {interval} "
        f"over {len(rows)} seeds; |mean| within {tolerance} pp: "
        f"{'yes' if abs(result['mean']) <= tolerance else 'NO'}; whole interval within "
        f"±{tolerance} pp: {'yes' if inside else 'no'}; int8 at most {tolerance} pp below "
        f"float (interval's low end >= -{tolerance}): "
        f"{'yes' if low is not None and low >= -tolerance else 'no'}. One test image is "
        f"{100.0 / rows[0]['images']:.2f} pp."
    )
    table = markdown_table(
        [dict(r, keras=f"{r['keras']:.2f}", float=f"{r['float']:.2f}", int8=f"{r['int8']:.2f}",
              diff=f"{r['diff']:+.2f}", float_kb=f"{r['float_kb']:.1f}",
              int8_kb=f"{r['int8_kb']:.1f}") for r in rows],
        ["seed", "source", "keras", "float", "int8", "diff", "float_kb", "int8_kb"],
        ["seed", "model", "Keras test %", "float-stem .tflite %", "int8 .tflite %",
         "int8 − float (pp)", "float-stem kB", "int8 kB"],
    )
    return "\n".join([table, "", verdict, "", f"Wall time: {elapsed_s / 60:.1f} min.", "",
                      "Command:", "", "```", command, "```", ""])


def main(argv):
    if len(argv) > 1:
        print(f"int8_accuracy.py: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    app_logging.quiet_info_logs()
    started = time.time()
    config = recipe_config()
    rows = [score_seed(config, seed) for seed in parse_seeds(FLAGS.seeds)]
    command = "python benchmarks/int8_accuracy.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    text = report(rows, command, time.time() - started)
    print(text)
    if FLAGS.output:
        atomic.write_text(FLAGS.output, _document(config, text))
    return 0


def _document(config, text: str) -> str:
    return "\n".join([
        "# Int8 export vs float-stem export on digits (issue 14, item 4)", "",
        f"TentacleNet {config.model} n={FLAGS.tentacles}, {config.dataset} at "
        f"{config.input_size}x{config.input_size}, one trained model per seed, exported twice "
        "with `lt.export` (both verified against Keras): float stem/head, and "
        "`quantize=\"int8\"` calibrated on 512 training images. Each `.tflite` is scored on the "
        "whole test split through the LCE interpreter (x86 reference kernels). The interval is "
        "Student's t over the paired seeds (`experiments.confidence.paired_difference`).", "",
        text,
    ])


if __name__ == "__main__":
    app.run(main)
