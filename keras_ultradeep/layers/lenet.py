"""LeNet-5's layers: the squashing function, trainable subsampling, the
partially connected convolution (a connection table) and the Euclidean RBF output.

LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998, section II.B and Appendix A.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_ultradeep import checks

__all__ = [
    "LENET5_C3_TABLE",
    "ConnectionTableConv2D",
    "EuclideanRBF",
    "Subsampling2D",
    "lecun_tanh",
    "rbf_prototypes",
]

SQUASH_AMPLITUDE = 1.7159  # A: f(+-1) = +-1 and f's second derivative peaks at +-1
SQUASH_SLOPE = 2.0 / 3.0  # S


@keras.saving.register_keras_serializable(package="keras_ultradeep")
def lecun_tanh(x):
    """LeNet-5's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A)."""
    return SQUASH_AMPLITUDE * ops.tanh(SQUASH_SLOPE * x)



@keras.saving.register_keras_serializable(package="keras_ultradeep")
class Subsampling2D(keras.layers.Layer):
    """LeNet's trainable subsampling (layers S2 and S4), before its squashing.

    Each unit sums a non-overlapping ``pool_size`` x ``pool_size`` block of
    one map, multiplies the sum by that map's trainable coefficient and adds
    its trainable bias: 2 parameters per map (12 for S2, 32 for S4). It is
    neither average pooling (no parameters) nor a depthwise conv (4 weights
    per map). The coefficient starts at ``1 / pool_size**2`` (an average) and
    the bias at 0. Channels-last.
    """

    def __init__(self, pool_size=2, coefficient_initializer=None, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        checks.positive_int(pool_size, "pool_size")
        self.pool_size = pool_size
        self.coefficient_initializer = keras.initializers.get(
            coefficient_initializer or keras.initializers.Constant(1.0 / pool_size**2)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"inputs: expected (batch, height, width, channels) with known channels, got {tuple(input_shape)}"
            )
        channels = input_shape[-1]
        self.coefficient = self.add_weight(
            name="coefficient", shape=(channels,), initializer=self.coefficient_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer=self.bias_initializer)

    def call(self, x):
        window = float(self.pool_size**2)
        sums = ops.average_pool(x, self.pool_size, self.pool_size, padding="valid") * ops.cast(window, x.dtype)
        return sums * ops.cast(self.coefficient, x.dtype) + ops.cast(self.bias, x.dtype)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        side = lambda n: None if n is None else n // self.pool_size
        return (batch, side(height), side(width), channels)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "coefficient_initializer": keras.initializers.serialize(self.coefficient_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


# Table I of the paper: row = S2 map (input), column = C3 map (output), 1 = connected.
LENET5_C3_TABLE = tuple(
    tuple(int(c) for c in row)
    for row in (
        "1000111001111011",
        "1100011100111101",
        "1110001110010111",
        "0111001111001011",
        "0011100111101101",
        "0001110011110111",
    )
)


def _check_table(table):
    rows = np.asarray(table, dtype=object) if isinstance(table, (list, tuple)) else None
    if (
        rows is None
        or rows.ndim != 2
        or rows.size == 0
        or any(isinstance(v, bool) is False and v not in (0, 1) for v in rows.ravel())
    ):
        raise ValueError(
            "connection_table: expected a non-empty (input maps, output maps) nested list of 0/1, "
            f"got {table!r}"
        )
    table = np.asarray(rows.tolist(), dtype=bool)
    if not table.any(axis=0).all():
        raise ValueError(
            f"connection_table: output maps {np.flatnonzero(~table.any(axis=0)).tolist()} have no input"
        )
    return table


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class ConnectionTableConv2D(keras.layers.Layer):
    """A convolution in which output map j sees only the input maps i with
    ``connection_table[i][j]`` set (LeNet-5's C3, the paper's Table I).

    "A non-complete connection scheme keeps the number of connections within
    reasonable bounds. More importantly, it forces a break of symmetry in the
    network": C3 with the default :data:`LENET5_C3_TABLE` has
    25 * 60 + 16 = 1,516 parameters instead of a full conv's 2,416.

    Only connected kernel slices are variables: ``kernel`` is
    ``(kh, kw, connections)``, ordered by output map and, within one, by input
    map. Each call scatters it into a full ``(kh, kw, in, out)`` kernel (zeros
    where unconnected) with one gather and runs a single "valid" convolution,
    so the layer is exact, compiles under XLA and exports like any conv.
    ``bias`` is ``(filters,)``; ``filters`` is the table's column count.
    """

    def __init__(
        self,
        connection_table=LENET5_C3_TABLE,
        kernel_size=5,
        activation=None,
        use_bias=True,
        kernel_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        table = _check_table(connection_table)
        checks.positive_int(kernel_size, "kernel_size")
        checks.boolean(use_bias, "use_bias")
        self.connection_table = table.astype(int).tolist()
        self.kernel_size = kernel_size
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        # None: the paper's uniform +-2.4 / F_i with each map's true fan-in (a Keras
        # initializer would read the fans from the (kh, kw, connections) shape).
        self.kernel_initializer = None if kernel_initializer is None else keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        in_maps, self.filters = table.shape
        self.connections = int(table.sum())
        # Position in the full kernel's flattened (in, out) axis of each
        # (input i, output j): index into [kernel slices..., zero slice].
        order = np.full((in_maps, self.filters), self.connections, "int32")
        slot = 0
        for j in range(self.filters):
            for i in np.flatnonzero(table[:, j]):
                order[i, j] = slot
                slot += 1
        self._gather = order.reshape(-1)

    def build(self, input_shape):
        rows = len(self.connection_table)
        if len(input_shape) != 4 or input_shape[-1] != rows:
            raise ValueError(
                f"inputs: the connection table has {rows} input maps, got input shape {tuple(input_shape)}"
            )
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(k, k, self.connections),
            initializer=self.kernel_initializer or self._paper_initializer(),
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )

    def _paper_initializer(self):
        """Uniform in +-2.4 / F_i, F_i the fan-in of the unit (Appendix A.1)."""
        fan_in = self.kernel_size**2 * np.sum(self.connection_table, axis=0)  # per output map
        bound = np.repeat(2.4 / fan_in, np.sum(self.connection_table, axis=0)).astype("float32")

        def initialize(shape, dtype=None):
            return keras.random.uniform(shape, -1.0, 1.0, dtype=dtype) * ops.cast(bound, dtype)

        return initialize

    def full_kernel(self):
        """The ``(kh, kw, in, out)`` kernel with zeros where maps are not connected."""
        k = self.kernel_size
        kernel = ops.concatenate([self.kernel, ops.zeros((k, k, 1), self.kernel.dtype)], axis=-1)
        full = ops.take(kernel, ops.convert_to_tensor(self._gather), axis=-1)
        return ops.reshape(full, (k, k, len(self.connection_table), self.filters))

    def call(self, x):
        kernel = ops.cast(self.full_kernel(), x.dtype)
        y = ops.conv(x, kernel, strides=1, padding="valid")
        if self.bias is not None:
            y = y + ops.cast(self.bias, x.dtype)
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        side = lambda n: None if n is None else n - self.kernel_size + 1
        return (batch, side(height), side(width), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "connection_table": self.connection_table,
            "kernel_size": self.kernel_size,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": (
                None if self.kernel_initializer is None else keras.initializers.serialize(self.kernel_initializer)
            ),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


def rbf_prototypes(classes, units, seed=0):
    """Fixed +-1 class codes, ``(units, classes)``: a seeded random choice, which
    the paper names as an alternative to its hand-drawn 7x12 bitmaps (not
    published as numbers)."""
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1.0, 1.0], "float32"), size=(units, classes))


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class EuclideanRBF(keras.layers.Layer):
    """LeNet-5's output layer: one Euclidean radial basis function per class,

        y_i = sum_j (x_j - w_ij)^2,

    with the parameter vectors w_i fixed +-1 codes (not trained; a
    non-trainable weight ``prototypes`` of shape ``(units, classes)``, from
    :func:`rbf_prototypes` with ``seed``). The layer returns ``-y_i`` so that
    larger is better, like a logit: a softmax over it is the paper's MAP
    criterion without its "rubbish class" constant, and ``activation`` (e.g.
    "softmax") applies to it as to a Dense classifier's logits. Computed in
    float32 under a float16 policy; the output has the compute dtype.
    """

    def __init__(self, classes, activation=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        checks.positive_int(classes, "classes")
        checks.integer(seed, "seed", minimum=0)
        self.classes = classes
        self.activation = keras.activations.get(activation)
        self.seed = seed

    def build(self, input_shape):
        units = input_shape[-1]
        if units is None:
            raise ValueError("inputs: the feature dimension must be known")
        self.prototypes = self.add_weight(
            name="prototypes", shape=(units, self.classes), initializer="zeros", trainable=False
        )
        self.prototypes.assign(rbf_prototypes(self.classes, units, self.seed))

    def call(self, x):
        # In float32 and as differences (not |x|^2 - 2 x.w + |w|^2): distances of
        # a few hundred lose their small differences in float16.
        x = ops.cast(x, "float32")
        w = ops.cast(self.prototypes, "float32")
        logits = -ops.sum(ops.square(ops.expand_dims(x, -1) - w), axis=-2)
        outputs = self.activation(logits) if self.activation is not None else logits
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.classes)

    def get_config(self):
        return {
            **super().get_config(),
            "classes": self.classes,
            "activation": keras.activations.serialize(self.activation),
            "seed": self.seed,
        }
