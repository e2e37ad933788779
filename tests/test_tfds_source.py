"""`tfds:NAME[:VERSION]` sources, read through tfds' real builders: tiny datasets defined
here and prepared into a temporary folder (no network), and registered ones offline."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from helpers import loaded_app, run_main
from larq_tentacle.data import pipeline as data
from larq_tentacle.data.tfds_source import open_tfds, parse_tfds_name, plan_splits
from larq_tentacle.utils.run_folder import RunFolder

CLASSES = ["circle", "square", "star"]
# The first index of each split's examples; an example's index is its first pixel.
OFFSETS = {"train": 0, "validation": 100, "test": 200}


def pixels(index: int, shape) -> np.ndarray:
    """The generated image of example `index`: its first pixel is `index`."""
    return ((index + 3 * np.arange(np.prod(shape))) % 256).astype(np.uint8).reshape(shape)


class _Tiny(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Examples `OFFSETS[split] + i` with label `index % 3`."""

    VERSION = tfds.core.Version("1.2.0")
    SHAPE = (10, 12, 1)
    SIZES = {"train": 40, "test": 12}
    KEYS = ("image", "label")
    CLASS_LABEL = True

    def _info(self):
        image_key, label_key = self.KEYS
        label = tfds.features.ClassLabel(names=CLASSES)
        if not self.CLASS_LABEL:
            label = tfds.features.Scalar(np.int64)
        features = {image_key: tfds.features.Image(shape=self.SHAPE), label_key: label}
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.SIZES}

    def _generate_examples(self, split):
        image_key, label_key = self.KEYS
        for index in range(OFFSETS[split], OFFSETS[split] + self.SIZES[split]):
            yield index, {image_key: pixels(index, self.SHAPE), label_key: index % 3}


class LtTinyTrainTest(_Tiny):
    pass


class LtTinyThreeSplits(_Tiny):
    VERSION = tfds.core.Version("0.3.0")
    SHAPE = (8, 8, 3)
    SIZES = {"train": 20, "validation": 6, "test": 5}


class LtTinyTrainOnly(_Tiny):
    SHAPE = (8, 8, 4)
    SIZES = {"train": 30}
    KEYS = ("picture", "kind")


