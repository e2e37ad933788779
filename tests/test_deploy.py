"""Export, verification, op census and bad inputs (issue 4).

Conversions take 10-40 s each, so each (model, tentacles) case is fitted,
converted and exported once per session (`exported_case`, also used by
test_predict_app.py) and every check reads that one export.
"""

import json
import os

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from helpers import loaded_app
from larq_tentacle.core.layout import tentacle_index
from larq_tentacle.deploy import census, exporting, rules, tflite_file
from larq_tentacle.deploy.conversion import ExportError, convert
from larq_tentacle.deploy.sidecar import read_sidecar
from larq_tentacle.deploy.verification import VerificationError, lce_interpreter
from larq_tentacle.utils import atomic
from larq_tentacle.utils.seeding import seed_everything

CASES = [("fernet", 1), ("fernet", 3), ("nin", 1), ("nin", 3), ("resnet9", 1), ("resnet9", 3)]
# The smallest sizes the models allow (min_input_size) keep the fit and the interpreter fast.
SHAPES = {"fernet": (16, 16, 1), "nin": (8, 8, 3), "resnet9": (8, 8, 3)}
ATOL = 1e-3
CLASS_NAMES = [f"digit{i}" for i in range(10)]

_CACHE = {}


def digits_raw(shape):
    """Real images offline: scikit-learn's 8x8 digits as uint8 pixels, upscaled to `shape`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    scale = shape[0] // 8
    pixels = np.kron(pixels, np.ones((1, scale, scale, 1), np.uint8))
    return pixels, digits.target.astype(np.int32)


def preprocessing_for(shape, raw_train):
    x = raw_train.astype(np.float32) / 255.0
    return {
        "dataset": "digits",
        "input_shape": list(shape),
        "pixel_scale": 255.0,
        "mean": [float(x.mean())] * shape[2],
        "std": [float(x.std())] * shape[2],
        "resize": "bilinear",
        "grey_to_rgb": shape[2] == 3,
        "class_names": CLASS_NAMES,
    }


def to_input(raw, preprocessing):
    """Reference preprocessing (no resize needed here): pixels -> normalized float32."""
    x = raw.astype(np.float32)
    if preprocessing["grey_to_rgb"]:
        x = np.repeat(x, 3, axis=-1)
    x = x / preprocessing["pixel_scale"]
    return (
        (x - np.float32(preprocessing["mean"][0])) / np.float32(preprocessing["std"][0])
    ).astype(np.float32)


def short_fit(model, x, y):
    # Eager steps: tracing the train function costs more than the few steps we need.
    model.compile(
        tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True
    )
    model.fit(x[:128], y[:128], batch_size=32, epochs=1, verbose=0)


def exported_case(name, tentacles, tmp_path_factory):
    """Fit (short), export and verify one case once per session; returns a dict of artefacts."""
    key = (name, tentacles)
    if key not in _CACHE:
        try:
            _CACHE[key] = _export_case(name, tentacles, tmp_path_factory)
        except Exception as error:  # remembered, so the other tests of this case do not retry
            _CACHE[key] = error
    if isinstance(_CACHE[key], Exception):
        raise _CACHE[key]
    return _CACHE[key]


def _export_case(name, tentacles, tmp_path_factory):
    shape = SHAPES[name]
    raw, labels = digits_raw(shape)
    preprocessing = preprocessing_for(shape, raw[:256])
    x = to_input(raw, preprocessing)
    seed_everything(tentacles)
    model = lt.build(name, tentacles=tentacles, num_classes=10, input_shape=shape)
    short_fit(model, x, labels)
    path = str(tmp_path_factory.mktemp(f"{name}{tentacles}") / f"{name}{tentacles}.tflite")
    result = lt.export(model, path, sample=x[-32:], preprocessing=preprocessing)
    return dict(
        model=model,
        path=path,
        result=result,
        x=x,
        raw=raw,
        labels=labels,
        preprocessing=preprocessing,
    )


@pytest.fixture(params=CASES, ids=[f"{n}-t{t}" for n, t in CASES])
def case(request, tmp_path_factory):
    return exported_case(*request.param, tmp_path_factory)


def _binary_convs(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, lq.layers.QuantConv2D) and layer.kernel_quantizer is not None
    ]


def _float_conv_calls(model):
    return sum(
        len(layer.inbound_nodes)
        for layer in model.layers
        if type(layer) is tf.keras.layers.Conv2D
    )


# --- every registered model, tentacles {1, 3} ----------------------------------------


@pytest.mark.slow
def test_parity_on_real_and_random_inputs(case):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    model, report = case["model"], case["result"].report
    assert (
        report.passed and report.max_abs_diff_sample <= ATOL and report.max_abs_diff_random <= ATOL
    )
    # Independently of verify(): the written file against Keras, input by input. A BNN
    # may flip one sign where Keras has a value at float-rounding distance from 0
    # (a "sign tie"); verify() counts those, and they must stay rare.
    with open(case["path"], "rb") as file:
        interpreter = Interpreter(file.read())
    real = case["x"][:24]
    noise = np.random.default_rng(7).uniform(-3, 3, (8,) + real.shape[1:]).astype(np.float32)
    within, agree, total = 0, 0, 0
    for x in (real, noise):
        expected = model(x, training=False).numpy()
        got = interpreter.predict(x)
        within += int(np.sum(np.abs(got - expected).max(-1) <= ATOL))
        agree += int(np.sum(got.argmax(-1) == expected.argmax(-1)))
        total += len(x)
    assert within >= 0.9 * total and agree >= 0.9 * total
    assert report.sign_ties <= 2 and report.top1_agreement >= 0.95


@pytest.mark.slow
def test_census_every_binary_conv_is_bconv(case):
    model, path = case["model"], case["path"]
    counts = lt.op_census(path)["ops"]
    assert counts["LceBconv2d"] == len(_binary_convs(model)) > 0
    # Float convs are the stem's and the shared head's, one per call; none from a tentacle.
    assert counts.get("CONV_2D", 0) == _float_conv_calls(model)
    graph = tflite_file.read_flatbuffer(path)
    names = {layer.name for layer in model.layers}
    owners = [
        tflite_file.layer_of(op, names)
        for op in graph.operators
        if op.op in rules.FLOAT_COMPUTE_OPS
    ]
    assert [owner for owner in owners if owner and tentacle_index(owner) is not None] == []
    # Compact names still place every binary op in its Keras layer (a tentacle's).
    bconv_owners = [
        tflite_file.layer_of(op, names) for op in graph.operators if op.op == "LceBconv2d"
    ]
    assert all(owner is not None and tentacle_index(owner) is not None for owner in bconv_owners)
    assert case["result"].report.violations == []


@pytest.mark.slow
def test_quantize_count_matches_topology(case):
    """The LceQuantize count the strict check expects is exactly what LCE produced."""
    needs = rules.topology_needs(case["model"])
    counts = lt.op_census(case["path"])["ops"]
    assert counts.get("LceQuantize", 0) == len(needs.quantize_sources)
    assert len(needs.binary_convs) == counts["LceBconv2d"]


@pytest.mark.slow
def test_sidecar_round_trips(case):
    model, result, path = case["model"], case["result"], case["path"]
    sidecar = read_sidecar(path)
    assert sidecar == json.loads(json.dumps(result.sidecar, default=atomic.jsonable))
    assert sidecar["tentacles"] == lt.layout(model).tentacles
    assert sidecar["input_shape"] == list(model.input_shape[1:])
    assert sidecar["preprocessing"] == case["preprocessing"]
    assert sidecar["class_names"] == CLASS_NAMES
    assert sidecar["versions"] == lt.versions()
    assert sidecar["tflite_bytes"] == os.path.getsize(path)
    assert sidecar["paper_size_kb"] == lt.paper_size_kb(model)
    assert sidecar["census"]["ops"] == lt.op_census(path)["ops"]
    assert sidecar["verification"]["passed"] is True
    assert sidecar["kernel"]["use_indirect_bgemm"] is False
    assert sidecar["tensor_names"]["mode"] == "compact"
    assert sidecar["tensor_names"]["converter_tflite_bytes"] > sidecar["tflite_bytes"]
    # Only the two files: no temporary left behind.
    assert sorted(os.listdir(os.path.dirname(path))) == sorted(
        [os.path.basename(path), os.path.basename(path) + ".json"]
    )


# --- bad inputs ----------------------------------------------------------------------


def tiny_model(*, pad_values=1.0, pool_before_bn=False, name="tiny"):
    """stem conv -> two binary convs named like a tentacle -> float head."""
    inputs = tf.keras.Input((8, 8, 1), name="image")
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="stem_conv1")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn1")(x)
    kwargs = dict(
        padding="same",
        pad_values=pad_values,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )
    x = lq.layers.QuantConv2D(32, 3, name="t1_conv2", **kwargs)(x)
    if pool_before_bn:
        x = tf.keras.layers.MaxPooling2D(2, name="t1_pool2")(x)
        x = tf.keras.layers.BatchNormalization(name="t1_bn2")(x)
    else:
        x = tf.keras.layers.BatchNormalization(name="t1_bn2")(x)
        x = tf.keras.layers.MaxPooling2D(2, name="t1_pool2")(x)
    x = lq.layers.QuantConv2D(32, 3, name="t1_conv3", **kwargs)(x)
    x = tf.keras.layers.BatchNormalization(name="t1_bn3")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = tf.keras.layers.Dense(4, activation="softmax", name="head_dense")(x)
    model = tf.keras.Model(inputs, outputs, name=name)
    # Non-trivial BatchNorm statistics, so a folded or unfolded BN changes the numbers.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.3, beta.shape),
                    rng.normal(0, 0.3, mean.shape),
                    rng.uniform(0.5, 2, var.shape),
                ]
            )
    return model


@pytest.fixture(scope="module")
def bad_layout():
    """A model with the two patterns LCE cannot fuse, converted once."""
    model = tiny_model(pad_values=0.0, pool_before_bn=True, name="bad_layout")
    return model, convert(model)


@pytest.fixture
def good_export(tmp_path_factory):
    """The exported BNN FerNet (shared with the parity tests): model and file bytes."""
    case = exported_case("fernet", 1, tmp_path_factory)
    with open(case["path"], "rb") as file:
        return case["model"], file.read()


def _x(shape=(16, 16, 1), n=4):
    return np.random.default_rng(3).standard_normal((n,) + shape).astype(np.float32)


def test_without_names_is_smaller_and_computes_the_same(good_export):
    model, flatbuffer = good_export
    stripped = tflite_file.without_names(flatbuffer)
    assert len(stripped) < len(flatbuffer)
    assert census.op_census(stripped)["ops"] == census.op_census(flatbuffer)["ops"]
    assert all(
        tensor.name.startswith("tensor_")
        for tensor in tflite_file.read_flatbuffer(stripped).tensors
    )
    x = _x(tuple(model.input_shape[1:]))
    full, bare = (
        lce_interpreter(fb, use_indirect_bgemm=False).predict(x) for fb in (flatbuffer, stripped)
    )
    np.testing.assert_array_equal(bare, full)
    with pytest.raises(tflite_file.TFLiteFileError, match="not a TFLite flatbuffer"):
        tflite_file.without_names(b"not a model at all")


def test_compact_names_keep_each_ops_layer_and_compute_the_same(bad_layout, tmp_path):
    model, flatbuffer = (
        bad_layout  # converter names, with float ops the strict check must still place
    )
    layer_names = [layer.name for layer in model.layers]
    compact = tflite_file.compact_tensor_names(flatbuffer, layer_names)
    assert len(compact) < len(flatbuffer)
    long, short = tflite_file.read_flatbuffer(flatbuffer), tflite_file.read_flatbuffer(compact)
    assert short.op_counts() == long.op_counts()
    owners = [tflite_file.layer_of(op, set(layer_names)) for op in long.operators]
    assert sum(owner is not None for owner in owners) >= len(long.operators) - 2
    assert [tflite_file.layer_of(op, set(layer_names)) for op in short.operators] == owners
    assert all(
        op.output_names[0].split("/")[0] == owner
        for op, owner in zip(short.operators, owners)
        if owner and op.outputs[0] not in short.outputs
    )
    for index in short.inputs + short.outputs:
        assert short.tensors[index].name == long.tensors[index].name
    # Constants are unnamed.
    assert all(t.name == f"tensor_{i}" for i, t in enumerate(short.tensors) if t.nbytes)
    x = _x((8, 8, 1))
    assert rules.strict_violations(model, compact) == rules.strict_violations(model, flatbuffer)
    full, small = (
        lce_interpreter(fb, use_indirect_bgemm=False).predict(x) for fb in (flatbuffer, compact)
    )
    np.testing.assert_array_equal(small, full)
    # The export writes compact names unless asked for the converter's, and says which.
    result = lt.export(model, str(tmp_path / "c.tflite"), strict=False, random_samples=2)
    assert result.sidecar["tensor_names"] == {
        "mode": "compact",
        "converter_tflite_bytes": len(flatbuffer),
    }
    assert (tmp_path / "c.tflite").read_bytes() == compact
    result = lt.export(
        model, str(tmp_path / "f.tflite"), strict=False, random_samples=2, tensor_names="converter"
    )
    assert result.sidecar["tensor_names"]["mode"] == "converter"
    assert (tmp_path / "f.tflite").read_bytes() == flatbuffer


@pytest.mark.slow
def test_strict_finds_unfolded_batchnorm_and_extra_quantize(bad_layout):
    model, flatbuffer = bad_layout
    report = lt.verify(model, flatbuffer, _x((8, 8, 1)), check=False)
    assert report.max_abs_diff <= ATOL  # numerically fine: only strict catches it
    assert not report.passed
    text = "\n".join(report.violations)
    assert "'t1_bn2'" in text and "not folded" in text
    assert "LceQuantize" in text
    with pytest.raises(VerificationError, match="not folded"):
        lt.verify(model, flatbuffer, _x((8, 8, 1)))
    assert lt.verify(model, flatbuffer, _x((8, 8, 1)), strict=False).passed


@pytest.mark.slow
def test_failed_verification_writes_nothing_and_keeps_old_file(bad_layout, tmp_path, monkeypatch):
    model, flatbuffer = bad_layout
    monkeypatch.setattr(exporting, "convert", lambda model, target: flatbuffer)
    path = tmp_path / "m.tflite"
    path.write_bytes(b"previous export")
    with pytest.raises(VerificationError):
        lt.export(model, str(path), sample=_x((8, 8, 1)))
    assert path.read_bytes() == b"previous export"
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]
    # Parity failure (impossible tolerance) also writes nothing.
    with pytest.raises(VerificationError, match="atol"):
        lt.export(model, str(tmp_path / "n.tflite"), strict=False, atol=1e-30)
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]
    # strict=False accepts the float ops and says so in the census.
    result = lt.export(model, str(tmp_path / "n.tflite"), strict=False)
    assert result.sidecar["census"]["ops"].get("MUL", 0) >= 1


@pytest.mark.slow
def test_stock_tflite_file_is_refused_by_strict(good_export):
    model, _ = good_export
    stock = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(VerificationError, match="stock TFLite converter"):
        lt.verify(model, stock, _x())


@pytest.mark.slow
def test_corrupt_truncated_and_foreign_files(good_export, tmp_path):
    model, flatbuffer = good_export
    cases = {
        "truncated": flatbuffer[: len(flatbuffer) // 2],
        "garbage": (
            flatbuffer[:8] + np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
        ),
        "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "empty": b"",
    }
    for kind, data in cases.items():
        with pytest.raises(tflite_file.TFLiteFileError, match="TFLite flatbuffer") as info:
            lt.verify(model, data, _x())
        path = tmp_path / f"{kind}.tflite"
        path.write_bytes(data)
        with pytest.raises(tflite_file.TFLiteFileError):
            lt.op_census(str(path))
        assert ("truncated" in str(info.value)) == (kind in ("truncated", "garbage"))
    with pytest.raises(FileNotFoundError, match="lt.export"):
        lt.op_census(str(tmp_path / "missing.tflite"))


@pytest.mark.slow
def test_bad_samples_are_named(good_export):
    model, flatbuffer = good_export
    with pytest.raises(ValueError, match="dtype uint8"):
        lt.verify(model, flatbuffer, np.zeros((2, 16, 16, 1), np.uint8))
    with pytest.raises(ValueError, match="3 channels, the model takes 1"):
        lt.verify(model, flatbuffer, _x((16, 16, 3)))
    with pytest.raises(ValueError, match="are 9x9, the model takes 16x16"):
        lt.verify(model, flatbuffer, _x((9, 9, 1)))
    with pytest.raises(ValueError, match="NaN"):
        lt.verify(model, flatbuffer, np.full((1, 16, 16, 1), np.nan, np.float32))
    # One image without the batch axis is fine.
    assert lt.verify(model, flatbuffer, _x()[0]).samples == 1


def test_mixed_precision_is_refused_before_conversion(tmp_path):
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_model(name="mixed")
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ExportError, match="mixed precision.*mixed_float16"):
        lt.export(model, str(tmp_path / "m.tflite"))
    assert os.listdir(tmp_path) == []


def test_binary_dense_is_refused_by_strict_before_conversion(tmp_path):
    inputs = tf.keras.Input((8,), name="x")
    x = lq.layers.QuantDense(
        16, input_quantizer="ste_sign", kernel_quantizer="ste_sign", name="t1_dense"
    )(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="head_dense")(x))
    with pytest.raises(ExportError, match="'t1_dense'.*binary dense"):
        lt.export(model, str(tmp_path / "m.tflite"))
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_layer_lce_cannot_convert_names_op_and_layer(tmp_path):
    inputs = tf.keras.Input((8, 8, 1), name="image")
    x = tf.keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = tf.keras.layers.Reshape((6, 24), name="flat")(x)
    x = tf.keras.layers.Lambda(lambda t: tf.linalg.svd(t)[0], name="svd_layer")(x)
    model = tf.keras.Model(inputs, x, name="unconvertible")
    with pytest.raises(ExportError, match=r"'Svd'.*'svd_layer'"):
        lt.export(model, str(tmp_path / "m.tflite"))
    assert os.listdir(tmp_path) == []


def test_argument_errors_name_the_fix(tmp_path):
    model = tiny_model(name="args")
    with pytest.raises(ValueError, match="ending in .tflite"):
        lt.export(model, str(tmp_path / "m.h5"))
    with pytest.raises(ValueError, match="'arm'"):
        lt.export(model, str(tmp_path / "m.tflite"), target="amr")
    with pytest.raises(ValueError, match="`tensor_names`.*'compact'"):
        lt.export(model, str(tmp_path / "m.tflite"), tensor_names="short")
    with pytest.raises(ValueError, match="does not match the model's input shape"):
        lt.export(
            model,
            str(tmp_path / "m.tflite"),
            preprocessing=dict(input_shape=[9, 9, 1], pixel_scale=255.0, mean=[0.0], std=[1.0]),
        )
    with pytest.raises(ValueError, match="3 class names given but the model has 4 outputs"):
        lt.export(model, str(tmp_path / "m.tflite"), class_names=["a", "b", "c"])
    with pytest.raises(TypeError, match="tf.keras.Model"):
        lt.export(object(), str(tmp_path / "m.tflite"))
    assert os.listdir(tmp_path) == []


# --- apps/export.py on a training workdir ------------------------------------------


@pytest.fixture(scope="module")
def export_app():
    yield from loaded_app("export")


def _run_app(app, argv):
    from absl import flags

    # Own FlagValues: other apps loaded in this process keep theirs.
    flag_values = flags.FlagValues()
    app.define_flags(flag_values)
    flag_values(["export.py"] + argv)
    return app.run(flag_values)


@pytest.mark.slow
def test_export_app_from_workdir(export_app, tmp_path_factory, monkeypatch, capsys):
    case = exported_case("fernet", 1, tmp_path_factory)
    with open(case["path"], "rb") as file:
        flatbuffer = file.read()
    # The conversion itself is covered above; here the app's workdir handling is under test.
    monkeypatch.setattr(exporting, "convert", lambda model, target: flatbuffer)
    workdir = tmp_path_factory.mktemp("runs") / "fernet1"
    workdir.mkdir()
    case["model"].save(str(workdir / "best_model.h5"))
    atomic.write_json(workdir / "preprocessing.json", case["preprocessing"])
    atomic.write_json(
        workdir / "config.json", {"model": "fernet", "tentacles": 1, "precision": "binary"}
    )
    assert _run_app(export_app, [f"--workdir={workdir}"]) == 0
    out = capsys.readouterr().out
    assert "verification: PASSED" in out and "fernet1.tflite" in out
    sidecar = read_sidecar(workdir / "fernet1.tflite")
    assert sidecar["model"] == "fernet_tentacles1" and sidecar["tentacles"] == 1
    assert (
        sidecar["preprocessing"] == case["preprocessing"] and sidecar["class_names"] == CLASS_NAMES
    )
    # The run's own digits test images (dataset "digits" is offline) fed the parity check.
    assert sidecar["verification"]["samples"] == 64
    assert sidecar["source"].endswith("best_model.h5")


def test_export_app_bad_input_exits_2_with_reason(export_app, tmp_path, capsys):
    assert _run_app(export_app, [f"--workdir={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err
    assert "No workdir" in err and "Traceback" not in err
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert _run_app(export_app, [f"--workdir={empty}"]) == 2
    assert "best_model.h5" in capsys.readouterr().err
    assert _run_app(export_app, [f"--model={tmp_path / 'm.h5'}"]) == 2
    assert "--output" in capsys.readouterr().err
    assert os.listdir(empty) == []
