"""Building the branched form of a fused TentacleNet back (the inverse of `fuse`)."""

from typing import Dict, List, Optional

import larq as lq
import numpy as np
import tensorflow as tf

from larq_tentacle.core import binarization
from larq_tentacle.core.fused_layers import SharedGroupConv2D
from larq_tentacle.core.fusion.plan import FUSED_NAME, FUSED_SUFFIX, fused_tentacles, is_fused
from larq_tentacle.core.graph import LayerGraph, Ref, call_layer, clone_layer


def unfuse(model: tf.keras.Model, *, name: Optional[str] = None) -> tf.keras.Model:
    """The branched form of a fused TentacleNet (inverse of `fuse`), weights included.

    Layer names, weights and predictions are those of the branched model that was
    fused: `unfuse(fuse(tn))` has `tn`'s layers.
    """
    if not is_fused(model):
        raise ValueError(
            f"{model.name!r} is not in the fused form (no layers named tentacles<n>_*), so "
            "there is nothing to unfuse. Fix: pass a model made by lt.fuse(...) or "
            "lt.build(..., fused=True)."
        )
    default = model.name[: -len(FUSED_SUFFIX)] if model.name.endswith(FUSED_SUFFIX) else model.name
    return _BranchedBuilder(model, fused_tentacles(model)).build(name or default)


class _BranchedBuilder:
    """Rebuilds a fused TentacleNet layer by layer in the branched form.

    A fused tensor becomes its n per-tentacle tensors (`split`), in tentacle order;
    stem and head tensors stay one each (`shared`). Weights are set once the model
    is built (`transfers`).
    """

    def __init__(self, model: tf.keras.Model, n: int):
        self.model, self.n = model, n
        self.graph = LayerGraph(model, where="unfuse", shared_layers=True)
        self.graph.require_one_input_and_output()
        if self.graph.later_output_reads:
            producer, consumer = self.graph.later_output_reads[0]
            raise ValueError(
                f"unfuse cannot follow the connection {producer!r} -> {consumer!r}: "
                "it reads a second output of a multi-output layer."
            )
        self.shared: Dict[Ref, tf.Tensor] = {}
        self.split: Dict[Ref, List[tf.Tensor]] = {}
        self.transfers = []  # (new layer, weights)

    def build(self, name: str) -> tf.keras.Model:
        for layer_name in self.graph.names:
            self._add(layer_name)
        output = (self.graph.output_name, 0)
        outputs = self.shared[output] if output in self.shared else self.split[output][0]
        inputs = self.shared[(self.graph.input_name, 0)]
        branched = tf.keras.Model(inputs, outputs, name=name)
        for new, weights in self.transfers:
            new.set_weights(weights)
        return branched

    def _add(self, layer_name: str):
        layer = self.model.get_layer(layer_name)
        calls = self.graph.calls_of[layer_name]
        match = FUSED_NAME.match(layer_name)
        if not calls:
            self.shared[(layer_name, 0)] = tf.keras.Input(
                shape=self.model.input_shape[1:], name=layer_name, dtype=layer.dtype
            )
        elif match:
            self._split_layer(layer, match.group(2), calls[0])
        elif any(ref in self.split for ref in calls[0]):
            self._head_layer(layer, self.split[calls[0][0]])
        else:
            new = clone_layer(layer, layer.name)
            sources = [self.shared[ref] for ref in calls[0]]
            self.shared[(layer_name, 0)] = call_layer(new, sources)
            self.transfers.append((new, layer.get_weights()))

    def _split_layer(self, layer, block: str, refs: List[Ref]):
        """The n tentacle layers `t<i>_<block>` of a fused layer, called."""
        if isinstance(layer, tf.keras.layers.Concatenate):  # a tiled stem tensor
            self.split[(layer.name, 0)] = [self.shared[refs[0]]] * self.n
            return
        sources = [self._per_tentacle(ref) for ref in refs]
        weights = _split_weights(layer, self.n)
        outputs = []
        for i in range(self.n):
            new = _unfused_layer(layer, self.n, f"t{i + 1}_{block}")
            outputs.append(call_layer(new, [source[i] for source in sources]))
            self.transfers.append((new, weights[i]))
        self.split[(layer.name, 0)] = outputs

    def _head_layer(self, layer, per_tentacle: List[tf.Tensor]):
        """A head layer reading the tentacles: the classifier, or a layer shared by all."""
        if isinstance(layer, SharedGroupConv2D):
            config = layer.get_config()
            config.pop("tentacles")
            new = tf.keras.layers.Conv2D.from_config(config)
        elif binarization.is_weight_layer(layer) and not isinstance(layer, tf.keras.layers.Conv2D):
            # the classifier reads the concatenated tentacles
            merged = per_tentacle[0]
            if self.n > 1:
                merged = tf.keras.layers.Concatenate(name="head_concat")(per_tentacle)
            new = clone_layer(layer, layer.name)
            self.shared[(layer.name, 0)] = new(merged)
            self.transfers.append((new, layer.get_weights()))
            return
        else:
            new = clone_layer(layer, layer.name)
        self.split[(layer.name, 0)] = [new(x) for x in per_tentacle]
        self.transfers.append((new, layer.get_weights()))

    def _per_tentacle(self, ref: Ref) -> List[tf.Tensor]:
        return self.split[ref] if ref in self.split else [self.shared[ref]] * self.n


def _unfused_layer(layer, n: int, name: str):
    """One tentacle's layer of a fused layer: a 1/n-wide conv or reshape, or a clone."""
    config = layer.get_config()
    if isinstance(layer, lq.layers.QuantConv2D):
        # fused models saved with a dropped training form hold TentacleConv2D layers
        config.pop("implementation", None)
        config.update(name=name, filters=config["filters"] // n, groups=1)
        return lq.layers.QuantConv2D.from_config(config)
    if isinstance(layer, tf.keras.layers.Reshape):
        target = tuple(layer.target_shape)
        return tf.keras.layers.Reshape.from_config(
            dict(config, name=name, target_shape=target[:-1] + (target[-1] // n,))
        )
    config.update(name=name)
    return layer.__class__.from_config(config)


def _split_weights(layer, n: int) -> List[list]:
    """Per tentacle, its share (a 1/n slice of the last axis) of every weight of `layer`."""
    parts = [np.split(w, n, axis=-1) for w in layer.get_weights()]
    return [[p[i] for p in parts] for i in range(n)]
