"""apps/demo.py (the main job, `make demo`): train, compare, export, end to end on digits."""

import json

import pytest

from helpers import loaded_app, run_main
from larq_tentacle.deploy import tflite_file
from larq_tentacle.training.report import read_test_predictions

ROWS = ["FP32", "BNN", "TentacleNet n=2 (paper)", "TentacleNet n=2 (best)"]
RUNS = ["fp32", "bnn", "tn2", "tn2_best"]


@pytest.fixture(scope="module")
def demo():
    yield from loaded_app("demo")


@pytest.fixture(scope="module")
def finished(demo, tmp_path_factory):
    """One short demo run (5 epochs: an int8 file of a barely trained model flips top-1 on
    near-uniform outputs), read by the slow tests below."""
    import contextlib
    import io

    workdir = tmp_path_factory.mktemp("demo") / "demo"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_main(
            demo,
            [f"--workdir={workdir}", "--epochs=5", "--tentacles=2", "--lr_grid=1e-3,1e-2"],
            program="demo.py",
        )
    comparison = json.loads((workdir / "comparison.json").read_text())
    return dict(code=code, out=out.getvalue(), workdir=workdir, comparison=comparison)


def _weight_types(path, op_name):
    graph = tflite_file.read_flatbuffer(str(path))
    return [graph.tensors[op.inputs[1]].type for op in graph.operators if op.op == op_name]


@pytest.mark.slow
def test_demo_trains_four_models_and_compares_them(finished):
    out, workdir, comparison = finished["out"], finished["workdir"], finished["comparison"]
    assert finished["code"] == 0
    assert "## Model sizes" in out and "| nin | TentacleNet n=5 |" in out
    assert [row["variant"] for row in comparison["rows"]] == ROWS
    reports = {report["run"]: report for report in comparison["reports"]}
    assert list(reports) == RUNS
    fp32, bnn, paper, best = comparison["rows"]
    assert fp32["delta"] == 0.0
    for row, run in zip(comparison["rows"][1:], RUNS[1:]):
        assert row["delta"] == pytest.approx(
            100 * (reports[run]["test_accuracy"] - reports["fp32"]["test_accuracy"])
        )
    # Paper-rule sizes: the shifts of block="react" cost a few kB, FP32 far more.
    assert fp32["paper_kb"] > best["paper_kb"] > paper["paper_kb"] > bnn["paper_kb"]
    # The best recipe (the pilot's: ReAct shifts, distilled from this demo's FP32 run).
    config = json.loads((workdir / "tn2_best" / "config.json").read_text())
    assert config["block"] == "react" and config["teacher"] == str(workdir / "fp32")
    assert comparison["best_recipe"] == {"block": "react", "teacher": "fp32"}
    assert "(teacher: the FP32 run above)" in out
    # Each accuracy with its 95% Wilson interval (360 test images) around it.
    assert "95% interval % (Wilson)" in out
    for row in comparison["rows"]:
        low, high = (float(v) for v in row["interval"].split(" – "))
        assert low <= row["accuracy"] <= high and high - low > 1.0
        assert f"| {row['interval']} |" in out
    # The FP32 learning rate was chosen on validation from the grid, and said so.
    search = reports["fp32"]["lr_search"]
    assert [c["learning_rate"] for c in search["candidates"]] == [1e-3, 1e-2]
    assert f"FP32 learning rate {search['learning_rate']:g}, chosen" in out
    assert "Total wall time" in (workdir / "comparison.md").read_text()


@pytest.mark.slow
def test_demo_mcnemar_pairs_the_same_test_images(finished):
    out, workdir, comparison = finished["out"], finished["workdir"], finished["comparison"]
    tests = comparison["mcnemar"]
    assert [(t["first"], t["second"]) for t in tests] == [
        ("tn2", "bnn"), ("tn2_best", "tn2"), ("tn2_best", "bnn")
    ]
    for test in tests:
        first_labels, first = read_test_predictions(workdir / test["first"])
        second_labels, second = read_test_predictions(workdir / test["second"])
        assert test["images"] == 360 and (first_labels == second_labels).all()
        first_right, second_right = first == first_labels, second == second_labels
        assert test["first_only"] == int((first_right & ~second_right).sum())
        assert test["second_only"] == int((second_right & ~first_right).sum())
        assert 0.0 < test["p_value"] <= 1.0
        assert f"p = {test['p_value']:.3g}" in out
    assert "McNemar's exact test, TentacleNet n=2 (paper) vs BNN on the same 360" in out
    assert (
        "McNemar's exact test, TentacleNet n=2 (best) vs TentacleNet n=2 (paper) on the same"
        in out
    )


@pytest.mark.slow
def test_demo_exports_the_validation_choice_float_and_int8(finished):
    out, workdir, comparison = finished["out"], finished["workdir"], finished["comparison"]
    reports = {report["run"]: report for report in comparison["reports"]}
    export = comparison["export"]
    # Chosen by validation accuracy (then loss), never by test accuracy; the output says so.
    expected = min(
        ("tn2", "tn2_best"),
        key=lambda r: (-reports[r]["best_val_accuracy"], reports[r]["best_val_loss"]),
    )
    assert export["choice"]["run"] == expected
    assert "the test split plays no part in the choice" in out
    float_file, int8_file = export["files"]["float"], export["files"]["int8"]
    assert float_file["path"] == str(workdir / expected / f"{expected}.tflite")
    assert int8_file["path"] == str(workdir / expected / f"{expected}_int8.tflite")
    assert float_file["passed"] and int8_file["passed"]
    assert out.count("verification: PASSED") == 2
    for file in (float_file, int8_file):
        assert f"({file['bytes']} bytes" in out
    # The float-stem file keeps float32 stem and head; the int8 one stores them in int8,
    # binary convs stay LceBconv2d, and its input and output are int8 (--int8_io).
    assert _weight_types(float_file["path"], "CONV_2D") == ["FLOAT32"]
    assert _weight_types(int8_file["path"], "CONV_2D") == ["INT8"]
    assert _weight_types(int8_file["path"], "FULLY_CONNECTED") == ["INT8"]
    graph = tflite_file.read_flatbuffer(int8_file["path"])
    assert graph.op_counts()["LceBconv2d"] > 0
    assert [graph.tensors[i].type for i in graph.inputs + graph.outputs] == ["INT8", "INT8"]
    sidecar = json.loads(open(int8_file["sidecar"], encoding="utf-8").read())
    assert sidecar["quantization"]["mode"] == "int8"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--best_recipe="], "sets nothing.*Fix: e.g. --best_recipe=block=react,teacher=fp32"),
        (["--best_recipe=epochs=3"], "cannot set 'epochs'.*Fix"),
        (["--best_recipe=teacher=runs/x"], "teacher=fp32"),
        (["--tentacles=1"], "--tentacles=1.*Fix: --tentacles=3"),
    ],
)
def test_demo_refuses_bad_flags_before_training(demo, tmp_path, capsys, argv, message):
    import re

    workdir = tmp_path / "demo"
    code = run_main(demo, [f"--workdir={workdir}", *argv], program="demo.py")
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert not workdir.exists()
