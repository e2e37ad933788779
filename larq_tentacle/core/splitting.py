"""How `tentaclize` reads a float CNN (Mocerino & Calimera, §3): its stem, the layers
every tentacle replicates, its head and which head variant of Fig. 2 it gets, and what
changes inside the tentacles: activations that would spoil a binary input, layers LCE
cannot binarize (`float_layers`), pre-activation BatchNorms (`preactivation`) and the
learnable shifts of block="react" (`blocks`). `template` builds the TentacleNet from it.
"""

import dataclasses
from typing import Dict, List

import larq as lq
import tensorflow as tf

from larq_tentacle.core import binarization, float_layers, preactivation
from larq_tentacle.core.blocks import ShiftPlan, plan_shifts
from larq_tentacle.core.graph import LayerGraph

_STEM_CHAIN = (
    tf.keras.layers.BatchNormalization,
    tf.keras.layers.Activation,
    tf.keras.layers.ReLU,
    tf.keras.layers.LeakyReLU,
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.Dropout,
    tf.keras.layers.ZeroPadding2D,
)
# Layers that carry the sign of their input through unchanged (for the question
# "does this ReLU end up in front of a binary quantizer?").
_SIGN_PASS_THROUGH = (
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.GlobalAveragePooling2D,
    tf.keras.layers.GlobalMaxPooling2D,
    tf.keras.layers.Dropout,
    tf.keras.layers.ZeroPadding2D,
    tf.keras.layers.Flatten,
    tf.keras.layers.Reshape,
    tf.keras.layers.Concatenate,  # concatenates channels, each keeps its sign
)


@dataclasses.dataclass
class Split:
    """Where a float model's layers go in the TentacleNet."""

    graph: LayerGraph
    stem: List[str]
    tentacle: List[str]
    head_trunk: str
    variant: str  # "a" (shared conv + global pooling) or "b" (dense classifier)
    shared_head: List[str]  # 2a: head_trunk .. global pooling, applied per tentacle
    post: List[str]  # layers after the classifier (e.g. the softmax)
    drop_activation: set  # layers that would spoil a sign(): non-negative activations, Dropout
    shifts: ShiftPlan  # block="react": the learnable shifts in front of the binary activations
    float_layers: Dict[str, str]  # tentacle layers LCE cannot binarize -> why (float_layers.py)
    rewrite: preactivation.Rewrite  # pre-activation BatchNorms moved after binary convs


def is_plain_conv(layer) -> bool:
    return type(layer) is tf.keras.layers.Conv2D


def _is_plain_dense(layer) -> bool:
    return type(layer) is tf.keras.layers.Dense


def _rank(layer) -> int:
    return len(layer.output_shape)


def _chain_after(graph: LayerGraph, start: str) -> List[str]:
    """Single-consumer, single-input layers after `start`, up to the model output."""
    chain, current = [], start
    while current != graph.output_name:
        consumers = graph.consumers_of[current]
        if len(consumers) != 1 or len(graph.inputs_of[consumers[0]]) != 1:
            raise ValueError(
                f"tentaclize expects the classifier {start!r} of {graph.model.name!r} to be "
                f"followed by a plain chain of layers up to the output, but {current!r} feeds "
                f"{consumers}."
            )
        current = consumers[0]
        chain.append(current)
    return chain


def split_model(model: tf.keras.Model, *, block: str = "xnor", rprelu: bool = False) -> Split:
    """Assign every layer of a float functional CNN to the stem, the tentacle or the head."""
    graph = LayerGraph(model, where="tentaclize")
    weight_layers = _weight_layers_of_float_cnn(graph)
    stem_conv, head_trunk = weight_layers[0], weight_layers[-1]
    stem = _stem(graph, stem_conv)
    variant, shared_head, post = _head_layers(graph, head_trunk)
    head = set(shared_head) | set(post) | {head_trunk}
    tentacle = _tentacle(graph, stem, head, head_trunk)
    kept_float = float_layers.kept_float_layers(graph, tentacle)
    rewrite = preactivation.plan(graph, tentacle, kept_float)
    drop_activation = _sign_spoilers(graph, stem, tentacle, kept_float, rewrite.moved)
    shifts = plan_shifts(graph, tentacle, drop_activation, block=block, rprelu=rprelu)
    return Split(graph, stem, tentacle, head_trunk, variant, shared_head, post, drop_activation,
                  shifts, kept_float, rewrite)


def _weight_layers_of_float_cnn(graph: LayerGraph) -> List[str]:
    """The conv/dense layers in order, checked: float, first a Conv2D, at least three."""
    name = graph.model.name
    weight_layers = [n for n in graph.order if binarization.is_weight_layer(graph.layer(n))]
    quantized = [n for n in graph.order if isinstance(graph.layer(n), lq.layers.QuantizerBase)]
    if quantized:
        raise ValueError(
            f"tentaclize needs a float model, but {name!r} already has quantized layers "
            f"{quantized[:3]}. Fix: pass the float model (e.g. lt.build(..., precision='float'))."
        )
    if not weight_layers or not is_plain_conv(graph.layer(weight_layers[0])):
        first = weight_layers[0] if weight_layers else None
        kind = type(graph.layer(first)).__name__ if first else "no Conv2D/Dense layer at all"
        raise ValueError(
            f"tentaclize needs a CNN whose first weight layer is a Conv2D (the shared stem); "
            f"{name!r} starts with {first!r} ({kind}). Fix: pass a model whose first "
            "layer after the input is a tf.keras.layers.Conv2D."
        )
    if len(weight_layers) < 3:
        raise ValueError(
            f"tentaclize needs at least 3 conv/dense layers (float first layer, binary inner "
            f"layers, float classifier); {name!r} has {len(weight_layers)}: {weight_layers}."
        )
    return weight_layers


