"""Residual scaling: the merge of an Inception-ResNet block.

Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning" (AAAI 2017), section 3.3: with more
than about 1,000 filters the residual variants "died" early in training (the
last layers produced only zeros); scaling the residual down *before* adding it
to the shortcut, by a factor between 0.1 and 0.3, stabilised training without
hurting accuracy.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_ultradeep import checks
from keras_ultradeep.layers.residual import ResidualMerge

__all__ = ["ResidualScaling"]


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class ResidualScaling(ResidualMerge):
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
        self.scale = checks.positive_number(scale, "scale")

    def call(self, inputs):
        shortcut, residual = self._split(inputs)
        if self.scale == 1.0:
            return shortcut + residual
        # Straight from the Python float to the residual's dtype: a detour through
        # float32 would round the scale of a float64 model.
        return shortcut + ops.convert_to_tensor(self.scale, dtype=residual.dtype) * residual

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale)
        return config
