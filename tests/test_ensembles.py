"""BENN bagging/boosting on a tiny synthetic problem, sizes, save/load and one-graph export."""

import math

import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from larq_tentacle.experiments import ensembles
from larq_tentacle.utils.seeding import seed_everything, use_deterministic_ops

CLASSES = 4
SIZE = 10


def _problem(n, seed, noise=1.0):
    """Noisy class templates: hard enough that single BNNs are weak and differ."""
    rng = np.random.default_rng(seed)
    templates = np.random.default_rng(123).normal(size=(CLASSES, SIZE, SIZE, 1))
    y = rng.integers(0, CLASSES, n)
    x = templates[y] + noise * rng.normal(size=(n, SIZE, SIZE, 1))
    return x.astype("float32"), y


def _tiny_float():
    inputs = tf.keras.Input((SIZE, SIZE, 1))
    x = tf.keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.Conv2D(32, 3, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.Conv2D(32, 3, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(CLASSES, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="tiny")


def _build_member(index):
    # Deterministic ops as every lt.train run turns them on: the members (and so the
    # SAMME rounds) are the same whichever test files ran first in this process.
    use_deterministic_ops(True)
    seed_everything(100 + index)
    return lt.tentaclize(_tiny_float(), tentacles=1, seed=index)


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


@pytest.fixture(scope="module")
def data():
    return _problem(480, 0), _problem(400, 1)


@pytest.fixture(scope="module")
def fit():
    return ensembles.keras_fit(epochs=3, batch_size=32, learning_rate=1e-2)


@pytest.fixture(scope="module")
def bagged(data, fit):
    (x, y), _ = data
    return ensembles.train_bagging(_build_member, x, y, members=3, fit=fit, seed=0)


@pytest.fixture(scope="module")
def boosted(data, fit):
    (x, y), _ = data
    return ensembles.train_boosting(_build_member, x, y, members=3, fit=fit)


# ---- SAMME arithmetic ----------------------------------------------------


def test_samme_step_follows_the_formula():
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    wrong = np.array([True, False, False, True])
    alpha, error, updated = ensembles.samme_step(weights, wrong, num_classes=3)
    assert error == pytest.approx(0.5)
    assert alpha == pytest.approx(math.log(0.5 / 0.5) + math.log(2))
    expected = weights * np.exp(alpha * wrong)
    np.testing.assert_allclose(updated, expected / expected.sum())
    # misclassified samples gain weight relative to the correct ones
    assert updated[0] / updated[1] == pytest.approx(2 * weights[0] / weights[1])


def test_samme_member_no_better_than_chance_gets_no_vote():
    weights = np.full(4, 0.25)
    alpha, error, updated = ensembles.samme_step(weights, [True, True, True, False], num_classes=4)
    assert error == pytest.approx(0.75) and alpha == 0.0
    np.testing.assert_allclose(updated, weights)


def test_samme_perfect_member_gets_a_finite_vote():
    alpha, error, updated = ensembles.samme_step(np.full(5, 0.2), np.zeros(5, bool), num_classes=10)
    assert error == 0.0 and math.isfinite(alpha) and alpha > 20
    np.testing.assert_allclose(updated, np.full(5, 0.2))


# ---- bagging samples ------------------------------------------------------


def test_bootstrap_samples_differ_and_are_prefix_stable():
    five = ensembles.bagging_samples(100, members=5, sampling="bootstrap", seed=3)
    two = ensembles.bagging_samples(100, members=2, sampling="bootstrap", seed=3)
    assert all(len(s) == 100 for s in five)
    assert not np.array_equal(five[0], five[1])
    assert len(np.unique(five[0])) < 100  # drawn with replacement
    for a, b in zip(two, five):
        np.testing.assert_array_equal(a, b)


def test_partition_samples_are_disjoint_and_cover_the_set():
    parts = ensembles.bagging_samples(103, members=4, sampling="partition", seed=1)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(103))
    assert {len(p) for p in parts} <= {25, 26}


def test_bad_sampling_and_vote_name_the_value():
    with pytest.raises(ValueError, match="bootstrapp"):
        ensembles.bagging_samples(10, members=2, sampling="bootstrapp")
    with pytest.raises(ValueError, match="Did you mean 'bootstrap'"):
        ensembles.bagging_samples(10, members=2, sampling="bootstrapp")
    with pytest.raises(ValueError, match="member_weights"):
        ensembles.EnsembleVote(vote="weighted")
    with pytest.raises(ValueError, match="'mean'"):
        ensembles.EnsembleVote(vote="mean")


# ---- trained ensembles ----------------------------------------------------


def test_bagging_members_differ_and_the_ensemble_beats_its_mean_member(bagged, data):
    _, (x_test, y_test) = data
    predictions = [np.argmax(m.predict(x_test, verbose=0), -1) for m in bagged.members]
    assert np.mean(predictions[0] != predictions[1]) > 0.05
    member_accuracy = np.mean([_accuracy(m, x_test, y_test) for m in bagged.members])
    assert _accuracy(bagged.model, x_test, y_test) > member_accuracy


def test_boosting_weights_follow_samme(boosted, data):
    (x, y), (x_test, y_test) = data
    weights = np.full(len(y), 1.0 / len(y))
    for m, member in enumerate(boosted.members):
        np.testing.assert_allclose(boosted.sample_weights[m], weights, rtol=1e-9)
        wrong = np.argmax(member.predict(x, verbose=0), -1) != y
        error = weights[wrong].sum()
        assert boosted.errors[m] == pytest.approx(error)
        # a member no better than chance gets no vote and leaves the weights as they are
        chance = error >= 1 - 1 / CLASSES
        alpha = 0.0 if chance else math.log((1 - error) / error) + math.log(CLASSES - 1)
        assert boosted.alphas[m] == pytest.approx(alpha)
        weights = weights * np.exp(alpha * wrong)
        weights /= weights.sum()
    # the second member was trained on weights that favour the first one's mistakes
    first_wrong = np.argmax(boosted.members[0].predict(x, verbose=0), -1) != y
    assert (
        boosted.sample_weights[1][first_wrong].mean()
        > boosted.sample_weights[1][~first_wrong].mean()
    )
    member_accuracy = np.mean([_accuracy(m, x_test, y_test) for m in boosted.members])
    assert _accuracy(boosted.model, x_test, y_test) > member_accuracy


@pytest.mark.parametrize("vote", ["average", "majority", "weighted"])
def test_vote_layer_matches_numpy_combine(bagged, data, vote):
    _, (x_test, _) = data
    weights = [0.5, 1.5, 0.25] if vote == "weighted" else None
    model = ensembles.assemble(bagged.members, vote=vote, member_weights=weights)
    probabilities = np.stack([m.predict(x_test, verbose=0) for m in bagged.members])
    expected = ensembles.combine(probabilities, vote=vote, member_weights=weights)
    np.testing.assert_allclose(model.predict(x_test, verbose=0), expected, atol=1e-6)


def test_prefix_is_the_ensemble_of_the_first_members(boosted, data):
    _, (x_test, _) = data
    two = boosted.prefix(2)
    probabilities = np.stack([m.predict(x_test, verbose=0) for m in boosted.members[:2]])
    expected = ensembles.combine(probabilities, vote="weighted", member_weights=boosted.alphas[:2])
    np.testing.assert_allclose(two.predict(x_test, verbose=0), expected, atol=1e-6)
    assert ensembles.describe(two)["members"] == 2


# ---- sizes ------------------------------------------------------------------


def test_ensemble_size_is_n_times_one_bnn(boosted):
    one = lt.paper_size_kb(boosted.members[0], exact=True)
    assert lt.paper_size_kb(boosted.model, exact=True) == pytest.approx(3 * one)
    assert ensembles.benn_size_kb(boosted.members[0], 3, exact=True) == pytest.approx(3 * one)
    assert ensembles.describe(boosted.model)["paper_size_kb"] == math.ceil(3 * one)


@pytest.mark.parametrize(
    "name, options, bagging, boosting",
    [
        ("nin", {}, (12, 2167), (8, 1445)),
        ("resnet9", {"projection_shortcuts": 2}, (30, 24755), (25, 20629)),
        ("fernet", {}, (11, 697), (26, 1648)),
    ],
)
def test_benn_sizes_match_table_2(name, options, bagging, boosting):
    bnn = lt.build(name, **options)
    for members, paper_kb in (bagging, boosting):
        assert ensembles.benn_size_kb(bnn, members) == paper_kb


def test_assembled_registry_bnns_count_every_member():
    builder = ensembles.member_builder("fernet", seed=0)
    members = [builder(i) for i in (1, 2, 3)]
    assert not np.array_equal(members[0].get_weights()[0], members[1].get_weights()[0])
    model = ensembles.assemble(members)
    assert lt.paper_size_kb(model, exact=True) == pytest.approx(
        3 * lt.paper_size_kb(members[0], exact=True)
    )


# ---- one object: save, reload, export ----------------------------------------


def test_save_and_load_as_one_object(boosted, data, tmp_path):
    _, (x_test, _) = data
    path = tmp_path / "benn.h5"
    ensembles.save(boosted.model, path)
    loaded = lt.load_model(path, compile=False)
    np.testing.assert_allclose(
        loaded.predict(x_test, verbose=0), boosted.model.predict(x_test, verbose=0), atol=1e-6
    )
    info = ensembles.describe(loaded)
    assert info["method"] == "boosting" and info["members"] == 3
    assert info["member_weights"] == pytest.approx(boosted.alphas)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_not_an_ensemble_is_refused(boosted):
    with pytest.raises(ValueError, match="not a BENN ensemble"):
        ensembles.describe(boosted.members[0])


@pytest.mark.slow
def test_exports_to_one_tflite_graph(bagged, data):
    import larq_compute_engine as lce

    from larq_tentacle.deploy.census import op_census

    _, (x_test, _) = data
    model = bagged.prefix(2)
    flatbuffer = lce.convert_keras_model(model)
    ops = op_census(flatbuffer)["ops"]
    one = op_census(lce.convert_keras_model(bagged.members[0]))["ops"]
    assert ops.get("LceBconv2d", 0) == 2 * one.get("LceBconv2d", 0) > 0
    interpreter = lce.testing.Interpreter(flatbuffer)
    sample = x_test[:16]
    tflite = np.concatenate([interpreter.predict(sample[i : i + 1]) for i in range(len(sample))])
    keras = model.predict(sample, verbose=0)
    assert tflite.shape == keras.shape
    # A sign() whose input sits at a folded BatchNorm threshold may flip in LCE, so the
    # probabilities are compared loosely and the decisions almost exactly.
    np.testing.assert_allclose(tflite, keras, atol=0.05)
    assert np.mean(np.argmax(tflite, -1) == np.argmax(keras, -1)) >= 15 / 16


# ---- resume -------------------------------------------------------------------


def test_bagging_resumes_without_retraining_finished_members(data, tmp_path):
    (x, y), _ = data
    calls = []

    def fit(model, x, y, *, sample_weight=None, index=1, workdir=None):
        calls.append(index)

    first = ensembles.train_bagging(_build_member, x, y, members=2, fit=fit, workdir=tmp_path)
    assert calls == [1, 2] and (tmp_path / "member2.h5").exists()
    calls.clear()
    again = ensembles.train_bagging(_build_member, x, y, members=3, fit=fit, workdir=tmp_path)
    assert calls == [3]
    np.testing.assert_allclose(
        again.members[0].predict(x[:8], verbose=0),
        first.members[0].predict(x[:8], verbose=0),
        atol=1e-6,
    )


def test_keras_fit_takes_the_shared_recipe():
    from larq_tentacle.training.recipe import Recipe

    x, y = _problem(64, 2)
    model = _build_member(1)
    ensembles.keras_fit(Recipe(epochs=1, batch_size=32, optimizer="sgd"), learning_rate=1e-2)(
        model, x, y
    )
    assert isinstance(model.optimizer, tf.keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2)
    with pytest.raises(TypeError, match="epochs"):
        ensembles.keras_fit(batch_size=32)
    with pytest.raises(ValueError, match="lr_factor"):
        ensembles.keras_fit(epochs=1, lr_factor=2.0)
