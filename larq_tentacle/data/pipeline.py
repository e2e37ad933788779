"""Datasets as preprocessed arrays first, tf.data pipelines on top.

`load_arrays` returns float32 images already resized to the model's input shape and
normalized, with integer labels, for the datasets of `larq_tentacle.data.sources`.

Every image goes through the same steps, recorded in `preprocessing` (the workdir's
`preprocessing.json`) so that an exported model can be fed raw images on a device:
a raw uint8 image is resized (bilinear) to input_shape[:2], a grey image is repeated to
3 channels when the model wants RGB, then x = (pixels / 255 - mean) / std with per-channel
mean/std of the training split. `preprocess_images` implements exactly that.
"""

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

# `load_raw` is looked up here, so a test patches `pipeline.load_raw`.
from larq_tentacle.data.sources import NATIVE_SHAPES, check_name, load_raw
from larq_tentacle.utils import validation

PIXEL_SCALE = 255.0
RESIZE_METHOD = "bilinear"
# Training augmentation per dataset: random crop after padding, plus a horizontal
# flip where mirroring keeps the label (faces, objects; not digits).
AUGMENT = {"cifar10": "crop_flip", "cifar100": "crop_flip", "fer2013": "crop_flip", "digits": None}
AUGMENTATIONS = ("crop", "crop_flip")

_RESIZE_CHUNK = 4096


@dataclasses.dataclass
class DataArrays:
    """Preprocessed splits: float32 images at the model's input shape and int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: List[str]
    preprocessing: dict

    def sizes(self) -> Dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


@dataclasses.dataclass
class DatasetBundle:
    """Batched tf.data pipelines of the three splits, with what describes them."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    class_names: List[str]
    preprocessing: dict
    arrays: DataArrays


# --- preprocessing (recorded with every run) -----------------------------------------


def fit_input_shape(
    name: str, model_input_shape, *, input_size: Optional[int] = None
) -> Tuple[int, int, int]:
    """The input shape a model gets when it trains on dataset `name`.

    Height and width are the model's (or `input_size` x `input_size` when given). Colour is
    never thrown away: RGB data keeps 3 channels even for a grey model (the model is built
    for 3), and grey data is repeated to 3 channels only when the model wants RGB.
    """
    name = check_name(name)
    height, width, channels = model_input_shape
    if input_size is not None:
        input_size = validation.positive_int(
            "input_size", input_size, hint="pass e.g. input_size=32"
        )
        height = width = input_size
    native_channels = NATIVE_SHAPES[name][2]
    return (int(height), int(width), 3 if native_channels == 3 else int(channels))


def load_arrays(name: str, *, input_shape=None, data_dir=None, seed: int = 0) -> DataArrays:
    """Load dataset `name` as preprocessed numpy arrays.

    # Arguments
        name: one of "cifar10", "cifar100", "fer2013", "digits".
        input_shape: (height, width, channels) the images are resized to; default the
            dataset's own shape. Grey images are repeated to 3 channels when channels=3.
        data_dir: where the data lives (tfds data_dir; the folder holding fer2013.csv).
        seed: picks the validation hold-out of the training set; the test split is fixed.
    """
    name = check_name(name)
    seed = validation.positive_int("seed", seed, minimum=0)
    target = validation.input_shape(NATIVE_SHAPES[name] if input_shape is None else input_shape)
    raw = load_raw(name, data_dir=data_dir, seed=seed)
    native_channels = raw.x_train.shape[-1]
    _check_channels(name, target, native_channels)
    preprocessing = {
        "dataset": name,
        "input_shape": list(target),
        "pixel_scale": PIXEL_SCALE,
        "mean": [0.0] * target[2],
        "std": [1.0] * target[2],
        "resize": RESIZE_METHOD,
        "grey_to_rgb": bool(native_channels == 1 and target[2] == 3),
        "class_names": list(raw.class_names),
    }
    x_train = preprocess_images(raw.x_train, preprocessing)
    mean = x_train.mean(axis=(0, 1, 2), dtype=np.float64)
    # A constant channel (blank border pixels, mock data) must not divide by zero.
    std = np.maximum(x_train.std(axis=(0, 1, 2), dtype=np.float64), 1e-3)
    preprocessing.update(mean=[float(m) for m in mean], std=[float(s) for s in std])
    x_train = ((x_train - mean) / std).astype(np.float32)
    return DataArrays(
        x_train=x_train,
        y_train=raw.y_train.astype(np.int32),
        x_val=preprocess_images(raw.x_val, preprocessing),
        y_val=raw.y_val.astype(np.int32),
        x_test=preprocess_images(raw.x_test, preprocessing),
        y_test=raw.y_test.astype(np.int32),
        num_classes=len(raw.class_names),
        class_names=list(raw.class_names),
        preprocessing=preprocessing,
    )


