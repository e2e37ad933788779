"""`open_folder` (--dataset=folder:PATH) on tiny images written with Pillow."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from larq_tentacle.data.image_decoding import decode_image_file, header_is_grey, undecodable
from larq_tentacle.data.image_folder import open_folder


def _save(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, **kwargs)
    return str(path)


def _tagged(path, tag, size=(3, 2)):
    """A grey PNG whose every pixel is `tag`, so a yielded image tells which file it was."""
    return _save(path, np.full(size, tag))


def _flat(root, counts):
    """root/<class>/<n>.png for {class: count}; returns {class: [tags]} (tags unique)."""
    tags, tag = {}, 1
    for name, count in counts.items():
        tags[name] = []
        for index in range(count):
            _tagged(root / name / f"{index:03d}.png", tag)
            tags[name].append(tag)
            tag += 1
    return tags


def _tags(source, split, **kwargs):
    """The tags of the split's images, in the order `images` yields them, and their labels."""
    pairs = [(int(image[0, 0, 0]), int(label)) for image, label in source.images(split, **kwargs)]
    return [tag for tag, _ in pairs], [label for _, label in pairs]


def _truncate(path, keep=0.5):
    data = open(path, "rb").read()
    with open(path, "wb") as file:
        file.write(data[: int(len(data) * keep)])


# --- decoding -------------------------------------------------------------------------


