"""Quantization-aware fine-tuning (`--int8_epochs=N`): the int8 model trained a little more.

After the normal training, `fine_tune_int8` rewrites the run's best model with
`core.int8.int8_model` (its `Int8Range` ranges calibrated on `CALIBRATION_SAMPLES`
of the run's training images, BatchNorms after float convs folded, float kernels
on the int8 grid), then trains it `int8_epochs` more epochs with the run's recipe
at `int8_learning_rate(config)` = learning_rate × lr_factor (the rate after the
recipe's first plateau, 1e-4 for the paper's): small enough to keep what the float
training found, large enough that the ranges and the weights move together. The
best epoch (lowest val_loss) then has its float conv/Dense kernels put back on the
int8 grid (`core.int8.snap_weights`), so the Keras model computes what the int8
`.tflite` will, and is saved as `int8_model.h5`; `deploy.workdir.export_workdir`
exports that model, as it is, for `--quantize=int8`.

Run folder (RunFolder names):

    int8/               the fine-tune's own run folder (history.csv, best/last model, backup/)
    int8/source.json    what it started from: the float run's completed epochs
    int8_model.h5       the fine-tuned int8 model (written atomically, last)

Resume: an interrupted fine-tune continues from `int8/backup` like any run
(`fit_model`), and the float training is not repeated (a finished run is not
trained again). When the float run changed since the fine-tune started (its
epochs grew, so its best model may be another), or `int8_epochs` shrank, the
`int8/` folder is cleared and the fine-tune starts over from the new best model.
"""

import dataclasses
import os
import shutil

import numpy as np

from larq_tentacle.core.int8 import int8_model, snap_weights
from larq_tentacle.core.serialization import load_model
from larq_tentacle.training import callbacks
from larq_tentacle.training.report import LOSS
from larq_tentacle.training.tracing import skip_autograph
from larq_tentacle.utils import atomic
from larq_tentacle.utils.run_folder import RunFolder

__all__ = ["CALIBRATION_SAMPLES", "fine_tune_int8", "int8_learning_rate"]

CALIBRATION_SAMPLES = 512
_SOURCE = "source.json"


def int8_learning_rate(config) -> float:
    """The fine-tune's initial learning rate: the recipe's rate after its first plateau."""
    return float(config.learning_rate * config.lr_factor)


def fine_tune_int8(config, run: RunFolder, bundle, *, fit, strategy, verbose=1) -> dict:
    """Fine-tune the int8 form of `run`'s best model; write `int8_model.h5`; report on it.

    # Arguments
        config: the run's resolved TrainConfig (`int8_epochs` > 0).
        run: the finished float run's folder.
        bundle: its DatasetBundle (training, validation and test splits).
        fit: `training.loop.fit_model` (passed in: the loop imports this module).
        strategy: the run's tf.distribute strategy.

    # Returns
        The report's int8 fields: `int8_epochs`, `int8_learning_rate`,
        `int8_calibrated_test_accuracy` (before fine-tuning), `int8_test_accuracy`,
        `int8_test_loss`, `int8_best_epoch`, `int8_train_time_s`, `int8_model`.
    """
    tune = run.int8_tuning()
    float_epochs = len(callbacks.read_history(run.history))
    _clear_if_stale(tune, float_epochs=float_epochs, int8_epochs=config.int8_epochs)
    tune.make()
    tune.remove_stale_temporaries()
    tune.write_json(tune.file(_SOURCE), dict(float_epochs=float_epochs,
                                             int8_epochs=config.int8_epochs))
    float_model = load_model(run.best_model, compile=False)
    calibration = calibration_images(
        bundle, CALIBRATION_SAMPLES, seed=config.seed, data_dir=config.data_dir
    )
    with strategy.scope():
        model = int8_model(float_model, calibration)
        calibrated = _evaluate(model, bundle)
    tune_config = dataclasses.replace(
        config, epochs=config.int8_epochs, learning_rate=int8_learning_rate(config), stages=1,
        stage1_epochs=None, lr_grid=None,
    )
    fit(model, bundle, config=tune_config, workdir=tune.path, verbose=verbose)
    best = load_model(tune.best_model, compile=False)
    snap_weights(best)
    loss, accuracy = _evaluate(best, bundle)
    with atomic.atomic_path(run.int8_model) as temporary:
        best.save(temporary, include_optimizer=False)
    rows = callbacks.read_history(tune.history)[: config.int8_epochs]
    best_row = min(rows, key=lambda row: row["val_loss"]) if rows else {}
    return dict(
        int8_epochs=config.int8_epochs,
        int8_learning_rate=tune_config.learning_rate,
        int8_calibration_samples=len(calibration),
        int8_calibrated_test_accuracy=calibrated[1],
        int8_test_accuracy=accuracy,
        int8_test_loss=loss,
        int8_best_epoch=best_row.get("epoch"),
        int8_train_time_s=float(sum(row.get("epoch_time_s", 0.0) for row in rows)),
        int8_model=RunFolder.INT8_MODEL,
    )


def calibration_images(bundle, num_samples: int, *, seed: int, data_dir=None) -> np.ndarray:
    """Up to `num_samples` preprocessed training images (unaugmented) for the int8 ranges."""
    arrays = bundle.arrays
    if arrays is not None:
        x = arrays.x_train
        picked = np.random.default_rng(seed).permutation(len(x))[:num_samples]
        return np.asarray(x[np.sort(picked)], np.float32)
    from larq_tentacle.data import pipeline

    return pipeline.train_images(bundle.preprocessing, num_samples, data_dir=data_dir)


def _clear_if_stale(tune: RunFolder, *, float_epochs: int, int8_epochs: int) -> None:
    """Start the fine-tune over when the float model it began from is not the run's any more."""
    source = tune.read_json(tune.file(_SOURCE)) if os.path.isdir(tune.path) else None
    if source is None:
        return
    if source.get("float_epochs") != float_epochs or source.get("int8_epochs", 0) > int8_epochs:
        shutil.rmtree(tune.path)


def _evaluate(model, bundle):
    """(test loss, test accuracy) of `model` on the run's test split."""
    model.compile(loss=LOSS, metrics=["accuracy"])
    skip_autograph(model)
    loss, accuracy = model.evaluate(bundle.test, verbose=0)
    return float(loss), float(accuracy)
