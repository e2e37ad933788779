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


def without_autograph(function):
    """`function` (e.g. a step that builds or converts models) with AutoGraph off inside it.

    Keras converts every layer call through AutoGraph while it builds a functional model or
    traces one for a SavedModel (which LCE's converter writes first); tf_keras's and Larq's
    layers hold no Python control flow on tensors, so the graph is the same without it. In
    the main job this cut the size table's model building and each LCE export by a quarter
    to a third, with byte-identical `.tflite` files. A layer that does need AutoGraph fails
    to trace loudly (and LCE then warns of its graphdef fallback), it is never silently wrong.
    """
    return tf.autograph.experimental.do_not_convert(function)
