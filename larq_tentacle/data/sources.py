"""Dataset sources: the raw uint8 images and labels of the four datasets the project
trains on, split into train/validation/test (`RawSplits`), before any preprocessing.

* `cifar10`, `cifar100`: the python-version archive (or its extracted folder) found in
  `data_dir` (`cifar_archive`), else tensorflow-datasets; a validation split is held out of
  the training set (the LR schedule watches val_loss), the test split gives the final number;
* `fer2013`: Kaggle's `fer2013.csv` (`emotion,pixels,Usage`);
* `digits`: scikit-learn's `load_digits` (real 8x8 handwritten digits that ship offline).
"""

import csv
import dataclasses
import os
from typing import List

import numpy as np
import tensorflow as tf

from larq_tentacle.data import cifar_archive

DATASETS = ("cifar10", "cifar100", "fer2013", "digits")
# Raw shape of each dataset's images (height, width, channels).
NATIVE_SHAPES = {
    "cifar10": (32, 32, 3),
    "cifar100": (32, 32, 3),
    "fer2013": (48, 48, 1),
    "digits": (8, 8, 1),
}

FER_CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_USAGE = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
FER_SIDE = 48
FER_FILENAME = "fer2013.csv"
FER_HEADER = ("emotion", "pixels", "Usage")
FER_DEFAULT_DIRS = ("~/data", "~/tensorflow_datasets", ".")
_FER_HOWTO = (
    "Fix: download fer2013.csv from Kaggle's 'Challenges in Representation Learning: Facial "
    "Expression Recognition Challenge' (fer2013.tar.gz contains it) and pass its folder, "
    "e.g. --data_dir=~/data."
)

# Fraction of the training split held out for validation (cifar, digits).
VALIDATION_FRACTION = 0.1
DIGITS_TEST_FRACTION = 0.2
DIGITS_VALIDATION_FRACTION = 0.2  # of what the test split leaves
# The digits test split never depends on `seed`, so runs with different seeds (and the
# FP32/BNN/TentacleNet runs of the demo) are scored on the same images.
DIGITS_TEST_SEED = 0

# Images per batch when tfds splits are read into numpy.
_TFDS_BATCH = 4096


@dataclasses.dataclass
class RawSplits:
    """uint8 images (N, H, W, C) and int labels of a dataset, before any preprocessing."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: List[str]


STREAMED_PREFIXES = ("folder:", "tfds:")
_DATASET_HINT = (
    "one of cifar10, cifar100, fer2013, digits, folder:PATH (a folder with one subfolder of "
    "images per class) or tfds:NAME[:VERSION] (a tensorflow-datasets image dataset)"
)


def is_streamed(name: str) -> bool:
    """Whether dataset `name` is read from disk image by image (folder:, tfds:)."""
    return isinstance(name, str) and name.startswith(STREAMED_PREFIXES)


def check_name(name) -> str:
    """The canonical dataset name: a named dataset, "folder:/absolute/path" or "tfds:NAME"."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"Expected `dataset` to be {_DATASET_HINT}, got {name!r}.")
    name = name.strip()
    if name.startswith("folder:"):
        path = name[len("folder:") :].strip()
        if not path:
            raise ValueError(
                f"dataset={name!r} names no folder. Fix: e.g. --dataset=folder:~/data/flowers."
            )
        return "folder:" + os.path.abspath(os.path.expanduser(path))
    if name.startswith("tfds:"):
        if not name[len("tfds:") :].strip():
            raise ValueError(f"dataset={name!r} names no dataset. Fix: e.g. --dataset=tfds:mnist.")
        return name
    if name not in DATASETS:
        raise ValueError(f"Expected `dataset` to be {_DATASET_HINT}, got {name!r}.")
    return name


def short_name(name: str) -> str:
    """A file-name-safe label of a dataset: "flowers" for folder:/data/flowers."""
    if name.startswith("folder:"):
        label = os.path.basename(os.path.normpath(name[len("folder:") :])) or "folder"
    elif name.startswith("tfds:"):
        label = name[len("tfds:") :].split(":")[0]
    else:
        label = name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def load_raw(name: str, *, data_dir=None, seed: int = 0) -> RawSplits:
    """The dataset's uint8 images and labels, split into train/validation/test."""
    name = check_name(name)
    if name in ("cifar10", "cifar100"):
        archive = cifar_archive.find_archive(name, data_dir)
        if archive is None:
            return _load_tfds(name, data_dir=data_dir, seed=seed)
        x_train, y_train, x_test, y_test, class_names = cifar_archive.read_archive(archive, name)
        x_train, y_train, x_val, y_val = _hold_out(x_train, y_train, VALIDATION_FRACTION, seed)
        return RawSplits(x_train, y_train, x_val, y_val, x_test, y_test, class_names)
    if name == "fer2013":
        return read_fer2013(find_fer2013(data_dir))
    return _load_digits(seed=seed)


def _hold_out(x, y, fraction: float, seed: int):
    """Split off a random `fraction` (at least one example, never all) for validation."""
    if len(y) < 2:
        raise ValueError(
            f"Need at least 2 training examples to hold out a validation split, got {len(y)}."
        )
    count = min(max(1, int(round(len(y) * fraction))), len(y) - 1)
    order = np.random.default_rng(seed).permutation(len(y))
    val, train = np.sort(order[:count]), np.sort(order[count:])
    return x[train], y[train], x[val], y[val]


# --- tensorflow-datasets -------------------------------------------------------------


