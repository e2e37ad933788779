"""Reading image files the way training reads them, and checking them before training.

`decode_image_file` is the one decoder: the scan (`undecodable`) runs it on every file before
training and the streamed pipeline maps it over the file names, so whatever passes the scan
decodes in training. `header_is_grey` reads a few header bytes to tell grey files from
colour ones without decoding them.
"""

import re
import struct
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["IMAGE_EXTENSIONS", "decode_image_file", "header_is_grey", "undecodable", "why_bad"]

# The formats `tf.io.decode_image` reads, by extension (compared in lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the component count); C4, C8 and CC are not frames.
_JPEG_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SCAN_BATCH = 256


def decode_image_file(path, channels: int) -> tf.Tensor:
    """The uint8 [height, width, channels] image in the file at `path` (a string tensor).

    PNG, JPEG, BMP or GIF (its first frame), found by content, not by extension. Grey,
    grey+alpha, RGB and RGBA files all become `channels` (1 or 3): alpha is dropped, grey is
    repeated into RGB, RGB becomes grey by luminance. Raises `tf.errors.InvalidArgumentError`
    on a corrupt or truncated file. Works eagerly and inside `tf.data.Dataset.map`.
    """
    if channels not in (1, 3):
        raise ValueError(f"Expected `channels` to be 1 or 3, got {channels!r}. Fix: 1 or 3.")
    image = tf.io.decode_image(
        tf.io.read_file(path), channels=0, dtype=tf.uint8, expand_animations=False
    )
    colour = tf.shape(image)[-1] >= 3
    if channels == 3:
        image = tf.cond(
            colour, lambda: image[..., :3], lambda: tf.repeat(image[..., :1], 3, axis=-1)
        )
    else:
        image = tf.cond(
            colour, lambda: tf.image.rgb_to_grayscale(image[..., :3]), lambda: image[..., :1]
        )
    image.set_shape([None, None, channels])
    return image


def undecodable(paths: Sequence[str], channels: int) -> List[int]:
    """The indices of the files in `paths` that `decode_image_file` cannot decode.

    Every file is read and fully decoded, in parallel through tf.data (measured faster than
    a thread pool over eager decodes); a file that fails is dropped by `ignore_errors` and
    shows up as a missing index.
    """
    if not paths:
        return []
    indices = tf.data.Dataset.range(len(paths))
    files = tf.data.Dataset.from_tensor_slices(list(paths))
    decoded = tf.data.Dataset.zip((indices, files)).map(
        lambda index, path: (index, tf.shape(decode_image_file(path, channels))),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    good = decoded.ignore_errors(log_warning=False).map(lambda index, shape: index)
    seen = np.zeros(len(paths), dtype=bool)
    for batch in good.batch(_SCAN_BATCH).as_numpy_iterator():
        seen[batch] = True
    return np.flatnonzero(~seen).tolist()


def why_bad(path: str, channels: int) -> str:
    """TensorFlow's reason, in one short line, why `decode_image_file` fails on `path`."""
    try:
        decode_image_file(tf.constant(path), channels)
    except tf.errors.OpError as error:
        message = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", error.message)
        return " ".join(message.split()) or type(error).__name__
    return "decodes now"  # e.g. repaired or replaced since the scan


def header_is_grey(path: str) -> Optional[bool]:
    """Whether the image file at `path` decodes to grey (1 or 2 channels), from its header.

    None when the header is unreadable or of an unknown format (the scan reports such files).
    GIFs are colour (TensorFlow decodes them to RGB); BMPs of 8 bits or fewer are grey, as
    TensorFlow decodes their palette indices as grey levels.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(32)
            if head.startswith(_PNG_MAGIC) and len(head) > 25:
                return head[25] in (0, 4)  # IHDR colour type: grey, grey+alpha
            if head.startswith(b"GIF8"):
                return False
            if head.startswith(b"BM") and len(head) >= 30:
                (header_size,) = struct.unpack("<I", head[14:18])
                at = 24 if header_size == 12 else 28  # OS/2 bitmaps keep the depth earlier
                return struct.unpack("<H", head[at : at + 2])[0] <= 8
            if head.startswith(b"\xff\xd8"):
                file.seek(2)
                return _jpeg_is_grey(file)
    except (OSError, struct.error):
        pass
    return None


def _jpeg_is_grey(file) -> Optional[bool]:
    """Walk the JPEG segments after the start-of-image marker to the frame header."""
    while True:
        if file.read(1) != b"\xff":
            return None  # not at a marker: not a JPEG we understand
        byte = file.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = file.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:
            continue  # markers without a length
        length = file.read(2)
        if len(length) < 2:
            return None
        if marker in _JPEG_FRAMES:
            frame = file.read(6)  # precision, height, width, component count
            return len(frame) == 6 and frame[5] == 1
        size = struct.unpack(">H", length)[0]
        if size < 2:
            return None
        file.seek(size - 2, 1)
