"""Model size as the paper counts it (Table 1/2; see architectures.md §0).

Only conv/dense kernels and biases count: 32 bits each in float layers, 1 bit in
binarized layers (the bias included). Depthwise and separable convs, which stay
float in the tentacles (`float_layers`), count at 32 bits. BatchNorm, α and thresholds are not
counted. The parameters of block="react" (`LearnableShift`, `RPReLU`: 1 or 3 floats
per channel) are counted at 32 bits each, although LCE folds a shift that follows
a BatchNorm into the binary conv's threshold (0 bytes in the file): the paper has
no rule for them, and an upper bound keeps comparisons at equal memory fair. kB
means KiB and the paper displays the ceiling. Larq's own `lq.models.summary`
counts differently (BatchNorm, 32-bit biases), so both are reported side by side.

The same rule for an int8 model (`float_bits=8`; our extension, the paper has no int8
model): every parameter counted at 32 bits above is counted at 8 bits instead, binary
ones still at 1 bit. It is the size of the weights alone, like the paper's: the int8
`.tflite` also stores each bias as int32, a scale (and zero point) per output channel
of a conv and per tensor of a Dense, and the graph, so its bytes are larger (the
sweep records both: `paper_kb` by this rule and `tflite_bytes`).
"""

import math

import larq as lq
import tensorflow as tf

from larq_tentacle.core import binarization, float_layers
from larq_tentacle.core.react_layers import REACT_LAYERS

# Bits of each non-binary parameter: the paper's float32, or our rule for an int8 model.
FLOAT_BITS = (32, 8)


def paper_size_bits(model: tf.keras.Model, *, float_bits: int = 32) -> int:
    """The paper's size in bits: 1 per binary parameter, `float_bits` per other one."""
    if float_bits not in FLOAT_BITS or isinstance(float_bits, bool):
        raise ValueError(
            f"Expected `float_bits` to be one of {list(FLOAT_BITS)}, got {float_bits!r}. Fix: "
            "32 for the paper's float32 weights, 8 for an int8 model."
        )
    bits = 0
    for layer in _unique_layers(model):
        if isinstance(layer, REACT_LAYERS):
            bits += float_bits * sum(int(w.shape.num_elements()) for w in layer.weights)
            continue
        if not (binarization.is_weight_layer(layer) or float_layers.is_float_weight_layer(layer)):
            continue
        per_parameter = 1 if binarization.is_binary_layer(layer) else float_bits
        bits += per_parameter * sum(
            int(w.shape.num_elements()) for w in layer.weights if _counted(w)
        )
    return bits


def paper_size_kb(model: tf.keras.Model, *, exact: bool = False, float_bits: int = 32):
    """The paper's model size in kB (KiB): the displayed integer, or the float with `exact=True`.

    `float_bits=8`: the rule extended to an int8 model (see the module docstring).
    """
    kib = paper_size_bits(model, float_bits=float_bits) / 8 / 1024
    return kib if exact else displayed_kb(kib)


def displayed_kb(kib: float) -> int:
    """The paper's displayed size of `kib` KiB: its ceiling, where a float a rounding
    error above an integer (e.g. a sum of member sizes) still shows that integer."""
    return math.ceil(kib - 1e-9)


def larq_memory_kb(model: tf.keras.Model) -> float:
    """Larq's own estimate (`lq.models.summary`'s "memory"), in KiB."""
    return lq.models.ModelProfile(model).memory / 8 / 1024


def _counted(weight) -> bool:
    # kernel and bias only; QuantConv2D/Conv2D have no other trainable weights
    short = weight.name.split("/")[-1].split(":")[0]
    return short in ("kernel", "bias") + float_layers.DEPTHWISE_WEIGHTS


def _unique_layers(model):
    seen = set()
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            for inner in _unique_layers(layer):
                if id(inner) not in seen:
                    seen.add(id(inner))
                    yield inner
        elif id(layer) not in seen:
            seen.add(id(layer))
            yield layer
