"""Data: digits splits, the preprocessing contract, pipelines, FER2013 CSV parsing, tfds."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers import loaded_app, run_main
from larq_tentacle.data import pipeline as data
from larq_tentacle.data import sources

FER_HEADER = "emotion,pixels,Usage\n"


def fer_row(label=0, usage="Training", pixels=None, value=7):
    pixels = " ".join([str(value)] * 2304) if pixels is None else pixels
    return f"{label},{pixels},{usage}\n"


def write_fer(path, rows, header=FER_HEADER):
    path.write_text(header + "".join(rows))
    return path


@pytest.fixture(scope="module")
def digits():
    return data.load_arrays("digits")


def test_digits_split_sizes_shapes_and_normalization(digits):
    assert digits.sizes() == {"train": 1149, "validation": 288, "test": 360}
    assert sum(digits.sizes().values()) == 1797
    assert digits.x_train.shape == (1149, 8, 8, 1) and digits.x_train.dtype == np.float32
    assert digits.x_test.shape == (360, 8, 8, 1)
    assert digits.num_classes == 10 and digits.class_names == [str(i) for i in range(10)]
    # stratified: every class in every split, in roughly its share
    for labels in (digits.y_train, digits.y_val, digits.y_test):
        counts = np.bincount(labels, minlength=10)
        assert counts.min() > 0.7 * counts.mean()
    assert abs(float(digits.x_train.mean())) < 1e-3
    assert abs(float(digits.x_train.std()) - 1.0) < 1e-2


def test_digits_test_split_does_not_depend_on_seed(digits):
    first, other = sources.load_raw("digits", seed=0), sources.load_raw("digits", seed=1)
    np.testing.assert_array_equal(other.x_test, first.x_test)
    np.testing.assert_array_equal(other.y_test, digits.y_test)
    assert not np.array_equal(other.y_val, first.y_val)  # the seed picks the validation hold-out


def test_resize_and_grey_to_rgb_follow_the_preprocessing_contract(digits):
    arrays = data.load_arrays("digits", input_shape=(16, 16, 3))
    assert arrays.x_train.shape == (1149, 16, 16, 3)
    np.testing.assert_array_equal(arrays.x_train[..., 0], arrays.x_train[..., 2])
    pre = arrays.preprocessing
    assert pre["grey_to_rgb"] is True and pre["input_shape"] == [16, 16, 3]
    assert set(pre) == {
        "dataset", "input_shape", "pixel_scale", "mean", "std", "resize", "grey_to_rgb",
        "class_names",
    }
    assert len(pre["mean"]) == len(pre["std"]) == 3
    json.dumps(pre)  # it goes to preprocessing.json
    # A raw uint8 image, put through the documented steps, gives exactly the model input.
    raw = sources.load_raw("digits")
    np.testing.assert_allclose(data.preprocess_images(raw.x_test, pre), arrays.x_test, atol=1e-5)
    by_hand = tf.image.resize(
        raw.x_test[:4].astype(np.float32), (16, 16), method="bilinear"
    ).numpy()
    by_hand = (np.repeat(by_hand, 3, axis=-1) / pre["pixel_scale"] - pre["mean"]) / pre["std"]
    np.testing.assert_allclose(by_hand, arrays.x_test[:4], atol=1e-5)


def test_fit_input_shape_keeps_colour_and_repeats_grey():
    assert data.fit_input_shape("cifar10", (48, 48, 1)) == (48, 48, 3)  # fernet on cifar
    assert data.fit_input_shape("digits", (32, 32, 3)) == (32, 32, 3)  # nin on digits
    assert data.fit_input_shape("digits", (48, 48, 1), input_size=16) == (16, 16, 1)
    with pytest.raises(ValueError, match="dataset"):
        data.fit_input_shape("mnist", (32, 32, 3))


def test_rgb_data_refuses_a_grey_input_shape(monkeypatch):
    raw = sources.RawSplits(
        *[np.zeros((4, 8, 8, 3), np.uint8), np.arange(4)] * 3, ["a", "b", "c", "d"]
    )
    monkeypatch.setattr(data, "load_raw", lambda name, **kwargs: raw)
    with pytest.raises(ValueError, match="RGB.*3\\)"):
        data.load_arrays("cifar10", input_shape=(8, 8, 1))


def _epoch(dataset):
    return np.concatenate([y.numpy() for _, y in dataset])


def test_make_dataset_shuffles_only_when_training(digits):
    x, y = digits.x_val, digits.y_val
    evaluation = data.make_dataset(x, y, batch_size=50, training=False)
    np.testing.assert_array_equal(_epoch(evaluation), y)
    assert [len(b) for _, b in evaluation] == [50] * 5 + [38]
    training = data.make_dataset(x, y, batch_size=50, training=True, seed=3)
    first, second = _epoch(training), _epoch(training)
    assert sorted(first) == sorted(y) and not np.array_equal(first, y)
    assert not np.array_equal(first, second)  # reshuffled every epoch
    again = data.make_dataset(x, y, batch_size=50, training=True, seed=3)
    np.testing.assert_array_equal(_epoch(again), first)


def test_augmentation_keeps_shapes_and_moves_pixels(digits):
    x, y = digits.x_val[:64], digits.y_val[:64]
    for augment in ("crop", "crop_flip", True):
        dataset = data.make_dataset(x, y, batch_size=64, training=True, seed=0, augment=augment)
        images, labels = next(iter(dataset))
        assert images.shape == x.shape
        unchanged = sum(bool((x == image).all(axis=(1, 2, 3)).any()) for image in images.numpy())
        assert unchanged < 32, f"{augment}: most images should move, {unchanged}/64 did not"
    with pytest.raises(ValueError, match="augment"):
        data.make_dataset(x, y, batch_size=8, training=True, augment="rotate")


def test_sample_weight_travels_with_its_example(digits):
    x, y = digits.x_val[:40], digits.y_val[:40]
    weights = y.astype(np.float32) * 10
    dataset = data.make_dataset(x, y, batch_size=16, training=True, seed=1, sample_weight=weights)
    for _, labels, batch_weights in dataset:
        np.testing.assert_array_equal(batch_weights.numpy(), labels.numpy() * 10)
    with pytest.raises(ValueError, match="sample_weight"):
        data.make_dataset(x, y, batch_size=16, training=True, sample_weight=weights[:3])


def test_load_dataset_bundle(digits):
    bundle = data.load_dataset("digits", input_shape=(8, 8, 1), batch_size=100)
    assert bundle.num_classes == 10 and bundle.arrays.sizes() == digits.sizes()
    images, labels = next(iter(bundle.test))
    assert images.shape == (100, 8, 8, 1) and labels.dtype == tf.int32
    with pytest.raises(ValueError, match="batch_size"):
        data.load_dataset("digits", input_shape=(8, 8, 1), batch_size=0)


# --- FER2013 ---------------------------------------------------------------------------


def test_fer2013_good_file(tmp_path):
    rows = [fer_row(i % 7, "Training", value=i) for i in range(5)]
    rows += [fer_row(3, "PublicTest"), fer_row(6, "PublicTest"), fer_row(1, "PrivateTest")]
    path = write_fer(tmp_path / "fer2013.csv", rows)
    raw = sources.read_fer2013(path)
    assert raw.x_train.shape == (5, 48, 48, 1) and raw.x_train.dtype == np.uint8
    assert list(raw.y_train) == [0, 1, 2, 3, 4]
    assert list(raw.y_val) == [3, 6] and list(raw.y_test) == [1]
    assert raw.x_train[4].min() == raw.x_train[4].max() == 4
    assert raw.class_names[3] == "happy"
    arrays = data.load_arrays("fer2013", data_dir=str(tmp_path), input_shape=(16, 16, 1))
    assert arrays.x_val.shape == (2, 16, 16, 1) and arrays.num_classes == 7
    assert sources.find_fer2013(str(path)) == str(path)


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (fer_row(pixels="1 2 3"), "expected 2304 pixels.*got 3"),
        (fer_row(pixels=" ".join(["5"] * 2303 + ["x"])), "pixel 'x' is not an integer"),
        (fer_row(pixels=" ".join(["5"] * 2303 + ["2.5"])), "pixel '2.5' is not an integer"),
        (fer_row(pixels=" ".join(["5"] * 2303 + ["256"])), "0..255"),
        (fer_row(usage="Validation"), "unknown Usage 'Validation'"),
        (fer_row(label=7), "bad label '7'"),
        (fer_row(label="happy"), "bad label 'happy'"),
        ("0,1 2\n", "expected 3 fields"),
    ],
)
def test_fer2013_malformed_row_names_file_and_line(tmp_path, bad_row, message):
    rows = [fer_row(0, "Training"), fer_row(1, "PublicTest"), bad_row, fer_row(2, "PrivateTest")]
    path = write_fer(tmp_path / "fer2013.csv", rows)
    with pytest.raises(ValueError, match=message) as error:
        sources.read_fer2013(path)
    assert f"{path}, line 4" in str(error.value)


def test_fer2013_bad_header_and_empty_split(tmp_path):
    path = write_fer(tmp_path / "a.csv", [fer_row()], header="label,pixels,usage\n")
    with pytest.raises(ValueError, match="line 1: expected the header"):
        sources.read_fer2013(path)
    path = write_fer(tmp_path / "b.csv", [fer_row(0, "Training"), fer_row(1, "PublicTest")])
    with pytest.raises(ValueError, match="no rows with Usage 'PrivateTest'"):
        sources.read_fer2013(path)


def test_fer2013_missing_file_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        data.load_arrays("fer2013", data_dir=str(tmp_path))
    text = str(error.value)
    assert os.path.join(str(tmp_path), "fer2013.csv") in text and "Kaggle" in text


# --- tensorflow-datasets ---------------------------------------------------------------


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_under_mock_data(name, classes):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20):
        arrays = data.load_arrays(name, input_shape=(16, 16, 3))
    assert arrays.sizes() == {"train": 18, "validation": 2, "test": 20}
    assert arrays.x_train.shape == (18, 16, 16, 3) and arrays.num_classes == classes
    assert arrays.y_train.max() < classes and arrays.preprocessing["grey_to_rgb"] is False


def test_missing_tfds_data_explains_the_fix(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(FileNotFoundError, match="cifar10.*--data_dir"):
        data.load_arrays("cifar10", data_dir=str(tmp_path))


def test_a_tfds_import_error_is_not_called_missing_data(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    def broken(*args, **kwargs):
        raise ImportError("No module named 'importlib_resources'")

    monkeypatch.setattr(tfds, "load", broken)
    with pytest.raises(ImportError, match="importlib_resources"):
        data.load_arrays("cifar10", data_dir=str(tmp_path))



@pytest.fixture
def unreachable_cifar_host(monkeypatch):
    """tfds' real builder and downloader, with no network even on a machine with internet:
    every download goes to a closed port on this machine, without tfds' 10 retries
    (3.5 minutes of backoff)."""
    from tensorflow_datasets.core.download import downloader

    real_download = downloader._Downloader._sync_download

    def unreachable(self, url, *args, **kwargs):
        local = "http://127.0.0.1:1/" + url.rsplit("/", 1)[-1]
        return real_download(self, local, *args, **kwargs)

    monkeypatch.setattr(downloader._Downloader, "_sync_download", unreachable)
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)


def test_cifar10_without_network_says_download_elsewhere(unreachable_cifar_host, tmp_path):
    """The download fails with a network error (not an ImportError of the builder, e.g. a
    missing importlib_resources) and the error says where to put the data."""
    import tensorflow_datasets as tfds

    assert tfds.builder("cifar10", data_dir=str(tmp_path)).info.name == "cifar10"
    with pytest.raises(FileNotFoundError, match="cifar10.*ConnectionError.*--data_dir") as error:
        data.load_arrays("cifar10", data_dir=str(tmp_path))
    assert "127.0.0.1" in str(error.value) and "tfds.load('cifar10'" in str(error.value)


def test_train_app_without_network_ends_in_one_line(unreachable_cifar_host, capsys, tmp_path):
    app = loaded_app("train")
    try:
        argv = ["--model=nin", "--dataset=cifar10", "--epochs=1", f"--data_dir={tmp_path}"]
        code = run_main(next(app), argv + [f"--workdir={tmp_path / 'run'}"], program="train.py")
    finally:
        app.close()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert error.startswith("train.py: error: Could not load the tensorflow-datasets dataset")
    assert "ConnectionError" in error and f"--data_dir={tmp_path}" in error
