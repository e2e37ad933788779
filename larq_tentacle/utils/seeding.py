"""One seed for Python's, NumPy's and TensorFlow's random numbers, and deterministic ops.

Not `tf.keras.utils.set_random_seed`: with it, tf-keras 2.16 draws each unseeded layer's
seed with `random.randint(1, 1e9)`, which Python 3.12 rejects (a float bound), so every
model built after it fails there (keras-team/tf-keras#803). Seeding the three generators
directly gives the same run-to-run determinism on Python 3.10, 3.11 and 3.12 alike.

Seeds fix the random numbers; the order in which threads add up floats is the other
source of run-to-run differences, which `use_deterministic_ops` removes.
"""

import random

import numpy as np
import tensorflow as tf

# TensorFlow 2.16 can turn deterministic ops on but has no public way to ask whether they
# are, nor to turn them off again: this process-wide flag remembers it.
_DETERMINISTIC_OPS = {"enabled": False}


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and TensorFlow's global seed."""
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def use_deterministic_ops(enabled: bool) -> bool:
    """Turn TensorFlow's deterministic ops on when `enabled`; returns whether they are on.

    With them (`tf.config.experimental.enable_op_determinism`) the same seed on the same
    machine gives the same losses and accuracies. Once on they stay on for the process,
    so a later `enabled=False` run in it is deterministic too (and the return value says
    so, for its report).
    """
    if enabled and not _DETERMINISTIC_OPS["enabled"]:
        tf.config.experimental.enable_op_determinism()
        _DETERMINISTIC_OPS["enabled"] = True
    return _DETERMINISTIC_OPS["enabled"]


def deterministic_ops() -> bool:
    """Whether `use_deterministic_ops` turned TensorFlow's deterministic ops on."""
    return _DETERMINISTIC_OPS["enabled"]
