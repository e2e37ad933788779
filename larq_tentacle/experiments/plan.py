"""The points of a sweep: their ids, their files and the jobs that train them.

A point is one (method, n, seed): the FP32 baseline (n = 1), a TentacleNet of n
tentacles or a BENN of n members. Every finished point is one JSON file,
`<workdir>/points/<id>.json`, so a rerun skips it.

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

METHODS = ("fp32", "tentaclenet", "bagging", "boosting")
LABELS = {
    "fp32": "FP32",
    "tentaclenet": "TentacleNet",
    "bagging": "BENN bagging",
    "boosting": "BENN boosting",
}


def point_id(method: str, n: int, seed: int) -> str:
    return f"{method}_n{n}_s{seed}"


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

    Seeds are the outer loop, so a sweep stopped early still has whole curves.
    """
    jobs = []
    for seed in config.seeds:
        if config.fp32_accuracy is None:
            jobs.append(_train_job("fp32", 1, seed))
        jobs += [_train_job("tentaclenet", n, seed) for n in config.tentacles]
        for method in ("bagging", "boosting"):
            sizes = list(getattr(config, method))
            if not sizes:
                continue
            if method == "bagging" and config.sampling == "partition":
                jobs += [_pool_job(method, [n], seed) for n in sizes]
            else:
                jobs.append(_pool_job(method, sizes, seed))
    return jobs


def _train_job(method: str, n: int, seed: int) -> dict:
    return dict(kind="train", method=method, n=n, seed=seed, points=[point_id(method, n, seed)])


def _pool_job(method: str, sizes: List[int], seed: int) -> dict:
    return dict(
        kind="pool", method=method, n=max(sizes), sizes=sizes, seed=seed,
        points=[point_id(method, n, seed) for n in sizes],
    )
