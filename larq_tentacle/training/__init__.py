"""Training: the recipe and its flags, data sources and pipelines, callbacks, the fit
loop and multi-worker distribution.

Imports `larq_tentacle.core` and `larq_tentacle.utils`, never export or experiments.
"""

from larq_tentacle.data.pipeline import load_dataset
from larq_tentacle.training.config import TrainConfig
from larq_tentacle.training.loop import train

__all__ = ["TrainConfig", "load_dataset", "train"]
