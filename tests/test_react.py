"""block="react" (ReActNet's learnable shifts, optional RPReLU) through build, training,
save/load, fuse/unfuse, sizes, strict export and the apps' flags (issue 13, item 1)."""

import json
import os

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import larq_tentacle as lt
from helpers import loaded_app, randomize_weights, run_main
from larq_tentacle.core.graph import LayerGraph
from larq_tentacle.core.layout import binary_layers
from larq_tentacle.core.react_layers import REACT_LAYERS, LearnableShift, RPReLU
from larq_tentacle.deploy import rules
from larq_tentacle.deploy.conversion import convert
from larq_tentacle.training.config import TrainConfig
from larq_tentacle.training.loop import build_model
from larq_tentacle.training.recipe import Recipe

SMALL_INPUT = {"nin": (8, 8, 3), "resnet9": (8, 8, 3), "fernet": (16, 16, 1)}
VARIANTS = {
    "xnor": dict(block="xnor"),
    "react": dict(block="react"),
    "rprelu": dict(block="react", rprelu=True),
}
# Layers a per-channel shift passes through on its way to a binary conv.
_ON_THE_WAY = (
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.Reshape,
    tf.keras.layers.Dropout,
)


def _images(name, count=4, seed=1):
    return np.random.default_rng(seed).normal(size=(count,) + SMALL_INPUT[name]).astype(np.float32)


def _randomize(model, seed=0):
    """Distinct, non-trivial weights everywhere (BatchNorm statistics, kernels, shifts)."""
    # Shifts and (positive) PReLU slopes from the same range.
    return randomize_weights(model, seed, also=REACT_LAYERS)


def _react_layers(model, kind=REACT_LAYERS):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def _shift_before(graph, conv_name):
    """The shift or RPReLU a binary conv reads through pooling/reshapes, or None."""
    name = graph.inputs_of[conv_name][0]
    while isinstance(graph.layer(name), _ON_THE_WAY):
        name = graph.inputs_of[name][0]
    layer = graph.layer(name)
    return layer if isinstance(layer, REACT_LAYERS) else None


# --- building -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", sorted(SMALL_INPUT))
def test_every_binary_conv_reads_a_learnable_shift(name, variant):
    assert sorted(SMALL_INPUT) == lt.list_models(), "add the new model to SMALL_INPUT"
    model = lt.build(name, tentacles=2, input_shape=SMALL_INPUT[name], **VARIANTS[variant])
    graph = LayerGraph(model, where="test", shared_layers=True)
    binary = [layer.name for layer in binary_layers(model)]
    shifts = {n: _shift_before(graph, n) for n in binary}
    structure = lt.layout(model)
    if variant == "xnor":
        assert _react_layers(model) == [] and structure.block == "xnor"
        return
    assert all(shifts.values()), [n for n, s in shifts.items() if s is None]
    assert (structure.block, structure.rprelu) == ("react", variant == "rprelu")
    for conv, shift in shifts.items():
        in_stem = shift.name.startswith("stem_")
        # The first tentacle conv reads the shared stem: its shift is a stem layer
        # (a plain shift); every other shift belongs to the conv's own tentacle.
        assert in_stem or shift.name.split("_")[0] == conv.split("_")[0]
        expected = RPReLU if variant == "rprelu" and not in_stem else LearnableShift
        assert type(shift) is expected, (conv, shift.name)
    per_tentacle = [
        sum(isinstance(layer, REACT_LAYERS) for layer in structure.tentacle_layers[i])
        for i in (1, 2)
    ]
    assert per_tentacle[0] == per_tentacle[1] > 0


