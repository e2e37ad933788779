"""CIFAR-10 and CIFAR-100 read straight from the "python version" archive a user already
has (https://www.cs.toronto.edu/~kriz/cifar.html, or Keras's ~/.keras/datasets cache), so
training works offline without tensorflow-datasets.

The archive holds Python-2 pickles of dicts: `data` is an N x 3072 uint8 array, each row one
image in channel-major order (1024 red, 1024 green, 1024 blue values, rows of 32 pixels),
and the labels are a list of ints. Members are read from the .tar.gz in memory (nothing is
extracted to disk) or from the extracted folder; only the expected member names are read,
and the unpickler accepts nothing but numpy arrays besides plain Python values.
"""

import dataclasses
import io
import os
import pickle
import tarfile
import zlib
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from larq_tentacle.utils import validation

__all__ = ["ARCHIVE_FILES", "DOWNLOAD_PAGE", "find_archive", "read_archive"]

DOWNLOAD_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
SIDE = 32
CHANNELS = 3
_ROW = CHANNELS * SIDE * SIDE


@dataclasses.dataclass(frozen=True)
class _Layout:
    title: str
    folder: str  # the folder the archive unpacks to; the tar's members live under it
    extracted: Tuple[str, ...]  # where the folder may be, relative to data_dir
    archives: Tuple[str, ...]  # names the archive may have, relative to data_dir
    train: Tuple[str, ...]
    test: str
    meta: str
    names_key: str
    labels_key: str
    classes: int


# tf-keras' get_file saves `<folder>.tar.gz` and unpacks it next to itself; Keras 3.15
# saves `<folder>-target_archive` and unpacks it into `<folder>-target/`.
_LAYOUTS = {
    "cifar10": _Layout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        extracted=("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py"),
        archives=(
            "cifar-10-python.tar.gz",
            "cifar-10-batches-py.tar.gz",
            "cifar-10-batches-py-target_archive",
        ),
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test="test_batch",
        meta="batches.meta",
        names_key="label_names",
        labels_key="labels",
        classes=10,
    ),
    "cifar100": _Layout(
        title="CIFAR-100",
        folder="cifar-100-python",
        extracted=("cifar-100-python", "cifar-100-python-target/cifar-100-python"),
        archives=("cifar-100-python.tar.gz", "cifar-100-python-target_archive"),
        train=("train",),
        test="test",
        meta="meta",
        names_key="fine_label_names",
        labels_key="fine_labels",
        classes=100,
    ),
}
# The archive each dataset is downloaded as, for messages that say what to fetch.
ARCHIVE_FILES = {name: layout.archives[0] for name, layout in _LAYOUTS.items()}


def _layout(name) -> _Layout:
    return _LAYOUTS[validation.choice("dataset", name, tuple(_LAYOUTS))]


def _fix(layout: _Layout) -> str:
    return (
        f"Fix: download a fresh {layout.archives[0]} (python version) from {DOWNLOAD_PAGE} "
        f"and pass its folder with --data_dir."
    )


def find_archive(name: str, data_dir) -> Optional[str]:
    """The CIFAR archive or extracted folder in `data_dir`, or None when there is none.

    `data_dir` may be the archive file itself, the extracted folder, a folder holding either,
    or Keras's cache (`~/.keras`, whose `datasets/` holds them). Folders win over archives.
    """
    layout = _layout(name)
    if data_dir is None:
        return None
    root = os.path.expanduser(os.fspath(data_dir))
    if os.path.isfile(root) or _is_extracted_folder(root, layout):
        return root
    for folder in (root, os.path.join(root, "datasets")):
        for extracted in layout.extracted:
            if os.path.isdir(os.path.join(folder, extracted)):
                return os.path.join(folder, extracted)
        for archive in layout.archives:
            if os.path.isfile(os.path.join(folder, archive)):
                return os.path.join(folder, archive)
    return None


def _is_extracted_folder(path: str, layout: _Layout) -> bool:
    return all(os.path.isfile(os.path.join(path, m)) for m in (layout.test, layout.meta))


