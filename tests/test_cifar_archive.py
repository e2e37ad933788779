"""CIFAR read offline from the python-version archive: formats, locations, errors.

The archives are written here exactly as the originals: a .tar.gz of Python-2 pickles
(protocol 2, every string a Python-2 `str`) under `cifar-10-batches-py/` or
`cifar-100-python/`.
"""

import io
import os
import pickle
import pickletools
import struct
import tarfile

import numpy as np
import pytest

import larq_tentacle as lt
from larq_tentacle.data import cifar_archive

CIFAR10_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CIFAR100_NAMES = [f"fine_{i}" for i in range(100)]
PER_BATCH = 4
TEST_IMAGES = 6


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle did for CIFAR: every bytes/str is a Python-2 `str`
    (SHORT_BINSTRING/BINSTRING), numpy's reconstructor under its old module name."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str
    dispatch[str] = save_python2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode("ascii"))
        self.memoize(obj)


def python2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def rows_of(images: np.ndarray) -> np.ndarray:
    """NHWC uint8 images as CIFAR stores them: one 3072-byte channel-major row per image."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def make_cifar(name, *, seed=0, bad_label=None, bad_shape=False, drop=None):
    """(members {member name: python-2 pickle bytes}, expected arrays) of a tiny CIFAR."""
    rng = np.random.default_rng(seed)
    cifar10 = name == "cifar10"
    classes = 10 if cifar10 else 100
    if cifar10:
        batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    else:
        batches = ["train", "test"]
    members, images, labels = {}, {}, {}
    for batch in batches:
        count = TEST_IMAGES if batch.startswith("test") else PER_BATCH * (1 if cifar10 else 5)
        images[batch] = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        labels[batch] = [int(v) for v in rng.integers(0, classes, count)]
        data = rows_of(images[batch])
        if bad_shape and batch == batches[1]:
            data = data[:, :-1]
        content = {"batch_label": f"{batch} of 5", "data": data, "filenames": ["a.png"] * count}
        if cifar10:
            content["labels"] = list(labels[batch])
        else:
            content["fine_labels"] = list(labels[batch])
            content["coarse_labels"] = [99] * count  # out of the coarse range: must be unused
        if bad_label is not None and batch == batches[-1]:
            content["labels" if cifar10 else "fine_labels"][0] = bad_label
        members[batch] = python2_pickle(content)
    if cifar10:
        members["batches.meta"] = python2_pickle(
            {"num_cases_per_batch": PER_BATCH, "label_names": CIFAR10_NAMES, "num_vis": 3072}
        )
    else:
        members["meta"] = python2_pickle(
            {"fine_label_names": CIFAR100_NAMES, "coarse_label_names": ["c"] * 20}
        )
    members.pop(drop, None)
    train = [b for b in batches if not b.startswith("test")]
    expected = (
        np.concatenate([images[b] for b in train]),
        np.concatenate([labels[b] for b in train]),
        images[batches[-1]],
        np.array(labels[batches[-1]]),
        CIFAR10_NAMES if cifar10 else CIFAR100_NAMES,
    )
    return members, expected


FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def write_tar(path, name, members):
    """A .tar.gz laid out like the download: a folder entry, a readme, the pickles."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo(FOLDER[name])
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for member, data in {"readme.html": b"<html></html>", **members}.items():
            info = tarfile.TarInfo(f"{FOLDER[name]}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def write_folder(path, members):
    os.makedirs(path, exist_ok=True)
    for member, data in members.items():
        with open(os.path.join(path, member), "wb") as file:
            file.write(data)
    return str(path)


def assert_read(result, expected):
    for got, want in zip(result[:4], expected[:4]):
        np.testing.assert_array_equal(got, want)
    x_train, y_train, x_test, y_test, names = result
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (32, 32, 3)
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert x_train.flags["C_CONTIGUOUS"] and names == expected[4]


# --- the format ---------------------------------------------------------------------


def test_written_pickles_are_python2_strings():
    members, (x_train, y_train, *_) = make_cifar("cifar10")
    batch = members["data_batch_1"]
    opcodes = {op.name for op, _, _ in pickletools.genops(batch)}
    assert {"SHORT_BINSTRING", "BINSTRING", "GLOBAL", "REDUCE"} <= opcodes
    assert not opcodes & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in batch
    with pytest.raises(UnicodeDecodeError):  # raw pixel bytes are not ASCII text
        pickle.loads(batch)
    as_bytes = pickle.loads(batch, encoding="bytes")
    as_latin1 = pickle.loads(batch, encoding="latin1")
    assert b"data" in as_bytes and "data" in as_latin1
    np.testing.assert_array_equal(as_bytes[b"data"], rows_of(x_train[:PER_BATCH]))
    np.testing.assert_array_equal(as_latin1["data"], as_bytes[b"data"])
    assert as_bytes[b"labels"] == list(y_train[:PER_BATCH])


def test_rows_are_channel_major_like_the_cifar_page_says(tmp_path):
    """cifar.html: "The first 1024 entries contain the red channel values ... the first 32
    entries are the red channel values of the first row of the image"."""
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 0, 1, 0], image[0, 1, 0, 0], image[0, 0, 0, 1] = 11, 22, 33
    members, _ = make_cifar("cifar10")
    batch = pickle.loads(members["data_batch_1"], encoding="bytes")
    batch[b"data"][0] = 0
    batch[b"data"][0, [1, 32, 1024]] = [11, 22, 33]  # red (0,1), red (1,0), green (0,0)
    members["data_batch_1"] = python2_pickle(batch)
    folder = write_folder(tmp_path / "cifar-10-batches-py", members)
    x_train = cifar_archive.read_archive(folder, "cifar10")[0]
    np.testing.assert_array_equal(x_train[0], image[0])


