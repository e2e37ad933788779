"""larq_tentacle: TentacleNet pseudo-ensemble binary CNNs on Larq.

Importing this package selects Keras 2 (`TF_USE_LEGACY_KERAS=1`) before TensorFlow
loads, because Larq does not work with Keras 3.
"""

from larq_tentacle import _environment

_environment.select_legacy_keras()
_environment.check_keras_is_legacy()

import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402

from larq_tentacle import models as _models  # noqa: E402
from larq_tentacle.core.initializers import PseudoHadamard  # noqa: E402
from larq_tentacle.core.layout import TentacleLayout, layout  # noqa: E402
from larq_tentacle.core.registry import build, get_spec, list_models, register_model  # noqa: E402
from larq_tentacle.core.serialization import custom_objects, load_model  # noqa: E402
from larq_tentacle.core.size import larq_memory_kb, paper_size_kb  # noqa: E402
from larq_tentacle.core.template import tentaclize  # noqa: E402
from larq_tentacle.utils.versions import doctor, versions  # noqa: E402

for _spec in _models.SPECS:
    register_model(_spec)

try:
    __version__ = importlib.metadata.version("larq_tentacle")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

# Parts that load heavy dependencies (the LCE converter, tf.data pipelines) are
# imported on first use, so `import larq_tentacle` stays fast.
# Public name -> module that defines it.
_LAZY = {
    "TrainConfig": "larq_tentacle.training.config",
    "train": "larq_tentacle.training.loop",
    "load_dataset": "larq_tentacle.data.pipeline",
    "export": "larq_tentacle.deploy.exporting",
    "verify": "larq_tentacle.deploy.verification",
    "ExportError": "larq_tentacle.deploy.conversion",
    "VerificationError": "larq_tentacle.deploy.verification",
    "op_census": "larq_tentacle.deploy.census",
    "fuse": "larq_tentacle.core.fusion",
    "unfuse": "larq_tentacle.core.fusion",
    "train_bagging": "larq_tentacle.experiments.ensembles",
    "train_boosting": "larq_tentacle.experiments.ensembles",
    "SweepConfig": "larq_tentacle.experiments.sweep_config",
    "run_sweep": "larq_tentacle.experiments.sweep",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'larq_tentacle' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


# A literal list, so linters see that the imports above are re-exports.
__all__ = [
    "PseudoHadamard",
    "TentacleLayout",
    "build",
    "custom_objects",
    "doctor",
    "get_spec",
    "larq_memory_kb",
    "layout",
    "list_models",
    "load_model",
    "paper_size_kb",
    "register_model",
    "tentaclize",
    "versions",
]
__all__.extend(_LAZY)
__all__.sort()
