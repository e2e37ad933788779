"""The TentacleNet template (Mocerino & Calimera, AICAS 2020, §3).

A float CNN with m weight layers becomes: its first conv block (the *stem*), kept
float and computed once; `n` binary replicas (*tentacles*) of its m - 2 inner
layers, each fed by the stem; and a float *head* that fuses the tentacles
(Fig. 2):

(a) the model ends in a conv that produces C logits followed by global pooling:
    that last conv (and the pooling) is shared by all tentacles, the n·C logits
    are concatenated and a Dense(C) combines them;
(b) the model ends in its own dense classifier over K features: that classifier
    is dropped, the n·K features are concatenated into a new Dense(C).

With one tentacle the result is the plain XNOR-Net BNN of the float model (no
concatenation, no extra dense), as in the paper's Fig. 3.

Layers are named `stem_<name>`, `t<i>_<name>` (tentacle i, 1-based) and
`head_<name>`, plus `head_concat` and `head_dense`; `layout()` reads a model back
from these names.
"""

import dataclasses
from typing import Dict, List, Optional

import larq as lq
import numpy as np
import tensorflow as tf

from larq_tentacle.core import binarization, float_layers, fusion, preactivation
from larq_tentacle.core.graph import LayerGraph, call_layer, clone_layer
from larq_tentacle.core.initializers import PseudoHadamard, TentacleAverage, derive_seed
from larq_tentacle.utils.validation import choice, positive_int

INITS = ("hadamard", "copy")

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
class _Split:
    """Where a float model's layers go in the TentacleNet."""

    graph: LayerGraph
    stem: List[str]
    tentacle: List[str]
    head_trunk: str
    variant: str  # "a" (shared conv + global pooling) or "b" (dense classifier)
    shared_head: List[str]  # 2a: head_trunk .. global pooling, applied per tentacle
    post: List[str]  # layers after the classifier (e.g. the softmax)
    drop_activation: set  # layers that would spoil a sign(): non-negative activations, Dropout
    float_layers: Dict[str, str]  # tentacle layers LCE cannot binarize -> why (float_layers.py)
    rewrite: preactivation.Rewrite  # pre-activation BatchNorms moved after binary convs


def _is_plain_conv(layer) -> bool:
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


def split_model(model: tf.keras.Model) -> _Split:
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
    return _Split(graph, stem, tentacle, head_trunk, variant, shared_head, post, drop_activation,
                  kept_float, rewrite)


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
    if not weight_layers or not _is_plain_conv(graph.layer(weight_layers[0])):
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
    if not _is_plain_conv(head_layer):
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
        allowed = _is_plain_conv(layer) or _is_plain_dense(layer)
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


