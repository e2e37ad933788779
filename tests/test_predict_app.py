"""apps/predict.py: images in, the Keras model's top-1 out, through the LCE interpreter (issue 4).

The exports come from test_deploy.py's session cache (`exported_case`), so no
extra conversion runs here.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_deploy import exported_case

from helpers import loaded_app

APP = os.path.join(os.path.dirname(__file__), os.pardir, "apps", "predict.py")


@pytest.fixture(scope="module")
def predict():
    yield from loaded_app("predict")


@pytest.fixture
def fernet3(tmp_path_factory):
    return exported_case("fernet", 3, tmp_path_factory)


@pytest.fixture
def nin1(tmp_path_factory):
    return exported_case("nin", 1, tmp_path_factory)


def _save_png(path, pixels):
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(path)
    return str(path)


def _keras_top1(case, raw):
    from larq_tentacle.data import pipeline as data

    x = data.preprocess_images(raw, case["preprocessing"])
    return case["model"](x, training=False).numpy().argmax(-1)


@pytest.mark.slow
def test_png_top1_matches_keras(predict, fernet3, tmp_path):
    raw = fernet3["raw"][-6:]
    files = [_save_png(tmp_path / f"digit{i}.png", image) for i, image in enumerate(raw)]
    results = predict.predict_files(fernet3["path"], files, top=3)
    assert [r["file"] for r in results] == files
    assert [r["top"][0]["index"] for r in results] == list(_keras_top1(fernet3, raw))
    assert all(r["top"][0]["label"] == f"digit{r['top'][0]['index']}" for r in results)
    scores = [entry["score"] for entry in results[0]["top"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_resize_and_grey_to_rgb_follow_the_training_pipeline(predict, nin1, tmp_path):
    """A 20x20 grey PNG for an 8x8 RGB model.

    Same numbers as larq_tentacle.data's pipeline (tf.image.resize).
    """
    from larq_tentacle.data import pipeline as data

    small = nin1["raw"][-4:]
    big = np.stack(
        [
            np.asarray(Image.fromarray(image.squeeze(-1)).resize((20, 20), Image.NEAREST))
            for image in small
        ]
    )[..., None]
    sidecar = predict.read_sidecar(nin1["path"])
    ours = predict.preprocess(big, sidecar)
    reference = data.preprocess_images(big, nin1["preprocessing"])
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    files = [_save_png(tmp_path / f"big{i}.png", image) for i, image in enumerate(big)]
    results = predict.predict_files(nin1["path"], files, top=1)
    assert [r["top"][0]["index"] for r in results] == list(_keras_top1(nin1, big))


@pytest.mark.slow
def test_npy_raw_batch_and_preprocessed(predict, fernet3, tmp_path):
    raw = fernet3["raw"][-5:]
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "pre.npy", fernet3["x"][-5:])
    by_raw = predict.predict_files(fernet3["path"], [str(tmp_path / "raw.npy")])
    by_pre = predict.predict_files(fernet3["path"], [str(tmp_path / "pre.npy")])
    assert [r["index"] for r in by_raw] == list(range(5))
    assert [r["top"][0]["index"] for r in by_raw] == [r["top"][0]["index"] for r in by_pre]
    assert [r["top"][0]["index"] for r in by_raw] == list(_keras_top1(fernet3, raw))


@pytest.mark.slow
def test_bad_images_and_files_name_the_problem(predict, fernet3, tmp_path):
    model = fernet3["path"]

    def error(files, match, **kwargs):
        with pytest.raises(predict.PredictError, match=match):
            predict.predict_files(kwargs.pop("model", model), files, **kwargs)

    rgb = _save_png(tmp_path / "rgb.png", np.zeros((16, 16, 3), np.uint8))
    error([rgb], r"3 channel\(s\) \(RGB\), but the model takes 1 \(grey\)")
    rgba = str(tmp_path / "rgba.png")
    Image.fromarray(np.zeros((16, 16, 4), np.uint8)).save(rgba)
    error([rgba], "RGBA")
    np.save(tmp_path / "int16.npy", np.zeros((16, 16), np.int16))
    error([str(tmp_path / "int16.npy")], "int16")
    np.save(tmp_path / "wrong.npy", np.zeros((1, 12, 12, 1), np.float32))
    error([str(tmp_path / "wrong.npy")], r"shape \(12, 12, 1\).*takes \(16, 16, 1\)")
    (tmp_path / "notes.txt").write_text("hi")
    error([str(tmp_path / "notes.txt")], "unsupported file type")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    error([str(tmp_path / "broken.png")], "not a readable image")
    error([], "No images given")
    good = _save_png(tmp_path / "ok.png", fernet3["raw"][0])
    # Model files: truncated, foreign, without sidecar.
    with open(model, "rb") as file:
        data = file.read()
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(data[: len(data) // 2])
    with open(model + ".json", "rb") as file:
        (tmp_path / "cut.tflite.json").write_bytes(file.read())
    error([good], "truncated", model=str(truncated))
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(b"not a model at all")
    (tmp_path / "foreign.tflite.json").write_text(
        json.dumps({"input_shape": [16, 16, 1], "preprocessing": "none"})
    )
    error([good], "not a TFLite flatbuffer", model=str(foreign))
    lonely = tmp_path / "lonely.tflite"
    lonely.write_bytes(data)
    error([good], "No sidecar", model=str(lonely))


@pytest.mark.slow
def test_cli_prints_top_k_and_fails_cleanly(fernet3, tmp_path):
    """The command a Raspberry Pi user runs, as a subprocess."""
    raw = fernet3["raw"][-2:]
    files = [_save_png(tmp_path / f"d{i}.png", image) for i, image in enumerate(raw)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, APP, f"--model={fernet3['path']}", "--top_k=2", "--json", *files],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["top"][0]["index"] for r in results] == list(_keras_top1(fernet3, raw))
    assert all(len(r["top"]) == 2 for r in results)
    rgb = _save_png(tmp_path / "rgb.png", np.zeros((16, 16, 3), np.uint8))
    bad = subprocess.run(
        [sys.executable, APP, f"--model={fernet3['path']}", rgb],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert bad.returncode == 2 and "channel" in bad.stderr and "Traceback" not in bad.stderr
