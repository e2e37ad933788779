"""Explicit zero padding before strided convolutions (issue 15, item 1).

LCE 0.16 folds `Pad → Conv2D(VALID)` into a SAME conv without checking that SAME
pads as much: at stride 2 on an even size the converted conv is shifted by a pixel.
`deploy/padding.py` trims the padding no window reads before converting.
"""

import itertools

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from larq_tentacle.deploy import padding, tflite_file
from larq_tentacle.deploy.conversion import convert
from larq_tentacle.deploy.verification import lce_interpreter

L = tf.keras.layers
SIZE = 32  # even: SAME pads one less in front than a symmetric pad at stride 2


def _model(layers, size=SIZE, channels=3, seed=0):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((size, size, channels))
    x = inputs
    for layer in layers:
        x = layer(x)
    model = tf.keras.Model(inputs, x, name="padded")
    rng = np.random.default_rng(seed)
    for weight in model.weights:  # biases and BN statistics too, so nothing hides at zero
        values = rng.standard_normal(weight.shape).astype("float32") * 0.5
        if "variance" in weight.name:
            values = np.abs(values) + 0.5
        weight.assign(values)
    return model


def _inputs(model, n=4):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, *model.input_shape[1:])).astype("float32")


def _raw_lce(model):
    """(max |tflite - keras|, the file's ops) for LCE's converter without the workaround."""
    import larq_compute_engine as lce

    flatbuffer = lce.convert_keras_model(model)
    x = _inputs(model)
    got = np.asarray(lce_interpreter(flatbuffer, use_indirect_bgemm=False).predict(x))
    diff = float(np.abs(got.reshape(len(x), -1) - model(x).numpy().reshape(len(x), -1)).max())
    return diff, tflite_file.read_flatbuffer(flatbuffer).operators


def _stem(conv=L.Conv2D, pad=1, kernel=3, stride=2, filters=8):
    filters = () if conv is L.DepthwiseConv2D else (filters,)
    return [L.ZeroPadding2D(pad, name="pad"), conv(*filters, kernel, strides=stride)]


# --- the converter's raw behaviour ------------------------------------------------------


@pytest.mark.parametrize(
    "layers",
    [_stem, lambda: _stem(pad=3, kernel=7), lambda: _stem(L.DepthwiseConv2D)],
    ids=["pad1-conv3", "pad3-conv7", "pad1-depthwise3"],
)
def test_lce_still_misfuses_strided_padding(layers):
    """LCE 0.16 turns ZeroPadding2D(p) → Conv(2p+1, stride 2, VALID) into one SAME conv.

    This test asserts the converter bug that `deploy/padding.py` works around. When it
    fails, LCE fixed its FusePadding pass: delete `deploy/padding.py`, its call in
    `conversion.convert` and this test.
    """
    diff, ops = _raw_lce(_model(layers()))
    assert [op.op for op in ops] in (["CONV_2D"], ["DEPTHWISE_CONV_2D"])  # the PAD is gone
    assert ops[0].padding == "SAME"  # SAME pads (p-1, p) here, the model pads (p, p)
    assert diff > 0.1


@pytest.mark.parametrize(
    "layers, size",
    [
        (lambda: _stem(stride=1), SIZE),
        (_stem, SIZE + 1),
        (lambda: [L.Conv2D(8, 3, strides=2, padding="same")], SIZE),
    ],
    ids=["stride1", "odd-size", "keras-same"],
)
def test_lce_fuses_exactly_where_same_pads_alike(layers, size):
    diff, ops = _raw_lce(_model(layers(), size=size))
    assert [op.op for op in ops] == ["CONV_2D"] and ops[0].padding == "SAME"
    assert diff < 1e-4


# --- the arithmetic of the workaround ---------------------------------------------------


def test_same_padding_is_tensorflows():
    x = tf.constant(np.random.default_rng(0).standard_normal((1, 11, 12, 2)), tf.float32)
    for kernel, stride in itertools.product((1, 2, 3, 4, 7), (1, 2, 3)):
        k = tf.constant(np.random.default_rng(1).standard_normal((kernel, kernel, 2, 1)),
                        tf.float32)
        pads = [padding.same_padding(size, kernel, stride) for size in (11, 12)]
        padded = tf.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
        explicit = tf.nn.conv2d(padded, k, stride, "VALID")
        np.testing.assert_allclose(explicit, tf.nn.conv2d(x, k, stride, "SAME"), atol=1e-5)


def test_trimmed_padding_keeps_outputs_and_is_never_misfused():
    for size, kernel, stride, dilation, before, after in itertools.product(
        range(4, 18), range(1, 8), (1, 2, 3), (1, 2), range(4), range(4)
    ):
        extent = (kernel - 1) * dilation + 1
        if size + before + after < extent:
            continue
        args = (kernel, stride, dilation)
        trimmed = padding.trimmed_padding(size, (before, after), *args)
        outputs = (size + before + after - extent) // stride + 1
        assert (size + sum(trimmed) - extent) // stride + 1 == outputs
        assert trimmed[0] == before and trimmed[1] <= after
        assert not padding.lce_misfuses(size, trimmed, *args), (size, before, after, args)


