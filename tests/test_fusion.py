"""Fused tentacles: exact fuse/unfuse, the LCE width rule, training, fused export."""

import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from helpers import randomize_weights
from larq_tentacle.core import fusion
from larq_tentacle.core.fused_layers import SharedGroupConv2D, TentacleConv2D

# Small inputs keep the tests fast; every layer of the real architectures is still there.
SMALL_INPUT = {"nin": (8, 8, 3), "resnet9": (8, 8, 3), "fernet": (16, 16, 1)}
CASES = [(name, n) for name in sorted(SMALL_INPUT) for n in (2, 3)]


def _randomize(model, seed=0):
    randomize_weights(model, seed)


def _images(name, count=4, seed=1):
    return np.random.default_rng(seed).normal(size=(count,) + SMALL_INPUT[name]).astype(np.float32)


def _build(name, n, **kwargs):
    model = lt.build(
        name, tentacles=n, input_shape=SMALL_INPUT[name], init="copy", seed=n, **kwargs
    )
    _randomize(model, seed=n)
    return model


@pytest.fixture(scope="module")
def round_trips():
    """(branched, fused, unfused, inputs) for every registered model at n = 2 and 3."""
    assert sorted(SMALL_INPUT) == lt.list_models(), "add the new model to SMALL_INPUT"
    results = {}
    for name, n in CASES:
        branched = _build(name, n)
        fused = lt.fuse(branched)
        results[(name, n)] = (branched, fused, lt.unfuse(fused), _images(name))
    return results


def _head_input(model, x):
    """What the head's Dense reads: the tentacles' features, before the softmax squashes them."""
    return tf.keras.Model(model.input, model.get_layer("head_dense").input)(x, training=False)


@pytest.mark.parametrize("name,n", CASES)
def test_fuse_and_unfuse_keep_predictions(round_trips, name, n):
    branched, fused, unfused, x = round_trips[(name, n)]
    expected = branched(x, training=False).numpy()
    # Float32 sums in another order (one XLA-compiled grouped conv vs n convs) move an
    # untrained ResNet9's logits (~1e2) by ~2e-6 relative; its saturated softmax then moves
    # by up to 2.1e-5 (measured; it depends on test order), so outputs get 1e-4 and the
    # head's input, which a wrong channel moves by >= 1e-2 relative, is compared too.
    for model in (fused, unfused):
        np.testing.assert_allclose(model(x, training=False).numpy(), expected, atol=1e-4, rtol=0)
        features, reference = (_head_input(m, x) for m in (model, branched))
        scale = np.abs(reference).max()
        np.testing.assert_allclose(features, reference, atol=1e-4 * scale, rtol=0)
    # Not a constant output: the comparison above would pass for any model otherwise.
    assert np.ptp(expected, axis=0).max() > 1e-4


@pytest.mark.parametrize("name,n", CASES)
def test_fused_form_has_one_grouped_conv_per_tentacle_layer(round_trips, name, n):
    branched, fused, _, _ = round_trips[(name, n)]
    branched_binary = [
        layer
        for layer in branched.layers
        if layer.name.startswith("t1_") and hasattr(layer, "kernel_quantizer")
    ]
    fused_binary = [layer for layer in fused.layers if hasattr(layer, "kernel_quantizer")]
    assert len(fused_binary) == len(branched_binary)
    assert fusion.is_fused(fused) and not fusion.is_fused(branched)
    assert fusion.fused_tentacles(fused) == n
    for layer in fused_binary:
        assert layer.name.startswith(f"tentacles{n}_")
        assert layer.filters == n * branched.get_layer("t1_" + layer.name.split("_", 1)[1]).filters
    # the first tentacle conv reads the stem once: n·F filters, no groups; later ones are grouped
    assert fused_binary[0].groups == 1
    assert all(layer.groups == n for layer in fused_binary[1:])


