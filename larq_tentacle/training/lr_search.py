"""A fair FP32 reference: its learning rate chosen on the validation split from a small grid.

One learning rate suits the binary models' recipe and not necessarily the float
baseline, whose test accuracy then swings by points with it. With `lr_grid`, the FP32
run trains one candidate per learning rate, each with the full recipe (same epochs, LR
schedule and seed), in `<workdir>/lr_grid/lr_<value>/` (a run folder each, resumable as
any run). The kept candidate has the best validation accuracy of its kept model (the
epoch of lowest val_loss, the one the test number comes from); ties go to the lower
validation loss, then to the smaller learning rate. The test split is never looked at.
Its model files are copied into the run's own folder, so the run folder is a finished
FP32 run with the chosen learning rate (init_from, export and teachers read it as any).
"""

import dataclasses
import os
import shutil
from typing import Callable, List

from larq_tentacle.utils import atomic
from larq_tentacle.utils.run_folder import RunFolder

CANDIDATES = "lr_grid"
CRITERION = (
    "best validation accuracy of each candidate's kept model (lowest val_loss epoch); "
    "ties: lower validation loss, then the smaller learning rate"
)
BUDGET = "full: every candidate trains the run's whole recipe (same epochs, schedule, seed)"


def candidate_dir(workdir, learning_rate: float) -> str:
    """The run folder of the candidate with `learning_rate`, inside the FP32 run's folder."""
    return os.path.join(os.fspath(workdir), CANDIDATES, f"lr_{learning_rate:g}")


def choose(candidates: List[dict]) -> dict:
    """The candidate with the best `val_accuracy`; ties: lower `val_loss`, then smaller LR."""
    if not candidates:
        raise ValueError(
            "No learning-rate candidates to choose from. Fix: pass a non-empty lr_grid."
        )
    return min(
        candidates, key=lambda c: (-c["val_accuracy"], c["val_loss"], c["learning_rate"])
    )


def search_learning_rate(config, workdir, *, train: Callable, verbose: int = 1) -> dict:
    """Train a candidate per `config.lr_grid` value, keep the best in `workdir`.

    # Arguments
        config: a resolved TrainConfig with `lr_grid` (precision "float").
        workdir: the FP32 run's folder; it receives the chosen candidate's best_model.h5,
            last_model.h5 and history.csv.
        train: the function that trains one run (`training.train`), called per candidate.

    # Returns
        `learning_rate` (the chosen), `candidates` (per learning rate: its validation
        accuracy and loss, best epoch and folder), `criterion` and `budget`.
    """
    candidates = []
    for learning_rate in config.lr_grid:
        folder = candidate_dir(workdir, learning_rate)
        if verbose:
            print(f"lr_grid: FP32 candidate learning_rate={learning_rate:g} in {folder}")
        # Only the chosen run gets the int8 fine-tune (in the parent folder).
        candidate = dataclasses.replace(
            config, learning_rate=learning_rate, lr_grid=None, int8_epochs=0
        )
        report = train(candidate, folder, verbose=verbose)
        candidates.append(
            dict(
                learning_rate=learning_rate,
                val_accuracy=report["best_val_accuracy"],
                val_loss=report["best_val_loss"],
                best_epoch=report["best_epoch"],
                workdir=folder,
            )
        )
    chosen = choose(candidates)
    _keep(RunFolder(chosen["workdir"]), RunFolder(workdir))
    if verbose:
        print(f"lr_grid: kept learning_rate={chosen['learning_rate']:g} "
              f"(val accuracy {100 * chosen['val_accuracy']:.2f}%)")
    return dict(
        learning_rate=chosen["learning_rate"], candidates=candidates, criterion=CRITERION,
        budget=BUDGET,
    )


def _keep(source: RunFolder, target: RunFolder) -> None:
    """Copy the chosen candidate's models and history into the run folder, each atomically."""
    target.make()
    for name in (RunFolder.BEST_MODEL, RunFolder.LAST_MODEL, RunFolder.HISTORY):
        with atomic.atomic_path(target.file(name)) as temporary:
            shutil.copyfile(source.file(name), temporary)
