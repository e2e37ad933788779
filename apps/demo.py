"""The main job (`make demo`): the paper's size table, then FP32 vs BNN vs TentacleNet on real data.

    python apps/demo.py --workdir=runs/demo

1. prints the paper's model-size table (Table 1/2 sizes, ours vs the paper's);
2. trains four models on scikit-learn's handwritten digits (real images that ship
   offline) with `larq_tentacle.training.train`, same data, epochs and seed: the FP32
   baseline (its learning rate chosen on the validation split from `--lr_grid`), its BNN,
   a TentacleNet with the paper's recipe and one with the best recipe (`--best_recipe`,
   default the recipe pilot's choice: ReActNet shifts, distilled from the FP32 run above);
3. prints the comparison (test accuracy with its 95% Wilson interval, Δ vs FP32, paper
   kB, validation accuracy) and McNemar's exact tests on the same test images:
   TentacleNet (paper) vs BNN, TentacleNet (best) vs TentacleNet (paper) and vs BNN;
4. exports the TentacleNet with the higher validation accuracy (never chosen by test
   accuracy) with LCE, twice, each verified against Keras: the float-stem `.tflite` and
   the int8 one (all that is not binary in int8, ranges from training images);
5. writes all of it to `<workdir>/comparison.md` and `<workdir>/comparison.json`.

Each step is one function; the statistics live in `larq_tentacle.experiments.comparison`.
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
from larq_tentacle.experiments import best_recipe, comparison, reporting  # noqa: E402
from larq_tentacle.training.recipe import Recipe, lr_grid_from_flag  # noqa: E402
from larq_tentacle.training.tracing import without_autograph  # noqa: E402
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
flags.DEFINE_integer(
    "tentacles", 3, "Tentacles of both TentacleNets, >= 2 (issue 13's goal: FP32 at n <= 3)."
)
flags.DEFINE_integer("epochs", 20, "Epochs per model.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-2, "Initial Adam learning rate of the binary models.")
flags.DEFINE_string(
    "lr_grid",
    "1e-3,1e-2",
    "The FP32 baseline's learning rates to choose from on the validation split (each trains "
    "the full recipe); '' trains it with --learning_rate. Two values keep `make demo` under "
    "5 minutes; the sweep's grid adds 3e-3, which the recipe pilot's seeds never chose.",
)
flags.DEFINE_integer(
    "lr_patience",
    3,
    "ReduceLROnPlateau patience (scaled down from the paper's 15 for the short run).",
)
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_string(
    "best_recipe",
    best_recipe.PILOT_BEST_RECIPE,
    "The second TentacleNet's recipe as key=value overrides of the paper's, the syntax of "
    "apps/sweep.py --best_recipe (teacher=fp32: distil from this demo's FP32 run). Default: "
    "the recipe pilot's choice on the validation split (docs/results/recipe_pilot.md).",
)
flags.DEFINE_bool(
    "int8_io", True, "The int8 .tflite takes int8 input and gives int8 output (else float I/O)."
)
FLAGS = flags.FLAGS

DATASET = "digits"


@dataclasses.dataclass
class Run:
    """One trained model of the demo: its folder name, its row label and its config."""

    name: str
    label: str
    config: training.TrainConfig


# Steps 1 and 4 build and convert models: without AutoGraph (training.tracing) they take a
# quarter to a third less time here, which keeps `make demo` in its 5-minute budget.
@without_autograph
def size_table() -> str:
    """Step 1: the paper's model sizes next to ours."""
    table = reporting.size_table_markdown()
    print("## Model sizes (kB as the paper counts them)\n")
    print(table + "\n", flush=True)
    return table


def recipe() -> Recipe:
    """The paper's recipe of all four models (the rest: the paper's defaults)."""
    return Recipe(
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        lr_patience=FLAGS.lr_patience,
        seed=FLAGS.seed,
    )


