"""Building the fused form of a branched TentacleNet, and LCE's rule for its grouped convs."""

import dataclasses
from typing import Dict, List, Optional, Tuple

import larq as lq
import numpy as np
import tensorflow as tf

from larq_tentacle.core import binarization
from larq_tentacle.core.fused_layers import SharedGroupConv2D
from larq_tentacle.core.fusion.choosing import IMPLEMENTATIONS
from larq_tentacle.core.fusion.plan import (
    FUSED_SUFFIX,
    PER_CHANNEL,
    RESHAPES,
    TentaclePlan,
    fused_layer_name,
    is_fused,
    keeps_channel_order,
    refuse_layer,
)
from larq_tentacle.core.fusion.unfusing import unfuse
from larq_tentacle.core.graph import Ref, call_layer, clone_layer
from larq_tentacle.core.layout import tentacle_index
from larq_tentacle.utils.validation import choice

LCE_GROUP_CHANNELS = 32
"""LCE converts a grouped binary conv only when its input channels per group are a
multiple of this (32-bit words); multiples of 128 pick its fastest ARM kernel."""


@dataclasses.dataclass(frozen=True)
class GroupProblem:
    """A binary conv whose grouped form LCE would refuse."""

    layer: str  # the fused layer's name
    tentacle_layer: str  # the branched layer (tentacle 1)
    feeding_layer: str  # the layer whose width sets the conv's input channels
    channels_per_group: int
    tentacles: int

    def message(self) -> str:
        return (
            f"layer {self.tentacle_layer!r} (fused: {self.layer!r}) would be a grouped binary "
            f"conv with {self.channels_per_group} input channels per group "
            f"({self.tentacles} groups of {self.channels_per_group}, set by "
            f"{self.feeding_layer!r}); Larq Compute Engine converts grouped binary convs only "
            f"when the input channels per group are a multiple of {LCE_GROUP_CHANNELS} "
            "(128 is fastest on ARM)"
        )


def fuse(
    model: tf.keras.Model,
    *,
    implementation: str = "grouped",
    check_lce: bool = True,
    name: Optional[str] = None,
) -> tf.keras.Model:
    """The fused form of a branched TentacleNet, with the same weights and predictions.

    !!! example
        ```python
        tn = lt.build("nin", tentacles=5)       # train this (branched)
        fused = lt.fuse(tn)                      # one grouped conv per tentacle layer
        np.testing.assert_allclose(fused(x), tn(x), atol=1e-5)
        ```

    # Arguments
        model: a TentacleNet made by `lt.build` / `lt.tentaclize` (branched), or an
            already fused model (then it is rebuilt as plain grouped `QuantConv2D`s,
            e.g. a model saved with a dropped training form).
        implementation: how TensorFlow computes the grouped binary convs, one of
            `IMPLEMENTATIONS`: only "grouped" (`lq.layers.QuantConv2D(groups=n)`,
            the form LCE converts to one LceBconv2d).
        check_lce: refuse (ValueError naming the layer) a model whose grouped binary
            convs would have input channels per group that are not a multiple of 32,
            which LCE cannot convert. Pass False to fuse anyway (e.g. to train).
        name: model name, default `<model name>_fused`.

    # Returns
        A functional `tf.keras.Model` whose outputs equal `model`'s.
    """
    choice("implementation", implementation, IMPLEMENTATIONS)
    if is_fused(model):
        model = unfuse(model)
    plan = TentaclePlan.read(model)
    if check_lce:
        problems = lce_group_problems(model)
        if problems:
            raise ValueError(
                f"Cannot fuse {model.name!r} for Larq Compute Engine: "
                + "; ".join(p.message() for p in problems)
                + ". Fix: make the widths feeding these layers multiples of 32 (e.g. 64 or "
                "128), or keep the branched form (export with fused=False), which LCE runs "
                "with any width."
            )
    return _FusedBuilder(plan).build(name or model.name + FUSED_SUFFIX)


def lce_group_problems(model: tf.keras.Model) -> List[GroupProblem]:
    """The binary convs of a branched TentacleNet that LCE could not convert once fused."""
    if is_fused(model):
        model = unfuse(model)
    plan = TentaclePlan.read(model)
    n = plan.tentacles
    problems = []
    if n == 1:
        return problems
    for block in plan.blocks:
        layer = model.get_layer(f"t1_{block}")
        if not binarization.is_binary_layer(layer) or not plan.grouped(block):
            continue
        per_group = int(layer.kernel.shape[-2])
        if per_group % LCE_GROUP_CHANNELS:
            problems.append(
                GroupProblem(
                    layer=fused_layer_name(n, block),
                    tentacle_layer=layer.name,
                    feeding_layer=plan.width_source(block),
                    channels_per_group=per_group,
                    tentacles=n,
                )
            )
    return problems


class _FusedBuilder:
    """Rebuilds a branched TentacleNet layer by layer in the fused form.

    Tensors of the stem and head stay one per original tensor (`shared`); the n
    tensors of a tentacle layer become one fused tensor, filed under tentacle 1's
    reference (`fused`). Weights are set once the model is built (`transfers`).
    """

    def __init__(self, plan: TentaclePlan):
        self.plan, self.model, self.n = plan, plan.model, plan.tentacles
        self.shared: Dict[Ref, tf.Tensor] = {}
        self.fused: Dict[Ref, tf.Tensor] = {}
        self.tiled: Dict[Ref, tf.Tensor] = {}  # shared tensors repeated n times
        self.head_per_tentacle = set()  # head layers applied once to each tentacle
        self.transfers = []  # (new layer, weights)

    def build(self, name: str) -> tf.keras.Model:
        graph = self.plan.graph
        for layer_name in graph.names:
            self._add(layer_name)
        output = (graph.output_name, 0)
        outputs = self.shared.get(output)
        if outputs is None:  # a model whose output is per-tentacle (n=1 without a head)
            outputs = self.fused[self._tentacle_of(output)[1]]
        fused_model = tf.keras.Model(self.shared[(graph.input_name, 0)], outputs, name=name)
        for new, weights in self.transfers:
            new.set_weights(weights)
        return fused_model

    def _add(self, layer_name: str):
        layer = self.model.get_layer(layer_name)
        calls = self.plan.graph.calls_of[layer_name]
        index = tentacle_index(layer_name)
        if not calls:  # the input
            self.shared[(layer_name, 0)] = tf.keras.Input(
                shape=self.model.input_shape[1:], name=layer_name, dtype=layer.dtype
            )
        elif index is not None and index > 1:
            return  # folded into tentacle 1's fused layer
        elif index == 1:
            block = layer_name.split("_", 1)[1]
            self.fused[(layer_name, 0)] = self._tentacle_layer(layer, block, calls[0])
        elif self.n > 1 and any(self._tentacle_of(ref) for ref in calls[0]):
            self._head_layer(layer, calls)
        else:
            if len(calls) != 1:
                refuse_layer(layer, self.model, "it is called more than once outside the tentacles")
            # With one tentacle there is nothing to concatenate: its tensors are the head's.
            sources = [self._fused_input(ref, layer_name, tile=False) for ref in calls[0]]
            new = clone_layer(layer, layer.name)
            self.shared[(layer_name, 0)] = call_layer(new, sources)
            self.transfers.append((new, layer.get_weights()))

    def _tentacle_of(self, ref: Ref) -> Optional[Tuple[int, Ref]]:
        """(tentacle, tentacle-1 ref) when `ref` is a per-tentacle tensor."""
        layer_name, node = ref
        index = tentacle_index(layer_name)
        if index is not None:
            return index, (f"t1_{layer_name.split('_', 1)[1]}", node)
        if (layer_name, 0) in self.head_per_tentacle:
            return node + 1, (layer_name, 0)
        return None

    def _fused_input(self, ref: Ref, consumer: str, tile: bool = True) -> tf.Tensor:
        """The fused tensor for `ref`; a shared tensor is repeated n times unless `tile=False`."""
        found = self._tentacle_of(ref)
        if found is not None:
            return self.fused[found[1]]
        if self.n == 1 or not tile:
            return self.shared[ref]
        if ref not in self.tiled:
            name = fused_layer_name(self.n, f"{consumer}_tile_{ref[0]}")
            self.tiled[ref] = tf.keras.layers.Concatenate(name=name)([self.shared[ref]] * self.n)
        return self.tiled[ref]

    def _tentacle_layer(self, layer, block: str, sources: List[Ref]) -> tf.Tensor:
        """The one fused layer standing for the n tentacles' layers of `block`, called."""
        name = fused_layer_name(self.n, block)
        # A conv that reads the stem reads it once: n·F filters, no groups.
        tile = not binarization.is_weight_layer(layer)
        inputs = [self._fused_input(ref, block, tile) for ref in sources]
        if binarization.is_weight_layer(layer):
            new = self._grouped_conv(layer, block, name)
        elif isinstance(layer, PER_CHANNEL):
            new = clone_layer(layer, name)
            if isinstance(layer, tf.keras.layers.BatchNormalization) and layer.axis not in (
                [-1],
                [3],
            ):
                why = f"its BatchNormalization axis {layer.axis} is not the channel axis"
                refuse_layer(layer, self.model, why)
        elif isinstance(layer, RESHAPES):
            new = self._widened_reshape(layer, name)
        else:
            refuse_layer(layer, self.model, "it does not act on each channel alone")
        per_tentacle = [self.model.get_layer(f"t{i}_{block}") for i in range(1, self.n + 1)]
        weights = [tentacle_layer.get_weights() for tentacle_layer in per_tentacle]
        self.transfers.append((new, [np.concatenate(parts, axis=-1) for parts in zip(*weights)]))
        return call_layer(new, inputs)

    def _grouped_conv(self, layer, block: str, name: str) -> lq.layers.QuantConv2D:
        """n·F filters; `groups=n` unless the conv reads the (shared) stem."""
        if not isinstance(layer, lq.layers.QuantConv2D):
            refuse_layer(layer, self.model, "only binary QuantConv2D weight layers can be fused")
        config = layer.get_config()
        if config.get("groups", 1) != 1 or config.get("data_format") != "channels_last":
            refuse_layer(layer, self.model, "it is already grouped or not channels_last")
        grouped = self.plan.grouped(block) and self.n > 1
        config.update(
            name=name, filters=self.n * config["filters"], groups=self.n if grouped else 1
        )
        return lq.layers.QuantConv2D.from_config(config)

    def _widened_reshape(self, layer, name: str):
        if not keeps_channel_order(layer):
            refuse_layer(
                layer,
                self.model,
                f"it reshapes {layer.input_shape} -> {layer.output_shape}, which would "
                "interleave the tentacles' channels (only reshapes where every axis but the "
                "channels is 1 fuse)",
            )
        if isinstance(layer, tf.keras.layers.Flatten):
            return clone_layer(layer, name)
        target = tuple(layer.target_shape[:-1]) + (self.n * layer.target_shape[-1],)
        return clone_layer(layer, name, target_shape=target)

    def _head_layer(self, layer, calls: List[List[Ref]]):
        """A head layer reading the tentacles: the concatenation or a per-tentacle shared layer."""
        n = self.n
        found = [[self._tentacle_of(ref) for ref in call] for call in calls]
        if isinstance(layer, tf.keras.layers.Concatenate):
            refs = found[0]
            if (
                len(calls) != 1
                or layer.axis not in (-1, len(layer.output_shape) - 1)
                or [f[0] if f else None for f in refs] != list(range(1, n + 1))
                or len({f[1] for f in refs}) != 1
            ):
                why = "it does not concatenate the tentacles 1..n in order on the channel axis"
                refuse_layer(layer, self.model, why)
            self.shared[(layer.name, 0)] = self.fused[refs[0][1]]
            return
        if (
            len(calls) != n
            or any(len(call) != 1 for call in calls)
            or [f[0][0] for f in found] != list(range(1, n + 1))
            or len({f[0][1] for f in found}) != 1
        ):
            why = "a head layer reading the tentacles must be applied once to each, in order"
            refuse_layer(layer, self.model, why)
        new = self._shared_head_layer(layer)
        self.fused[(layer.name, 0)] = new(self.fused[found[0][0][1]])
        self.head_per_tentacle.add((layer.name, 0))
        self.transfers.append((new, layer.get_weights()))

    def _shared_head_layer(self, layer):
        """The fused stand-in of a head layer applied to each tentacle with shared weights."""
        if isinstance(layer, tf.keras.layers.Conv2D) and not binarization.is_binary_layer(layer):
            config = layer.get_config()
            if config.get("groups", 1) != 1:
                refuse_layer(layer, self.model, "a grouped shared head conv cannot be fused")
            return SharedGroupConv2D.from_config(dict(config, tentacles=self.n))
        if isinstance(layer, PER_CHANNEL) and not layer.weights:
            return clone_layer(layer, layer.name)
        if isinstance(layer, RESHAPES) and keeps_channel_order(layer):
            return clone_layer(layer, layer.name)
        why = "a shared head layer must be a float Conv2D or act on each channel alone"
        refuse_layer(layer, self.model, why)
