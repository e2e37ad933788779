"""`tfds:NAME[:VERSION]`: any tensorflow-datasets image-classification dataset (an image
feature and a ClassLabel feature) as a `StreamSource`, read from its files on disk.

Splits: the dataset's own train/validation/test where they exist. A missing validation
split is one tenth of train, chosen by `seed`; a missing test split is the dataset's
validation split, or, with train only, a fixed tenth of train (see `plan_splits`).
"""

import difflib
import os
import re
from typing import Dict, Optional, Tuple

import tensorflow as tf

from larq_tentacle.data.stream_source import SPLITS, StreamSource
from larq_tentacle.utils import validation

PREFIX = "tfds:"
# Validation (and, with train only, test) splits are tenths of the training split.
PARTS = 10
_NAME = re.compile(
    r"(?P<name>[a-z][a-z0-9_]*(?:/[A-Za-z0-9_.+-]+)?)(?::(?P<version>\d+\.\d+\.\d+))?"
)
_EXAMPLE = "tfds:mnist, tfds:mnist:3.0.1 or tfds:cifar10_corrupted/brightness_1"
_FOLDER_FIX = "or put the images in one folder per class and pass --dataset=folder:PATH"


def parse_tfds_name(text) -> Tuple[str, Optional[str]]:
    """("NAME" or "NAME/CONFIG", "X.Y.Z" or None) of "tfds:NAME[/CONFIG][:X.Y.Z]"."""
    match = None
    if isinstance(text, str) and text.startswith(PREFIX):
        match = _NAME.fullmatch(text[len(PREFIX) :])
    if match is None:
        raise ValueError(
            f"Bad tfds dataset {text!r}: expected tfds:NAME, tfds:NAME:VERSION or "
            f"tfds:NAME/CONFIG[:VERSION] with a lower-case tfds name and a version X.Y.Z. "
            f"Fix: write it like {_EXAMPLE}."
        )
    return match["name"], match["version"]