class LtTinyNoClassLabel(_Tiny):
    SIZES = {"train": 10}
    CLASS_LABEL = False


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The tiny datasets prepared, except LtTinyTrainOnly, which `open_tfds` prepares."""
    root = str(tmp_path_factory.mktemp("tfds"))
    # Four files, so that shuffling the files changes the order.
    config = tfds.download.DownloadConfig(num_shards=4)
    for builder in (LtTinyTrainTest, LtTinyThreeSplits, LtTinyNoClassLabel):
        builder(data_dir=root).download_and_prepare(download_config=config)
    return root


def examples(source, split, shuffle_seed=None):
    """[(index, image, label)] of a split, in the order it is read."""
    dataset = source.images(split, shuffle_seed=shuffle_seed).as_numpy_iterator()
    return [(int(image[0, 0, 0]), image, int(label)) for image, label in dataset]


def indices(source, split, shuffle_seed=None):
    return [index for index, _, _ in examples(source, split, shuffle_seed)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("tfds:mnist", ("mnist", None)),
        ("tfds:mnist:3.0.1", ("mnist", "3.0.1")),
        ("tfds:cifar10_corrupted/brightness_1", ("cifar10_corrupted/brightness_1", None)),
        ("tfds:cifar10_corrupted/brightness_1:1.0.0", ("cifar10_corrupted/brightness_1", "1.0.0")),
    ],
)
def test_parse_tfds_name(text, expected):
    assert parse_tfds_name(text) == expected


@pytest.mark.parametrize(
    "text", ["mnist", "tfds:", "tfds:mnist:3", "tfds:mnist:latest", "tfds:MNIST", "tfds:a b", None]
)
def test_bad_tfds_names_show_the_syntax(text):
    with pytest.raises(ValueError, match="Bad tfds dataset.*Fix: write it like tfds:mnist"):
        parse_tfds_name(text)


def test_train_and_test_get_a_held_out_validation_tenth(data_dir):
    source = open_tfds("tfds:lt_tiny_train_test", data_dir=data_dir)
    assert source.name == "tfds:lt_tiny_train_test:1.2.0"
    assert source.sizes == {"train": 36, "validation": 4, "test": 12}
    assert source.class_names == CLASSES and source.num_classes == 3
    assert source.channels == 1 and source.augment == "crop"
    assert source.notes == [
        "tfds:lt_tiny_train_test has no validation split: validation is train[0:4] "
        "(chosen by seed 0)."
    ]
    read = {split: examples(source, split) for split in ("train", "validation", "test")}
    assert {split: len(found) for split, found in read.items()} == source.sizes
    for found in read.values():
        for index, image, label in found:
            assert image.dtype == np.uint8 and image.shape == (10, 12, 1)
            np.testing.assert_array_equal(image, pixels(index, (10, 12, 1)))
            assert label == index % 3
    train, val = ({index for index, _, _ in read[s]} for s in ("train", "validation"))
    assert not train & val and train | val == set(range(40))
    assert {index for index, _, _ in read["test"]} == set(range(200, 212))


def test_order_is_fixed_without_a_shuffle_seed(data_dir):
    source = open_tfds("tfds:lt_tiny_train_test", data_dir=data_dir)
    dataset = source.images("train")
    first = [int(image[0, 0, 0]) for image, _ in dataset.as_numpy_iterator()]
    again = [int(image[0, 0, 0]) for image, _ in dataset.as_numpy_iterator()]
    reopened = open_tfds("tfds:lt_tiny_train_test", data_dir=data_dir)
    assert first == again == indices(reopened, "train")


def test_a_shuffle_seed_shuffles_the_files_reproducibly(data_dir):
    source = open_tfds("tfds:lt_tiny_train_test", data_dir=data_dir)
    fixed = indices(source, "train")
    shuffled = indices(source, "train", shuffle_seed=1)
    assert shuffled != fixed and sorted(shuffled) == sorted(fixed)
    assert indices(source, "train", shuffle_seed=1) == shuffled
    dataset = source.images("train", shuffle_seed=1)
    epochs = [[int(image[0, 0, 0]) for image, _ in dataset] for _ in range(2)]
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])


def test_the_hold_out_depends_on_the_seed_only(data_dir):
    def held_out(seed, shuffle_seed=None):
        source = open_tfds("tfds:lt_tiny_train_test", data_dir=data_dir, seed=seed)
        return set(indices(source, "validation", shuffle_seed=shuffle_seed))

    assert held_out(0) == held_out(0, shuffle_seed=5) == held_out(10)
    assert held_out(1) != held_out(0) and not held_out(1) & held_out(0)


def test_three_splits_are_used_as_they_are(data_dir):
    source = open_tfds("tfds:lt_tiny_three_splits", data_dir=data_dir, seed=4)
    assert source.name == "tfds:lt_tiny_three_splits:0.3.0"
    assert source.sizes == {"train": 20, "validation": 6, "test": 5}
    assert source.channels == 3 and source.notes == []
    for split, size in source.sizes.items():
        found = examples(source, split)
        assert sorted(i for i, _, _ in found) == list(range(OFFSETS[split], OFFSETS[split] + size))
        for index, image, _ in found:
            np.testing.assert_array_equal(image, pixels(index, (8, 8, 3)))


def test_train_only_is_prepared_on_open_and_split_80_10_10_with_rgba_as_rgb(tmp_path):
    source = open_tfds("tfds:lt_tiny_train_only", data_dir=tmp_path, seed=2)
    assert source.sizes == {"train": 24, "validation": 3, "test": 3}
    assert source.channels == 3 and source.class_names == CLASSES
    assert "test is train[27:30]" in source.notes[0]
    read = {split: examples(source, split) for split in ("train", "validation", "test")}
    for index, image, label in read["test"] + read["train"]:
        np.testing.assert_array_equal(image, pixels(index, (8, 8, 4))[..., :3])
        assert label == index % 3
    sets = [{index for index, _, _ in found} for found in read.values()]
    assert set.union(*sets) == set(range(30)) and sum(map(len, sets)) == 30
    other_seed = open_tfds("tfds:lt_tiny_train_only", data_dir=tmp_path, seed=5)
    assert set(indices(other_seed, "test")) == sets[2]
    assert set(indices(other_seed, "validation")) != sets[1]


def test_plan_splits_without_a_test_split_tests_on_validation():
    plan = plan_splits({"train": 25, "validation": 7}, seed=12)
    assert plan == {
        "train": ("train[0:5]+train[7:25]", 23),
        "validation": ("train[5:7]", 2),
        "test": ("validation", 7),
    }


@pytest.mark.parametrize(
    "num_examples, match",
    [
        ({"train": 9, "test": 3}, "'train' split has 9 examples.*at least 10"),
        ({"test": 3}, "no 'train' split, only \\['test'\\]"),
    ],
)
def test_plan_splits_refuses_what_it_cannot_split(num_examples, match):
    with pytest.raises(ValueError, match=match):
        plan_splits(num_examples, seed=0)


def test_an_unknown_name_suggests_close_ones(tmp_path):
    with pytest.raises(ValueError, match="Unknown tfds dataset 'cifar1'; did you mean cifar10"):
        open_tfds("tfds:cifar1", data_dir=tmp_path)


def test_an_unknown_version_lists_the_known_ones(data_dir):
    with pytest.raises(ValueError, match="tfds:lt_tiny_train_test:9.9.9.*only: 1.2.0.*Fix"):
        open_tfds("tfds:lt_tiny_train_test:9.9.9", data_dir=data_dir)


def test_an_unknown_config_lists_close_ones(tmp_path):
    with pytest.raises(ValueError, match="BuilderConfig brightnes_1 not found.*brightness_1.*Fix"):
        open_tfds("tfds:cifar10_corrupted/brightnes_1", data_dir=tmp_path)


def test_a_text_dataset_is_refused_before_anything_is_downloaded(tmp_path):
    with pytest.raises(ValueError, match="tfds:glue/cola has no image feature.*sentence: Text"):
        open_tfds("tfds:glue/cola", data_dir=tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_manual_download_dataset_says_where_its_files_go(tmp_path):
    manual = os.path.join(str(tmp_path), "downloads", "manual")
    with pytest.raises(FileNotFoundError, match=f"download yourself.*{manual}.*imagenet2012"):
        open_tfds("tfds:imagenet2012", data_dir=tmp_path)


def test_a_dataset_without_a_class_label_lists_its_features(data_dir):
    with pytest.raises(ValueError, match="no label feature") as error:
        open_tfds("tfds:lt_tiny_no_class_label", data_dir=data_dir)
    assert "image: Image, label: Scalar" in str(error.value)
    assert "Fix:" in str(error.value) and "folder:" in str(error.value)


@pytest.fixture
def unreachable_hosts(monkeypatch):
    """tfds' real downloader, with no network even on a machine with internet: every
    download goes to a closed port on this machine, without tfds' retries."""
    from tensorflow_datasets.core.download import downloader

    real_download = downloader._Downloader._sync_download

    def unreachable(self, url, *args, **kwargs):
        return real_download(self, "http://127.0.0.1:1/" + url.rsplit("/", 1)[-1], *args, **kwargs)

    monkeypatch.setattr(downloader._Downloader, "_sync_download", unreachable)
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)


