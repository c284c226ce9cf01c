"""Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2 (Szegedy, Ioffe,
Vanhoucke, Alemi, AAAI 2017).

"Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning": three networks built from the same parts, all on a 299x299 input
with grids of 35x35, 17x17 and 8x8 maps:

* **Inception-v4**, a pure Inception network: a stem of parallel
  conv/pool branches, 4 Inception-A, Reduction-A, 7 Inception-B, Reduction-B
  and 3 Inception-C blocks, each a concatenation of factorised convolution
  towers (1x7/7x1, 1x3/3x1) and an average-pool branch.
* **Inception-ResNet-v1 and -v2**, where each block's towers are concatenated,
  expanded back to the block's width by a linear 1x1 conv with a bias (the
  "filter expansion", no BatchNorm) and added to the block's input. The paper
  found that very wide residual networks "died" early in training unless the
  residual was **scaled down before the addition** (by 0.1 to 0.3); the
  released models use 0.17 (35x35), 0.10 (17x17) and 0.20 (8x8),
  ``residual_scales`` here, applied by :class:`~keras_ultradeep.layers.ResidualScaling`
  (``shortcut + scale * residual``, no Lambda layer). Reduction-A has the
  filters (k, l, m, n) of the paper's Table 1.

Every conv but the residual 1x1s is conv (no bias) - BatchNorm (epsilon 1e-3)
- ReLU; stride-2 convs and pools are VALID, others SAME (symmetric at stride 1).

The structures follow the code of the released checkpoints where the paper's
figures disagree with it:

* **Inception-ResNet-v2 is TF-slim's** (= timm's = keras.applications'):
  Inception-v3's stem with a Mixed_5b block (35x35x320, not the paper's 384),
  10 / 20 / 10 blocks (the paper: 5 / 10 / 5), widths 320 / 1088 / 2080 (the
  paper's figures say 384 / 1152-1154 / 2048-2146, inconsistently), a last
  8x8 block with scale 1.0 and no ReLU, and a 1x1 conv to 1536 (``conv_7b``)
  before the pooling. ``InceptionResNetV2()`` is keras.applications' model
  layer for layer (registry ``inception_resnet_v2_keras``): the same layer graph and order, BatchNorm without gamma
  (``batch_norm_scale=False``), no dropout, and keras.applications' names where
  it names layers (``mixed_5b``, ``block35_1_conv``, ``block17_20_ac``,
  ``conv_7b``, ``predictions``...), so its weights files load unchanged.
  timm's ``inception_resnet_v2`` (Cadene's port of the TF-slim checkpoint)
  keeps BatchNorm's gamma: registry ``inception_resnet_v2``
  (``batch_norm_scale=True``), whose checkpoints convert with
  ``keras_ultradeep.convert``.
* **Inception-v4 is TF-slim's** (= timm's ``inception_v4``): the code's
  Inception-B has its 256-map 7x1 where the paper's Fig. 5 draws a 1x7, and
  the stem's 192-map 3x3 strides (Fig. 3 does not mark it, but 35x35 needs
  it; tensorflow/models#7041). BatchNorm keeps gamma as in timm.
* **Inception-ResNet-v1** is not in timm or keras.applications; it follows
  the TF-slim code of davidsandberg/facenet (which says it implements the
  paper): the v1 stem ending in a 3x3/2 conv to 35x35x256, 5 / 10 / 5 blocks of
  width 256 / 896 / 1792, Reduction-A (k, l, m, n) = (192, 192, 256, 384).
  facenet appends a sixth, linear 8x8 block (``blocks=(5, 10, 6),
  linear_final_block=True`` builds it); the paper's 5 / 10 / 5 is the
  default. **Not cross-checked**: no reference implementation could be run and
  no published parameter count exists, so the count below is derived (it
  equals an independent count of the same structure in the project's
  ARCHITECTURE_FACTS, part 2 section 3b), and the branch widths rest on
  facenet's code alone, not on the paper's figures.

The paper's ImageNet results (single crop, top-1 / top-5 error): Inception-v4
20.0 / 5.0, Inception-ResNet-v1 21.3 / 5.5, Inception-ResNet-v2 19.9 / 4.9.
The parameter counts of each registered model, with their references, and
the layer names (keras.applications' ``conv2d_bn`` convention; blocks
``block35_{b}``, ``block17_{b}``, ``block8_{b}``, ``mixed_6a``/``mixed_7a``
for the reductions) are tabulated in the docs page ``docs/inception_v4.md``.
"""