def _load_tfds(name: str, *, data_dir, seed: int) -> RawSplits:
    import tensorflow_datasets as tfds

    data_dir = os.path.expanduser(data_dir) if data_dir else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        splits = {}
        for split in ("train", "test"):
            dataset = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True)
            # Batched iteration; tfds' batch_size=-1 needs a known cardinality.
            batches = list(tfds.as_numpy(dataset.batch(_TFDS_BATCH)))
            splits[split] = (
                np.concatenate([images for images, _ in batches]),
                np.concatenate([labels for _, labels in batches]),
            )
    except (OSError, tf.errors.OpError) as error:
        # Only "not downloaded / no network": a failed download is requests' ConnectionError,
        # an OSError. Anything else, e.g. an ImportError of tfds' builder, is not fixed by
        # --data_dir and surfaces.
        raise _tfds_not_here(name, data_dir, error) from error
    class_names = list(builder.info.features["label"].names)
    x_train, y_train = splits["train"]
    x_train, y_train, x_val, y_val = _hold_out(x_train, y_train, VALIDATION_FRACTION, seed)
    x_test, y_test = splits["test"]
    return RawSplits(x_train, y_train, x_val, y_val, x_test, y_test, class_names)


def _tfds_not_here(name: str, data_dir, error: Exception) -> FileNotFoundError:
    """The one-line error for tfds data that is neither in `data_dir` nor downloadable."""
    where = data_dir or "~/tensorflow_datasets"
    first_line = str(error).splitlines()[0] if str(error) else ""
    archive = cifar_archive.ARCHIVE_FILES.get(name, f"the {name} archive")
    return FileNotFoundError(
        f"Could not load the tensorflow-datasets dataset {name!r} from {where!r} "
        f"({type(error).__name__}: {first_line}). "
        f'Fix: on a machine with internet run `python -c "import tensorflow_datasets as tfds; '
        f"tfds.load('{name}', data_dir='{where}')\"` and copy that folder here, then pass "
        f"--data_dir={where}; or put {archive} (from {cifar_archive.DOWNLOAD_PAGE} or Keras's "
        f"~/.keras/datasets) in a folder and pass --data_dir=that folder."
    )


# --- digits --------------------------------------------------------------------------


def _load_digits(*, seed: int) -> RawSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel values are 0..16; scale them to the uint8 range the preprocessing contract uses.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        images,
        labels,
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=DIGITS_TEST_SEED,
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=DIGITS_VALIDATION_FRACTION, stratify=y_rest, random_state=seed
    )
    class_names = [str(c) for c in digits.target_names]
    return RawSplits(x_train, y_train, x_val, y_val, x_test, y_test, class_names)


# --- FER2013 -------------------------------------------------------------------------


def find_fer2013(data_dir=None) -> str:
    """The path of fer2013.csv: `data_dir` itself if it is the file, else inside it."""
    if data_dir is not None and os.path.isfile(os.path.expanduser(data_dir)):
        return os.path.expanduser(data_dir)
    folders = [data_dir] if data_dir is not None else list(FER_DEFAULT_DIRS)
    candidates = []
    for folder in folders:
        folder = os.path.expanduser(folder)
        candidates += [
            os.path.join(folder, FER_FILENAME),
            os.path.join(folder, "fer2013", FER_FILENAME),
        ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"fer2013.csv not found; looked at {candidates}. {_FER_HOWTO}")


def read_fer2013(path) -> RawSplits:
    """Parse Kaggle's fer2013.csv; a malformed row raises ValueError naming file and line."""
    path = os.fspath(path)
    parts = {split: ([], []) for split in FER_USAGE.values()}
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != list(FER_HEADER):
            raise ValueError(
                f"{path}, line 1: expected the header {','.join(FER_HEADER)}, got {header!r}. "
                f"{_FER_HOWTO}"
            )
        for row in reader:
            label, split, image = _parse_fer_row(row, f"{path}, line {reader.line_num}")
            images, labels = parts[split]
            images.append(image)
            labels.append(label)
    arrays = {}
    for split, (images, labels) in parts.items():
        if not labels:
            usage = next(u for u, s in FER_USAGE.items() if s == split)
            raise ValueError(
                f"{path}: no rows with Usage {usage!r}; the {split} split would be empty."
            )
        arrays[split] = (np.stack(images), np.asarray(labels, np.int64))
    return RawSplits(
        *arrays["train"], *arrays["validation"], *arrays["test"], list(FER_CLASS_NAMES)
    )


def _parse_fer_row(row, where: str):
    """(label, split, uint8 image of FER_SIDE x FER_SIDE x 1) of one csv row, or ValueError."""
    if len(row) != 3:
        raise ValueError(f"{where}: expected 3 fields (emotion,pixels,Usage), got {len(row)}.")
    emotion, pixels, usage = (field.strip() for field in row)
    try:
        label = int(emotion)
    except ValueError:
        label = -1
    if not 0 <= label < len(FER_CLASS_NAMES):
        raise ValueError(
            f"{where}: bad label {emotion!r}; expected an integer 0..{len(FER_CLASS_NAMES) - 1}."
        )
    if usage not in FER_USAGE:
        raise ValueError(f"{where}: unknown Usage {usage!r}; expected one of {list(FER_USAGE)}.")
    tokens = pixels.split()
    if len(tokens) != FER_SIDE * FER_SIDE:
        raise ValueError(
            f"{where}: expected {FER_SIDE * FER_SIDE} pixels ({FER_SIDE}x{FER_SIDE}), "
            f"got {len(tokens)}."
        )
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise ValueError(f"{where}: pixel {bad!r} is not an integer 0..255.") from None
    if values.min() < 0 or values.max() > 255:
        raise ValueError(
            f"{where}: pixel values must be 0..255, found {values.min()}..{values.max()}."
        )
    image = values.astype(np.uint8).reshape(FER_SIDE, FER_SIDE, 1)
    return label, FER_USAGE[usage], image
