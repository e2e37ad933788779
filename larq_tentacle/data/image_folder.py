"""`open_folder`: a user's folder of images as a `StreamSource` (`--dataset=folder:PATH`).

The layout of Keras's `image_dataset_from_directory`: one folder per class, PATH/<class>/
<image> (images may sit in subfolders of the class folder). The splits are either given,
PATH/train/<class>/..., PATH/test/<class>/... and optionally PATH/validation/ (or val/), or
made here, stratified per class:

* test: 20 % of each class, chosen with the fixed seed `TEST_SEED` whatever the run's seed,
  so runs with different seeds score on the same test images (as digits does);
* validation: 20 % of the rest (or of train/ when only train/ and test/ are given), chosen
  by the run's seed;
* a class of 3 or more images has at least one in every split; a class of 2 gives one to
  train and one to test, a class of 1 only trains (a note says which classes are tiny).

The split is made from the full, sorted list of image files, before the scan drops bad ones,
so which images are test images never depends on the scan. Everything is sorted by code
point, so every machine makes the same split; hidden files and folders are ignored.
"""

import collections
import functools
import os
import zlib
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from larq_tentacle.data.image_decoding import (
    IMAGE_EXTENSIONS,
    decode_image_file,
    header_is_grey,
    undecodable,
    why_bad,
)
from larq_tentacle.data.stream_source import SPLITS, StreamSource
from larq_tentacle.utils import validation

__all__ = ["open_folder", "TEST_FRACTION", "VALIDATION_FRACTION", "TEST_SEED"]

TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2
TEST_SEED = 0  # never the run's seed: the test images stay the same across seeds
_SPLIT_FOLDERS = ("train", "validation", "val", "test")
_LAYOUT = "PATH/<class>/<image>.png"
_SHOWN = 5  # bad files named in a message

# A split's files and their labels (indices into the class names).
Split = List[Tuple[str, int]]


def open_folder(path, *, seed=0, skip_bad_images=False, check_images=True) -> StreamSource:
    """The folder of images at `path` as a `StreamSource` named "folder:<absolute path>".

    Channels are 1 when every image's header says grey (grey or grey+alpha), else 3; a file
    whose header cannot be read has no say (the scan reports it), and since the headers are
    read with or without the scan, `check_images` never changes the channels. With
    `check_images` every file is decoded once before training; a file that cannot be decoded
    raises a ValueError naming it, or with `skip_bad_images` is dropped (and counted in
    `notes`). `check_images=False` skips that scan, e.g. when only a few test images are
    needed. See the module docstring for the layout and the split.
    """
    root = _existing_folder(path)
    seed = validation.positive_int("seed", seed, minimum=0)
    notes: List[str] = []
    class_names, splits = _split_folder(root, seed, notes)
    votes = [header_is_grey(file) for split in splits.values() for file, _ in split]
    channels = 1 if all(vote is not False for vote in votes) else 3
    if check_images:
        splits = _drop_bad(root, splits, channels, skip_bad_images, notes)
    tables = {name: _table(split) for name, split in splits.items()}
    return StreamSource(
        name="folder:" + root,
        class_names=class_names,
        channels=channels,
        sizes={name: len(split) for name, split in splits.items()},
        images=functools.partial(_images, tables, channels),
        augment="crop",  # a flip can change what text or digits mean; crop_flip is opt-in
        notes=notes,
    )


def _existing_folder(path) -> str:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(
            f"Expected the folder of images as a path, got {path!r}. "
            f"Fix: --dataset=folder:PATH with the layout {_LAYOUT}."
        )
    root = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.exists(root):
        raise FileNotFoundError(
            f"No folder of images at {root}. Fix: check the path in --dataset=folder:PATH; "
            f"it must be a folder laid out as {_LAYOUT}."
        )
    if not os.path.isdir(root):
        raise ValueError(
            f"{root} is a file, not a folder of images. Fix: pass the folder that holds "
            f"one folder per class ({_LAYOUT})."
        )
    return root


# --- layout and split -----------------------------------------------------------------


def _split_folder(root: str, seed: int, notes: List[str]) -> Tuple[List[str], Dict[str, Split]]:
    """The class names and the files of each split, from either layout."""
    ignored: collections.Counter = collections.Counter()
    folders, loose = _entries(root)
    split_folders = _split_layout(root, folders)
    if split_folders is None:
        class_names, files = _classes(root, folders, ignored)
        splits = _make_splits(class_names, files, seed, notes)
    else:
        paths = {split: os.path.join(root, folder) for split, folder in split_folders.items()}
        inside = {split: _entries(path) for split, path in paths.items()}
        class_names = inside["train"][0]
        for split, (names, inner_loose) in inside.items():
            _same_classes(paths[split], split, names, class_names)
            loose += inner_loose
        given = {split: _classes(paths[split], inside[split][0], ignored)[1] for split in paths}
        splits = _given_splits(class_names, given, seed, notes)
    _note_ignored(ignored, loose, notes)
    for split in SPLITS:
        if not splits[split]:
            raise ValueError(
                f"{root} has too few images to fill the {split} split. Fix: give every "
                "class at least 3 images (2 in train/ when there is no validation/)."
            )
    return class_names, splits


