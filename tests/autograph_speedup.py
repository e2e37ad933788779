"""Test-only: keep AutoGraph out of tf_keras's own code, as TensorFlow does for `keras`.

TensorFlow's AutoGraph skips modules it lists as "do not convert"; that list names
`keras` but not `tf_keras`, the package `tf.keras` is under TF_USE_LEGACY_KERAS=1. So
every trace of a train/test/predict function re-transpiles tf_keras's training loop,
losses, metrics and optimizer, none of which needs it (they ran unconverted as
`keras` up to TF 2.15). Measured on this project's 2-core machine: one-epoch training
run of a 2-tentacle FerNet on mock CIFAR-10, 72 s -> 22 s of CPU time.
Larq's layers are still converted, as before.

This uses TensorFlow's internal AutoGraph configuration (there is no public switch); if
that module ever changes, `skip_autograph_for_tf_keras` does nothing and training is
only slower.
"""

_applied = False


def skip_autograph_for_tf_keras() -> bool:
    """Add `tf_keras` to AutoGraph's do-not-convert rules (once). True if in effect."""
    global _applied
    if _applied:
        return True
    try:
        from tensorflow.python.autograph.core import config
    except ImportError:
        return False
    rules = getattr(config, "CONVERSION_RULES", None)
    rule_type = getattr(config, "DoNotConvert", None)
    if not isinstance(rules, tuple) or rule_type is None:
        return False
    config.CONVERSION_RULES = (rule_type("tf_keras"),) + rules
    _applied = True
    return True
