"""Save/load helpers: TentacleNets load without custom_objects boilerplate."""

import os

import larq as lq  # noqa: F401  (registers larq's layers and quantizers with Keras)
import tensorflow as tf

from larq_tentacle.core import (
    ensemble_vote,  # noqa: F401  (registers larq_tentacle>EnsembleVote)
    fused_layers,  # noqa: F401  (registers the fused-form layers)
    initializers,  # noqa: F401  (registers larq_tentacle>PseudoHadamard)
    react_layers,  # noqa: F401  (registers larq_tentacle>LearnableShift, >RPReLU)
)


def custom_objects() -> dict:
    """Every custom object a larq_tentacle model may contain, for Keras loaders.

    Ours are registered as "larq_tentacle>Name"; the SavedModel loader looks some of
    them up by bare class name, so both spellings are given.
    """
    objects = dict(tf.keras.utils.get_custom_objects())
    for key, value in list(objects.items()):
        if key.startswith("larq_tentacle>"):
            objects.setdefault(key.split(">", 1)[1], value)
    return objects


def load_model(path, *, compile: bool = True) -> tf.keras.Model:
    """Load a model saved with `model.save` (.h5, .keras or a SavedModel folder)."""
    path = os.fspath(os.path.expanduser(path))
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No saved model at {path!r}. Fix: pass the path given to model.save(...) "
            "(an .h5/.keras file or a SavedModel folder)."
        )
    with lq.context.quantized_scope(False):
        return tf.keras.models.load_model(path, custom_objects=custom_objects(), compile=compile)
