"""A sweep with two recipes: best-recipe points next to the paper's, their teacher, outputs."""

import csv
import json
import os

import pytest

from helpers import loaded_app
from larq_tentacle import experiments
from larq_tentacle.core.serialization import load_model
from larq_tentacle.experiments import best_recipe, plan, sweep, sweep_config
from larq_tentacle.experiments.sweep_folder import SweepFolder
from larq_tentacle.utils import atomic


def _config(**overrides):
    values = dict(model="nin", dataset="digits", input_size=4, epochs=2, batch_size=128,
                  tentacles=[1, 3], bagging=[1, 3], boosting=[1], seeds=[0, 1],
                  best_recipe="block=react,rprelu=true,teacher=fp32,distill_alpha=0.5")
    values.update(overrides)
    return experiments.SweepConfig(**values)


def test_the_flag_becomes_typed_overrides_of_the_recipe():
    config = _config().resolved()
    assert config.best_recipe == dict(
        block="react", rprelu=True, teacher="fp32", distill_alpha=0.5
    )
    assert best_recipe.describe(config.best_recipe) == (
        "block=react, distill_alpha=0.5, rprelu=True, teacher=fp32"
    )
    assert experiments.best_recipe_from_flag("") == {}
    staged = _config(best_recipe="stages=2,stage1_epochs=1,optimizer=bop,fused=true").resolved()
    assert staged.best_recipe == dict(stages=2, stage1_epochs=1, optimizer="bop", fused=True)


@pytest.fixture
def sweep_app():
    yield from loaded_app("sweep")


def test_the_sweep_app_passes_best_recipe_through(sweep_app):
    from absl import flags

    flags.FLAGS.unparse_flags()
    flags.FLAGS(["sweep.py", "--model=nin", "--best_recipe=block=react,teacher=fp32",
                 "--boosting="])
    try:
        config = sweep_app.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.resolved().best_recipe == dict(block="react", teacher="fp32")
    assert config.boosting == []


@pytest.mark.parametrize(
    "text, match",
    [
        ("block", r"not key=value.*Fix"),
        ("blocks=react", r"unknown key 'blocks'.*Fix: .*block"),
        ("epochs=50", r"cannot set 'epochs'.*same epoch budget.*Fix"),
        ("seed=3", r"cannot set 'seed'"),
        ("teacher=runs/fp32", r"teacher='runs/fp32'.*Fix: teacher=fp32"),
        ("rprelu=maybe", r"rprelu='maybe' is not of type bool.*Fix"),
        ("stages=two", r"stages='two' is not of type int"),
        ("block=bireal", r"block"),
        ("rprelu=true", r"rprelu"),  # RPReLU needs block=react: the recipe's own check
    ],
)
def test_a_bad_best_recipe_is_one_error_naming_it(text, match):
    with pytest.raises(ValueError, match=match):
        _config(best_recipe=text).resolved()


def test_a_teacher_needs_the_sweeps_fp32_points():
    with pytest.raises(ValueError, match=r"fp32_accuracy=0.9 skips the FP32 points.*Fix"):
        _config(fp32_accuracy=0.9).resolved()
    _config(fp32_accuracy=0.9, best_recipe="block=react").resolved()  # no teacher: fine


def test_best_points_train_with_the_overrides_and_the_seeds_fp32_teacher(tmp_path):
    config = _config().resolved()
    jobs = plan.plan(config)
    best = next(j for j in jobs if j["recipe"] == "best" and j["method"] == "tentaclenet")
    assert best["points"] == ["tentaclenet_best_n1_s0"]
    train = sweep.job_config(config, tmp_path, best, tentacles=1)
    assert train.teacher == sweep.teacher_dir(tmp_path, 0) == os.path.join(
        str(tmp_path), "runs", "fp32_n1_s0"
    )
    assert (train.block, train.rprelu, train.distill_alpha, train.seed) == ("react", True, 0.5, 0)
    paper = next(j for j in jobs if j["recipe"] == "paper" and j["method"] == "tentaclenet")
    plain = sweep.job_config(config, tmp_path, paper, tentacles=1)
    assert (plain.block, plain.teacher, plain.distill_alpha) == ("xnor", None, 0.9)
    # The FP32 reference never takes the best recipe.
    fp32 = config.train_config(precision="float", seed=1)
    assert (fp32.block, fp32.teacher) == ("xnor", None)
    with pytest.raises(ValueError, match="teacher"):
        config.train_config(recipe="best", tentacles=1, seed=0)


