"""Distillation from the FP32 teacher: the loss, the wrapper under fit_model, flags and resume."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from helpers import interrupting_dataset, loaded_app, run_main
from larq_tentacle.data import pipeline as data
from larq_tentacle.training import callbacks, distillation
from larq_tentacle.training import loop as training
from larq_tentacle.utils.run_folder import RunFolder

SHAPE = (4, 4, 1)


def _dense_model(kernel, bias, name):
    inputs = tf.keras.Input((kernel.shape[0],))
    outputs = tf.keras.layers.Dense(kernel.shape[1], activation="softmax", name="fc")(inputs)
    model = tf.keras.Model(inputs, outputs, name=name)
    model.get_layer("fc").set_weights([kernel, bias])
    return model


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def test_loss_equals_the_formula_on_a_hand_computed_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype("float32")
    y = np.array([0, 1, 2, 3, 1])
    weights = np.array([1.0, 0.5, 2.0, 0.0, 1.0], "float32")
    student_kernel, teacher_kernel = (rng.standard_normal((3, 4)).astype("float32") for _ in "st")
    biases = rng.standard_normal((2, 4)).astype("float32")
    student = _dense_model(student_kernel, biases[0], "student")
    teacher = _dense_model(3 * teacher_kernel, biases[1], "teacher")
    alpha, temperature = 0.7, 3.0
    distiller = distillation.DistillationModel(
        student, teacher, alpha=alpha, temperature=temperature
    )
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.1), metrics=["accuracy"])
    logs = distiller.train_on_batch(x, y, sample_weight=weights, return_dict=True)

    # By hand, from the logits (the models only output probabilities).
    student_logits = x @ student_kernel + biases[0]
    teacher_logits = x @ (3 * teacher_kernel) + biases[1]
    ce = -np.log(_softmax(student_logits)[np.arange(5), y])
    q, p = _softmax(teacher_logits / temperature), _softmax(student_logits / temperature)
    kl = temperature**2 * np.sum(q * (np.log(q) - np.log(p)), axis=-1)
    expected = np.sum(weights * ((1 - alpha) * ce + alpha * kl)) / len(x)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["ce_loss"] == pytest.approx(np.sum(weights * ce) / len(x), rel=1e-5)
    assert logs["distill_loss"] == pytest.approx(np.sum(weights * kl) / len(x), rel=1e-5)
    # The student learnt, the teacher did not.
    assert not np.allclose(student.get_layer("fc").get_weights()[0], student_kernel)
    np.testing.assert_array_equal(teacher.get_layer("fc").get_weights()[0], 3 * teacher_kernel)
    # Validation scores the student alone: its plain cross-entropy.
    val_loss = distiller.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    kernel, bias = student.get_layer("fc").get_weights()
    after = _softmax(x @ kernel + bias)
    assert val_loss == pytest.approx(np.mean(-np.log(after[np.arange(5), y])), rel=1e-5)


def test_tentacle_term_is_the_mean_over_the_head_and_each_tentacle_alone():
    student = lt.build("nin", tentacles=2, input_shape=SHAPE, num_classes=10, seed=1)
    teacher = lt.build("nin", precision="float", input_shape=SHAPE, num_classes=10, seed=2)
    x = np.random.default_rng(0).standard_normal((6, *SHAPE)).astype("float32")
    y = np.arange(6)
    distiller = distillation.DistillationModel(student, teacher, alpha=1.0, tentacles=True)
    distiller.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    logs = distiller.train_on_batch(x, y, return_dict=True)

    concat, dense = student.get_layer("head_concat"), student.get_layer("head_dense")
    features = tf.keras.Model(student.inputs, [student.output, *concat.input])
    probabilities, *logits = [t.numpy() for t in features(x, training=True)]
    t_logits = np.log(teacher(x, training=False).numpy())
    kernel, bias = dense.get_weights()
    scores = [np.log(probabilities)] + [
        logit @ kernel[i * 10 : (i + 1) * 10] + bias for i, logit in enumerate(logits)
    ]

    def kl(s):
        q, p = _softmax(t_logits / 4), _softmax(s / 4)
        return 16 * np.sum(q * (np.log(q) - np.log(p)), axis=-1)

    expected = np.mean([kl(s) for s in scores], axis=0).mean()
    assert logs["distill_loss"] == pytest.approx(expected, rel=1e-4)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)  # alpha = 1: the soft term only
    fused = lt.build("nin", tentacles=2, input_shape=SHAPE, num_classes=10, fused=True)
    with pytest.raises(ValueError, match="distill_tentacles needs each tentacle's own logits"):
        distillation.DistillationModel(fused, teacher, tentacles=True)
    bnn = lt.build("nin", input_shape=SHAPE, num_classes=10)
    with pytest.raises(ValueError, match="Fix: drop --distill_tentacles"):
        distillation.DistillationModel(bnn, teacher, tentacles=True)


def _small_cnn(seed):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(SHAPE)
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))


def test_alpha_zero_trains_exactly_like_plain_cross_entropy():
    arrays = data.load_arrays("digits", input_shape=SHAPE)
    x, y = arrays.x_train[:192], arrays.y_train[:192]
    plain, student = _small_cnn(0), _small_cnn(0)
    plain.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    history = plain.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    distiller = distillation.DistillationModel(student, _small_cnn(1), alpha=0.0)
    distiller.compile(tf.keras.optimizers.Adam(0.01))
    distilled = distiller.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(distilled.history["loss"], history.history["loss"], rtol=1e-5)
    for expected, found in zip(plain.get_weights(), student.get_weights()):
        np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-6)


def test_bad_arguments_of_the_wrapper():
    student, teacher = _small_cnn(0), _small_cnn(1)
    with pytest.raises(ValueError, match="alpha.*1.5"):
        distillation.DistillationModel(student, teacher, alpha=1.5)
    with pytest.raises(ValueError, match="temperature.*0"):
        distillation.DistillationModel(student, teacher, temperature=0)
    other = lt.build("nin", precision="float", input_shape=(8, 8, 1), num_classes=10)
    with pytest.raises(ValueError, match="teacher takes input \\(8, 8, 1\\)"):
        distillation.DistillationModel(student, other)
    distiller = distillation.DistillationModel(student, teacher)
    with pytest.raises(ValueError, match="compile without `loss`"):
        distiller.compile(optimizer="adam", loss="mse")


@pytest.fixture(scope="module")
def digits_arrays():
    arrays = data.load_arrays("digits", input_shape=SHAPE)
    validation = data.make_dataset(arrays.x_val, arrays.y_val, batch_size=128, training=False)
    return arrays.x_train[:128], arrays.y_train[:128].astype("int64"), validation


def _teacher():
    return lt.build("nin", precision="float", input_shape=SHAPE, num_classes=10, seed=3)


@pytest.mark.slow
def test_teacher_frozen_student_saved_alone_and_an_interrupted_run_resumes(
    tmp_path, digits_arrays
):
    x, y, validation = digits_arrays
    config = training.TrainConfig(
        model="nin", dataset="digits", epochs=2, batch_size=64, input_size=4, distill_alpha=0.5
    ).resolved()
    student = lt.build("nin", input_shape=SHAPE, num_classes=10, seed=0)
    teacher = _teacher()
    frozen = [w.copy() for w in teacher.get_weights()]
    crashing = interrupting_dataset(x, y, batch_size=64, crash_after=2)  # dies in epoch 2
    with pytest.raises(Exception, match="interrupted"):
        training.fit_model(student, (crashing, validation), config=config, workdir=tmp_path,
                           teacher=teacher, verbose=0)
    run = RunFolder(tmp_path)
    assert [row["epoch"] for row in callbacks.read_history(run.history)] == [1]
    assert {"ce_loss", "distill_loss"} <= set(callbacks.read_history(run.history)[0])

    # A new process: fresh student and teacher objects, the same workdir.
    student = lt.build("nin", input_shape=SHAPE, num_classes=10, seed=0)
    teacher = _teacher()
    history = training.fit_model(student, (interrupting_dataset(x, y, batch_size=64), validation),
                                 config=config, workdir=tmp_path, teacher=teacher, verbose=0)
    assert history.initial_epoch == 1 and history.epoch == [0, 1]
    for before, after in zip(frozen, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    best = lt.load_model(run.best_model, compile=False)
    assert [layer.name for layer in best.layers] == [layer.name for layer in student.layers]
    assert best.count_params() == student.count_params()
    last = lt.load_model(run.last_model, compile=False)
    np.testing.assert_allclose(last.predict(x[:8], verbose=0), student.predict(x[:8], verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A finished 1-epoch float NiN on digits at 4x4 (the teacher of the runs below)."""
    workdir = tmp_path_factory.mktemp("teacher")
    config = training.TrainConfig(
        model="nin", dataset="digits", precision="float", epochs=1, batch_size=64, input_size=4
    )
    return str(workdir), training.train(config, workdir, verbose=0)