def _check_channels(name: str, target, native_channels: int) -> None:
    """RGB data never loses its colour; grey data may become RGB, nothing else."""
    if native_channels == 3 and target[2] != 3:
        raise ValueError(
            f"{name} images are RGB but input_shape={target} asks for {target[2]} channel(s). "
            f"Fix: use input_shape=({target[0]}, {target[1]}, 3); "
            "lt.build accepts any input shape."
        )
    if target[2] not in (native_channels, 3):
        raise ValueError(f"input_shape={target} must have 1 or 3 channels for {name}.")


def preprocess_images(images: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Raw uint8 images (N, H, W, C) -> model input, as `preprocessing.json` describes."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    height, width, channels = preprocessing["input_shape"]
    x = images.astype(np.float32)
    if x.shape[1:3] != (height, width):
        x = _resize(x, (height, width), preprocessing["resize"])
    if preprocessing["grey_to_rgb"]:
        x = np.repeat(x, 3, axis=-1)
    if x.shape[-1] != channels:
        raise ValueError(
            f"Images with {x.shape[-1]} channel(s) do not match input_shape "
            f"{preprocessing['input_shape']}."
        )
    x /= preprocessing["pixel_scale"]
    mean = np.asarray(preprocessing["mean"], np.float32)
    std = np.asarray(preprocessing["std"], np.float32)
    return ((x - mean) / std).astype(np.float32)


def _resize(x: np.ndarray, size, method: str) -> np.ndarray:
    # In chunks, so a whole training split never sits in memory twice as a tensor.
    chunks = [
        tf.image.resize(x[i : i + _RESIZE_CHUNK], size, method=method).numpy()
        for i in range(0, len(x), _RESIZE_CHUNK)
    ]
    return np.concatenate(chunks or [np.zeros((0, *size, x.shape[-1]), np.float32)])


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
    if augment is True:
        augment = "crop_flip"
    if augment:
        augment = validation.choice("augment", augment, AUGMENTATIONS)
    tensors = (x, y) if sample_weight is None else (x, y, np.asarray(sample_weight, np.float32))
    if sample_weight is not None and len(tensors[2]) != len(y):
        raise ValueError(f"sample_weight has {len(tensors[2])} entries for {len(y)} examples.")
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        dataset = dataset.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        if augment:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            augmenter = _augmenter(tuple(x.shape[1:]), flip=augment == "crop_flip")
            dataset = tf.data.Dataset.zip((dataset, seeds)).map(
                augmenter, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            )
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Every worker holds the same arrays: shard by element, not by file.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _augmenter(shape, *, flip: bool):
    height, width, channels = shape
    pad = max(1, round(min(height, width) / 8))

    def augment(element, seed):
        image, rest = element[0], element[1:]
        seeds = tf.random.experimental.stateless_split(seed, 2)
        padded = tf.image.pad_to_bounding_box(image, pad, pad, height + 2 * pad, width + 2 * pad)
        image = tf.image.stateless_random_crop(padded, (height, width, channels), seed=seeds[0])
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
        return (image, *rest)

    return augment


def training_augmentation(name: str, augment) -> Optional[str]:
    """The augmentation a training pipeline of dataset `name` gets for `augment`.

    "default": the dataset's usual one (`AUGMENT`); "none", None or False: none;
    "crop" / "crop_flip": that one (checked by `make_dataset`).
    """
    if augment == "default":
        return AUGMENT[check_name(name)]
    return None if augment in (None, False, "none") else augment


def load_dataset(
    name: str, *, input_shape, batch_size: int, seed: int = 0, data_dir=None, augment="default"
) -> DatasetBundle:
    """`load_arrays` wrapped into train/validation/test pipelines.

    !!! example
        ```python
        bundle = lt.load_dataset("digits", input_shape=(16, 16, 1), batch_size=64)
        model.fit(bundle.train, validation_data=bundle.validation)
        ```

    # Arguments
        augment: "default" uses the dataset's usual training augmentation
            (`AUGMENT`); or pass "none" (or False), "crop", "crop_flip".
    """
    name = check_name(name)
    batch_size = validation.positive_int("batch_size", batch_size, hint="pass e.g. batch_size=128")
    arrays = load_arrays(name, input_shape=input_shape, data_dir=data_dir, seed=seed)
    augment = training_augmentation(name, augment)
    return DatasetBundle(
        train=make_dataset(
            arrays.x_train,
            arrays.y_train,
            batch_size=batch_size,
            training=True,
            seed=seed,
            augment=augment,
        ),
        validation=make_dataset(arrays.x_val, arrays.y_val, batch_size=batch_size, training=False),
        test=make_dataset(arrays.x_test, arrays.y_test, batch_size=batch_size, training=False),
        num_classes=arrays.num_classes,
        class_names=arrays.class_names,
        preprocessing=arrays.preprocessing,
        arrays=arrays,
    )
