"""Convolutional highway networks for CIFAR (Srivastava, Greff, Schmidhuber,
"Training Very Deep Networks", NIPS 2015), as the official code builds them.

Each stage is a plain 3x3 conv with ReLU (to set the width) followed by
highway layers, y = H(x) T(x) + x (1 - T(x)) (:class:`~keras_ultradeep.layers.HighwayConv2D`);
stages are separated by 2x2 max-pooling and dropout. The head is a 1x1 conv
with ReLU to 100 maps, global average pooling, dropout and the classifier. No
BatchNorm anywhere: the gates alone make the depth trainable.

``highway19_cifar`` is the official 19-layer CIFAR-10 network
(flukeskywalker/highway-networks, ``cifar10-19layers``): stages of 32, 80 and
128 maps with 4, 5 and 5 highway layers, 2,256,838 parameters ("2.3M"). The
paper's 32-layer network (about 1.25M) is not in the official code and its
layer list could not be confirmed, so it is not registered.
"""

from __future__ import annotations

import functools

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import HighwayConv2D
from keras_ultradeep.models.blocks import block_stages

__all__ = ["HighwayNetCIFAR"]

DEFAULT_SIZE = 32
MIN_SIZE = 8
STAGES = ((32, 4), (80, 5), (128, 5))  # the official 19-layer net: (filters, highway layers)


def _check_stages(stages):
    if not isinstance(stages, (tuple, list)) or not stages or not all(
        isinstance(stage, (tuple, list))
        and len(stage) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in stage)
        and stage[0] >= 1
        and stage[1] >= 0
        for stage in stages
    ):
        raise ValueError(
            f"stages: expected (filters, highway layers) pairs, e.g. ((32, 4), (80, 5)), got {stages!r}"
        )


def HighwayNetCIFAR(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="highway19_cifar",
    *,
    stages=STAGES,
    head_filters=100,
    dropout_rate=0.2,
    gate_bias=-2.0,
):
    """A convolutional highway network for CIFAR.

    Args (beyond keras.applications'):
        stages: ``(filters, highway layers)`` per stage; a plain 3x3 conv sets
            each stage's width, and every stage but the last ends in a 2x2
            max-pool.
        head_filters: the maps of the 1x1 conv before the pool (100 in the
            official nets).
        dropout_rate: dropout on the input image, after each pool and before
            the classifier (0.2).
        gate_bias: the transform gates' initial bias (negative: carry).
    """
    _check_stages(stages)
    checks.positive_int(head_filters, "head_filters")
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)

    def features(x):
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="input_drop")(x)
        for s, (filters, count) in enumerate(stages):
            stage = f"conv{s + 2}"
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{stage}_plain_conv")(x)
            for i in range(count):
                x = HighwayConv2D(3, gate_bias=gate_bias, name=f"{stage}_block{i + 1}_out")(x)
            if s < len(stages) - 1:
                x = layers.MaxPooling2D(2, name=f"{stage}_pool")(x)
                if dropout_rate:
                    x = layers.Dropout(dropout_rate, name=f"{stage}_drop")(x)
        return layers.Conv2D(head_filters, 1, activation="relu", name="head_conv")(x)

    return contract.application(
        features,
        model_name="highway_cifar",
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=functools.partial(contract.classifier_head, dropout_rate=dropout_rate),
        **contract.keras_arguments(locals()),
    )


registry.register_variants(
    {"highway19_cifar": (HighwayNetCIFAR, {})},
    family="highway",
    default_size=DEFAULT_SIZE,
    min_size=MIN_SIZE,
)
FAMILY = registry.declare(
    registry.Family(
        "highway", DEFAULT_SIZE, MIN_SIZE,
        # Every stage but the last ends in a 2x2 max-pool, after its output.
        stages=lambda config: block_stages(
            [count for _, count in config.get("stages", STAGES)],
            [2**s for s in range(len(config.get("stages", STAGES)))],
        ),
    )
)