def test_the_plan_adds_best_tentaclenet_and_bagging_after_the_fp32_teacher():
    jobs = plan.plan(_config().resolved())
    seed0 = [(j["method"], j["recipe"], j["n"]) for j in jobs if j["seed"] == 0]
    assert seed0 == [
        ("fp32", "paper", 1),
        ("tentaclenet", "paper", 1), ("tentaclenet", "paper", 3),
        ("tentaclenet", "best", 1), ("tentaclenet", "best", 3),
        ("bagging", "paper", 3), ("bagging", "best", 3),
        ("boosting", "paper", 1),
    ]
    pool = next(j for j in jobs if j["method"] == "bagging" and j["recipe"] == "best")
    assert pool["points"] == ["bagging_best_n1_s0", "bagging_best_n3_s0"]
    # Without a best recipe the plan and the point ids are the paper sweep's.
    paper_only = plan.plan(_config(best_recipe="").resolved())
    assert {j["recipe"] for j in paper_only} == {"paper"}
    assert paper_only[1]["points"] == ["tentaclenet_n1_s0"]


def test_a_paper_sweep_may_get_a_best_recipe_but_not_another_one(tmp_path):
    paper = _config(best_recipe="").resolved()
    sweep_config.check_workdir(str(tmp_path), paper)
    sweep_config.check_workdir(str(tmp_path), _config().resolved())
    stored = json.load(open(SweepFolder(tmp_path).config))
    assert stored["best_recipe"]["block"] == "react"
    sweep_config.check_workdir(str(tmp_path), paper)  # a rerun without it keeps it
    assert json.load(open(SweepFolder(tmp_path).config))["best_recipe"] == stored["best_recipe"]
    with pytest.raises(ValueError, match="different sweep.*best_recipe"):
        sweep_config.check_workdir(str(tmp_path), _config(best_recipe="stages=2").resolved())


def _point(method, n, seed, accuracy, kb, recipe=None):
    point = dict(
        model="nin", dataset="digits", method=method, n=n, seed=seed,
        point=plan.point_id(method, n, seed, recipe or "paper"), test_accuracy=accuracy,
        paper_kb=kb, paper_kb_exact=kb, wall_time_s=1.0, epochs_completed=2,
        member_accuracies=None, input_shape=[4, 4, 1],
    )
    if recipe is not None:  # points written before recipes existed have no `recipe`
        point["recipe"] = recipe
    return point


POINTS = [
    _point("fp32", 1, 0, 0.95, 3000), _point("fp32", 1, 1, 0.97, 3000),
    _point("tentaclenet", 3, 0, 0.90, 145), _point("tentaclenet", 3, 1, 0.91, 145),
    _point("bagging", 3, 0, 0.92, 147), _point("bagging", 3, 1, 0.90, 147),
    _point("tentaclenet", 3, 0, 0.96, 150, "best"), _point("tentaclenet", 3, 1, 0.97, 150, "best"),
    _point("bagging", 3, 0, 0.93, 153, "best"), _point("bagging", 3, 1, 0.95, 153, "best"),
]


