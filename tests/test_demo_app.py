"""apps/demo.py (the main job, `make demo`): train, compare, export, end to end on digits."""

import json

import pytest

from helpers import loaded_app, run_main


@pytest.fixture(scope="module")
def demo():
    yield from loaded_app("demo")


@pytest.mark.slow
def test_demo_trains_three_models_writes_the_comparison_and_a_verified_tflite(
    demo, tmp_path, capsys
):
    workdir = tmp_path / "demo"
    code = run_main(
        demo, [f"--workdir={workdir}", "--epochs=1", "--tentacles=2"], program="demo.py"
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "## Model sizes" in out and "| nin | TentacleNet n=5 |" in out

    comparison = json.loads((workdir / "comparison.json").read_text())
    variants = [row["variant"] for row in comparison["rows"]]
    assert variants == ["FP32", "BNN", "TentacleNet n=2"]
    fp32, bnn, tentaclenet = comparison["rows"]
    assert fp32["delta"] == 0.0
    for row in (bnn, tentaclenet):
        report = next(
            r
            for r in comparison["reports"]
            if r["tentacles"] == (1 if row is bnn else 2) and r["variant"] != "fp32"
        )
        assert row["delta"] == pytest.approx(
            100 * (report["test_accuracy"] - comparison["reports"][0]["test_accuracy"])
        )
    # The paper-rule sizes grow with tentacles and are far below FP32's.
    assert fp32["paper_kb"] > tentaclenet["paper_kb"] > bnn["paper_kb"]
    markdown = (workdir / "comparison.md").read_text()
    assert "TentacleNet n=2" in markdown and "Total wall time" in markdown

    # Each accuracy with its 95% interval (Wilson, on the 360 test images) around it.
    assert "95% interval % (Wilson)" in out
    for row in comparison["rows"]:
        low, high = (float(v) for v in row["interval"].split(" – "))
        assert low <= row["accuracy"] <= high and high - low > 1.0
        assert f"| {row['interval']} |" in out
    # McNemar TentacleNet vs BNN, from the two runs' per-image test predictions.
    mcnemar = comparison["mcnemar"]
    assert (mcnemar["first"], mcnemar["second"], mcnemar["images"]) == ("tn2", "bnn", 360)
    assert 0.0 < mcnemar["p_value"] <= 1.0
    tn_report, bnn_report = comparison["reports"][2], comparison["reports"][1]
    assert mcnemar["first_only"] - mcnemar["second_only"] == round(
        360 * (tn_report["test_accuracy"] - bnn_report["test_accuracy"])
    )
    assert f"p = {mcnemar['p_value']:.3g}" in out
    # The FP32 learning rate was chosen on validation from the grid, and said so.
    search = comparison["reports"][0]["lr_search"]
    assert [c["learning_rate"] for c in search["candidates"]] == [1e-3, 3e-3, 1e-2]
    assert f"FP32 learning rate {search['learning_rate']:g}, chosen" in out

    tflite = workdir / "tn2" / "tn2.tflite"
    assert tflite.stat().st_size > 1000
    sidecar = json.loads((workdir / "tn2" / "tn2.tflite.json").read_text())
    assert sidecar["tentacles"] == 2
    assert "## Export" in out
