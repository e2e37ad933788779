"""Experiments: the BENN bagging/boosting and int8 CNN baselines, the accuracy-vs-tentacles
sweep, its tables and plots.

The sweep in modules of one concept each: `sweep_config` (SweepConfig and the workdir's
copy), `best_recipe` (a second recipe for TentacleNet and bagging), `int8_baseline` (the
int8 CNN of `int8_widths`: train, quantize, score), `plan` (points, their ids and files,
the jobs), `sweep` (run_sweep: training and resuming), `stats` (Δ,
means, spreads, intervals and paired differences over seeds), `confidence` (intervals
and paired tests, no SciPy), `tables` (Table 2 and table2.md), `plots` (the figures),
`goal` (issue 13's accuracy goal, judged) and `results` (render: every output from the
finished points).

May import every other room; nothing in the library imports it.
"""

from larq_tentacle.experiments.best_recipe import best_recipe_from_flag
from larq_tentacle.experiments.ensembles import train_bagging, train_boosting
from larq_tentacle.experiments.results import render
from larq_tentacle.experiments.sweep import run_sweep
from larq_tentacle.experiments.sweep_config import SweepConfig, default_workdir

__all__ = [
    "SweepConfig", "best_recipe_from_flag", "default_workdir", "render", "run_sweep",
    "train_bagging", "train_boosting",
]