# --- reading ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_reads_the_tar_gz_without_extracting(tmp_path, name):
    members, expected = make_cifar(name)
    archive = write_tar(tmp_path / cifar_archive.ARCHIVE_FILES[name], name, members)
    assert_read(cifar_archive.read_archive(archive, name), expected)
    assert sorted(os.listdir(tmp_path)) == [cifar_archive.ARCHIVE_FILES[name]]
    if name == "cifar100":  # the fine labels, not the coarse ones
        assert expected[1].max() > 19 or expected[3].max() > 19


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_reads_the_extracted_folder(tmp_path, name):
    members, expected = make_cifar(name)
    folder = write_folder(tmp_path / FOLDER[name], members)
    assert_read(cifar_archive.read_archive(folder, name), expected)


# --- finding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, layout, data_dir",
    [
        ("cifar10", "cifar-10-python.tar.gz", "."),
        ("cifar10", "cifar-10-python.tar.gz", "cifar-10-python.tar.gz"),  # the file itself
        ("cifar10", "cifar-10-batches-py/", "."),
        ("cifar10", "cifar-10-batches-py/", "cifar-10-batches-py"),  # the folder itself
        ("cifar10", "my_cifar/", "my_cifar"),  # an extracted folder under another name
        ("cifar10", "datasets/cifar-10-batches-py.tar.gz", "."),  # tf-keras: ~/.keras
        ("cifar10", "datasets/cifar-10-batches-py.tar.gz", "datasets"),  # ~/.keras/datasets
        ("cifar10", "datasets/cifar-10-batches-py/", "."),
        ("cifar10", "datasets/cifar-10-batches-py-target_archive", "."),  # Keras 3
        ("cifar10", "datasets/cifar-10-batches-py-target/cifar-10-batches-py/", "."),
        ("cifar100", "cifar-100-python.tar.gz", "."),
        ("cifar100", "datasets/cifar-100-python/", "datasets"),
        ("cifar100", "datasets/cifar-100-python-target_archive", "."),
    ],
)
def test_finds_the_archive_where_users_keep_it(tmp_path, name, layout, data_dir):
    members, expected = make_cifar(name)
    target = tmp_path / layout.rstrip("/")
    if layout.endswith("/"):
        write_folder(target, members)
    else:
        write_tar(target, name, members)
    found = cifar_archive.find_archive(name, str(tmp_path / data_dir))
    assert os.path.samefile(found, target)
    assert_read(cifar_archive.read_archive(found, name), expected)


def test_find_prefers_the_folder_expands_home_and_may_find_nothing(tmp_path, monkeypatch):
    members, _ = make_cifar("cifar10")
    write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar10", members)
    write_folder(tmp_path / "cifar-10-batches-py", members)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cifar_archive.find_archive("cifar10", "~") == str(tmp_path / "cifar-10-batches-py")
    assert cifar_archive.find_archive("cifar100", "~") is None  # another dataset's archive
    assert cifar_archive.find_archive("cifar10", None) is None
    assert cifar_archive.find_archive("cifar10", str(tmp_path / "nowhere")) is None
    with pytest.raises(ValueError, match="dataset.*'cifar10'"):
        cifar_archive.find_archive("cifar-10", str(tmp_path))


# --- end to end ---------------------------------------------------------------------


def _raw_pixels(images, preprocessing):
    mean, std = np.array(preprocessing["mean"]), np.array(preprocessing["std"])
    return np.round((images * std + mean) * 255.0).astype(np.uint8)


def test_load_dataset_reads_the_archive_in_data_dir(tmp_path):
    members, (x_train, y_train, x_test, y_test, _) = make_cifar("cifar10", seed=3)
    write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar10", members)
    bundle = lt.load_dataset(
        "cifar10", data_dir=str(tmp_path), input_shape=(32, 32, 3), batch_size=8
    )
    arrays = bundle.arrays
    assert bundle.class_names == CIFAR10_NAMES and bundle.num_classes == 10
    assert arrays.sizes() == {"train": 18, "validation": 2, "test": TEST_IMAGES}
    test_images = np.concatenate([images.numpy() for images, _ in bundle.test])
    np.testing.assert_array_equal(_raw_pixels(test_images, bundle.preprocessing), x_test)
    np.testing.assert_array_equal(arrays.y_test, y_test)
    # Train and validation together are the five training batches, image for label.
    held = _raw_pixels(np.concatenate([arrays.x_train, arrays.x_val]), bundle.preprocessing)
    labels = np.concatenate([arrays.y_train, arrays.y_val])
    got = {image.tobytes(): int(label) for image, label in zip(held, labels)}
    assert got == {image.tobytes(): int(label) for image, label in zip(x_train, y_train)}


