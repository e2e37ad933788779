"""Two-stage training (float weights, then binary ones) and the Bop optimizer."""

import os

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from helpers import interrupting_dataset
from larq_tentacle.core.binarization import is_binary_layer
from larq_tentacle.data import pipeline as data
from larq_tentacle.training import callbacks, optimizers, stages
from larq_tentacle.training import loop as training
from larq_tentacle.utils.run_folder import RunFolder

SHAPE = (4, 4, 1)


def _bnn(tentacles=1, seed=0):
    return lt.build("nin", tentacles=tentacles, input_shape=SHAPE, num_classes=10, seed=seed)


def _config(**overrides):
    values = dict(model="nin", dataset="digits", epochs=2, batch_size=64, input_size=4)
    values.update(overrides)
    return training.TrainConfig(**values).resolved()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(stages=3), "stages.*1 or 2"),
        (dict(stages=2, epochs=1), "--epochs=2 or more"),
        (dict(stage1_epochs=1), "add --stages=2"),
        (dict(stages=2, epochs=3, stage1_epochs=3), "no epoch of --epochs=3 for stage 2"),
        (dict(stages=2, stage1_epochs=0), "stage1_epochs.*>= 1"),
        (dict(precision="float", stages=2), "--stages=2 trains binary weights"),
        (dict(precision="float", optimizer="bop"), "--optimizer=bop trains binary weights"),
        (dict(optimizer="rmsprop"), "optimizer.*'rmsprop'"),
    ],
)
def test_bad_stage_and_optimizer_options_are_refused_with_the_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def test_stage1_length():
    assert _config().stage1_length() == 0
    assert _config(stages=2, epochs=7).stage1_length() == 3
    assert _config(stages=2, epochs=7, stage1_epochs=5).stage1_length() == 5


def test_float_weight_model_keeps_the_binary_activations_and_the_weights():
    model = _bnn(tentacles=2)
    float_model = stages.float_weight_model(model)
    assert [layer.name for layer in float_model.layers] == [layer.name for layer in model.layers]
    binary = [layer.name for layer in model.layers if is_binary_layer(layer)]
    assert binary and not any(is_binary_layer(layer) for layer in float_model.layers)
    for name in binary:
        layer = float_model.get_layer(name)
        assert layer.kernel_quantizer is None
        assert layer.get_config()["input_quantizer"] == model.get_layer(name).get_config()[
            "input_quantizer"
        ]
        assert layer.get_config()["kernel_constraint"] is not None  # latent weights stay in ±1
    for expected, found in zip(model.get_weights(), float_model.get_weights()):
        np.testing.assert_array_equal(found, expected)
    x = np.random.default_rng(0).standard_normal((2, *SHAPE)).astype("float32")
    assert not np.allclose(model.predict(x, verbose=0), float_model.predict(x, verbose=0))
    # Stage 2 copies the stage-1 weights back: the float kernel becomes the latent one.
    for variable in float_model.trainable_variables:
        variable.assign(variable + 0.01)
    stages.copy_weights(float_model, model)
    for name in binary:
        np.testing.assert_array_equal(
            model.get_layer(name).kernel.latent_variable.numpy(),
            float_model.get_layer(name).get_weights()[0],
        )
    with pytest.raises(ValueError, match="same architecture"):
        stages.copy_weights(_bnn(tentacles=1), model)


@pytest.fixture(scope="module")
def digits_arrays():
    arrays = data.load_arrays("digits", input_shape=SHAPE)
    validation = data.make_dataset(arrays.x_val, arrays.y_val, batch_size=128, training=False)
    return arrays.x_train[:128], arrays.y_train[:128].astype("int64"), validation


def _fit_stages(model, workdir, digits_arrays, *, crash_after=None, **overrides):
    x, y, validation = digits_arrays
    train = interrupting_dataset(x, y, batch_size=64, crash_after=crash_after)
    config = _config(stages=2, epochs=3, stage1_epochs=1, **overrides)
    return training.fit_stages(model, (train, validation), config=config, workdir=workdir,
                               verbose=0)


