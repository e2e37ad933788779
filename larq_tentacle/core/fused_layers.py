"""Layers of the fused TentacleNet form (see `larq_tentacle.core.fusion`).

In the fused form the n tentacles run as one network whose binary convs hold all n
tentacles' kernels: a plain `lq.layers.QuantConv2D` with n·F filters and `groups=n`.
Two layers of its own remain:

* `SharedGroupConv2D` is head variant "a"'s float conv, which the branched form
  applies to each tentacle with one shared kernel: here it is applied to each
  channel group of the fused tensor, so its weights are counted once.
* `TentacleConv2D` only loads fused models saved before its CPU training forms
  ("split", "einsum") were dropped; `fuse` no longer makes it.
"""

import larq as lq
import tensorflow as tf

from larq_tentacle.utils.validation import choice, positive_int

LEGACY_IMPLEMENTATIONS = ("grouped", "split", "einsum")
"""The `implementation` values of `TentacleConv2D` configs saved before they were dropped."""


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class TentacleConv2D(lq.layers.QuantConv2D):
    """A grouped `QuantConv2D`, kept so fused models saved with it still load.

    It used to offer two CPU training forms of the grouped conv ("split": one conv
    per group; "einsum": 1x1 convs as one batched matmul). Both trained slower than
    the branched form at every n measured (docs/performance.md), and they needed a
    private Keras method, so they were dropped. The weights never depended on the
    form: a saved `implementation` is accepted and ignored, and the layer computes
    Keras's grouped conv like `lq.layers.QuantConv2D`. `lt.fuse(model)` (or
    `lt.unfuse`) turns it into plain `QuantConv2D` layers.
    """

    def __init__(self, *args, implementation: str = "grouped", **kwargs):
        choice("implementation", implementation, LEGACY_IMPLEMENTATIONS)
        super().__init__(*args, **kwargs)


@tf.keras.utils.register_keras_serializable(package="larq_tentacle")
class SharedGroupConv2D(tf.keras.layers.Conv2D):
    """A float Conv2D applied with one shared kernel to each of `tentacles` channel groups.

    Input (batch, h, w, tentacles·C) is read as `tentacles` tensors of C channels;
    each is convolved with the same (kh, kw, C, filters) kernel and the results are
    concatenated in group order: (batch, h', w', tentacles·filters). With
    `tentacles=1` it is a plain Conv2D. The branched TentacleNet's shared head conv
    (Fig. 2-a) applied to every tentacle computes the same thing.

    # Arguments
        tentacles: number of channel groups sharing the kernel.
        *args, **kwargs: those of `tf.keras.layers.Conv2D` (channels_last, groups=1).
    """

    def __init__(self, *args, tentacles: int = 1, **kwargs):
        self.tentacles = positive_int("tentacles", tentacles)
        super().__init__(*args, **kwargs)
        if self.groups != 1 or self.data_format != "channels_last":
            raise ValueError(
                f"SharedGroupConv2D {self.name!r} supports groups=1 and data_format="
                f"'channels_last', got groups={self.groups}, data_format={self.data_format!r}."
            )

    def _group_shape(self, input_shape) -> tf.TensorShape:
        input_shape = tf.TensorShape(input_shape)
        channels = input_shape[-1]
        if channels is None or channels % self.tentacles:
            raise ValueError(
                f"SharedGroupConv2D {self.name!r} splits its input into {self.tentacles} equal "
                f"channel groups, but the input has {channels} channels (shape {input_shape})."
            )
        return input_shape[:-1].concatenate([channels // self.tentacles])

    def build(self, input_shape):
        channels = tf.TensorShape(input_shape)[-1]
        super().build(self._group_shape(input_shape))
        self.input_spec = tf.keras.layers.InputSpec(min_ndim=4, axes={-1: channels})

    def compute_output_shape(self, input_shape):
        shape = super().compute_output_shape(self._group_shape(input_shape))
        return shape[:-1].concatenate([self.filters * self.tentacles])

    def call(self, inputs):
        n = self.tentacles
        per_group = inputs.shape[-1] // n
        shape = tf.shape(inputs)
        pointwise = tuple(self.kernel_size) == (1, 1) and tuple(self.strides) == (1, 1)
        if pointwise:
            # One matmul over every pixel of every group (converts to FULLY_CONNECTED).
            rows = tf.reshape(inputs, [-1, per_group])
            outputs = tf.matmul(rows, tf.reshape(self.kernel, [per_group, self.filters]))
            if self.use_bias:
                outputs = tf.nn.bias_add(outputs, self.bias)
            outputs = tf.reshape(outputs, [shape[0], shape[1], shape[2], n * self.filters])
        else:
            # Fold the groups into the batch, convolve once, unfold.
            x = tf.reshape(inputs, [shape[0], shape[1], shape[2], n, per_group])
            x = tf.transpose(x, [0, 3, 1, 2, 4])
            x = tf.reshape(x, [shape[0] * n, shape[1], shape[2], per_group])
            y = self.convolution_op(x, self.kernel)
            if self.use_bias:
                y = tf.nn.bias_add(y, self.bias)
            out_shape = tf.shape(y)
            y = tf.reshape(y, [shape[0], n, out_shape[1], out_shape[2], self.filters])
            y = tf.transpose(y, [0, 2, 3, 1, 4])
            outputs = tf.reshape(y, [shape[0], out_shape[1], out_shape[2], n * self.filters])
        if not tf.executing_eagerly():
            outputs.set_shape(self.compute_output_shape(inputs.shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "tentacles": self.tentacles}
