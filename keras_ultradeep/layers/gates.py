"""Gates the analyses insert into a network to switch its paths at test time.

Veit, Wilber, Belongie 2016, "Residual Networks Behave Like Ensembles of
Relatively Shallow Networks": a lesion study evaluates hundreds of networks
that differ only in which blocks are removed, and the path-length experiment
routes the backward pass of each block through either its residual branch or
its shortcut. Rebuilding (and recompiling) a model for each is what made that
slow; a gate holds the switch in a non-trainable variable instead, so one
compiled model serves every configuration.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["ResidualGate", "BypassGate"]


class _Gate(keras.layers.Layer):
    """Holds ``keep``, a non-trainable scalar variable (1: the path is there)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.keep = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="keep", dtype="float32"
        )

    def build(self, input_shape):
        self.built = True

    def _keep(self, dtype):
        return ops.cast(self.keep, dtype)


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class ResidualGate(_Gate):
    """Sits in front of a residual merge, on ``[shortcut, residual]``.

    Returns ``[shortcut, keep * residual]`` in the forward pass, so the merge
    sees the block unchanged (``keep = 1``), lesioned (``keep = 0``: the
    block outputs its shortcut) or rescaled. ``route`` steers only the
    gradient: with ``route = 1`` it flows back through the residual branch
    alone, with ``route = 0`` through the shortcut alone, and with the default
    ``route = -1`` through both (Veit et al.'s path sampling, section 4.2).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.route = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(-1.0), trainable=False, name="route",
            dtype="float32",
        )

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[0]), tuple(input_shape[1])]

    def call(self, inputs):
        shortcut, residual = inputs
        dtype = residual.dtype
        route = ops.cast(self.route, dtype)
        # Forward values are unchanged by the routing: a * x + (1 - a) * stop(x) == x.
        through_residual = ops.cast(ops.greater_equal(route, 0.5), dtype)
        through_shortcut = ops.cast(ops.less(route, 0.5), dtype) * ops.cast(ops.greater(route, -0.5), dtype)
        residual = (1 - through_shortcut) * residual + through_shortcut * ops.stop_gradient(residual)
        shortcut = (1 - through_residual) * shortcut + through_residual * ops.stop_gradient(shortcut)
        return [shortcut, self._keep(dtype) * residual]


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class BypassGate(_Gate):
    """On ``[unit_input, unit_output]`` of a plain network's unit (tensors of
    one shape): the output with ``keep = 1``, the input with ``keep = 0``,
    i.e. the unit removed from the chain."""

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def call(self, inputs):
        unit_input, unit_output = inputs
        keep = self._keep(unit_output.dtype)
        return keep * unit_output + (1 - keep) * unit_input
