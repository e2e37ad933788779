"""The strict LCE rules: what a Keras model's topology needs vs what its `.tflite` has.

A BNN only pays off on the device if every binary conv became one `LceBconv2d`,
every BatchNorm after it was folded in, and activations stay bitpacked between
binary ops. The converter does not fail when that goes wrong: it silently keeps
float ops (an unfolded BatchNorm becomes MUL + ADD, a zero-padded conv writes
float output that needs an extra `LceQuantize`). `strict_violations` compares
the flatbuffer with what `topology_needs` reads from the Keras layers (rules in
shared/reference/lce-notes.md §3):

* each binary conv (binary kernel and binary input) -> one LceBconv2d;
* no float conv / dense op whose name belongs to a tentacle layer, except the layers
  LCE cannot binarize that the template keeps float (`core.float_layers`: depthwise,
  grouped with < 32 channels per group, SE gates, elementwise multiplies);
* no float MUL/ADD/SUB/DIV from a BatchNorm next to a binary conv (after it, or
  in front of one): placed conv -> BN -> MaxPool it folds into the bconv; in a
  chain tentacle (no Add) no float MUL/ADD/SUB/DIV at all except a BatchNorm
  between float ops (NiN's bn9, in front of the float head);
* at most one LceQuantize per distinct float tensor that feeds binary convs
  (tentacles reading the same stem output share one, AvgPool and Add outputs
  need one); binary conv -> BN/MaxPool -> binary conv needs none, since with
  pad_values=1 and that order LCE keeps the activations bitpacked;
* block="react" (lce-notes §4): a `LearnableShift` after a folded BatchNorm must fold
  too (no op of its own; it counts as bitpack-neutral above); each `RPReLU` is one
  PRELU and one SUB (two when its input shift cannot fold, after a residual Add), and
  its float output is one more LceQuantize source; no other PRELU in a tentacle.
"""

import dataclasses
from typing import Dict, List

import larq as lq
import tensorflow as tf

from larq_tentacle.core import binarization, float_layers
from larq_tentacle.core.graph import LayerGraph
from larq_tentacle.core.layout import tentacle_index
from larq_tentacle.core.react_layers import LearnableShift, RPReLU
from larq_tentacle.deploy.tflite_file import LCE_OPS, FlatbufferGraph, layer_of, read_flatbuffer

FLOAT_COMPUTE_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV"
)
FLOAT_ARITHMETIC_OPS = ("MUL", "ADD", "SUB", "DIV")
PRELU_OP = "PRELU"
_MERGE_LAYERS = (
    tf.keras.layers.Add, tf.keras.layers.Concatenate, tf.keras.layers.Multiply,
    tf.keras.layers.Subtract,
)


def is_binary_conv(layer) -> bool:
    """A conv LCE can turn into LceBconv2d: 1-bit kernel and 1-bit input."""
    if not binarization.is_binary_layer(layer) or not isinstance(layer, lq.layers.QuantConv2D):
        return False
    quantizer = getattr(layer, "input_quantizer", None)
    return quantizer is not None and getattr(quantizer, "precision", None) == 1


@dataclasses.dataclass
class TopologyNeeds:
    """What a correct LCE conversion of a model must contain, read from its layers."""

    binary_convs: List[str]
    quantize_sources: List[str]  # one LceQuantize per distinct float tensor feeding binary convs
    unfoldable_ok_bn: List[str]  # BatchNorms between float ops (NiN's bn9): they stay MUL/ADD
    folded_bn: List[str]  # BatchNorms after or in front of a binary conv: they must fold into one
    # binary kernels LCE keeps in float (QuantDense, float input)
    float_binary_weight_layers: List[str]
    chain_tentacles: List[int]  # tentacles without Add/Concatenate inside
    # block="react": shifts and RPReLUs, with the float ops each may convert to
    shift_layers: List[str] = dataclasses.field(default_factory=list)
    rprelu_layers: List[str] = dataclasses.field(default_factory=list)
    allowed_react_ops: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)


