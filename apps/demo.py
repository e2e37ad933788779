"""The main job (`make demo`): the paper's size table, then FP32 vs BNN vs TentacleNet on real data.

    python apps/demo.py --workdir=runs/demo

1. prints the paper's model-size table (Table 1/2 sizes, ours vs the paper's);
2. trains the FP32 baseline (its learning rate chosen on the validation split from
   `--lr_grid`), its BNN and a TentacleNet on scikit-learn's handwritten digits (real
   images that ship offline) with `larq_tentacle.training.train`;
3. prints the comparison (test accuracy with its 95% Wilson interval, Δ vs FP32, paper
   kB) and McNemar's exact test of TentacleNet vs BNN on the same test images, and
   writes it to `<workdir>/comparison.md` and `<workdir>/comparison.json`;
4. exports the TentacleNet with LCE (verified against Keras, op census, sidecar).

Each step is one function, so later steps (e.g. an LCE export) plug in after `compare`.
"""

import os

# TensorFlow's and the LCE converter's C++ INFO lines would bury the comparison; warnings stay.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from absl import app, flags  # noqa: E402

import larq_tentacle  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)
from larq_tentacle import training  # noqa: E402
from larq_tentacle.experiments import confidence, reporting  # noqa: E402
from larq_tentacle.training.recipe import Recipe, lr_grid_from_flag  # noqa: E402
from larq_tentacle.training.report import read_test_predictions  # noqa: E402
from larq_tentacle.utils import app_logging, atomic  # noqa: E402