def test_without_an_archive_the_offline_message_names_it(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz.*--data_dir="):
        lt.load_dataset("cifar100", data_dir=str(tmp_path), input_shape=(32, 32, 3), batch_size=8)


# --- errors -------------------------------------------------------------------------


def test_a_corrupt_truncated_or_foreign_file_is_one_clear_error(tmp_path):
    members, _ = make_cifar("cifar10")
    good = write_tar(tmp_path / "good" / "cifar-10-python.tar.gz", "cifar10", members)
    with open(good, "rb") as file:
        whole = file.read()
    cases = {
        "truncated.tar.gz": whole[: len(whole) // 2],
        "garbage.tar.gz": b"\x1f\x8b" + bytes(range(256)) * 4,
        "fer2013.csv": b"emotion,pixels,Usage\n0,1 2 3,Training\n",
    }
    for file_name, data in cases.items():
        path = tmp_path / file_name
        path.write_bytes(data)
        with pytest.raises(ValueError) as error:
            lt.load_dataset("cifar10", data_dir=str(path), input_shape=(32, 32, 3), batch_size=8)
        message = str(error.value)
        assert str(path) in message and "corrupt, truncated or not a tar" in message
        assert "Fix: download a fresh cifar-10-python.tar.gz" in message
        assert "\n" not in message


@pytest.mark.parametrize("as_folder", [False, True])
def test_a_missing_member_is_named(tmp_path, as_folder):
    members, _ = make_cifar("cifar10", drop="data_batch_3")
    if as_folder:
        path = write_folder(tmp_path / "cifar-10-batches-py", members)
        missing = "data_batch_3"
    else:
        path = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar10", members)
        missing = "cifar-10-batches-py/data_batch_3"
    with pytest.raises(FileNotFoundError, match=f"{path} has no {missing} .*Fix: download"):
        cifar_archive.read_archive(path, "cifar10")


def test_another_datasets_archive_names_what_is_missing(tmp_path):
    members, _ = make_cifar("cifar10")
    path = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar10", members)
    with pytest.raises(FileNotFoundError, match="no cifar-100-python/train .*CIFAR-100"):
        cifar_archive.read_archive(path, "cifar100")


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("cifar10", {"bad_shape": True}, r"data_batch_2: 'data' must be a uint8 array of shape "
                                         r"\(N, 3072\), got uint8 \(4, 3071\)"),
        ("cifar10", {"bad_label": 10}, r"test_batch: label 10 is out of range 0\.\.9"),
        ("cifar10", {"bad_label": -1}, r"test_batch: label -1 is out of range 0\.\.9"),
        ("cifar100", {"bad_label": 100}, r"member cifar-100-python/test: label 100 is out of "
                                         r"range 0\.\.99"),
    ],
)  # fmt: skip
def test_wrong_arrays_and_labels_name_the_member(tmp_path, name, kwargs, message):
    members, _ = make_cifar(name, **kwargs)
    path = write_tar(tmp_path / cifar_archive.ARCHIVE_FILES[name], name, members)
    with pytest.raises(ValueError, match=message + ".*Fix: download") as error:
        cifar_archive.read_archive(path, name)
    assert path in str(error.value)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return os.makedirs, (str(tmp_path / "pwned"),)

    members, _ = make_cifar("cifar10")
    members["batches.meta"] = pickle.dumps(Exploit(), protocol=2)
    path = write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar10", members)
    refused = "batches.meta is not a readable pickle.*unexpected global os"
    with pytest.raises(ValueError, match=refused):
        cifar_archive.read_archive(path, "cifar10")
    assert not (tmp_path / "pwned").exists()


def test_train_app_trains_on_the_archive_offline(tmp_path):
    """`apps/train.py --data_dir=<the folder holding the archive>` (about 10 s)."""
    import json

    from helpers import loaded_app, run_main

    members, _ = make_cifar("cifar10")
    write_tar(tmp_path / "data" / "cifar-10-python.tar.gz", "cifar10", members)
    app = loaded_app("train")
    try:
        argv = ["--model=nin", "--dataset=cifar10", "--epochs=1", "--input_size=32"]
        argv += [f"--data_dir={tmp_path / 'data'}", f"--workdir={tmp_path / 'run'}"]
        code = run_main(next(app), argv, program="train.py")
    finally:
        app.close()
    assert code == 0
    preprocessing = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert preprocessing["dataset"] == "cifar10" and preprocessing["class_names"] == CIFAR10_NAMES
