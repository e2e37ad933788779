"""Trace Keras's train/test/predict steps without AutoGraph, through the public API.

Under TF_USE_LEGACY_KERAS=1, `tf.keras` is the `tf_keras` package, which TensorFlow's
AutoGraph does not list as "do not convert" (it lists `keras`), so every trace of a
train/test/predict function re-transpiles tf_keras's training loop, losses, metrics
and optimizer. The steps hold no Python control flow on tensors, so wrapping them
with `tf.autograph.experimental.do_not_convert` traces the same graph, faster (one
epoch of a 2-tentacle FerNet on digits: 38 s -> 19 s of CPU time, same losses; see
docs/training.md).
"""

import tensorflow as tf

_MARK = "_larq_tentacle_unconverted"


def skip_autograph(model: tf.keras.Model) -> tf.keras.Model:
    """Make `model`'s train/test/predict steps trace without AutoGraph (in place, once).

    Instance attributes shadow the class's steps, so only this model changes.
    """
    for name in ("train_step", "test_step", "predict_step"):
        step = getattr(model, name)
        if not getattr(step, _MARK, False):
            unconverted = tf.autograph.experimental.do_not_convert(step)
            setattr(unconverted, _MARK, True)
            setattr(model, name, unconverted)
    return model
