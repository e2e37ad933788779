"""XNOR-Net binarization (Rastegari et al.; TentacleNet §2.2) expressed with Larq.

* activations: `ste_sign` (sign with a straight-through gradient cut at |x| > 1);
* weights: `magnitude_aware_sign`, i.e. α·sign(w) with α = mean|w| per output
  channel (held under stop_gradient), 1 bit per weight;
* latent weights are clipped to ±1 (`weight_clip`), otherwise they drift out of
  the straight-through window and stop learning ("starved weights");
* the BatchNormalization that follows each binary conv supplies the threshold c
  of the paper's Eq. 2, so no separate threshold layer is needed.

Block order is chosen for Larq Compute Engine: `QuantConv2D(pad_values=1) →
BatchNorm → MaxPool → next QuantConv2D` converts into a chain of binary ops in
which every BatchNorm folds into the bconv and every bconv writes bitpacked
output. Zero padding ("same" with pad_values=0) or pool-before-BN adds float ops,
and a ReLU right before a binary input makes every activation +1 (sign(0) = +1).
"""

import larq as lq
import tensorflow as tf

INPUT_QUANTIZER = "ste_sign"
KERNEL_QUANTIZER = "magnitude_aware_sign"
KERNEL_CONSTRAINT = "weight_clip"
# LCE only produces bitpacked outputs and foldable BatchNorms for one-padding.
PAD_VALUES = 1.0

# Activations whose outputs are never negative: in front of a sign() they make
# the binary activation constant +1, so the template drops them there.
NON_NEGATIVE_ACTIVATIONS = frozenset(
    {"relu", "relu6", "sigmoid", "softplus", "hard_sigmoid", "exponential"}
)


def binary_conv_config(
    conv_config: dict, *, name: str, kernel_initializer=None, keep_activation: bool = True
) -> dict:
    """The config of an XNOR QuantConv2D that replaces a float Conv2D with `conv_config`.

    `keep_activation=False` drops a fused activation (used when the conv feeds a
    binary input, where a ReLU would make the next sign() constant).
    """
    config = dict(conv_config)
    activation = config.get("activation", "linear") if keep_activation else "linear"
    config.update(
        name=name,
        input_quantizer=INPUT_QUANTIZER,
        kernel_quantizer=KERNEL_QUANTIZER,
        kernel_constraint=KERNEL_CONSTRAINT,
        pad_values=PAD_VALUES if config.get("padding") == "same" else 0.0,
        activation=activation,
    )
    if kernel_initializer is not None:
        config["kernel_initializer"] = tf.keras.initializers.serialize(kernel_initializer)
    return config


def is_binary_layer(layer) -> bool:
    """True for a Larq layer whose kernel is quantized to one bit."""
    quantizer = getattr(layer, "kernel_quantizer", None)
    return quantizer is not None and getattr(quantizer, "precision", None) == 1


def is_weight_layer(layer) -> bool:
    """Conv/Dense layers: the ones whose kernels and biases the paper counts."""
    return isinstance(
        layer,
        (
            tf.keras.layers.Conv2D,
            tf.keras.layers.Dense,
            lq.layers.QuantConv2D,
            lq.layers.QuantDense,
        ),
    )


def activation_name(layer) -> str:
    """The activation a layer applies ('' if none), for Activation, ReLU and fused configs."""
    if isinstance(layer, tf.keras.layers.ReLU):
        config = layer.get_config()
        plain = not config.get("negative_slope") and not config.get("threshold")
        return "relu" if plain else "leaky_relu"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return ""
    name = tf.keras.activations.serialize(activation)
    return name if isinstance(name, str) else ""
