"""The int8 CNN an engineer would ship instead: the sweep's `int8_widths` points.

Per width w and seed, the sweep's float base model with every hidden layer's channels
times w (`lt.build(model, precision="float", width=w)`) is trained with the FP32
point's recipe (its `lr_grid` included), quantized to int8 by the project's own int8
path (`core.int8.int8_model` through `lt.export(quantize="int8")`, calibrated on
training images, as TentacleNet's int8 export is) and the written `.tflite` is scored
on the test split through the LCE interpreter. A width-1 point whose training run
would be exactly the seed's FP32 point reuses that trained model instead of training
it again (`reused_run` says so).

The point records the int8 file's `test_accuracy`, the float model's
(`float_test_accuracy`), `paper_kb` by the paper's rule with 8 bits per weight
(`core.size`, `float_bits=8`) and the file's `tflite_bytes`. Its run folder,
`runs/int8_w<w>_s<seed>/`, holds the training run (unless reused) and `int8.tflite`
with its sidecar.
"""

import dataclasses
import os
import time

import numpy as np

from larq_tentacle.core.serialization import load_model
from larq_tentacle.core.size import paper_size_kb
from larq_tentacle.data import pipeline as data
from larq_tentacle.deploy.int8 import dequantize_output, io_quantization, quantize_input
from larq_tentacle.deploy.tflite_file import read_flatbuffer
from larq_tentacle.deploy.verification import lce_interpreter
from larq_tentacle.deploy.workdir import export_workdir
from larq_tentacle.experiments.plan import point_id
from larq_tentacle.experiments.sweep_config import SweepConfig
from larq_tentacle.experiments.sweep_folder import SweepFolder
from larq_tentacle.training import loop as training
from larq_tentacle.training.config import TrainConfig
from larq_tentacle.training.report import read_test_predictions
from larq_tentacle.utils.run_folder import RunFolder

INT8_FILE = "int8.tflite"
# Training images that set the int8 ranges (as `apps/export.py --quantize=int8`).
CALIBRATION_SAMPLES = 512


def int8_train_config(config: SweepConfig, *, seed: int, width: float) -> TrainConfig:
    """The FP32 point's TrainConfig of `seed`, with the base model's channels times `width`."""
    options = dict(config.model_options)
    if width != 1.0:  # width 1 is the FP32 point's model: the same config, reusable
        options["width"] = width
    return config.train_config(
        precision="float", seed=seed, fp32_accuracy=None, model_options=options
    )


def train_int8_point(config: SweepConfig, workdir, job: dict, *, verbose: int = 0) -> dict:
    """Train (or reuse), export to int8 and score one int8 point; returns its record."""
    folder = SweepFolder(workdir)
    run = folder.run(job["points"][0])
    train_config = int8_train_config(config, seed=job["seed"], width=job["width"])
    reused = _reusable_fp32_run(config, folder, job["seed"], train_config)
    source = folder.run(reused) if reused else run
    # A run finished before a stop (its report written) is exported, not trained again.
    report = source.read_json(source.report)
    if report is None:
        report = training.train(train_config, run.path, verbose=verbose)
    started = time.time()
    os.makedirs(run.path, exist_ok=True)
    tflite = run.file(INT8_FILE)
    result = export_workdir(
        source.path, output=tflite, quantize="int8", data_dir=config.data_dir,
        calibration_samples=CALIBRATION_SAMPLES,
    )
    accuracy = tflite_test_accuracy(tflite, source.path, data_dir=config.data_dir)
    model = load_model(source.best_model, compile=False)
    return dict(
        model=config.model, dataset=config.dataset, method="int8", n=1, width=job["width"],
        seed=job["seed"], recipe="paper", point=job["points"][0], teacher=None,
        test_accuracy=accuracy,
        float_test_accuracy=report["test_accuracy"],
        paper_kb=paper_size_kb(model, float_bits=8),
        paper_kb_exact=paper_size_kb(model, exact=True, float_bits=8),
        float_paper_kb=report["paper_size_kb"],
        tflite_bytes=result.sidecar["tflite_bytes"],
        # The model's training compute (the FP32 point's when reused) plus this export.
        wall_time_s=report["wall_time_s"] + time.time() - started,
        epochs_completed=report["epochs_completed"],
        input_shape=report["input_shape"],
        learning_rate=report.get("learning_rate"),
        reused_run=reused,
    )


def _reusable_fp32_run(config: SweepConfig, folder: SweepFolder, seed: int,
                       train_config: TrainConfig):
    """The seed's finished FP32 point's run name if it trained exactly `train_config`."""
    name = point_id("fp32", 1, seed)
    if config.fp32_accuracy is not None or not os.path.isfile(folder.point(name)):
        return None
    fp32 = config.train_config(precision="float", seed=seed, fp32_accuracy=None)
    same = dataclasses.asdict(fp32.resolved()) == dataclasses.asdict(train_config.resolved())
    run = folder.run(name)
    finished = os.path.isfile(run.best_model) and os.path.isfile(run.report)
    return name if same and finished else None


def tflite_test_accuracy(tflite_path, run_dir, *, data_dir=None) -> float:
    """Top-1 accuracy of a `.tflite` (float or int8) on the test split of a training run.

    The images are the run's test split preprocessed as its preprocessing.json
    records, the labels its test_predictions.csv (same order); int8 input and output
    are quantized and dequantized with the file's own scales.
    """
    run = RunFolder(run_dir)
    labels, _ = read_test_predictions(run_dir)
    preprocessing = run.read_json(run.preprocessing)
    x = data.test_images(preprocessing, len(labels), data_dir=data_dir)
    if len(x) != len(labels):
        raise ValueError(
            f"{run_dir!r} has {len(labels)} test labels but its dataset gave {len(x)} test "
            "images. Fix: pass the data_dir the run was trained with."
        )
    with open(tflite_path, "rb") as file:
        flatbuffer = file.read()
    sidecar = run.read_json(os.fspath(tflite_path) + ".json") or {}
    indirect = bool(sidecar.get("kernel", {}).get("use_indirect_bgemm", False))
    io = io_quantization(read_flatbuffer(flatbuffer))
    interpreter = lce_interpreter(flatbuffer, use_indirect_bgemm=indirect)
    outputs = dequantize_output(interpreter.predict(quantize_input(x, io), verbose=0), io)
    predictions = np.argmax(np.asarray(outputs).reshape(len(x), -1), axis=-1)
    return float(np.mean(predictions == labels))
