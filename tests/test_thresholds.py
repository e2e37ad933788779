"""Binary thresholds centred before LCE conversion (larq_tentacle/deploy/thresholds.py)."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_tentacle.deploy import thresholds
from larq_tentacle.deploy.conversion import convert
from larq_tentacle.deploy.verification import lce_interpreter

ALPHA = 0.05
OFFSET = -1e-6  # below half an ulp of n = 3*3*64 = 576 in units of ALPHA (3e-5 * ALPHA)


def _binary_conv(filters, bias, name):
    return lq.layers.QuantConv2D(
        filters, 3, padding="same", pad_values=1.0, use_bias=bias, name=name,
        input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign",
        kernel_constraint="weight_clip",
    )


def _chain(with_bn: bool) -> tf.keras.Model:
    """float conv -> binary conv (tiny negative offset) [-> BN] -> binary conv."""
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(64, 3, padding="same", name="stem")(inputs)
    x = _binary_conv(64, not with_bn, "b1")(x)
    if with_bn:
        x = tf.keras.layers.BatchNormalization(name="bn1")(x)
    x = _binary_conv(16, True, "b2")(x)
    model = tf.keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    for name in ("b1", "b2"):  # kernels of exactly +-ALPHA: every dot product is ALPHA * k
        layer = model.get_layer(name)
        weights = layer.get_weights()
        weights[0] = ALPHA * np.where(rng.standard_normal(weights[0].shape) < 0, -1.0, 1.0)
        if layer.use_bias:
            weights[1] = np.full(weights[1].shape, OFFSET if name == "b1" else 0.0)
        layer.set_weights(weights)
    if with_bn:  # zero crossing at k* = -OFFSET / ALPHA (gamma 1, mean 0, var + eps = 1)
        bn = model.get_layer("bn1")
        variance = np.full(64, 1 - bn.epsilon)
        bn.set_weights([np.ones(64), np.full(64, OFFSET), np.zeros(64), variance])
    return model


def _max_diff(model, flatbuffer, x) -> float:
    got = np.asarray(lce_interpreter(flatbuffer, use_indirect_bgemm=False).predict(x))
    return float(np.abs(got.reshape(-1) - np.asarray(model(x)).reshape(-1)).max())


@pytest.mark.parametrize("with_bn", [False, True], ids=["bias", "batchnorm"])
def test_lce_still_rounds_tiny_threshold_offsets(with_bn):
    """LCE 0.16's float32 threshold drops the offset; when this fails, thresholds.py can go."""
    import larq_compute_engine as lce

    model = _chain(with_bn)
    x = np.random.default_rng(1).standard_normal((8, 8, 8, 3)).astype(np.float32)
    assert _max_diff(model, lce.convert_keras_model(model), x) > 0.1
    assert _max_diff(model, convert(model), x) < 1e-3


def test_centred_thresholds_keep_the_function_and_restore_the_weights():
    model = _chain(with_bn=True)
    x = np.random.default_rng(2).standard_normal((4, 8, 8, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    expected = np.asarray(model(x))
    changes = thresholds.threshold_changes(model)
    assert list(changes) == ["bn1"]  # b2 writes the output: a float reader, left alone
    with thresholds.centred_thresholds(model) as changed:
        assert changed == 1
        beta = model.get_layer("bn1").get_weights()[1]
        assert np.all(np.abs(beta) > 0.5 * ALPHA)  # one lattice step from every k
        np.testing.assert_allclose(np.asarray(model(x)), expected, atol=1e-5)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