from __future__ import annotations

import functools
import math
import string

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import ResidualScaling

__all__ = [
    "InceptionV4",
    "InceptionResNetV1",
    "InceptionResNetV2",
    "preprocess_input",
    "decode_predictions",
]

BN_EPSILON = 1e-3  # TF-slim's, kept by timm and keras.applications
DEFAULT_SIZE = 299
MIN_SIZE = 75  # the smallest side for which every VALID reduction leaves a map
RESIDUAL_SCALES = (0.17, 0.10, 0.20)  # the released checkpoints' A, B, C scales
VALID = "valid"

# ------------------------------------------------------------------ the parts
#
# A tower is a list of steps: a conv ``(filters, kernel_size[, strides[, padding]])``
# (SAME and stride 1 by default; strided convs are VALID), "max" (3x3/2 VALID
# max-pool), "avg" (3x3/1 SAME average pool, which like TF and timm's
# count_include_pad=False averages only the real pixels), or a list of convs
# applied in parallel to the same input and concatenated (Inception-C's splits).


def conv_bn(x, filters, kernel_size, name, *, norm, strides=1, padding=None):
    """A bias-free conv ``name``, BatchNorm ``{name}_bn`` and ReLU ``{name}_ac``.

    ``padding`` defaults to VALID for strided convs (every one in these
    networks is), SAME otherwise.
    """
    if padding is None:
        padding = VALID if strides > 1 else "same"
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False, name=name
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn", **norm)(x)
    return layers.Activation("relu", name=f"{name}_ac")(x)


def _conv_step(x, step, name, norm):
    filters, kernel_size, *rest = step
    strides = rest[0] if rest else 1
    padding = rest[1] if len(rest) > 1 else None
    return conv_bn(x, filters, kernel_size, name, norm=norm, strides=strides, padding=padding)


def tower(x, steps, name, norm):
    """The steps of one branch: convs ``{name}_0``, ``{name}_1``..., a pool ``{name}_pool``."""
    index = 0
    for step in steps:
        if step == "max":
            x = layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
        elif step == "avg":
            x = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
        elif isinstance(step, list):
            parts = [
                _conv_step(x, conv, f"{name}_{index}{letter}", norm)
                for letter, conv in zip(string.ascii_lowercase, step)
            ]
            x = layers.Concatenate(name=f"{name}_{index}")(parts)
            index += 1
        else:
            x = _conv_step(x, step, f"{name}_{index}", norm)
            index += 1
    return x


def mixed(x, branches, name, norm, *, output):
    """Parallel towers ``{name}_branch{i}`` concatenated into the layer ``output``."""
    towers = [tower(x, steps, f"{name}_branch{i}", norm) for i, steps in enumerate(branches)]
    return layers.Concatenate(name=output)(towers)


def inception_resnet_block(x, branches, name, *, scale, activation, norm):
    """An Inception-ResNet block: towers, a linear 1x1 back to the input's width
    (with bias, no BatchNorm), ``x + scale * residual`` and (unless
    ``activation`` is False) a ReLU."""
    branched = mixed(x, branches, name, norm, output=f"{name}_mixed")
    residual = layers.Conv2D(x.shape[-1], 1, padding="same", use_bias=True, name=f"{name}_conv")(
        branched
    )
    x = ResidualScaling(scale, name=f"{name}_add")([x, residual])
    if activation:
        x = layers.Activation("relu", name=f"{name}_ac")(x)
    return x


def reduction_a(k, l, m, n):
    """The paper's Reduction-A (Table 1's k, l, m, n): 35x35 to 17x17."""
    return [[(n, 3, 2)], [(k, 1), (l, 3), (m, 3, 2)], ["max"]]


def reduction_b(first, second, third):
    """The Inception-ResNet Reduction-B: three towers behind 1x1s to 256 maps,
    each ending in a 3x3/2 (the third after a 3x3), and a max-pool."""
    return [
        [(256, 1), (first, 3, 2)],
        [(256, 1), (second, 3, 2)],
        [(256, 1), (third[0], 3), (third[1], 3, 2)],
        ["max"],
    ]


