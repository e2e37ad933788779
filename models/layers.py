"""Float building blocks shared by the base models; every layer gets a name."""

import tensorflow as tf

from larq_tentacle.utils import validation

# PyTorch's BN momentum 0.1 is Keras's 0.9; eps as in the XNOR-Net code.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-4


def scaled(filters: int, width: float) -> int:
    """`filters` channels times the model's `width` multiplier, rounded, at least 1."""
    return max(1, int(round(filters * validation.width_multiplier(width))))


def batch_norm(name: str, *, affine: bool = True) -> tf.keras.layers.BatchNormalization:
    return tf.keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, center=affine, scale=affine, name=name
    )


def conv_bn_relu(
    x, filters: int, kernel_size, block: str, *, strides=1, use_bias=True, affine=True, relu=True
):
    """Conv2D -> BatchNorm -> ReLU, named conv<block>, bn<block>, relu<block>."""
    x = tf.keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        name=f"conv{block}",
    )(x)
    x = batch_norm(f"bn{block}", affine=affine)(x)
    if relu:
        x = tf.keras.layers.ReLU(name=f"relu{block}")(x)
    return x
