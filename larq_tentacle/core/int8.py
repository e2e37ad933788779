"""The int8 form of a trained model: every part that is not binary, fake-quantized to 8 bits.

Larq Compute Engine turns float layers next to its binary ops into int8 ops when
the Keras graph says which range each float tensor has (lce-notes §4); without
that it keeps them float32 (and `inference_input_type=tf.int8` silently falls
back to float). `int8_model` rewrites a trained model into the form the
converter quantizes, and that Keras can run bit for bit the way the file will:

* BatchNorms after a float conv are folded into it (as the converter would), and
  an activation inside a Conv2D/Dense becomes its own layer, so a range can sit
  between the logits and the softmax;
* float conv kernels are snapped to the int8 grid per output channel, Dense
  kernels per tensor (symmetric, [-127, 127], scale = max|w| / 127): exactly what
  the converter stores, so Keras and the file compute with the same weights;
* an `Int8Range` (`tf.quantization.fake_quant_with_min_max_vars`) follows every
  float tensor the int8 graph materialises: the input, each float layer's output
  after its fused ReLU, a BatchNorm after a binary conv that leaves the binary
  path (the bconv then writes int8), Add, Concatenate, pooling to logits. Not
  where the tensor stays bitpacked (binary conv -> BN/MaxPool -> binary conv),
  inside a fused conv -> ReLU pair, after same-scale ops (pooling, Dropout,
  Flatten) or after a softmax (TFLite fixes its output range to [0, 1)).

The ranges come from calibration data (min/max over it, widened to hold 0);
`fine_tune` trainings (quantization-aware) move them with the weights.
"""

from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from larq_tentacle.core import binarization
from larq_tentacle.core.fused_layers import SharedGroupConv2D
from larq_tentacle.core.graph import LayerGraph, call_layer, clone_layer
from larq_tentacle.core.react_layers import LearnableShift

SUFFIX = "_int8"  # an Int8Range after layer `x` is named `x_int8` (`x_int8_2` for a 2nd call)
_FLOAT_CONVS = (tf.keras.layers.Conv2D,)  # incl. SharedGroupConv2D; QuantConv2D is checked
_SAME_SCALE = (
    tf.keras.layers.Dropout,
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.Flatten,
    tf.keras.layers.Reshape,
    tf.keras.layers.ZeroPadding2D,
)
_FUSABLE_ACTIVATIONS = ("relu", "relu6")
# block="react": a LearnableShift between the BatchNorm and the next binary conv folds into
# the bconv's threshold like the BatchNorm does, so the tensor stays bitpacked through it.
_BITPACKED_PASS = (tf.keras.layers.BatchNormalization, tf.keras.layers.MaxPooling2D,
                   LearnableShift)


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class NonPositive(tf.keras.constraints.Constraint):
    """Keeps a range's minimum <= 0 while fine-tuning moves it (TFLite needs 0 in range)."""

    def __call__(self, w):
        return tf.minimum(w, 0.0)


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class Int8Range(tf.keras.layers.Layer):
    """Fake int8 quantization of an activation to the range [minimum, maximum].

    The converter reads the range and stores the tensor as int8 with
    scale = (maximum - minimum) / 255 (nudged so that 0 is exact). Training
    passes gradients straight through inside the range (and to the range itself
    when `trainable`).
    """

    def __init__(self, minimum: float = -6.0, maximum: float = 6.0, **kwargs):
        super().__init__(**kwargs)
        if not (np.isfinite(minimum) and np.isfinite(maximum) and minimum <= 0 <= maximum):
            raise ValueError(
                f"Int8Range {kwargs.get('name')!r} needs finite minimum <= 0 <= maximum, got "
                f"[{minimum}, {maximum}]. Fix: calibrate on finite, preprocessed images."
            )
        self.initial_range = (float(minimum), float(maximum))

    def build(self, input_shape):
        low, high = self.initial_range
        # Fine-tuning (quantization-aware) trains the range; the constraints keep 0 inside.
        self.minimum = self.add_weight(
            "minimum", shape=(), initializer=tf.keras.initializers.Constant(low),
            constraint=NonPositive(),
        )
        self.maximum = self.add_weight(
            "maximum", shape=(), initializer=tf.keras.initializers.Constant(high),
            constraint=tf.keras.constraints.NonNeg(),
        )
        super().build(input_shape)

    def call(self, inputs):
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, self.minimum, self.maximum, num_bits=8, narrow_range=False
        )

    def get_config(self):
        low, high = self.initial_range
        if self.built:
            low = min(float(self.minimum.numpy()), 0.0)
            high = max(float(self.maximum.numpy()), 0.0)
        return {**super().get_config(), "minimum": low, "maximum": high}


