"""Layers of residual networks: stochastic depth and the zero-padded shortcut.

Both work on channels-last tensors and have no trainable weights.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_ultradeep import checks

__all__ = ["StochasticDepth", "ZeroPadShortcut", "survival_probabilities"]

MODES = ("sample", "batch")
SCALES = ("inference", "training")
RULES = ("linear", "uniform")


def survival_probabilities(num_blocks, final_survival_prob=0.5, rule="linear"):
    """Per-block survival probabilities p_1 .. p_L for stochastic depth.

    ``rule="linear"`` is the paper's decay ``p_l = 1 - (l / L) (1 - p_L)``: the
    early blocks, whose features every later block builds on, are almost always
    kept and the last one survives with ``p_L``. ``rule="uniform"`` gives every
    block ``p_L``.

    Args:
        num_blocks: L, the number of residual blocks (a positive integer).
        final_survival_prob: p_L, in (0, 1].
        rule: ``"linear"`` or ``"uniform"``.

    Returns:
        A list of ``num_blocks`` floats.
    """
    checks.positive_int(num_blocks, "num_blocks")
    checks.number_in(final_survival_prob, "final_survival_prob", 0, 1, low_open=True)
    if rule not in RULES:
        raise ValueError(f"rule: expected 'linear' or 'uniform', got {rule!r}")
    final = float(final_survival_prob)
    if rule == "uniform":
        return [final] * num_blocks
    probs = [1.0 - (block / num_blocks) * (1.0 - final) for block in range(1, num_blocks + 1)]
    probs[-1] = final  # 1 - (1 - p) can be off from p in the last bit
    return probs


class ResidualMerge(keras.layers.Layer):
    """Base of the layers called on ``[shortcut, residual]``, two tensors of one
    shape, that merge them into one of that shape: the input checks and the
    output shape, shared."""

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

    def _split(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                f"inputs: {self.name} expects a list [shortcut, residual] of two tensors, "
                f"got {type(inputs).__name__}"
            )
        return inputs


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class StochasticDepth(ResidualMerge):
    """The merge of a residual block that randomly drops the residual branch.

    Huang et al. 2016, "Deep Networks with Stochastic Depth". Called on
    ``[shortcut, residual]`` (tensors of the same shape), in training it returns

        H_l = shortcut + b_l * residual,    b_l ~ Bernoulli(p_l),

    and at inference the expectation, ``shortcut + p_l * residual``. With
    ``scale="training"`` ("inverted" stochastic depth, timm's ``drop_path``)
    the rescaling moves to training instead: ``shortcut + (b_l / p_l) * residual``
    in training and a plain ``shortcut + residual`` at inference.

    The paper decays p_l linearly with depth, ``p_l = 1 - (l / L)(1 - p_L)``
    with p_L = 0.5 (see :func:`survival_probabilities`).

    Args:
        survival_prob: p_l, in (0, 1]; 1 makes the layer a plain addition.
        mode: ``"sample"`` draws b_l for each sample of the batch;
            ``"batch"`` draws once for the whole batch, as the paper does.
        scale: ``"inference"`` (the paper) or ``"training"`` (inverted).
        seed: an integer seed, or None for a random one.
    """

    def __init__(self, survival_prob=1.0, mode="sample", scale="inference", seed=None, **kwargs):
        super().__init__(**kwargs)
        checks.number_in(survival_prob, "survival_prob", 0, 1, low_open=True)
        checks.one_of(mode, "mode", MODES)
        checks.one_of(scale, "scale", SCALES)
        checks.optional_int(seed, "seed")
        self.survival_prob = float(survival_prob)
        self.mode = mode
        self.scale = scale
        self.seed = seed
        # Variable-backed state: a new draw on every call, in eager, graph and XLA alike.
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        shortcut, residual = self._split(inputs)
        self._pair_shapes([tuple(shortcut.shape), tuple(residual.shape)])
        p = self.survival_prob
        if p == 1.0:
            return shortcut + residual
        if not training:
            if self.scale == "training":
                return shortcut + residual
            return shortcut + ops.cast(p, residual.dtype) * residual
        rank = len(residual.shape)
        if self.mode == "sample":
            mask_shape = (ops.shape(residual)[0],) + (1,) * (rank - 1)
        else:
            mask_shape = (1,) * rank
        # The mask is drawn in float32 so that p is compared at full precision,
        # then cast: under mixed precision the residual is float16.
        draw = keras.random.uniform(mask_shape, dtype="float32", seed=self.seed_generator)
        keep = ops.cast(draw < p, residual.dtype)
        if self.scale == "training":
            keep = keep / ops.cast(p, residual.dtype)
        return shortcut + keep * residual

    def get_config(self):
        config = super().get_config()
        config.update(
            survival_prob=self.survival_prob, mode=self.mode, scale=self.scale, seed=self.seed
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class ZeroPadShortcut(keras.layers.Layer):
    """The ResNet paper's parameter-free shortcut for a change of shape (option A).

    He et al. 2016, "Deep Residual Learning for Image Recognition", CIFAR
    experiments: the identity, subsampled by taking every ``strides``-th pixel
    (what fb.resnet.torch's 1x1 average pooling of stride s computes), with
    zero channels appended after the input's up to ``filters``. The output is
    ``ceil(H / s) x ceil(W / s)``, the size of a 1x1 convolution of stride s.

    Args:
        filters: the output channels, at least the input's.
        strides: the subsampling step along height and width.

    Input: a channels-last ``(batch, height, width, channels)`` tensor; height
    and width may be unknown.
    """

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        checks.positive_int(filters, "filters")
        checks.positive_int(strides, "strides")
        self.filters = filters
        self.strides = strides

    def _input_channels(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"inputs: {self.name} expects a (batch, height, width, channels) tensor "
                f"with known channels, got shape {tuple(input_shape)}"
            )
        channels = input_shape[-1]
        if self.filters < channels:
            raise ValueError(
                f"filters: expected at least the input's {channels} channels, got {self.filters}"
            )
        return channels

    def build(self, input_shape):
        self._input_channels(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._input_channels(input_shape)
        batch, height, width, _ = input_shape

        def subsampled(size):
            return None if size is None else math.ceil(size / self.strides)

        return (batch, subsampled(height), subsampled(width), self.filters)

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :] if s > 1 else inputs
        missing = self.filters - inputs.shape[-1]
        if missing:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, missing]])
        return x

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides)
        return config
