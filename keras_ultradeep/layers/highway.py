"""The convolutional highway layer (Srivastava, Greff, Schmidhuber 2015)."""

from __future__ import annotations

import keras
from keras import ops

from keras_ultradeep import checks

__all__ = ["HighwayConv2D"]


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class HighwayConv2D(keras.layers.Layer):
    """y = H(x) * T(x) + x * (1 - T(x)), with H(x) = relu(conv_H(x)) and the
    transform gate T(x) = sigmoid(conv_T(x)) (channels-last).

    "Training Very Deep Networks": the gate decides, per channel and
    position, how much of the layer's transform to take and how much of its
    input to carry through unchanged. A negative gate bias (the paper: -1 to
    -3; the official CIFAR nets: -2) makes a fresh network carry, so very deep
    stacks start close to the identity and train. Stride 1 and as many output
    maps as input maps, as in the official layer: a width change needs a plain
    convolution.

    The two convolutions are ``transform`` (H) and ``gate`` (T), each with a
    kernel and a bias. Kernels start as N(0, sqrt(2 / fan_in)), the official
    code's filler.
    """

    def __init__(self, kernel_size=3, gate_bias=-2.0, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = checks.positive_int(kernel_size, "kernel_size")
        self.gate_bias = checks.number(gate_bias, "gate_bias")
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("inputs: the channel dimension must be known")
        shape = (self.kernel_size, self.kernel_size, channels, channels)
        self.transform_kernel = self.add_weight(name="transform_kernel", shape=shape,
                                                initializer=self.kernel_initializer)
        self.transform_bias = self.add_weight(name="transform_bias", shape=(channels,), initializer="zeros")
        self.gate_kernel = self.add_weight(name="gate_kernel", shape=shape, initializer=self.kernel_initializer)
        self.gate_bias_weight = self.add_weight(
            name="gate_bias", shape=(channels,), initializer=keras.initializers.Constant(self.gate_bias)
        )

    def call(self, x):
        dtype = self.compute_dtype
        h = ops.relu(ops.conv(x, ops.cast(self.transform_kernel, dtype), padding="same")
                     + ops.cast(self.transform_bias, dtype))
        t = ops.sigmoid(ops.conv(x, ops.cast(self.gate_kernel, dtype), padding="same")
                        + ops.cast(self.gate_bias_weight, dtype))
        return h * t + x * (1.0 - t)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "gate_bias": self.gate_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
