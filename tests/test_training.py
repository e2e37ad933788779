"""training.train / fit_model: the paper's recipe, the workdir contract, resume, init_from."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from larq_tentacle.data import pipeline as data
from larq_tentacle.training import callbacks
from larq_tentacle.training import config as training_config
from larq_tentacle.training import loop as training
from larq_tentacle.training import report as training_report

REPORT_KEYS = {
    "model", "dataset", "tentacles", "precision", "test_accuracy", "fp32_accuracy", "delta_vs_fp32",
    "paper_size_kb", "epochs_completed", "wall_time_s", "versions",
}
WORKDIR_FILES = {
    "config.json", "best_model.h5", "last_model.h5", "history.csv", "tensorboard", "report.json",
    "preprocessing.json",
}
# Small enough to train in seconds on 2 cores, big enough for every model's poolings.
SMALL_SIZE = {"nin": 4, "resnet9": 8, "fernet": 16}


def tiny(model="nin", **overrides):
    values = dict(
        model=model, dataset="digits", epochs=1, batch_size=64, input_size=SMALL_SIZE[model]
    )
    values.update(overrides)
    return training.TrainConfig(**values)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(dataset="mnist"), "dataset.*'mnist'"),
        (dict(epochs=-1), "epochs.*-1"),
        (dict(epochs=0), "epochs.*0"),
        (dict(tentacles=0), "tentacles.*0"),
        (dict(precision="float", tentacles=3), "tentacles must be 1"),
        (dict(precision="half"), "precision.*'half'"),
        (dict(optimizer="rmsprop"), "optimizer.*'rmsprop'"),
        (dict(strategy="tpu"), "strategy.*'tpu'"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(lr_factor=1.5), "lr_factor.*< 1"),
        (dict(fp32_accuracy=88.1), "fraction.*0.881"),
        (dict(input_size=2), "input_size.*>= 4"),
        (dict(init="copy"), "needs --init_from"),
        (dict(augment="rotate"), "augment"),
        (dict(model_options=dict(depth=2)), "unknown argument.*depth"),
        (dict(model_options=dict(width=0)), "width"),
    ],
)
def test_bad_config_is_refused_early_with_the_fix(overrides, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tiny(**overrides).resolved()


def test_unknown_model_and_missing_init_from(tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'vgg'"):
        training.TrainConfig(model="vgg").resolved()
    with pytest.raises(FileNotFoundError, match="best_model.h5"):
        tiny(init_from=str(tmp_path)).resolved()
    with pytest.raises(TypeError, match="TrainConfig"):
        training.train({"model": "nin"}, tmp_path)


def test_resolved_defaults_follow_the_paper():
    config = training.TrainConfig(model="nin").resolved()
    assert (config.dataset, config.epochs, config.optimizer) == ("cifar10", 300, "adam")
    assert (config.lr_patience, config.lr_factor, config.init) == (15, 0.1, "hadamard")
    assert training.TrainConfig.from_dict(config.to_dict()) == config
    fernet3 = training.TrainConfig(model="fernet", tentacles=3)
    assert training_config.default_workdir(fernet3) == os.path.join("runs", "fernet_fer2013_tn3")


def _check_run(workdir, report, config):
    assert WORKDIR_FILES <= set(os.listdir(workdir))
    assert REPORT_KEYS <= set(report)
    with open(os.path.join(workdir, "report.json")) as file:
        assert json.load(file) == json.loads(json.dumps(report))
    with open(os.path.join(workdir, "config.json")) as file:
        assert json.load(file) == config.resolved().to_dict()
    with open(os.path.join(workdir, "preprocessing.json")) as file:
        assert json.load(file)["input_shape"] == report["input_shape"]
    rows = callbacks.read_history(os.path.join(workdir, "history.csv"))
    assert (
        [row["epoch"] for row in rows] == list(range(1, config.epochs + 1))
        and report["epochs_completed"] == config.epochs
    )
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    # The reported number is the best model's accuracy on the test split.
    best = lt.load_model(os.path.join(workdir, "best_model.h5"), compile=False)
    assert lt.paper_size_kb(best) == report["paper_size_kb"]
    assert 0.0 <= report["test_accuracy"] <= 1.0


# Every model once, both datasets covered (each run costs a graph trace, the budget is tight).
@pytest.mark.parametrize(
    "model, dataset",
    [(name, ("cifar10", "cifar100")[i % 2]) for i, name in enumerate(lt.list_models())],
)
def test_every_model_trains_one_epoch_on_mock_cifar(tmp_path, model, dataset):
    import tensorflow_datasets as tfds

    config = tiny(model, dataset=dataset, tentacles=2, batch_size=4, fp32_accuracy=0.5)
    with tfds.testing.mock_data(num_examples=8):
        report = training.train(config, tmp_path, verbose=0)
    _check_run(tmp_path, report, config)
    classes = {"cifar10": 10, "cifar100": 100}[dataset]
    assert report["num_classes"] == classes and report["input_shape"][2] == 3
    assert report["delta_vs_fp32"] == pytest.approx(report["test_accuracy"] - 0.5)
    assert report["split_sizes"] == {"train": 7, "validation": 1, "test": 8}
    best = lt.load_model(os.path.join(tmp_path, "best_model.h5"), compile=False)
    if lt.layout(best).head_variant == "a":
        assert (
            len(report["tentacle_accuracies"]) == 2
            and report["ensemble_accuracy"] == report["test_accuracy"]
        )
    else:
        assert "tentacle_accuracies" not in report


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A 1-epoch NiN TentacleNet on digits (head of Fig. 2-a), trained once for this module."""
    workdir = tmp_path_factory.mktemp("digits_run")
    config = tiny(tentacles=3)
    return workdir, config, training.train(config, workdir, verbose=0)


