"""Grouped 2-D convolution (ResNeXt's aggregated transformations)."""

from __future__ import annotations

import keras
from keras import ops

from keras_ultradeep import checks

__all__ = ["GroupedConv2D"]

PADDINGS = ("valid", "same")


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def _tf_grouped_convolution(inputs, kernel, *, strides, padding, dilations, groups):
    """TensorFlow's grouped Conv2D, with the filter gradient taken group by group.

    The forward op runs grouped on every device, but TensorFlow's CPU kernels
    for its gradients do not take groups in eager mode ("Gradients for grouped
    convolutions are not supported on CPU"), and some CPU builds of TensorFlow
    2.21 fail on the grouped filter gradient inside graphs too (seen on a
    2-core AMD EPYC, float32 as well as float16: "filter_size does not have
    enough elements, requested 576, got 144"). Both gradients are therefore
    computed group by group — the same numbers, one small op per group — which
    every device supports.
    """
    import tensorflow as tf

    strides4, dilations4 = [1, *strides, 1], [1, *dilations, 1]

    @tf.custom_gradient
    def convolution(x, k):
        y = tf.nn.convolution(x, k, strides=strides, padding=padding, dilations=dilations)

        def gradient(dy):
            kh, kw, per_group, filters = k.shape
            x_groups = tf.split(x, groups, axis=-1)
            k_groups = tf.split(k, groups, axis=-1)
            dy_groups = tf.split(dy, groups, axis=-1)
            if max(dilations) > 1:
                # The raw backprop ops have no dilated CPU kernel ("Current CPU implementations
                # do not yet support dilation rates larger than 1"); tf.nn.convolution's own
                # gradient (through space-to-batch) has, at the cost of a forward pass per group.
                pairs = []
                for x_group, k_group, dy_group in zip(x_groups, k_groups, dy_groups):
                    with tf.GradientTape() as tape:
                        tape.watch([x_group, k_group])
                        y_group = tf.nn.convolution(x_group, k_group, strides=strides, padding=padding,
                                                    dilations=dilations)
                    pairs.append(tape.gradient(y_group, [x_group, k_group], output_gradients=dy_group))
                return tf.concat([p[0] for p in pairs], axis=-1), tf.concat([p[1] for p in pairs], axis=-1)
            options = dict(strides=strides4, padding=padding, dilations=dilations4)
            dx = tf.concat(
                [
                    tf.raw_ops.Conv2DBackpropInput(
                        input_sizes=tf.shape(x_group), filter=k_group, out_backprop=dy_group, **options
                    )
                    for x_group, k_group, dy_group in zip(x_groups, k_groups, dy_groups)
                ],
                axis=-1,
            )
            dk = tf.concat(
                [
                    tf.raw_ops.Conv2DBackpropFilter(
                        input=x_group, filter_sizes=[kh, kw, per_group, filters // groups],
                        out_backprop=dy_group, **options,
                    )
                    for x_group, dy_group in zip(x_groups, dy_groups)
                ],
                axis=-1,
            )
            return dx, dk

        return y, gradient

    return convolution(inputs, kernel)


def _jax_grouped_convolution(inputs, kernel, *, strides, padding, dilations, groups):
    """XLA's grouped convolution, with its gradients taken group by group on a CPU.

    XLA's CPU backend runs a grouped convolution's forward pass well, but its
    gradients (a convolution with ``batch_group_count`` for the kernel) 28-88x
    slower than the same gradients computed one group at a time on ResNeXt-50's
    shapes (benchmarks/grouped_conv_jax.py); ResNeXt-50 trained at 0.03x timm's
    speed on JAX because of it (docs/benchmarks.md). The forward pass stays one
    grouped op; the backward pass is the VJP of ``groups`` plain convolutions on
    channel slices: the same numbers. On a GPU the op is left to XLA.
    """
    import jax
    import jax.numpy as jnp

    options = dict(window_strides=tuple(strides), padding=padding.upper(), rhs_dilation=tuple(dilations),
                   dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def grouped(x, k):
        return jax.lax.conv_general_dilated(x, k, feature_group_count=groups, **options)

    def group_by_group(x, k):
        return jnp.concatenate(
            [jax.lax.conv_general_dilated(x_group, k_group, **options)
             for x_group, k_group in zip(jnp.split(x, groups, axis=-1), jnp.split(k, groups, axis=-1))],
            axis=-1,
        )

    @jax.custom_vjp
    def convolution(x, k):
        return grouped(x, k)

    def forward(x, k):
        return grouped(x, k), (x, k)

    def backward(residuals, dy):
        return jax.vjp(group_by_group, *residuals)[1](dy)

    convolution.defvjp(forward, backward)
    return convolution(inputs, kernel)


def _jax_on_cpu():
    import jax

    return jax.default_backend() == "cpu"


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class GroupedConv2D(keras.layers.Layer):
    """A 2-D convolution whose input and output channels are split into
    ``groups`` groups, each convolved separately. Channels-last only.

    ResNeXt (Xie et al. 2017) replaces a bottleneck's transformation with an
    aggregation of C transformations of the same topology,

        y = x + sum_{i=1..C} T_i(x),

    where C is the cardinality. With each T_i a 1x1 -> 3x3 -> 1x1 path of
    width d, the C paths are exactly one 1x1 convolution to C*d channels, one
    3x3 convolution with ``groups = C`` (this layer) and one 1x1 convolution
    back; "32x4d" means C = 32, d = 4.

    It computes what ``keras.layers.Conv2D(groups=groups)`` computes, with the
    same weight layout: ``kernel`` is ``(kh, kw, in_channels // groups,
    filters)``, so a PyTorch grouped weight ``(out, in // groups, kh, kw)``
    converts with ``transpose(2, 3, 1, 0)``; ``bias`` is ``(filters,)``.

    Why not ``Conv2D(groups=...)`` (ARCHITECTURES.md section 5): on the
    TensorFlow backend Keras wraps every grouped convolution in a nested
    ``tf.function(jit_compile=True)``, a workaround for CPU kernels that once
    lacked groups. A model built on it fails to export to ONNX and, on CPU, is
    slower than TensorFlow's own grouped ``Conv2D`` op, which this layer calls
    directly (one op, no nested XLA: exportable to SavedModel, convertible to
    an ONNX ``Conv`` with ``group``, usable under ``jit_compile=True`` and
    mixed precision). Other backends take ``keras.ops.conv``, whose JAX and
    PyTorch kernels handle groups natively. ``benchmarks/grouped_conv.py``
    times this against ``Conv2D(groups)``, a per-group split and a
    block-diagonal dense kernel: on a 2-core CPU, ResNeXt's grouped 3x3s run
    2-14x faster than ``Conv2D(groups)`` without XLA; under
    ``jit_compile=True`` both are the same XLA convolution, and there a
    per-group split would be about 2x faster.
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
        checks.positive_int(filters, "filters")
        checks.positive_int(groups, "groups")
        if filters % groups:
            raise ValueError(f"filters: {filters} is not divisible by groups={groups}")
        padding = padding.lower() if isinstance(padding, str) else padding
        checks.one_of(padding, "padding", PADDINGS)
        checks.boolean(use_bias, "use_bias")
        self.filters = filters
        self.kernel_size = checks.positive_int_pair(kernel_size, "kernel_size")
        self.groups = groups
        self.strides = checks.positive_int_pair(strides, "strides")
        self.padding = padding
        self.dilation_rate = checks.positive_int_pair(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("dilation_rate: a strided convolution cannot also be dilated")
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"inputs: expected (batch, height, width, channels), got shape {tuple(input_shape)}")
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
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # The grouped kernel goes straight to TensorFlow's Conv2D op,
            # bypassing keras.ops.conv's nested XLA function (see the docstring).
            # TensorFlow's CPU kernel for the float16 filter gradient of a
            # grouped convolution sizes its buffer for one group and fails
            # ("filter_size does not have enough elements"); without a GPU the
            # float16 convolution runs in float32 and is cast back.
            upcast = inputs.dtype == tf.float16 and not _has_gpu()
            outputs = _tf_grouped_convolution(
                tf.cast(inputs, tf.float32) if upcast else inputs,
                tf.cast(kernel, tf.float32) if upcast else kernel,
                strides=self.strides,
                padding=self.padding.upper(),
                dilations=self.dilation_rate,
                groups=self.groups,
            )
            if upcast:
                outputs = tf.cast(outputs, tf.float16)
        elif keras.backend.backend() == "jax" and self.groups > 1 and _jax_on_cpu():
            outputs = _jax_grouped_convolution(
                inputs, kernel, strides=self.strides, padding=self.padding, dilations=self.dilation_rate,
                groups=self.groups,
            )
        else:
            outputs = ops.conv(
                inputs, kernel, strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate
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
