"""The tentacles' block type: XNOR-Net's (the paper) or ReActNet's learnable activations.

`block="xnor"` (default) is the paper's block: `QuantConv2D -> BatchNorm -> (pool)`
with the plain sign of `ste_sign` as the binary activation.

`block="react"` puts a learnable per-channel shift (ReActNet's RSign, a
`LearnableShift`) in front of every binary activation of the tentacles;
`rprelu=True` makes each tentacle shift an `RPReLU` (shift, PReLU, shift; its output
shift is the next RSign's, merged). Where a shift goes (`plan_shifts`):

* as far back from the binary conv as a per-channel shift commutes exactly: through
  max/average pooling and the activations/Dropouts the template drops in front of a
  binary input, up to the layer that computes the value (usually a BatchNorm, whose
  shift Larq Compute Engine folds into the binary conv's threshold: no op, no byte);
  it stops earlier where the value is also read by something other than binary
  convs (e.g. a residual shortcut), which keeps reading the unshifted value;
* the first tentacle conv reads the shared stem: its shift is a stem layer
  (`stem_<layer>_shift`), shared by every tentacle, which folds into the float stem
  conv; RPReLU is only put inside the tentacles (`t<i>_<layer>_rprelu`).

Costs measured with LCE 0.16 (lce-notes §4): a folded shift nothing; each RPReLU one
PRELU, one SUB and one LceQuantize; a shift after a residual Add one SUB.
"""

import dataclasses
from typing import Dict, FrozenSet, List

import tensorflow as tf

from larq_tentacle.core import binarization
from larq_tentacle.core.react_layers import LearnableShift, RPReLU
from larq_tentacle.utils.validation import boolean, choice

BLOCKS = ("xnor", "react")

# A per-channel shift gives the same result before or after these.
_COMMUTING = (tf.keras.layers.MaxPooling2D, tf.keras.layers.AveragePooling2D)


def check_block(block, rprelu) -> tuple:
    """(block, rprelu), checked: one ValueError naming the bad value and the fix."""
    block = choice("block", block, BLOCKS)
    rprelu = boolean("rprelu", rprelu)
    if rprelu and block != "react":
        raise ValueError(
            f"rprelu=True adds ReActNet's RPReLU to the learnable shifts of block='react', "
            f"but block={block!r} has no shifts. Fix: pass block='react' with rprelu=True "
            "(or drop rprelu)."
        )
    return block, rprelu


@dataclasses.dataclass(frozen=True)
class ShiftPlan:
    """Where the shifts go, by float layer name; empty for block="xnor".

    `after` maps a layer to True when its output is replaced by the shifted value for
    every reader (all of them lead to binary convs), or False when only the binary
    convs reading it directly get the shifted value.
    """

    rprelu: bool = False
    after: Dict[str, bool] = dataclasses.field(default_factory=dict)
    binary: FrozenSet[str] = frozenset()

    def add_shift(self, layer_name: str, tensors: dict, prefix: str) -> None:
        """After `layer_name` was computed into `tensors`, add its shift (if it has one)."""
        if layer_name not in self.after:
            return
        if self.rprelu and prefix != "stem_":
            shift = RPReLU(name=f"{prefix}{layer_name}_rprelu")
        else:
            shift = LearnableShift(name=f"{prefix}{layer_name}_shift")
        shifted = shift(tensors[layer_name])
        if self.after[layer_name]:
            tensors[layer_name] = shifted
        else:
            tensors[_edge_key(layer_name)] = shifted

    def inputs(self, layer_name: str, graph, tensors: dict) -> List[tf.Tensor]:
        """The tensors `layer_name` reads (a binary conv reads its shifted input)."""
        keys = graph.inputs_of[layer_name]
        if layer_name in self.binary:
            keys = [_edge_key(k) if _edge_key(k) in tensors else k for k in keys]
        return [tensors[k] for k in keys]


def _edge_key(layer_name: str) -> str:
    return f"{layer_name} (shifted for binary convs)"


def plan_shifts(graph, tentacle, drop_activation, *, block: str, rprelu: bool) -> ShiftPlan:
    """The `ShiftPlan` of a split float model (see the module docstring for the rule)."""
    if block == "xnor":
        return ShiftPlan()
    binary = frozenset(n for n in tentacle if binarization.is_weight_layer(graph.layer(n)))

    def transparent(name: str) -> bool:
        layer = graph.layer(name)
        dropped = name in drop_activation and not binarization.is_weight_layer(layer)
        return dropped or isinstance(layer, _COMMUTING)

    def only_binary(name: str) -> bool:
        readers = graph.consumers_of[name]
        return bool(readers) and all(
            r in binary or (transparent(r) and only_binary(r)) for r in readers
        )

    after: Dict[str, bool] = {}
    for conv in (n for n in graph.order if n in binary):
        point = graph.inputs_of[conv][0]
        while transparent(point) and only_binary(graph.inputs_of[point][0]):
            point = graph.inputs_of[point][0]
        after[point] = only_binary(point)
    return ShiftPlan(rprelu=rprelu, after=after, binary=binary)


def block_of(layers) -> tuple:
    """(block, rprelu) of a built model's layers, read from the layer types."""
    kinds = {type(layer) for layer in layers}
    if RPReLU in kinds:
        return "react", True
    return ("react" if LearnableShift in kinds else "xnor"), False
