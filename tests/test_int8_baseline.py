"""The int8 CNN baseline: width-scaled float models, the 8-bit size rule, the int8 points."""

import csv
import json
import math
import os

import pytest
import tensorflow as tf

import larq_tentacle as lt
from helpers import loaded_app
from larq_tentacle import experiments
from larq_tentacle.core.size import paper_size_bits
from larq_tentacle.experiments import plan
from larq_tentacle.utils import atomic


def _conv_filters(model):
    return [layer.filters for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]


@pytest.mark.parametrize("name", lt.list_models())
def test_width_scales_every_hidden_layer_but_not_the_classifier(name):
    shape = (16, 16, 3)
    full = lt.build(name, precision="float", input_shape=shape)
    half = lt.build(name, precision="float", input_shape=shape, width=0.5)
    classes = lt.get_spec(name).num_classes
    assert half.output_shape == full.output_shape == (None, classes)
    # every conv but a classifier conv (NiN's conv9 has num_classes filters) is halved
    for f, h in zip(_conv_filters(full), _conv_filters(half)):
        assert h == (f if f == classes else round(f / 2)), (f, h)
    assert lt.build(name, precision="float", input_shape=shape, width=1.0).count_params() == (
        full.count_params()
    )
    # a TentacleNet of a width-scaled model builds too
    assert lt.layout(lt.build(name, tentacles=2, input_shape=shape, width=0.25)).tentacles == 2


@pytest.mark.parametrize("width", [0, -0.5, math.nan, "half", True, None])
def test_a_bad_width_is_refused_with_the_fix(width):
    if width is None:  # None keeps the default (a command-line flag left unset)
        assert lt.build("fernet", precision="float", input_shape=(16, 16, 1), width=None)
        return
    with pytest.raises(ValueError, match=r"`width`.*Fix: e\.g\. width=0\.5"):
        lt.build("fernet", precision="float", input_shape=(16, 16, 1), width=width)
    with pytest.raises(ValueError, match="width"):
        experiments.SweepConfig(model="fernet", dataset="digits", int8_widths=[0.5, width],
                                seeds=[0]).resolved()


def test_int8_widths_and_a_model_option_width_are_not_combined():
    with pytest.raises(ValueError, match="drop width from model_options"):
        experiments.SweepConfig(
            model="fernet", dataset="digits", int8_widths=[0.5], model_options={"width": 0.5}
        ).resolved()
    config = experiments.SweepConfig(model="fernet", dataset="digits", tentacles=[],
                                     bagging=[], boosting=[], int8_widths=[1, 0.5, 0.5])
    assert config.resolved().int8_widths == (0.5, 1.0)  # an int8-only sweep is a sweep


def test_paper_size_with_8_bit_weights():
    shape = (16, 16, 1)
    float_model = lt.build("fernet", precision="float", input_shape=shape)
    assert paper_size_bits(float_model, float_bits=8) * 4 == paper_size_bits(float_model)
    tentaclenet = lt.build("fernet", tentacles=2, input_shape=shape)
    bits32, bits8 = paper_size_bits(tentaclenet), paper_size_bits(tentaclenet, float_bits=8)
    # only the float parameters (stem and head) shrink; the binary ones stay at 1 bit
    float_parameters = (bits32 - bits8) / 24
    assert float_parameters == int(float_parameters) and 0 < float_parameters < bits8
    assert lt.paper_size_kb(float_model, exact=True, float_bits=8) == pytest.approx(
        paper_size_bits(float_model, float_bits=8) / 8 / 1024
    )
    with pytest.raises(ValueError, match="float_bits"):
        paper_size_bits(float_model, float_bits=16)


def _int8_point(width, seed, accuracy, kb):
    return dict(
        model="fernet", dataset="digits", method="int8", n=1, width=width, seed=seed,
        recipe="paper", point=plan.int8_point_id(width, seed), test_accuracy=accuracy,
        float_test_accuracy=accuracy + 0.01, paper_kb=kb, paper_kb_exact=kb - 0.5,
        tflite_bytes=1500 * kb, wall_time_s=1.0, epochs_completed=1, input_shape=[16, 16, 1],
    )


def _point(method, n, seed, accuracy, kb):
    return dict(
        model="fernet", dataset="digits", method=method, n=n, seed=seed,
        point=plan.point_id(method, n, seed), test_accuracy=accuracy, paper_kb=kb,
        paper_kb_exact=kb, wall_time_s=2.0, epochs_completed=1, input_shape=[16, 16, 1],
    )


def test_render_lists_and_draws_the_int8_rows_by_width(tmp_path):
    points = [
        _point("fp32", 1, 0, 0.97, 1369), _point("fp32", 1, 1, 0.97, 1369),
        _point("tentaclenet", 3, 0, 0.95, 145), _point("tentaclenet", 3, 1, 0.96, 145),
        _point("bagging", 3, 0, 0.94, 130), _point("bagging", 3, 1, 0.94, 130),
        _int8_point(0.25, 0, 0.90, 22), _int8_point(0.25, 1, 0.92, 22),
        _int8_point(0.5, 0, 0.96, 86), _int8_point(0.5, 1, 0.96, 86),
    ]
    for point in points:
        atomic.write_json(tmp_path / "points" / f"{point['point']}.json", point)
    result = experiments.render(tmp_path)
    rows = list(csv.DictReader(open(result["paths"]["sweep.csv"])))
    int8 = [r for r in rows if r["method"] == "int8"]
    assert [(r["width"], r["n"], r["seed"]) for r in int8] == [
        ("0.25", "1", "0"), ("0.25", "1", "1"), ("0.5", "1", "0"), ("0.5", "1", "1")]
    assert int8[0]["tflite_bytes"] == "33000" and int8[0]["paper_kb"] == "22"
    summary = {(s["method"], s["width"]): s for s in result["summary"]}
    assert summary[("int8", 0.25)]["accuracy_mean"] == pytest.approx(91.0)
    assert summary[("int8", 0.5)]["seeds"] == 2 and summary[("int8", 0.5)]["paper_kb"] == 86
    assert summary[("int8", 0.5)]["float_accuracy_mean"] == pytest.approx(97.0)
    table = open(result["paths"]["table2.md"]).read()
    assert "## The int8 CNN baseline" in table and "| ×0.5 | 2 | 96.00 ± 0.00 | 97.00 |" in table
    # TentacleNet n=3 (145 kB) next to the int8 CNN nearest in kB (×0.5, 86 kB)
    assert "| 3 | 145 | 95.50 ± 6.35 | N=3 (130 kB): 94.00 ± 0.00 | - | ×0.5 (86 kB)" in table
    pareto = result["figures"]["accuracy_vs_kb.png"]
    assert {"TentacleNet", "BENN bagging", "int8 CNN (8-bit weights)"} <= set(pareto)
    assert not any("int8" in name for name in result["figures"]["fig3_delta.png"])


@pytest.fixture
def sweep_app():
    yield from loaded_app("sweep")


def test_app_parses_int8_widths(sweep_app):
    assert sweep_app.parse_widths("0.25, 0.5,1") == [0.25, 0.5, 1.0]
    assert sweep_app.parse_widths("") == []
    with pytest.raises(ValueError, match="--int8_widths='0.5,x'.*Fix"):
        sweep_app.parse_widths("0.5,x")


def _config(**overrides):
    values = dict(model="fernet", dataset="digits", input_size=16, epochs=1, batch_size=128,
                  tentacles=[1], bagging=[], boosting=[], seeds=[0])
    return experiments.SweepConfig(**dict(values, **overrides))


@pytest.mark.slow
def test_int8_widths_extend_a_sweep_without_retraining_its_points(tmp_path, monkeypatch):
    experiments.run_sweep(_config(), tmp_path, progress=False)
    assert sorted(os.listdir(tmp_path / "points")) == ["fp32_n1_s0.json", "tentaclenet_n1_s0.json"]

    from larq_tentacle.training import loop as training

    trained, real_train = [], training.train

    def counting_train(config, workdir, **options):
        trained.append(os.path.basename(os.fspath(workdir)))
        return real_train(config, workdir, **options)

    monkeypatch.setattr(training, "train", counting_train)
    result = experiments.run_sweep(_config(int8_widths=[0.5, 1.0]), tmp_path, progress=False)
    # width 0.5 trains; width 1 is the FP32 point's model, quantized, not trained again
    assert trained == ["int8_w0.5_s0"]
    half = json.load(open(tmp_path / "points" / "int8_w0.5_s0.json"))
    full = json.load(open(tmp_path / "points" / "int8_w1_s0.json"))
    fp32 = json.load(open(tmp_path / "points" / "fp32_n1_s0.json"))
    assert full["reused_run"] == "fp32_n1_s0" and half["reused_run"] is None
    assert full["float_test_accuracy"] == fp32["test_accuracy"]
    assert full["paper_kb_exact"] == pytest.approx(fp32["paper_kb_exact"] / 4)
    assert 0 < half["paper_kb_exact"] < full["paper_kb_exact"] / 2
    for point in (half, full):
        assert (point["method"], point["n"]) == ("int8", 1)
        assert 0.0 <= point["test_accuracy"] <= 1.0
        assert point["tflite_bytes"] == os.path.getsize(
            tmp_path / "runs" / point["point"] / "int8.tflite")
        # the int8 file holds its weights and more (int32 biases, scales, the graph)
        assert point["tflite_bytes"] > 1024 * point["paper_kb_exact"]
    rows = [r for r in csv.DictReader(open(result["paths"]["sweep.csv"])) if r["method"] == "int8"]
    assert sorted(r["width"] for r in rows) == ["0.5", "1.0"]
    assert all(r["test_accuracy"] and r["paper_kb"] and r["tflite_bytes"] for r in rows)
    assert "int8 CNN (8-bit weights)" in result["figures"]["accuracy_vs_kb.png"]
    stored = json.load(open(tmp_path / "sweep_config.json"))
    assert stored["int8_widths"] == [0.5, 1.0]

    # a rerun (even without the widths) trains and exports nothing
    trained.clear()
    experiments.run_sweep(_config(), tmp_path, progress=False)
    assert trained == []
    assert len(os.listdir(tmp_path / "points")) == 4