def shared_stem(x, norm):
    """The first three convs of all three networks: 299x299 to 147x147x64."""
    x = conv_bn(x, 32, 3, "conv_1a", norm=norm, strides=2)
    x = conv_bn(x, 32, 3, "conv_2a", norm=norm, padding=VALID)
    return conv_bn(x, 64, 3, "conv_2b", norm=norm)


def residual_stem(x, norm):
    """Inception-v3's stem (Inception-ResNet-v1 and -v2): 71x71x192."""
    x = shared_stem(x, norm)
    x = layers.MaxPooling2D(3, strides=2, name="pool_3a")(x)
    x = conv_bn(x, 80, 1, "conv_3b", norm=norm, padding=VALID)
    return conv_bn(x, 192, 3, "conv_4a", norm=norm, padding=VALID)


# ------------------------------------------------------------ Inception-v4

V4_STEM = {
    "mixed_3a": [["max"], [(96, 3, 2)]],
    "mixed_4a": [
        [(64, 1), (96, 3, 1, VALID)],
        [(64, 1), (64, (1, 7)), (64, (7, 1)), (96, 3, 1, VALID)],
    ],
    "mixed_5a": [[(192, 3, 2)], ["max"]],
}
V4_BLOCKS = {  # Inception-A, -B, -C
    "block35": [[(96, 1)], [(64, 1), (96, 3)], [(64, 1), (96, 3), (96, 3)], ["avg", (96, 1)]],
    "block17": [
        [(384, 1)],
        [(192, 1), (224, (1, 7)), (256, (7, 1))],
        [(192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)), (256, (1, 7))],
        ["avg", (128, 1)],
    ],
    "block8": [
        [(256, 1)],
        [(384, 1), [(256, (1, 3)), (256, (3, 1))]],
        [(384, 1), (448, (3, 1)), (512, (1, 3)), [(256, (1, 3)), (256, (3, 1))]],
        ["avg", (256, 1)],
    ],
}
V4_REDUCTIONS = {  # after the blocks of a grid
    "block35": ("mixed_6a", reduction_a(192, 224, 256, 384)),
    "block17": (
        "mixed_7a",
        [[(192, 1), (192, 3, 2)], [(256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2)], ["max"]],
    ),
}


def inception_v4_features(blocks, norm):
    def features(x):
        x = shared_stem(x, norm)
        for name, branches in V4_STEM.items():
            x = mixed(x, branches, name, norm, output=name)
        for (grid, branches), count in zip(V4_BLOCKS.items(), blocks):
            for b in range(1, count + 1):
                x = mixed(x, branches, f"{grid}_{b}", norm, output=f"{grid}_{b}_concat")
            if grid in V4_REDUCTIONS:
                name, reduction = V4_REDUCTIONS[grid]
                x = mixed(x, reduction, name, norm, output=name)
        return x

    return features


# --------------------------------------------------- Inception-ResNet-v1/v2

IRV1 = {
    "block35": [[(32, 1)], [(32, 1), (32, 3)], [(32, 1), (32, 3), (32, 3)]],
    "mixed_6a": reduction_a(192, 192, 256, 384),
    "block17": [[(128, 1)], [(128, 1), (128, (1, 7)), (128, (7, 1))]],
    "mixed_7a": reduction_b(384, 256, (256, 256)),
    "block8": [[(192, 1)], [(192, 1), (192, (1, 3)), (192, (3, 1))]],
}
IRV2 = {
    "mixed_5b": [[(96, 1)], [(48, 1), (64, 5)], [(64, 1), (96, 3), (96, 3)], ["avg", (64, 1)]],
    "block35": [[(32, 1)], [(32, 1), (32, 3)], [(32, 1), (48, 3), (64, 3)]],
    "mixed_6a": reduction_a(256, 256, 384, 384),
    "block17": [[(192, 1)], [(128, 1), (160, (1, 7)), (192, (7, 1))]],
    "mixed_7a": reduction_b(384, 288, (288, 320)),
    "block8": [[(192, 1)], [(192, 1), (224, (1, 3)), (256, (3, 1))]],
}
IRV2_FINAL_FILTERS = 1536  # conv_7b


