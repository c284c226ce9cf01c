"""Grouped 2-D convolution (ResNeXt's aggregated transformations)."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["GroupedConv2D"]

PADDINGS = ("valid", "same")


def _pair(value, argument):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        raise ValueError(f"{argument}: expected a positive integer or a pair of them, got {value!r}")
    return tuple(value)


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class GroupedConv2D(keras.layers.Layer):
    """A convolution whose input and output maps are split into ``groups``
    groups, each convolved separately (channels-last).

    ResNeXt (Xie et al. 2017) aggregates C transformations of the same shape,
    y = sum_i T_i(x); with each T_i a 1x1-3x3-1x1 bottleneck of width d this is
    a 3x3 convolution with ``groups = C`` between two 1x1 convolutions.

    It computes exactly what ``keras.layers.Conv2D(groups=...)`` computes, with
    the same kernel layout ``(kh, kw, in_channels // groups, filters)`` (so a
    PyTorch grouped weight converts with the usual transpose). It exists
    because Keras' grouped ``Conv2D`` runs on TensorFlow through an
    XLA-compiled function (retraced per shape) and does not export to ONNX,
    while this layer is one ordinary convolution per group and a
    concatenation: exact, exportable (SavedModel, ONNX), usable under
    ``jit_compile=True`` and mixed precision. See ``benchmarks/grouped_conv.py``
    for the speed of the two.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        groups,
        strides=1,
        padding="valid",
        dilation_rate=1,
        use_bias=False,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for value, argument in ((filters, "filters"), (groups, "groups")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{argument}: expected a positive integer, got {value!r}")
        if filters % groups:
            raise ValueError(f"filters: {filters} is not divisible by groups={groups}")
        if padding not in PADDINGS:
            raise ValueError(f"padding: expected one of {PADDINGS}, got {padding!r}")
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias: expected True or False, got {use_bias!r}")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.groups = groups
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("dilation_rate: a strided convolution cannot also be dilated")
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("inputs: the channel dimension must be known")
        if channels % self.groups:
            raise ValueError(
                f"groups: the input's {channels} channels are not divisible by groups={self.groups}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )

    def call(self, inputs):
        kernel = ops.cast(self.kernel, self.compute_dtype)
        options = dict(strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate)
        if self.groups == 1:
            outputs = ops.conv(inputs, kernel, **options)
        else:
            per_group_out = self.filters // self.groups
            per_group_in = kernel.shape[2]
            outputs = ops.concatenate(
                [
                    ops.conv(
                        inputs[..., g * per_group_in:(g + 1) * per_group_in],
                        kernel[..., g * per_group_out:(g + 1) * per_group_out],
                        **options,
                    )
                    for g in range(self.groups)
                ],
                axis=-1,
            )
        if self.bias is not None:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape

        def side(size, k, s, d):
            if size is None:
                return None
            extent = (k - 1) * d + 1
            return -(-size // s) if self.padding == "same" else (size - extent) // s + 1

        return (
            batch,
            side(height, self.kernel_size[0], self.strides[0], self.dilation_rate[0]),
            side(width, self.kernel_size[1], self.strides[1], self.dilation_rate[1]),
            self.filters,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "groups": self.groups,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }
