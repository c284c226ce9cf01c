"""Adaptive average pooling with PyTorch's bins, for inputs of any size."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_ultradeep import checks

__all__ = ["AdaptiveAveragePooling2DTorch"]


def _bins(size, out):
    """The (out, size) averaging matrix of ``nn.AdaptiveAvgPool*``: output ``i``
    averages inputs ``floor(i * size / out)`` to ``ceil((i + 1) * size / out) - 1``."""
    matrix = np.zeros((out, size), "float32")
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class AdaptiveAveragePooling2DTorch(keras.layers.Layer):
    """``torch.nn.AdaptiveAvgPool2d(output_size)`` (channels-last).

    Output cell (i, j) averages the input rows ``floor(i*H/h)`` to
    ``ceil((i+1)*H/h) - 1`` and the columns likewise. Unlike
    ``keras.layers.AdaptiveAveragePooling2D`` it also takes inputs smaller
    than the output, where PyTorch repeats cells (a 1x1 map becomes a 6x6
    map of copies) — what torchvision's AlexNet and VGG do below 224 pixels.
    The pooling is two small averaging matrices applied along height and
    width, built from the input's static size (which must be known).
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = checks.positive_int_pair(output_size, "output_size")

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"inputs: expected (batch, height, width, channels), got shape {tuple(input_shape)}")
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"inputs: the height and width must be known, got shape {tuple(input_shape)}")
        self._rows = _bins(input_shape[1], self.output_size[0])
        self._columns = _bins(input_shape[2], self.output_size[1])

    def call(self, x):
        # Two matmuls with constant matrices on the last axis (no einsum:
        # TFLite's converter mis-sizes its batched form).
        rows = ops.convert_to_tensor(self._rows.T, dtype=x.dtype)  # (H, h)
        columns = ops.convert_to_tensor(self._columns.T, dtype=x.dtype)  # (W, w)
        x = ops.matmul(ops.transpose(x, (0, 2, 3, 1)), rows)  # (b, W, c, h)
        x = ops.matmul(ops.transpose(x, (0, 3, 2, 1)), columns)  # (b, h, c, w)
        return ops.transpose(x, (0, 1, 3, 2))  # (b, h, w, c)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}
