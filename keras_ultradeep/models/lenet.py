"""LeNet-5 (LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied
to Document Recognition", Proc. IEEE 1998).

The convolutional network of section II.B, for 32x32 grey digits: local
receptive fields, shared weights and subsampling, with every layer squashed by
f(a) = 1.7159 tanh(2a/3) (:func:`~keras_ultradeep.layers.lecun_tanh`).

==========  ======================  =============  ==================  ==========
paper       ours                    maps x size    what                params
==========  ======================  =============  ==================  ==========
C1          ``conv1_conv``          6 @ 28x28      5x5 conv            156
S2          ``conv1_subsample``     6 @ 14x14      2x2 sum * w + b     12
C3          ``conv2_conv``          16 @ 10x10     5x5, Table I        1,516
S4          ``conv2_subsample``     16 @ 5x5       2x2 sum * w + b     32
C5          ``conv3_conv``          120 @ 1x1      5x5 conv            48,120
F6          ``f6``                  84             dense               10,164
output      ``predictions``         10             Euclidean RBF       (840 fixed)
==========  ======================  =============  ==================  ==========

Trainable parameters: **60,000** with the paper's grey input (the "about
60,000" of the paper, exactly); Keras ``count_params()`` is **60,840** because
the RBF output's 840 fixed +-1 codes are a non-trainable weight. An RGB input
adds 300 to C1 (60,300 / 61,140).

* S2/S4 are the paper's trainable subsampling
  (:class:`~keras_ultradeep.layers.Subsampling2D`): the sum of each 2x2 block
  times a per-map coefficient plus a per-map bias, then the squash — not
  average pooling.
* C3 is partially connected by the paper's Table I
  (:class:`~keras_ultradeep.layers.ConnectionTableConv2D`,
  :data:`~keras_ultradeep.layers.LENET5_C3_TABLE`): 1,516 parameters, not a
  full conv's 2,416. ``connection_table=None`` connects every map (2,416).
  A custom table needs as many rows as C1 has maps (6).
* C5 stays a 5x5 conv, as the paper has it: a 1x1 map at 32x32 and a map of
  class scores over larger inputs (the paper's SDNN use).
* The output (``output="rbf"``, default) is one Euclidean RBF unit per class,
  y_i = sum_j (x_j - w_ij)^2, its w_i fixed +-1 codes. The paper drew its 10
  codes as 7x12 bitmaps of stylized characters and did not publish them as
  numbers; it says they could have been chosen at random, which is what
  :class:`~keras_ultradeep.layers.EuclideanRBF` does (seeded). The layer
  returns -y_i, so that ``classifier_activation="softmax"`` gives the
  paper's MAP criterion (without its constant "rubbish class") and any
  ``classes`` works. ``output="dense"`` is the modern Dense classifier
  (84 * 10 + 10 = 850 trainable parameters instead of 840 fixed ones).

Default input: 32x32x1, the paper's (the keras.applications default of 3
channels does not apply); any channel count is accepted. The paper
normalized its pixels to background -0.1 and foreground 1.175 (about zero
mean and unit variance). Initialization: the connection-table layer uses the
paper's uniform +-2.4 / F_i; the other layers Keras' defaults. Smallest input:
32 (C5 needs a 5x5 map).
"""

from __future__ import annotations

import functools

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import (
    LENET5_C3_TABLE,
    ConnectionTableConv2D,
    EuclideanRBF,
    Subsampling2D,
    lecun_tanh,
)
from keras_ultradeep.models.blocks import block_stages

__all__ = ["LeNet5"]

DEFAULT_SIZE = 32
MIN_SIZE = 32
OUTPUTS = ("rbf", "dense")
C1_MAPS, C3_MAPS, C5_MAPS, F6_UNITS = 6, 16, 120, 84


def lenet5_features(connection_table):
    def features(x):
        x = layers.Conv2D(C1_MAPS, 5, name="conv1_conv")(x)
        x = layers.Activation(lecun_tanh, name="conv1_squash")(x)
        x = Subsampling2D(2, name="conv1_subsample")(x)
        x = layers.Activation(lecun_tanh, name="conv1_block1_out")(x)
        if connection_table is None:
            x = layers.Conv2D(C3_MAPS, 5, name="conv2_conv")(x)
        else:
            x = ConnectionTableConv2D(connection_table, 5, name="conv2_conv")(x)
        x = layers.Activation(lecun_tanh, name="conv2_squash")(x)
        x = Subsampling2D(2, name="conv2_subsample")(x)
        x = layers.Activation(lecun_tanh, name="conv2_block1_out")(x)
        x = layers.Conv2D(C5_MAPS, 5, name="conv3_conv")(x)
        return layers.Activation(lecun_tanh, name="conv3_block1_out")(x)

    return features


def lenet5_head(x, *, include_top, pooling, classes, classifier_activation, output):
    """F6 and the output over the flattened C5 maps; without the top, the contract's pooling."""
    if not include_top:
        return contract.classifier_head(
            x, include_top=False, pooling=pooling, classes=classes, classifier_activation=classifier_activation
        )
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(F6_UNITS, activation=lecun_tanh, name="f6")(x)
    if output == "rbf":
        return EuclideanRBF(classes, activation=classifier_activation, name="predictions")(x)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def LeNet5(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="lenet5",
    *,
    output="rbf",
    connection_table=LENET5_C3_TABLE,
):
    """LeNet-5, the paper's network (see the module docstring).

    Args (beyond keras.applications'; default input 32x32x1, 10 classes):
        output: ``"rbf"`` the paper's Euclidean RBF units with fixed codes
            (their negated distances are the logits), or ``"dense"``.
        connection_table: C3's (6, 16) nested 0/1 list, the paper's Table I
            by default; ``None`` for a fully connected C3.
    """
    checks.one_of(output, "output", OUTPUTS)
    if connection_table is not None:
        # Validated now (before building) by the layer itself.
        rows = ConnectionTableConv2D(connection_table).connection_table
        if len(rows) != C1_MAPS:
            raise ValueError(f"connection_table: expected {C1_MAPS} rows (C1's maps), got {len(rows)}")
    if input_shape is None and input_tensor is None:
        input_shape = (DEFAULT_SIZE, DEFAULT_SIZE, 1) if include_top else (None, None, 1)
    return contract.application(
        lenet5_features(connection_table),
        model_name="lenet5",
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=functools.partial(lenet5_head, output=output),
        **contract.keras_arguments(locals()),
    )


registry.register("lenet5", LeNet5, family="lenet", default_size=DEFAULT_SIZE, min_size=MIN_SIZE)
# Each conv's output after its subsampling: 14x14, 5x5 and 1x1 of 32x32 (the
# valid 5x5 convs make the reductions 2, 6.4 and 32, named by powers of two).
FAMILY = registry.declare(
    registry.Family(
        "lenet", DEFAULT_SIZE, MIN_SIZE, stages=lambda config: block_stages((1, 1, 1), (2, 8, 32), first=1)
    )
)