@pytest.mark.parametrize("name", sorted(SMALL_INPUT))
def test_react_starts_as_the_xnor_model_and_its_shifts_change_the_output(name):
    """Shifts start at 0: the same function as XNOR-Net; nonzero shifts move the output."""
    shape = SMALL_INPUT[name]
    float_model = lt.build(name, precision="float", input_shape=shape)
    xnor = lt.tentaclize(float_model, tentacles=2, seed=3)
    react = lt.tentaclize(float_model, tentacles=2, seed=3, block="react")
    _randomize(xnor)
    x = _images(name)
    for layer in xnor.layers:
        react.get_layer(layer.name).set_weights(layer.get_weights())
    # The head's input: the tentacles' features, before a softmax saturates them.
    xnor, react = (tf.keras.Model(m.input, m.get_layer("head_dense").input) for m in (xnor, react))
    np.testing.assert_allclose(react(x, training=False), xnor(x, training=False), atol=1e-6)
    for layer in _react_layers(react):
        layer.set_weights([np.full(w.shape, 0.7, np.float32) for w in layer.get_weights()])
    assert np.abs(react(x, training=False) - xnor(x, training=False)).max() > 1e-3


def test_shifts_are_trainable_and_get_gradients():
    model = lt.build("fernet", tentacles=2, input_shape=(16, 16, 1), num_classes=3,
                     block="react", rprelu=True)
    x, y = _images("fernet", count=8), np.arange(8) % 3
    react_variables = [v for layer in _react_layers(model) for v in layer.trainable_weights]
    assert react_variables and all(v.trainable for v in react_variables)
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, react_variables)
    zero = [v.name for v, g in zip(react_variables, gradients) if g is None or not np.any(g)]
    assert zero == []
    before = [v.numpy().copy() for v in react_variables]
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert all(np.any(b != v.numpy()) for b, v in zip(before, react_variables))


def test_sizes_count_react_parameters_as_float32():
    shape = SMALL_INPUT["fernet"]
    sizes = {}
    for variant, options in VARIANTS.items():
        model = lt.build("fernet", tentacles=3, input_shape=shape, **options)
        parameters = sum(int(w.shape.num_elements()) for layer in _react_layers(model)
                         for w in layer.weights)
        sizes[variant] = (lt.paper_size_kb(model, exact=True) * 8 * 1024, parameters)
    for variant in ("react", "rprelu"):
        bits, parameters = sizes[variant]
        assert parameters > 0 and bits - sizes["xnor"][0] == 32 * parameters
    # RPReLU: three vectors per tentacle point instead of one.
    assert sizes["rprelu"][1] > sizes["react"][1]


# --- save/load and fusion --------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_save_and_load_keep_outputs_and_layers(tmp_path, suffix):
    model = _randomize(
        lt.build("nin", tentacles=2, input_shape=(8, 8, 3), block="react", rprelu=True)
    )
    path = str(tmp_path / f"react{suffix}")
    model.save(path)
    loaded = lt.load_model(path, compile=False)
    x = _images("nin")
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    assert [type(layer) for layer in _react_layers(loaded)] == [
        type(layer) for layer in _react_layers(model)
    ]
    rprelu = _react_layers(loaded, RPReLU)[0]
    assert rprelu.get_config()["alpha_initializer"] == 0.25
    assert type(rprelu).from_config(rprelu.get_config()).get_config() == rprelu.get_config()


@pytest.mark.parametrize("variant", ["react", "rprelu"])
@pytest.mark.parametrize("name", sorted(SMALL_INPUT))
def test_fuse_and_unfuse_keep_predictions_and_parameters(name, variant):
    n = 3
    branched = lt.build(
        name, tentacles=n, input_shape=SMALL_INPUT[name], init="copy", seed=n, **VARIANTS[variant]
    )
    _randomize(branched, seed=n)
    fused = lt.fuse(branched)
    unfused = lt.unfuse(fused)
    x = _images(name)
    expected = branched(x, training=False).numpy()
    for model in (fused, unfused):
        np.testing.assert_allclose(model(x, training=False), expected, atol=1e-4, rtol=0)
    # The inputs must be told apart (in log space: random weights may saturate the softmax).
    assert np.ptp(np.log(np.maximum(expected, 1e-30)), axis=0).max() > 1e-3
    # One fused layer holds the n tentacles' parameters, in tentacle order.
    fused_react = [layer for layer in _react_layers(fused) if layer.name.startswith("tentacles")]
    assert fused_react
    for layer in fused_react:
        block = layer.name.split("_", 1)[1]
        parts = [branched.get_layer(f"t{i}_{block}").get_weights() for i in range(1, n + 1)]
        for weight, pieces in zip(layer.get_weights(), zip(*parts)):
            np.testing.assert_array_equal(weight, np.concatenate(pieces))
    assert [layer.name for layer in unfused.layers] == [layer.name for layer in branched.layers]
    assert lt.paper_size_kb(fused, exact=True) == lt.paper_size_kb(branched, exact=True)