def test_digits_run_reports_each_tentacle(digits_run):
    workdir, config, report = digits_run
    _check_run(workdir, report, config)
    assert report["split_sizes"] == {"train": 1149, "validation": 288, "test": 360}
    accuracies = report["tentacle_accuracies"]
    assert len(accuracies) == 3 and all(0.0 <= a <= 1.0 for a in accuracies)
    # Recomputed from the saved model: tentacle i alone is the argmax of its own logits.
    model = lt.load_model(os.path.join(workdir, "best_model.h5"), compile=False)
    arrays = data.load_arrays("digits", input_shape=tuple(report["input_shape"]))
    assert training_report.tentacle_accuracies(model, arrays.x_test, arrays.y_test) == accuracies
    predictions = np.argmax(model.predict(arrays.x_test, verbose=0), -1)
    assert np.mean(predictions == arrays.y_test) == pytest.approx(report["test_accuracy"], abs=1e-6)


def test_rerun_extends_a_finished_run_and_never_retrains_it(digits_run, tmp_path):
    workdir, config, first = digits_run
    extended = training.train(dataclasses.replace(config, epochs=2), workdir, verbose=0)
    rows = callbacks.read_history(os.path.join(workdir, "history.csv"))
    assert [row["epoch"] for row in rows] == [1, 2] and extended["resumed_from_epoch"] == 1
    before = open(os.path.join(workdir, "history.csv")).read()
    again = training.train(dataclasses.replace(config, epochs=2), workdir, verbose=0)
    assert open(os.path.join(workdir, "history.csv")).read() == before
    assert again["epochs_completed"] == 2 and again["resumed_from_epoch"] == 2
    assert again["test_accuracy"] == extended["test_accuracy"]
    with pytest.raises(ValueError, match="holds a different run.*tentacles: 3 -> 2"):
        training.train(dataclasses.replace(config, tentacles=2), workdir, verbose=0)


def test_stale_temporary_files_are_removed(digits_run):
    workdir, config, _ = digits_run
    stale = os.path.join(workdir, ".report.abc123.tmp.json")
    open(stale, "w").write("{half")
    training.train(dataclasses.replace(config, epochs=2), workdir, verbose=0)
    assert not os.path.exists(stale)


