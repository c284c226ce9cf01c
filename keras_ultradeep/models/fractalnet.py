"""FractalNet (Larsson, Maire, Shakhnarovich, "FractalNet: Ultra-Deep Neural
Networks without Residuals", ICLR 2017), as the official code builds it.

A fractal block is defined by an expansion rule rather than by hand:

    f_1(z) = conv(z)
    f_{C+1}(z) = join(f_C(f_C(z)), conv(z))

so a block with C columns has columns of 1, 2, 4, ... 2^(C-1) conv units
(column 0 the shallowest, column C-1 the deepest) and ``2^C - 1`` units in all.
The join is the element-wise mean (:class:`~keras_ultradeep.layers.FractalJoin`);
joins that meet at the same depth are one join over every column reaching it.
``blocks`` fractal blocks follow each other with a 2x2 max-pool between them,
for a depth of ``blocks * 2^(C-1)`` convs. There are no residual connections:
the shallow columns give the deep ones short paths for training, and the
network learns without any identity shortcut.

As gustavla/fractalnet (the authors' Caffe generator and FractalJoin layer):

* every conv unit is Conv 3x3 (with bias) -> Dropout (the block's rate) ->
  BatchNorm -> ReLU. Caffe's BatchNorm has no Scale layer after it there, so
  ours has no learnable gamma/beta either (``center=False, scale=False``);
  epsilon is Caffe's 1e-5 (momentum: Keras' 0.99). Weights start as
  Caffe's "xavier" filler (uniform, variance 1/fan_in: Keras'
  ``lecun_uniform``);
* the last join of each block comes after the pooling: each column is
  max-pooled 2x2/2 on its own (``padding="same"``, Caffe's ceil-mode output
  size), then joined;
* the classifier is a fully connected layer on the 1x1x512 output of the
  fifth block (32x32 input): global average pooling and Dense, which at that
  size is the same map.

**Drop-path**, in training, chosen per batch (the paper mixes them 50/50,
``global_drop_path=0.5``): *local*, each join drops each input with
probability ``local_drop_path`` (0.15) and keeps at least one; *global*, one
column is chosen for the whole network (one
:class:`~keras_ultradeep.layers.DropPathSampler` at the input feeds every
join), which then computes that column alone. At inference every path is
joined, deterministically. Dropout per block is (0, 0.1, 0.2, 0.3, 0.4).

:func:`fractal_column` extracts column c as a plain network sharing the
model's layers, for the paper's "deepest column alone" results.

Variants: ``fractalnet20`` (C=3, B=5, 64-128-256-512-512; 20 layers, the
paper's CIFAR model) and ``fractalnet40`` (C=4, B=5; 40 layers).

**Parameter counts.** ``fractalnet20`` with 100 classes has 33,760,484
trainable parameters, exactly the official Caffe network (conv weights
33,698,880, conv biases 10,304, classifier 51,300; BatchNorm without gamma and
beta), plus 20,608 BatchNorm moving statistics. The paper prints 38.6M for it;
no bias/BatchNorm convention reaches that (all biases and BN parameters
together are about 31k, the gap 4.8M), an independent reimplementation
(khanrc/pt.fractalnet) reports the same 33.7M vs 38.6M mismatch, and the
38.6M is unexplained: we build the released architecture. With 10 classes:
33,714,314. ``fractalnet40`` (no published count) has 76,130,724 trainable
parameters with 100 classes (76,084,554 with 10).
"""

from __future__ import annotations

import re

import keras
from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import DropPathSampler, FractalJoin
from keras_ultradeep.models.blocks import block_stages

__all__ = ["FractalNet", "fractal_column", "fractal_expansion"]

DEFAULT_SIZE = 32  # CIFAR
BN_EPSILON = 1e-5  # Caffe's default
KERNEL_INITIALIZER = "lecun_uniform"  # Caffe's "xavier" filler (fan_in, uniform)


# ----------------------------------------------------------------------- blocks


