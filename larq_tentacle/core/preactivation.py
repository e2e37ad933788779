"""The pre-activation rewrite: BN -> ReLU -> conv blocks in the order LCE fuses (issue 15, item 2).

DenseNet and ResNetV2 normalize a conv's *input* (BN -> ReLU -> conv). In a tentacle
the ReLU goes (it would make the sign constant) and the BatchNorm is left in front of
a binary conv, where Larq Compute Engine cannot fold it: it converts to a float MUL
and ADD per tentacle layer. LCE folds a BatchNorm only into the output of the binary
conv before it (binary conv -> BN -> next binary conv, see `binarization`).

The tentacles are new binary networks, trained from their own initialization, so
each is rewritten into that order rather than kept equal to the float model: a
*pre-activation BatchNorm* (one in front of a binary conv that reads neither a binary
conv of its own nor a layer kept float) is left out, and every binary conv of such a
tentacle that no BatchNorm reads gets one after it, named `t<i>_<conv>_post_bn`. Each
block then keeps one BatchNorm per conv. Models without pre-activation BatchNorms are
not touched. The BatchNorm after a layer kept float (MobileNetV2's depthwise -> BN ->
ReLU6 -> project) stays: it is that layer's, folds into it, and is the only threshold of
the binary conv it feeds (measured: without it the project conv read the bare depthwise
output, exact zeros and float-rounding noise, and the file kept Keras's top-1 on 46.9 %
of the real inputs).
`layout(model).preactivation` lists the convs that got a BatchNorm.
"""

import dataclasses
from typing import FrozenSet, Iterable, List

import tensorflow as tf

from larq_tentacle.core import binarization
from larq_tentacle.core.graph import LayerGraph

POST_BN_SUFFIX = "_post_bn"

# Layers between a BatchNorm and the binary conv it normalizes for: the activation the
# template drops there, and layers that carry values through unchanged in sign.
_BETWEEN = (
    tf.keras.layers.Activation,
    tf.keras.layers.ReLU,
    tf.keras.layers.ZeroPadding2D,
    tf.keras.layers.Dropout,
)


@dataclasses.dataclass(frozen=True)
class Rewrite:
    """The pre-activation rewrite of one tentacle (the same for every tentacle)."""

    moved: FrozenSet[str]  # pre-activation BatchNorms left out of the tentacles
    bn_after: FrozenSet[str]  # binary convs that get a BatchNorm after them

    def after(self, conv: str, new_name: str, output: tf.Tensor) -> tf.Tensor:
        """The output of tentacle conv `new_name` (float name `conv`), with its BatchNorm."""
        if conv not in self.bn_after:
            return output
        return tf.keras.layers.BatchNormalization(name=post_bn_name(new_name))(output)


def binary_convs(graph: LayerGraph, tentacle: Iterable[str], kept_float) -> List[str]:
    """The tentacle's conv/dense layers that become binary (all but those kept float)."""
    return [
        n for n in tentacle if binarization.is_weight_layer(graph.layer(n)) and n not in kept_float
    ]


def plan(graph: LayerGraph, tentacle: Iterable[str], kept_float) -> Rewrite:
    """The rewrite of the tentacle layers `tentacle`, where `kept_float` stay float."""
    tentacle = list(tentacle)
    binary = set(binary_convs(graph, tentacle, kept_float))
    moved = frozenset(
        name for name in tentacle
        if isinstance(graph.layer(name), tf.keras.layers.BatchNormalization)
        and not _reads_own_conv(graph, name, binary)
        and graph.inputs_of[name][0] not in kept_float
        and _feeds_only_binary(graph, name, binary)
    )
    if not moved:
        return Rewrite(frozenset(), frozenset())
    bn_after = frozenset(
        name for name in tentacle if name in binary and not _read_by_own_bn(graph, name, moved)
    )
    return Rewrite(moved, bn_after)


def post_bn_name(conv_name: str) -> str:
    """The name of the BatchNorm the rewrite puts after the binary conv `conv_name`."""
    return conv_name + POST_BN_SUFFIX


def conv_of_post_bn(layer_name: str):
    """The conv a rewrite BatchNorm follows (`t1_conv` for `t1_conv_post_bn`), or None."""
    return layer_name[: -len(POST_BN_SUFFIX)] if layer_name.endswith(POST_BN_SUFFIX) else None


def _reads_own_conv(graph: LayerGraph, name: str, binary: set) -> bool:
    """Does BatchNorm `name` read a binary conv that nothing else reads (conv -> BN)?"""
    producer = graph.inputs_of[name][0]
    return producer in binary and graph.consumers_of[producer] == [name]


def _read_by_own_bn(graph: LayerGraph, conv: str, moved: FrozenSet[str]) -> bool:
    readers = graph.consumers_of[conv]
    only = graph.layer(readers[0]) if len(readers) == 1 else None
    return isinstance(only, tf.keras.layers.BatchNormalization) and readers[0] not in moved


def _feeds_only_binary(graph: LayerGraph, name: str, binary: set) -> bool:
    """Does every path from `name` reach a binary conv through `_BETWEEN` layers only?"""
    readers = graph.consumers_of[name]
    if not readers:
        return False
    for reader in readers:
        if reader in binary:
            continue
        between = isinstance(graph.layer(reader), _BETWEEN)
        if not (between and _feeds_only_binary(graph, reader, binary)):
            return False
    return True
