"""Layers LCE cannot binarize, which stay float inside the tentacles (issue 15, item 3).

Larq Compute Engine has one binary compute op, `LceBconv2d`: a convolution whose
kernel and input are both one bit. It has no binary depthwise convolution, its binary
grouped convolution needs a multiple of 32 input channels per group (the bitpacking
word), and an elementwise multiply or a squeeze-and-excitation gate (global pooling ->
small dense/1x1 convs -> sigmoid -> multiply) is no convolution over binary
activations at all. `tentaclize` keeps such layers float in every tentacle, each
tentacle with its own copy of the float model's weights; `paper_size_kb` counts them
at 32 bits and the strict export rules accept exactly their float ops.

`float_reason` decides while the template reads the float model (it sees the graph,
so it can tell an SE gate's convs from the tentacle's own); `kept_float_reason` reads
the reason back from a built TentacleNet's layers, where every float weight layer in a
tentacle is one of these.
"""

from typing import Dict, Optional

import tensorflow as tf

from larq_tentacle.core import binarization
from larq_tentacle.core.graph import LayerGraph

# LCE bitpacks activations into 32-bit words along the channels; a binary grouped
# conv needs each group's input channels to fill whole words.
BITPACK_CHANNELS = 32

DEPTHWISE = "depthwise convolution: LCE has no binary depthwise op"
SEPARABLE = "separable convolution: its depthwise half has no binary op in LCE"
MULTIPLY = "elementwise multiply: not a convolution over binary activations"
SE_GATE = (
    "squeeze-and-excitation gate (global pooling -> conv/dense -> multiply): it scales "
    "channels, a binary conv would make the gate constant"
)

# The layer kinds whose weights `paper_size_kb` counts (kernels and biases).
DEPTHWISE_WEIGHTS = ("depthwise_kernel", "pointwise_kernel")

# Layers that keep a gate's value a per-channel vector (SE gates run on 1x1 maps).
_GATE_PASS_THROUGH = (
    tf.keras.layers.Activation,
    tf.keras.layers.ReLU,
    tf.keras.layers.Reshape,
    tf.keras.layers.BatchNormalization,
)


def grouped_reason(layer) -> Optional[str]:
    """Why a grouped Conv2D stays float (per-group input channels not a multiple of 32)."""
    groups = getattr(layer, "groups", 1) or 1
    if groups == 1 or not isinstance(layer, tf.keras.layers.Conv2D):
        return None
    per_group = int(layer.input_shape[-1]) // groups
    if per_group % BITPACK_CHANNELS == 0:
        return None
    return (
        f"grouped convolution with {per_group} input channels per group: LCE's binary grouped "
        f"conv needs a multiple of {BITPACK_CHANNELS}"
    )


def _kind_reason(layer) -> Optional[str]:
    """Why a layer is float by its kind alone (LCE has no binary op for it), or None."""
    if isinstance(layer, tf.keras.layers.SeparableConv2D):
        return SEPARABLE
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        return DEPTHWISE
    if isinstance(layer, tf.keras.layers.Multiply):
        return MULTIPLY
    return None


def float_reason(graph: LayerGraph, name: str) -> Optional[str]:
    """Why layer `name` of a float model must stay float in a tentacle, or None."""
    layer = graph.layer(name)
    if (reason := _kind_reason(layer)) is not None:
        return reason
    if binarization.is_weight_layer(layer) and _in_gate(graph, name):
        return SE_GATE
    return grouped_reason(layer)


def kept_float_layers(graph: LayerGraph, names) -> Dict[str, str]:
    """The layers among `names` that stay float -> why (`float_reason`)."""
    return {name: reason for name in names if (reason := float_reason(graph, name))}


def kept_float_reason(layer) -> Optional[str]:
    """Why a layer of a built tentacle is float, or None for binary and weightless layers.

    In a tentacle the template binarizes every conv/dense except those `float_reason`
    kept, so a float conv/dense there on a per-channel vector is an SE gate; any other
    float conv there (a hand-made model) has no reason and the strict rules refuse it.
    """
    if (reason := _kind_reason(layer)) is not None:
        return reason
    if not binarization.is_weight_layer(layer) or binarization.is_binary_layer(layer):
        return None
    return grouped_reason(layer) or (SE_GATE if _is_vector(layer) else None)


def is_float_weight_layer(layer) -> bool:
    """Conv-like layers with weights that may stay float (depthwise, separable)."""
    return isinstance(layer, (tf.keras.layers.DepthwiseConv2D, tf.keras.layers.SeparableConv2D))


def _in_gate(graph: LayerGraph, name: str) -> bool:
    """Does `name` work on a per-channel vector (rank 2 or a 1x1 map) that scales via Multiply?"""
    if not _is_vector(graph.layer(name)):
        return False
    current = name
    while len(graph.consumers_of[current]) == 1:
        current = graph.consumers_of[current][0]
        layer = graph.layer(current)
        if isinstance(layer, tf.keras.layers.Multiply):
            return True
        is_step = binarization.is_weight_layer(layer) or isinstance(layer, _GATE_PASS_THROUGH)
        if not (is_step and _is_vector(layer)):
            return False
    return False


def _is_vector(layer) -> bool:
    shape = layer.output_shape
    return len(shape) == 2 or (len(shape) == 4 and tuple(shape[1:3]) == (1, 1))