def conv_unit(x, filters, dropout_rate, name):
    """Conv 3x3 (bias) ``{name}_conv``, Dropout ``_drop`` (if any), BatchNorm
    without gamma/beta ``_bn`` and ReLU ``_relu``: the official unit."""
    x = layers.Conv2D(
        filters, 3, padding="same", kernel_initializer=KERNEL_INITIALIZER, name=f"{name}_conv"
    )(x)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"{name}_drop")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, center=False, scale=False, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def fractal_expansion(z, columns, unit, join, *, total_columns=None, depth=0):
    """The expansion rule f_{C+1}(z) = join(f_C(f_C(z)), conv(z)), recursively.

    Returns the C columns' outputs, shallowest first, *before* their final
    join (which the caller makes: after pooling, in a FractalNet block).

    Args:
        z: the block input.
        columns: C, the columns of this (sub-)fractal: its columns are the
            deepest C of the block's ``total_columns``.
        unit: ``unit(x, column, index) -> tensor``, conv unit ``index``
            (1-based) of column ``column`` (0 the shallowest of the block).
        join: ``join(tensors, columns, depth) -> tensor``, the mean of the
            given columns after ``depth`` units of the deepest column.
        depth: the depth of ``z`` in units of the deepest column.
    """
    total_columns = columns if total_columns is None else total_columns
    shallowest = total_columns - columns  # the column of this sub-fractal's conv(z)
    if columns == 1:
        return [unit(z, shallowest, depth + 1)]
    half = 2 ** (columns - 2)  # the depth of f_{C-1}
    first = fractal_expansion(z, columns - 1, unit, join, total_columns=total_columns, depth=depth)
    if len(first) > 1:
        first = [join(first, range(shallowest + 1, total_columns), depth + half)]
    second = fractal_expansion(
        first[0], columns - 1, unit, join, total_columns=total_columns, depth=depth + half
    )
    # A unit of column c spans 2^(C-1-c) units of the deepest column; conv(z) ends with this sub-fractal.
    index = (depth + 2 * half) // 2 ** (total_columns - 1 - shallowest)
    return [unit(z, shallowest, index)] + second


def fractal_block(x, block, *, columns, filters, dropout_rate, local_drop_path, selection, seed):
    """Fractal block ``conv{block}``: units ``conv{block}_col{c}_{i}``, inner
    joins ``conv{block}_block{d}_out`` (d: their depth in deepest-column
    units), per-column pools ``conv{block}_col{c}_pool`` and the final join
    ``conv{block}_block{2^(C-1)}_out``."""
    prefix = f"conv{block}"

    def join_seed(depth):
        return None if seed is None else seed + 1000 * block + depth

    def unit(z, column, index):
        return conv_unit(z, filters, dropout_rate, f"{prefix}_col{column}_{index}")

    def join(tensors, joined_columns, depth):
        return FractalJoin(
            local_drop_path, columns=list(joined_columns), seed=join_seed(depth),
            name=f"{prefix}_block{depth}_out",
        )(list(tensors), selection=selection)

    outputs = fractal_expansion(x, columns, unit, join)
    pooled = [
        layers.MaxPooling2D(2, padding="same", name=f"{prefix}_col{c}_pool")(y) for c, y in enumerate(outputs)
    ]
    return join(pooled, range(columns), 2 ** (columns - 1))


# ------------------------------------------------------------------------ knobs


def _check_knobs(columns, blocks, filters, dropout_rates, local_drop_path, global_drop_path, seed):
    checks.positive_int(columns, "columns")
    checks.positive_int(blocks, "blocks")
    if filters is None:
        filters = tuple(min(64 * 2**b, 512) for b in range(blocks))
    if dropout_rates is None:
        dropout_rates = tuple(round(0.1 * b, 1) for b in range(blocks))
    filters = checks.positive_ints(filters, "filters", length=blocks, what="positive integers, one per block")
    if not isinstance(dropout_rates, (tuple, list)) or len(dropout_rates) != blocks:
        raise ValueError(f"dropout_rates: expected {blocks} rates, one per block, got {dropout_rates!r}")
    dropout_rates = tuple(
        checks.number_in(rate, f"dropout_rates[{i}]", 0, 1, high_open=True) for i, rate in enumerate(dropout_rates)
    )
    checks.number_in(local_drop_path, "local_drop_path", 0, 1, high_open=True)
    checks.number_in(global_drop_path, "global_drop_path", 0, 1)
    checks.optional_int(seed, "seed")
    return filters, dropout_rates


# --------------------------------------------------------------------- variants

_OFFICIAL = dict(blocks=5, filters=(64, 128, 256, 512, 512))
VARIANTS = {
    "fractalnet20": dict(columns=3, **_OFFICIAL),
    "fractalnet40": dict(columns=4, **_OFFICIAL),
}


def FractalNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    *,
    columns=3,
    blocks=5,
    filters=None,
    dropout_rates=None,
    local_drop_path=0.15,
    global_drop_path=0.5,
    seed=None,
    model_name=None,
):
    """A FractalNet: ``blocks`` fractal blocks of ``columns`` columns.

    Args (beyond keras.applications'):
        columns: C; each block's deepest column has 2^(C-1) conv units.
        blocks: B, fractal blocks, each followed by a 2x2 max-pool (so the
            input side must be at least 2^B).
        filters: the conv width of each block; None gives the official
            64, 128, 256, 512, 512 (doubling from 64, at most 512).
        dropout_rates: the dropout rate of each block's convs; None gives the
            paper's 0, 0.1, 0.2, 0.3, 0.4 (0.1 more per block); zeros for its
            no-dropout results.
        local_drop_path: in a local batch, the probability that a join drops
            each input (0.15).
        global_drop_path: the fraction of batches that are global: one
            column for the whole network (0.5). 0 and 0 disable drop-path.
        seed: an integer seed for the drop-path draws, or None.
    """
    filters, dropout_rates = _check_knobs(
        columns, blocks, filters, dropout_rates, local_drop_path, global_drop_path, seed
    )
    model_name = model_name or "fractalnet"
    if name is None:
        name = f"fractalnet{blocks * 2 ** (columns - 1)}"

    def features(x):
        selection = None
        if global_drop_path > 0:
            selection = DropPathSampler(columns, global_drop_path, seed=seed, name="drop_path")(x)
        for b, (width, rate) in enumerate(zip(filters, dropout_rates)):
            x = fractal_block(
                x, b + 1, columns=columns, filters=width, dropout_rate=rate,
                local_drop_path=local_drop_path, selection=selection, seed=seed,
            )
        return x

    return contract.application(
        features,
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=2**blocks,
        **contract.keras_arguments(locals()),
    )


registry.register_variants(
    {variant: (FractalNet, dict(config, model_name=variant)) for variant, config in VARIANTS.items()},
    family="fractalnet",
    default_size=DEFAULT_SIZE,
    min_size=2 ** _OFFICIAL["blocks"],
)
# A block ends at the join of its pooled columns, 2^(C-1) deepest-column units deep.
FAMILY = registry.declare(
    registry.Family(
        "fractalnet", DEFAULT_SIZE, 2 ** _OFFICIAL["blocks"], VARIANTS,
        stages=lambda config: block_stages(
            (2 ** (config["columns"] - 1),) * config["blocks"],
            [2 ** (b + 1) for b in range(config["blocks"])], first=1,
        ),
    )
)


# ---------------------------------------------------------------- one column

_UNIT = re.compile(r"conv(\d+)_col(\d+)_(\d+)_conv")


def fractal_column(model, column=-1, name=None):
    """Column ``column`` of a FractalNet as a plain network (no joins).

    The paper's "deepest column alone" evaluation: the returned model chains
    the column's conv units and pools through every block, then the model's
    head. It *shares* the model's layers, and so their weights (including the
    BatchNorm statistics): training either trains both. In a global
    drop-path batch that picks this column the FractalNet computes exactly
    this network.

    Args:
        model: a model built by :func:`FractalNet` (or one of its variants).
        column: 0 (the shallowest, one conv per block) to C-1 (the deepest,
            2^(C-1) convs); negative values count from the deepest (-1).
        name: the new model's name; default ``{model.name}_column{c}``.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model: expected a FractalNet keras.Model, got {model!r}")
    matches = (_UNIT.fullmatch(layer.name) for layer in model.layers)
    units = [tuple(int(g) for g in match.groups()) for match in matches if match]
    if not units:
        raise ValueError(f"model: {model.name!r} has no FractalNet units named conv{{b}}_col{{c}}_{{i}}_conv")
    blocks = max(b for b, _, _ in units)
    columns = max(c for _, c, _ in units) + 1
    checks.integer(column, "column", minimum=-columns, maximum=columns - 1)
    column %= columns
    names = {layer.name for layer in model.layers}

    x = model.get_layer(f"conv1_col{column}_1_conv").input
    for b in range(1, blocks + 1):
        for i in range(1, 2**column + 1):
            for part in ("conv", "drop", "bn", "relu"):
                if f"conv{b}_col{column}_{i}_{part}" in names:
                    x = model.get_layer(f"conv{b}_col{column}_{i}_{part}")(x)
        x = model.get_layer(f"conv{b}_col{column}_pool")(x)
    # The head: whatever follows the last block's join, in order.
    last_join = model.get_layer(f"conv{blocks}_block{2 ** (columns - 1)}_out")
    for layer in model.layers[model.layers.index(last_join) + 1:]:
        x = layer(x)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, x, name=name or f"{model.name}_column{column}")
