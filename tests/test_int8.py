"""int8 export (issue 14): the non-binary parts in int8, checked in the written file.

One FerNet n=2 on 16x16 digits is fitted briefly, then exported once with int8
input/output (`int8_case`); the census, types, agreement, sidecar and predict
tests read that export. A fused NiN export and the bad-calibration errors run
on their own.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from test_deploy import digits_raw, preprocessing_for, short_fit, to_input

import larq_tentacle as lt
from helpers import loaded_app
from larq_tentacle.core import int8 as core_int8
from larq_tentacle.deploy import int8 as deploy_int8
from larq_tentacle.deploy import tflite_file
from larq_tentacle.deploy.verification import lce_interpreter
from larq_tentacle.utils.seeding import seed_everything, use_deterministic_ops

SHAPE = (16, 16, 1)
_CACHE = {}


def _digits(shape):
    raw, labels = digits_raw(shape)
    preprocessing = preprocessing_for(shape, raw[:256])
    return raw, labels, preprocessing, to_input(raw, preprocessing)


@pytest.fixture(scope="module")
def int8_case(tmp_path_factory):
    if "fernet" not in _CACHE:
        raw, labels, preprocessing, x = _digits(SHAPE)
        # Deterministic ops as every lt.train run in this process has them: the model (and
        # so the verification) is then the same whichever tests ran first.
        use_deterministic_ops(True)
        seed_everything(2)
        model = lt.build("fernet", tentacles=2, num_classes=10, input_shape=SHAPE)
        # Trained past the chaotic start (4 steps left the int8 file agreeing on 97-100 % of
        # the inputs depending on which tests ran before): 5 epochs over 1024 images.
        model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        model.fit(x[:1024], labels[:1024], batch_size=64, epochs=5, verbose=0)
        path = str(tmp_path_factory.mktemp("int8") / "fernet2_int8.tflite")
        result = lt.export(
            model, path, sample=x[-64:], preprocessing=preprocessing, quantize="int8",
            calibration_data=x[:256], int8_io=True,
        )
        _CACHE["fernet"] = dict(model=model, path=path, result=result, x=x, raw=raw)
    return _CACHE["fernet"]


@pytest.fixture(scope="module")
def predict():
    yield from loaded_app("predict")


def _ops(path, name):
    graph = tflite_file.read_flatbuffer(path)
    return graph, [op for op in graph.operators if op.op == name]


# --- fast: the Keras side and the errors ---------------------------------------------


def test_snap_to_int8_keeps_the_max_and_is_idempotent():
    kernel = np.random.default_rng(0).standard_normal((3, 3, 4, 8)).astype(np.float32)
    snapped = core_int8.snap_to_int8(kernel, per_channel=True)
    np.testing.assert_allclose(np.abs(snapped).max((0, 1, 2)), np.abs(kernel).max((0, 1, 2)))
    scale = np.abs(kernel).max((0, 1, 2)) / 127
    steps = snapped / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
    np.testing.assert_allclose(core_int8.snap_to_int8(snapped, per_channel=True), snapped)
    dense = core_int8.snap_to_int8(kernel[0, 0], per_channel=False)
    assert len(np.unique(np.round(dense / (np.abs(kernel[0, 0]).max() / 127), 3))) <= 255


def test_int8_model_places_ranges_and_folds_the_stem_batchnorm():
    seed_everything(0)
    model = lt.build("fernet", tentacles=2, num_classes=10, input_shape=SHAPE)
    x = np.random.default_rng(0).standard_normal((32,) + SHAPE).astype(np.float32)
    quantized = core_int8.int8_model(model, x)
    ranges = {layer.name for layer in quantized.layers if isinstance(layer, core_int8.Int8Range)}
    # input, stem conv (its BN folded), each tentacle's last BN (bconv writes int8) and
    # ReLU, the concatenation and the logits; none in the bitpacked tentacle body.
    assert ranges == {
        "image_int8", "stem_conv1_int8", "t1_bn9_int8", "t2_bn9_int8", "t1_relu9_int8",
        "t2_relu9_int8", "head_concat_int8", "head_dense_int8",
    }
    names = [layer.name for layer in quantized.layers]
    assert "stem_bn1" not in names and "head_dense_softmax" in names
    assert quantized.name == model.name + "_int8"
    for layer in quantized.layers:
        if isinstance(layer, core_int8.Int8Range):
            low, high = float(layer.minimum.numpy()), float(layer.maximum.numpy())
            assert low <= 0 <= high and high > low


def test_int8_model_keeps_react_shifts_bitpacked():
    """block="react": BN -> LearnableShift -> bconv stays bitpacked (the shift folds into
    the bconv's threshold), so the int8 form puts no range inside the tentacles."""
    seed_everything(0)
    model = lt.build("fernet", tentacles=2, num_classes=10, input_shape=SHAPE, block="react")
    x = np.random.default_rng(0).standard_normal((32,) + SHAPE).astype(np.float32)
    quantized = core_int8.int8_model(model, x)
    ranges = {layer.name for layer in quantized.layers if isinstance(layer, core_int8.Int8Range)}
    # The xnor block's ranges, plus the stem's shift (float output feeding the LceQuantize).
    assert ranges == {
        "image_int8", "stem_conv1_int8", "stem_bn1_shift_int8", "t1_bn9_int8", "t2_bn9_int8",
        "t1_relu9_int8", "t2_relu9_int8", "head_concat_int8", "head_dense_int8",
    }


def _small_model():
    return lt.build("fernet", tentacles=1, num_classes=10, input_shape=SHAPE)


@pytest.mark.parametrize(
    "calibration, message",
    [
        (None, "needs calibration_data"),
        (np.zeros((64, 8, 8, 1), np.float32), "has shape"),
        (np.full((64,) + SHAPE, np.nan, np.float32), "NaN"),
        (np.zeros((4,) + SHAPE, np.float32), "at least 16"),
        (np.zeros((64,) + SHAPE, np.uint8), "dtype uint8"),
    ],
    ids=["missing", "shape", "nan", "too-few", "dtype"],
)
def test_bad_calibration_data_is_refused(calibration, message, tmp_path):
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=message) as error:
        lt.export(_small_model(), str(path), quantize="int8", calibration_data=calibration)
    assert "Fix" in str(error.value) or message == "NaN"
    assert not path.exists()


def test_int8_options_need_quantize_int8(tmp_path):
    with pytest.raises(ValueError, match="quantize='int8'"):
        lt.export(_small_model(), str(tmp_path / "m.tflite"), int8_io=True)
    with pytest.raises(ValueError, match="quantize"):
        lt.export(_small_model(), str(tmp_path / "m.tflite"), quantize="int4")


# --- one int8 export, read by several tests ------------------------------------------


@pytest.mark.slow
def test_int8_census_and_types(int8_case):
    path = int8_case["path"]
    graph, convs = _ops(path, "CONV_2D")
    assert len(convs) == 1  # the stem
    weights = graph.tensors[convs[0].inputs[1]]
    assert graph.tensors[convs[0].inputs[0]].type == "INT8" and weights.type == "INT8"
    assert len(weights.scales) == weights.shape[0] == 32  # per output channel
    _, dense = _ops(path, "FULLY_CONNECTED")
    fc_weights = graph.tensors[dense[0].inputs[1]]
    assert fc_weights.type == "INT8" and len(fc_weights.scales) == 1  # per tensor
    assert graph.op_counts()["LceBconv2d"] == 2 * 8
    assert [graph.tensors[i].type for i in graph.inputs + graph.outputs] == ["INT8", "INT8"]
    assert deploy_int8.int8_problems(graph, int8_io=True) == []
    census = int8_case["result"].sidecar["census"]
    assert "DEQUANTIZE" not in census["ops"]
    assert census["float_weight_bytes"] < 0.05 * census["total_bytes"]


@pytest.mark.slow
def test_int8_agrees_with_the_fake_quantized_model(int8_case):
    report = int8_case["result"].report
    assert report.passed and report.top1_agreement * 72 >= 71  # one int8 flip at most
    assert report.max_abs_diff <= report.atol
    assert report.atol == pytest.approx(4 / 256)  # 4 steps of a softmax's 1/256
    assert report.samples == 64 and not report.violations


@pytest.mark.slow
def test_sidecar_records_input_and_output_quantization(int8_case):
    with open(int8_case["path"] + ".json", encoding="utf-8") as file:
        sidecar = json.load(file)
    quantization = sidecar["quantization"]
    assert sidecar["input_dtype"] == "int8" and quantization["mode"] == "int8"
    interpreter = lce_interpreter(open(int8_case["path"], "rb").read(), use_indirect_bgemm=False)
    assert quantization["input"]["scale"] == pytest.approx(interpreter.input_scales[0])
    assert quantization["input"]["zero_point"] == interpreter.input_zero_points[0]
    assert quantization["output"]["scale"] == pytest.approx(1 / 256)
    assert quantization["output"]["zero_point"] == -128
    assert quantization["calibration_samples"] == 256


@pytest.mark.slow
def test_predict_quantizes_and_dequantizes_an_int8_file(int8_case, predict, tmp_path):
    raw = int8_case["raw"][-16:]
    npy = tmp_path / "digits.npy"
    np.save(npy, raw)
    results = predict.predict_files(int8_case["path"], [str(npy)], top=3)
    scores = [r["top"][0]["score"] for r in results]
    assert all(0 <= s <= 1 for s in scores)
    # The file's top-1 through predict equals the fake-quantized Keras model's on most images.
    quantized = core_int8.int8_model(int8_case["model"], int8_case["x"][:256])
    expected = quantized(int8_case["x"][-16:], training=False).numpy().argmax(-1)
    got = np.array([r["top"][0]["index"] for r in results])
    assert np.mean(got == expected) >= 0.9


@pytest.mark.slow
def test_int8_fused(tmp_path):
    raw, labels, preprocessing, x = _digits(SHAPE)
    seed_everything(2)
    model = lt.build("fernet", tentacles=2, num_classes=10, input_shape=SHAPE)
    short_fit(model, x, labels)
    result = lt.export(
        model, str(tmp_path / "fernet2_fused.tflite"), sample=x[-64:],
        preprocessing=preprocessing, quantize="int8", calibration_data=x[:256], fused=True,
    )
    assert result.report.passed and result.report.top1_agreement * 72 >= 71
    assert result.sidecar["fused"] and result.sidecar["kernel"]["use_indirect_bgemm"]
    graph = tflite_file.read_flatbuffer(result.path)
    assert graph.op_counts()["LceBconv2d"] == 8  # one grouped bconv per layer
    for op in graph.operators:
        if op.op in ("CONV_2D", "FULLY_CONNECTED"):
            assert graph.tensors[op.inputs[1]].type == "INT8"
    # float input/output: the int8 graph starts with QUANTIZE and ends with DEQUANTIZE
    assert result.sidecar["quantization"]["input"]["dtype"] == "float32"
    assert result.sidecar["input_dtype"] == "float32"
    assert deploy_int8.int8_problems(graph, int8_io=False) == []


@pytest.mark.parametrize(
    "agree, total, passes",
    [(72, 72, True), (71, 72, True), (70, 72, False), (198, 200, True), (197, 200, False),
     (297, 300, True), (296, 300, False)],
)
def test_int8_agreement_allows_one_miss_or_one_percent(agree, total, passes):
    assert deploy_int8.agreement_passes(agree / total, total) is passes


def test_int8_problems_name_a_float_op():
    x = tf.keras.Input((4, 4, 1))
    model = tf.keras.Model(x, tf.keras.layers.Conv2D(2, 1, name="conv")(x))
    from larq_tentacle.deploy.conversion import convert

    graph = tflite_file.read_flatbuffer(convert(model))
    problems = deploy_int8.int8_problems(graph, int8_io=False)
    assert any("CONV_2D" in p and "float32" in p for p in problems)


# --- apps/export.py --------------------------------------------------------------------


@pytest.fixture(scope="module")
def export_app():
    yield from loaded_app("export")


def _run_export(app, argv):
    from absl import flags

    flag_values = flags.FlagValues()  # other apps loaded in this process keep theirs
    app.define_flags(flag_values)
    flag_values(["export.py"] + argv)
    return app.run(flag_values)


def test_export_app_int8_model_needs_calibration(export_app, tmp_path, capsys):
    model_path = tmp_path / "m.h5"
    _small_model().save(model_path)
    argv = [f"--model={model_path}", f"--output={tmp_path / 'm.tflite'}", "--quantize=int8"]
    assert _run_export(export_app, argv) == 2
    assert "--calibration=PATH.npy" in capsys.readouterr().err
    assert _run_export(export_app, argv[:2] + ["--int8_io"]) == 2
    assert "--int8_io needs --quantize=int8" in capsys.readouterr().err


@pytest.mark.slow
def test_export_app_int8_with_calibration_file(export_app, int8_case, tmp_path, capsys):
    model_path = tmp_path / "fernet2.h5"
    int8_case["model"].save(model_path)
    calibration = tmp_path / "calibration.npy"
    np.save(calibration, int8_case["x"][:128])
    output = tmp_path / "fernet2_int8.tflite"
    argv = [f"--model={model_path}", f"--output={output}", "--quantize=int8", "--int8_io",
            f"--calibration={calibration}", "--random_samples=16"]
    assert _run_export(export_app, argv) == 0
    out = capsys.readouterr().out
    assert "int8: input int8" in out and "verification: PASSED" in out
    with open(str(output) + ".json", encoding="utf-8") as file:
        assert json.load(file)["quantization"]["calibration_samples"] == 128