# --- options and flags -----------------------------------------------------------------


def test_bad_block_options_name_the_fix():
    with pytest.raises(ValueError, match="block.*'reactnet'.*Did you mean 'react'"):
        lt.build("nin", block="reactnet")
    with pytest.raises(ValueError, match="rprelu=True.*Fix: pass block='react'"):
        lt.build("nin", rprelu=True)
    with pytest.raises(ValueError, match="rprelu.*True or False"):
        lt.build("nin", block="react", rprelu="yes")
    with pytest.raises(ValueError, match="precision='float'.*block='react'.*Fix"):
        lt.build("nin", precision="float", block="react")
    float_model = lt.build("nin", precision="float", input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="rprelu=True.*Fix"):
        lt.tentaclize(float_model, tentacles=2, rprelu=True)
    with pytest.raises(TypeError):
        lt.tentaclize(float_model, 2, "hadamard", 0, None, False, "react")  # keyword-only
    with pytest.raises(ValueError, match="rprelu=True.*Fix"):
        Recipe(rprelu=True).resolved_recipe()
    with pytest.raises(ValueError, match="block"):
        TrainConfig(model="nin", block="bnn").resolved()


def test_float_baseline_of_a_react_recipe_is_the_plain_fp32_model():
    """A sweep trains its FP32 baseline with the TentacleNets' recipe: block is ignored."""
    config = TrainConfig(model="nin", precision="float", block="react", rprelu=True).resolved()
    model = build_model(config, input_shape=(8, 8, 3), num_classes=10)
    assert _react_layers(model) == [] and not binary_layers(model)
    binary = TrainConfig(model="nin", tentacles=2, block="react", rprelu=True).resolved()
    model = build_model(binary, input_shape=(8, 8, 3), num_classes=10)
    assert _react_layers(model, RPReLU)


def test_sweep_app_has_the_block_flags():
    for _ in loaded_app("sweep"):
        assert flags.FLAGS["block"].default == "xnor" and flags.FLAGS["rprelu"].default is False


@pytest.fixture(scope="module")
def train_app():
    yield from loaded_app("train")


def test_train_app_block_flags_train_a_react_model(train_app, tmp_path):
    argv = [
        "--model=nin", "--dataset=digits", "--input_size=4", "--tentacles=2", "--epochs=1",
        "--batch_size=64", "--block=react", "--rprelu", "--verbose=0", f"--workdir={tmp_path}",
    ]
    assert run_main(train_app, argv, program="train.py") == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["block"], config["rprelu"]) == ("react", True)
    model = lt.load_model(os.path.join(tmp_path, "best_model.h5"), compile=False)
    assert (lt.layout(model).block, lt.layout(model).rprelu) == ("react", True)


def test_bad_block_flag_is_one_error_line(train_app, tmp_path, capsys):
    argv = ["--model=nin", "--block=xnor", "--rprelu", f"--workdir={tmp_path}"]
    assert run_main(train_app, argv, program="train.py") == 2
    assert "block='react'" in capsys.readouterr().err


# --- export --------------------------------------------------------------------------

_EXPORTS = {}