def test_init_from_copies_the_float_run(tmp_path):
    float_config = tiny(precision="float")
    float_report = training.train(float_config, tmp_path / "fp32", verbose=0)
    config = tiny(tentacles=2, init_from=str(tmp_path / "fp32")).resolved()
    assert config.init == "copy"
    model = training.build_model(config, input_shape=(4, 4, 3), num_classes=10)
    float_model = lt.load_model(tmp_path / "fp32" / "best_model.h5", compile=False)
    for tentacle in (1, 2):
        np.testing.assert_array_equal(
            model.get_layer(f"t{tentacle}_conv4").get_weights()[0],
            float_model.get_layer("conv4").get_weights()[0],
        )
    np.testing.assert_array_equal(
        model.get_layer("stem_conv1").get_weights()[0],
        float_model.get_layer("conv1").get_weights()[0],
    )
    with pytest.raises(ValueError, match="input \\(8, 8, 3\\)"):
        training.build_model(config, input_shape=(8, 8, 3), num_classes=10)
    report = training.train(config, tmp_path / "tn2", verbose=0)
    assert report["fp32_accuracy"] == float_report["test_accuracy"]
    assert report["delta_vs_fp32"] == pytest.approx(
        report["test_accuracy"] - float_report["test_accuracy"]
    )


def _small_model():
    inputs = tf.keras.Input((2,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(tf.keras.optimizers.Adam(0.1), "sparse_categorical_crossentropy")
    return model


def test_plateau_replay_matches_the_live_schedule(tmp_path):
    losses = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8]
    live_model = _small_model()
    live = tf.keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
    live.set_model(live_model)
    live.on_train_begin()
    for epoch, loss in enumerate(losses):
        live.on_epoch_end(epoch, {"val_loss": loss})
    callbacks.write_history(
        tmp_path / "history.csv", [dict(epoch=i + 1, val_loss=v) for i, v in enumerate(losses)]
    )
    resumed_model = _small_model()
    run_log = callbacks.RunLog(str(tmp_path))
    replay = callbacks.ResumablePlateau(
        run_log, initial_lr=0.1, monitor="val_loss", factor=0.5, patience=2
    )
    for callback in (run_log, replay):
        callback.set_model(resumed_model)
        callback.on_train_begin()
    callbacks.set_lr(resumed_model, 0.123)  # what a restored optimizer might hold
    for callback in (run_log, replay):
        callback.on_epoch_begin(len(losses))
    assert (
        callbacks.current_lr(resumed_model)
        == pytest.approx(callbacks.current_lr(live_model))
        == pytest.approx(0.025)
    )
    assert (replay.wait, replay.best) == (live.wait, live.best)


def test_fit_model_takes_datasets_and_sample_weights(tmp_path):
    arrays = data.load_arrays("digits", input_shape=(4, 4, 1))
    subset = dataclasses.replace(arrays, x_train=arrays.x_train[:128], y_train=arrays.y_train[:128])
    bundle = data.DatasetBundle(
        train=None,  # fit_model rebuilds the training pipeline to carry the weights
        validation=data.make_dataset(arrays.x_val, arrays.y_val, batch_size=64, training=False),
        test=None,
        num_classes=10,
        class_names=arrays.class_names,
        preprocessing=arrays.preprocessing,
        sizes=subset.sizes(),
        arrays=subset,
    )
    config = tiny(tentacles=2, batch_size=32).resolved()
    model = lt.build("nin", tentacles=2, input_shape=(4, 4, 1), num_classes=10)
    before = [w.numpy().copy() for w in model.trainable_weights]
    # All-zero weights: zero loss, zero gradients, so no trainable weight may move.
    history = training.fit_model(
        model,
        bundle,
        config=config,
        workdir=tmp_path / "zero",
        sample_weight=np.zeros(128),
        verbose=0,
    )
    assert history.history["loss"] == [0.0]
    for old, new in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(old, new.numpy())
    with pytest.raises(ValueError, match="sample_weight needs the training arrays"):
        training.fit_model(
            model,
            (bundle.validation, bundle.validation),
            config=config,
            workdir=tmp_path / "x",
            sample_weight=np.ones(128),
        )
    history = training.fit_model(
        model,
        (bundle.validation, bundle.validation),
        config=config,
        workdir=tmp_path / "pair",
        verbose=0,
    )
    assert history.epoch == [0] and set(history.history) >= {"loss", "val_loss", "lr"}
    assert any(
        not np.array_equal(old, new.numpy()) for old, new in zip(before, model.trainable_weights)
    )
