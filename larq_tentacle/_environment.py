"""Select Keras 2 before TensorFlow loads, and refuse to run on Keras 3.

TensorFlow 2.16 resolves `tf.keras` to Keras 3 unless `TF_USE_LEGACY_KERAS` is the
*string* "1" when TensorFlow is first imported. Larq only works with Keras 2
(the `tf-keras` package), so this module must run before anything imports
TensorFlow, and it must fail loudly when it ran too late.
"""

import os
import sys

LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"

_FIX = (
    "Fix: set the environment variable before TensorFlow is first imported, e.g.\n"
    "    import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'   # a string, not 1\n"
    "    import larq_tentacle\n"
    "or import larq_tentacle before tensorflow/keras/larq, or run\n"
    "    TF_USE_LEGACY_KERAS=1 python your_script.py\n"
    "and make sure tf-keras==2.16.0 is installed (pip install tf-keras==2.16.0)."
)


def select_legacy_keras() -> None:
    value = os.environ.get(LEGACY_KERAS_VARIABLE)
    if value is None:
        os.environ[LEGACY_KERAS_VARIABLE] = "1"
    elif value.strip().lower() not in ("1", "true"):
        raise ImportError(
            f"larq_tentacle needs Keras 2, but {LEGACY_KERAS_VARIABLE}={value!r} asks "
            f"TensorFlow for Keras 3.\n{_FIX}"
        )


def check_keras_is_legacy() -> None:
    """Raise ImportError when `tf.keras` is Keras 3 (TensorFlow was imported first)."""
    try:
        # The import path, not the `tf.keras` attribute: larq imports
        # `tensorflow.keras...`, which is fixed when TensorFlow is first imported.
        from tensorflow.keras.layers import Layer

        layer_module = Layer.__module__
    except (ImportError, AttributeError) as error:  # tf-keras missing or broken
        raise ImportError(f"tf.keras could not be loaded ({error}).\n{_FIX}") from error
    if not layer_module.startswith("tf_keras"):
        already = sorted(m for m in ("tensorflow", "keras", "larq") if m in sys.modules)
        raise ImportError(
            "larq_tentacle needs Keras 2 (tf-keras), but tf.keras is Keras 3 "
            f"(tf.keras.layers.Layer comes from {layer_module!r}). This happens when "
            f"TensorFlow was imported before {LEGACY_KERAS_VARIABLE}='1' was set "
            f"(already imported: {already}).\n{_FIX}"
        )
