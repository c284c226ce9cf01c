"""Dilated Residual Networks (Yu, Koltun, Funkhouser, CVPR 2017), as the official
code (fyu/drn) builds them.

A ResNet loses spatial detail by striding to 1/32 of its input. DRNs stop
striding at 1/8 and dilate the later convs instead (by 2, then 4), so the
receptive field still grows while the last feature map keeps 8x more pixels:
``include_top=False`` returns that stride-8 map, for dense prediction.

* **DRN-A-50**: ResNet-50 (torchvision's form) with stages 4 and 5 unstrided
  and dilated 2 and 4 (their first blocks keep dilation 1, as in the code).
* **DRN-C** (26/42/58) removes the gridding artifacts of dilation: a 7x7
  stride-1 stem without max-pool, residual basic blocks at levels 1-2 (16 and
  32 maps), ResNet stages at levels 3-6 (dilation 2 and 4 at 5 and 6), and two
  levels (7, 8) of non-residual blocks with decreasing dilation 2, 1.
* **DRN-D** (22/38/54/105) replaces the basic blocks of levels 1, 2, 7 and 8
  with single conv-BN-ReLU layers.

Layers are named ``level{n}_block{b}_...`` (DRN-A: ``conv{s}_block{b}_...`` as
ResNet). The classifier is global average pooling and a dense layer: the
code's AvgPool(28) and 1x1 conv at its 224x224 input.
"""

from __future__ import annotations

import itertools
import operator

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.models.blocks import EXPANSION, block_stages, conv_bn, projection_shortcut, stem
from keras_ultradeep.models.blocks import bottleneck_block as resnet_bottleneck

__all__ = ["DRN", "DRNA50", "preprocess_input", "decode_predictions"]

BN_EPSILON = 1e-5  # PyTorch's
CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
DILATIONS = (1, 1, 1, 1, 2, 4, 2, 1)
STRIDES = (1, 2, 2, 2, 1, 1, 1, 1)
DEFAULT_SIZE = 224
MIN_SIZE = 32
ARCHS = ("C", "D")


def _conv_bn(x, filters, kernel_size, name, *, strides=1, dilation=1):
    return conv_bn(
        x, filters, kernel_size, name, strides=strides, dilation=dilation, use_bias=False,
        bn_epsilon=BN_EPSILON,
    )


def _projection(x, filters, stride, name):
    return projection_shortcut(x, filters, stride, name, use_bias=False, bn_epsilon=BN_EPSILON)


def basic_block(x, planes, name, *, stride=1, dilations=(1, 1), residual=True):
    """3x3-BN-ReLU, 3x3-BN, (+ shortcut), ReLU; the first conv strides."""
    shortcut = _projection(x, planes, stride, name) if residual else None
    y = _conv_bn(x, planes, 3, f"{name}_1", strides=stride, dilation=dilations[0])
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv_bn(y, planes, 3, f"{name}_2", dilation=dilations[1])
    if residual:
        y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_block(x, planes, name, *, stride=1, dilations=(1, 1), residual=True):
    """1x1, 3x3 (strided and dilated), 1x1 to 4x planes, each with BN; (+ shortcut), ReLU."""
    del residual  # every bottleneck in the code is residual
    shortcut = _projection(x, EXPANSION * planes, stride, name)
    y = _conv_bn(x, planes, 1, f"{name}_1")
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv_bn(y, planes, 3, f"{name}_2", strides=stride, dilation=dilations[1])
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = _conv_bn(y, EXPANSION * planes, 1, f"{name}_3")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def conv_level(x, filters, name, *, stride=1, dilation=1):
    """DRN-D's plain level: one 3x3 conv-BN-ReLU."""
    x = _conv_bn(x, filters, 3, f"{name}_block1", strides=stride, dilation=dilation)
    return layers.Activation("relu", name=f"{name}_block1_out")(x)


def _level(x, level, count, block_fn, *, residual=True):
    """``count`` blocks of level ``level`` (1-based); the first strides."""
    index = level - 1
    dilation = DILATIONS[index]
    for i in range(count):
        x = block_fn(
            x, CHANNELS[index], f"level{level}_block{i + 1}",
            stride=STRIDES[index] if i == 0 else 1,
            # Dilated levels dilate both convs of every block, the first included.
            dilations=(dilation, dilation),
            residual=residual,
        )
    return x