def inception_resnet_features(version, blocks, residual_scales, linear_final_block, norm):
    parts = IRV1 if version == 1 else IRV2

    def features(x):
        x = residual_stem(x, norm)
        if version == 1:
            x = conv_bn(x, 256, 3, "conv_4b", norm=norm, strides=2)
        else:
            x = layers.MaxPooling2D(3, strides=2, name="pool_5a")(x)
            x = mixed(x, parts["mixed_5b"], "mixed_5b", norm, output="mixed_5b")
        grids = ("block35", "block17", "block8")
        reductions = ("mixed_6a", "mixed_7a", None)
        for grid, count, scale, reduction in zip(grids, blocks, residual_scales, reductions):
            for b in range(1, count + 1):
                last = linear_final_block and grid == "block8" and b == count
                x = inception_resnet_block(
                    x, parts[grid], f"{grid}_{b}", scale=1.0 if last else scale, activation=not last,
                    norm=norm,
                )
            if reduction:
                x = mixed(x, parts[reduction], reduction, norm, output=reduction)
        if version == 2:
            x = conv_bn(x, IRV2_FINAL_FILTERS, 1, "conv_7b", norm=norm)
        return x

    return features


# ---------------------------------------------------------------------- knobs


def _check_blocks(blocks):
    return checks.positive_ints(blocks, "blocks", length=3, what="positive block counts (35x35, 17x17, 8x8 grids)")


def _check_scales(residual_scales):
    if (
        not isinstance(residual_scales, (tuple, list))
        or len(residual_scales) != 3
        or any(
            isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0
            for s in residual_scales
        )
    ):
        raise ValueError(
            "residual_scales: expected 3 positive numbers (the A, B and C blocks' scales, "
            f"e.g. {RESIDUAL_SCALES}), got {residual_scales!r}"
        )
    return tuple(float(s) for s in residual_scales)


def _check_common(dropout_rate, batch_norm_epsilon, batch_norm_scale):
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")
    checks.boolean(batch_norm_scale, "batch_norm_scale")
    return dict(epsilon=float(batch_norm_epsilon), scale=batch_norm_scale)


def _head(dropout_rate):
    return functools.partial(contract.classifier_head, dropout_rate=float(dropout_rate))


# ------------------------------------------------------------------- builders


def InceptionV4(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="inception_v4",
    *,
    blocks=(4, 7, 3),
    dropout_rate=0.2,
    batch_norm_epsilon=BN_EPSILON,
    batch_norm_scale=True,
):
    """Inception-v4 (TF-slim's and timm's ``inception_v4``).

    Args (beyond keras.applications'):
        blocks: the number of Inception-A, -B and -C blocks, ``(4, 7, 3)``.
        dropout_rate: before the classifier; 0.2 (TF-slim's keep 0.8).
        batch_norm_epsilon: 1e-3, TF-slim's and timm's.
        batch_norm_scale: BatchNorm's gamma; timm's checkpoints have it.
    """
    blocks = _check_blocks(blocks)
    norm = _check_common(dropout_rate, batch_norm_epsilon, batch_norm_scale)
    model_name = "inception_v4" if blocks == (4, 7, 3) and batch_norm_scale else "inception_v4_custom"
    return contract.application(
        inception_v4_features(blocks, norm),
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=_head(dropout_rate),
        **contract.keras_arguments(locals()),
    )


def InceptionResNetV1(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="inception_resnet_v1",
    *,
    blocks=(5, 10, 5),
    residual_scales=RESIDUAL_SCALES,
    linear_final_block=False,
    dropout_rate=0.2,
    batch_norm_epsilon=BN_EPSILON,
    batch_norm_scale=True,
):
    """Inception-ResNet-v1, as davidsandberg/facenet codes the paper's network.

    Not cross-checked against a runnable reference (none exists in timm or
    keras.applications): see the module docstring.

    Args (beyond keras.applications'):
        blocks: the number of Inception-ResNet-A, -B and -C blocks; the
            paper's ``(5, 10, 5)``.
        residual_scales: the A, B and C blocks' residual scales, ``(0.17, 0.10, 0.20)``.
        linear_final_block: the last C block with scale 1.0 and no ReLU;
            facenet's model is ``blocks=(5, 10, 6), linear_final_block=True``.
        dropout_rate: before the classifier; 0.2 (keep 0.8).
        batch_norm_epsilon: 1e-3 (facenet's).
        batch_norm_scale: BatchNorm's gamma (facenet's TF-slim BatchNorm has
            none; kept by default like the timm-form models here).
    """
    blocks = _check_blocks(blocks)
    residual_scales = _check_scales(residual_scales)
    checks.boolean(linear_final_block, "linear_final_block")
    norm = _check_common(dropout_rate, batch_norm_epsilon, batch_norm_scale)
    default = blocks == (5, 10, 5) and not linear_final_block and batch_norm_scale
    return contract.application(
        inception_resnet_features(1, blocks, residual_scales, linear_final_block, norm),
        model_name="inception_resnet_v1" if default else "inception_resnet_v1_custom",
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=_head(dropout_rate),
        **contract.keras_arguments(locals()),
    )