def _exported(variant, fused, tmp_path_factory):
    """fernet n=3 (16x16), randomized, exported strictly and verified; once per session."""
    key = (variant, fused)
    if key not in _EXPORTS:
        model = _randomize(
            lt.build("fernet", tentacles=3, input_shape=(16, 16, 1), num_classes=10,
                     **VARIANTS[variant]),
            seed=5,
        )
        folder = tmp_path_factory.mktemp(f"react_{variant}_{fused}")
        result = lt.export(model, str(folder / "m.tflite"), fused=fused, random_samples=8)
        _EXPORTS[key] = model, result, lt.op_census(result.path)
    return _EXPORTS[key]


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True], ids=["branched", "fused"])
def test_export_react_has_the_xnor_ops_and_rprelu_its_counted_extras(fused, tmp_path_factory):
    census = {v: _exported(v, fused, tmp_path_factory)[2] for v in VARIANTS}
    for variant in VARIANTS:
        report = _exported(variant, fused, tmp_path_factory)[1].report
        assert report.passed and report.violations == [] and report.max_abs_diff <= 1e-3
    xnor, react, rprelu = (census[v]["ops"] for v in ("xnor", "react", "rprelu"))
    assert react == xnor  # every shift folded into a binary conv's threshold or the stem conv
    assert abs(census["react"]["total_bytes"] - census["xnor"]["total_bytes"]) <= 64
    blocks = 7 * (1 if fused else 3)  # fernet: 7 tentacle shifts in front of conv3..conv9
    assert rprelu.pop("PRELU") == rprelu.pop("SUB") == blocks
    assert rprelu.pop("LceQuantize") == xnor["LceQuantize"] + blocks
    assert rprelu == {k: v for k, v in xnor.items() if k != "LceQuantize"}
    model = _exported("rprelu", fused, tmp_path_factory)[0]
    needs = rules.topology_needs(lt.fuse(model) if fused else model)
    assert len(needs.quantize_sources) == 1 + blocks and len(needs.rprelu_layers) == blocks


def _tiny_tentacle(middle):
    """stem conv -> binary conv -> BN -> `middle` layers -> binary conv -> float head."""
    inputs = tf.keras.Input((8, 8, 1), name="image")
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="stem_conv1")(inputs)
    x = tf.keras.layers.BatchNormalization(name="stem_bn1")(x)
    binary = dict(padding="same", pad_values=1.0, input_quantizer="ste_sign",
                  kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)
    x = lq.layers.QuantConv2D(32, 3, name="t1_conv2", **binary)(x)
    x = tf.keras.layers.BatchNormalization(name="t1_bn2")(x)
    for layer in middle:
        x = layer(x)
    x = lq.layers.QuantConv2D(32, 3, name="t1_conv3", **binary)(x)
    x = tf.keras.layers.BatchNormalization(name="t1_bn3")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = tf.keras.layers.Dense(4, name="head_dense")(x)
    model = tf.keras.Model(inputs, outputs, name="tiny_react")
    for layer in model.layers:
        if isinstance(layer, (tf.keras.layers.BatchNormalization, *REACT_LAYERS)):
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([rng.uniform(0.3, 1.2, w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    return model


class _MaxRPReLU(RPReLU):
    """An RPReLU written so that the converter makes no PRELU of it."""

    def call(self, inputs):
        x = inputs - self.input_shift
        return tf.maximum(x, 0.0) + self.alpha * tf.minimum(x, 0.0) - self.output_shift


@pytest.mark.slow
def test_strict_rules_refuse_react_ops_the_template_does_not_make():
    good = _tiny_tentacle([LearnableShift(name="t1_bn2_shift")])
    assert rules.strict_violations(good, convert(good)) == []
    good = _tiny_tentacle([RPReLU(name="t1_bn2_rprelu")])
    assert rules.strict_violations(good, convert(good)) == []
    stray = _tiny_tentacle([tf.keras.layers.PReLU(shared_axes=[1, 2], name="t1_prelu")])
    problems = rules.strict_violations(stray, convert(stray))
    assert any("PRELU" in p and "'t1_prelu'" in p for p in problems), problems
    odd = _tiny_tentacle([_MaxRPReLU(name="t1_bn2_rprelu")])
    problems = rules.strict_violations(odd, convert(odd))
    assert any("'t1_bn2_rprelu' (RPReLU)" in p for p in problems), problems
