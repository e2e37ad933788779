import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt
from larq_tentacle.core.initializers import PseudoHadamard, pseudo_hadamard, sylvester_hadamard


@pytest.mark.parametrize("order", [1, 2, 4, 64])
def test_sylvester_matrix_is_a_hadamard_matrix(order):
    h = sylvester_hadamard(order)
    assert set(np.unique(h)) <= {-1, 1}
    np.testing.assert_array_equal(h @ h.T, order * np.eye(order))


def test_sylvester_rejects_orders_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="order=12"):
        sylvester_hadamard(12)


def test_fewer_filters_than_the_order_gives_orthogonal_filters():
    m = pseudo_hadamard(fan_in=64, units=16, seed=0).astype(np.int64)
    assert m.shape == (64, 16)
    np.testing.assert_array_equal(m.T @ m, 64 * np.eye(16))  # rows removed, columns kept


def test_more_filters_than_the_order_replicates_rows():
    m = pseudo_hadamard(fan_in=8, units=20, seed=0)
    distinct = {tuple(column) for column in m.T}
    assert len(distinct) == 8  # every Hadamard row used, 12 of them twice


def test_cut_fan_in_keeps_filters_nearly_orthogonal():
    m = pseudo_hadamard(fan_in=3 * 3 * 96, units=64, seed=3).astype(np.float64)
    cosine = (m.T @ m) / m.shape[0]
    off_diagonal = np.abs(cosine[~np.eye(64, dtype=bool)])
    random = np.sign(np.random.default_rng(0).standard_normal(m.shape))
    random_cosine = np.abs(((random.T @ random) / m.shape[0])[~np.eye(64, dtype=bool)])
    assert off_diagonal.mean() < random_cosine.mean()


def test_initializer_shapes_seeds_and_scale():
    init = PseudoHadamard(seed=4, scale=0.1)
    kernel = init((3, 3, 16, 32)).numpy()
    assert kernel.shape == (3, 3, 16, 32)
    assert set(np.unique(kernel)) == {np.float32(-0.1), np.float32(0.1)}
    np.testing.assert_array_equal(kernel, PseudoHadamard(seed=4, scale=0.1)((3, 3, 16, 32)).numpy())
    assert not np.array_equal(kernel, PseudoHadamard(seed=5, scale=0.1)((3, 3, 16, 32)).numpy())


def test_initializer_serializes_under_the_package_name():
    init = PseudoHadamard(seed=7, scale=0.2)
    config = tf.keras.initializers.serialize(init)
    assert config["registered_name"] == "larq_tentacle>PseudoHadamard"
    restored = tf.keras.initializers.deserialize(config)
    assert isinstance(restored, PseudoHadamard)
    assert restored.get_config() == {"seed": 7, "scale": 0.2}
    assert lt.PseudoHadamard is PseudoHadamard


@pytest.mark.parametrize(
    "kwargs", [dict(seed=-1), dict(seed=1.5), dict(seed=True), dict(scale=0), dict(scale="1")]
)
def test_initializer_rejects_bad_arguments(kwargs):
    value = next(iter(kwargs.values()))
    with pytest.raises(ValueError) as error:
        PseudoHadamard(**kwargs)
    assert repr(value) in str(error.value)


def test_tentacle_average_starts_the_fig2a_head_as_the_mean_vote():
    from larq_tentacle.core.initializers import TentacleAverage

    kernel = TentacleAverage(3)((3 * 4, 4)).numpy()
    logits = np.random.default_rng(0).standard_normal((5, 3, 4)).astype("float32")
    np.testing.assert_allclose(
        logits.reshape(5, 12) @ kernel, logits.mean(axis=1), rtol=1e-5, atol=1e-6
    )
    restored = tf.keras.initializers.deserialize(
        tf.keras.initializers.serialize(TentacleAverage(3))
    )
    assert restored.get_config() == {"tentacles": 3}
    with pytest.raises(ValueError, match=r"\(5, 4\)"):
        TentacleAverage(3)((5, 4))
