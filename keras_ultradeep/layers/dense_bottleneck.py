"""Concatenate -> BatchNorm -> ReLU -> Conv, recomputed in the backward pass.

The memory-efficient form of a DenseNet layer's first half (Pleiss et al.,
"Memory-Efficient Implementation of DenseNets", 2017). A dense layer l gets
the concatenation of all l earlier feature maps of its block; stored naively
for the backward pass, the concatenation, its normalized and its rectified
copies take memory quadratic in the block's depth. :class:`DenseBottleneck`
takes the feature maps as a list and runs concat -> BN -> ReLU -> conv under
``keras.remat`` (``tf.recompute_grad`` on TensorFlow): only its inputs (each
earlier map, stored once anyway) and its output are kept, and the cheap
concat -> BN -> ReLU part is recomputed when the gradient is needed.

Same function as the naive layers: the BatchNormalization and the
convolution are ordinary Keras sublayers (``norm``, ``conv``) with the naive
model's names, the forward computation is the same ops in the same order, and
in training the BatchNorm moving statistics are updated once per call, in the
forward pass, with the statistics the forward pass computed (never during the
recomputation).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_ultradeep import checks

__all__ = ["DenseBottleneck"]


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class DenseBottleneck(layers.Layer):
    """``conv(relu(batch_norm(concatenate(inputs))))`` with recomputation.

    Args:
        filters: the convolution's output maps.
        kernel_size: its (square) kernel; "same" padding, stride 1, no bias.
        input_channels: the channels of each input, when known: the sublayers
            are then built at once, outside this layer's name scope, so their
            variables' paths are those of stand-alone layers of the same names
            (``conv2_block1_0_bn/gamma``, as in the naive DenseNet).
        norm_name, conv_name: the sublayers' names (default ``{name}_bn``,
            ``{name}_conv``).
        epsilon, momentum: the BatchNormalization's.
        recompute: False computes the same function without recomputation.
    """

    def __init__(
        self, filters, kernel_size=1, *, input_channels=None, norm_name=None, conv_name=None,
        epsilon=1e-3, momentum=0.99, recompute=True, **kwargs,
    ):
        # Variables are cast explicitly below (BatchNorm computes in float32).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        checks.positive_int(filters, "filters")
        checks.positive_int(kernel_size, "kernel_size")
        if input_channels is not None:
            input_channels = [int(c) for c in input_channels]
            if not input_channels or min(input_channels) < 1:
                raise ValueError(
                    f"input_channels: expected a non-empty list of positive integers, got {input_channels!r}"
                )
        self.filters = filters
        self.kernel_size = kernel_size
        self.input_channels = input_channels
        self.recompute = bool(recompute)
        self.norm = layers.BatchNormalization(
            epsilon=epsilon, momentum=momentum, name=norm_name or f"{self.name}_bn", dtype=self.dtype_policy
        )
        self.conv = layers.Conv2D(
            filters, kernel_size, padding="same", use_bias=False, name=conv_name or f"{self.name}_conv",
            dtype=self.dtype_policy,
        )
        if input_channels is not None:
            shape = (None, None, None, sum(input_channels))
            self.norm.build(shape)
            self.conv.build(shape)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(f"inputs: expected a list of 4D tensors, got shapes {input_shape!r}")
        channels = [shape[-1] for shape in input_shape]
        if self.input_channels is not None and channels != self.input_channels:
            raise ValueError(
                f"inputs: expected channels {self.input_channels}, got {channels}"
            )
        shape = (*input_shape[0][:-1], sum(channels))
        if not self.norm.built:
            self.norm.build(shape)
        if not self.conv.built:
            self.conv.build(shape)

    def _function(self, xs, gamma, beta, kernel, statistics):
        """The naive layers' computation; ``statistics`` None: the batch's."""
        x = ops.concatenate(xs, axis=-1)
        compute = x.dtype
        x = ops.cast(x, keras.backend.result_type(x.dtype, "float32"))
        if statistics is None:
            mean, variance = self.norm._moments(x, None)
        else:
            mean, variance = (ops.cast(s, x.dtype) for s in statistics)
        y = ops.batch_normalization(
            x, mean, variance, axis=-1, offset=ops.cast(beta, x.dtype), scale=ops.cast(gamma, x.dtype),
            epsilon=self.norm.epsilon,
        )
        y = ops.relu(ops.cast(y, compute))
        y = ops.conv(y, ops.cast(kernel, compute), strides=1, padding="same")
        return y, mean, variance

    def call(self, inputs, training=None):
        xs = list(inputs)
        gamma, beta, kernel = self.norm.gamma, self.norm.beta, self.conv.kernel
        batch_statistics = bool(training) and self.norm.trainable
        statistics = None if batch_statistics else (self.norm.moving_mean, self.norm.moving_variance)
        if not (self.recompute and training):
            y, mean, variance = self._function(xs, gamma, beta, kernel, statistics)
        else:
            # Weights go in as arguments, so the recomputed function reads no
            # variable. The batch statistics leave as outputs: a value kept
            # aside from inside would, on JAX, be a tracer of the checkpointed
            # trace (UnexpectedTracerError).
            count = len(xs)

            def function(*arguments):
                return self._function(list(arguments[:count]), *arguments[count:], statistics)

            # Tensors, not variables (a variable read inside would be differentiated twice).
            gamma, beta, kernel = (ops.copy(w) for w in (gamma, beta, kernel))
            y, mean, variance = keras.remat(function)(*xs, gamma, beta, kernel)
        if batch_statistics:
            momentum = self.norm.momentum
            mean, variance = ops.stop_gradient(mean), ops.stop_gradient(variance)
            moving_mean = ops.cast(self.norm.moving_mean, mean.dtype)
            moving_variance = ops.cast(self.norm.moving_variance, variance.dtype)
            self.norm.moving_mean.assign(moving_mean * momentum + mean * (1.0 - momentum))
            self.norm.moving_variance.assign(moving_variance * momentum + variance * (1.0 - momentum))
        return y

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            input_channels=self.input_channels,
            norm_name=self.norm.name,
            conv_name=self.conv.name,
            epsilon=self.norm.epsilon,
            momentum=self.norm.momentum,
            recompute=self.recompute,
        )
        return config