class _Topology:
    """The layer graph of one model, with the walks the rules take through it."""

    def __init__(self, model):
        # Shared layers are fine here (NiN's head conv runs once per tentacle): a layer's
        # producers are those of its first call, its consumer count covers every call.
        try:
            graph = LayerGraph(model, where="The strict export check", shared_layers=True)
        except TypeError as error:  # Sequential, subclassed or not a model
            raise TypeError(f"{error} Or pass strict=False.") from error
        self.inputs_of, self.consumers_of, self.order = (
            graph.inputs_of,
            graph.consumers_of,
            graph.names,
        )
        self.layer = graph.layer

    def skip_identity(self, name: str) -> str:
        while isinstance(self.layer(name), tf.keras.layers.Dropout) and self.inputs_of[name]:
            name = self.inputs_of[name][0]
        return name

    def single_use(self, name: str) -> bool:
        return len(self.consumers_of[name]) == 1

    def bitpackable(self, source: str) -> bool:
        # Ideal topology: binary conv -> BN / MaxPool (any order) -> binary conv needs no
        # quantize, because conv -> BN -> MaxPool with pad_values=1 keeps it bitpacked.
        name = source
        pass_through = (
            tf.keras.layers.MaxPooling2D, tf.keras.layers.BatchNormalization, LearnableShift
        )
        while isinstance(self.layer(name), pass_through):
            if not self.single_use(name):
                return False
            name = self.skip_identity(self.inputs_of[name][0])
        return is_binary_conv(self.layer(name)) and self.single_use(name)

    def feeds_binary_conv(self, name: str) -> bool:
        while self.single_use(name):
            name = self.consumers_of[name][0]
            if is_binary_conv(self.layer(name)):
                return True
            pass_through = (tf.keras.layers.Dropout, tf.keras.layers.MaxPooling2D, LearnableShift)
            if not isinstance(self.layer(name), pass_through):
                return False
        return False


def _binary_layers(topology: _Topology):
    """(binary convs, quantize sources, binary layers LCE keeps in float), in layer order."""
    binary_convs, sources, float_binary = [], [], []
    for name in topology.order:
        current = topology.layer(name)
        if is_binary_conv(current):
            binary_convs.append(name)
            source = topology.skip_identity(topology.inputs_of[name][0])
            if source not in sources and not topology.bitpackable(source):
                sources.append(source)
        elif binarization.is_binary_layer(current):
            float_binary.append(name)
    return binary_convs, sources, float_binary


def _batchnorm_placement(topology: _Topology):
    """(BatchNorms that must fold into a binary conv, BatchNorms that stay float)."""
    folded, float_bn = [], []
    for name in topology.order:
        is_bn = isinstance(topology.layer(name), tf.keras.layers.BatchNormalization)
        if is_bn and topology.inputs_of[name]:
            producer = topology.inputs_of[name][0]
            after_bconv = is_binary_conv(topology.layer(producer)) and topology.single_use(producer)
            if after_bconv or topology.feeds_binary_conv(name):
                folded.append(name)
            else:
                float_bn.append(name)
    return folded, float_bn


def _chain_tentacles(topology: _Topology) -> List[int]:
    tentacles_with_merge, tentacles = set(), set()
    for name in topology.order:
        index = tentacle_index(name)
        if index is not None:
            tentacles.add(index)
            if isinstance(topology.layer(name), _MERGE_LAYERS):
                tentacles_with_merge.add(index)
    return sorted(tentacles - tentacles_with_merge)


def topology_needs(model) -> TopologyNeeds:
    """Count what `model` needs after an arm conversion (no conversion is run)."""
    topology = _Topology(model)
    binary_convs, sources, float_binary = _binary_layers(topology)
    folded, float_bn = _batchnorm_placement(topology)
    shifts, rprelus, allowed = _react_layers(topology, folded)
    return TopologyNeeds(
        binary_convs=binary_convs,
        quantize_sources=sources,
        unfoldable_ok_bn=float_bn,
        folded_bn=folded,
        float_binary_weight_layers=float_binary,
        chain_tentacles=_chain_tentacles(topology),
        shift_layers=shifts,
        rprelu_layers=rprelus,
        allowed_react_ops=allowed,
    )


