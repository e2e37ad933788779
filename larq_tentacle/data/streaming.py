"""tf.data pipelines over sources streamed from disk (`StreamSource`: folder:, tfds:).

Images are decoded, resized and normalised in parallel as they are read; a split is
cached in memory only when its preprocessed images fit the budget (`cache_mb`), and the
training split is shuffled over file names plus a small buffer of decoded images, so
peak memory stays bounded whatever the size of the dataset. Normalisation statistics
come from a bounded sample of the training split.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.data import augmentation, preprocessing
from larq_tentacle.data.bundle import DataArrays, DatasetBundle
from larq_tentacle.data.stream_source import StreamSource
from larq_tentacle.utils import validation

CACHE_MB = 512
# Training images that set the normalisation statistics.
STATISTICS_SAMPLE = 2048
_STATISTICS_BATCH = 64
# Decoded images held for shuffling (on top of the shuffled file order): at most this
# many megabytes, at least one batch.
SHUFFLE_BUFFER_MB = 32
# Splits worth caching, in order: train and validation are read every epoch, test once.
CACHED_SPLITS = ("train", "validation")
_MB = 2**20


def open_source(name: str, *, data_dir=None, seed: int = 0, skip_bad_images=False,
                check_images=True) -> StreamSource:
    """The `StreamSource` of a streamed dataset name ("folder:PATH", "tfds:NAME[:VERSION]")."""
    if name.startswith("folder:"):
        from larq_tentacle.data.image_folder import open_folder

        return open_folder(
            name[len("folder:") :], seed=seed, skip_bad_images=skip_bad_images,
            check_images=check_images,
        )
    if name.startswith("tfds:"):
        from larq_tentacle.data.tfds_source import open_tfds

        return open_tfds(name, data_dir=data_dir, seed=seed)
    raise ValueError(f"{name!r} is not a streamed dataset (folder:PATH or tfds:NAME).")


def image_megabytes(input_shape, count: int) -> float:
    """Memory of `count` preprocessed float32 images of `input_shape`."""
    return count * int(np.prod(input_shape)) * 4 / _MB


def sample_statistics(source: StreamSource, record: dict, *, seed: int):
    """Per-channel mean and std over a bounded, seeded sample of the training split."""
    images = (
        source.images("train", shuffle_seed=seed)
        .take(STATISTICS_SAMPLE)
        .map(lambda image, _: preprocessing.scale_tensor(image, record),
             num_parallel_calls=tf.data.AUTOTUNE)
        .batch(_STATISTICS_BATCH)
    )
    channels = record["input_shape"][2]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for batch in images.as_numpy_iterator():
        # Sums in float64 without a float64 copy of the batch: the sample stays cheap.
        total += batch.sum(axis=(0, 1, 2), dtype=np.float64)
        squares += np.einsum("nhwc,nhwc->c", batch, batch, dtype=np.float64)
        count += batch.size // channels
    if count == 0:
        raise ValueError(f"{source.name}: the training split is empty.")
    mean = total / count
    return mean, np.sqrt(np.maximum(squares / count - mean**2, 0.0))


def preprocessed(source: StreamSource, split: str, record: dict, *, shuffle_seed=None):
    """Unbatched (model input, label) of one split, preprocessed in parallel."""
    return source.images(split, shuffle_seed=shuffle_seed).map(
        lambda image, label: (preprocessing.preprocess_tensor(image, record), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=shuffle_seed is None,
    )


def stream_dataset(
    source: StreamSource, *, input_shape, batch_size: int, seed: int = 0, augment="default",
    cache_mb: float = CACHE_MB,
) -> DatasetBundle:
    """Train/validation/test pipelines of a streamed source, preprocessed as recorded."""
    cache_mb = validation.positive_float("cache_mb", cache_mb, "e.g. --cache_mb=512", zero=True)
    target = validation.input_shape(input_shape)
    record = preprocessing.new_record(source.name, target, source.channels, source.class_names)
    record = preprocessing.with_statistics(record, *sample_statistics(source, record, seed=seed))
    augment = augmentation.training_augmentation(source, augment)
    cached, left = [], cache_mb
    pipelines = {}
    for split in ("train", "validation", "test"):
        size_mb = image_megabytes(target, source.sizes[split])
        cache = split in CACHED_SPLITS and size_mb <= left
        if cache:
            cached.append(split)
            left -= size_mb
        pipelines[split] = _split_pipeline(
            source, split, record, batch_size=batch_size, seed=seed, cache=cache,
            augment=augment if split == "train" else None,
        )
    return DatasetBundle(
        **pipelines, num_classes=source.num_classes, class_names=list(source.class_names),
        preprocessing=record, sizes=dict(source.sizes), source=source, cached=cached,
    )


def _split_pipeline(source, split, record, *, batch_size, seed, cache, augment):
    training = split == "train"
    # A cached split keeps the order of its first pass; it is reshuffled by the buffer.
    dataset = preprocessed(source, split, record, shuffle_seed=seed if training else None)
    if cache:
        dataset = dataset.cache()
    if training:
        image_mb = image_megabytes(record["input_shape"], 1)
        buffer = max(batch_size, int(SHUFFLE_BUFFER_MB / image_mb))
        if cache:
            buffer = source.sizes[split]
        dataset = dataset.shuffle(
            min(buffer, max(1, source.sizes[split])), seed=seed, reshuffle_each_iteration=True
        )
        if augment:
            dataset = augmentation.augment_dataset(
                dataset, record["input_shape"], augment=augment, seed=seed
            )
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Workers read the same files: shard by element, not by file.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def to_arrays(bundle: DatasetBundle, *, limit_mb: float = CACHE_MB) -> DataArrays:
    """A streamed bundle's splits as in-memory arrays (what BENN's resampling needs)."""
    if bundle.arrays is not None:
        return bundle.arrays
    record = bundle.preprocessing
    needed = image_megabytes(record["input_shape"], sum(bundle.sizes.values()))
    if needed > limit_mb:
        raise ValueError(
            f"{record['dataset']}: bagging and boosting resample single images, which needs the "
            f"preprocessed dataset in memory ({needed:.0f} MB) but --cache_mb={limit_mb:g}. "
            f"Fix: pass --cache_mb={int(np.ceil(needed))} or more, or a smaller --input_size."
        )
    splits = {}
    for split in ("train", "validation", "test"):
        pairs = list(preprocessed(bundle.source, split, record).batch(1024).as_numpy_iterator())
        splits[split] = _stack(pairs, record["input_shape"])
    return DataArrays(
        *splits["train"], *splits["validation"], *splits["test"],
        num_classes=bundle.num_classes, class_names=list(bundle.class_names),
        preprocessing=record,
    )


def _stack(pairs, input_shape):
    if not pairs:
        return np.zeros((0, *input_shape), np.float32), np.zeros((0,), np.int32)
    return (
        np.concatenate([x for x, _ in pairs]).astype(np.float32),
        np.concatenate([y for _, y in pairs]).astype(np.int32),
    )


def first_test_images(record: dict, num_samples: int, *, data_dir=None) -> Optional[np.ndarray]:
    """The first `num_samples` test images of a streamed run, preprocessed as recorded."""
    source = open_source(record["dataset"], data_dir=data_dir, check_images=False)
    images = preprocessed(source, "test", record).take(num_samples)
    # Only the first images are read; a file that went bad since training is passed over.
    images = images.ignore_errors().batch(num_samples)
    batches = [x for x, _ in images.as_numpy_iterator()]
    return batches[0] if batches else None