def _entries(folder: str) -> Tuple[List[str], List[str]]:
    """The visible subfolder names and file names directly in `folder`, sorted."""
    with os.scandir(folder) as entries:
        visible = [entry for entry in entries if not entry.name.startswith(".")]
    folders = sorted(entry.name for entry in visible if entry.is_dir())
    files = sorted(entry.name for entry in visible if not entry.is_dir())
    return folders, files


def _split_layout(root: str, folders: List[str]):
    """{split: folder name} when `root` holds train/ and test/ (and maybe validation/), else
    None (one folder per class)."""
    named = [folder for folder in folders if folder in _SPLIT_FOLDERS]
    if not ({"train", "test"} <= set(named)):
        if len(named) >= 2 and named == folders:  # e.g. train/ and val/ without test/
            raise ValueError(
                f"{root} has the split folders {_listed(named, '/')} but no "
                f"{'test' if 'train' in named else 'train'}/ folder. Fix: add it (each split "
                "holds one folder per class, PATH/train/<class>/<image>.png), or put the "
                f"images in one folder per class ({_LAYOUT}) and let the split be made."
            )
        return None
    others = [folder for folder in folders if folder not in _SPLIT_FOLDERS]
    if others:
        raise ValueError(
            f"{root} has the split folders train/ and test/ and also {_listed(others, '/')}. "
            "Fix: move those into the splits' class folders, or out of the folder."
        )
    if {"validation", "val"} <= set(named):
        raise ValueError(
            f"{root} has both validation/ and val/. Fix: keep one validation folder."
        )
    layout = {"train": "train", "test": "test"}
    for folder in ("validation", "val"):
        if folder in named:
            layout["validation"] = folder
    return layout


def _classes(root: str, folders: List[str], ignored) -> Tuple[List[str], List[List[str]]]:
    """The class names (the folder names) and each class's image files, sorted."""
    if not folders:
        raise ValueError(
            f"{root} has no class folders. Fix: put the images in one folder per class, "
            f"{_LAYOUT} (or PATH/train/<class>/... and PATH/test/<class>/...)."
        )
    if len(folders) == 1:
        raise ValueError(
            f"{root} has only one class folder, {folders[0]}/. Fix: a classifier needs at "
            f"least 2 classes: add one folder per class ({_LAYOUT})."
        )
    files = [_images_under(os.path.join(root, folder), ignored) for folder in folders]
    empty = [folder for folder, images in zip(folders, files) if not images]
    if empty:
        raise ValueError(
            f"The class folder(s) {_listed(empty, '/')} in {root} hold no images "
            f"({' '.join(IMAGE_EXTENSIONS)}). Fix: add images to them or remove them."
        )
    return list(folders), files


def _images_under(folder: str, ignored) -> List[str]:
    """The image files under `folder` (its subfolders too), sorted; others are counted."""
    images = []
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            extension = os.path.splitext(name)[1].lower()
            if name.startswith("."):
                continue
            if extension in IMAGE_EXTENSIONS:
                images.append(os.path.join(parent, name))
            else:
                ignored[extension or "no extension"] += 1
    return sorted(images)


def _same_classes(folder, split, names, class_names) -> None:
    missing = sorted(set(class_names) - set(names))
    extra = sorted(set(names) - set(class_names))
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"lacks the class folder(s) {_listed(missing, '/')} of train/")
        if extra:
            problems.append(f"has class folder(s) {_listed(extra, '/')} that train/ lacks")
        raise ValueError(
            f"The {split} split {folder} {' and '.join(problems)}. Fix: give every split "
            "the same class folders."
        )


def _make_splits(class_names, files, seed: int, notes: List[str]) -> Dict[str, Split]:
    """Stratified test (fixed seed) and validation (the run's seed) splits of one list."""
    test, rest = _hold_out(class_names, files, TEST_FRACTION, TEST_SEED, leave=2)
    rest_files = [[image for image, label in rest if label == index] for index in range(len(files))]
    validation_, train = _hold_out(class_names, rest_files, VALIDATION_FRACTION, seed, leave=1)
    rule = "1 image only trains, 2 give one to train and one to test"
    _note_tiny(class_names, files, 3, rule, notes)
    return {"train": train, "validation": validation_, "test": test}


