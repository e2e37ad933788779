import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq_tentacle  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

# isort: split
import autograph_speedup  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# A test-only speed-up that uses TensorFlow internals (the package does not).
autograph_speedup.skip_autograph_for_tf_keras()


@pytest.fixture(autouse=True)
def clear_session():
    yield
    tf.keras.backend.clear_session()