@pytest.mark.parametrize("name,n", CASES)
def test_round_trip_sizes_and_weights_are_identical(round_trips, name, n):
    branched, fused, unfused, _ = round_trips[(name, n)]
    size = lt.paper_size_kb(branched, exact=True)
    assert lt.paper_size_kb(fused, exact=True) == size
    assert lt.paper_size_kb(unfused, exact=True) == size
    assert [layer.name for layer in unfused.layers] == [layer.name for layer in branched.layers]
    for before, after in zip(branched.layers, unfused.layers):
        assert type(after) is type(before), before.name
        for w0, w1 in zip(before.get_weights(), after.get_weights()):
            np.testing.assert_array_equal(w0, w1)
    assert unfused.name == branched.name


def test_shared_head_conv_is_counted_once(round_trips):
    branched, fused, _, _ = round_trips[("nin", 3)]
    head = fused.get_layer("head_conv9")
    assert isinstance(head, SharedGroupConv2D) and head.tentacles == 3
    assert head.kernel.shape == branched.get_layer("head_conv9").kernel.shape


def test_build_fused_equals_fuse_of_build():
    float_model = _narrow_float_model(64)
    direct = lt.tentaclize(float_model, tentacles=2, seed=7, fused=True)
    branched = lt.tentaclize(float_model, tentacles=2, seed=7)
    assert fusion.is_fused(direct) and not fusion.is_fused(branched)
    fused = lt.fuse(branched)
    assert [layer.name for layer in direct.layers] == [layer.name for layer in fused.layers]
    for layer in direct.layers:
        for w0, w1 in zip(layer.get_weights(), fused.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(w0, w1)


def test_fused_model_trains_every_variable_gets_a_gradient(round_trips):
    branched, _, _, x = round_trips[("nin", 2)]
    model = lt.fuse(branched)
    x, y = np.concatenate([x, -x]), np.arange(8) % 10
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    names = [v.name for v in model.trainable_variables]
    assert any("head_conv9" in name for name in names)
    missing = [name for name, g in zip(names, gradients) if g is None]
    assert not missing, f"no gradient for {missing}"
    zero = [name for name, g in zip(names, gradients) if not np.any(g.numpy())]
    assert not zero, f"all-zero gradient for {zero}"


def test_models_saved_with_a_dropped_training_form_still_load(round_trips, tmp_path):
    """`TentacleConv2D` ("split"/"einsum", dropped) loads as Keras's grouped conv."""
    _, fused, _, x = round_trips[("fernet", 2)]
    config = fused.get_config()
    for entry in config["layers"]:
        if entry["class_name"] == "QuantConv2D" and entry["config"]["groups"] > 1:
            registered = "larq_tentacle>TentacleConv2D"
            entry.update(class_name="TentacleConv2D", registered_name=registered)
            entry.pop("module", None)
            entry["config"]["implementation"] = "einsum"
    legacy = tf.keras.Model.from_config(config)
    legacy.set_weights(fused.get_weights())
    assert any(isinstance(layer, TentacleConv2D) for layer in legacy.layers)
    path = tmp_path / "legacy.h5"
    legacy.save(path)
    loaded = lt.load_model(path, compile=False)
    np.testing.assert_allclose(loaded(x, training=False), fused(x, training=False), atol=1e-6)
    # fusing again gives back the export form
    assert not any(isinstance(layer, TentacleConv2D) for layer in lt.fuse(loaded).layers)


def _narrow_float_model(width):
    inputs = tf.keras.Input((8, 8, 3), name="image")
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="conv1")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn1")(x)
    x = tf.keras.layers.Conv2D(width, 3, padding="same", name="conv2")(x)
    x = tf.keras.layers.BatchNormalization(name="bn2")(x)
    x = tf.keras.layers.Conv2D(64, 3, padding="same", name="conv3")(x)
    x = tf.keras.layers.BatchNormalization(name="bn3")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(10, name="fc")(x)
    return tf.keras.Model(inputs, outputs, name="narrow")