def _stem(graph: LayerGraph, stem_conv: str) -> List[str]:
    """The first conv, what leads to it and the plain chain (BN, activation, pooling) after it."""
    stem = [n for n in graph.order if n in graph.ancestors(stem_conv) and n != graph.input_name]
    stem.append(stem_conv)
    current = stem_conv
    while True:
        consumers = graph.consumers_of[current]
        if len(consumers) != 1 or len(graph.inputs_of[consumers[0]]) != 1:
            return stem
        if not isinstance(graph.layer(consumers[0]), _STEM_CHAIN):
            return stem
        current = consumers[0]
        stem.append(current)


def _head_layers(graph: LayerGraph, head_trunk: str):
    """(variant, shared head layers, layers after the classifier) for the last weight layer."""
    name = graph.model.name
    head_layer = graph.layer(head_trunk)
    if len(graph.inputs_of[head_trunk]) != 1:
        raise ValueError(f"The classifier {head_trunk!r} of {name!r} must have exactly one input.")
    if _is_plain_dense(head_layer):
        post = _chain_after(graph, head_trunk)
        if _rank(graph.layer(graph.inputs_of[head_trunk][0])) != 2:
            raise ValueError(
                f"The dense classifier {head_trunk!r} of {name!r} must read a flat feature "
                "vector (rank 2). Fix: add GlobalAveragePooling2D or Flatten before it."
            )
        return "b", [], post
    if not is_plain_conv(head_layer):
        raise ValueError(
            f"The last weight layer {head_trunk!r} of {name!r} is a "
            f"{type(head_layer).__name__}; tentaclize supports a Conv2D or Dense classifier."
        )
    chain = _chain_after(graph, head_trunk)
    pooled = [n for n in chain if _rank(graph.layer(n)) == 2]
    if not pooled:
        raise ValueError(
            f"{name!r} ends in the conv {head_trunk!r} but never pools it to logits. "
            "Fix: end the model with GlobalAveragePooling2D over C channels (Fig. 2-a) "
            "or with a Dense classifier (Fig. 2-b)."
        )
    cut = chain.index(pooled[0]) + 1
    return "a", [head_trunk] + chain[:cut], chain[cut:]


def _tentacle(graph: LayerGraph, stem: List[str], head: set, head_trunk: str) -> List[str]:
    """The layers between the stem and the classifier, checked to be binarizable."""
    name = graph.model.name
    inner = graph.ancestors(head_trunk) - set(stem) - {graph.input_name}
    tentacle = [n for n in graph.order if n in inner]
    placed = inner | head | set(stem) | {graph.input_name}
    unassigned = [n for n in graph.order if n not in placed]
    if unassigned:
        raise ValueError(
            f"tentaclize could not place layers {unassigned} of {name!r}: they do not lead to "
            "the classifier. Fix: remove dangling branches from the model."
        )
    for layer_name in tentacle:
        layer = graph.layer(layer_name)
        allowed = is_plain_conv(layer) or _is_plain_dense(layer)
        allowed = allowed or isinstance(layer, tf.keras.layers.BatchNormalization)
        allowed = allowed or float_layers.float_reason(graph, layer_name) is not None
        if layer.weights and not allowed:
            raise ValueError(
                f"tentaclize cannot binarize layer {layer_name!r} ({type(layer).__name__}) of "
                f"{name!r}: inner weight layers must be Conv2D, Dense, BatchNormalization or "
                f"one of the float layers of larq_tentacle.core.float_layers."
            )
    if not any(binarization.is_weight_layer(graph.layer(n)) for n in tentacle):
        raise ValueError(f"{name!r} has no inner conv/dense layer to binarize.")
    return tentacle


def _sign_spoilers(graph: LayerGraph, stem, tentacle, kept_float, moved) -> set:
    """Stem/tentacle layers whose output would spoil the sign() of a binary layer they feed.

    A non-negative activation makes that sign constant +1, and a Dropout turns the
    activations it drops into +1 rather than 0 (sign(0) = +1). BatchNorms the
    pre-activation rewrite moves away (`moved`) no longer sit in between.
    """
    binary_inputs = set(preactivation.binary_convs(graph, tentacle, kept_float))

    def feeds_binary(layer_name: str) -> bool:
        stack = list(graph.consumers_of[layer_name])
        while stack:
            consumer = stack.pop()
            if consumer in binary_inputs:
                return True
            if passes_sign_on(graph.layer(consumer)) or consumer in moved:
                stack.extend(graph.consumers_of[consumer])
        return False

    def passes_sign_on(layer) -> bool:  # a ReLU in between is dropped too (when it feeds one)
        relu = isinstance(layer, (tf.keras.layers.ReLU, tf.keras.layers.Activation))
        return isinstance(layer, _SIGN_PASS_THROUGH) or (relu and spoils_sign(layer))

    def spoils_sign(layer: tf.keras.layers.Layer) -> bool:
        activation = binarization.activation_name(layer)
        non_negative = activation in binarization.NON_NEGATIVE_ACTIVATIONS
        return non_negative or isinstance(layer, tf.keras.layers.Dropout)

    return {n for n in stem + tentacle if spoils_sign(graph.layer(n)) and feeds_binary(n)}
