"""One seed for Python's, NumPy's and TensorFlow's random numbers.

Not `tf.keras.utils.set_random_seed`: with it, tf-keras 2.16 draws each unseeded layer's
seed with `random.randint(1, 1e9)`, which Python 3.12 rejects (a float bound), so every
model built after it fails there (keras-team/tf-keras#803). Seeding the three generators
directly gives the same run-to-run determinism on Python 3.10, 3.11 and 3.12 alike.
"""

import random

import numpy as np
import tensorflow as tf


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and TensorFlow's global seed."""
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