def test_lce_width_rule_names_the_layer():
    model = lt.tentaclize(_narrow_float_model(48), tentacles=3)
    problems = fusion.lce_group_problems(model)
    assert [p.tentacle_layer for p in problems] == ["t1_conv3"]
    assert problems[0].channels_per_group == 48 and problems[0].feeding_layer == "t1_conv2"
    with pytest.raises(
        ValueError, match=r"'t1_conv3'.*48 input channels per group.*multiple of 32"
    ):
        lt.fuse(model)
    with pytest.raises(ValueError, match="t1_conv3"):
        lt.tentaclize(_narrow_float_model(48), tentacles=3, fused=True)
    # fusing for training is allowed when asked for, and still exact
    fused = lt.fuse(model, check_lce=False)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(fused(x), model(x), atol=1e-5)
    assert fusion.lce_group_problems(lt.tentaclize(_narrow_float_model(64), tentacles=3)) == []


def test_registered_models_all_fuse_for_lce(round_trips):
    for (name, n), (branched, _, _, _) in round_trips.items():
        assert fusion.lce_group_problems(branched) == [], name


def test_bad_arguments_are_refused(round_trips):
    model = round_trips[("fernet", 2)][0]
    with pytest.raises(ValueError, match="implementation.*'grouped'"):
        lt.fuse(model, implementation="fast")
    with pytest.raises(ValueError, match="not in the fused form"):
        lt.unfuse(model)
    with pytest.raises(ValueError, match="`fused`.*'maybe'"):
        lt.build("fernet", tentacles=2, fused="maybe")
    with pytest.raises(ValueError, match="no tentacles to fuse"):
        lt.build("fernet", precision="float", fused=True)
    with pytest.raises(ValueError, match="not a TentacleNet"):
        lt.fuse(lt.build("fernet", precision="float"))


def test_auto_picks_the_measured_form_for_this_device():
    fused, implementation = fusion.resolve_fused("auto")
    assert (fused, implementation) == fusion.AUTO_CHOICE[fusion.device_kind()]
    model = lt.tentaclize(_narrow_float_model(64), tentacles=2, fused="auto")
    assert fusion.is_fused(model) == fused


def test_fused_model_saves_and_loads(round_trips, tmp_path):
    _, fused, _, x = round_trips[("nin", 2)]
    path = tmp_path / "fused.h5"
    fused.save(path)
    loaded = lt.load_model(path, compile=False)
    np.testing.assert_allclose(loaded(x, training=False), fused(x, training=False), atol=1e-6)
    assert isinstance(loaded.get_layer("head_conv9"), SharedGroupConv2D)


@pytest.fixture(scope="module")
def fused_export(round_trips, tmp_path_factory):
    branched, _, _, x = round_trips[("nin", 3)]
    path = tmp_path_factory.mktemp("export") / "nin3_fused.tflite"
    return branched, lt.export(branched, path, fused=True, sample=x), x


@pytest.mark.slow
def test_fused_export_has_one_bconv_per_tentacle_layer(fused_export):
    branched, result, _ = fused_export
    binary_layers_per_tentacle = sum(
        1
        for layer in branched.layers
        if layer.name.startswith("t1_") and hasattr(layer, "kernel_quantizer")
    )
    assert result.sidecar["census"]["ops"]["LceBconv2d"] == binary_layers_per_tentacle
    assert result.sidecar["fused"] is True
    assert result.sidecar["kernel"]["use_indirect_bgemm"] is True


@pytest.mark.slow
def test_fused_export_matches_keras_under_indirect_bgemm(fused_export):
    import larq_compute_engine as lce

    branched, result, x = fused_export
    with open(result.path, "rb") as file:
        flatbuffer = file.read()
    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=1, use_indirect_bgemm=True)
    np.testing.assert_allclose(
        interpreter.predict(x), branched(x, training=False).numpy(), atol=1e-4
    )
    assert result.report.passed and result.report.kernel == "indirect_bgemm"