def test_only_misfused_pads_are_rewritten():
    cases = {
        "stem": (_stem(), {"pad": ((1, 0), (1, 0))}),
        "resnet_stem": (_stem(pad=3, kernel=7), {"pad": ((3, 2), (3, 2))}),
        "stride3": (_stem(stride=3), {"pad": ((1, 0), (1, 0))}),
        "stride1": (_stem(stride=1), {}),
        "maxpool": ([L.ZeroPadding2D(1), L.MaxPool2D(3, strides=2)], {}),
        "binary": ([L.ZeroPadding2D(1), lq.layers.QuantConv2D(
            8, 3, strides=2, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip")], {}),
    }
    for name, (layers, expected) in cases.items():
        assert padding.padding_rewrites(_model(layers)) == expected, name


def test_pad_read_twice_is_not_rewritten():
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    padded = L.ZeroPadding2D(1)(inputs)
    merged = L.Add()([L.Conv2D(4, 3, strides=2)(padded), L.Conv2D(4, 3, strides=2)(padded)])
    model = tf.keras.Model(inputs, merged)
    assert padding.padding_rewrites(model) == {}
    assert padding.without_misfused_padding(model) is model


def test_rewritten_model_computes_the_same_and_leaves_the_original_alone():
    model = _model(_stem(pad=3, kernel=7) + [L.BatchNormalization(), L.ReLU()])
    layers_before = list(model.layers)
    rewritten = padding.without_misfused_padding(model)
    x = _inputs(model)
    np.testing.assert_array_equal(rewritten(x).numpy(), model(x).numpy())
    assert [layer.name for layer in rewritten.layers] == [layer.name for layer in model.layers]
    assert model.layers == layers_before and model.layers[1].padding == ((3, 3), (3, 3))
    assert not set(map(id, rewritten.layers)) & set(map(id, model.layers))
    assert all(len(layer.inbound_nodes) == 1 for layer in model.layers[1:])


def test_sequential_model_is_rewritten():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((SIZE, SIZE, 3))] + _stem())
    rewritten = padding.without_misfused_padding(model)
    assert rewritten is not model
    x = _inputs(model)
    np.testing.assert_array_equal(rewritten(x).numpy(), model(x).numpy())


# --- export end to end ------------------------------------------------------------------


def _binary_block():
    def quant_conv(stride):
        return lq.layers.QuantConv2D(
            32, 3, strides=stride, padding="same", pad_values=1.0, input_quantizer="ste_sign",
            kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False,
        )

    return [
        L.BatchNormalization(), quant_conv(1), L.BatchNormalization(), quant_conv(2),
        L.BatchNormalization(), L.GlobalAveragePooling2D(), L.Dense(10),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "layers",
    [
        _stem,
        lambda: _stem(pad=3, kernel=7, filters=32) + _binary_block(),
        lambda: _stem(L.DepthwiseConv2D),
    ],
    ids=["pad1-conv3", "resnet-stem-and-binary-block", "pad1-depthwise3"],
)
def test_export_of_strided_padding_matches_keras(layers, tmp_path):
    model = _model(layers())
    result = lt.export(model, tmp_path / "padded.tflite", sample=_inputs(model))
    assert result.report.passed
    assert result.report.max_abs_diff <= 1e-4
    ops = tflite_file.read_flatbuffer(result.path).op_counts()
    assert ops.get("PAD") == 1  # the trimmed pad stays a PAD op, as TF's own converter keeps it


# --- localising a disagreement (issue 15: "the first layer where it appears") ----------


def _residual_model():
    """conv0 -> [pad -> strided conv1] + [strided 1x1 conv2] -> add -> head."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((16, 16, 3))
    x = L.Conv2D(8, 1, name="conv0")(inputs)
    branch = L.Conv2D(8, 3, strides=2, name="conv1")(L.ZeroPadding2D(1, name="pad")(x))
    shortcut = L.Conv2D(8, 1, strides=2, name="conv2")(x)
    x = L.Add(name="add")([branch, shortcut])
    x = L.Dense(4, name="head")(L.GlobalAveragePooling2D(name="pool")(L.ReLU(name="relu")(x)))
    return tf.keras.Model(inputs, x, name="residual")


@pytest.mark.slow
def test_verify_names_the_first_layer_that_disagrees(monkeypatch):
    """With the workaround switched off, LCE's misfused pad is found at conv1, not later."""
    import larq_compute_engine as lce

    model = _residual_model()
    raw = lce.convert_keras_model(model)
    monkeypatch.setattr(padding, "without_misfused_padding", lambda model: model)
    with pytest.raises(lt.VerificationError, match="'conv1' \\(Conv2D\\)") as info:
        lt.verify(model, raw, _inputs(model), random_samples=2)
    found = info.value.report.first_disagreement
    assert found["layer"] == "conv1" and found["last_agreeing"] == "pad"
    assert found["max_abs_diff"] > 0.1 and found["conversions"] <= 8
    assert "verify=False" not in str(info.value)
    assert "where: The first layer" in info.value.report.summary()


@pytest.mark.slow
def test_localisation_says_nothing_when_lt_converts_the_model_exactly():
    """A file lt.export would not write (the raw LCE one) disagrees, but no cut of the
    model does when converted with the workaround: nothing is blamed on a layer."""
    import larq_compute_engine as lce

    model = _residual_model()
    report = lt.verify(model, lce.convert_keras_model(model), _inputs(model), check=False)
    assert not report.passed and report.first_disagreement is None
    fixed = lt.verify(model, convert(model), _inputs(model))
    assert fixed.max_abs_diff <= 1e-4 and fixed.first_disagreement is None


@pytest.mark.parametrize("tie_agreement", [-0.1, 1.5, "0.9", None])
def test_verify_rejects_a_tie_agreement_that_is_no_fraction(tie_agreement):
    model = _residual_model()
    with pytest.raises(ValueError, match="tie_agreement.*Fix: pass e.g. tie_agreement=0.95"):
        lt.verify(model, b"not read", _inputs(model), tie_agreement=tie_agreement)
