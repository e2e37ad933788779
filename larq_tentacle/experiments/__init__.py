"""Experiments: the BENN bagging/boosting baselines, the accuracy-vs-tentacles sweep,
its tables and plots.

May import every other room; nothing in the library imports it.
"""

from larq_tentacle.experiments.ensembles import train_bagging, train_boosting
from larq_tentacle.experiments.sweep import SweepConfig, run_sweep

__all__ = ["SweepConfig", "run_sweep", "train_bagging", "train_boosting"]