flags.DEFINE_string("workdir", "runs/demo", "Output folder; one sub-folder per trained model.")
flags.DEFINE_string(
    "model",
    "fernet",
    "Registered model to compare (FerNet: its BNN is small enough to lose accuracy on digits).",
)
flags.DEFINE_integer(
    "input_size",
    16,
    "Input size (digits are 8x8, upsampled; FerNet's four poolings need at least 16).",
)
flags.DEFINE_integer("tentacles", 5, "Tentacles of the TentacleNet (the paper: 3-5 reach FP32).")
flags.DEFINE_integer("epochs", 20, "Epochs per model.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-2, "Initial Adam learning rate of the binary models.")
flags.DEFINE_string(
    "lr_grid",
    "1e-3,3e-3,1e-2",
    "The FP32 baseline's learning rates to choose from on the validation split (each trains "
    "the full recipe); '' trains it with --learning_rate.",
)
flags.DEFINE_integer(
    "lr_patience",
    3,
    "ReduceLROnPlateau patience (scaled down from the paper's 15 for the short run).",
)
flags.DEFINE_integer("seed", 0, "Seed.")
FLAGS = flags.FLAGS

DATASET = "digits"


def size_table() -> str:
    """Step 1: the paper's model sizes next to ours."""
    table = reporting.size_table_markdown()
    print("## Model sizes (kB as the paper counts them)\n")
    print(table + "\n", flush=True)
    return table


def recipe() -> Recipe:
    """The one training recipe of the three models (the rest: the paper's defaults)."""
    return Recipe(
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        lr_patience=FLAGS.lr_patience,
        seed=FLAGS.seed,
    )


def configs() -> list:
    """Step 2a: FP32 baseline, BNN, TentacleNet; same data, recipe and budget."""
    common = dict(
        model=FLAGS.model,
        dataset=DATASET,
        input_size=FLAGS.input_size,
        **dataclasses.asdict(recipe()),
    )
    return [
        training.TrainConfig(
            **dict(common, precision="float", lr_grid=lr_grid_from_flag(FLAGS.lr_grid))
        ),
        training.TrainConfig(tentacles=1, **common),
        training.TrainConfig(tentacles=FLAGS.tentacles, **common),
    ]


def train_all(workdir, train_configs) -> list:
    """Step 2b: train each model in `<workdir>/<fp32|bnn|tn<n>>` (reruns resume)."""
    reports, fp32_accuracy = [], None
    for config in train_configs:
        if config.precision == "binary" and fp32_accuracy is not None:
            config = dataclasses.replace(config, fp32_accuracy=fp32_accuracy)
        print(
            f"## Training {config.variant()} ({config.model}, {config.dataset}, "
            f"{config.epochs} epochs)",
            flush=True,
        )
        report = training.train(config, os.path.join(workdir, config.variant()), verbose=2)
        if config.precision == "float":
            fp32_accuracy = report["test_accuracy"]
            report["delta_vs_fp32"] = 0.0
        reports.append(report)
    return reports


def significance(workdir, reports) -> dict:
    """Per model: its test predictions' 95% Wilson interval; McNemar TentacleNet vs BNN.

    From each run's test_predictions.csv (its best model on the test split, image by image).
    """
    correct = {}
    for report in reports:
        labels, predictions = read_test_predictions(os.path.join(workdir, report["variant"]))
        correct[report["variant"]] = predictions == labels
    intervals = {
        variant: [100 * bound for bound in confidence.wilson_interval(int(hits.sum()), hits.size)]
        for variant, hits in correct.items()
    }
    tentaclenet = reports[-1]["variant"]
    mcnemar = None
    if "bnn" in correct and tentaclenet != "bnn":
        mcnemar = dict(confidence.mcnemar_exact(correct[tentaclenet], correct["bnn"]),
                       first=tentaclenet, second="bnn")
    return dict(intervals=intervals, mcnemar=mcnemar)


def _mcnemar_line(mcnemar, labels) -> str:
    if mcnemar is None:
        return ""
    first, second = labels[mcnemar["first"]], labels[mcnemar["second"]]
    return (
        f"McNemar's exact test, {first} vs {second} on the same {mcnemar['images']} test "
        f"images: {mcnemar['first_only']} right only by {first}, {mcnemar['second_only']} "
        f"only by {second}, two-sided p = {mcnemar['p_value']:.3g}"
        f"{' (below 0.05)' if mcnemar['p_value'] < 0.05 else ' (not below 0.05)'}.\n"
    )


def _lr_line(reports) -> str:
    search = reports[0].get("lr_search")
    if not search:
        return ""
    candidates = ", ".join(
        f"{c['learning_rate']:g} ({100 * c['val_accuracy']:.2f}%)" for c in search["candidates"]
    )
    return (
        f"FP32 learning rate {search['learning_rate']:g}, chosen by validation accuracy "
        f"from {candidates}; each candidate trained the full {reports[0]['epochs']} epochs.\n"
    )


def compare(workdir, reports, *, wall_time_s: float) -> str:
    """Step 3: the comparison table, printed and written as markdown and JSON."""
    tests = significance(workdir, reports)
    labels = {
        r["variant"]: {"fp32": "FP32", "bnn": "BNN"}.get(
            r["variant"], f"TentacleNet n={r['tentacles']}"
        )
        for r in reports
    }
    rows = [
        dict(
            variant=labels[r["variant"]],
            accuracy=100 * r["test_accuracy"],
            interval="{:.2f} – {:.2f}".format(*tests["intervals"][r["variant"]]),
            delta=100 * r["delta_vs_fp32"],
            paper_kb=r["paper_size_kb"],
            tentacles=" ".join(f"{100 * a:.1f}" for a in r.get("tentacle_accuracies") or []) or "-",
            epochs=r["epochs_completed"],
            train_s=r["train_time_s"],
        )
        for r in reports
    ]
    table = reporting.markdown_table(
        rows,
        ["variant", "accuracy", "interval", "delta", "paper_kb", "tentacles", "epochs", "train_s"],
        [
            "model",
            "test accuracy %",
            "95% interval % (Wilson)",
            "Δ vs FP32 (pp)",
            "paper kB",
            "each tentacle alone %",
            "epochs",
            "train s",
        ],
    )
    first = reports[0]
    title = (
        f"{first['model']} on {first['dataset']} "
        f"({first['input_shape'][0]}x{first['input_shape'][1]}), "
        f"test split of {first['split_sizes']['test']} images"
    )
    markdown = (
        f"## FP32 vs BNN vs TentacleNet: {title}\n\n{table}\n\n"
        f"{_mcnemar_line(tests['mcnemar'], labels)}{_lr_line(reports)}"
        f"Total wall time: {wall_time_s:.0f} s\n"
    )
    atomic.write_text(os.path.join(workdir, "comparison.md"), markdown)
    atomic.write_json(
        os.path.join(workdir, "comparison.json"),
        dict(rows=rows, mcnemar=tests["mcnemar"], wall_time_s=wall_time_s, reports=reports),
    )
    print(markdown, flush=True)
    return markdown


def export_tentaclenet(workdir, train_configs) -> str:
    """Step 4: the TentacleNet's best model -> verified, bitpacked .tflite + sidecar."""
    from larq_tentacle.deploy import workdir as deploy

    run = os.path.join(workdir, train_configs[-1].variant())
    result = deploy.export_workdir(run)
    print(
        f"## Export\n\n{result.path} ({os.path.getsize(result.path)} bytes), "
        f"sidecar {result.sidecar_path}"
    )
    print(result.report.summary() if result.report is not None else "", flush=True)
    return result.path


def main(argv):
    del argv
    app_logging.quiet_info_logs()
    started = time.time()
    workdir = os.path.expanduser(FLAGS.workdir)
    try:
        size_table()
        train_configs = configs()
        reports = train_all(workdir, train_configs)
        compare(workdir, reports, wall_time_s=time.time() - started)
        export_tentaclenet(workdir, train_configs)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"demo.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"Written to {os.path.join(workdir, 'comparison.md')} and comparison.json.")
    return 0


if __name__ == "__main__":
    app.run(main)