def plan_splits(num_examples: Dict[str, int], *, seed: int = 0) -> Dict[str, Tuple[str, int]]:
    """The tfds split string and size of train, validation and test.

    `num_examples` maps the dataset's split names to their sizes. Without a validation
    split, validation is tenth number `seed % 10` of train (`train[a:b]`) and train the
    rest (`train[:a]+train[b:]`); without a test split, test is the dataset's validation
    split or, with train only, train's last tenth, which never depends on `seed` (runs
    with different seeds are scored on the same images); validation is then tenth number
    `seed % 9` of the other nine, so train/validation/test are 80/10/10 %.

    Why contiguous tenths: tfds writes every split in an order shuffled by hashed example
    keys (unless the dataset sets `disable_shuffling`), so a contiguous slice is a random
    sample, and reading it reads only the files it spans; nothing is loaded into memory
    or read twice to hold it out. The tenths are absolute indices, so the sizes are exact;
    seeds 0..9 give ten disjoint validation tenths (seed and seed + 10 the same one).
    """
    seed = validation.positive_int("seed", seed, minimum=0)
    if "train" not in num_examples:
        raise ValueError(
            f"The dataset has no 'train' split, only {sorted(num_examples)}. "
            f"Fix: choose a tfds dataset with a train split, {_FOLDER_FIX}."
        )
    total = num_examples["train"]
    if "validation" in num_examples and "test" in num_examples:
        return {split: (split, num_examples[split]) for split in SPLITS}
    if total < PARTS:
        raise ValueError(
            f"The 'train' split has {total} examples; holding out a validation tenth needs "
            f"at least {PARTS}. Fix: choose a dataset with more training examples."
        )
    bounds = [total * part // PARTS for part in range(PARTS + 1)]
    end = total
    plan = {}
    if "test" in num_examples:
        plan["test"] = ("test", num_examples["test"])
    elif "validation" in num_examples:
        plan["test"] = ("validation", num_examples["validation"])
    else:
        end = bounds[PARTS - 1]
        plan["test"] = (f"train[{end}:{total}]", total - end)
    tenth = seed % (PARTS if end == total else PARTS - 1)
    start, stop = bounds[tenth], bounds[tenth + 1]
    plan["validation"] = (f"train[{start}:{stop}]", stop - start)
    pieces = [f"train[{a}:{b}]" for a, b in ((0, start), (stop, end)) if b > a]
    plan["train"] = ("+".join(pieces), end - (stop - start))
    return {split: plan[split] for split in SPLITS}


def open_tfds(text, *, data_dir=None, seed: int = 0) -> StreamSource:
    """The tfds dataset `text` ("tfds:NAME[:VERSION]") as a `StreamSource`.

    Prepares it into `data_dir` (tfds' default folder if None) when it is not there yet,
    which needs a network; offline that is one FileNotFoundError saying how to prepare it
    elsewhere (after tfds' download retries: about 3.5 minutes without a network). Images
    decode to 1 channel if the image feature is grey, else 3 (RGBA drops alpha; an
    unknown channel count decodes to RGB).
    """
    name, version = parse_tfds_name(text)
    seed = validation.positive_int("seed", seed, minimum=0)
    data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir is not None else None
    builder = _builder(name, version, data_dir)
    # Features are known before preparing: nothing is downloaded for a dataset we refuse.
    image_key, label_key, notes = _feature_keys(builder, name)
    _prepare(builder, name)
    channels = _channels(builder.info.features[image_key])
    plan = plan_splits(
        {split: info.num_examples for split, info in builder.info.splits.items()}, seed=seed
    )
    if plan["test"][0] != "test":
        notes.append(f"tfds:{name} has no test split: test is {plan['test'][0]}.")
    if plan["validation"][0] != "validation":
        notes.append(
            f"tfds:{name} has no validation split: validation is {plan['validation'][0]} "
            f"(chosen by seed {seed})."
        )
        if builder.info.disable_shuffling:
            notes.append(
                f"tfds:{name} is stored unshuffled: the held-out tenths are contiguous blocks "
                f"in its stored order, which may not be random samples."
            )
    return StreamSource(
        name=f"{PREFIX}{name}:{builder.version}",
        class_names=list(builder.info.features[label_key].names),
        channels=channels,
        sizes={split: size for split, (_, size) in plan.items()},
        images=_reader(
            builder, {s: spec for s, (spec, _) in plan.items()}, image_key, label_key, channels
        ),
        augment="crop",
        notes=notes,
    )


def _builder(name: str, version: Optional[str], data_dir):
    import tensorflow_datasets as tfds

    full = f"{name}:{version}" if version else name
    try:
        return tfds.builder(full, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        raise ValueError(_unknown_name(name, known)) from None
    except (AssertionError, ValueError) as error:
        raise ValueError(_bad_variant(name, full, error)) from None


def _bad_variant(name: str, full: str, error: Exception) -> str:
    """The message for a version or config the dataset does not have."""
    import tensorflow_datasets as tfds

    # tfds says "Failed to construct dataset ..., builder_kwargs "{...}": <the reason>.
    # Here are N BuilderConfigs whose name closely match:" and lists them on later lines.
    reason = str(error).splitlines()[0].split('}": ', 1)[-1].split(" Here are ")[0].strip()
    base, _, config = name.partition("/")
    try:
        configs = [c.name for c in tfds.builder_cls(base).BUILDER_CONFIGS or []]
    except tfds.core.DatasetNotFoundError:  # read from files only, without its code
        configs = []
    listed = ""
    if configs and config not in configs:
        close = difflib.get_close_matches(config, configs, n=5, cutoff=0.0)
        listed = f" Its configs include {', '.join(close)} ({len(configs)} in all)."
    return (
        f"Cannot open tfds:{full}: {reason}{listed} Fix: use a config and version it has, "
        f"or drop the version to use the newest."
    )


def _unknown_name(name: str, known) -> str:
    base = name.split("/")[0]
    close = difflib.get_close_matches(base, known, n=3, cutoff=0.6)
    did_you_mean = f"; did you mean {', '.join(close)}?" if close else "."
    return (
        f"Unknown tfds dataset {base!r}{did_you_mean} Fix: pass --dataset=tfds:NAME with a "
        f"name from `tfds.list_builders()` (https://www.tensorflow.org/datasets/catalog), "
        f"{_FOLDER_FIX}."
    )


def _prepare(builder, name: str) -> None:
    import tensorflow_datasets as tfds

    if builder.is_prepared():
        return
    try:
        builder.download_and_prepare()
    except (OSError, tf.errors.OpError, tfds.download.DownloadError) as error:
        # Not downloadable here (no network, a server error). Anything else, e.g. an
        # ImportError of the builder's own dependencies, is not fixed by --data_dir.
        raise _not_here(builder, name, error) from error
    except AssertionError as error:
        if not builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
            raise
        # "Manual directory <path> does not exist or is empty. Create it and ..."
        reason = str(error).splitlines()[0].split(". ")[0]
        raise FileNotFoundError(
            f"tfds:{name} needs files you download yourself: {reason}. Fix: put them there as "
            f"https://www.tensorflow.org/datasets/catalog/{name.split('/')[0]} says, or pass "
            f"--data_dir=DIR with the dataset already prepared in DIR."
        ) from error


def _not_here(builder, name: str, error: Exception) -> FileNotFoundError:
    """The one-line error for a dataset neither in the data dir nor downloadable."""
    root = os.fspath(builder.data_dir_root)
    full = f"{name}:{builder.version}"
    on_disk = _versions_on_disk(builder)
    other = (
        f" (this folder has version {', '.join(on_disk)}: --dataset=tfds:{name}:{on_disk[-1]})"
        if on_disk
        else ""
    )
    first_line = str(error).splitlines()[0] if str(error) else ""
    return FileNotFoundError(
        f"Could not prepare the tensorflow-datasets dataset tfds:{full} in {root!r}"
        f"{other} ({type(error).__name__}: {first_line}). Fix: on a machine with internet "
        f'run `python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{full}', data_dir='{root}').download_and_prepare()\"`, copy that "
        f"folder here and pass --data_dir={root}."
    )


def _versions_on_disk(builder):
    """The prepared versions next to the builder's (e.g. copied from elsewhere), oldest first."""
    folder = os.path.dirname(os.fspath(builder.data_dir))
    if not os.path.isdir(folder):
        return []
    versions = [
        version
        for version in os.listdir(folder)
        if re.fullmatch(r"\d+\.\d+\.\d+", version)
        and os.path.isfile(os.path.join(folder, version, "dataset_info.json"))
    ]
    return sorted(versions, key=lambda version: tuple(map(int, version.split("."))))


def _feature_keys(builder, name: str):
    """(image key, label key, notes): "image"/"label" if they have the right types, else
    the first feature of type `Image`/`ClassLabel`."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    notes = []
    found = {}
    for kind, preferred, feature_type in (
        ("image", "image", tfds.features.Image),
        ("label", "label", tfds.features.ClassLabel),
    ):
        keys = [key for key, feature in features.items() if isinstance(feature, feature_type)]
        if keys:
            found[kind] = preferred if preferred in keys else keys[0]
            if len(keys) > 1:
                notes.append(f"tfds:{name}: {kind} feature {found[kind]!r} of {keys}.")
    missing = [kind for kind in ("image", "label") if kind not in found]
    if missing:
        listing = ", ".join(f"{key}: {type(f).__name__}" for key, f in features.items())
        raise ValueError(
            f"tfds:{name} has no {' and no '.join(f'{k} feature' for k in missing)} "
            f"(needs a tfds.features.Image and a tfds.features.ClassLabel; it has {listing}). "
            f"Fix: choose an image-classification dataset, {_FOLDER_FIX}."
        )
    image = features[found["image"]]
    if image.tf_dtype != tf.uint8:
        raise ValueError(
            f"tfds:{name}: image feature {found['image']!r} holds {image.tf_dtype.name} pixels, "
            f"not uint8. Fix: choose a dataset with 8-bit images, {_FOLDER_FIX}."
        )
    return found["image"], found["label"], notes


def _channels(image_feature) -> int:
    """1 for grey images, else 3: RGBA drops alpha, unknown channels decode to RGB."""
    return 1 if image_feature.shape[-1] == 1 else 3


def _reader(builder, specs: Dict[str, str], image_key: str, label_key: str, channels: int):
    def images(split: str = "train", shuffle_seed: Optional[int] = None) -> tf.data.Dataset:
        import tensorflow_datasets as tfds

        split = validation.choice("split", split, SPLITS)
        read_config = tfds.ReadConfig(
            shuffle_seed=shuffle_seed,
            shuffle_reshuffle_each_iteration=True,
            # The pipeline caches within its memory budget; tfds would cache small
            # datasets whole.
            try_autocache=False,
        )
        dataset = builder.as_dataset(
            split=specs[split],
            shuffle_files=shuffle_seed is not None,
            read_config=read_config,
            # Decoded below, in parallel, straight to `channels`.
            decoders={image_key: tfds.decode.SkipDecoding()},
        )

        def decode(example):
            image = tf.io.decode_image(
                example[image_key], channels=channels, expand_animations=False
            )
            return image, tf.cast(example[label_key], tf.int64)

        return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return images
