"""Choosing the training form of a TentacleNet: branched, or fused (grouped convs)."""

from typing import Tuple

import tensorflow as tf

IMPLEMENTATIONS = ("grouped",)
"""How the fused form computes its grouped binary convs: Keras's own grouped
`QuantConv2D` (XLA-compiled), the form LCE converts to one LceBconv2d. (The CPU
training forms "split" and "einsum" were dropped: they trained slower than the
branched form at every n measured, docs/performance.md.)"""

# docs/performance.md. CPU (benchmarks/train_throughput.py, NiN batch 64): no fused
# form trains faster than the branched graph, and Keras's grouped conv is ~4x slower.
# GPU, one kernel per op (model.fit without XLA): cuDNN's grouped convs trained
# 2.0-2.6x faster than n separate convs at batch 64 on an H100 and an H200 (PyTorch
# proxy). Under XLA (jit_compile=True; JAX proxy) branched was faster, but "auto" is
# chosen at build time, before compile, so it serves the default fit. TensorFlow
# could not run on the lent GPU machines.
AUTO_CHOICE = {"cpu": (False, "grouped"), "gpu": (True, "grouped")}


def resolve_fused(fused) -> Tuple[bool, str]:
    """(fused?, implementation) for `build(..., fused=...)`: False, True or "auto".

    "auto" picks the training form measured fastest on this device
    (docs/performance.md): branched on CPU, fused (grouped) on a GPU for a
    `model.fit` without XLA. Under `jit_compile=True` branched trained faster on a
    GPU too (JAX/XLA proxy): pass fused=False there.
    """
    if isinstance(fused, bool):
        return fused, "grouped"
    if fused == "auto":
        return AUTO_CHOICE[device_kind()]
    raise ValueError(
        f"Expected `fused` to be False (branched, the default), True (one grouped conv per "
        f"tentacle layer) or 'auto' (the faster training form on this device), got {fused!r}."
    )


def device_kind() -> str:
    """The key of `AUTO_CHOICE` for this device: "gpu" when TensorFlow sees one, else "cpu"."""
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
