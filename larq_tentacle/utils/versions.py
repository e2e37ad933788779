"""The versions this process runs with, for `doctor()`, reports and export sidecars."""

import importlib.metadata
import os
import platform
import sys

TESTED = {
    "python": "3.10 / 3.11 / 3.12",
    "tensorflow": "2.16.2",
    "tf-keras": "2.16.0",
    "larq": "0.14.0",
    "larq-compute-engine": "0.16.0",
    "numpy": "<2",
}

_DISTRIBUTIONS = (
    "larq_tentacle",
    "tensorflow",
    "tf-keras",
    "larq",
    "larq-compute-engine",
    "numpy",
    "tensorflow-datasets",
    "absl-py",
)


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    """Versions of Python and of every package larq_tentacle depends on."""
    found = {"python": platform.python_version()}
    found.update({name: _distribution_version(name) for name in _DISTRIBUTIONS})
    return found


def doctor(file=None) -> dict:
    """Print the versions in use, the tested set, and which Keras `tf.keras` is."""
    import tensorflow as tf

    file = file or sys.stdout
    found = versions()
    print("larq_tentacle environment", file=file)
    for name, version in found.items():
        tested = TESTED.get(name)
        mark = ""
        if tested and not tested.startswith("<") and not _is_tested(version, tested):
            mark = f"   (tested: {tested})"
        print(f"  {name:22s} {version}{mark}", file=file)
    print(f"  {'TF_USE_LEGACY_KERAS':22s} {os.environ.get('TF_USE_LEGACY_KERAS')!r}", file=file)
    print(f"  {'tf.keras':22s} {tf.keras.layers.Layer.__module__.split('.')[0]}", file=file)
    print(f"  {'python executable':22s} {sys.executable}", file=file)
    return found


def _is_tested(version: str, tested: str) -> bool:
    """`version` starts with one of the " / "-separated tested versions."""
    return any(version.startswith(candidate) for candidate in tested.split(" / "))
