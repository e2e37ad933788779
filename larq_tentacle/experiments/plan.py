"""The points of a sweep: their ids, their files and the jobs that train them.

A point is one (method, n, seed, recipe): the FP32 baseline (n = 1), a TentacleNet of n
tentacles or a BENN of n members, trained with the sweep's recipe ("paper") or, for
TentacleNet and bagging, also with its `best_recipe` ("best"); an int8 CNN baseline point
(method "int8", n = 1) is one (width, seed) of `int8_widths`. Every finished point is
one JSON file, `<workdir>/points/<id>.json`, so a rerun skips it; a point written before
recipes existed has no `recipe` and is a "paper" point (`recipe_of`).

Points and cost. A BENN of N members is the first N members of a larger ensemble:
bootstrap bagging draws member k's sample from (seed, k) alone and SAMME is
sequential, so one pool of max(N) members per seed scores every N of the list
(its wall time is the sum of its first N members' times). Partition bagging
splits the data by N, so it trains one ensemble per N.
"""

import json
import os
from typing import List

from larq_tentacle.experiments.sweep_config import SweepConfig
from larq_tentacle.experiments.sweep_folder import SweepFolder

METHODS = ("fp32", "tentaclenet", "bagging", "boosting", "int8")
LABELS = {
    "fp32": "FP32",
    "tentaclenet": "TentacleNet",
    "bagging": "BENN bagging",
    "boosting": "BENN boosting",
    "int8": "int8 CNN",
}


def label(method: str, recipe: str = "paper") -> str:
    """"TentacleNet", or "TentacleNet (best recipe)" for a best-recipe series."""
    return LABELS[method] + ("" if recipe == "paper" else f" ({recipe} recipe)")


def point_id(method: str, n: int, seed: int, recipe: str = "paper") -> str:
    """tentaclenet_n3_s0 (the paper's recipe) or tentaclenet_best_n3_s0."""
    tag = "" if recipe == "paper" else f"_{recipe}"
    return f"{method}{tag}_n{n}_s{seed}"


def int8_point_id(width: float, seed: int) -> str:
    """int8_w0.5_s0: the int8 CNN baseline of channel width 0.5, seed 0."""
    return f"int8_w{width:g}_s{seed}"


def recipe_of(point: dict) -> str:
    """The recipe a point trained with: "paper" for points written before recipes existed."""
    return point.get("recipe") or "paper"


def load_points(workdir) -> List[dict]:
    """Every finished point of `workdir`, in file-name order."""
    directory = SweepFolder(workdir).points
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"No sweep points in {directory!r}. Fix: run the sweep with this workdir first."
        )
    points = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json") and not name.startswith("."):
            with open(os.path.join(directory, name)) as file:
                points.append(json.load(file))
    return points


def plan(config: SweepConfig) -> List[dict]:
    """The jobs of a sweep, in the order they run: each trains one model or one BENN pool.

    Seeds are the outer loop, so a sweep stopped early still has whole curves. Within a
    seed: FP32 (the teacher of a best recipe that distils), TentacleNet (paper, then
    best), bagging (paper, then best), boosting (paper only), the int8 CNN per width
    (after FP32, whose trained model a width-1 int8 point reuses).
    """
    recipes = ("paper", "best") if config.best_recipe else ("paper",)
    jobs = []
    for seed in config.seeds:
        if config.fp32_accuracy is None:
            jobs.append(_train_job("fp32", 1, seed, "paper"))
        for recipe in recipes:
            jobs += [_train_job("tentaclenet", n, seed, recipe) for n in config.tentacles]
        for method in ("bagging", "boosting"):
            sizes = list(getattr(config, method))
            for recipe in recipes if method == "bagging" and sizes else ("paper",):
                if not sizes:
                    continue
                if method == "bagging" and config.sampling == "partition":
                    jobs += [_pool_job(method, [n], seed, recipe) for n in sizes]
                else:
                    jobs.append(_pool_job(method, sizes, seed, recipe))
        jobs += [_int8_job(width, seed) for width in config.int8_widths]
    return jobs


def _train_job(method: str, n: int, seed: int, recipe: str) -> dict:
    return dict(
        kind="train", method=method, n=n, seed=seed, recipe=recipe,
        points=[point_id(method, n, seed, recipe)],
    )


def _int8_job(width: float, seed: int) -> dict:
    return dict(kind="int8", method="int8", n=1, width=width, seed=seed, recipe="paper",
                points=[int8_point_id(width, seed)])


def _pool_job(method: str, sizes: List[int], seed: int, recipe: str) -> dict:
    return dict(
        kind="pool", method=method, n=max(sizes), sizes=sizes, seed=seed, recipe=recipe,
        points=[point_id(method, n, seed, recipe) for n in sizes],
    )