def is_binary_conv(layer) -> bool:
    """A QuantConv2D with a 1-bit kernel and a 1-bit input quantizer (an LceBconv2d)."""
    quantizer = getattr(layer, "input_quantizer", None)
    return binarization.is_binary_layer(layer) and getattr(quantizer, "precision", None) == 1


def is_int8_model(model: tf.keras.Model) -> bool:
    return any(isinstance(layer, Int8Range) for layer in model.layers)


def int8_model(
    model: tf.keras.Model, calibration_data: np.ndarray, *, batch_size: int = 64
) -> tf.keras.Model:
    """The fake-quantized int8 form of `model`, its ranges calibrated on `calibration_data`.

    # Arguments
        model: a trained functional model (branched or fused TentacleNet, BNN, float CNN).
        calibration_data: preprocessed float32 images (N, H, W, C) like the training
            inputs (checked by the caller, e.g. `lt.export`).
        batch_size: images per calibration step.

    # Returns
        A new model (named `<name>_int8`); `model` is not changed.
    """
    folded, points = _rebuild(model, fold=True)
    ranges = calibrate(folded, points, calibration_data, batch_size=batch_size)
    quantized, _ = _rebuild(folded, fold=False, ranges=ranges)
    return quantized


def calibrate(model, points: Dict[str, tf.Tensor], x: np.ndarray, *, batch_size: int = 64):
    """{point: (min, max)} of each tensor in `points` over `x`, widened to hold 0."""
    keys = list(points)
    probe = tf.keras.Model(model.inputs, [points[key] for key in keys])
    low = {key: 0.0 for key in keys}
    high = {key: 0.0 for key in keys}
    for start in range(0, len(x), batch_size):
        values = probe(x[start : start + batch_size], training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for key, value in zip(keys, values):
            low[key] = min(low[key], float(tf.reduce_min(value)))
            high[key] = max(high[key], float(tf.reduce_max(value)))
    # A tensor that is 0 on every image (a dead channel group) still needs a scale.
    return {key: (low[key], max(high[key], low[key] + 1e-3)) for key in keys}


# ---------------------------------------------------------------------------
# Where the ranges go


def quantization_points(graph: LayerGraph, *, folded: Dict[str, str]) -> List[str]:
    """The layers after whose output (fused ReLU included) an `Int8Range` goes.

    `folded` maps a float conv to the BatchNorm folded into it: the BatchNorm's
    name then stands for the conv's output.
    """
    points = []
    for name in graph.order:
        if name in folded:
            continue  # decided under its BatchNorm's name
        if name == graph.input_name or _needs_range(graph, name):
            points.append(name)
    return points


def _needs_range(graph: LayerGraph, name: str) -> bool:
    layer = graph.layer(name)
    consumers = set(graph.consumers_of[name])
    if is_binary_conv(layer):
        # Its BatchNorm folds into the bconv; decided there.
        return not all(isinstance(graph.layer(c), tf.keras.layers.BatchNormalization)
                       for c in consumers)
    if isinstance(layer, _SAME_SCALE):
        return False
    if type(layer) is tf.keras.layers.Activation and _activation(layer) in _FIXED_RANGE:
        return False  # TFLite fixes a softmax's int8 output range itself
    # LCE fuses no ReLU into a bconv writing int8, so a bconv's BatchNorm keeps its range.
    fuses = not _after_binary_conv(graph, name)
    if fuses and len(consumers) == 1 and _is_fusable_activation(graph.layer(next(iter(consumers)))):
        return False
    return not _bitpacked(graph, name)


def _after_binary_conv(graph: LayerGraph, name: str) -> bool:
    """A BatchNorm that LCE folds into the binary conv before it."""
    if not isinstance(graph.layer(name), tf.keras.layers.BatchNormalization):
        return False
    producer = graph.inputs_of[name][0] if graph.inputs_of[name] else None
    return (
        producer is not None
        and is_binary_conv(graph.layer(producer))
        and len(graph.consumers_of[producer]) == 1
    )


def _activation(layer) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "linear") if activation is not None else "linear"