def _react_layers(topology: _Topology, folded_bn: List[str]):
    """(shift layers, RPReLU layers, the float ops each may own) of a block="react" model.

    A shift or RPReLU input shift right after a folded BatchNorm folds into the binary
    conv before it; elsewhere (after a residual Add, on the stem) it stays a SUB.
    """
    shifts, rprelus, allowed = [], [], {}
    for name in topology.order:
        layer = topology.layer(name)
        if not isinstance(layer, (LearnableShift, RPReLU)):
            continue
        folds = topology.inputs_of[name][0] in folded_bn
        if isinstance(layer, RPReLU):
            rprelus.append(name)
            allowed[name] = {PRELU_OP: 1, "SUB": 1 if folds else 2}
        else:
            shifts.append(name)
            allowed[name] = {} if folds else {"SUB": 1}
    return shifts, rprelus, allowed


# ---------------------------------------------------------------------------
# Violations


def unsupported_op_problems(graph: FlatbufferGraph, layer_names=()) -> List[str]:
    """Custom ops no runtime here implements, with the layer they come from."""
    problems = []
    for op in graph.unknown_custom_ops():
        owner = layer_of(op, set(layer_names))
        where = f" from layer {owner!r}" if owner else ""
        problems.append(
            f"op {op.op!r} (op {op.index}{where}) is neither a TFLite builtin nor an LCE op, so "
            "the LCE runtime cannot run the file. Fix: replace that layer with TFLite builtin ops "
            "(plain Keras layers) or leave it out of the exported model."
        )
    return problems


def strict_violations(model, flatbuffer, *, target: str = "arm") -> List[str]:
    """Every way the conversion of `model` falls short of a fully binary tentacle path.

    An empty list means: every binary conv is an LceBconv2d, no float conv or
    unfolded BatchNorm sits in a tentacle, and (target "arm") there are no more
    LceQuantize ops than the layers need.
    """
    is_graph = isinstance(flatbuffer, FlatbufferGraph)
    graph = flatbuffer if is_graph else read_flatbuffer(flatbuffer)
    needs = topology_needs(model)
    counts = graph.op_counts()
    problems = _binary_layer_problems(model, needs, counts)
    kept_float = {
        layer.name for layer in model.layers
        if tentacle_index(layer.name) is not None and float_layers.kept_float_reason(layer)
    }
    layer_names = {layer.name for layer in model.layers}
    problems += _tentacle_op_problems(
        graph, needs, layer_names, kept_float, _folding_into(model, kept_float)
    )
    problems += _react_op_problems(graph, needs, layer_names)
    if target == "arm":
        problems += _quantize_problems(needs, counts)
    return problems


def _binary_layer_problems(model, needs: TopologyNeeds, counts: Dict[str, int]) -> List[str]:
    """Binary layers that did not become binary ops."""
    problems = []
    for name in needs.float_binary_weight_layers:
        kind = type(model.get_layer(name)).__name__
        problems.append(
            f"layer {name!r} ({kind}) has a binary kernel that LCE cannot run as a binary op "
            "(LCE has no binary dense op and needs a binary input quantizer): its weights stay "
            "float32 in the .tflite. Fix: use a QuantConv2D with input_quantizer='ste_sign' "
            "(a dense layer becomes a 1x1 conv on a 1x1 map)."
        )
    bconvs = counts.get("LceBconv2d", 0)
    if needs.binary_convs and not any(counts.get(name) for name in LCE_OPS):
        problems.append(
            f"the .tflite has no LCE op at all although the model has {len(needs.binary_convs)} "
            "binary convs: it was converted with the stock TFLite converter, so every binary "
            "conv runs as a float conv. Fix: convert with lt.export (Larq Compute Engine)."
        )
    elif bconvs != len(needs.binary_convs):
        problems.append(
            f"the model has {len(needs.binary_convs)} binary convs but the .tflite has {bconvs} "
            "LceBconv2d ops: some binary convs were not converted to binary ops. Fix: use "
            "QuantConv2D(input_quantizer='ste_sign', kernel_quantizer='magnitude_aware_sign' or "
            "'ste_sign', pad_values=1.0 for padding='same')."
        )
    return problems


def _folding_into(model, kept_float: set) -> set:
    """BatchNorms that fold into the layer kept float they read (the op takes their name)."""
    topology = _Topology(model)
    return {
        name for name in topology.order
        if isinstance(topology.layer(name), tf.keras.layers.BatchNormalization)
        and topology.inputs_of[name] and topology.inputs_of[name][0] in kept_float
        and topology.single_use(topology.inputs_of[name][0])
    }


def _tentacle_op_problems(
    graph: FlatbufferGraph, needs: TopologyNeeds, layer_names: set, kept_float: set,
    folding_into_float: set = frozenset(),
):
    """Float convs and unfolded arithmetic inside the tentacles (but in layers kept float)."""
    problems = []
    for op in graph.operators:
        owner = layer_of(op, layer_names)
        index = tentacle_index(owner) if owner else None
        if index is None or owner in kept_float:
            continue
        if op.op == "DEPTHWISE_CONV_2D" and owner in needs.unfoldable_ok_bn:
            continue  # an int8 file runs a BatchNorm between float ops as a 1x1 depthwise conv
        if op.op in FLOAT_COMPUTE_OPS and owner not in folding_into_float:
            problems.append(
                f"float {op.op} (op {op.index}, from layer {owner!r}) inside tentacle {index}: "
                "tentacle convs must be LceBconv2d."
            )
        elif op.op in FLOAT_ARITHMETIC_OPS and owner not in needs.allowed_react_ops:
            if owner in needs.folded_bn:
                problems.append(
                    f"float {op.op} (op {op.index}) from BatchNorm {owner!r} in tentacle {index}: "
                    "it was not folded into a binary conv. Fix: put BatchNorm right after the "
                    "QuantConv2D (conv -> BN -> MaxPool), with no other consumer of the conv."
                )
            elif index in needs.chain_tentacles and owner not in needs.unfoldable_ok_bn:
                problems.append(
                    f"float {op.op} (op {op.index}, from layer {owner!r}) in chain tentacle "
                    f"{index}: a chain tentacle should be binary ops only."
                )
    return problems


def _react_op_problems(graph: FlatbufferGraph, needs: TopologyNeeds, layer_names: set):
    """Shifts that did not fold, RPReLUs that are not one PRELU (+ SUB), stray PRELUs."""
    owned: Dict[str, Dict[str, int]] = {}
    problems = []
    for op in graph.operators:
        owner = layer_of(op, layer_names)
        if owner in needs.allowed_react_ops and op.op in FLOAT_ARITHMETIC_OPS + (PRELU_OP,):
            owned.setdefault(owner, {}).setdefault(op.op, 0)
            owned[owner][op.op] += 1
        elif op.op == PRELU_OP and owner and tentacle_index(owner) is not None:
            problems.append(
                f"PRELU (op {op.index}, from layer {owner!r}) in a tentacle is not an RPReLU "
                "of block='react': only RPReLU's PReLU is expected there."
            )
    for name, allowed in needs.allowed_react_ops.items():
        got = owned.get(name, {})
        expected = {op: count for op, count in allowed.items() if op == PRELU_OP}
        too_many = {op: n for op, n in got.items() if n > allowed.get(op, 0)}
        missing = {op: n for op, n in expected.items() if got.get(op, 0) != n}
        if too_many or missing:
            problems.append(
                f"layer {name!r} ({_react_kind(name, needs)}) converted to float ops {got}, but "
                f"{allowed or 'none (folded into the binary conv)'} are expected: its shift "
                "did not fold or its PReLU was not recognised. Fix: keep the template's order "
                "QuantConv2D -> BatchNorm -> shift/RPReLU (-> pooling) -> QuantConv2D."
            )
    return problems


def _react_kind(name: str, needs: TopologyNeeds) -> str:
    return "RPReLU" if name in needs.rprelu_layers else "LearnableShift"


def _quantize_problems(needs: TopologyNeeds, counts: Dict[str, int]) -> List[str]:
    quantizes = counts.get("LceQuantize", 0)
    expected = len(needs.quantize_sources)
    if quantizes <= expected:
        return []
    return [
        f"the .tflite has {quantizes} LceQuantize ops but the layers need {expected} (one "
        f"per float tensor feeding binary convs: {needs.quantize_sources}): some binary "
        "convs write float output instead of bitpacked output. Fix: pad_values=1.0 for "
        "'same' padding, no activation on binary convs that feed binary convs, and "
        "QuantConv2D -> BatchNorm -> MaxPool order."
    ]