def best_overrides() -> dict:
    """--best_recipe, typed and checked before anything trains (ValueError names the key)."""
    overrides = best_recipe.best_recipe_from_flag(FLAGS.best_recipe)
    if not overrides:
        raise ValueError(
            f"--best_recipe={FLAGS.best_recipe!r} sets nothing, so both TentacleNets would be "
            f"the same. Fix: e.g. --best_recipe={best_recipe.PILOT_BEST_RECIPE}."
        )
    return best_recipe.check_best_recipe(overrides, recipe())


def plan(workdir, overrides: dict) -> list:
    """Step 2a: FP32, BNN, TentacleNet (paper), TentacleNet (best); same data and budget."""
    n = FLAGS.tentacles
    if not isinstance(n, int) or n < 2:
        raise ValueError(
            f"--tentacles={n!r}: the BNN row is already the one-tentacle model. Fix: "
            "--tentacles=3 (or any n >= 2)."
        )
    common = dict(
        model=FLAGS.model, dataset=DATASET, input_size=FLAGS.input_size,
        **dataclasses.asdict(recipe()),
    )
    fp32 = training.TrainConfig(
        **dict(common, precision="float", lr_grid=lr_grid_from_flag(FLAGS.lr_grid))
    )
    paper = training.TrainConfig(tentacles=n, **common)
    best = best_recipe.apply_best_recipe(paper, overrides)
    if best_recipe.TEACHER_KEY in overrides:
        best = dataclasses.replace(best, teacher=os.path.join(workdir, "fp32"))
    return [
        Run("fp32", "FP32", fp32),
        Run("bnn", "BNN", training.TrainConfig(tentacles=1, **common)),
        Run(f"tn{n}", f"TentacleNet n={n} (paper)", paper),
        Run(f"tn{n}_best", f"TentacleNet n={n} (best)", best),
    ]


def train_all(workdir, runs) -> dict:
    """Step 2b: train each run in `<workdir>/<name>` (reruns resume); name -> report."""
    reports, fp32_accuracy = {}, None
    for run in runs:
        config = run.config
        if config.precision == "binary" and fp32_accuracy is not None:
            config = dataclasses.replace(config, fp32_accuracy=fp32_accuracy)
        print(f"## Training {run.label} ({config.model}, {config.dataset}, "
              f"{config.epochs} epochs)", flush=True)
        report = training.train(config, os.path.join(workdir, run.name), verbose=2)
        if config.precision == "float":
            fp32_accuracy = report["test_accuracy"]
            report["delta_vs_fp32"] = 0.0
        reports[run.name] = dict(report, run=run.name, label=run.label)
    return reports


def _row(report, interval) -> dict:
    val = report.get("best_val_accuracy")
    return dict(
        variant=report["label"],
        accuracy=100 * report["test_accuracy"],
        interval="{:.2f} – {:.2f}".format(*interval),
        delta=100 * report["delta_vs_fp32"],
        paper_kb=report["paper_size_kb"],
        val_accuracy="-" if val is None else f"{100 * val:.2f}",
        tentacles=" ".join(f"{100 * a:.1f}" for a in report.get("tentacle_accuracies") or [])
        or "-",
        epochs=report["epochs_completed"],
        train_s=report["train_time_s"],
    )


def _table(rows) -> str:
    return reporting.markdown_table(
        rows,
        ["variant", "accuracy", "interval", "delta", "paper_kb", "val_accuracy", "tentacles",
         "epochs", "train_s"],
        ["model", "test accuracy %", "95% interval % (Wilson)", "Δ vs FP32 (pp)", "paper kB",
         "val accuracy %", "each tentacle alone %", "epochs", "train s"],
    )


def _lr_line(fp32) -> str:
    search = fp32.get("lr_search")
    if not search:
        return ""
    candidates = ", ".join(
        f"{c['learning_rate']:g} ({100 * c['val_accuracy']:.2f}%)" for c in search["candidates"]
    )
    return (
        f"FP32 learning rate {search['learning_rate']:g}, chosen by validation accuracy "
        f"from {candidates}; each candidate trained the full {fp32['epochs']} epochs.\n"
    )


def _recipe_line(runs, overrides) -> str:
    best = runs[3]
    teacher = " (teacher: the FP32 run above)" if best.config.teacher else ""
    return (
        f"{best.label}: the paper's recipe with {best_recipe.describe(overrides)}{teacher}, "
        "chosen on the validation split in docs/results/recipe_pilot.md.\n"
    )