_FIXED_RANGE = ("softmax", "sigmoid")


def _is_fusable_activation(layer) -> bool:
    if isinstance(layer, tf.keras.layers.ReLU):
        config = layer.get_config()
        return (config.get("max_value") in (None, 6.0) and not config.get("negative_slope")
                and not config.get("threshold"))
    return type(layer) is tf.keras.layers.Activation and _activation(layer) in _FUSABLE_ACTIVATIONS


def _bitpacked(graph: LayerGraph, name: str) -> bool:
    """binary conv -> BN/MaxPool -> binary conv: LCE keeps it bitpacked, no range there."""
    current = name
    while isinstance(graph.layer(current), _BITPACKED_PASS):
        if len(graph.consumers_of[current]) != 1:
            return False
        current = graph.inputs_of[current][0]
    if not (is_binary_conv(graph.layer(current)) and len(graph.consumers_of[current]) == 1):
        return False
    current = name
    while len(graph.consumers_of[current]) == 1:
        current = graph.consumers_of[current][0]
        if is_binary_conv(graph.layer(current)):
            return True
        if not isinstance(graph.layer(current), _BITPACKED_PASS + (tf.keras.layers.Dropout,)):
            return False
    return False


# ---------------------------------------------------------------------------
# Rebuilding


def _rebuild(model, *, fold: bool, ranges: Optional[Dict[str, tuple]] = None):
    """(the rebuilt model, {point: its float tensor}); `ranges` adds an Int8Range at each."""
    graph = LayerGraph(model, where="int8_model", shared_layers=True)
    graph.require_one_input_and_output()
    folds = _bn_folds(graph) if fold else {}
    points = set(quantization_points(graph, folded=folds))
    inputs = tf.keras.Input(
        batch_shape=model.inputs[0].shape, name=graph.input_name, dtype=model.inputs[0].dtype
    )
    found, new_layers = {}, {}

    def mark(name, k, x, *, decided_by=None):
        # A folded conv's range is decided by its BatchNorm, keyed by the conv (kept in the
        # rebuilt model).
        if (decided_by or name) not in points:
            return x
        point = name if k == 0 else f"{name}:{k}"
        found[point] = x
        if ranges is None:
            return x
        low, high = ranges[point]
        return Int8Range(low, high, name=name + SUFFIX + ("" if k == 0 else f"_{k + 1}"))(x)

    tensors = {(graph.input_name, 0): mark(graph.input_name, 0, inputs)}
    for name in graph.order:
        if name == graph.input_name or name in folds.values():
            continue
        standalone = fold and _standalone_bn(graph, name, folds)
        main, after = _new_layers(
            graph.layer(name), fold=fold, folded=name in folds, standalone_bn=standalone
        )
        new_layers[name] = main
        out_name = folds.get(name, name)
        for k, call in enumerate(graph.calls_of[name]):
            x = call_layer(main, [tensors[ref] for ref in call])
            x = mark(name, k, x, decided_by=out_name)
            if after is not None:  # the softmax split off a Dense: its logits got the range
                x = after(x)
            tensors[(out_name, k)] = x
    rebuilt = tf.keras.Model(
        inputs, tensors[(graph.output_name, 0)], name=_int8_name(model.name, ranges)
    )
    for name, main in new_layers.items():
        bn = graph.layer(folds[name]) if name in folds else None
        if isinstance(main, tf.keras.layers.DepthwiseConv2D) and bn is None and fold:
            main.set_weights(_as_depthwise(graph.layer(name)))
        else:
            _copy_weights(graph.layer(name), bn, main, snap=fold)
    return rebuilt, found


def _int8_name(name: str, ranges) -> str:
    if ranges is None or name.endswith(SUFFIX):
        return name
    return name + SUFFIX


def _is_float_conv(layer) -> bool:
    return isinstance(layer, _FLOAT_CONVS) and not binarization.is_binary_layer(layer)


def _bn_folds(graph: LayerGraph) -> Dict[str, str]:
    """{float conv: the BatchNorm right after it} for every conv whose only reader is a BN."""
    folds = {}
    for name in graph.order:
        consumers = graph.consumers_of[name]
        if not _is_float_conv(graph.layer(name)) or len(consumers) != 1:
            continue
        if len(graph.calls_of[name]) != 1 or _activation(graph.layer(name)) != "linear":
            continue
        if isinstance(graph.layer(consumers[0]), tf.keras.layers.BatchNormalization):
            folds[name] = consumers[0]
    return folds


