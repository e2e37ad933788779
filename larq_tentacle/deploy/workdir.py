"""Export the model of a training workdir (a run folder written by `lt.train`).

The run folder has everything `export` needs besides the model: its
preprocessing.json, config.json (model name, dataset location) and the test
images of its dataset for the parity check.
"""

import os
import warnings

import numpy as np

from larq_tentacle.deploy.exporting import ExportResult, export
from larq_tentacle.utils import validation
from larq_tentacle.utils.run_folder import RunFolder


def export_workdir(
    workdir,
    *,
    output=None,
    sample="auto",
    num_samples: int = 64,
    data_dir=None,
    calibration_samples: int = 512,
    **export_options,
) -> ExportResult:
    """Export the best model of a training workdir (issue-3 layout) with its preprocessing.

    # Arguments
        workdir: a folder written by `lt.train` (best_model.h5 or last_model.h5,
            preprocessing.json, config.json).
        output: the `.tflite` to write (default `<workdir>/<workdir name>.tflite`).
        sample: preprocessed images for the parity check, "auto" (the first
            `num_samples` test images of the run's dataset, if it loads here; else
            random inputs only) or None (random inputs only).
        data_dir: where the dataset lives (default: the run's config.json).
        calibration_samples: with `quantize="int8"` and no `calibration_data`, this many
            images of the run's training split (preprocessed as recorded) set the int8 ranges.
            A run trained with `--int8_epochs` has its fine-tuned `int8_model.h5`: an int8
            export writes that model as it is (no calibration; `fused` is refused).
        **export_options: passed to `export` (fused, strict, target, atol, ...).
    """
    workdir = os.fspath(workdir)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(
            f"No workdir at {workdir!r}. Fix: pass the --workdir of a training run."
        )
    run = RunFolder(workdir)
    models = run.models()
    if not models:
        raise FileNotFoundError(
            f"{workdir!r} has none of {list(RunFolder.MODELS)}: training has not saved a model "
            "yet. Fix: let apps/train.py finish at least one epoch, or pass a saved model instead."
        )
    config = run.read_json(run.config) or {}
    preprocessing = run.read_json(run.preprocessing)
    from larq_tentacle.core.serialization import load_model

    source = models[0]
    if export_options.get("quantize") == "int8" and _fine_tuned_int8(run, config):
        # The fine-tuned int8 model exports as it is: calibrating again would undo the tuning.
        source = run.int8_model
    model = load_model(source, compile=False)
    name = os.path.basename(os.path.normpath(os.path.abspath(workdir)))
    output = os.fspath(output) if output is not None else os.path.join(workdir, f"{name}.tflite")
    if isinstance(sample, str) and sample == "auto":
        sample = _workdir_sample(preprocessing, num_samples, data_dir or config.get("data_dir"))
    elif isinstance(sample, (str, os.PathLike)):
        sample = np.load(os.fspath(sample), allow_pickle=False)
    int8 = export_options.get("quantize") == "int8"
    if int8 and source != run.int8_model and export_options.get("calibration_data") is None:
        export_options["calibration_data"] = _calibration_images(
            preprocessing, calibration_samples, data_dir or config.get("data_dir")
        )
    export_options.setdefault("model_name", _run_name(config, model))
    export_options.setdefault("source", os.path.abspath(source))
    return export(model, output, sample=sample, preprocessing=preprocessing, **export_options)


def _fine_tuned_int8(run: RunFolder, config: dict) -> bool:
    """The run has a fine-tuned int8 model (`--int8_epochs`), and still asks for it."""
    return bool(config.get("int8_epochs")) and os.path.isfile(run.int8_model)


def _run_name(config: dict, model) -> str:
    if config.get("model"):
        precision = config.get("precision", "binary")
        if precision == "float":
            return f"{config['model']}_fp32"
        return f"{config['model']}_tentacles{config.get('tentacles', 1)}"
    return model.name


def _workdir_sample(preprocessing, num_samples: int, data_dir):
    """The run's first test images, or None (random inputs only) when the data is not here."""
    num_samples = validation.positive_int("num_samples", num_samples)
    if not isinstance(preprocessing, dict) or not preprocessing.get("dataset"):
        return None
    try:
        from larq_tentacle.data import pipeline as data

        return data.test_images(preprocessing, num_samples, data_dir=data_dir)
    # FileNotFoundError offline / without the files (or a moved folder), ValueError for a
    # dataset this version does not know, ImportError without tensorflow-datasets: random
    # inputs still verify.
    except (OSError, ValueError, ImportError) as error:
        warnings.warn(
            f"Could not load {preprocessing['dataset']!r} for the parity check ({error}); "
            "verifying on random inputs only.",
            stacklevel=3,
        )
        return None


def _calibration_images(preprocessing, num_samples: int, data_dir):
    """Training images of the run for the int8 ranges; an int8 export cannot do without."""
    num_samples = validation.positive_int("calibration_samples", num_samples)
    if not isinstance(preprocessing, dict) or not preprocessing.get("dataset"):
        raise ValueError(
            "An int8 export of a workdir calibrates on its training images, but its "
            "preprocessing.json names no dataset. Fix: pass calibration_data (a .npy of "
            "preprocessed training images, apps/export.py --calibration=PATH)."
        )
    from larq_tentacle.data import pipeline as data

    return data.train_images(preprocessing, num_samples, data_dir=data_dir)
