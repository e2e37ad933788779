"""Your own images through the apps: a folder of PNGs trains, reports its class names,
exports and predicts with them; bad folders fail with one line and write nothing; a
folder run killed with -9 resumes (tests/test_train_app.py covers the kill for digits).
"""

import json
import os
import subprocess
import sys

import pytest

from helpers import loaded_app, run_main, write_digits_folder
from larq_tentacle.utils.run_folder import RunFolder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["digit_0", "digit_1", "digit_2"]


@pytest.fixture(scope="module")
def app():
    yield from loaded_app("train")


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    return write_digits_folder(tmp_path_factory.mktemp("data") / "digits3")


def _tiny(folder, workdir, *extra):
    return [
        "--model=nin", f"--dataset=folder:{folder}", "--input_size=8", "--tentacles=2",
        "--epochs=1", "--batch_size=16", f"--workdir={workdir}", "--verbose=0", *extra,
    ]


def test_folder_trains_and_reports_its_class_names(app, digits_folder, tmp_path, capsys):
    code = run_main(app, _tiny(digits_folder, tmp_path / "run"), program="train.py")
    assert code == 0, capsys.readouterr().err
    run = RunFolder(tmp_path / "run")
    report = run.read_json(run.report)
    assert report["class_names"] == CLASSES
    assert report["dataset"] == f"folder:{digits_folder}"
    assert sum(report["split_sizes"].values()) == 120
    preprocessing = run.read_json(run.preprocessing)
    assert preprocessing["class_names"] == CLASSES
    # Grey PNGs, repeated to 3 channels for NiN's RGB input.
    assert preprocessing["input_shape"] == [8, 8, 3] and preprocessing["grey_to_rgb"]


def _make_bad(kind, root):
    root = os.fspath(root)
    if kind == "missing":
        return os.path.join(root, "nowhere")
    if kind == "no_classes":
        os.makedirs(root, exist_ok=True)
        open(os.path.join(root, "a.png"), "wb").close()
        return root
    write_digits_folder(root, classes=(0,) if kind == "one_class" else (0, 1), per_class=6)
    if kind == "empty_class":
        os.makedirs(os.path.join(root, "digit_7"))
    if kind == "corrupt":
        with open(os.path.join(root, "digit_1", "000.png"), "r+b") as file:
            file.truncate(40)
    return root


@pytest.mark.parametrize(
    "kind, words",
    [
        ("missing", ["nowhere"]),
        ("no_classes", ["no class folders", "PATH/<class>/<image>.png"]),
        ("empty_class", ["digit_7"]),
        ("one_class", ["class"]),
        ("corrupt", ["000.png", "--skip_bad_images"]),
    ],
)
def test_bad_folders_fail_with_one_line_and_write_nothing(app, capsys, tmp_path, kind, words):
    folder = _make_bad(kind, tmp_path / "data")
    workdir = tmp_path / "run"
    code = run_main(app, _tiny(folder, workdir), program="train.py")
    error = capsys.readouterr().err.strip()
    assert code == 2, error
    assert error.startswith("train.py: error: ") and "\n" not in error
    assert "Fix" in error
    for word in words:
        assert word in error
    assert not workdir.exists(), "a refused run must not write anything"


def test_skip_bad_images_trains_and_counts_them(app, capsys, tmp_path):
    folder = _make_bad("corrupt", tmp_path / "data")
    code = run_main(
        app, _tiny(folder, tmp_path / "run", "--skip_bad_images"), program="train.py"
    )
    assert code == 0, capsys.readouterr().err
    run = RunFolder(tmp_path / "run")
    report = run.read_json(run.report)
    assert sum(report["split_sizes"].values()) == 11
    assert any("1" in note and "skip" in note for note in report["data_notes"])


@pytest.mark.slow
def test_folder_to_verified_tflite_to_predict_prints_class_names(digits_folder, tmp_path):
    """The README's "Your own images" commands, each in its own process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    workdir = tmp_path / "run"

    def run(app_name, *argv):
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "apps", f"{app_name}.py"), *argv],
            capture_output=True, text=True, env=env, timeout=900,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    # Trained long enough that its binary activations are not stuck at the BatchNorms'
    # initial statistics (the export then judges sign ties on the folder's real images).
    run("train", *_tiny(digits_folder, workdir)[:-1], "--epochs=15", "--learning_rate=1e-2")
    run("export", f"--workdir={workdir}")
    tflites = [name for name in os.listdir(workdir) if name.endswith(".tflite")]
    assert len(tflites) == 1
    with open(workdir / (tflites[0] + ".json")) as file:
        assert json.load(file)["class_names"] == CLASSES
    image = os.path.join(digits_folder, "digit_2", "000.png")
    output = run("predict", f"--model={workdir / tflites[0]}", "--top_k=3", image)
    assert all(name in output for name in CLASSES)