@pytest.mark.slow
def test_train_distilled_in_two_stages_with_bop_records_it_and_exports_a_plain_student(
    tmp_path, teacher_run
):
    teacher_dir, teacher_report = teacher_run
    config = training.TrainConfig(
        model="nin", dataset="digits", tentacles=2, epochs=2, batch_size=64, input_size=4,
        teacher=teacher_dir, distill_alpha=0.8, distill_temperature=2.0, distill_tentacles=True,
        stages=2, optimizer="bop",
    )
    report = training.train(config, tmp_path / "run", verbose=0)
    assert report["distillation"] == dict(
        teacher=teacher_dir, teacher_accuracy=teacher_report["test_accuracy"], alpha=0.8,
        temperature=2.0, tentacles=True,
    )
    assert report["fp32_accuracy"] == teacher_report["test_accuracy"]
    assert (report["optimizer"], report["stages"], report["epochs_completed"]) == ("bop", 2, 2)
    assert report["stage1"]["epochs_completed"] == 1
    run = RunFolder(tmp_path / "run")
    saved = run.read_json(run.config)
    assert (saved["teacher"], saved["distill_alpha"], saved["distill_tentacles"]) == (
        teacher_dir, 0.8, True
    )
    assert {"ce_loss", "distill_loss"} <= set(callbacks.read_history(run.history)[0])
    best = lt.load_model(run.best_model, compile=False)
    assert lt.layout(best).tentacles == 2 and len(report["tentacle_accuracies"]) == 2
    result = lt.export(best, str(tmp_path / "tn2.tflite"), preprocessing=run.preprocessing)
    assert os.path.isfile(tmp_path / "tn2.tflite") and result.report is not None


