"""Data: dataset sources (embedded digits, CIFAR through tfds, FER2013's CSV), the
preprocessing recorded with every run, and the tf.data pipelines.

Imports only `larq_tentacle.utils`; training, export (verification on real images),
experiments and the apps read their data through this room.
"""

from larq_tentacle.data.pipeline import load_dataset

__all__ = ["load_dataset"]