def _new_layers(layer, *, fold: bool, folded: bool, standalone_bn: bool = False):
    """(the layer's clone, the activation split off it or None)."""
    if standalone_bn:
        # A BatchNorm between float ops is MUL then ADD, with no range in between for the
        # converter: as a 1x1 depthwise conv it is one int8 op (per-channel weights, exact).
        return tf.keras.layers.DepthwiseConv2D(1, use_bias=True, name=layer.name), None
    overrides = {"use_bias": True} if folded else {}
    activation = _activation(layer)
    if fold and activation in _FIXED_RANGE and isinstance(layer, tf.keras.layers.Dense):
        main = clone_layer(layer, layer.name, activation="linear", **overrides)
        return main, tf.keras.layers.Activation(activation, name=layer.name + "_" + activation)
    return clone_layer(layer, layer.name, **overrides), None


def _copy_weights(old, bn, new, *, snap: bool) -> None:
    weights = old.get_weights()
    if bn is not None:
        weights = _folded(old, bn)
    new.set_weights(weights)
    if snap:
        _snap_layer(new)


def _snap_layer(layer) -> None:
    if _is_float_conv(layer) or type(layer) is tf.keras.layers.Dense:
        per_channel = _is_float_conv(layer) and not _runs_as_matmul(layer)
        layer.kernel.assign(snap_to_int8(layer.kernel.numpy(), per_channel=per_channel))


def snap_weights(model: tf.keras.Model) -> None:
    """Put the float conv and Dense kernels of an int8 model back on the int8 grid, in place.

    Fine-tuning moves them off it; the converter stores them snapped, so after this
    the Keras model computes with the weights the `.tflite` will have.
    """
    if not is_int8_model(model):
        raise ValueError(
            f"snap_weights expects an int8 model (with Int8Range layers), got {model.name!r}. "
            "Fix: rewrite it first with int8_model(model, calibration_data)."
        )
    for layer in model.layers:
        _snap_layer(layer)


def _standalone_bn(graph: LayerGraph, name: str, folds: Dict[str, str]) -> bool:
    layer = graph.layer(name)
    return (
        isinstance(layer, tf.keras.layers.BatchNormalization)
        and len(layer.input_shape) == 4
        and name not in folds.values()
        and not _after_binary_conv(graph, name)
        and not _bitpacked(graph, name)
    )


def _bn_factor_shift(bn):
    gamma = bn.gamma.numpy() if bn.gamma is not None else 1.0
    beta = bn.beta.numpy() if bn.beta is not None else 0.0
    factor = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    return factor, beta - bn.moving_mean.numpy() * factor


def _as_depthwise(bn) -> list:
    factor, shift = _bn_factor_shift(bn)
    channels = bn.moving_mean.shape[0]
    kernel = np.broadcast_to(factor, (channels,)).reshape(1, 1, channels, 1)
    return [kernel.astype(np.float32), np.asarray(shift, np.float32)]


def _runs_as_matmul(layer) -> bool:
    """A pointwise SharedGroupConv2D is a matmul: a FULLY_CONNECTED op, per-tensor weights."""
    pointwise = tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) == (1, 1)
    return isinstance(layer, SharedGroupConv2D) and pointwise


def _folded(conv, bn) -> list:
    """[kernel, bias] of `conv` followed by `bn` (inference statistics)."""
    kernel = conv.kernel.numpy()
    bias = conv.bias.numpy() if conv.use_bias else np.zeros(kernel.shape[-1], np.float32)
    factor, shift = _bn_factor_shift(bn)
    new_bias = bias * factor + shift
    return [(kernel * factor).astype(np.float32), new_bias.astype(np.float32)]


def snap_to_int8(kernel: np.ndarray, *, per_channel: bool) -> np.ndarray:
    """`kernel` on the symmetric int8 grid TFLite stores: per output channel or per tensor."""
    axes = tuple(range(kernel.ndim - 1)) if per_channel else None
    scale = np.max(np.abs(kernel), axis=axes, keepdims=per_channel) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(kernel / scale), -127, 127) * scale).astype(np.float32)