def read_archive(
    path, name: str
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, List[str]]:
    """(x_train, y_train, x_test, y_test, class_names) of a CIFAR archive or its folder.

    Images are uint8 (N, 32, 32, 3) NHWC, labels int64 (CIFAR-100: the 100 fine labels).
    A corrupt archive, a missing member, a wrong array or an out-of-range label raises one
    line naming the path and the fix.
    """
    layout = _layout(name)
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist. {_fix(layout)}")
    contents = {}
    for member, where, data in _members(path, layout):
        contents[member] = (where, _unpickle(data, where, layout))
    wanted = (*layout.train, layout.test, layout.meta)
    missing = [m for m in wanted if m not in contents]
    if missing:
        inside = f"{layout.folder}/" if os.path.isfile(path) else ""
        raise FileNotFoundError(
            f"{path} has no {inside}{missing[0]} (missing: {', '.join(missing)}); it is not a "
            f"complete {layout.title} python archive. {_fix(layout)}"
        )
    train = [_images_and_labels(*contents[m], layout) for m in layout.train]
    x_test, y_test = _images_and_labels(*contents[layout.test], layout)
    class_names = _class_names(*contents[layout.meta], layout)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, class_names


def _members(path: str, layout: _Layout) -> Iterator[Tuple[str, str, bytes]]:
    """(member, where, raw bytes) of each expected member present, one at a time."""
    wanted = (*layout.train, layout.test, layout.meta)
    if os.path.isdir(path):
        for member in wanted:
            file = os.path.join(path, member)
            if os.path.isfile(file):
                with open(file, "rb") as handle:
                    yield member, file, handle.read()
        return
    expected = {f"{layout.folder}/{member}": member for member in wanted}
    try:
        with tarfile.open(path, "r:*") as tar:
            # One pass in archive order: seeking back in a .tar.gz would decompress it again.
            for entry in tar:
                name = entry.name[2:] if entry.name.startswith("./") else entry.name
                if name not in expected:
                    continue
                where = f"{path}, member {name}"
                if not entry.isfile():
                    raise ValueError(f"{where} is not a regular file. {_fix(layout)}")
                yield expected.pop(name), where, tar.extractfile(entry).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ValueError(
            f"{path} is not a readable {layout.title} .tar.gz (corrupt, truncated or not a tar: "
            f"{_one_line(error)}). {_fix(layout)}"
        ) from error


def _one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


class _CifarUnpickler(pickle.Unpickler):
    """A pickle loader that builds numpy arrays and plain values, never runs other code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str, layout: _Layout) -> Dict[str, object]:
    """A CIFAR pickle's dict with str keys (Python-2 `str` keys load as bytes)."""
    try:
        # Python-2 `str` holds both the keys and the arrays' raw bytes: "bytes" keeps them.
        loaded = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # a damaged pickle can raise almost anything
        raise ValueError(
            f"{where} is not a readable pickle ({_one_line(error)}). "
            f"{_fix(layout)}"
        ) from error
    if not isinstance(loaded, dict):
        raise ValueError(
            f"{where} holds a {type(loaded).__name__}, expected a dict. {_fix(layout)}"
        )
    return {_text(key): value for key, value in loaded.items()}


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _entry(content: Dict[str, object], key: str, where: str, layout: _Layout):
    if key not in content:
        raise ValueError(
            f"{where} has no {key!r} entry (it has {sorted(content)}). {_fix(layout)}"
        )
    return content[key]


def _images_and_labels(where: str, content, layout: _Layout):
    data = _entry(content, "data", where, layout)
    labels = _entry(content, layout.labels_key, where, layout)
    shape, dtype = getattr(data, "shape", None), getattr(data, "dtype", type(data).__name__)
    is_rows = isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == _ROW
    if not is_rows or data.dtype != np.uint8:
        raise ValueError(
            f"{where}: 'data' must be a uint8 array of shape (N, {_ROW}), got {dtype} "
            f"{shape}. {_fix(layout)}"
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{where}: {layout.labels_key!r} are not integers ({error}). {_fix(layout)}"
        ) from None
    if labels.shape != (len(data),):
        raise ValueError(
            f"{where}: {layout.labels_key!r} has shape {labels.shape} for {len(data)} images; "
            f"expected one label per image. {_fix(layout)}"
        )
    bad = labels[(labels < 0) | (labels >= layout.classes)]
    if bad.size:
        raise ValueError(
            f"{where}: label {bad[0]} is out of range 0..{layout.classes - 1}. {_fix(layout)}"
        )
    # Rows are channel-major (3, 32, 32); the project's images are NHWC.
    images = data.reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _class_names(where: str, content, layout: _Layout) -> List[str]:
    names = _entry(content, layout.names_key, where, layout)
    if not isinstance(names, (list, tuple)) or len(names) != layout.classes:
        count = len(names) if isinstance(names, (list, tuple)) else type(names).__name__
        raise ValueError(
            f"{where}: {layout.names_key!r} must list {layout.classes} class names, got "
            f"{count}. {_fix(layout)}"
        )
    return [_text(n) for n in names]
