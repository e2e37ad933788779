"""Keras callbacks that make a run resumable after a crash at any moment.

Keras's BackupAndRestore brings back the weights, the optimizer and the epoch counter
of the last completed epoch. What it does not bring back lives in `history.csv`, which
is the run's single source of truth for everything per epoch: the rows of the epochs
that will run again are dropped, the best val_loss so far is read from it, and the LR
schedule's plateau counter is replayed from it. Every file is replaced atomically, and
BackupAndRestore goes last in the callback list: if the process dies between writing
history.csv and the backup, the epoch simply runs again.
"""

import csv
import io
import math
import os
import time
import warnings
from typing import List

import tensorflow as tf

from larq_tentacle.utils import atomic
from larq_tentacle.utils.run_folder import RunFolder


def read_history(path) -> List[dict]:
    """Rows of a history.csv as dicts of floats (`epoch` as int, 1-based); [] if absent."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as file:
        rows = []
        for row in csv.DictReader(file):
            parsed = {key: _number(value) for key, value in row.items()}
            parsed["epoch"] = int(parsed["epoch"])
            rows.append(parsed)
    return rows


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def write_history(path, rows: List[dict]) -> None:
    columns = ["epoch"]
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


def current_lr(model) -> float:
    return float(tf.keras.backend.get_value(model.optimizer.learning_rate))


def set_lr(model, value: float) -> None:
    tf.keras.backend.set_value(model.optimizer.learning_rate, value)


class RunLog(tf.keras.callbacks.Callback):
    """Keeps `history.csv` (one row per completed epoch, 1-based `epoch`, with the LR used).

    `initial_epoch` is the number of epochs already done when this fit started (after
    BackupAndRestore restored its backup).
    """

    def __init__(self, directory):
        super().__init__()
        self.path = RunFolder(directory).history
        self.rows: List[dict] = []
        self.initial_epoch = None
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.initial_epoch is None:
            self.initial_epoch = epoch
            self.rows = [row for row in read_history(self.path) if row["epoch"] <= epoch]
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({key: float(value) for key, value in (logs or {}).items() if key != "lr"})
        # Read before the LR schedule's on_epoch_end: the LR this epoch trained with.
        row.update(lr=current_lr(self.model), epoch_time_s=time.time() - self._epoch_start)
        self.rows = [r for r in self.rows if r["epoch"] <= epoch] + [row]
        write_history(self.path, self.rows)


class AtomicCheckpoint(tf.keras.callbacks.Callback):
    """Saves `best_model.h5` (lowest `monitor`) and `last_model.h5` after every epoch.

    Each save goes to a temporary file renamed into place, so a crash never leaves a
    half-written model. The best value so far comes from `run_log`'s rows, so it survives
    a restart. Put it after `run_log` in the callback list.
    """

    def __init__(self, directory, run_log: RunLog, *, monitor: str = "val_loss"):
        super().__init__()
        self.folder = RunFolder(directory)
        self.run_log = run_log
        self.monitor = monitor
        self.best = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.best is None:
            previous = [
                row[self.monitor]
                for row in self.run_log.rows
                if row["epoch"] <= epoch and self.monitor in row
            ]
            self.best = min(previous, default=math.inf)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"AtomicCheckpoint monitors {self.monitor!r}, which the epoch logs lack "
                f"({sorted(logs or {})}). Fix: pass validation data to fit."
            )
        if value < self.best or not os.path.exists(self.folder.best_model):
            self.best = min(self.best, float(value))
            self.save(self.folder.best_model)
        self.save(self.folder.last_model)

    def save(self, path: str) -> None:
        with atomic.atomic_path(path) as temporary:
            with warnings.catch_warnings():
                # .h5 is the contract of the workdir (apps/export.py reads it).
                warnings.filterwarnings(
                    "ignore", message="You are saving your model as an HDF5 file"
                )
                self.model.save(temporary, include_optimizer=False)


class ResumablePlateau(tf.keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose patience counter survives a restart.

    On the first epoch of a fit it resets the LR to `initial_lr` and replays the
    val_loss of the epochs already in `run_log`, which reproduces both the plateau
    counter and the LR the run had reached (with or without a restored optimizer).
    Put it after `run_log` in the callback list.
    """

    def __init__(self, run_log: RunLog, *, initial_lr: float, **kwargs):
        super().__init__(**kwargs)
        self.run_log = run_log
        self.initial_lr = float(initial_lr)
        self._replayed = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._replayed:
            return
        self._replayed = True
        set_lr(self.model, self.initial_lr)
        verbose, self.verbose = self.verbose, 0
        try:
            for row in self.run_log.rows:
                if row["epoch"] <= epoch and self.monitor in row:
                    super().on_epoch_end(row["epoch"] - 1, {self.monitor: row[self.monitor]})
        finally:
            self.verbose = verbose