def test_a_dataset_not_on_disk_and_not_downloadable_says_how_to_get_it(unreachable_hosts, tmp_path):
    # An older version prepared elsewhere and copied here.
    old = tmp_path / "mnist" / "1.0.0"
    old.mkdir(parents=True)
    (old / "dataset_info.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError) as error:
        open_tfds("tfds:mnist", data_dir=tmp_path)
    text = str(error.value)
    assert "\n" not in text and "tfds:mnist:3.0.1" in text and "ConnectionError" in text
    assert "this folder has version 1.0.0: --dataset=tfds:mnist:1.0.0" in text
    assert "download_and_prepare()" in text and f"--data_dir={tmp_path}" in text
    assert not os.path.isdir(tmp_path / "mnist" / "3.0.1")


@pytest.fixture(scope="module")
def train_app():
    yield from loaded_app("train")


def test_train_app_trains_on_a_tfds_dataset_and_export_finds_its_test_images(
    train_app, data_dir, tmp_path, capsys
):
    workdir = tmp_path / "run"
    argv = [
        "--model=nin", "--dataset=tfds:lt_tiny_three_splits", f"--data_dir={data_dir}",
        "--input_size=8", "--epochs=1", "--batch_size=4", f"--workdir={workdir}", "--verbose=0",
    ]
    assert run_main(train_app, argv, program="train.py") == 0, capsys.readouterr().err
    run = RunFolder(workdir)
    report, record = run.read_json(run.report), run.read_json(run.preprocessing)
    assert report["class_names"] == CLASSES == record["class_names"]
    assert report["split_sizes"] == {"train": 20, "validation": 6, "test": 5}
    assert record["dataset"] == "tfds:lt_tiny_three_splits:0.3.0"
    # What export verifies on: the run's first test images, preprocessed as recorded.
    source = open_tfds(record["dataset"], data_dir=data_dir)
    raw = [image for image, _ in source.images("test").take(3).as_numpy_iterator()]
    found = data.test_images(record, 3, data_dir=data_dir)
    np.testing.assert_allclose(found, data.preprocess_images(np.stack(raw), record), atol=1e-5)