def InceptionResNetV2(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="inception_resnet_v2",
    *,
    blocks=(10, 20, 10),
    residual_scales=RESIDUAL_SCALES,
    linear_final_block=True,
    dropout_rate=0.0,
    batch_norm_epsilon=BN_EPSILON,
    batch_norm_scale=False,
):
    """Inception-ResNet-v2: keras.applications' ``InceptionResNetV2`` (weights
    files load unchanged), or timm's with ``batch_norm_scale=True`` (registry
    ``inception_resnet_v2``).

    Args (beyond keras.applications'):
        blocks: the number of Inception-ResNet-A, -B and -C blocks,
            ``(10, 20, 10)`` (the released model's; the paper says 5, 10, 5).
        residual_scales: the A, B and C blocks' residual scales, ``(0.17, 0.10, 0.20)``.
        linear_final_block: the last C block with scale 1.0 and no ReLU, as
            in every released model.
        dropout_rate: before the classifier; keras.applications has none (0.0),
            TF-slim trained with 0.2.
        batch_norm_epsilon: 1e-3, TF-slim's, keras.applications' and timm's.
        batch_norm_scale: BatchNorm's gamma: False in keras.applications'
            model (and TF-slim's checkpoint), True in timm's.
    """
    blocks = _check_blocks(blocks)
    residual_scales = _check_scales(residual_scales)
    checks.boolean(linear_final_block, "linear_final_block")
    norm = _check_common(dropout_rate, batch_norm_epsilon, batch_norm_scale)
    if blocks == (10, 20, 10) and linear_final_block:
        model_name = "inception_resnet_v2" if batch_norm_scale else "inception_resnet_v2_keras"
    else:
        model_name = "inception_resnet_v2_custom"
    return contract.application(
        inception_resnet_features(2, blocks, residual_scales, linear_final_block, norm),
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=_head(dropout_rate),
        **contract.keras_arguments(locals()),
    )


_SIZES = dict(default_size=DEFAULT_SIZE, min_size=MIN_SIZE)
registry.register("inception_v4", InceptionV4, family="inception_v4", **_SIZES)
registry.register("inception_resnet_v1", InceptionResNetV1, family="inception_resnet_v1", **_SIZES)
registry.register("inception_resnet_v2_keras", InceptionResNetV2, family="inception_resnet_v2", **_SIZES)
# timm's name is timm's model (BatchNorm with gamma), so that
# "inception_resnet_v2.<tag>" is timm's <tag>; keras.applications' form is
# the builder InceptionResNetV2 (registered as inception_resnet_v2_keras).
registry.register(
    "inception_resnet_v2", InceptionResNetV2, family="inception_resnet_v2",
    name="inception_resnet_v2", batch_norm_scale=True, weights=None, **_SIZES,
)


# Each grid's last block (35x35, 17x17, 8x8) at its nominal reduction: the
# valid-padded stem makes measured ones depend on the input size. IRv2's last
# block passes keras.applications' final 1x1 conv, conv_7b.
FAMILIES = tuple(
    registry.declare(registry.Family(
        family, DEFAULT_SIZE, MIN_SIZE, stages=lambda config, outputs=outputs: tuple(zip(outputs, (8, 16, 32)))
    ))
    for family, outputs in (
        ("inception_v4", ("block35_4_concat", "block17_7_concat", "block8_3_concat")),
        ("inception_resnet_v1", ("block35_5_ac", "block17_10_ac", "block8_5_ac")),
        ("inception_resnet_v2", ("block35_10_ac", "block17_20_ac", "conv_7b_ac")),
    )
)


# -------------------------------------------------------------- preprocessing


def preprocess_input(x, data_format=None):
    """Pixels in [0, 255] to [-1, 1] (keras.applications' mode "tf"; timm's
    mean = std = 0.5), what every checkpoint of these networks expects."""
    return contract.preprocess_input(x, data_format, mode="tf")


decode_predictions = contract.decode_predictions
