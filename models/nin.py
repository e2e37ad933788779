"""Network-in-Network for CIFAR-10 as in the TentacleNet authors' XNOR-Net code.

192 -> 160 -> 96 -> pool -> 192(5x5) -> 192 -> 192 -> pool -> 192(3x3) -> 192 -> 10,
bias on every conv, dropout 0.5 before the 5x5 and 3x3 blocks, logits by global
average pooling of a 1x1 conv (so TentacleNet uses the head of Fig. 2-a).
Paper sizes: FP32 3778 kB, BNN 181 kB, TentacleNet n=5 645 kB (architectures.md §1).
"""

import tensorflow as tf

from larq_tentacle.core.registry import ModelSpec
from larq_tentacle.models.layers import batch_norm, conv_bn_relu, scaled

MIN_INPUT_SIZE = 4  # two stride-2 poolings


def nin(
    *, num_classes: int = 10, input_shape=(32, 32, 3), width: float = 1.0
) -> tf.keras.Model:
    """NiN; `width` scales every hidden layer's channels (not the classifier's)."""
    def c(filters):
        return scaled(filters, width)

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = conv_bn_relu(inputs, c(192), 5, "1", affine=False)
    x = conv_bn_relu(x, c(160), 1, "2")
    x = conv_bn_relu(x, c(96), 1, "3")
    x = tf.keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    x = tf.keras.layers.Dropout(0.5, name="drop4")(x)
    x = conv_bn_relu(x, c(192), 5, "4")
    x = conv_bn_relu(x, c(192), 1, "5")
    x = conv_bn_relu(x, c(192), 1, "6")
    x = tf.keras.layers.AveragePooling2D(3, strides=2, padding="same", name="pool6")(x)
    x = tf.keras.layers.Dropout(0.5, name="drop7")(x)
    x = conv_bn_relu(x, c(192), 3, "7")
    x = conv_bn_relu(x, c(192), 1, "8")
    x = batch_norm("bn9", affine=False)(x)
    x = tf.keras.layers.Conv2D(num_classes, 1, name="conv9")(x)
    x = tf.keras.layers.ReLU(name="relu9")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool9")(x)
    outputs = tf.keras.layers.Activation("softmax", name="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="nin")


SPEC = ModelSpec(
    name="nin",
    builder=nin,
    num_classes=10,
    input_shape=(32, 32, 3),
    min_input_size=MIN_INPUT_SIZE,
    dataset="cifar10",
    paper_size_kb={"float": 3778, "binary": 181, "tentaclenet": (5, 645)},
)
