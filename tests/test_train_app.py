"""apps/train.py: bad flags fail with one clear line; a run killed with -9 resumes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import loaded_app, run_main, write_digits_folder
from larq_tentacle.training import callbacks
from larq_tentacle.utils.run_folder import RunFolder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "apps", "train.py")


@pytest.fixture(scope="module")
def app():
    yield from loaded_app("train")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model=nin", "--dataset=mnist"], ["dataset", "'mnist'", "digits", "tfds:NAME"]),
        (["--model=nin", "--dataset=tfds:cifar1"], ["'cifar1'", "cifar10", "Fix"]),
        (["--model=nin", "--dataset=folder:"], ["names no folder", "Fix"]),
        (["--model=nin", "--epochs=-3"], ["epochs", "-3"]),
        (["--model=nin", "--tentacles=0"], ["tentacles", "0"]),
        (["--model=vgg"], ["Unknown model 'vgg'", "nin"]),
        (["--dataset=digits"], ["--model is required"]),
        (["--model=nin", "--model_option=width"], ["key=value"]),
    ],
)
def test_bad_flags_print_one_line_and_exit_non_zero(app, capsys, tmp_path, argv, words):
    code = run_main(app, argv + [f"--workdir={tmp_path}"], program="train.py")
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith("train.py: error: ") and "\n" not in error
    for word in words:
        assert word in error
    assert not os.listdir(tmp_path), "a refused run must not write anything"


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("TF_CONFIG", None)
    return env


def test_bad_flag_in_a_real_process_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, APP, "--model=nin", "--tentacles=0", f"--workdir={tmp_path}"],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("train.py: error: Expected `tentacles`")


def _backed_up(backup_dir) -> bool:
    """True once Keras BackupAndRestore has written a complete checkpoint (an epoch is done)."""
    for _, _, files in os.walk(backup_dir):
        if "checkpoint" in files:
            return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "folder"])
def test_kill_9_mid_training_then_rerun_resumes_and_completes(tmp_path, dataset):
    workdir = tmp_path / "run"
    if dataset == "folder":  # a streamed dataset resumes like an in-memory one
        folder = write_digits_folder(tmp_path / "digits", classes=range(10), per_class=200)
        dataset = f"folder:{folder}"
    command = [
        sys.executable, APP, "--model=nin", f"--dataset={dataset}", "--input_size=4",
        "--tentacles=2",
        "--epochs=4", "--batch_size=16", "--verbose=2", f"--workdir={workdir}",
    ]
    history = workdir / RunFolder.HISTORY
    log = open(tmp_path / "first.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env())
    deadline = time.time() + 400
    try:
        while time.time() < deadline and process.poll() is None:
            if _backed_up(workdir / "backup"):
                break
            time.sleep(0.2)
        log_tail = (tmp_path / "first.log").read_text()[-2000:]
        assert process.poll() is None, "the run ended before it could be killed: " + log_tail
        time.sleep(0.5)  # into the next epoch
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    done_before = len(callbacks.read_history(history))
    assert 1 <= done_before < 4
    assert not (workdir / "report.json").exists()

    result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = callbacks.read_history(history)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    import json

    report = json.loads((workdir / "report.json").read_text())
    assert report["epochs_completed"] == 4
    # It continued from the last completed epoch instead of starting over.
    assert report["resumed_from_epoch"] >= done_before
    assert not [name for name in os.listdir(workdir) if ".tmp" in name]
