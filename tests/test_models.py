"""One table over every registered model: structure, gradients, binarization, saving."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from helpers import random_batch, small_input_shape
from larq_tentacle.core.graph import LayerGraph
from larq_tentacle.core.layout import binary_layers, tentacle_index

TABLE = [(name, tentacles) for name in lt.list_models() for tentacles in (1, 3)]
_CACHE = {}


def built(name, tentacles):
    """Build each (model, tentacles) once per test session at its smallest input size."""
    key = (name, tentacles)
    if key not in _CACHE:
        _CACHE[key] = lt.build(name, tentacles=tentacles, input_shape=small_input_shape(name))
    return _CACHE[key]


def consumers(model, layer_name):
    """Names of the layers that read `layer_name`'s output (from the public model config)."""
    return LayerGraph(model, where="test", shared_layers=True).consumers_of[layer_name]


def test_list_models():
    assert lt.list_models() == ["fernet", "nin", "resnet9"]


@pytest.mark.parametrize("name,tentacles", TABLE)
def test_output_shape_and_layout(name, tentacles):
    model = built(name, tentacles)
    spec = lt.get_spec(name)
    assert model.output_shape == (None, spec.num_classes)
    layout = lt.layout(model)
    assert layout.tentacles == tentacles
    x, _ = random_batch(model)
    probabilities = model(x, training=False).numpy()
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name,tentacles", TABLE)
def test_stem_is_one_float_block_shared_by_all_tentacles(name, tentacles):
    model = built(name, tentacles)
    layout = lt.layout(model)
    stem_convs = [layer for layer in layout.stem if isinstance(layer, tf.keras.layers.Conv2D)]
    assert len(stem_convs) == 1 and not isinstance(stem_convs[0], lq.layers.QuantConv2D)
    readers = consumers(model, layout.stem[-1].name)
    tentacle_ids = {tentacle_index(reader) for reader in readers}
    assert tentacle_ids == set(range(1, tentacles + 1))
    # every tentacle has the same blocks, with names that say which tentacle they belong to
    blocks = layout.block_names()
    for index, layers in layout.tentacle_layers.items():
        assert tuple(layer.name for layer in layers) == tuple(
            f"t{index}_{block}" for block in blocks
        )


@pytest.mark.parametrize("name,tentacles", TABLE)
def test_head_reads_all_tentacles(name, tentacles):
    model = built(name, tentacles)
    layout = lt.layout(model)
    spec = lt.get_spec(name)
    if layout.head_variant == "a":  # concatenated logits: N*C
        expected_width = tentacles * spec.num_classes
        if tentacles == 1:
            assert "head_dense" not in [layer.name for layer in model.layers]
            return
    else:  # concatenated features: N*K
        features = model.get_layer("head_dense").input_shape[-1] // tentacles
        assert features == {"resnet9": 512, "fernet": 128}[name]
        expected_width = tentacles * features
    assert model.get_layer("head_dense").input_shape[-1] == expected_width


@pytest.mark.parametrize("name,tentacles", TABLE)
def test_every_trainable_variable_gets_a_gradient(name, tentacles):
    model = built(name, tentacles)
    x, y = random_batch(model, batch=4)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    # Inference mode: in training mode a bias right before a BatchNorm has an exactly
    # zero gradient (BN subtracts the batch mean), which would hide nothing we test.
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=False))
    gradients = tape.gradient(loss, model.trainable_variables)
    missing = [
        v.name
        for v, g in zip(model.trainable_variables, gradients)
        if g is None or not np.any(g.numpy())
    ]
    assert not missing, f"no gradient for {missing}"
    # and a real training step (training mode, optimizer, weight clip) runs
    optimizer = tf.keras.optimizers.Adam(1e-3)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    before = [v.numpy() for v in model.trainable_variables]
    optimizer.apply_gradients(
        zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    )
    assert np.isfinite(loss.numpy())
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert sum(changed) > len(changed) // 2


@pytest.mark.parametrize("name,tentacles", TABLE)
def test_tentacle_kernels_are_plus_minus_alpha_per_channel(name, tentacles):
    model = built(name, tentacles)
    binary = binary_layers(model)
    inner = [
        layer
        for layers in lt.layout(model).tentacle_layers.values()
        for layer in layers
        if hasattr(layer, "kernel")
    ]
    assert inner and set(map(id, inner)) == set(map(id, binary))
    for layer in binary:
        latent = layer.get_weights()[0]
        with lq.context.quantized_scope(True):
            quantized = layer.kernel.numpy()
        alpha = np.abs(latent).reshape(-1, latent.shape[-1]).mean(axis=0)
        expected = alpha * np.where(latent >= 0, 1.0, -1.0)
        # float32 reductions over ~10^5 weights differ from numpy in the 5th digit
        np.testing.assert_allclose(quantized, expected, rtol=1e-4, err_msg=layer.name)
        magnitudes = np.abs(quantized).reshape(-1, quantized.shape[-1])
        assert np.all(magnitudes.max(axis=0) == magnitudes.min(axis=0)), layer.name


@pytest.mark.parametrize("name", lt.list_models())
def test_tentacles_start_from_different_kernels(name):
    model = built(name, 3)
    layout = lt.layout(model)
    for position, first in enumerate(layout.tentacle_layers[1]):
        if not hasattr(first, "kernel"):
            continue
        kernels = [layout.tentacle_layers[i][position].get_weights()[0] for i in (1, 2, 3)]
        # compare the initial sign patterns (the only thing binarization keeps)
        signs = [np.sign(k) for k in kernels]
        differ = not np.array_equal(signs[0], signs[1]) and not np.array_equal(signs[1], signs[2])
        assert differ, first.name


@pytest.mark.parametrize("name,tentacles", TABLE)
def test_h5_round_trip(name, tentacles, tmp_path):
    model = built(name, tentacles)
    x, _ = random_batch(model)
    path = tmp_path / "model.h5"
    model.save(path)
    loaded = lt.load_model(path)
    np.testing.assert_array_equal(
        loaded(x, training=False).numpy(), model(x, training=False).numpy()
    )
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.slow
@pytest.mark.parametrize("name", lt.list_models())
@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_savedmodel_and_keras_round_trip(name, fmt, tmp_path):
    model = built(name, 2)
    x, _ = random_batch(model)
    path = tmp_path / ("model" if fmt == "savedmodel" else "model.keras")
    model.save(path)
    loaded = lt.load_model(path)
    np.testing.assert_array_equal(
        loaded(x, training=False).numpy(), model(x, training=False).numpy()
    )