def _given_splits(class_names, files: Dict[str, List[List[str]]], seed, notes):
    """The given splits; validation held out of train/ when there is no validation/."""
    if "validation" in files:
        return {split: _labelled(files[split]) for split in SPLITS}
    train_files = files["train"]
    validation_, train = _hold_out(class_names, train_files, VALIDATION_FRACTION, seed, leave=1)
    _note_tiny(class_names, train_files, 2, "a class of 1 training image only trains", notes)
    return {"train": train, "validation": validation_, "test": _labelled(files["test"])}


def _hold_out(class_names, files, fraction, seed, *, leave) -> Tuple[Split, Split]:
    """Per class, `fraction` of the files (at least 1 of 2 or more, leaving at least `leave`
    but always 1), chosen by `seed` and the class's name, so a class's choice does not
    change when other classes are added."""
    taken: Split = []
    rest: Split = []
    for label, images in enumerate(files):
        count = len(images)
        share = 0
        if count >= 2:
            share = max(1, min(round(fraction * count), count - min(leave, count - 1)))
        class_key = zlib.crc32(class_names[label].encode())
        chosen = set(np.random.default_rng([seed, class_key]).permutation(count)[:share])
        for index, image in enumerate(images):
            (taken if index in chosen else rest).append((image, label))
    return taken, rest


def _labelled(files: List[List[str]]) -> Split:
    return [(image, label) for label, images in enumerate(files) for image in images]


# --- notes, the scan and the images ---------------------------------------------------


def _note_tiny(class_names, files, smallest: int, rule: str, notes: List[str]) -> None:
    sizes = zip(class_names, map(len, files))
    tiny = [f"{name} ({count})" for name, count in sizes if count < smallest]
    if tiny:
        notes.append(f"classes too small for every split: {', '.join(tiny)}; {rule}")


def _note_ignored(ignored: collections.Counter, loose: List[str], notes: List[str]) -> None:
    if ignored:
        kinds = ", ".join(f"{extension}: {count}" for extension, count in ignored.most_common())
        total = sum(ignored.values())
        notes.append(f"ignored {total} file{'s' * (total != 1)} that are not images ({kinds})")
    if loose:
        notes.append(
            f"ignored {len(loose)} file{'s' * (len(loose) != 1)} outside the class folders "
            f"(images belong in {_LAYOUT})"
        )


def _drop_bad(root, splits: Dict[str, Split], channels, skip_bad_images, notes):
    """The splits without the files that do not decode; or a ValueError naming them."""
    everything = [file for split in SPLITS for file, _ in splits[split]]
    bad = [everything[index] for index in undecodable(everything, channels)]
    if not bad:
        return splits
    shown = ", ".join(os.path.relpath(file, root) for file in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    if not skip_bad_images:
        raise ValueError(
            f"{len(bad)} image file(s) in {root} cannot be decoded: {shown}{more} (the first: "
            f"{why_bad(bad[0], channels)}). Fix: pass --skip_bad_images to skip them, or "
            "delete/repair the file(s)."
        )
    notes.append(f"skipped {len(bad)} image(s) that cannot be decoded: {shown}{more}")
    dropped = set(bad)
    kept = {split: [item for item in splits[split] if item[0] not in dropped] for split in SPLITS}
    for split in SPLITS:
        if not kept[split]:
            raise ValueError(
                f"No image of the {split} split in {root} decodes ({shown}{more}). "
                "Fix: delete/repair the bad files or add images."
            )
    return kept


def _table(split: Split) -> Tuple[List[str], np.ndarray]:
    """File names and labels in a fixed mixed order (the first test images show several
    classes, not just the first)."""
    order = np.random.default_rng(TEST_SEED).permutation(len(split))
    paths = [split[index][0] for index in order]
    labels = np.array([split[index][1] for index in order], dtype=np.int64)
    return paths, labels


def _images(tables, channels: int, split: str, shuffle_seed=None) -> tf.data.Dataset:
    """`StreamSource.images`: the split's decoded (uint8 image, int64 label) pairs."""
    paths, labels = tables[validation.choice("split", split, SPLITS)]
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle_seed is not None:
        shuffle_seed = validation.positive_int("shuffle_seed", shuffle_seed, minimum=0)
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.map(
        lambda path, label: (decode_image_file(path, channels), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _listed(names: Sequence[str], suffix: str = "") -> str:
    return ", ".join(f"{name}{suffix}" for name in names)
