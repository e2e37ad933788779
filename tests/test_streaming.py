"""The tf.data pipeline over streamed sources: preprocessing equal to the recorded one,
the cache budget, bounded statistics, shuffling, in-memory arrays for BENN.

The source here is a `StreamSource` over small in-memory images of varying sizes, so the
pipeline is tested on its own; the folder and tfds sources have their own tests.
"""

import numpy as np
import pytest
import tensorflow as tf

import larq_tentacle as lt  # noqa: F401  (Keras 2 before TensorFlow loads)
from larq_tentacle.data import pipeline as data
from larq_tentacle.data import streaming
from larq_tentacle.data.stream_source import StreamSource

SIZES = {"train": 40, "validation": 10, "test": 12}


def array_source(channels=3, *, sizes=SIZES, classes=4, seed=0):
    """Random uint8 images of two different sizes per split, labels cycling over classes."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in sizes.items():
        images = [
            rng.integers(0, 256, size=(10 + 3 * (i % 2), 12, channels), dtype=np.uint8)
            for i in range(count)
        ]
        splits[split] = (images, np.arange(count) % classes)

    def images(split, shuffle_seed=None):
        pictures, labels = splits[split]
        dataset = tf.data.Dataset.from_generator(
            lambda: zip(pictures, labels),
            output_signature=(
                tf.TensorSpec((None, None, channels), tf.uint8),
                tf.TensorSpec((), tf.int64),
            ),
        )
        if shuffle_seed is not None:
            dataset = dataset.shuffle(len(labels), seed=shuffle_seed)
        return dataset

    source = StreamSource(
        name="folder:/nowhere", class_names=[f"c{i}" for i in range(classes)],
        channels=channels, sizes=dict(sizes), images=images,
    )
    return source, splits


def test_streamed_images_are_preprocessed_as_recorded():
    source, splits = array_source()
    bundle = data.load_dataset(source, input_shape=(8, 8, 3), batch_size=5, augment="none")
    record = bundle.preprocessing
    assert record["dataset"] == "folder:/nowhere"
    assert record["class_names"] == ["c0", "c1", "c2", "c3"]
    assert bundle.sizes == SIZES and bundle.arrays is None
    # The test split is in source order: each image equals the numpy preprocessing.
    got = np.concatenate([x for x, _ in bundle.test.as_numpy_iterator()])
    pictures, labels = splits["test"]
    want = np.stack([data.preprocess_images(p[None], record)[0] for p in pictures])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [int(y) for _, ys in bundle.test.as_numpy_iterator() for y in ys] == list(labels)


def test_statistics_come_from_a_bounded_sample(monkeypatch):
    source, splits = array_source()
    full = data.load_dataset(source, input_shape=(8, 8, 3), batch_size=8, augment="none")
    scaled = np.stack(
        [data.preprocess_images(p[None], {**full.preprocessing, "mean": [0.0] * 3,
                                          "std": [1.0] * 3})[0]
         for p in splits["train"][0]]
    )
    np.testing.assert_allclose(full.preprocessing["mean"], scaled.mean(axis=(0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(full.preprocessing["std"], scaled.std(axis=(0, 1, 2)), atol=1e-5)
    monkeypatch.setattr(streaming, "STATISTICS_SAMPLE", 3)
    sampled = data.load_dataset(source, input_shape=(8, 8, 3), batch_size=8, augment="none")
    assert sampled.preprocessing["mean"] != full.preprocessing["mean"]


@pytest.mark.parametrize(
    "cache_mb, cached",
    [(0, []), (0.01, ["validation"]), (0.03, ["train"]), (512, ["train", "validation"])],
)
def test_splits_are_cached_only_within_the_budget(cache_mb, cached):
    source, _ = array_source()
    # 40 train images of 8x8x3 float32 = 0.0293 MB; validation 0.0073 MB.
    bundle = data.load_dataset(
        source, input_shape=(8, 8, 3), batch_size=8, augment="none", cache_mb=cache_mb
    )
    assert bundle.cached == cached


@pytest.mark.parametrize("cache_mb", [0, 512])
def test_training_split_is_reshuffled_every_epoch_without_losing_images(cache_mb):
    source, splits = array_source()
    bundle = data.load_dataset(
        source, input_shape=(8, 8, 3), batch_size=7, seed=3, augment="crop", cache_mb=cache_mb
    )
    epochs = [[int(y) for _, ys in bundle.train.as_numpy_iterator() for y in ys]
              for _ in range(2)]
    for labels in epochs:
        assert sorted(labels) == sorted(int(y) for y in splits["train"][1])
    assert epochs[0] != epochs[1]


def test_bad_cache_budget_is_refused():
    source, _ = array_source()
    with pytest.raises(ValueError, match="cache_mb.*Fix"):
        data.load_dataset(source, input_shape=(8, 8, 3), batch_size=8, cache_mb=-1)


def test_grey_source_becomes_rgb_only_for_an_rgb_model():
    source, _ = array_source(channels=1)
    assert data.fit_input_shape(source, (16, 16, 1)) == (16, 16, 1)
    assert data.fit_input_shape(source, (16, 16, 3)) == (16, 16, 3)
    rgb_source, _ = array_source(channels=3)
    assert data.fit_input_shape(rgb_source, (16, 16, 1), input_size=20) == (20, 20, 3)
    bundle = data.load_dataset(source, input_shape=(8, 8, 3), batch_size=8)
    assert bundle.preprocessing["grey_to_rgb"] is True
    assert next(iter(bundle.train))[0].shape[1:] == (8, 8, 3)


def test_to_arrays_gives_benn_the_splits_or_names_the_budget():
    source, splits = array_source()
    bundle = data.load_dataset(source, input_shape=(8, 8, 3), batch_size=8)
    arrays = streaming.to_arrays(bundle, limit_mb=1)
    assert arrays.sizes() == SIZES
    np.testing.assert_array_equal(arrays.y_test, splits["test"][1])
    with pytest.raises(ValueError, match=r"--cache_mb=1e-05.*Fix: pass --cache_mb=1 "):
        streaming.to_arrays(bundle, limit_mb=1e-5)
