"""A workaround for LCE's pad fusion, which shifts strided convolutions by one pixel.

Larq Compute Engine 0.16's `FusePadding` pass (compute-engine PR #712,
`larq_compute_engine/mlir/transforms/fuse_padding.td`) rewrites `Pad → Conv2D` and
`Pad → DepthwiseConv2D` with VALID padding into one conv with SAME padding when the
pad is split as SAME splits it (before = total // 2, after = total - before) and the
conv has ceil(size / stride) outputs. It never checks that the pad *total* is SAME's.
At stride 2 on an even size, `ZeroPadding2D(p) → Conv2D(2p + 1, strides=2)` pads
(p, p) but SAME pads (p - 1, p): the converted conv reads every window one pixel up
and left (measured max |Δ| 1.28 on a ResNet stem, 13 with random weights; stride 1,
odd sizes and `padding="same"` convert exactly). Every ResNet/DenseNet stem has it.
Pools and binary convs are not fused, and convert exactly.

The fix computes the same function: the last `(padded - kernel) % stride` rows and
columns of a VALID conv's padded input are read by no window, so they are dropped
from the padding before converting. What is left either is exactly SAME's padding
(LCE then fuses it correctly) or is split the other way, (p, p - 1), so the pattern
does not match and the file keeps a PAD op, as TensorFlow's own converter does.

`tests/test_padding_export.py::test_lce_still_misfuses_strided_padding` asserts the
raw converter's bug; when it fails, LCE is fixed and this module can go.
"""

from typing import Dict, Optional, Tuple

import tensorflow as tf

from larq_tentacle.core.graph import LayerGraph, call_layer, clone_layer

Pads = Tuple[int, int]
_CONVS = (
    tf.keras.layers.Conv2D,
    tf.keras.layers.DepthwiseConv2D,
    tf.keras.layers.SeparableConv2D,  # converts to a DEPTHWISE_CONV_2D that reads the pad
)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> Pads:
    """TensorFlow's SAME padding (before, after) of one spatial axis."""
    extent = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def lce_misfuses(size: int, pads: Pads, kernel: int, stride: int, dilation: int = 1) -> bool:
    """Along one axis: does LCE's pattern accept `pads` although SAME would pad otherwise?

    The whole conv is misconverted when both axes pass LCE's test and one of them is
    wrong (`lce_fuses` and not `same_padding`).
    """
    return lce_fuses(size, pads, kernel, stride, dilation) and pads != same_padding(
        size, kernel, stride, dilation
    )


def lce_fuses(size: int, pads: Pads, kernel: int, stride: int, dilation: int = 1) -> bool:
    """Along one axis: LCE 0.16's test for folding `pads` into a SAME conv (`IsSamePadding1D`)."""
    before, after = pads
    extent = (kernel - 1) * dilation + 1
    outputs = (size + before + after - extent) // stride + 1
    total = before + after
    return outputs == -(-size // stride) and before == total // 2 and after == (total + 1) // 2


def trimmed_padding(size: int, pads: Pads, kernel: int, stride: int, dilation: int = 1) -> Pads:
    """`pads` without the trailing rows that no window of a VALID conv reads (same outputs)."""
    before, after = pads
    extent = (kernel - 1) * dilation + 1
    unread = (size + before + after - extent) % stride
    return before, after - min(after, unread)


def padding_rewrites(model: tf.keras.Model) -> Dict[str, tuple]:
    """The ZeroPadding2D layers LCE would misconvert -> the padding that converts exactly.

    Only a ZeroPadding2D read by nothing but one float (Depthwise/Separable)Conv2D with
    VALID padding can be fused; binary convs read an LceQuantize, not the pad. An
    empty dict for models whose graph cannot be read (subclassed): the verifier still
    compares the file with Keras.
    """
    graph = _graph_or_none(model, shared_layers=True)
    if graph is None:
        return {}
    rewrites = {}
    for name in graph.names:
        layer = graph.layer(name)
        if not isinstance(layer, tf.keras.layers.ZeroPadding2D):
            continue
        conv = _only_conv_reader(graph, name)
        size = _input_size(layer) if conv is not None else None
        if size is not None and layer.data_format == "channels_last":
            padding = _exact_padding(size, tuple(map(tuple, layer.padding)), conv)
            if padding is not None:
                rewrites[name] = padding
    return rewrites


def without_misfused_padding(model: tf.keras.Model) -> tf.keras.Model:
    """`model` itself, or a copy with `padding_rewrites` applied that LCE converts exactly.

    The copy has the same layer names and weights and computes the same outputs; the
    original model is not touched (no layer of it is called again).
    """
    rewrites = padding_rewrites(model)
    if not rewrites:
        return model
    graph = LayerGraph(
        _functional(model), where="The export's padding workaround (see deploy/padding.py)"
    )
    tensors = {}
    for name in graph.order:
        layer = graph.layer(name)
        if not graph.inputs_of[name]:
            tensors[name] = tf.keras.Input(
                shape=model.input_shape[1:], name=name, dtype=layer.dtype
            )
            continue
        overrides = {"padding": rewrites[name]} if name in rewrites else {}
        new = clone_layer(layer, name, **overrides)
        tensors[name] = call_layer(new, [tensors[source] for source in graph.inputs_of[name]])
        new.set_weights(layer.get_weights())
    return tf.keras.Model(tensors[graph.input_name], tensors[graph.output_name], name=model.name)


def _exact_padding(size: tuple, padding: tuple, conv) -> Optional[tuple]:
    """The trimmed ((top, bottom), (left, right)) when LCE would misfuse `padding`, else None."""
    axes = [
        (size[i], padding[i], conv.kernel_size[i], conv.strides[i], conv.dilation_rate[i])
        for i in range(2)
    ]
    fused = all(lce_fuses(*axis) for axis in axes)
    if not (fused and any(lce_misfuses(*axis) for axis in axes)):
        return None
    return tuple(trimmed_padding(*axis) for axis in axes)


def _only_conv_reader(graph: LayerGraph, name: str):
    """The conv that is the one reader of `name`'s one output, if it is a fusable one."""
    readers = graph.consumers_of[name]
    if len(graph.calls_of[name]) != 1 or len(readers) != 1:
        return None
    conv = graph.layer(readers[0])
    if not isinstance(conv, _CONVS) or isinstance(conv, tf.keras.layers.Conv2DTranspose):
        return None
    if conv.padding != "valid" or getattr(conv, "input_quantizer", None) is not None:
        return None
    return conv


def _input_size(layer) -> Optional[tuple]:
    try:
        shape = layer.input_shape
    except (AttributeError, RuntimeError):  # never called, or called in several models
        return None
    if not isinstance(shape, tuple) or len(shape) != 4 or None in shape[1:3]:
        return None
    return shape[1], shape[2]


def _functional(model: tf.keras.Model) -> tf.keras.Model:
    if isinstance(model, tf.keras.Sequential):
        return tf.keras.Model(model.inputs, model.outputs, name=model.name)
    return model


def _graph_or_none(model: tf.keras.Model, *, shared_layers: bool) -> Optional[LayerGraph]:
    try:
        return LayerGraph(_functional(model), where="export", shared_layers=shared_layers)
    except (TypeError, ValueError):  # subclassed, or several inputs: nothing to rewrite here
        return None
