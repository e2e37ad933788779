"""Quantization-aware int8 fine-tuning (`--int8_epochs`, issue 14 item 1).

One FerNet n=2 on 16x16 digits trains 5 epochs and fine-tunes its int8 form 1 epoch
(`tuned_run`); the tests read its run folder, export it, and rerun it.
"""

import dataclasses
import json
import os

import numpy as np
import pytest

import larq_tentacle as lt
from helpers import loaded_app, run_main
from larq_tentacle.core import int8 as core_int8
from larq_tentacle.data import pipeline as data
from larq_tentacle.deploy import int8 as deploy_int8
from larq_tentacle.deploy import tflite_file
from larq_tentacle.deploy.workdir import export_workdir
from larq_tentacle.training import callbacks
from larq_tentacle.training import loop as training
from larq_tentacle.training.int8_tuning import int8_learning_rate
from larq_tentacle.utils.run_folder import RunFolder


def _config(**overrides):
    values = dict(
        # 5 epochs at 1e-2 learn digits (~89 %); 3 at 3e-3 stayed at chance.
        model="fernet", dataset="digits", input_size=16, tentacles=2, epochs=5, batch_size=64,
        learning_rate=1e-2, seed=1, int8_epochs=1,
    )
    values.update(overrides)
    return lt.TrainConfig(**values)


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("int8_tuned"))
    report = training.train(_config(), workdir, verbose=0)
    return workdir, report


@pytest.fixture(scope="module")
def train_app():
    yield from loaded_app("train")


@pytest.fixture(scope="module")
def export_app():
    yield from loaded_app("export")


# --- bad values: refused before anything is written ----------------------------------


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(int8_epochs=-2), ["int8_epochs", "-2", "Fix", "--int8_epochs=3"]),
        (dict(int8_epochs=1.5), ["int8_epochs", "1.5", "Fix"]),
        (dict(int8_epochs=True), ["int8_epochs", "True", "Fix"]),
        (dict(int8_epochs=2, strategy="multi_worker"), ["int8_epochs=2", "multi_worker", "Fix"]),
    ],
    ids=["negative", "float", "bool", "multi-worker"],
)
def test_bad_int8_epochs_are_refused_with_the_fix(overrides, words):
    with pytest.raises(ValueError) as error:
        _config(**overrides).resolved()
    for word in words:
        assert word in str(error.value)


def test_int8_epochs_default_off_and_float_runs_may_fine_tune():
    assert lt.TrainConfig(model="nin").resolved().int8_epochs == 0
    # The FP32 baseline in int8 is the int8 CNN an engineer would ship: fine-tuning it is fine.
    assert _config(precision="float", tentacles=1).resolved().int8_epochs == 1


def test_train_app_refuses_negative_int8_epochs(train_app, capsys, tmp_path):
    code = run_main(
        train_app, ["--model=nin", "--dataset=digits", "--int8_epochs=-1",
                    f"--workdir={tmp_path}"], program="train.py",
    )
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.startswith("train.py: error: ") and "\n" not in error
    assert "int8_epochs" in error and "-1" in error and "Fix" in error
    assert not os.listdir(tmp_path)


# --- a fine-tuned run ---------------------------------------------------------------


@pytest.mark.slow
def test_fine_tune_writes_the_int8_model_and_reports_it(tuned_run):
    workdir, report = tuned_run
    run = RunFolder(workdir)
    assert os.path.isfile(run.int8_model) and os.path.isfile(run.best_model)
    assert [row["epoch"] for row in callbacks.read_history(run.int8_tuning().history)] == [1]
    assert report["int8_epochs"] == 1
    assert report["int8_learning_rate"] == pytest.approx(int8_learning_rate(_config()))
    assert json.load(open(run.report))["int8_test_accuracy"] == report["int8_test_accuracy"]
    model = lt.load_model(run.int8_model, compile=False)
    assert core_int8.is_int8_model(model)
    # Its float kernels sit on the int8 grid the converter stores (snapping is a no-op).
    stem = model.get_layer("stem_conv1").kernel.numpy()
    np.testing.assert_allclose(core_int8.snap_to_int8(stem, per_channel=True), stem, atol=1e-6)
    # The reported accuracy is the saved model's on the test split (batching may move a
    # binary sign tie: one image).
    arrays = data.load_arrays("digits", input_shape=tuple(report["input_shape"]))
    predicted = np.argmax(model.predict(arrays.x_test, verbose=0), -1)
    accuracy = np.mean(predicted == arrays.y_test)
    assert accuracy == pytest.approx(report["int8_test_accuracy"], abs=1.5 / len(predicted))
    assert report["test_accuracy"] > 0.7
    assert report["int8_test_accuracy"] >= report["test_accuracy"] - 0.05
    for layer in model.layers:
        if isinstance(layer, core_int8.Int8Range):
            assert float(layer.minimum.numpy()) <= 0 <= float(layer.maximum.numpy())


@pytest.mark.slow
def test_export_uses_the_fine_tuned_model_without_recalibrating(tuned_run, tmp_path):
    workdir, report = tuned_run
    run = RunFolder(workdir)
    path = str(tmp_path / "tuned_int8.tflite")
    result = export_workdir(workdir, output=path, quantize="int8", int8_io=True)
    assert result.report.passed and result.report.top1_agreement * 72 >= 71
    assert result.sidecar["source"] == os.path.abspath(run.int8_model)
    quantization = result.sidecar["quantization"]
    assert "fine-tuned" in quantization["ranges"]
    graph = tflite_file.read_flatbuffer(path)
    assert deploy_int8.int8_problems(graph, int8_io=True) == []
    # The file's input scale is the fine-tuned input range, not a new calibration's.
    model = lt.load_model(run.int8_model, compile=False)
    image_range = next(
        layer for layer in model.layers if isinstance(layer, core_int8.Int8Range)
    )
    width = float(image_range.maximum.numpy() - image_range.minimum.numpy())
    assert quantization["input"]["scale"] == pytest.approx(width / 255, rel=1e-3)
    # ... and the file classifies the test images as the fine-tuned Keras model does.
    arrays = data.load_arrays("digits", input_shape=tuple(report["input_shape"]))
    io = deploy_int8.io_quantization(graph)
    from larq_tentacle.deploy.verification import lce_interpreter

    interpreter = lce_interpreter(open(path, "rb").read(), use_indirect_bgemm=False)
    got = deploy_int8.dequantize_output(
        interpreter.predict(deploy_int8.quantize_input(arrays.x_test, io)), io
    )
    keras = model.predict(arrays.x_test, verbose=0)
    assert np.mean(got.argmax(-1) == keras.argmax(-1)) >= 0.99


@pytest.mark.slow
def test_an_int8_model_is_not_calibrated_fused_or_exported_as_float(tuned_run, tmp_path):
    workdir, _ = tuned_run
    model = lt.load_model(RunFolder(workdir).int8_model, compile=False)
    x = np.zeros((32,) + tuple(model.input_shape[1:]), np.float32)
    cases = [
        (dict(quantize="int8", calibration_data=x), "calibration_data"),
        (dict(), "quantize='int8'"),
        (dict(quantize="int8", fused=True), "unfused"),
    ]
    for options, fix in cases:
        with pytest.raises(ValueError, match="already an int8 model") as error:
            lt.export(model, str(tmp_path / "m.tflite"), **options)
        assert fix in str(error.value) and "Fix" in str(error.value)
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_rerun_resumes_the_fine_tune_without_retraining(tuned_run):
    workdir, first = tuned_run
    run = RunFolder(workdir)
    float_history = open(run.history).read()
    # Killed after the fine-tune's last epoch, before int8_model.h5 was written.
    os.remove(run.int8_model)
    again = training.train(_config(), workdir, verbose=0)
    assert open(run.history).read() == float_history
    assert len(callbacks.read_history(run.int8_tuning().history)) == 1
    assert again["int8_test_accuracy"] == pytest.approx(first["int8_test_accuracy"])
    assert os.path.isfile(run.int8_model)
    # More int8 epochs extend the fine-tune only.
    longer = training.train(_config(int8_epochs=2), workdir, verbose=0)
    assert open(run.history).read() == float_history
    assert [r["epoch"] for r in callbacks.read_history(run.int8_tuning().history)] == [1, 2]
    assert longer["int8_epochs"] == 2
    # A float run that grew has another best model: the fine-tune starts over from it.
    grown = training.train(_config(epochs=6, int8_epochs=2), workdir, verbose=0)
    assert len(callbacks.read_history(run.history)) == 6
    assert len(callbacks.read_history(run.int8_tuning().history)) == 2
    source = json.load(open(run.int8_tuning().file("source.json")))
    assert source["float_epochs"] == 6 and grown["int8_epochs"] == 2
    # Turned off again: recorded, so the workdir export calibrates the float model again.
    training.train(dataclasses.replace(_config(epochs=6), int8_epochs=0), workdir, verbose=0)
    assert json.load(open(run.config))["int8_epochs"] == 0


@pytest.mark.slow
def test_export_app_takes_a_fine_tuned_model_without_calibration(
    tuned_run, export_app, tmp_path, capsys
):
    from absl import flags

    app = export_app
    flag_values = flags.FlagValues()
    app.define_flags(flag_values)
    output = tmp_path / "tuned.tflite"
    # Real test images: on a handful of random inputs one int8 sign tie is already > 1 %.
    sample = tmp_path / "sample.npy"
    np.save(sample, data.load_arrays("digits", input_shape=(16, 16, 1)).x_test[:128])
    flag_values(["export.py", f"--model={RunFolder(tuned_run[0]).int8_model}",
                 f"--output={output}", "--quantize=int8", f"--sample={sample}",
                 "--random_samples=0"])
    assert app.run(flag_values) == 0, capsys.readouterr().err
    assert "verification: PASSED" in capsys.readouterr().out
    assert "fine-tuned" in json.load(open(f"{output}.json"))["quantization"]["ranges"]
