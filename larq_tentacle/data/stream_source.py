"""`StreamSource`: a dataset read from disk image by image (a folder of images, a tfds
dataset), as opposed to the small named datasets that `sources.load_raw` holds in memory.

A source knows its splits, their sizes, its class names and the channels it decodes to;
`images(split)` gives the split's decoded uint8 images one by one. The pipeline
(`larq_tentacle.data.streaming`) resizes, normalises, caches (within a budget), augments
and batches them, so peak memory does not grow with the size of the dataset.
"""

import dataclasses
from typing import Callable, Dict, List, Optional

import tensorflow as tf

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class StreamSource:
    """A dataset streamed from disk.

    # Arguments
        name: the canonical dataset string, recorded as `preprocessing["dataset"]` so that
            export and predict can reopen it, e.g. "folder:/abs/path" or "tfds:mnist:3.0.1".
        class_names: label names; label i is `class_names[i]`.
        channels: 1 (grey) or 3 (RGB): the last axis of every image `images` yields.
        sizes: images per split, for "train", "validation" and "test".
        images: `images(split, shuffle_seed=None)` -> unbatched `tf.data.Dataset` of
            `(uint8 image [height, width, channels], int64 label)`; image sizes may differ.
            Decoding runs in parallel. With a `shuffle_seed` the order is shuffled where it
            is cheap (file names, tfds files) and reshuffled every iteration; without, the
            order is fixed (the test split's first images are always the same).
        augment: the training augmentation "default" means for this source (None, "crop"
            or "crop_flip").
        notes: what the log should say about the source (ignored files, skipped images).
    """

    name: str
    class_names: List[str]
    channels: int
    sizes: Dict[str, int]
    images: Callable[..., tf.data.Dataset]
    augment: Optional[str] = "crop"
    notes: List[str] = dataclasses.field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