def drn_features(arch, blocks, block):
    """The stem and the eight levels of DRN-C or DRN-D."""
    block_fn = bottleneck_block if block == "bottleneck" else basic_block

    def features(x):
        x = layers.Conv2D(16, 7, padding="same", use_bias=False, name="stem_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
        x = layers.Activation("relu", name="stem_relu")(x)
        for level in (1, 2):
            if arch == "C":
                x = _level(x, level, blocks[level - 1], basic_block)
            else:
                x = conv_level(x, CHANNELS[level - 1], f"level{level}", stride=STRIDES[level - 1])
        for level in (3, 4, 5, 6):
            x = _level(x, level, blocks[level - 1], block_fn)
        for level in (7, 8):
            if arch == "C":
                x = _level(x, level, blocks[level - 1], basic_block, residual=False)
            else:
                x = conv_level(x, CHANNELS[level - 1], f"level{level}", dilation=DILATIONS[level - 1])
        return x

    return features


VARIANTS = {
    "drn_c_26": dict(arch="C", blocks=(1, 1, 2, 2, 2, 2, 1, 1), block="basic"),
    "drn_c_42": dict(arch="C", blocks=(1, 1, 3, 4, 6, 3, 1, 1), block="basic"),
    "drn_c_58": dict(arch="C", blocks=(1, 1, 3, 4, 6, 3, 1, 1), block="bottleneck"),
    "drn_d_22": dict(arch="D", blocks=(1, 1, 2, 2, 2, 2, 1, 1), block="basic"),
    "drn_d_38": dict(arch="D", blocks=(1, 1, 3, 4, 6, 3, 1, 1), block="basic"),
    "drn_d_54": dict(arch="D", blocks=(1, 1, 3, 4, 6, 3, 1, 1), block="bottleneck"),
    "drn_d_105": dict(arch="D", blocks=(1, 1, 3, 4, 23, 3, 1, 1), block="bottleneck"),
}


def _check_knobs(arch, blocks, block):
    checks.one_of(arch, "arch", ARCHS)
    blocks = checks.positive_ints(blocks, "blocks", length=len(CHANNELS), what="positive block counts, one per level")
    if block not in ("basic", "bottleneck"):
        raise ValueError(f"block: expected 'basic' or 'bottleneck', got {block!r}")
    if arch == "D" and (blocks[0], blocks[1], blocks[6], blocks[7]) != (1, 1, 1, 1):
        raise ValueError("blocks: DRN-D's levels 1, 2, 7 and 8 are single convs; give them 1")


def DRN(
    arch="C",
    blocks=(1, 1, 2, 2, 2, 2, 1, 1),
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    block="basic",
    model_name=None,
):
    """DRN-C or DRN-D with ``blocks`` blocks in each of its eight levels.

    Args (beyond keras.applications'):
        arch: ``"C"`` or ``"D"``.
        blocks: blocks per level; levels 3-6 are the ResNet stages, DRN-D's
            levels 1, 2, 7 and 8 are single convs.
        block: ``"basic"`` or ``"bottleneck"`` for levels 3-6.
    """
    _check_knobs(arch, blocks, block)
    blocks = tuple(blocks)
    model_name = model_name or "drn"
    name = name or model_name
    return contract.application(
        drn_features(arch, blocks, block),
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


def _drn_a_features(x):
    x = stem(x, use_bias=False, bn_epsilon=BN_EPSILON)
    options = dict(form="timm", cardinality=1, bottleneck_width=64, use_bias=False,
                   bn_epsilon=BN_EPSILON, survival_prob=1.0)
    # (blocks, planes, stride, dilation of blocks after the first)
    for stage, (count, planes, stride, dilation) in enumerate(
        ((3, 64, 1, 1), (4, 128, 2, 1), (6, 256, 1, 2), (3, 512, 1, 4))
    ):
        for i in range(count):
            x = resnet_bottleneck(
                x, planes, stride if i == 0 else 1, f"conv{stage + 2}_block{i + 1}",
                dilation=1 if i == 0 else dilation, **options,
            )
    return x


def DRNA50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="drn_a_50",
):
    """DRN-A-50: ResNet-50 with its last two stages dilated instead of strided
    (output stride 8); torchvision's ResNet-50 weights fit it unchanged."""
    return contract.application(
        _drn_a_features,
        model_name="drn_a_50",
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


registry.register("drn_a_50", DRNA50, family="drn_a", default_size=DEFAULT_SIZE, min_size=MIN_SIZE)
registry.register_variants(
    {variant: (DRN, dict(config, model_name=variant)) for variant, config in VARIANTS.items()},
    family="drn",
    default_size=DEFAULT_SIZE,
    min_size=MIN_SIZE,
)
# Dilation keeps the output stride at 8: the later stages do not reduce.
A_FAMILY = registry.declare(
    registry.Family(
        "drn_a", DEFAULT_SIZE, MIN_SIZE, stages=lambda config: block_stages((3, 4, 6, 3), (4, 8, 8, 8))
    )
)
FAMILY = registry.declare(
    registry.Family(
        "drn", DEFAULT_SIZE, MIN_SIZE, VARIANTS,
        stages=lambda config: block_stages(
            config["blocks"], tuple(itertools.accumulate(STRIDES, operator.mul)), prefix="level", first=1
        ),
    )
)


def preprocess_input(x, data_format=None):
    """ImageNet mean/std normalization ("torch" mode), as the official models."""
    return contract.preprocess_input(x, data_format, mode="torch")


decode_predictions = contract.decode_predictions
