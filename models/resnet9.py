"""ResNet9 for CIFAR-100: a CIFAR ResNet with one BasicBlock per stage (He et al.).

Stem conv 3x3 (64, no bias), four stages of one BasicBlock (64, 128, 256, 512; the
last three downsample with a 1x1 projection shortcut), global average pooling and a
Dense classifier over K = 512 features (so TentacleNet uses the head of Fig. 2-b).

`projection_shortcuts=1` is the natural network (FP32 19312 kB, BNN 805 kB).
`projection_shortcuts=2` adds a second, parallel 1x1 projection per downsampling
block; it is the only simple body that reproduces the paper's Table 1/2 sizes
exactly (FP32 19984 kB, BNN 826 kB), see architectures.md §2. We think the paper's
code counted its projections twice; use it to compare with the paper's numbers.
"""

import tensorflow as tf

from larq_tentacle.core.registry import ModelSpec
from larq_tentacle.models.layers import batch_norm, conv_bn_relu, scaled

MIN_INPUT_SIZE = 8  # three stride-2 stages


def _basic_block(x, filters: int, stage: int, *, strides: int, projection_shortcuts: int):
    shortcut = x
    y = conv_bn_relu(x, filters, 3, f"{stage}a", strides=strides, use_bias=False)
    y = conv_bn_relu(y, filters, 3, f"{stage}b", use_bias=False, relu=False)
    if strides != 1 or x.shape[-1] != filters:
        projections = [
            batch_norm(f"bn{stage}{branch}")(
                tf.keras.layers.Conv2D(
                    filters, 1, strides=strides, use_bias=False, name=f"conv{stage}{branch}"
                )(x)
            )
            for branch in ("p", "q")[:projection_shortcuts]
        ]
        shortcut = (
            projections[0]
            if len(projections) == 1
            else tf.keras.layers.Add(name=f"proj{stage}")(projections)
        )
    y = tf.keras.layers.Add(name=f"add{stage}")([y, shortcut])
    return tf.keras.layers.ReLU(name=f"relu{stage}")(y)


def resnet9(
    *, num_classes: int = 100, input_shape=(32, 32, 3), projection_shortcuts: int = 1,
    width: float = 1.0,
) -> tf.keras.Model:
    """ResNet9; `width` scales every hidden layer's channels (not the classifier's)."""
    if projection_shortcuts not in (1, 2) or isinstance(projection_shortcuts, bool):
        raise ValueError(
            f"Expected `projection_shortcuts` to be 1 (the natural ResNet) or 2 (reproduces the "
            f"paper's sizes), got {projection_shortcuts!r}."
        )
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = conv_bn_relu(inputs, scaled(64, width), 3, "1", use_bias=False)
    for stage, (filters, strides) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=2):
        x = _basic_block(
            x, scaled(filters, width), stage, strides=strides,
            projection_shortcuts=projection_shortcuts,
        )
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax", name="fc")(x)
    return tf.keras.Model(inputs, outputs, name="resnet9")


SPEC = ModelSpec(
    name="resnet9",
    builder=resnet9,
    num_classes=100,
    input_shape=(32, 32, 3),
    min_input_size=MIN_INPUT_SIZE,
    dataset="cifar100",
    paper_size_kb={"float": 19984, "binary": 826, "tentaclenet": (14, 11465)},
    paper_options={"projection_shortcuts": 2},
)
