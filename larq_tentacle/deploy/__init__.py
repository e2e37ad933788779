"""Export: LCE conversion, verification against Keras, the op census and its strict
rules, the sidecar and run-folder export.

One module per concept: `options` (the export choices, importable without
TensorFlow), `tflite_file` (reading and rewriting the flatbuffer), `rules` (what
the Keras topology needs in the file), `census` (op and byte counts), `padding` (a
workaround for LCE's pad fusion), `conversion` (argument checks and the LCE
converter), `verification` (parity with Keras, sign ties), `localisation` (the
first layer that disagrees), `sidecar`, `exporting` (`export` itself) and `workdir`
(a training run's folder).

Imports `larq_tentacle.core` and `larq_tentacle.utils`, never training or experiments.
(The room is called `deploy` so that importing it never shadows the `lt.export`
function.) The names below load on first use, so `import larq_tentacle.deploy.options`
stays light.
"""

import importlib

# Public name -> module that defines it.
_LAZY = {
    "ExportError": "larq_tentacle.deploy.conversion",
    "VerificationError": "larq_tentacle.deploy.verification",
    "export": "larq_tentacle.deploy.exporting",
    "op_census": "larq_tentacle.deploy.census",
    "verify": "larq_tentacle.deploy.verification",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'larq_tentacle.deploy' has no attribute {name!r}")


__all__ = ["ExportError", "VerificationError", "export", "op_census", "verify"]
