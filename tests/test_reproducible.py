"""Reproducible runs: deterministic ops, the CPU in the report, the FP32 learning-rate grid."""

import csv
import json
import os
import subprocess
import sys

import pytest

import larq_tentacle as lt
from larq_tentacle.training import lr_search
from larq_tentacle.training.recipe import Recipe, lr_grid_from_flag
from larq_tentacle.utils.machine import cpu_info
from larq_tentacle.utils.run_folder import RunFolder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--model=nin", "--dataset=digits", "--input_size=8", "--epochs=2", "--batch_size=64"]


def _history(workdir, column):
    with open(RunFolder(workdir).history) as file:
        return [row[column] for row in csv.DictReader(file)]


@pytest.mark.slow
def test_the_same_command_twice_gives_the_same_accuracies_and_loss_history(tmp_path):
    """Two fresh processes (run side by side, so their threads interleave differently)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    runs = [tmp_path / "first", tmp_path / "second"]
    processes = [
        subprocess.Popen(
            [sys.executable, os.path.join(REPO, "apps", "train.py"), *TINY, "--tentacles=2",
             "--seed=3", f"--workdir={run}", "--verbose=0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for run in runs
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    reports = [json.loads((run / "report.json").read_text()) for run in runs]
    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "best_val_loss",
                "tentacle_accuracies"):
        assert reports[0][key] == reports[1][key], key
    for column in ("loss", "val_loss", "accuracy"):
        first = _history(runs[0], column)
        assert len(first) == 2 and first == _history(runs[1], column), column
    assert (runs[0] / "test_predictions.csv").read_text() == (
        runs[1] / "test_predictions.csv"
    ).read_text()
    assert reports[0]["deterministic"] is True and reports[0]["deterministic_ops"] is True
    assert reports[0]["cpu"]["machine"] and "tensorflow" in reports[0]["versions"]


def test_deterministic_is_a_recipe_field_on_by_default():
    assert Recipe().deterministic is True
    assert lt.TrainConfig(model="nin").resolved().deterministic is True
    with pytest.raises(ValueError, match="deterministic"):
        lt.TrainConfig(model="nin", deterministic="yes").resolved()


def test_cpu_info_reads_the_instruction_sets(tmp_path):
    x86 = tmp_path / "cpuinfo"
    x86.write_text(
        "processor\t: 0\nmodel name\t: Test CPU @ 2GHz\nflags\t\t: fpu sse4_2 avx avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: Test CPU @ 2GHz\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
    )
    info = cpu_info(str(x86))
    assert info["model"] == "Test CPU @ 2GHz"
    assert info["isa"] == ["avx2", "fma", "avx", "sse4_2"] and info["simd"] == "avx2"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm sve\n")
    assert cpu_info(str(arm))["simd"] == "sve"
    missing = cpu_info(str(tmp_path / "absent"))
    assert missing["isa"] == [] and missing["simd"] is None and missing["logical_cpus"] >= 1


def test_lr_grid_flag_values_and_errors():
    assert lr_grid_from_flag("1e-2, 1e-3,3e-3,1e-3") == [1e-3, 3e-3, 1e-2]
    assert lr_grid_from_flag("") is None and lr_grid_from_flag(None) is None
    for bad in ("1e-3,fast", "0,1e-3", "-1e-3"):
        with pytest.raises(ValueError, match="Fix: e.g. --lr_grid=1e-3,3e-3,1e-2"):
            lr_grid_from_flag(bad)
    with pytest.raises(ValueError, match="precision='binary'.*Fix: drop --lr_grid"):
        lt.TrainConfig(model="nin", lr_grid=[1e-3, 1e-2]).resolved()
    config = lt.TrainConfig(model="nin", precision="float", lr_grid=(1e-2, 1e-3)).resolved()
    assert config.lr_grid == [1e-3, 1e-2]


def test_choose_takes_best_val_accuracy_then_lower_val_loss_then_smaller_lr():
    candidates = [
        dict(learning_rate=1e-2, val_accuracy=0.90, val_loss=0.30),
        dict(learning_rate=3e-3, val_accuracy=0.95, val_loss=0.20),
        dict(learning_rate=1e-3, val_accuracy=0.95, val_loss=0.10),
    ]
    assert lr_search.choose(candidates)["learning_rate"] == 1e-3
    candidates[2]["val_loss"] = 0.20
    assert lr_search.choose(candidates)["learning_rate"] == 1e-3
    candidates[1]["val_accuracy"] = 0.96
    assert lr_search.choose(candidates)["learning_rate"] == 3e-3
    with pytest.raises(ValueError, match="lr_grid"):
        lr_search.choose([])


@pytest.mark.slow
def test_fp32_lr_grid_trains_each_candidate_and_keeps_the_best_on_validation(tmp_path):
    config = lt.TrainConfig(model="nin", dataset="digits", input_size=8, epochs=2,
                            batch_size=64, precision="float", lr_grid=[1e-3, 1e-1])
    report = lt.train(config, tmp_path / "fp32", verbose=0)
    search = report["lr_search"]
    assert [c["learning_rate"] for c in search["candidates"]] == [1e-3, 1e-1]
    best = max(search["candidates"], key=lambda c: (c["val_accuracy"], -c["val_loss"]))
    assert report["learning_rate"] == search["learning_rate"] == best["learning_rate"]
    assert report["best_val_accuracy"] == best["val_accuracy"]
    chosen = RunFolder(lr_search.candidate_dir(tmp_path / "fp32", best["learning_rate"]))
    kept = RunFolder(tmp_path / "fp32")
    with open(chosen.history) as a, open(kept.history) as b:
        assert a.read() == b.read()
    # The run folder is a finished FP32 run: a TentacleNet starts from it as from any.
    again = lt.train(config, tmp_path / "fp32", verbose=0)
    assert again["test_accuracy"] == report["test_accuracy"]
    assert os.path.isfile(kept.test_predictions)
