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

from typing import Dict, Optional

import larq as lq
import numpy as np
import tensorflow as tf

from larq_tentacle.core import binarization, fusion
from larq_tentacle.core.blocks import check_block
from larq_tentacle.core.graph import call_layer, clone_layer
from larq_tentacle.core.initializers import PseudoHadamard, TentacleAverage, derive_seed
from larq_tentacle.core.splitting import Split, is_plain_conv, split_model
from larq_tentacle.utils.validation import choice, positive_int

INITS = ("hadamard", "copy")

def tentaclize(
    float_model: tf.keras.Model,
    *,
    tentacles: int,
    init: str = "hadamard",
    seed: int = 0,
    name: Optional[str] = None,
    fused=False,
    block: str = "xnor",
    rprelu: bool = False,
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
        block: "xnor" (the paper's XNOR-Net block) or "react" (a learnable per-channel
            shift, ReActNet's RSign, in front of every binary activation; see
            `larq_tentacle.core.blocks` for where the shifts go and what they cost).
        rprelu: with block="react", make each tentacle shift ReActNet's RPReLU
            (shift, PReLU, shift); rprelu=True with block="xnor" is a ValueError.

    # Returns
        A functional `tf.keras.Model`. The stem and the shared head copy the float
        model's weights; only the tentacles depend on `init`.
    """
    hint = "pass the number of tentacles, e.g. tentacles=3"
    tentacles = positive_int("tentacles", tentacles, hint=hint)
    init = choice("init", init, INITS)
    seed = positive_int("seed", seed, minimum=0)
    fused_form, implementation = fusion.resolve_fused(fused)
    block, rprelu = check_block(block, rprelu)
    split = split_model(float_model, block=block, rprelu=rprelu)
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


def _build_stem(split: Split, inputs: tf.Tensor, copies) -> Dict[str, tf.Tensor]:
    """The float stem's tensors by float layer name (the input included)."""
    graph = split.graph
    tensors: Dict[str, tf.Tensor] = {graph.input_name: inputs}
    for layer_name in split.stem:
        sources = split.shifts.inputs(layer_name, graph, tensors)
        layer = graph.layer(layer_name)
        if layer_name in split.drop_activation and not binarization.is_weight_layer(layer):
            tensors[layer_name] = sources[0]
        else:
            overrides = {"activation": "linear"} if layer_name in split.drop_activation else {}
            new = clone_layer(layer, f"stem_{layer_name}", **overrides)
            tensors[layer_name] = call_layer(new, sources)
            copies.append((new, layer))
        split.shifts.add_shift(layer_name, tensors, "stem_")
    return tensors


def _build_tentacle(split: Split, stem_tensors, index: int, init: str, seed: int, copies):
    """Tentacle `index` (1-based) on the stem; returns the tensor the head reads."""
    graph = split.graph
    tensors = dict(stem_tensors)
    for position, layer_name in enumerate(split.tentacle):
        layer = graph.layer(layer_name)
        sources = split.shifts.inputs(layer_name, graph, tensors)
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
        split.shifts.add_shift(layer_name, tensors, f"t{index}_")
    return tensors[graph.inputs_of[split.head_trunk][0]]


def _binary_layer(layer, source, name, split, init, layer_seed, copies):
    """Build the XNOR replacement of a float Conv2D/Dense and call it on `source`."""
    initializer = PseudoHadamard(seed=layer_seed) if init == "hadamard" else None
    conv_config = layer.get_config() if is_plain_conv(layer) else _pointwise_conv_config(layer)
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


def _head(split: Split, tentacle_outputs, seed: int, copies):
    """The float head over the tentacles' outputs (Fig. 2-a or 2-b), then the post layers."""
    if split.variant == "a":
        x = _shared_conv_head(split, tentacle_outputs, copies)
    else:
        x = _dense_head(split, tentacle_outputs, seed, copies)
    for layer_name in split.post:
        x = clone_layer(split.graph.layer(layer_name), f"head_{layer_name}")(x)
    return x


def _shared_conv_head(split: Split, tentacle_outputs, copies):
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


def _dense_head(split: Split, tentacle_outputs, seed: int, copies):
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
