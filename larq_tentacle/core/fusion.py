"""Fused tentacles: all n tentacles of a TentacleNet as one network of grouped convs.

The n tentacles have the same topology and all read the shared stem, so they can
run as one network (the *fused* form): the first tentacle conv has n·F filters
(its input is the stem, shared by all), every later binary conv has n·F filters
and `groups=n`, and BatchNorm, pooling, activations and residual adds work per
channel anyway. The channels of every fused tensor are the n per-tentacle tensors
concatenated in tentacle order, so global pooling yields exactly the features
(head "b") or logits (head "a") that the branched form concatenates.

Larq Compute Engine converts each grouped binary conv into ONE LceBconv2d (n
tentacles: 1 op per layer instead of n), with the same bytes. The catch: LCE's
default binary kernel refuses grouped convs, only its indirect-BGEMM kernel runs
them (`use_indirect_bgemm=True`), and the converter needs the input channels per
group to be a multiple of 32. So: train branched, keep the branched form as the
default export, and fuse for a runtime that registers the indirect-BGEMM kernel.

`fuse(model)` and `unfuse(model)` convert between the forms, weights included
(kernels, biases, BatchNorm statistics, head), so predictions agree to float
rounding. Fused layers are named `tentacles<n>_<name>` (e.g. `tentacles3_conv2`),
stem and head layers keep their names.
"""

import dataclasses
import re
from typing import Dict, List, Optional, Tuple

import larq as lq
import numpy as np
import tensorflow as tf

from larq_tentacle.core import binarization
from larq_tentacle.core.fused_layers import IMPLEMENTATIONS, SharedGroupConv2D, TentacleConv2D
from larq_tentacle.core.layout import layout, tentacle_index
from larq_tentacle.utils.validation import choice

LCE_GROUP_CHANNELS = 32
"""LCE converts a grouped binary conv only when its input channels per group are a
multiple of this (32-bit words); multiples of 128 pick its fastest ARM kernel."""

_FUSED_NAME = re.compile(r"^tentacles(\d+)_(.+)$")
_FUSED_MARK = "_fused"

# Layers that act on each channel (or element) alone, so one layer over n·C
# channels computes the same as n layers over C channels each.
_PER_CHANNEL = (
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
)
# Layers that keep channel order only when every non-channel axis has size 1.
_RESHAPES = (tf.keras.layers.Flatten, tf.keras.layers.Reshape)


def is_fused(model: tf.keras.Model) -> bool:
    """True for a model in the fused form (layers named `tentacles<n>_*`)."""
    return any(_FUSED_NAME.match(layer.name) for layer in model.layers)