def tentaclize(
    float_model: tf.keras.Model,
    *,
    tentacles: int,
    init: str = "hadamard",
    seed: int = 0,
    name: Optional[str] = None,
    fused=False,
) -> tf.keras.Model:
    """Turn a float functional CNN into a TentacleNet with `tentacles` binary tentacles.

    !!! example
        ```python
        tn = lt.tentaclize(my_float_cnn, tentacles=4, init="hadamard", seed=0)
        ```

    # Arguments
        float_model: a functional Keras CNN whose first weight layer is a Conv2D and
            whose last is a Conv2D over C logits + global pooling (Fig. 2-a) or a
            Dense classifier (Fig. 2-b).
        tentacles: number of binary replicas of the inner layers; 1 gives the BNN.
        init: "hadamard" starts each tentacle from pseudo-Hadamard kernels with its
            own seed (§3.2); "copy" starts every tentacle from the float model's
            weights (the paper's pretrained entry point).
        seed: base seed; tentacle i and layer j use `derive_seed(seed, i, j)`.
        name: model name, default `<float name>_tentacles<n>`.
        fused: False (n branches, the default), True (the fused form: one grouped
            binary conv per tentacle layer, see `larq_tentacle.core.fusion`; same
            weights as the branched model) or "auto" (the form that trains
            faster on this device without XLA, docs/performance.md: branched on
            CPU, fused on a GPU; with jit_compile=True pass False).

    # Returns
        A functional `tf.keras.Model`. The stem and the shared head copy the float
        model's weights; only the tentacles depend on `init`.
    """
    hint = "pass the number of tentacles, e.g. tentacles=3"
    tentacles = positive_int("tentacles", tentacles, hint=hint)
    init = choice("init", init, INITS)
    seed = positive_int("seed", seed, minimum=0)
    fused_form, implementation = fusion.resolve_fused(fused)
    split = split_model(float_model)
    copies = []  # (new layer, float layer) pairs whose weights are copied after building

    inputs = tf.keras.Input(shape=float_model.input_shape[1:], name=split.graph.input_name)
    stem_tensors = _build_stem(split, inputs, copies)
    tentacle_outputs = [
        _build_tentacle(split, stem_tensors, index, init, seed, copies)
        for index in range(1, tentacles + 1)
    ]
    outputs = _head(split, tentacle_outputs, seed, copies)
    name = name or f"{float_model.name}_tentacles{tentacles}"
    model = tf.keras.Model(inputs, outputs, name=name)
    for new, old in copies:
        new.set_weights(_matching_weights(new, old))
    if fused_form:
        model = fusion.fuse(model, implementation=implementation)
    return model


def _build_stem(split: _Split, inputs: tf.Tensor, copies) -> Dict[str, tf.Tensor]:
    """The float stem's tensors by float layer name (the input included)."""
    graph = split.graph
    tensors: Dict[str, tf.Tensor] = {graph.input_name: inputs}
    for layer_name in split.stem:
        sources = [tensors[p] for p in graph.inputs_of[layer_name]]
        layer = graph.layer(layer_name)
        if layer_name in split.drop_activation and not binarization.is_weight_layer(layer):
            tensors[layer_name] = sources[0]
            continue
        overrides = {"activation": "linear"} if layer_name in split.drop_activation else {}
        new = clone_layer(layer, f"stem_{layer_name}", **overrides)
        tensors[layer_name] = call_layer(new, sources)
        copies.append((new, layer))
    return tensors


def _build_tentacle(split: _Split, stem_tensors, index: int, init: str, seed: int, copies):
    """Tentacle `index` (1-based) on the stem; returns the tensor the head reads."""
    graph = split.graph
    tensors = dict(stem_tensors)
    for position, layer_name in enumerate(split.tentacle):
        layer = graph.layer(layer_name)
        sources = [tensors[p] for p in graph.inputs_of[layer_name]]
        new_name = f"t{index}_{layer_name}"
        if binarization.is_weight_layer(layer) and layer_name not in split.float_layers:
            layer_seed = derive_seed(seed, index, position)
            tensors[layer_name] = _binary_layer(
                layer, sources[0], new_name, split, init, layer_seed, copies
            )
            tensors[layer_name] = split.rewrite.after(layer_name, new_name, tensors[layer_name])
        elif layer_name in split.rewrite.moved or (
            layer_name in split.drop_activation and layer_name not in split.float_layers
        ):
            tensors[layer_name] = sources[0]
        else:  # layers kept float are replicated with their weights (a fused ReLU may go)
            linear = {"activation": "linear"} if layer_name in split.drop_activation else {}
            new = clone_layer(layer, new_name, **linear)
            tensors[layer_name] = call_layer(new, sources)
            if init == "copy" or layer_name in split.float_layers:
                copies.append((new, layer))
    return tensors[graph.inputs_of[split.head_trunk][0]]


