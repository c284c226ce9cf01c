"""Residual scaling: the merge of an Inception-ResNet block.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning" (AAAI 2017), section 3.3: with more
than about 1,000 filters the residual variants "died" early in training (the
last layers produced only zeros); scaling the residual down *before* adding it
to the shortcut, by a factor between 0.1 and 0.3, stabilised training without
hurting accuracy.
"""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["ResidualScaling"]


def _check_scale(value):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"scale: expected a positive finite number, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class ResidualScaling(keras.layers.Layer):
    """``shortcut + scale * residual``, the scaled residual merge.

    Called on ``[shortcut, residual]`` (tensors of the same shape)::

        out = shortcut + scale * residual

    The paper scales the residual branch (the linear 1x1 "filter expansion"
    conv's output) before the addition; the shortcut is never scaled. The
    Inception-ResNet-v2 checkpoints use 0.17 (35x35 blocks), 0.10 (17x17) and
    0.20 (8x8), and 1.0 for the network's last block. An activation, if any,
    follows as its own layer.

    A replacement for keras.applications' ``CustomScaleLayer`` (and the
    ``Lambda`` of older Keras versions): it is registered, so a model using it
    loads with ``keras.models.load_model(..., safe_mode=True)``. It has no
    weights; ``scale`` is part of the config. The multiplication happens in
    the inputs' dtype (float16 under ``mixed_float16``), as in the reference
    implementations.

    Args:
        scale: the factor applied to the residual, a positive number.
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _check_scale(scale)

    def _pair_shapes(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not all(isinstance(shape, (list, tuple)) for shape in input_shape)
        ):
            raise ValueError(
                f"inputs: {self.name} expects a list [shortcut, residual] of two tensors, "
                f"got input shape(s) {input_shape!r}"
            )
        shortcut, residual = (tuple(shape) for shape in input_shape)
        if len(shortcut) != len(residual) or any(
            a is not None and b is not None and a != b for a, b in zip(shortcut, residual)
        ):
            raise ValueError(
                f"inputs: {self.name} expects shortcut and residual of the same shape, "
                f"got {shortcut} and {residual}"
            )
        return tuple(a if a is not None else b for a, b in zip(shortcut, residual))

    def build(self, input_shape):
        self._pair_shapes(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self._pair_shapes(input_shape)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                f"inputs: {self.name} expects a list [shortcut, residual] of two tensors, "
                f"got {type(inputs).__name__}"
            )
        shortcut, residual = inputs
        if self.scale == 1.0:
            return shortcut + residual
        # Straight from the Python float to the residual's dtype: a detour through
        # float32 would round the scale of a float64 model.
        return shortcut + ops.convert_to_tensor(self.scale, dtype=residual.dtype) * residual

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale)
        return config