def fused_tentacles(model: tf.keras.Model) -> int:
    """The number of tentacles of a fused model."""
    counts = {int(m.group(1)) for m in (_FUSED_NAME.match(layer.name) for layer in model.layers) if m}
    if len(counts) != 1:
        raise ValueError(
            f"{model.name!r} is not a fused TentacleNet (expected layers named tentacles<n>_*, "
            f"found tentacle counts {sorted(counts)}). Fix: pass a model made by lt.fuse(...) "
            "or lt.build(..., fused=True)."
        )
    return counts.pop()


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
            f"({self.tentacles} groups of {self.channels_per_group}, set by {self.feeding_layer!r}); "
            f"Larq Compute Engine converts grouped binary convs only when the input channels "
            f"per group are a multiple of {LCE_GROUP_CHANNELS} (128 is fastest on ARM)"
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
            already fused model (then only `implementation` changes).
        implementation: how TensorFlow computes the grouped binary convs, one of
            `fused_layers.IMPLEMENTATIONS`. "grouped" (default) gives plain
            `lq.layers.QuantConv2D(groups=n)`, the form LCE converts to one
            LceBconv2d; the others give `TentacleConv2D` layers with the same weights
            that train faster on some devices (docs/performance.md).
        check_lce: refuse (ValueError naming the layer) a model whose grouped binary
            convs would have input channels per group that are not a multiple of 32,
            which LCE cannot convert. Pass False to fuse anyway (e.g. to train).
        name: model name, default `<model name>_fused`.

    # Returns
        A functional `tf.keras.Model` whose outputs equal `model`'s.
    """
    implementation = choice("implementation", implementation, IMPLEMENTATIONS)
    if is_fused(model):
        model = unfuse(model)
    plan = _Plan.read(model)
    if check_lce:
        problems = lce_group_problems(model)
        if problems:
            raise ValueError(
                f"Cannot fuse {model.name!r} for Larq Compute Engine: "
                + "; ".join(p.message() for p in problems)
                + ". Fix: make the widths feeding these layers multiples of 32 (e.g. 64 or 128), "
                "or keep the branched form (export with fused=False), which LCE runs with any width."
            )
    return _build_fused(model, plan, implementation, name or model.name + _FUSED_MARK)


def unfuse(model: tf.keras.Model, *, name: Optional[str] = None) -> tf.keras.Model:
    """The branched form of a fused TentacleNet (inverse of `fuse`), weights included.

    Layer names, weights and predictions are those of the branched model that was
    fused: `unfuse(fuse(tn))` has `tn`'s layers.
    """
    if not is_fused(model):
        raise ValueError(
            f"{model.name!r} is not in the fused form (no layers named tentacles<n>_*), so there "
            "is nothing to unfuse. Fix: pass a model made by lt.fuse(...) or lt.build(..., fused=True)."
        )
    default = model.name[: -len(_FUSED_MARK)] if model.name.endswith(_FUSED_MARK) else model.name
    return _build_branched(model, fused_tentacles(model), name or default)


def lce_group_problems(model: tf.keras.Model) -> List[GroupProblem]:
    """The binary convs of a branched TentacleNet that LCE could not convert once fused."""
    if is_fused(model):
        model = unfuse(model)
    plan = _Plan.read(model)
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
                    layer=_fused_name(n, block),
                    tentacle_layer=layer.name,
                    feeding_layer=plan.width_source(block),
                    channels_per_group=per_group,
                    tentacles=n,
                )
            )
    return problems


def resolve_fused(fused) -> Tuple[bool, str]:
    """(fused?, implementation) for `build(..., fused=...)`: False, True or "auto".

    "auto" picks the training form measured fastest on this device
    (docs/performance.md): branched on CPU, fused (grouped) on a GPU for a
    `model.fit` without XLA. Under `jit_compile=True` branched trained faster on a
    GPU too (JAX/XLA proxy): pass fused=False there.
    """
    if isinstance(fused, bool):
        return fused, "grouped"
    if fused == "auto":
        return AUTO_CHOICE[device_kind()]
    raise ValueError(
        f"Expected `fused` to be False (branched, the default), True (one grouped conv per "
        f"tentacle layer) or 'auto' (the faster training form on this device), got {fused!r}."
    )


# docs/performance.md. CPU (benchmarks/train_throughput.py, NiN batch 64): no fused
# form trains faster than the branched graph, and Keras's grouped conv is ~4x slower.
# GPU, one kernel per op (model.fit without XLA): cuDNN's grouped convs trained
# 2.0-2.6x faster than n separate convs at batch 64 on an H100 and an H200 (PyTorch
# proxy). Under XLA (jit_compile=True; JAX proxy) branched was faster, but "auto" is
# chosen at build time, before compile, so it serves the default fit. TensorFlow
# could not run on the lent GPU machines.
AUTO_CHOICE = {"cpu": (False, "grouped"), "gpu": (True, "grouped")}


def device_kind() -> str:
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


# --- reading a branched TentacleNet -------------------------------------------------

_Ref = Tuple[str, int]  # (layer name, node index) of a single-output layer


def _inbound(entry) -> List[List[_Ref]]:
    """Per call (node) of a layer config: the (layer, node) tensors it reads."""
    nodes = []
    for node in entry["inbound_nodes"]:
        refs = []
        for inbound in node:
            if inbound[2] != 0:
                raise ValueError(
                    f"fuse cannot follow the connection {inbound[0]!r} -> {entry['name']!r}: "
                    "it reads a second output of a multi-output layer."
                )
            refs.append((inbound[0], inbound[1]))
        nodes.append(refs)
    return nodes


@dataclasses.dataclass
class _Plan:
    """The structure of a branched TentacleNet, read from its config and checked."""

    model: tf.keras.Model
    tentacles: int
    entries: Dict[str, dict]  # layer name -> config entry
    order: List[str]  # layer names, producers first
    blocks: List[str]  # tentacle block names (t1_<block>), producers first
    inputs_of: Dict[str, List[List[_Ref]]]

    @classmethod
    def read(cls, model: tf.keras.Model) -> "_Plan":
        tentacle_layout = layout(model)
        config = model.get_config()
        if len(config["input_layers"]) != 1 or len(config["output_layers"]) != 1:
            raise ValueError(f"fuse supports one input and one output; {model.name!r} has more.")
        entries = {entry["name"]: entry for entry in config["layers"]}
        inputs_of = {name: _inbound(entry) for name, entry in entries.items()}
        order = [entry["name"] for entry in config["layers"]]
        n = tentacle_layout.tentacles
        blocks = list(tentacle_layout.block_names())
        plan = cls(model, n, entries, order, blocks, inputs_of)
        plan._check_tentacles_alike()
        return plan

    def _check_tentacles_alike(self):
        first = set(self.blocks)
        for i in range(2, self.tentacles + 1):
            names = {
                name.split("_", 1)[1] for name in self.entries if tentacle_index(name) == i
            }
            if names != first:
                raise ValueError(
                    f"fuse needs tentacles of the same topology, but tentacle {i} of "
                    f"{self.model.name!r} has layers {sorted(names ^ first)} that tentacle 1 "
                    "has not (or lacks them)."
                )
            for block in self.blocks:
                one, other = self.entries[f"t1_{block}"], self.entries[f"t{i}_{block}"]
                renamed = [[self._retarget(ref, i) for ref in node] for node in self.inputs_of[one["name"]]]
                if one["class_name"] != other["class_name"] or renamed != self.inputs_of[other["name"]]:
                    raise ValueError(
                        f"fuse needs tentacles of the same topology, but t{i}_{block} differs "
                        f"from t1_{block} in {self.model.name!r} (layer type or inputs)."
                    )
                if _structural(one["config"]) != _structural(other["config"]):
                    raise ValueError(
                        f"fuse needs tentacles of the same shape, but the configs of t1_{block} "
                        f"and t{i}_{block} of {self.model.name!r} differ."
                    )

    def _retarget(self, ref: _Ref, tentacle: int) -> _Ref:
        name, node = ref
        if tentacle_index(name) == 1:
            return (f"t{tentacle}_{name.split('_', 1)[1]}", node)
        return ref

    def grouped(self, block: str) -> bool:
        """Whether the fused layer of `block` reads a fused (per-tentacle) tensor."""
        return any(tentacle_index(name) == 1 for name, _ in self.inputs_of[f"t1_{block}"][0])

    def width_source(self, block: str) -> str:
        """The nearest layer before `block` that sets its channel count."""
        name = self.inputs_of[f"t1_{block}"][0][0][0]
        while True:
            layer = self.model.get_layer(name)
            if binarization.is_weight_layer(layer) or not self.inputs_of[name]:
                return name
            name = self.inputs_of[name][0][0][0]


def _structural(config):
    """A layer config without what legitimately differs between tentacles (names, init seeds)."""
    skip = {"name", "kernel_initializer", "bias_initializer", "seed", "build_config"}
    if isinstance(config, dict):
        return {k: _structural(v) for k, v in config.items() if k not in skip}
    if isinstance(config, (list, tuple)):
        return [_structural(v) for v in config]
    return config


def _fused_name(n: int, block: str) -> str:
    return f"tentacles{n}_{block}"


def _clone(layer, name: str, **overrides):
    config = layer.get_config()
    config.update(name=name, **overrides)
    return layer.__class__.from_config(config)


def _keeps_channel_order(layer) -> bool:
    """A reshape keeps the concatenated channel order when only the channel axis is > 1."""
    shapes = [layer.input_shape, layer.output_shape]
    return all(all(d == 1 for d in shape[1:-1]) for shape in shapes)


def _refuse(layer, model, why: str):
    raise ValueError(
        f"fuse cannot fuse layer {layer.name!r} ({type(layer).__name__}) of {model.name!r}: {why}. "
        "Fix: keep the branched form (fused=False)."
    )


# --- building the fused form ---------------------------------------------------------


def _build_fused(model, plan: _Plan, implementation: str, name: str) -> tf.keras.Model:
    n = plan.tentacles
    shared: Dict[_Ref, tf.Tensor] = {}  # stem / head tensors, one per original tensor
    fused: Dict[_Ref, tf.Tensor] = {}  # per-tentacle tensors, by tentacle-1 reference
    tiled: Dict[_Ref, tf.Tensor] = {}
    transfers = []  # (new layer, weights)

    def tentacle_of(ref: _Ref) -> Optional[Tuple[int, _Ref]]:
        """(tentacle, tentacle-1 ref) when `ref` is a per-tentacle tensor."""
        layer_name, node = ref
        index = tentacle_index(layer_name)
        if index is not None:
            return index, (f"t1_{layer_name.split('_', 1)[1]}", node)
        if (layer_name, 0) in head_per_tentacle:
            return node + 1, (layer_name, 0)
        return None

    def fused_input(ref: _Ref, consumer: str, tile: bool = True) -> tf.Tensor:
        """The fused tensor for `ref`; a shared tensor is repeated n times unless `tile=False`."""
        found = tentacle_of(ref)
        if found is not None:
            return fused[found[1]]
        if n == 1 or not tile:
            return shared[ref]
        if ref not in tiled:
            tiled[ref] = tf.keras.layers.Concatenate(name=_fused_name(n, f"{consumer}_tile_{ref[0]}"))(
                [shared[ref]] * n
            )
        return tiled[ref]

    head_per_tentacle = set()
    for layer_name in plan.order:
        entry = plan.entries[layer_name]
        layer = model.get_layer(layer_name)
        nodes = plan.inputs_of[layer_name]
        index = tentacle_index(layer_name)
        if not nodes:  # the input
            shared[(layer_name, 0)] = tf.keras.Input(
                shape=model.input_shape[1:], name=layer_name, dtype=layer.dtype
            )
        elif index is not None and index > 1:
            continue  # folded into tentacle 1's fused layer
        elif index == 1:
            block = layer_name.split("_", 1)[1]
            fused[(layer_name, 0)] = _fuse_tentacle_layer(
                model, plan, layer, block, nodes[0], fused_input, implementation, transfers
            )
        elif n > 1 and any(tentacle_of(ref) for ref in nodes[0]):
            _fuse_head_layer(model, plan, layer, nodes, tentacle_of, fused, shared, head_per_tentacle, transfers)
        else:
            if len(nodes) != 1:
                _refuse(layer, model, "it is called more than once outside the tentacles")
            # With one tentacle there is nothing to concatenate: its tensors are the head's.
            sources = [fused_input(ref, layer_name, tile=False) for ref in nodes[0]]
            new = _clone(layer, layer.name)
            shared[(layer_name, 0)] = new(sources[0] if len(sources) == 1 else sources)
            transfers.append((new, layer.get_weights()))

    output_name = model.get_config()["output_layers"][0][0]
    outputs = shared.get((output_name, 0))
    if outputs is None:  # a model whose output is per-tentacle (n=1 without a head)
        outputs = fused[tentacle_of((output_name, 0))[1]]
    fused_model = tf.keras.Model(shared[(plan.order[0], 0)], outputs, name=name)
    for new, weights in transfers:
        new.set_weights(weights)
    return fused_model


def _fuse_tentacle_layer(model, plan, layer, block, sources, fused_input, implementation, transfers):
    n = plan.tentacles
    name = _fused_name(n, block)
    per_tentacle = [model.get_layer(f"t{i}_{block}") for i in range(1, n + 1)]
    # A conv that reads the stem reads it once: n·F filters, no groups.
    tile = not binarization.is_weight_layer(layer)
    inputs = [fused_input(ref, block, tile) for ref in sources]
    if binarization.is_weight_layer(layer):
        if not isinstance(layer, lq.layers.QuantConv2D):
            _refuse(layer, model, "only binary QuantConv2D weight layers can be fused")
        config = layer.get_config()
        if config.get("groups", 1) != 1 or config.get("data_format") != "channels_last":
            _refuse(layer, model, "it is already grouped or not channels_last")
        grouped = plan.grouped(block) and n > 1
        config.pop("implementation", None)
        config.update(name=name, filters=n * config["filters"], groups=n if grouped else 1)
        if grouped and implementation != "grouped":
            new = TentacleConv2D.from_config(dict(config, implementation=implementation))
        else:
            new = lq.layers.QuantConv2D.from_config(config)
    elif isinstance(layer, _PER_CHANNEL):
        new = _clone(layer, name)
        if isinstance(layer, tf.keras.layers.BatchNormalization) and layer.axis not in ([-1], [3]):
            _refuse(layer, model, f"its BatchNormalization axis {layer.axis} is not the channel axis")
    elif isinstance(layer, _RESHAPES):
        if not _keeps_channel_order(layer):
            _refuse(
                layer,
                model,
                f"it reshapes {layer.input_shape} -> {layer.output_shape}, which would interleave "
                "the tentacles' channels (only reshapes where every axis but the channels is 1 fuse)",
            )
        target = None if isinstance(layer, tf.keras.layers.Flatten) else tuple(layer.target_shape[:-1]) + (
            n * layer.target_shape[-1],
        )
        new = _clone(layer, name) if target is None else _clone(layer, name, target_shape=target)
    else:
        _refuse(layer, model, "it does not act on each channel alone")
    output = new(inputs[0] if len(inputs) == 1 else inputs)
    weights = [layer_.get_weights() for layer_ in per_tentacle]
    transfers.append((new, [np.concatenate(parts, axis=-1) for parts in zip(*weights)]))
    return output


def _fuse_head_layer(model, plan, layer, nodes, tentacle_of, fused, shared, head_per_tentacle, transfers):
    """A head layer that reads the tentacles: the concatenation or a per-tentacle shared layer."""
    n = plan.tentacles
    found = [[tentacle_of(ref) for ref in node] for node in nodes]
    if isinstance(layer, tf.keras.layers.Concatenate):
        refs = found[0]
        if (
            len(nodes) != 1
            or layer.axis not in (-1, len(layer.output_shape) - 1)
            or [f[0] if f else None for f in refs] != list(range(1, n + 1))
            or len({f[1] for f in refs}) != 1
        ):
            _refuse(layer, model, "it does not concatenate the tentacles 1..n in order on the channel axis")
        shared[(layer.name, 0)] = fused[refs[0][1]]
        return
    if len(nodes) != n or any(len(node) != 1 for node in nodes) or [f[0][0] for f in found] != list(
        range(1, n + 1)
    ) or len({f[0][1] for f in found}) != 1:
        _refuse(layer, model, "a head layer reading the tentacles must be applied once to each, in order")
    source = fused[found[0][0][1]]
    if isinstance(layer, tf.keras.layers.Conv2D) and not binarization.is_binary_layer(layer):
        config = layer.get_config()
        if config.get("groups", 1) != 1:
            _refuse(layer, model, "a grouped shared head conv cannot be fused")
        new = SharedGroupConv2D.from_config(dict(config, tentacles=n))
    elif isinstance(layer, _PER_CHANNEL) and not layer.weights:
        new = _clone(layer, layer.name)
    elif isinstance(layer, _RESHAPES) and _keeps_channel_order(layer):
        new = _clone(layer, layer.name)
    else:
        _refuse(layer, model, "a shared head layer must be a float Conv2D or act on each channel alone")
    fused[(layer.name, 0)] = new(source)
    head_per_tentacle.add((layer.name, 0))
    transfers.append((new, layer.get_weights()))


# --- building the branched form back ---------------------------------------------------


def _build_branched(model, n: int, name: str) -> tf.keras.Model:
    config = model.get_config()
    entries = config["layers"]
    inputs_of = {entry["name"]: _inbound(entry) for entry in entries}
    shared: Dict[_Ref, tf.Tensor] = {}
    split: Dict[_Ref, List[tf.Tensor]] = {}  # fused tensor -> per-tentacle tensors
    transfers = []

    def per_tentacle(ref: _Ref) -> List[tf.Tensor]:
        return split[ref] if ref in split else [shared[ref]] * n

    for entry in entries:
        layer_name = entry["name"]
        layer = model.get_layer(layer_name)
        nodes = inputs_of[layer_name]
        match = _FUSED_NAME.match(layer_name)
        if not nodes:
            shared[(layer_name, 0)] = tf.keras.Input(
                shape=model.input_shape[1:], name=layer_name, dtype=layer.dtype
            )
            continue
        refs = nodes[0]
        if match:
            block = match.group(2)
            if isinstance(layer, tf.keras.layers.Concatenate):  # a tiled stem tensor
                split[(layer_name, 0)] = [shared[refs[0]]] * n
                continue
            sources = [per_tentacle(ref) for ref in refs]
            outputs = []
            weights = _split_weights(layer, n)
            for i in range(n):
                new = _unfused_layer(layer, n, f"t{i + 1}_{block}")
                inputs = [s[i] for s in sources]
                outputs.append(new(inputs[0] if len(inputs) == 1 else inputs))
                transfers.append((new, weights[i]))
            split[(layer_name, 0)] = outputs
        elif any(ref in split for ref in refs):
            per = split[refs[0]]
            if isinstance(layer, SharedGroupConv2D):
                config_ = layer.get_config()
                config_.pop("tentacles")
                new = tf.keras.layers.Conv2D.from_config(config_)
            elif binarization.is_weight_layer(layer) and not isinstance(layer, tf.keras.layers.Conv2D):
                # the classifier reads the concatenated tentacles
                merged = per[0] if n == 1 else tf.keras.layers.Concatenate(name="head_concat")(per)
                new = _clone(layer, layer.name)
                shared[(layer_name, 0)] = new(merged)
                transfers.append((new, layer.get_weights()))
                continue
            else:
                new = _clone(layer, layer.name)
            split[(layer_name, 0)] = [new(x) for x in per]
            transfers.append((new, layer.get_weights()))
        else:
            new = _clone(layer, layer.name)
            sources = [shared[ref] for ref in refs]
            shared[(layer_name, 0)] = new(sources[0] if len(sources) == 1 else sources)
            transfers.append((new, layer.get_weights()))

    output = (config["output_layers"][0][0], 0)
    outputs = shared[output] if output in shared else split[output][0]
    branched = tf.keras.Model(shared[(entries[0]["name"], 0)], outputs, name=name)
    for new, weights in transfers:
        new.set_weights(weights)
    return branched


def _unfused_layer(layer, n: int, name: str):
    config = layer.get_config()
    if isinstance(layer, lq.layers.QuantConv2D):
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
    weights = layer.get_weights()
    parts = [np.split(w, n, axis=-1) for w in weights]
    return [[p[i] for p in parts] for i in range(n)]
