"""Loading a dataset: in-memory arrays for the named datasets, tf.data pipelines for all.

`load_arrays` returns float32 images of the named datasets (digits, cifar, fer2013)
already resized to the model's input shape and normalized, with integer labels;
`load_dataset` wraps them, or a source streamed from disk (folder:, tfds:, see
`streaming`), into train/validation/test pipelines. Every image goes through the
preprocessing recorded in `preprocessing` (see `larq_tentacle.data.preprocessing`).
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.data import streaming
from larq_tentacle.data.augmentation import (
    AUGMENT,
    AUGMENTATIONS,
    augment_dataset,
    check_augment,
    training_augmentation,
)
from larq_tentacle.data.bundle import DataArrays, DatasetBundle
from larq_tentacle.data.preprocessing import (
    PIXEL_SCALE,
    RESIZE_METHOD,
    fit_input_shape,
    new_record,
    preprocess_images,
    with_statistics,
)

# `load_raw` is looked up here, so a test patches `pipeline.load_raw`.
from larq_tentacle.data.sources import NATIVE_SHAPES, check_name, is_streamed, load_raw
from larq_tentacle.data.stream_source import StreamSource
from larq_tentacle.utils import validation

__all__ = [
    "AUGMENT", "AUGMENTATIONS", "PIXEL_SCALE", "RESIZE_METHOD", "DataArrays", "DatasetBundle",
    "fit_input_shape", "load_arrays", "load_dataset", "make_dataset", "open_dataset",
    "preprocess_images", "test_images", "training_augmentation",
]

def load_arrays(name: str, *, input_shape=None, data_dir=None, seed: int = 0) -> DataArrays:
    """Load a named dataset as preprocessed numpy arrays.

    # Arguments
        name: one of "cifar10", "cifar100", "fer2013", "digits" (streamed datasets,
            folder: and tfds:, come through `load_dataset`).
        input_shape: (height, width, channels) the images are resized to; default the
            dataset's own shape. Grey images are repeated to 3 channels when channels=3.
        data_dir: where the data lives (tfds data_dir; the folder holding fer2013.csv or
            the CIFAR archive).
        seed: picks the validation hold-out of the training set; the test split is fixed.
    """
    name = check_name(name)
    seed = validation.positive_int("seed", seed, minimum=0)
    if is_streamed(name):
        raise ValueError(
            f"{name} is read from disk image by image. Fix: use lt.load_dataset({name!r}, ...)."
        )
    target = validation.input_shape(NATIVE_SHAPES[name] if input_shape is None else input_shape)
    raw = load_raw(name, data_dir=data_dir, seed=seed)
    record = new_record(name, target, raw.x_train.shape[-1], raw.class_names)
    x_train = preprocess_images(raw.x_train, record)
    record = with_statistics(
        record,
        x_train.mean(axis=(0, 1, 2), dtype=np.float64),
        x_train.std(axis=(0, 1, 2), dtype=np.float64),
    )
    mean, std = np.asarray(record["mean"]), np.asarray(record["std"])
    x_train = ((x_train - mean) / std).astype(np.float32)
    return DataArrays(
        x_train=x_train,
        y_train=raw.y_train.astype(np.int32),
        x_val=preprocess_images(raw.x_val, record),
        y_val=raw.y_val.astype(np.int32),
        x_test=preprocess_images(raw.x_test, record),
        y_test=raw.y_test.astype(np.int32),
        num_classes=len(raw.class_names),
        class_names=list(raw.class_names),
        preprocessing=record,
    )


# --- tf.data -------------------------------------------------------------------------


def make_dataset(
    x, y, *, batch_size: int, training: bool, seed: int = 0, augment=False, sample_weight=None
) -> tf.data.Dataset:
    """A batched, prefetched pipeline; shuffled (and augmented) only when `training`.

    # Arguments
        augment: False/None, True (= "crop_flip"), "crop" (pad + random crop) or
            "crop_flip" (also a random horizontal flip). The padding is 1/8 of the side
            (4 pixels at 32x32, as in the usual CIFAR recipe).
        sample_weight: optional per-example weights (e.g. boosting), batched alongside.
    """
    batch_size = validation.positive_int("batch_size", batch_size, hint="pass e.g. batch_size=128")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
    augment = check_augment(augment)
    tensors = (x, y) if sample_weight is None else (x, y, np.asarray(sample_weight, np.float32))
    if sample_weight is not None and len(tensors[2]) != len(y):
        raise ValueError(f"sample_weight has {len(tensors[2])} entries for {len(y)} examples.")
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        dataset = dataset.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        if augment:
            dataset = augment_dataset(dataset, x.shape[1:], augment=augment, seed=seed)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Every worker holds the same arrays: shard by element, not by file.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def open_dataset(name, *, data_dir=None, seed: int = 0, skip_bad_images=False):
    """A streamed dataset's `StreamSource` (scanned, so bad files fail here, before any
    training), or the canonical name of a named dataset, which loads in memory."""
    if isinstance(name, StreamSource):
        return name
    name = check_name(name)
    if not is_streamed(name):
        return name
    return streaming.open_source(
        name, data_dir=data_dir, seed=seed, skip_bad_images=skip_bad_images
    )


def load_dataset(
    name, *, input_shape, batch_size: int, seed: int = 0, data_dir=None, augment="default",
    cache_mb: float = streaming.CACHE_MB, skip_bad_images: bool = False,
) -> DatasetBundle:
    """Train/validation/test pipelines of a dataset, preprocessed for `input_shape`.

    !!! example
        ```python
        bundle = lt.load_dataset("digits", input_shape=(16, 16, 1), batch_size=64)
        bundle = lt.load_dataset("folder:~/data/flowers", input_shape=(64, 64, 3),
                                 batch_size=64)
        model.fit(bundle.train, validation_data=bundle.validation)
        ```

    # Arguments
        name: "digits", "cifar10", "cifar100", "fer2013" (held in memory, `bundle.arrays`);
            "folder:PATH" (one subfolder of images per class) or "tfds:NAME[:VERSION]",
            streamed from disk; or a `StreamSource` from `open_dataset`.
        augment: "default" uses the dataset's usual training augmentation
            (`AUGMENT`; "crop" for streamed sources); or pass "none" (or False), "crop",
            "crop_flip".
        cache_mb: streamed splits (train, then validation) are cached in memory when their
            preprocessed float32 images fit this budget; otherwise read from disk each epoch.
        skip_bad_images: skip (and count) corrupt images of a folder instead of failing.
    """
    batch_size = validation.positive_int("batch_size", batch_size, hint="pass e.g. batch_size=128")
    source = open_dataset(name, data_dir=data_dir, seed=seed, skip_bad_images=skip_bad_images)
    if isinstance(source, StreamSource):
        return streaming.stream_dataset(
            source, input_shape=input_shape, batch_size=batch_size, seed=seed,
            augment=augment, cache_mb=cache_mb,
        )
    arrays = load_arrays(source, input_shape=input_shape, data_dir=data_dir, seed=seed)
    augment = training_augmentation(source, augment)
    return DatasetBundle(
        train=make_dataset(
            arrays.x_train, arrays.y_train, batch_size=batch_size, training=True, seed=seed,
            augment=augment,
        ),
        validation=make_dataset(arrays.x_val, arrays.y_val, batch_size=batch_size, training=False),
        test=make_dataset(arrays.x_test, arrays.y_test, batch_size=batch_size, training=False),
        num_classes=arrays.num_classes,
        class_names=arrays.class_names,
        preprocessing=arrays.preprocessing,
        sizes=arrays.sizes(),
        arrays=arrays,
    )


def test_images(preprocessing: dict, num_samples: int, *, data_dir=None) -> Optional[np.ndarray]:
    """The first `num_samples` test images of the dataset a run was trained on, preprocessed
    with that run's recorded preprocessing (never recomputed here)."""
    num_samples = validation.positive_int("num_samples", num_samples)
    name = check_name(preprocessing["dataset"])
    if is_streamed(name):
        return streaming.first_test_images(preprocessing, num_samples, data_dir=data_dir)
    raw = load_raw(name, data_dir=data_dir)
    return preprocess_images(raw.x_test[:num_samples], preprocessing)


def train_images(preprocessing: dict, num_samples: int, *, data_dir=None) -> np.ndarray:
    """Up to `num_samples` training images of a run's dataset, drawn at random (seed 0) and
    preprocessed as recorded: the calibration data of an int8 export."""
    num_samples = validation.positive_int("num_samples", num_samples)
    name = check_name(preprocessing["dataset"])
    if is_streamed(name):
        source = streaming.open_source(name, data_dir=data_dir, check_images=False)
        images = streaming.preprocessed(source, "train", preprocessing, shuffle_seed=0)
        batches = images.take(num_samples).ignore_errors().batch(num_samples)
        return next(iter(x for x, _ in batches.as_numpy_iterator()))
    x_train = load_raw(name, data_dir=data_dir).x_train
    picked = np.random.default_rng(0).permutation(len(x_train))[:num_samples]
    return preprocess_images(x_train[np.sort(picked)], preprocessing)