@pytest.fixture(scope="module")
def app():
    yield from loaded_app("train")


def test_bad_teacher_flags_print_one_line_and_exit_2(app, capsys, tmp_path, teacher_run):
    teacher_dir, _ = teacher_run
    binary = tmp_path / "binary_run"
    binary.mkdir()
    (binary / "best_model.h5").write_text("not read")
    (binary / "config.json").write_text(json.dumps(dict(precision="binary")))
    common = ["--model=nin", "--dataset=digits", "--input_size=4", "--tentacles=2"]
    cases = [
        ([f"--teacher={tmp_path / 'nowhere'}"], ["--teacher=", "best_model.h5", "Fix"]),
        ([f"--teacher={binary}"], ["precision='binary'", "Fix"]),
        ([f"--teacher={teacher_dir}", "--input_size=8"], ["input (4, 4, 3)", "(8, 8, 3)", "Fix"]),
        ([f"--teacher={teacher_dir}", "--distill_alpha=1.5"], ["distill_alpha", "1.5", "Fix"]),
        ([f"--teacher={teacher_dir}", "--distill_alpha=-0.1"], ["distill_alpha", "-0.1"]),
        ([f"--teacher={teacher_dir}", "--distill_temperature=0"], ["distill_temperature", "0"]),
        (["--distill_tentacles"], ["needs --teacher", "Fix"]),
        ([f"--teacher={teacher_dir}", "--precision=float", "--tentacles=1"], ["precision=binary"]),
    ]
    for extra, words in cases:
        workdir = tmp_path / "run"
        code = run_main(app, common + extra + [f"--workdir={workdir}"], program="train.py")
        error = capsys.readouterr().err.strip()
        assert code == 2, extra
        assert error.startswith("train.py: error: ") and "\n" not in error, error
        for word in words:
            assert word in error, (extra, error)
        assert not workdir.exists(), "a refused run must not write anything"
