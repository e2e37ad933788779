"""The preprocessing every image goes through, recorded with every run.

A run's `preprocessing.json` (also in the export sidecar) describes it, so an exported
model can be fed raw images on a device: a raw uint8 image is resized (bilinear) to
input_shape[:2], a grey image is repeated to 3 channels when the model wants RGB, then
x = (pixels / 255 - mean) / std with per-channel mean/std of the training split.
`preprocess_images` (numpy, whole arrays) and `preprocess_tensor` (one tf image, inside
tf.data) implement exactly that.
"""

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from larq_tentacle.data.sources import NATIVE_SHAPES, check_name
from larq_tentacle.utils import validation

PIXEL_SCALE = 255.0
RESIZE_METHOD = "bilinear"
_RESIZE_CHUNK = 4096


def fit_input_shape(
    name_or_source, model_input_shape, *, input_size: Optional[int] = None
) -> Tuple[int, int, int]:
    """The input shape a model gets when it trains on a dataset.

    `name_or_source` is a named dataset ("digits", ...) or an opened `StreamSource`.
    Height and width are the model's (or `input_size` x `input_size` when given). Colour is
    never thrown away: RGB data keeps 3 channels even for a grey model (the model is built
    for 3), and grey data is repeated to 3 channels only when the model wants RGB.
    """
    if isinstance(name_or_source, str):
        native_channels = NATIVE_SHAPES[check_name(name_or_source)][2]
    else:
        native_channels = name_or_source.channels
    height, width, channels = model_input_shape
    if input_size is not None:
        input_size = validation.positive_int(
            "input_size", input_size, hint="pass e.g. input_size=32"
        )
        height = width = input_size
    return (int(height), int(width), 3 if native_channels == 3 else int(channels))


def new_record(
    name: str, target, native_channels: int, class_names: Sequence[str]
) -> dict:
    """The preprocessing of dataset `name` at input shape `target`, before its statistics."""
    check_channels(name, target, native_channels)
    return {
        "dataset": name,
        "input_shape": [int(v) for v in target],
        "pixel_scale": PIXEL_SCALE,
        "mean": [0.0] * target[2],
        "std": [1.0] * target[2],
        "resize": RESIZE_METHOD,
        "grey_to_rgb": bool(native_channels == 1 and target[2] == 3),
        "class_names": list(class_names),
    }


def with_statistics(preprocessing: dict, mean, std) -> dict:
    """The record with per-channel mean/std (of images already scaled to 0..1)."""
    # A constant channel (blank border pixels, mock data) must not divide by zero.
    std = np.maximum(np.asarray(std, np.float64), 1e-3)
    return dict(
        preprocessing, mean=[float(m) for m in mean], std=[float(s) for s in std]
    )


def check_channels(name: str, target, native_channels: int) -> None:
    """RGB data never loses its colour; grey data may become RGB, nothing else."""
    if native_channels == 3 and target[2] != 3:
        raise ValueError(
            f"{name} images are RGB but input_shape={tuple(target)} asks for {target[2]} "
            f"channel(s). Fix: use input_shape=({target[0]}, {target[1]}, 3); "
            "lt.build accepts any input shape."
        )
    if target[2] not in (native_channels, 3):
        raise ValueError(f"input_shape={tuple(target)} must have 1 or 3 channels for {name}.")


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


def scale_tensor(image: tf.Tensor, preprocessing: dict) -> tf.Tensor:
    """One uint8 image [H, W, C] -> float32 at the input shape, 0..1, before mean/std."""
    height, width, channels = preprocessing["input_shape"]
    x = tf.cast(image, tf.float32)
    x = tf.image.resize(x, (height, width), method=preprocessing["resize"])
    if preprocessing["grey_to_rgb"]:
        x = tf.repeat(x, 3, axis=-1)
    x = tf.ensure_shape(x, (height, width, channels))
    return x / preprocessing["pixel_scale"]


def preprocess_tensor(image: tf.Tensor, preprocessing: dict) -> tf.Tensor:
    """One uint8 image [H, W, C] -> model input; the tf twin of `preprocess_images`."""
    x = scale_tensor(image, preprocessing)
    mean = tf.constant(preprocessing["mean"], tf.float32)
    std = tf.constant(preprocessing["std"], tf.float32)
    return (x - mean) / std


def _resize(x: np.ndarray, size, method: str) -> np.ndarray:
    # In chunks, so a whole training split never sits in memory twice as a tensor.
    chunks = [
        tf.image.resize(x[i : i + _RESIZE_CHUNK], size, method=method).numpy()
        for i in range(0, len(x), _RESIZE_CHUNK)
    ]
    return np.concatenate(chunks or [np.zeros((0, *size, x.shape[-1]), np.float32)])
