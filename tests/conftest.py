import ctypes
import ctypes.util
import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq_tentacle  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

# isort: split
import autograph_speedup  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from larq_tentacle.utils.seeding import seed_everything, use_deterministic_ops  # noqa: E402

# A test-only speed-up that uses TensorFlow internals (the package does not).
autograph_speedup.skip_autograph_for_tf_keras()

# Every lt.train run turns deterministic ops on for the rest of its process; on from the
# start, a test's numbers do not depend on which test files a pytest worker ran before it.
use_deterministic_ops(True)
seed_everything(0)  # for the first module fixture too (they run before the per-test seed)


@pytest.fixture(autouse=True)
def clear_session():
    # Deterministic ops refuse an unseeded random op; a test that does not seed itself
    # starts from the same seed whichever tests ran before it.
    seed_everything(0)
    yield
    tf.keras.backend.clear_session()


_LIBC = ctypes.util.find_library("c")
_MALLOC_TRIM = getattr(ctypes.CDLL(_LIBC), "malloc_trim", None) if _LIBC else None  # glibc only


@pytest.fixture(scope="module", autouse=True)
def release_memory_after_each_file():
    """Hand a finished test file's heap back to the system.

    With two pytest workers the suite's memory grew to 19.4 GB of the machine's 24; the
    allocator keeps freed TensorFlow/converter memory unless trimmed. Measured with it:
    peaks of 17.5 and 18.9 GB, so most of the growth is memory still held, not freed.
    """
    yield
    gc.collect()  # the per-test fixture has already cleared the Keras session
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
