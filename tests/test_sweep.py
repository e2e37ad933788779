"""The sweep: points, resume, CSV, plots and Table 2 (training on digits at 4x4, 1 epoch)."""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from helpers import loaded_app, write_digits_folder
from larq_tentacle import experiments
from larq_tentacle.experiments import plan, sweep, sweep_config, tables
from larq_tentacle.experiments.sweep_folder import SweepFolder
from larq_tentacle.utils import atomic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _point(method, n, seed, accuracy, kb):
    return dict(
        model="nin",
        dataset="digits",
        method=method,
        n=n,
        seed=seed,
        point=plan.point_id(method, n, seed),
        test_accuracy=accuracy,
        paper_kb=kb,
        paper_kb_exact=kb - 0.5,
        wall_time_s=2.0,
        epochs_completed=1,
        member_accuracies=None,
        input_shape=[8, 8, 1],
    )


SYNTHETIC = [
    _point("fp32", 1, 0, 0.90, 3700),
    _point("fp32", 1, 1, 0.92, 3700),
    # TentacleNet reaches FP32 (mean 0.91) at n=3
    _point("tentaclenet", 1, 0, 0.80, 180),
    _point("tentaclenet", 1, 1, 0.82, 180),
    _point("tentaclenet", 3, 0, 0.91, 500),
    _point("tentaclenet", 3, 1, 0.915, 500),
    _point("tentaclenet", 5, 0, 0.93, 800),
    _point("tentaclenet", 5, 1, 0.93, 800),
    # bagging never does: compared at its best accuracy (n=4)
    _point("bagging", 2, 0, 0.85, 360),
    _point("bagging", 2, 1, 0.85, 360),
    _point("bagging", 4, 0, 0.89, 720),
    _point("bagging", 4, 1, 0.88, 720),
    # boosting breaks even at n=4
    _point("boosting", 2, 0, 0.86, 360),
    _point("boosting", 2, 1, 0.86, 360),
    _point("boosting", 4, 0, 0.91, 720),
    _point("boosting", 4, 1, 0.912, 720),
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    for point in SYNTHETIC:
        atomic.write_json(workdir / "points" / f"{point['point']}.json", point)
    return experiments.render(workdir, command="python apps/sweep.py --model=nin")


def test_render_writes_csv_plots_and_table(rendered):
    result = rendered
    for path in result["paths"].values():
        assert os.path.getsize(path) > 0, path
    with open(result["paths"]["sweep.csv"]) as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(SYNTHETIC)
    assert result["fp32_reference"] == pytest.approx(0.91)
    row = next(r for r in rows if r["point"] == "tentaclenet_n1_s0")
    assert float(row["delta_pp"]) == pytest.approx(-11.0)
    for png in ("fig3_delta.png", "accuracy_vs_kb.png"):
        with open(result["paths"][png], "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    table = open(result["paths"]["table2.md"]).read()
    assert "python apps/sweep.py --model=nin" in table and "| TentacleNet | 3 |" in table
    # TentacleNet n=3 (500 kB) next to the nearest BENN sizes (360 kB, not 720 kB)
    assert "## At about equal memory" in table
    assert (
        # mean ± the 95% t interval's half-width: t(0.975, 1) * 0.354 / sqrt(2) = 3.18
        "| 3 | 500 | 91.25 ± 3.18 | N=2 (360 kB): 85.00 ± 0.00 | N=2 (360 kB): 86.00 ± 0.00 |"
        in table
    )


def test_table2_takes_break_even_else_best_and_the_saving_vs_smallest_benn(rendered):
    result = rendered
    chosen = {row["method"]: row for row in result["table2"]}
    assert (chosen["tentaclenet"]["n"], chosen["tentaclenet"]["criterion"]) == (3, "break-even")
    assert (chosen["bagging"]["n"], chosen["bagging"]["criterion"]) == (4, "best accuracy")
    assert (chosen["boosting"]["n"], chosen["boosting"]["criterion"]) == (4, "break-even")
    assert chosen["tentaclenet"]["saving"].startswith(f"{100 * (1 - 500 / 720):.1f}%")
    summary = {(s["method"], s["n"]): s for s in result["summary"]}
    # without break-even there is no saving to claim: sizes at unequal accuracy say nothing
    short = [s for s in result["summary"] if not (s["method"] == "tentaclenet" and s["n"] >= 3)]
    unreached = {row["method"]: row for row in tables.table2_rows(short)}
    assert unreached["tentaclenet"]["saving"].startswith("n/a (TentacleNet did not reach FP32)")
    assert summary[("bagging", 4)]["accuracy_min"] == pytest.approx(88.0)
    assert summary[("bagging", 4)]["seeds"] == 2


def test_plan_trains_one_pool_per_seed_for_prefix_closed_ensembles():
    config = experiments.SweepConfig(
        model="nin",
        dataset="digits",
        tentacles=[2, 1],
        bagging=[1, 3],
        boosting=[2],
        seeds=[0, 1],
        epochs=1,
    ).resolved()
    jobs = plan.plan(config)
    assert config.tentacles == (1, 2)
    pools = [j for j in jobs if j["kind"] == "pool"]
    assert [(j["method"], j["n"], j["seed"]) for j in pools] == [
        ("bagging", 3, 0),
        ("boosting", 2, 0),
        ("bagging", 3, 1),
        ("boosting", 2, 1),
    ]
    assert pools[0]["points"] == ["bagging_n1_s0", "bagging_n3_s0"]
    partition = plan.plan(
        experiments.SweepConfig(
            model="nin",
            dataset="digits",
            tentacles=[],
            bagging=[1, 3],
            boosting=[],
            seeds=[0],
            sampling="partition",
            fp32_accuracy=0.9,
        ).resolved()
    )
    assert [(j["method"], j["n"]) for j in partition] == [("bagging", 1), ("bagging", 3)]


def test_bad_sweep_config_names_the_field():
    with pytest.raises(ValueError, match="tentacles"):
        experiments.SweepConfig(model="nin", tentacles=[0, 2]).resolved()
    with pytest.raises(ValueError, match="sampling"):
        experiments.SweepConfig(model="nin", sampling="bootstrapped").resolved()
    with pytest.raises(ValueError, match="seeds"):
        experiments.SweepConfig(model="nin", seeds=[]).resolved()


@pytest.mark.slow  # a fresh interpreter imports TensorFlow
def test_app_reports_a_bad_flag_without_a_traceback():
    completed = subprocess.run(
        [sys.executable, os.path.join(REPO, "apps", "sweep.py"), "--model=nin", "--tentacles=1-x"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert completed.returncode == 2
    assert "--tentacles='1-x'" in completed.stderr and "Traceback" not in completed.stderr


def _tiny(**overrides):
    # fp32_accuracy given: no FP32 point (it runs the same code as a TentacleNet point).
    values = dict(
        model="nin",
        dataset="digits",
        input_size=4,
        epochs=1,
        batch_size=128,
        tentacles=[1],
        bagging=[1],
        boosting=[1],
        seeds=[0],
        fp32_accuracy=0.9,
    )
    values.update(overrides)
    return experiments.SweepConfig(**values)


@pytest.mark.slow
def test_sweep_runs_end_to_end_and_resumes_without_retraining(tmp_path, monkeypatch):
    result = experiments.run_sweep(_tiny(), tmp_path, progress=False)
    done = sorted(os.listdir(tmp_path / "points"))
    assert done == ["bagging_n1_s0.json", "boosting_n1_s0.json", "tentaclenet_n1_s0.json"]
    for path in result["paths"].values():
        assert os.path.getsize(path) > 0, path
    tn = json.load(open(tmp_path / "points" / "tentaclenet_n1_s0.json"))
    assert 0.0 <= tn["test_accuracy"] <= 1.0 and tn["epochs_completed"] == 1
    boost = json.load(open(tmp_path / "points" / "boosting_n1_s0.json"))
    # a BENN of one member is the BNN, i.e. TentacleNet n=1
    assert boost["paper_kb_exact"] == pytest.approx(tn["paper_kb_exact"])
    assert json.load(open(tmp_path / "points" / "bagging_n1_s0.json"))[
        "paper_kb_exact"
    ] == pytest.approx(tn["paper_kb_exact"])

    # Extend the sweep: finished points and members must come from disk.
    from larq_tentacle.training import loop as training

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(training, "train", no_training)
    trained = []
    real_fit = sweep.member_fit

    def counting_fit(*args, **kwargs):
        fit = real_fit(*args, **kwargs)

        def wrapped(model, x, y, **options):
            trained.append(options["index"])
            return fit(model, x, y, **options)

        return wrapped

    monkeypatch.setattr(sweep, "member_fit", counting_fit)
    experiments.run_sweep(_tiny(bagging=[1, 2]), tmp_path, progress=False)
    assert trained == [2]  # member 1 of the bagging pool was reloaded
    rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert sorted(r["point"] for r in rows) == [
        "bagging_n1_s0",
        "bagging_n2_s0",
        "boosting_n1_s0",
        "tentaclenet_n1_s0",
    ]
    assert {float(r["fp32_accuracy"]) for r in rows} == {0.9}
    bag2 = json.load(open(tmp_path / "points" / "bagging_n2_s0.json"))
    assert bag2["paper_kb_exact"] == pytest.approx(2 * boost["paper_kb_exact"])
    assert (tmp_path / "runs" / "bagging_pool_s0" / "benn_bagging_n2.h5").exists()

    with pytest.raises(ValueError, match="different sweep"):
        experiments.run_sweep(_tiny(epochs=2), tmp_path, progress=False)


def test_workdir_config_keeps_the_union_of_extended_lists(tmp_path):
    first = experiments.SweepConfig(
        model="nin",
        dataset="digits",
        tentacles=[1, 2],
        bagging=[],
        boosting=[2],
        seeds=[0],
        epochs=1,
    ).resolved()
    second = experiments.SweepConfig(
        model="nin", dataset="digits", tentacles=[], bagging=[3], boosting=[1], seeds=[1], epochs=1
    ).resolved()
    sweep_config.check_workdir(str(tmp_path), first)
    sweep_config.check_workdir(str(tmp_path), second)
    stored = json.load(open(SweepFolder(tmp_path).config))
    assert (stored["tentacles"], stored["bagging"], stored["boosting"], stored["seeds"]) == (
        [1, 2],
        [3],
        [1, 2],
        [0, 1],
    )
    with pytest.raises(ValueError, match="learning_rate"):
        sweep_config.check_workdir(
            str(tmp_path),
            experiments.SweepConfig(
                model="nin", dataset="digits", epochs=1, learning_rate=0.5
            ).resolved(),
        )


def test_an_older_sweep_config_json_without_new_fields_still_resumes(tmp_path):
    config = experiments.SweepConfig(
        model="nin", dataset="digits", tentacles=[1], bagging=[], boosting=[], seeds=[0], epochs=1
    ).resolved()
    older = config.to_dict()
    del older["fused"]  # written before the sweep had the recipe's `fused`
    atomic.write_json(SweepFolder(tmp_path).config, older)
    sweep_config.check_workdir(str(tmp_path), dataclasses.replace(config, seeds=(0, 1)))
    assert json.load(open(SweepFolder(tmp_path).config))["seeds"] == [0, 1]
    with pytest.raises(ValueError, match="fused"):
        sweep_config.check_workdir(str(tmp_path), dataclasses.replace(config, fused=True))


def test_every_point_trains_with_the_sweep_recipe_and_its_own_seed():
    config = experiments.SweepConfig(
        model="nin",
        dataset="digits",
        epochs=2,
        optimizer="sgd",
        lr_factor=0.5,
        fused=True,
        seeds=[4],
    )
    recipe = config.recipe()
    tentaclenet = config.train_config(tentacles=3, seed=4)
    assert dataclasses.replace(tentaclenet.recipe(), seed=recipe.seed) == recipe
    assert (tentaclenet.tentacles, tentaclenet.seed, tentaclenet.fused) == (3, 4, True)
    fp32 = config.train_config(precision="float", seed=4)
    assert (fp32.init, fp32.fused, fp32.optimizer) == (None, False, "sgd")
    fp32.resolved()  # the FP32 baseline has no tentacles to fuse
    assert "seed" not in config.to_dict()
    with pytest.raises(ValueError, match="seeds"):
        dataclasses.replace(config, seed=3).resolved()


@pytest.fixture
def sweep_app():
    yield from loaded_app("sweep")


def test_sweep_flags_are_the_recipe_flags_with_seeds_instead_of_seed(sweep_app):
    from absl import flags

    assert "seed" not in flags.FLAGS and "seeds" in flags.FLAGS
    defaults = {
        name: flags.FLAGS[name].default
        for name in (
            "epochs",
            "batch_size",
            "learning_rate",
            "optimizer",
            "lr_patience",
            "lr_factor",
            "augment",
            "fused",
            "init",
            "sampling",
            "vote",
            "seeds",
            "tentacles",
        )
    }
    assert defaults == dict(
        epochs=300,
        batch_size=128,
        learning_rate=1e-3,
        optimizer="adam",
        lr_patience=15,
        lr_factor=0.1,
        augment="default",
        fused="false",
        init="hadamard",
        sampling="bootstrap",
        vote="average",
        seeds="0,1,2",
        tentacles="1-5",
    )
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["sweep.py", "--model=nin", "--seeds=3,5", "--fused=auto", "--epochs=2"])
    try:
        config = sweep_app.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
    assert (config.seeds, config.seed, config.fused, config.epochs) == ([3, 5], 0, "auto", 2)


def test_sweep_on_a_folder_dataset_trains_benn_in_memory_and_names_the_budget(tmp_path):
    folder = write_digits_folder(tmp_path / "digits", per_class=20)
    config = _tiny(dataset=f"folder:{folder}", batch_size=16, boosting=[])
    assert experiments.default_workdir(config) == "runs/sweep_nin_digits"
    experiments.run_sweep(config, tmp_path / "sweep", progress=False)
    bagging = json.load(open(tmp_path / "sweep" / "points" / "bagging_n1_s0.json"))
    assert 0.0 <= bagging["test_accuracy"] <= 1.0
    # BENN resamples single images: a streamed dataset over the budget is refused clearly.
    tight = _tiny(dataset=f"folder:{folder}", bagging=[2], boosting=[], tentacles=[],
                  cache_mb=0.001)
    with pytest.raises(ValueError, match=r"in memory .*--cache_mb=0.001.*Fix"):
        experiments.run_sweep(tight, tmp_path / "tight", progress=False)


def test_fp32_point_of_a_bop_two_stage_sweep_trains_with_the_plain_recipe():
    config = _tiny(optimizer="bop", stages=2, epochs=4, fp32_accuracy=None)
    fp32 = config.train_config(precision="float", tentacles=1, seed=0).resolved()
    assert (fp32.optimizer, fp32.stages, fp32.fused) == ("adam", 1, False)
    binary = config.train_config(tentacles=3, seed=0).resolved()
    assert (binary.optimizer, binary.stages) == ("bop", 2)
