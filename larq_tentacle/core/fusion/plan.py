"""Reading a TentacleNet for fusion: the names of the fused form, and the plan of a
branched model (its tentacle blocks and edges), checked to be fusable."""

import dataclasses
import re
from typing import List

import tensorflow as tf

from larq_tentacle.core import binarization
from larq_tentacle.core.graph import LayerGraph, Ref
from larq_tentacle.core.layout import layout, tentacle_index
from larq_tentacle.core.react_layers import REACT_LAYERS

FUSED_NAME = re.compile(r"^tentacles(\d+)_(.+)$")
"""Fused layers are named `tentacles<n>_<block>`; group 1 is n, group 2 the block."""
FUSED_SUFFIX = "_fused"
"""`fuse` names the fused model `<branched name>_fused`; `unfuse` strips it again."""

# Layers that act on each channel (or element) alone, so one layer over n·C
# channels computes the same as n layers over C channels each.
PER_CHANNEL = (
    tf.keras.layers.BatchNormalization,
    tf.keras.layers.Activation,
    tf.keras.layers.ReLU,
    tf.keras.layers.LeakyReLU,
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.GlobalAveragePooling2D,
    tf.keras.layers.GlobalMaxPooling2D,
    tf.keras.layers.Dropout,
    tf.keras.layers.ZeroPadding2D,
    tf.keras.layers.Add,
    tf.keras.layers.Subtract,
    tf.keras.layers.Multiply,
    tf.keras.layers.Maximum,
    tf.keras.layers.Minimum,
    tf.keras.layers.Average,
    *REACT_LAYERS,  # per-channel parameters: the fused layer holds the n tentacles' in order
)
# Layers that keep channel order only when every non-channel axis has size 1.
RESHAPES = (tf.keras.layers.Flatten, tf.keras.layers.Reshape)


def fused_layer_name(n: int, block: str) -> str:
    return f"tentacles{n}_{block}"


def is_fused(model: tf.keras.Model) -> bool:
    """True for a model in the fused form (layers named `tentacles<n>_*`)."""
    return any(FUSED_NAME.match(layer.name) for layer in model.layers)


def fused_tentacles(model: tf.keras.Model) -> int:
    """The number of tentacles of a fused model."""
    matches = (FUSED_NAME.match(layer.name) for layer in model.layers)
    counts = {int(match.group(1)) for match in matches if match}
    if len(counts) != 1:
        raise ValueError(
            f"{model.name!r} is not a fused TentacleNet (expected layers named tentacles<n>_*, "
            f"found tentacle counts {sorted(counts)}). Fix: pass a model made by lt.fuse(...) "
            "or lt.build(..., fused=True)."
        )
    return counts.pop()


def keeps_channel_order(layer) -> bool:
    """A reshape keeps the concatenated channel order when only the channel axis is > 1."""
    shapes = [layer.input_shape, layer.output_shape]
    return all(all(d == 1 for d in shape[1:-1]) for shape in shapes)


def refuse_layer(layer, model, why: str):
    """Raise the ValueError for a layer of `model` that `fuse` cannot fuse, saying `why`."""
    raise ValueError(
        f"fuse cannot fuse layer {layer.name!r} ({type(layer).__name__}) of {model.name!r}: "
        f"{why}. Fix: keep the branched form (fused=False)."
    )


@dataclasses.dataclass
class TentaclePlan:
    """The structure of a branched TentacleNet, read from its config and checked.

    `graph.names` lists the layers producers first; `graph.calls_of` gives, per
    call of a layer, the tensors (`Ref`s) it reads. Blocks are the tentacle layers'
    names without the `t<i>_` prefix, producers first.
    """

    model: tf.keras.Model
    graph: LayerGraph
    tentacles: int
    blocks: List[str]

    @classmethod
    def read(cls, model: tf.keras.Model) -> "TentaclePlan":
        tentacle_layout = layout(model)
        graph = LayerGraph(model, where="fuse", shared_layers=True)
        graph.require_one_input_and_output()
        if graph.later_output_reads:
            producer, consumer = graph.later_output_reads[0]
            raise ValueError(
                f"fuse cannot follow the connection {producer!r} -> {consumer!r}: "
                "it reads a second output of a multi-output layer."
            )
        blocks = list(tentacle_layout.block_names())
        plan = cls(model, graph, tentacle_layout.tentacles, blocks)
        for tentacle in range(2, plan.tentacles + 1):
            plan._check_alike(tentacle)
        return plan

    def grouped(self, block: str) -> bool:
        """Whether the fused layer of `block` reads a fused (per-tentacle) tensor."""
        return any(tentacle_index(name) == 1 for name, _ in self.graph.calls_of[f"t1_{block}"][0])

    def width_source(self, block: str) -> str:
        """The nearest layer before `block` that sets its channel count."""
        name = self.graph.inputs_of[f"t1_{block}"][0]
        while True:
            layer = self.model.get_layer(name)
            if binarization.is_weight_layer(layer) or not self.graph.inputs_of[name]:
                return name
            name = self.graph.inputs_of[name][0]

    def _check_alike(self, tentacle: int):
        """Refuse a tentacle whose layers, types, inputs or shapes differ from tentacle 1's."""
        first = set(self.blocks)
        names = {
            name.split("_", 1)[1] for name in self.graph.names if tentacle_index(name) == tentacle
        }
        if names != first:
            raise ValueError(
                f"fuse needs tentacles of the same topology, but tentacle {tentacle} of "
                f"{self.model.name!r} has layers {sorted(names ^ first)} that tentacle 1 "
                "has not (or lacks them)."
            )
        for block in self.blocks:
            one = self.model.get_layer(f"t1_{block}")
            other = self.model.get_layer(f"t{tentacle}_{block}")
            calls = self.graph.calls_of
            renamed = [[_retarget(ref, tentacle) for ref in call] for call in calls[one.name]]
            if type(one) is not type(other) or renamed != calls[other.name]:
                raise ValueError(
                    f"fuse needs tentacles of the same topology, but t{tentacle}_{block} differs "
                    f"from t1_{block} in {self.model.name!r} (layer type or inputs)."
                )
            if _structural(one.get_config()) != _structural(other.get_config()):
                raise ValueError(
                    f"fuse needs tentacles of the same shape, but the configs of t1_{block} "
                    f"and t{tentacle}_{block} of {self.model.name!r} differ."
                )


def _retarget(ref: Ref, tentacle: int) -> Ref:
    """A reference to tentacle 1's tensor, moved to the same tensor of `tentacle`."""
    name, node = ref
    if tentacle_index(name) == 1:
        return (f"t{tentacle}_{name.split('_', 1)[1]}", node)
    return ref


def _structural(config):
    """A layer config without what legitimately differs between tentacles (names, init seeds)."""
    skip = {"name", "kernel_initializer", "bias_initializer", "seed", "build_config"}
    if isinstance(config, dict):
        return {k: _structural(v) for k, v in config.items() if k not in skip}
    if isinstance(config, (list, tuple)):
        return [_structural(v) for v in config]
    return config