@pytest.mark.slow
def test_stage2_starts_from_stage1_and_an_interrupted_stage2_never_redoes_stage1(
    tmp_path, digits_arrays
):
    stage1 = RunFolder(tmp_path / stages.STAGE1)
    # 2 batches an epoch: stage 1 reads batches 1-2, stage 2 dies on its first batch.
    model = _bnn()
    with pytest.raises(Exception, match="interrupted"):
        _fit_stages(model, tmp_path, digits_arrays, crash_after=2)
    first = lt.load_model(stage1.best_model, compile=False)
    assert [row["epoch"] for row in callbacks.read_history(stage1.history)] == [1]
    assert not any(is_binary_layer(layer) for layer in first.layers)
    for layer in first.layers:  # the binary model holds stage 1's weights, none trained since
        for expected, found in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(found, expected)
    stage1_history = open(stage1.history).read()

    # Again from the start (a new process): stage 1 is done, stage 2 dies in its epoch 2.
    with pytest.raises(Exception, match="interrupted"):
        _fit_stages(_bnn(), tmp_path, digits_arrays, crash_after=2)
    assert [row["epoch"] for row in callbacks.read_history(RunFolder(tmp_path).history)] == [1]
    # Once more: stage 2 resumes from its backup at epoch 1 and finishes; stage 1 untouched.
    history = _fit_stages(_bnn(), tmp_path, digits_arrays)
    assert history.initial_epoch == 1 and history.epoch == [0, 1]
    assert open(stage1.history).read() == stage1_history
    best = lt.load_model(os.path.join(tmp_path, "best_model.h5"), compile=False)
    assert any(is_binary_layer(layer) for layer in best.layers)


def test_bop_optimizer_exposes_adams_learning_rate_to_the_lr_schedule():
    optimizer = optimizers.make_optimizer(_config(optimizer="bop", learning_rate=0.01))
    assert isinstance(optimizer, lq.optimizers.CaseOptimizer)
    model = _bnn()
    model.compile(optimizer, "sparse_categorical_crossentropy")
    assert callbacks.current_lr(model) == pytest.approx(0.01)
    plateau = tf.keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0)
    plateau.set_model(model)
    plateau.on_train_begin()
    for epoch, loss in enumerate([1.0, 2.0]):
        plateau.on_epoch_end(epoch, {"val_loss": loss})
    assert callbacks.current_lr(model) == pytest.approx(0.005)
    assert float(optimizer.default.learning_rate.numpy()) == pytest.approx(0.005)


def test_bop_flips_binary_kernels_moves_the_rest_and_resumes(tmp_path, digits_arrays):
    x, y, validation = digits_arrays
    config = _config(optimizer="bop", learning_rate=0.01)
    model = _bnn()
    binary = [layer.name for layer in model.layers if is_binary_layer(layer)]
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    crashing = interrupting_dataset(x, y, batch_size=64, crash_after=2)  # dies in epoch 2
    with pytest.raises(Exception, match="interrupted"):
        training.fit_model(model, (crashing, validation), config=config, workdir=tmp_path,
                           verbose=0)
    for name in binary:
        kernel = model.get_layer(name).get_weights()[0]
        assert set(np.unique(kernel)) <= {-1.0, 1.0}  # Bop keeps binary weights binary
    flipped = [
        np.mean(np.sign(model.get_layer(name).get_weights()[0]) != np.sign(before[name][0]))
        for name in binary
    ]
    assert max(flipped) > 0, flipped
    stem = model.get_layer("stem_conv1").get_weights()[0]
    assert not np.allclose(stem, before["stem_conv1"][0])  # Adam trained the float weights
    backup = [path for path, _, files in os.walk(tmp_path / "backup") if "checkpoint" in files]
    saved = [name for name, _ in tf.train.list_variables(tf.train.latest_checkpoint(backup[0]))]
    assert any("optimizer_0" in name and "/m/" in name for name in saved), saved[:20]

    history = training.fit_model(_bnn(), (interrupting_dataset(x, y, batch_size=64), validation),
                                 config=config, workdir=tmp_path, verbose=0)
    assert history.initial_epoch == 1 and history.epoch == [0, 1]
    assert [row["lr"] for row in callbacks.read_history(RunFolder(tmp_path).history)] == [
        pytest.approx(0.01)
    ] * 2
