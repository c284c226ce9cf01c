"""FractalNet's join and drop-path (Larsson, Maire, Shakhnarovich, ICLR 2017).

A fractal block joins its columns by an element-wise mean (:class:`FractalJoin`).
In training, drop-path regularizes the joins in one of two ways, chosen once
per batch:

* **local**: every join drops each of its inputs independently with
  probability p (0.15 in the official code) and keeps at least one;
* **global**: a single column is chosen for the whole network, and every join
  keeps only that column's input, so the network computes that column alone.

The per-batch decision must be the same at every join of the network, so one
:class:`DropPathSampler` draws it and every join takes its output as
``selection``. At inference all paths are joined, deterministically.

Both layers have no weights; their randomness comes from a
``keras.random.SeedGenerator`` (variable-backed: a new draw on every call, in
eager, graph and XLA-compiled code alike).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_ultradeep import checks

__all__ = ["DropPathSampler", "FractalJoin"]


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class DropPathSampler(keras.layers.Layer):
    """Draws, once per batch, FractalNet's drop-path mode for the whole network.

    The output is a vector of ``columns`` values, the ``selection`` that every
    :class:`FractalJoin` of the network takes: in training, with probability
    ``global_drop_path`` the batch is *global* and the vector is the one-hot
    of a column drawn uniformly; otherwise the batch is *local* and the vector
    is all zeros. At inference it is all zeros (and the joins ignore it).

    The paper mixes the two modes half and half (``global_drop_path=0.5``).
    The input tensor is not read; it only places the layer in the graph (pass
    the network's input).

    Args:
        columns: C, the number of columns of the fractal network.
        global_drop_path: the probability that a batch is global.
        seed: an integer seed, or None for a random one.
    """

    def __init__(self, columns, global_drop_path=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.columns = checks.positive_int(columns, "columns")
        self.global_drop_path = checks.number_in(global_drop_path, "global_drop_path", 0, 1)
        self.seed = checks.optional_int(seed, "seed")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        local = ops.zeros((self.columns,), dtype=self.compute_dtype)
        if not training or self.global_drop_path == 0:
            return local
        draw = keras.random.uniform((), dtype="float32", seed=self.seed_generator)
        column = keras.random.randint((), 0, self.columns, seed=self.seed_generator)
        chosen = ops.one_hot(column, self.columns, dtype=self.compute_dtype)
        return ops.where(draw < self.global_drop_path, chosen, local)

    def compute_output_shape(self, input_shape):
        return (self.columns,)

    def get_config(self):
        return {
            **super().get_config(),
            "columns": self.columns,
            "global_drop_path": self.global_drop_path,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class FractalJoin(keras.layers.Layer):
    """The join of a fractal block: the element-wise mean of its active inputs.

    Called on a list of tensors of the same shape (one per column reaching the
    join, at least one), optionally with ``selection``, the output of the
    network's :class:`DropPathSampler`.

    * Inference: the mean of all inputs.
    * Training, local batch (no ``selection``, or an all-zero one): each input
      is dropped with probability ``local_drop_path``, one draw per input for
      the whole batch (the official Caffe layer's rule); if all are dropped,
      one drawn uniformly is kept. The output is the sum of the kept inputs
      divided by their number (and so is the gradient).
    * Training, global batch (``selection`` one-hot of column c): only the
      input from column c is kept. A join that column c does not reach (it
      joins only deeper columns) feeds nothing that reaches the network's
      output in this batch; it returns the mean of all its inputs, so that
      the BatchNorm layers behind it see their usual statistics instead of
      zeros (whose zero variance would spoil their moving averages).

    Args:
        local_drop_path: the probability of dropping each input in a local
            batch, in [0, 1).
        columns: the column of each input (0 the shallowest), needed to
            interpret ``selection``; None for a join used without one.
        seed: an integer seed, or None for a random one.
    """

    def __init__(self, local_drop_path=0.15, columns=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.local_drop_path = checks.number_in(local_drop_path, "local_drop_path", 0, 1, high_open=True)
        if columns is not None:
            if not isinstance(columns, (list, tuple)) or not columns or any(
                isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in columns
            ) or len(set(columns)) != len(columns):
                raise ValueError(
                    f"columns: expected distinct non-negative column indices, one per input, got {columns!r}"
                )
            columns = tuple(columns)
        self.columns = columns
        checks.optional_int(seed, "seed")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _check_shapes(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or not input_shape
            or not all(isinstance(shape, (list, tuple)) for shape in input_shape)
        ):
            raise ValueError(
                f"inputs: {self.name} expects a list of tensors of the same shape, "
                f"got input shape(s) {input_shape!r}"
            )
        shapes = [tuple(shape) for shape in input_shape]
        merged = list(shapes[0])
        for shape in shapes[1:]:
            if len(shape) != len(merged) or any(
                a is not None and b is not None and a != b for a, b in zip(merged, shape)
            ):
                raise ValueError(f"inputs: {self.name} expects tensors of the same shape, got {shapes}")
            merged = [a if a is not None else b for a, b in zip(merged, shape)]
        if self.columns is not None and len(self.columns) != len(shapes):
            raise ValueError(
                f"columns: {self.name} has {len(self.columns)} column indices for {len(shapes)} inputs"
            )
        return tuple(merged)

    def build(self, inputs_shape, selection_shape=None):
        self._check_shapes(inputs_shape)
        if selection_shape is not None:
            self._check_selection_shape(selection_shape)
        self.built = True

    def _check_selection_shape(self, shape):
        if self.columns is None:
            raise ValueError(f"columns: {self.name} needs its inputs' column indices to take a selection")
        if len(shape) != 1 or (shape[0] is not None and shape[0] <= max(self.columns)):
            raise ValueError(
                f"selection: {self.name} expects a vector over at least {max(self.columns) + 1} "
                f"columns (a DropPathSampler's output), got shape {tuple(shape)}"
            )

    def compute_output_shape(self, inputs_shape, selection_shape=None):
        return self._check_shapes(inputs_shape)

    def _local_mask(self, count):
        draw = keras.random.uniform((count,), dtype="float32", seed=self.seed_generator)
        keep = ops.cast(draw >= self.local_drop_path, "float32")
        rescue = ops.one_hot(
            keras.random.randint((), 0, count, seed=self.seed_generator), count, dtype="float32"
        )
        return ops.where(ops.sum(keep) > 0, keep, rescue)

    def call(self, inputs, selection=None, training=None):
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError(
                f"inputs: {self.name} expects a list of tensors, got {type(inputs).__name__}"
            )
        inputs = list(inputs)
        self._check_shapes([tuple(x.shape) for x in inputs])
        count = len(inputs)
        if selection is not None:
            self._check_selection_shape(tuple(selection.shape))
        if count == 1:
            return inputs[0]
        if not training or (self.local_drop_path == 0 and selection is None):
            total = inputs[0]
            for x in inputs[1:]:
                total = total + x
            return total * ops.cast(1.0 / count, total.dtype)

        mask = self._local_mask(count) if self.local_drop_path > 0 else ops.ones((count,), "float32")
        if selection is not None:
            selection = ops.cast(selection, "float32")
            chosen = ops.take(selection, ops.convert_to_tensor(self.columns, dtype="int32"), axis=0)
            is_global = ops.max(selection) > 0.5
            mask = ops.where(is_global, chosen, mask)
            # A global batch whose column bypasses this join: nothing reaches the output.
            mask = ops.where(ops.sum(mask) > 0, mask, ops.ones((count,), "float32"))
        dtype = inputs[0].dtype
        weights = ops.cast(mask / ops.sum(mask), dtype)
        total = inputs[0] * weights[0]
        for i in range(1, count):
            total = total + inputs[i] * weights[i]
        return total

    def get_config(self):
        return {
            **super().get_config(),
            "local_drop_path": self.local_drop_path,
            "columns": list(self.columns) if self.columns is not None else None,
            "seed": self.seed,
        }
