"""Max pooling padded the way PyTorch pads it."""

from __future__ import annotations

import keras
from keras import ops

from keras_ultradeep import checks

__all__ = ["SymmetricMaxPooling2D"]


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class SymmetricMaxPooling2D(keras.layers.Layer):
    """``nn.MaxPool2d(pool_size, strides, padding)``: ``padding`` cells of -inf on
    every side, then a "valid" max-pool (channels-last).

    Keras' ``padding="same"`` pads a stride-2 pool on the bottom/right only, so
    its windows start one pixel later than PyTorch's; zero padding in front of
    it is exact only after a ReLU. Pre-activation networks (timm's ResNetV2)
    pool the raw stem conv, whose values can be negative, so they need this.
    """

    def __init__(self, pool_size=3, strides=2, padding=1, **kwargs):
        super().__init__(**kwargs)
        checks.positive_int(pool_size, "pool_size")
        checks.positive_int(strides, "strides")
        checks.integer(padding, "padding", minimum=0)
        if 2 * padding > pool_size:
            raise ValueError(
                f"padding: expected at most half of pool_size={pool_size}, got {padding} "
                "(a window must hold at least one real value)"
            )
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding

    def call(self, x):
        if self.padding:
            p = self.padding
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=float("-inf"))
        return ops.max_pool(x, self.pool_size, self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def side(n):
            return None if n is None else (n + 2 * self.padding - self.pool_size) // self.strides + 1

        batch, height, width, channels = input_shape
        return (batch, side(height), side(width), channels)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }
