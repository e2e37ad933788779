"""Read a TentacleNet's structure back from its layer names.

`tentaclize` names layers `stem_*`, `t<i>_*`, `head_*`; everything that needs to
know which weights belong to which tentacle (sizes, fusing, export checks) reads
that here instead of keeping state that a save/load round trip would lose.
"""

import dataclasses
import re
from typing import Dict, Tuple

import tensorflow as tf

from larq_tentacle.core import binarization, float_layers, preactivation
from larq_tentacle.core.blocks import block_of

_TENTACLE_NAME = re.compile(r"^t(\d+)_(.+)$")


@dataclasses.dataclass(frozen=True)
class TentacleLayout:
    tentacles: int
    head_variant: str  # "a": shared conv + concatenated logits; "b": concatenated features
    stem: Tuple[tf.keras.layers.Layer, ...]
    tentacle_layers: Dict[int, Tuple[tf.keras.layers.Layer, ...]]
    head: Tuple[tf.keras.layers.Layer, ...]
    block: str = "xnor"  # "react": learnable shifts in front of the binary activations
    rprelu: bool = False  # block "react" with RPReLU in the tentacles
    # the float model's name of each tentacle layer that stayed float -> why (float_layers.py)
    float_layers: Dict[str, str] = dataclasses.field(default_factory=dict)
    # the pre-activation rewrite (preactivation.py): binary convs that got a BatchNorm after
    # them, in place of the BatchNorms in front of binary convs; () when not rewritten
    preactivation: Tuple[str, ...] = ()

    def block_names(self) -> Tuple[str, ...]:
        """The float model's names of the layers in one tentacle (e.g. 'conv2')."""
        return tuple(_TENTACLE_NAME.match(layer.name).group(2) for layer in self.tentacle_layers[1])


def tentacle_index(layer_name: str):
    """The tentacle number of a layer named `t<i>_...`, or None."""
    match = _TENTACLE_NAME.match(layer_name)
    return int(match.group(1)) if match else None


def layout(model: tf.keras.Model) -> TentacleLayout:
    """The stem, tentacles and head of a model built by `tentaclize` / `build`."""
    stem, head, tentacles = [], [], {}
    for layer in model.layers:
        index = tentacle_index(layer.name)
        if index is not None:
            tentacles.setdefault(index, []).append(layer)
        elif layer.name.startswith("stem_"):
            stem.append(layer)
        elif layer.name.startswith("head_"):
            head.append(layer)
    if not stem or not tentacles or sorted(tentacles) != list(range(1, len(tentacles) + 1)):
        raise ValueError(
            f"{model.name!r} is not a TentacleNet built by larq_tentacle (expected layers named "
            "stem_*, t1_*, ..., head_*). Fix: build it with lt.build(...) or lt.tentaclize(...)."
        )
    head_convs = [layer for layer in head if isinstance(layer, tf.keras.layers.Conv2D)]
    head_variant = "a" if head_convs else "b"
    block, rprelu = block_of(model.layers)
    return TentacleLayout(
        tentacles=len(tentacles),
        head_variant=head_variant,
        stem=tuple(stem),
        tentacle_layers={i: tuple(layers) for i, layers in sorted(tentacles.items())},
        head=tuple(head),
        block=block,
        rprelu=rprelu,
        float_layers=_kept_float(tentacles[1]),
        preactivation=tuple(
            preactivation.conv_of_post_bn(name)
            for name in _block_names(tentacles[1])
            if preactivation.conv_of_post_bn(name)
        ),
    )


def _block_names(layers):
    return [_TENTACLE_NAME.match(layer.name).group(2) for layer in layers]


def _kept_float(layers) -> Dict[str, str]:
    reasons = {}
    for layer in layers:
        reason = float_layers.kept_float_reason(layer)
        if reason:
            reasons[_TENTACLE_NAME.match(layer.name).group(2)] = reason
    return reasons


def binary_layers(model: tf.keras.Model):
    """Every layer whose kernel is binarized."""
    return [layer for layer in model.layers if binarization.is_binary_layer(layer)]
