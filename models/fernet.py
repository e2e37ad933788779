"""FerNet for FER2013 (48x48 grey faces, 7 expressions): OUR RECONSTRUCTION.

The paper gives no architecture. Its sizes pin the float first layer (Conv 3x3
1->32 + bias), the classifier (Dense 128->7) and the binary parameter count; this
VGG-like body matches all of Table 1/2 exactly (architectures.md §3):
conv 32 | 32, 32, pool | 64, 64, 64, pool | 128, 128, pool | fc 128 | dense 7.

The 128-unit fully connected layer is written as a conv whose kernel covers the
whole final feature map: the same weights as Flatten + Dense, but LCE turns it
into one binary conv instead of a float dense layer.
"""

import tensorflow as tf

from larq_tentacle.core.registry import ModelSpec
from larq_tentacle.models.layers import batch_norm, conv_bn_relu, scaled

MIN_INPUT_SIZE = 16  # four 2x2 poolings


def fernet(
    *, num_classes: int = 7, input_shape=(48, 48, 1), width: float = 1.0
) -> tf.keras.Model:
    """FerNet; `width` scales every hidden layer's channels (not the classifier's)."""
    def c(filters):
        return scaled(filters, width)

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = conv_bn_relu(inputs, c(32), 3, "1")
    x = tf.keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = conv_bn_relu(x, c(32), 3, "2")
    x = conv_bn_relu(x, c(32), 3, "3")
    x = tf.keras.layers.MaxPooling2D(2, name="pool3")(x)
    x = conv_bn_relu(x, c(64), 3, "4")
    x = conv_bn_relu(x, c(64), 3, "5")
    x = conv_bn_relu(x, c(64), 3, "6")
    x = tf.keras.layers.MaxPooling2D(2, name="pool6")(x)
    x = conv_bn_relu(x, c(128), 3, "7")
    x = conv_bn_relu(x, c(128), 3, "8")
    x = tf.keras.layers.MaxPooling2D(2, name="pool8")(x)
    x = tf.keras.layers.Dropout(0.5, name="drop9")(x)
    x = tf.keras.layers.Conv2D(c(128), tuple(x.shape[1:3]), padding="valid", name="conv9")(x)
    x = batch_norm("bn9")(x)
    x = tf.keras.layers.ReLU(name="relu9")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax", name="fc")(x)
    return tf.keras.Model(inputs, outputs, name="fernet")


SPEC = ModelSpec(
    name="fernet",
    builder=fernet,
    num_classes=7,
    input_shape=(48, 48, 1),
    min_input_size=MIN_INPUT_SIZE,
    dataset="fer2013",
    paper_size_kb={"float": 1880, "binary": 64, "tentaclenet": (3, 188)},
)
