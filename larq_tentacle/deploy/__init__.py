"""Export: LCE conversion, verification against Keras, the op census and its strict
rules, the sidecar and run-folder export.

Imports `larq_tentacle.core` and `larq_tentacle.utils`, never training or experiments.
(The room is called `deploy` so that importing it never shadows the `lt.export` function.)
"""

from larq_tentacle.deploy.census import op_census
from larq_tentacle.deploy.exporter import ExportError, VerificationError, export, verify

__all__ = ["ExportError", "VerificationError", "export", "op_census", "verify"]
