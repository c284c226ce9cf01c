"""The papers' optimizers: coupled weight decay, Torch's SGD, step schedules.

**Coupled weight decay.** Every paper in :mod:`.recipes` trained with Torch's
``optim.sgd`` (or Caffe / TensorFlow 1) where weight decay is an L2 penalty
``wd/2 * ||w||^2`` on the loss: its gradient ``wd * w`` is *added to the
gradient before the momentum*, and it applies to every trainable parameter
(Torch's ``optim.sgd`` decays the flattened parameter vector: kernels, biases,
BatchNorm's gamma and beta). Keras' own ``weight_decay`` argument is the
*decoupled* decay of Loshchilov & Hutter (``w -= lr * wd * w`` outside the
momentum), which is a different optimizer. So the optimizers here take
``coupled_weight_decay`` and add ``wd * w`` to each variable's gradient in
``update_step``, i.e. after gradient clipping and loss-scale unscaling, before
the momentum/RMS accumulators: exactly ``gradient + wd * w``. The reported
loss stays the data loss (the penalty is not added to it).

**Torch's SGD.** Keras' SGD keeps the learning rate inside the velocity
(``m = mu*m - lr*g``); Torch and PyTorch keep the gradients there
(``v = mu*v + g; w -= lr*v``, Nesterov: ``w -= lr*(g + mu*v)``). The two agree
at a constant learning rate and differ after each step of a step schedule
(Keras' velocity still carries the old rate for a few dozen steps).
:class:`SGD` here is Torch's (dampening 0), so the recipes' schedules act as
in the papers.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_ultradeep.training.recipes import OPTIMIZERS, SCHEDULES

__all__ = ["OPTIMIZERS", "SGD", "Adam", "RMSprop", "make_optimizer", "make_schedule"]

_PACKAGE = "keras_ultradeep"


class _CoupledWeightDecay:
    """Adds ``coupled_weight_decay * w`` to each gradient before the update."""

    def _init_coupled(self, coupled_weight_decay):
        if (
            isinstance(coupled_weight_decay, bool)
            or not isinstance(coupled_weight_decay, (int, float))
            or coupled_weight_decay < 0
        ):
            raise ValueError(
                f"coupled_weight_decay: expected a non-negative number, got {coupled_weight_decay!r}"
            )
        self.coupled_weight_decay = float(coupled_weight_decay)

    def _decayed(self, gradient, variable):
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay:
            gradient = ops.add(
                gradient, ops.multiply(variable, ops.cast(self.coupled_weight_decay, variable.dtype))
            )
        return gradient

    def _coupled_config(self, config):
        config["coupled_weight_decay"] = self.coupled_weight_decay
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SGD(_CoupledWeightDecay, keras.optimizers.Optimizer):
    """Torch's ``optim.sgd`` / PyTorch's ``SGD`` (dampening 0) with coupled weight decay.

    ``d = g + wd*w``; ``v = momentum*v + d``; ``w -= lr * (d + momentum*v)``
    with Nesterov, else ``w -= lr * v``.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        nesterov=False,
        coupled_weight_decay=0.0,
        name="sgd",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._init_coupled(coupled_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = self._decayed(gradient, variable)
        if self.momentum:
            velocity = self.momentums[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum, variable.dtype)
            self.assign(velocity, ops.add(ops.multiply(velocity, momentum), gradient))
            if self.nesterov:
                gradient = ops.add(gradient, ops.multiply(velocity, momentum))
            else:
                gradient = velocity
        self.assign_sub(variable, ops.multiply(gradient, learning_rate))

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, nesterov=self.nesterov)
        return self._coupled_config(config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RMSprop(_CoupledWeightDecay, keras.optimizers.RMSprop):
    """Keras' RMSprop with coupled weight decay (``g + wd*w`` before the RMS accumulator)."""

    def __init__(self, *args, coupled_weight_decay=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_coupled(coupled_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(self._decayed(gradient, variable), variable, learning_rate)

    def get_config(self):
        return self._coupled_config(super().get_config())


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Adam(_CoupledWeightDecay, keras.optimizers.Adam):
    """Keras' Adam with coupled weight decay (``g + wd*w``; Adam, not AdamW)."""

    def __init__(self, *args, coupled_weight_decay=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_coupled(coupled_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(self._decayed(gradient, variable), variable, learning_rate)

    def get_config(self):
        return self._coupled_config(super().get_config())




def make_schedule(kind, learning_rate, *, total_steps, boundaries=(), factor=0.1, decay_steps=None):
    """The learning rate as a function of the step.

    ``step``: ``PiecewiseConstantDecay`` multiplying by ``factor`` from each of
    ``boundaries`` on (the step that many optimizer steps into the run, 0-based,
    is the first at the new rate); ``cosine``: to zero over ``total_steps``;
    ``exponential``: ``factor`` every ``decay_steps`` (staircase);
    ``constant``: ``learning_rate``.
    """
    if kind == "step":
        boundaries = [int(b) for b in boundaries]
        if not boundaries:
            return learning_rate
        values = [learning_rate * factor**i for i in range(len(boundaries) + 1)]
        # Keras' schedule sees the number of steps already taken and keeps a value
        # up to and including its boundary: b - 1 makes step b the first one at the
        # new rate (the first step of epoch milestone + 1).
        return keras.optimizers.schedules.PiecewiseConstantDecay([b - 1 for b in boundaries], values)
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps))
    if kind == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=max(1, int(decay_steps)), decay_rate=factor, staircase=True
        )
    if kind == "constant":
        return learning_rate
    raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {kind!r}")


def make_optimizer(
    kind,
    learning_rate,
    *,
    momentum=0.9,
    nesterov=False,
    weight_decay=0.0,
    rho=0.9,
    epsilon=None,
    clipnorm=None,
):
    """One of :data:`OPTIMIZERS` with coupled weight decay ``weight_decay``."""
    common = {"coupled_weight_decay": weight_decay}
    if clipnorm:
        common["global_clipnorm"] = clipnorm
    if kind == "sgd":
        return SGD(learning_rate, momentum=momentum, nesterov=nesterov, **common)
    if kind == "rmsprop":
        return RMSprop(
            learning_rate, rho=rho, momentum=momentum, epsilon=1e-7 if epsilon is None else epsilon, **common
        )
    if kind == "adam":
        return Adam(learning_rate, epsilon=1e-7 if epsilon is None else epsilon, **common)
    raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {kind!r}")