def test_outputs_have_both_recipes_and_old_points_are_the_papers(tmp_path):
    for point in POINTS:
        atomic.write_json(SweepFolder(tmp_path).point(point["point"]), point)
    atomic.write_json(SweepFolder(tmp_path).config, dict(best_recipe=dict(block="react")))
    result = experiments.render(tmp_path)
    rows = list(csv.DictReader(open(result["paths"]["sweep.csv"])))
    assert {(r["point"], r["recipe"]) for r in rows if r["method"] == "tentaclenet"} == {
        ("tentaclenet_n3_s0", "paper"), ("tentaclenet_n3_s1", "paper"),
        ("tentaclenet_best_n3_s0", "best"), ("tentaclenet_best_n3_s1", "best"),
    }
    summary = {(s["method"], s["recipe"], s["n"]): s for s in result["summary"]}
    assert summary[("tentaclenet", "best", 3)]["accuracy_mean"] == pytest.approx(96.5)
    assert summary[("tentaclenet", "paper", 3)]["accuracy_mean"] == pytest.approx(90.5)
    # Each TentacleNet against the bagging of its own recipe.
    paired = {(p["recipe"], p["method"]): p for p in result["paired"]}
    assert paired[("best", "bagging")]["diff_pp_mean"] == pytest.approx(2.5)
    assert paired[("paper", "bagging")]["diff_pp_mean"] == pytest.approx(-0.5)
    recipes = {(p["method"], p["n"]): p for p in result["recipes"]}
    assert recipes[("tentaclenet", 3)]["diff_pp_mean"] == pytest.approx(6.0)
    assert recipes[("tentaclenet", 3)]["wins"] == 2
    table = open(result["paths"]["table2.md"]).read()
    assert "| TentacleNet (best recipe) | 3 |" in table and "| TentacleNet | 3 |" in table
    assert "## Best recipe vs the paper's, paired by seed" in table
    assert "the same with block=react" in table
    assert "| best | 3 | 150 | 96.50 ± " in table  # the equal-memory view has a recipe column


@pytest.mark.slow  # trains an FP32, two TentacleNets and two bagging pools (4x4, 1 epoch)
def test_a_tiny_sweep_trains_both_recipes_distils_from_its_fp32_and_resumes(
    tmp_path, monkeypatch
):
    config = _config(epochs=1, tentacles=[1], bagging=[1], boosting=[], seeds=[0],
                     best_recipe="block=react,teacher=fp32")
    experiments.run_sweep(config, tmp_path, progress=False)
    assert sorted(os.listdir(tmp_path / "points")) == [
        "bagging_best_n1_s0.json", "bagging_n1_s0.json", "fp32_n1_s0.json",
        "tentaclenet_best_n1_s0.json", "tentaclenet_n1_s0.json",
    ]
    rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert sorted((r["method"], r["recipe"]) for r in rows) == [
        ("bagging", "best"), ("bagging", "paper"), ("fp32", "paper"),
        ("tentaclenet", "best"), ("tentaclenet", "paper"),
    ]
    fp32_run = str(tmp_path / "runs" / "fp32_n1_s0")
    best = SweepFolder(tmp_path).run("tentaclenet_best_n1_s0")
    report = json.load(open(best.report))
    assert report["distillation"]["teacher"] == fp32_run
    assert json.load(open(best.config))["block"] == "react"
    assert {r["teacher"] for r in rows if r["recipe"] == "best"} == {"fp32_n1_s0"}
    assert {r["teacher"] for r in rows if r["recipe"] == "paper"} == {""}
    # The best bagging member is a react BNN, distilled (its history logs the KL term).
    pool = SweepFolder(tmp_path).run("bagging_best_pool_s0")
    member = pool.member(1)
    assert "distill_loss" in open(member.history).readline()
    layers = [type(layer).__name__ for layer in load_model(pool.member_model(1)).layers]
    assert "LearnableShift" in layers
    assert "distill_loss" not in open(
        SweepFolder(tmp_path).run("bagging_pool_s0").member(1).history
    ).readline()

    from larq_tentacle.training import loop as training

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(training, "train", no_training)
    monkeypatch.setattr(training, "fit_stages", no_training)
    result = experiments.run_sweep(config, tmp_path, progress=False)
    assert {(p["method"], p["recipe"]) for p in result["paired"]} == {
        ("bagging", "paper"), ("bagging", "best")
    }
