"""Training augmentation: pad + random crop, optionally a random horizontal flip.

Stateless and seeded per element, so a run's augmentation is the same on every
replay of the same seed, in-memory arrays and streamed sources alike.
"""

from typing import Optional

import tensorflow as tf

from larq_tentacle.data.sources import check_name
from larq_tentacle.utils import validation

# The usual augmentation per named dataset: a horizontal flip where mirroring keeps the
# label (faces, objects; not digits).
AUGMENT = {"cifar10": "crop_flip", "cifar100": "crop_flip", "fer2013": "crop_flip", "digits": None}
AUGMENTATIONS = ("crop", "crop_flip")


def check_augment(augment) -> Optional[str]:
    """None, "crop" or "crop_flip" for False/None, True (= "crop_flip") or a name."""
    if augment is True:
        return "crop_flip"
    if not augment:
        return None
    return validation.choice("augment", augment, AUGMENTATIONS)


def training_augmentation(name_or_source, augment) -> Optional[str]:
    """The augmentation a training pipeline of a dataset gets for `augment`.

    "default": the dataset's usual one (`AUGMENT`, or a `StreamSource`'s own `augment`);
    "none", None or False: none; "crop" / "crop_flip": that one.
    """
    if augment == "default":
        if isinstance(name_or_source, str):
            return AUGMENT[check_name(name_or_source)]
        return name_or_source.augment
    return None if augment in (None, False, "none") else check_augment(augment)


def augment_dataset(dataset: tf.data.Dataset, shape, *, augment: str, seed: int):
    """Augment the image (first item) of every element of `dataset`, seeded per element."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    augmenter = _augmenter(tuple(shape), flip=augment == "crop_flip")
    return tf.data.Dataset.zip((dataset, seeds)).map(
        augmenter, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


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