def compare(workdir, runs, reports, overrides) -> tuple:
    """Step 3: the comparison table and paired tests, printed; (markdown, data)."""
    correct = comparison.correct_per_image(
        {run.name: os.path.join(workdir, run.name) for run in runs}
    )
    fp32, bnn, paper, best = (run.name for run in runs)
    tests = comparison.paired_tests(correct, [(paper, bnn), (best, paper), (best, bnn)])
    rows = [_row(reports[name], comparison.wilson_percent(correct[name])) for name in correct]
    labels = {run.name: run.label for run in runs}
    first = reports[fp32]
    title = (
        f"{first['model']} on {first['dataset']} "
        f"({first['input_shape'][0]}x{first['input_shape'][1]}), "
        f"test split of {first['split_sizes']['test']} images"
    )
    markdown = (
        f"## FP32 vs BNN vs TentacleNet: {title}\n\n{_table(rows)}\n\n"
        + "".join(comparison.mcnemar_sentence(test, labels) + "\n" for test in tests)
        + _recipe_line(runs, overrides) + _lr_line(first)
    )
    print(markdown, flush=True)
    return markdown, dict(rows=rows, mcnemar=tests, best_recipe=overrides,
                          reports=list(reports.values()))


@without_autograph
def export_chosen(workdir, runs, reports) -> tuple:
    """Step 4: the TentacleNet chosen on validation -> float-stem and int8 .tflite, verified."""
    from larq_tentacle.deploy import workdir as deploy

    labels = {run.name: run.label for run in runs}
    choice = comparison.choose_by_validation({name: reports[name] for name in labels
                                              if name.startswith("tn")})
    scores = ", ".join(f"{labels[name]} {100 * accuracy:.2f}%"
                       for name, accuracy in choice["val_accuracy"].items())
    lines = [f"## Export: {labels[choice['run']]}\n",
             f"Chosen by validation accuracy ({scores}): the {choice['rule']}.\n"]
    print("\n".join(lines), flush=True)
    run_dir = os.path.join(workdir, choice["run"])
    files = {}
    for mode, options in (
        ("float", {}),
        ("int8", dict(quantize="int8", int8_io=FLAGS.int8_io,
                      output=os.path.join(run_dir, f"{choice['run']}_int8.tflite"))),
    ):
        result = deploy.export_workdir(run_dir, **options)
        size = os.path.getsize(result.path)
        files[mode] = dict(path=result.path, bytes=size, sidecar=result.sidecar_path,
                           passed=result.report is not None and result.report.passed)
        text = (f"{mode}: {result.path} ({size} bytes, {size / 1024:.1f} kB), sidecar "
                f"{result.sidecar_path}\n{result.report.summary() if result.report else ''}\n")
        print(text, flush=True)
        lines.append(text)
    return "\n".join(lines), dict(choice=choice, files=files)


def write_outputs(workdir, markdown: str, data: dict) -> None:
    """Step 5: comparison.md and comparison.json (atomic: a stopped run leaves no half file)."""
    atomic.write_text(os.path.join(workdir, "comparison.md"), markdown)
    atomic.write_json(os.path.join(workdir, "comparison.json"), data)


def main(argv):
    del argv
    app_logging.quiet_info_logs()
    started = time.time()
    workdir = os.path.expanduser(FLAGS.workdir)
    try:
        overrides = best_overrides()
        runs = plan(workdir, overrides)
        size_table()
        reports = train_all(workdir, runs)
        markdown, data = compare(workdir, runs, reports, overrides)
        export_markdown, data["export"] = export_chosen(workdir, runs, reports)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"demo.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    data["wall_time_s"] = time.time() - started
    total = f"Total wall time: {data['wall_time_s']:.0f} s (size table, training, exports)\n"
    write_outputs(workdir, f"{markdown}\n{export_markdown}\n{total}", data)
    print(total + f"Written to {os.path.join(workdir, 'comparison.md')} and comparison.json.")
    return 0


if __name__ == "__main__":
    app.run(main)
