"""Binary thresholds moved off the integer lattice before LCE conversion (issue 15).

A binary conv with ±1 inputs and an α·sign(w) kernel computes α·k for an integer k
of the parity of its fan-in n (= kh·kw·cin). When its output only feeds binary
inputs, all that matters is on which side of the zero crossing k* (of bias, or of
the BatchNorm after it) each k falls, and LCE turns that into the integer
threshold `floor(0.5 * (bias / |mult| + n))` computed in float32. Measured: after
a short training the offsets are tiny (VGG16 conv biases ~1e-5 with α = 0.05,
ResNet50 BatchNorms with k* within 1e-4 of 0): `n + bias / |mult|` then rounds to
n (half an ulp of n = 4608 is 2.4e-4), every output with k = 0 flips from Keras's
sign(bias) < 0 to +1, and the file keeps Keras's top-1 on a quarter of the inputs
(VGG16). A toy conv chain with bias -1e-6 at n = 576 shows it alone
(tests/test_thresholds.py).

`centred_thresholds` moves each such k* to the middle between its two lattice
neighbours (an integer of the other parity, 1 away from both), changing the
conv's bias (no BatchNorm) or the BatchNorm's beta. Every lattice value keeps its
sign, so the model computes the same function on every input where Keras's own
value is not a float-rounding tie; LCE's threshold then no longer depends on
rounding. A lattice value exactly at k* keeps sign(0) = +1. Only chains whose
every reader is a binary input (through max pooling, padding, reshapes and
concatenations, which keep signs) are changed: a float reader sees the values.
"""

import contextlib
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.core.graph import LayerGraph
from larq_tentacle.deploy import rules

# Readers that pass each element's sign through unchanged to a later sign().
_SIGN_KEEPING = (
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.ZeroPadding2D,
    tf.keras.layers.Reshape,
    tf.keras.layers.Flatten,
    tf.keras.layers.Dropout,
    tf.keras.layers.Concatenate,
)


@contextlib.contextmanager
def centred_thresholds(model: tf.keras.Model):
    """Within the block, `model` has its binary-only thresholds centred (see module doc).

    The weights are restored on exit, also after an error; the model's function is
    the same on every input without a float-rounding tie at a binary activation.
    """
    changes = threshold_changes(model)
    saved = {name: layer.get_weights() for name, (layer, _) in changes.items()}
    try:
        for layer, weights in changes.values():
            layer.set_weights(weights)
        yield len(changes)
    finally:
        for name, weights in saved.items():
            changes[name][0].set_weights(weights)


def threshold_changes(model: tf.keras.Model) -> Dict[str, tuple]:
    """layer name -> (layer, new weights) for every threshold `centred_thresholds` moves."""
    try:
        graph = LayerGraph(model, where="Centring binary thresholds")
    except (TypeError, ValueError):  # not a plain functional graph: convert it as it is
        return {}
    changes = {}
    for name in graph.order:
        conv = graph.layer(name)
        if not rules.is_binary_conv(conv) or len(graph.consumers_of[name]) != 1:
            continue
        alpha = _kernel_scale(conv)
        reader = graph.layer(graph.consumers_of[name][0])
        bn = reader if isinstance(reader, tf.keras.layers.BatchNormalization) else None
        if alpha is None or not _feeds_only_binary(graph, bn.name if bn else name):
            continue
        target = bn or conv
        weights = _centred(conv, bn, alpha)
        if weights is not None:
            changes[target.name] = (target, weights)
    return changes


def _kernel_scale(conv) -> Optional[np.ndarray]:
    """α per output channel when the quantized kernel is ±α (None otherwise)."""
    kernel = tf.constant(conv.get_weights()[0])
    kernel = np.asarray(conv.kernel_quantizer(kernel), np.float64)
    magnitude = np.abs(kernel).reshape(-1, kernel.shape[-1])
    alpha = magnitude.max(0)
    if np.any(alpha <= 0) or not np.allclose(magnitude, alpha, rtol=1e-6, atol=0):
        return None
    return alpha


def _feeds_only_binary(graph: LayerGraph, name: str) -> bool:
    readers = graph.consumers_of[name]
    if not readers:
        return False
    for reader in readers:
        layer = graph.layer(reader)
        if rules.is_binary_conv(layer):
            continue
        if not (isinstance(layer, _SIGN_KEEPING) and _feeds_only_binary(graph, reader)):
            return False
    return True


def _centred(conv, bn, alpha: np.ndarray) -> Optional[List[np.ndarray]]:
    """New weights of `bn` (or of `conv` without one) with k* centred, or None if unchanged."""
    kernel = conv.kernel.shape
    fan_in = int(kernel[0]) * int(kernel[1]) * int(kernel[2])
    if (bn is None and not conv.use_bias) or (bn is not None and not _centrable(bn)):
        return None  # no parameter to move the threshold with
    bias = np.asarray(conv.get_weights()[1], np.float64) if conv.use_bias else np.zeros_like(alpha)
    if bn is None:
        slope, k_star = alpha, -bias / alpha
    else:
        gamma, beta, mean, scale = _bn_parts(bn, len(alpha))
        if np.any(gamma == 0):
            return None
        slope = alpha * gamma / scale
        k_star = (mean - bias - beta * scale / gamma) / alpha
    # the lattice point at or above k* stays positive (slope > 0), at or below (slope < 0)
    parity = fan_in % 2
    up = 2 * np.ceil((k_star - parity) / 2) + parity - 1
    down = 2 * np.floor((k_star - parity) / 2) + parity + 1
    centred = np.where(slope > 0, up, down)
    inside = np.abs(k_star) <= fan_in  # outside, every k is on one side already
    centred = np.where(inside, centred, k_star)
    if np.array_equal(centred, k_star):
        return None
    if bn is None:
        weights = conv.get_weights()
        weights[1] = (-alpha * centred).astype(weights[1].dtype)
        return weights
    weights = bn.get_weights()
    beta_index = 1 if bn.scale else 0
    new_beta = -(alpha * centred + bias - mean) * gamma / scale
    weights[beta_index] = new_beta.astype(weights[beta_index].dtype)
    return weights


def _centrable(bn) -> bool:
    axis = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
    return bn.center and list(axis) in ([-1], [3])


def _bn_parts(bn, channels: int):
    """(gamma, beta, moving mean, sqrt(moving var + eps)) in float64."""
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros(channels)
    mean = np.asarray(bn.moving_mean, np.float64)
    scale = np.sqrt(np.asarray(bn.moving_variance, np.float64) + bn.epsilon)
    return gamma, beta, mean, scale