def _binary_layer(layer, source, name, split, init, layer_seed, copies):
    """Build the XNOR replacement of a float Conv2D/Dense and call it on `source`."""
    initializer = PseudoHadamard(seed=layer_seed) if init == "hadamard" else None
    conv_config = layer.get_config() if _is_plain_conv(layer) else _pointwise_conv_config(layer)
    config = binarization.binary_conv_config(
        conv_config,
        name=name,
        kernel_initializer=initializer,
        keep_activation=layer.name not in split.drop_activation,
    )
    new = lq.layers.QuantConv2D.from_config(config)
    if len(source.shape) == 2:  # a dense layer on a feature vector: a 1x1 conv on a 1x1 map
        mapped = tf.keras.layers.Reshape((1, 1, source.shape[-1]), name=f"{name}_to_map")(source)
        output = tf.keras.layers.Flatten(name=f"{name}_flatten")(new(mapped))
    else:
        output = new(source)
    if init == "copy":
        copies.append((new, layer))
    return output


def _pointwise_conv_config(dense_layer) -> dict:
    """The Conv2D config of a 1x1 conv computing `dense_layer`.

    LCE has no binary dense op: a dense layer becomes a 1x1 binary conv, which LCE
    converts to LceBconv2d (and whose size is the same).
    """
    dense = dense_layer.get_config()
    return dict(
        filters=dense["units"],
        kernel_size=(1, 1),
        padding="valid",
        use_bias=dense["use_bias"],
        activation=dense["activation"],
        kernel_initializer=dense["kernel_initializer"],
        bias_initializer=dense["bias_initializer"],
        kernel_regularizer=dense["kernel_regularizer"],
        bias_regularizer=dense["bias_regularizer"],
        dtype=dense.get("dtype"),
    )


def _head(split: _Split, tentacle_outputs, seed: int, copies):
    """The float head over the tentacles' outputs (Fig. 2-a or 2-b), then the post layers."""
    if split.variant == "a":
        x = _shared_conv_head(split, tentacle_outputs, copies)
    else:
        x = _dense_head(split, tentacle_outputs, seed, copies)
    for layer_name in split.post:
        x = clone_layer(split.graph.layer(layer_name), f"head_{layer_name}")(x)
    return x


def _shared_conv_head(split: _Split, tentacle_outputs, copies):
    """Fig. 2-a: the last conv and pooling applied to every tentacle, then Dense(C)."""
    graph = split.graph
    shared = []
    for layer_name in split.shared_head:
        new = clone_layer(graph.layer(layer_name), f"head_{layer_name}")
        copies.append((new, graph.layer(layer_name)))
        shared.append(new)
    logits = []
    for output in tentacle_outputs:
        for layer in shared:
            output = layer(output)
        logits.append(output)
    n = len(tentacle_outputs)
    if n == 1:
        return logits[0]
    x = tf.keras.layers.Concatenate(name="head_concat")(logits)
    # Start as the average of the tentacles' logits (an ensemble vote), so every
    # tentacle is trained to classify on its own; training then learns the mix.
    return tf.keras.layers.Dense(
        graph.layer(split.head_trunk).filters,
        kernel_initializer=TentacleAverage(n),
        name="head_dense",
    )(x)


def _dense_head(split: _Split, tentacle_outputs, seed: int, copies):
    """Fig. 2-b: a new Dense(C) over the concatenated features (n = 1: the float classifier)."""
    trunk = split.graph.layer(split.head_trunk)
    if len(tentacle_outputs) == 1:
        dense = clone_layer(trunk, "head_dense")
        copies.append((dense, trunk))
        return dense(tentacle_outputs[0])
    x = tf.keras.layers.Concatenate(name="head_concat")(tentacle_outputs)
    initializer = tf.keras.initializers.GlorotUniform(seed=seed)
    overrides = {"kernel_initializer": tf.keras.initializers.serialize(initializer)}
    return clone_layer(trunk, "head_dense", **overrides)(x)


def _matching_weights(new, old) -> list:
    """`old`'s weights reshaped to `new`'s (a dense kernel becomes a 1x1 conv kernel)."""
    return [np.reshape(w, v.shape) for w, v in zip(old.get_weights(), new.weights)]