def test_png_pixels_round_trip_exactly(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    grey = np.random.default_rng(1).integers(0, 256, (4, 6), dtype=np.uint8)
    rgb_path, grey_path = _save(tmp_path / "rgb.png", rgb), _save(tmp_path / "grey.png", grey)
    np.testing.assert_array_equal(decode_image_file(rgb_path, 3).numpy(), rgb)
    np.testing.assert_array_equal(decode_image_file(grey_path, 1).numpy()[..., 0], grey)
    np.testing.assert_array_equal(decode_image_file(grey_path, 3).numpy(), np.stack([grey] * 3, -1))


@pytest.mark.parametrize(
    "name, shape, grey",
    [
        ("grey.png", (4, 5), True),
        ("grey_alpha.png", (4, 5, 2), True),
        ("rgb.png", (4, 5, 3), False),
        ("rgba.png", (4, 5, 4), False),
        ("grey.jpg", (4, 5), True),
        ("rgb.JPEG", (4, 5, 3), False),
        ("grey.bmp", (4, 5), True),
        ("rgb.bmp", (4, 5, 3), False),
        ("rgb.gif", (4, 5, 3), False),
    ],
)
def test_every_format_and_mode_decodes_to_1_or_3_channels(tmp_path, name, shape, grey):
    array = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    path = _save(tmp_path / name, array)
    assert header_is_grey(path) is grey
    for channels in (1, 3):
        image = decode_image_file(path, channels).numpy()
        assert image.shape == (4, 5, channels) and image.dtype == np.uint8
    colour = decode_image_file(path, 3).numpy()
    if grey:  # grey is repeated into RGB, alpha dropped
        assert (colour == colour[..., :1]).all()
    if name.endswith(".png"):  # lossless: the written grey or colour comes back exactly
        written = array if array.ndim == 2 else array[..., : 1 if grey else 3]
        expected = np.stack([written.reshape(4, 5)] * 3, -1) if grey else written
        np.testing.assert_array_equal(colour, expected)


def test_a_gif_decodes_to_its_first_frame(tmp_path):
    red, blue = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    path = str(tmp_path / "anim.gif")
    frames = [Image.fromarray(red), Image.fromarray(blue)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    np.testing.assert_array_equal(decode_image_file(path, 3).numpy(), red)


def test_the_scan_finds_truncated_files_in_parallel(tmp_path):
    paths = [_save(tmp_path / f"{i}.png", np.full((8, 8, 3), i)) for i in range(6)]
    _truncate(paths[1])
    _truncate(paths[4], keep=0.9)
    assert undecodable(paths, 3) == [1, 4]
    assert undecodable(paths[:1], 1) == []


# --- layouts and splits ---------------------------------------------------------------


def test_flat_layout_is_stratified_and_the_test_split_ignores_the_seed(tmp_path):
    tags = _flat(tmp_path, {"a": 10, "b": 5, "c": 3})
    by_seed = {seed: open_folder(tmp_path, seed=seed) for seed in (0, 1, 2)}
    source = by_seed[0]
    assert source.class_names == ["a", "b", "c"] and source.num_classes == 3
    assert source.sizes == {"train": 10, "validation": 4, "test": 4}  # a: 6-2-2, b: 3-1-1
    assert source.name == "folder:" + str(tmp_path) and source.augment == "crop"
    splits = {split: _tags(source, split) for split in ("train", "validation", "test")}
    every = sorted(tag for split_tags, _ in splits.values() for tag in split_tags)
    assert every == list(range(1, 19))  # each image in exactly one split
    for split_tags, labels in splits.values():
        for tag, label in zip(split_tags, labels):
            assert tag in tags[source.class_names[label]]
        assert sorted(set(labels)) == [0, 1, 2]  # every class in every split
    test_sets = {seed: sorted(_tags(s, "test")[0]) for seed, s in by_seed.items()}
    validation_sets = {seed: sorted(_tags(s, "validation")[0]) for seed, s in by_seed.items()}
    assert test_sets[0] == test_sets[1] == test_sets[2]
    assert len({tuple(v) for v in validation_sets.values()}) > 1
    again = open_folder(tmp_path, seed=1)
    for split in ("train", "validation", "test"):  # deterministic, order included
        assert _tags(again, split) == _tags(by_seed[1], split)


def test_tiny_classes_fill_what_they_can_and_are_noted(tmp_path):
    tags = _flat(tmp_path, {"big": 6, "one": 1, "two": 2})
    source = open_folder(tmp_path)
    train, test = set(_tags(source, "train")[0]), set(_tags(source, "test")[0])
    assert set(tags["one"]) <= train
    assert len(set(tags["two"]) & train) == 1 and len(set(tags["two"]) & test) == 1
    assert any("one (1)" in note and "two (2)" in note for note in source.notes), source.notes


def test_too_few_images_for_the_validation_split_is_an_error(tmp_path):
    _flat(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(ValueError, match="validation split.*Fix: give every class at least 3"):
        open_folder(tmp_path)


@pytest.mark.parametrize("validation_folder", ["validation", "val"])
def test_given_split_folders_are_the_splits(tmp_path, validation_folder):
    _flat(tmp_path / "train", {"cat": 3, "dog": 2})
    _flat(tmp_path / validation_folder, {"cat": 1, "dog": 1})
    _flat(tmp_path / "test", {"cat": 2, "dog": 2})
    source = open_folder(tmp_path)
    assert source.class_names == ["cat", "dog"]
    assert source.sizes == {"train": 5, "validation": 2, "test": 4}
    assert sorted(_tags(source, "test")[1]) == [0, 0, 1, 1]


def test_train_and_test_folders_hold_validation_out_of_train_by_seed(tmp_path):
    _flat(tmp_path / "train", {"cat": 10, "dog": 10})
    test_tags = _flat(tmp_path / "test", {"cat": 2, "dog": 1})
    sources = [open_folder(tmp_path, seed=seed) for seed in (0, 1, 2)]
    assert sources[0].sizes == {"train": 16, "validation": 4, "test": 3}
    for source in sources:
        assert sorted(_tags(source, "test")[0]) == sorted(test_tags["cat"] + test_tags["dog"])
        assert sorted(_tags(source, "validation")[1]) == [0, 0, 1, 1]
    assert len({tuple(sorted(_tags(s, "validation")[0])) for s in sources}) > 1


@pytest.mark.parametrize(
    "test_classes, named",
    [({"cat": 1, "cow": 1}, ["lacks the class folder(s) dog/", "cow/ that train/ lacks"]),
     ({"cat": 2}, ["lacks the class folder(s) dog/ of train/"])],
)
def test_split_folders_with_different_classes_name_the_split_and_class(
    tmp_path, test_classes, named
):
    _flat(tmp_path / "train", {"cat": 3, "dog": 3})
    _flat(tmp_path / "test", test_classes)
    with pytest.raises(ValueError) as error:
        open_folder(tmp_path)
    message = str(error.value)
    assert f"The test split {tmp_path / 'test'} " in message
    assert all(part in message for part in named) and "Fix: give every split" in message


@pytest.mark.parametrize(
    "folders, match",
    [
        (["train", "val"], "no test/ folder. Fix: add it"),
        (["train", "test", "extra"], "also extra/. Fix: move"),
        (["train", "test", "val", "validation"], "both validation/ and val/"),
    ],
)
def test_ambiguous_split_folders_are_errors(tmp_path, folders, match):
    for folder in folders:
        _flat(tmp_path / folder, {"cat": 3, "dog": 3})
    with pytest.raises(ValueError, match=match):
        open_folder(tmp_path)


# --- channels, files that are not images, hidden files --------------------------------


def test_channels_are_1_only_when_every_image_is_grey(tmp_path):
    grey = np.zeros((3, 3), np.uint8)
    for folder, name, array in [
        ("a", "x.png", grey),
        ("a", "y.jpg", grey),
        ("a", "z.png", np.zeros((3, 3, 2), np.uint8)),
        ("b", "x.bmp", grey),
        ("b", "y.png", grey),
        ("b", "z.png", grey),
    ]:
        _save(tmp_path / folder / name, array)
    assert open_folder(tmp_path).channels == 1
    image, _ = next(iter(open_folder(tmp_path).images("test")))
    assert image.shape[-1] == 1
    _save(tmp_path / "b" / "colour.png", np.zeros((5, 4, 4), np.uint8))
    source = open_folder(tmp_path)
    assert source.channels == 3
    shapes = {tuple(image.shape) for split in ("train", "validation", "test")
              for image, _ in source.images(split)}
    assert shapes == {(3, 3, 3), (5, 4, 3)}  # sizes kept, every image RGB


def test_files_that_are_not_images_and_hidden_files_are_ignored(tmp_path):
    _flat(tmp_path, {"a": 3, "b": 3})
    for name in ("a/notes.txt", "a/more.TXT", "b/labels.csv", "a/.DS_Store", "readme.md"):
        (tmp_path / name).write_text("x")
    _flat(tmp_path / ".cache", {"c": 3})  # a hidden folder is not a class
    _tagged(tmp_path / "a" / ".hidden.png", 99)
    source = open_folder(tmp_path)
    assert source.class_names == ["a", "b"]
    assert sum(source.sizes.values()) == 6
    assert "ignored 3 files that are not images (.txt: 2, .csv: 1)" in source.notes
    assert any("ignored 1 file outside the class folders" in note for note in source.notes)


def test_images_in_subfolders_of_a_class_belong_to_it(tmp_path):
    _flat(tmp_path, {"a": 3, "b": 3})
    _tagged(tmp_path / "a" / "more" / "deep.png", 50)
    source = open_folder(tmp_path)
    assert sum(source.sizes.values()) == 7


# --- bad images -----------------------------------------------------------------------


def _with_bad_images(root):
    _flat(root, {"a": 6, "b": 6})
    bad_png = root / "a" / "003.png"
    _truncate(bad_png)
    bad_jpg = _save(root / "b" / "zz.jpg", np.random.default_rng(0).integers(0, 256, (16, 16, 3)))
    _truncate(bad_jpg)
    return [os.path.join("a", "003.png"), os.path.join("b", "zz.jpg")]


def test_truncated_png_and_jpeg_raise_before_training_naming_the_files(tmp_path):
    bad = _with_bad_images(tmp_path)
    with pytest.raises(ValueError) as error:
        open_folder(tmp_path)
    message = str(error.value)
    assert message.startswith("2 image file(s) in")
    assert all(name in message for name in bad)
    assert "--skip_bad_images to skip them, or delete/repair" in message


def test_skip_bad_images_drops_and_counts_them_without_moving_the_split(tmp_path):
    bad = _with_bad_images(tmp_path)
    skipped = open_folder(tmp_path, skip_bad_images=True)
    assert sum(skipped.sizes.values()) == 11
    note = next(note for note in skipped.notes if note.startswith("skipped 2 image(s)"))
    assert all(name in note for name in bad)
    unchecked = open_folder(tmp_path, check_images=False)
    assert sum(unchecked.sizes.values()) == 13
    with pytest.raises(tf.errors.InvalidArgumentError):
        for split in ("train", "validation", "test"):
            _tags(unchecked, split)
    # The bad files were split with the rest: repairing them moves no other image.
    for tag, name in enumerate(bad, start=100):
        _tagged(tmp_path / name, tag)
    repaired = open_folder(tmp_path)
    for split in ("train", "validation", "test"):
        assert set(_tags(repaired, split)[0]) - {100, 101} == set(_tags(skipped, split)[0])


def test_many_bad_images_are_named_first_few_and_counted(tmp_path):
    _flat(tmp_path, {"a": 9, "b": 3})
    for index in range(8):
        (tmp_path / "a" / f"{index:03d}.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"^8 image file\(s\).* and 3 more \(the first: "):
        open_folder(tmp_path)


# --- errors ---------------------------------------------------------------------------


def test_a_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"No folder of images at {tmp_path}/nope.*Fix:"):
        open_folder(tmp_path / "nope")


def test_a_file_is_not_a_folder(tmp_path):
    path = _tagged(tmp_path / "x.png", 1)
    with pytest.raises(ValueError, match=f"{path} is a file, not a folder.*Fix:"):
        open_folder(path)


def test_no_class_folders_says_the_layout(tmp_path):
    _tagged(tmp_path / "x.png", 1)
    with pytest.raises(ValueError, match=r"has no class folders. Fix: .*PATH/<class>/<image>.png"):
        open_folder(tmp_path)


def test_a_class_folder_without_images_is_named(tmp_path):
    _flat(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"class folder\(s\) empty/ .* hold no images.*Fix:"):
        open_folder(tmp_path)


def test_one_class_is_not_a_classifier(tmp_path):
    _flat(tmp_path, {"only": 3})
    with pytest.raises(ValueError, match="only one class folder, only/. Fix: .*at least 2"):
        open_folder(tmp_path)


def test_bad_arguments_are_refused(tmp_path):
    _flat(tmp_path, {"a": 3, "b": 3})
    with pytest.raises(ValueError, match="seed"):
        open_folder(tmp_path, seed=-1)
    source = open_folder(tmp_path)
    with pytest.raises(ValueError, match="split"):
        source.images("training")


# --- images() -------------------------------------------------------------------------


def test_images_are_uint8_int64_pairs_shuffled_by_name_each_iteration(tmp_path):
    _flat(tmp_path, {"a": 20, "b": 20})
    source = open_folder(tmp_path)
    image, label = next(iter(source.images("train")))
    assert image.dtype == tf.uint8 and label.dtype == tf.int64 and image.shape == (3, 2, 1)
    fixed = _tags(source, "train")
    assert fixed == _tags(source, "train")
    shuffled = source.images("train", shuffle_seed=3)
    first, second = [[int(x[0, 0, 0]) for x, _ in shuffled] for _ in range(2)]
    assert first != second and sorted(first) == sorted(second) == sorted(fixed[0])
    assert first == [int(x[0, 0, 0]) for x, _ in source.images("train", shuffle_seed=3)]
