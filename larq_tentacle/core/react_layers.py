"""ReActNet's learnable activation pieces (Liu et al., ECCV 2020) as Keras layers.

* `LearnableShift` is RSign's threshold: `x - beta`, one trainable beta per channel
  (initialised to 0, so a fresh model computes XNOR-Net's sign). In front of a
  binary conv, Larq Compute Engine folds it into the preceding binary conv's output
  threshold (or a float conv's bias): no op, no byte (lce-notes §4).
* `RPReLU` is ReActNet's shifted PReLU, `prelu(x - gamma) - delta` with a per-channel
  slope. ReActNet follows it with RSign's shift (`+ zeta`, then `- beta`); the
  converter does not merge two consecutive shifts, so here they are one learnable
  `delta = beta - zeta` (`output_shift`), which is the same function with one SUB op
  fewer. It converts into one PRELU and one SUB (the input shift folds into the
  preceding binary conv's bias), and the next binary conv then needs its own
  LceQuantize because the PReLU's output is float.

Both act on the last (channel) axis alone, so the fused form concatenates the
tentacles' parameters along channels like a BatchNorm's (`core.fusion`).
"""

import tensorflow as tf

from larq_tentacle.utils.validation import positive_float

DEFAULT_ALPHA = 0.25
"""RPReLU's initial negative slope, PyTorch's PReLU default that ReActNet starts from."""


def _channel_weight(layer, name: str, input_shape, initializer):
    channels = tf.TensorShape(input_shape)[-1]
    if channels is None:
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r} needs a known channel count (last axis), "
            f"got input shape {input_shape}."
        )
    return layer.add_weight(name=name, shape=(int(channels),), initializer=initializer)


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class LearnableShift(tf.keras.layers.Layer):
    """`x - shift`, one trainable shift per channel (last axis), initialised to 0.

    ReActNet's RSign is `sign(x - beta)`: this layer in front of a binary conv (whose
    `ste_sign` input quantizer is the sign) gives it a learnable threshold.
    """

    def build(self, input_shape):
        self.shift = _channel_weight(self, "shift", input_shape, "zeros")
        super().build(input_shape)

    def call(self, inputs):
        return inputs - self.shift

    def compute_output_shape(self, input_shape):
        return input_shape


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class RPReLU(tf.keras.layers.Layer):
    """ReActNet's RPReLU with the next RSign shift folded in: `prelu(x - gamma) - delta`.

    Per channel (last axis): `input_shift` gamma (init 0), PReLU slope `alpha` for
    negative inputs (init `alpha_initializer`, 0.25) and `output_shift` delta (init 0),
    which stands for ReActNet's `beta - zeta` (the RPReLU's output shift and the
    next RSign's shift, merged so the exported file has one SUB instead of two).

    # Arguments
        alpha_initializer: the initial negative slope (a positive float keeps the
            sign of every input, so a fresh model computes XNOR-Net's sign).
    """

    def __init__(self, alpha_initializer: float = DEFAULT_ALPHA, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = positive_float(
            "alpha_initializer", alpha_initializer, "e.g. alpha_initializer=0.25"
        )

    def build(self, input_shape):
        self.input_shift = _channel_weight(self, "input_shift", input_shape, "zeros")
        alpha = tf.keras.initializers.Constant(self.alpha_initializer)
        self.alpha = _channel_weight(self, "alpha", input_shape, alpha)
        self.output_shift = _channel_weight(self, "output_shift", input_shape, "zeros")
        super().build(input_shape)

    def call(self, inputs):
        x = inputs - self.input_shift
        # Keras's own PReLU formula with the slope shaped as Keras's PReLU(shared_axes=
        # spatial) holds it: the pattern (and alpha rank) the converter turns into one PRELU.
        alpha = tf.reshape(self.alpha, [1] * (inputs.shape.rank - 2) + [-1])
        prelu = tf.nn.relu(x) + (-alpha) * tf.nn.relu(-x)
        return prelu - self.output_shift

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer}


REACT_LAYERS = (LearnableShift, RPReLU)
"""The layers `block="react"` adds; sizes count their parameters as float32."""
