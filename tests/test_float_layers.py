"""Layers LCE cannot binarize stay float in the tentacles; pre-activation blocks are
rewritten into the order LCE fuses (issue 15, items 2 and 3), on small models.

The same rules on the stock tf.keras.applications CNNs: tests/test_applications.py.
"""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from larq_tentacle.core import float_layers
from larq_tentacle.core.size import paper_size_bits
from larq_tentacle.deploy import rules
from larq_tentacle.deploy.conversion import convert

L = tf.keras.layers


def _mobile_block(num_classes=4, groups=1, width=16):
    """stem conv -> expand 1x1 -> depthwise -> project 1x1 (grouped if asked) -> head."""
    inputs = tf.keras.Input((8, 8, 3))
    x = L.Conv2D(width, 3, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    x = L.Conv2D(width, 1, name="expand")(x)
    x = L.BatchNormalization(name="expand_bn")(x)
    x = L.ReLU(6.0, name="expand_relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(6.0, name="dw_relu")(x)
    x = L.Conv2D(width, 1, groups=groups, name="project")(x)
    x = L.BatchNormalization(name="project_bn")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(num_classes, name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name="mobile_block")


def _se_block(num_classes=4):
    """conv -> squeeze-and-excitation gate (GAP -> dense -> dense -> sigmoid -> multiply)."""
    inputs = tf.keras.Input((8, 8, 3))
    x = L.Conv2D(32, 3, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.Conv2D(32, 3, padding="same", name="conv")(x)
    x = L.BatchNormalization(name="conv_bn")(x)
    gate = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    gate = L.Conv2D(8, 1, activation="relu", name="se_reduce")(gate)
    gate = L.Conv2D(32, 1, activation="sigmoid", name="se_expand")(gate)
    x = L.Multiply(name="excite")([x, gate])
    x = L.Conv2D(32, 3, padding="same", name="conv2")(x)
    x = L.BatchNormalization(name="conv2_bn")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(num_classes, name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name="se_block")


def _preactivation_net(num_classes=4):
    """A DenseNet-like float model: every inner conv reads BN -> ReLU of a concatenation."""
    inputs = tf.keras.Input((8, 8, 3))
    x = L.Conv2D(32, 3, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    for block in (1, 2):
        y = L.BatchNormalization(name=f"b{block}_0_bn")(x)
        y = L.ReLU(name=f"b{block}_0_relu")(y)
        y = L.Conv2D(32, 1, name=f"b{block}_1_conv")(y)
        y = L.BatchNormalization(name=f"b{block}_1_bn")(y)
        y = L.ReLU(name=f"b{block}_1_relu")(y)
        y = L.Conv2D(32, 3, padding="same", name=f"b{block}_2_conv")(y)
        x = L.Concatenate(name=f"b{block}_concat")([x, y])
    x = L.BatchNormalization(name="final_bn")(x)
    x = L.ReLU(name="final_relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(num_classes, name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name="preact_net")


def _fit(model, seed=0, steps=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps * 16,) + model.input_shape[1:]).astype("float32")
    y = rng.integers(0, model.output_shape[-1], len(x))
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return x


def test_depthwise_stays_float_per_tentacle_with_replicated_weights():
    base = _mobile_block()
    model = lt.tentaclize(base, tentacles=2)
    structure = lt.layout(model)
    assert structure.float_layers == {"dw": float_layers.DEPTHWISE}
    for index in (1, 2):
        copy = model.get_layer(f"t{index}_dw")
        assert type(copy) is L.DepthwiseConv2D
        for got, want in zip(copy.get_weights(), base.get_layer("dw").get_weights()):
            np.testing.assert_array_equal(got, want)
    # the ReLU6 in front of the float depthwise stays; the one in front of a binary conv goes
    names = {layer.name for layer in model.layers}
    assert "t1_expand_relu" in names and "t1_dw_relu" not in names
    assert rules.is_binary_conv(model.get_layer("t1_project"))


def test_paper_size_counts_float_depthwise_at_32_bits():
    model = lt.tentaclize(_mobile_block(), tentacles=2)
    expected = 0
    for layer in model.layers:
        if isinstance(layer, (L.Conv2D, L.Dense, L.DepthwiseConv2D)):  # QuantConv2D included
            bits = 1 if rules.is_binary_conv(layer) else 32
            expected += bits * sum(int(np.prod(w.shape)) for w in layer.weights)
    depthwise_bits = 32 * model.get_layer("t2_dw").count_params()
    assert depthwise_bits > 0
    assert paper_size_bits(model) == expected


@pytest.mark.parametrize("width,binary", [(16, False), (64, True)])
def test_grouped_conv_stays_float_below_32_channels_per_group(width, binary):
    model = lt.tentaclize(_mobile_block(groups=2, width=width), tentacles=1)
    assert rules.is_binary_conv(model.get_layer("t1_project")) is binary
    reasons = lt.layout(model).float_layers
    if binary:
        assert "project" not in reasons
    else:
        assert "8 input channels per group" in reasons["project"]


def test_se_gate_and_multiply_stay_float_and_are_reported():
    model = lt.tentaclize(_se_block(), tentacles=2)
    reasons = lt.layout(model).float_layers
    assert reasons == {
        "se_reduce": float_layers.SE_GATE,
        "se_expand": float_layers.SE_GATE,
        "excite": float_layers.MULTIPLY,
    }
    assert not isinstance(model.get_layer("t2_se_reduce"), lq.layers.QuantConv2D)
    assert rules.is_binary_conv(model.get_layer("t2_conv2"))


def test_preactivation_rewrite_moves_batchnorms_after_binary_convs():
    model = lt.tentaclize(_preactivation_net(), tentacles=2)
    structure = lt.layout(model)
    assert structure.preactivation == ("b1_2_conv", "b2_2_conv")
    names = [layer.name for layer in model.layers]
    assert not any(name.endswith("_0_bn") for name in names if name.startswith("t"))
    for index in (1, 2):
        bn = model.get_layer(f"t{index}_b1_2_conv_post_bn")
        assert bn.input.name.startswith(f"t{index}_b1_2_conv")
    # the stem's ReLU now feeds binary convs (through the concatenation): it is dropped
    assert "stem_stem_relu" not in names


@pytest.mark.slow
@pytest.mark.parametrize("builder", [_mobile_block, _se_block, _preactivation_net])
def test_strict_export_accepts_exactly_the_float_layers(builder, tmp_path):
    model = lt.tentaclize(builder(), tentacles=2)
    x = _fit(model)
    result = lt.export(model, tmp_path / "m.tflite", sample=x[:32], preprocessing=None)
    assert result.report.passed, result.report.summary()
    binary = [layer for layer in model.layers if rules.is_binary_conv(layer)]
    assert result.report.census["ops"]["LceBconv2d"] == len(binary)


@pytest.mark.slow
def test_strict_rules_still_refuse_an_unexplained_float_conv_in_a_tentacle():
    inputs = tf.keras.Input((8, 8, 3))
    x = L.Conv2D(32, 3, padding="same", name="stem_conv")(inputs)
    x = lq.layers.QuantConv2D(
        32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
        kernel_quantizer="ste_sign", name="t1_bconv",
    )(x)
    x = L.BatchNormalization(name="t1_bn")(x)
    x = L.Conv2D(32, 3, padding="same", name="t1_float_conv")(x)
    x = L.GlobalAveragePooling2D(name="head_pool")(x)
    model = tf.keras.Model(inputs, L.Dense(4, name="head_dense")(x))
    problems = rules.strict_violations(model, convert(model))
    assert any("t1_float_conv" in problem and "CONV_2D" in problem for problem in problems)
    assert float_layers.kept_float_reason(model.get_layer("t1_float_conv")) is None
