"""Blocks shared by the ResNet line: ResNet and ResNeXt, DRN, ResNetV2, DPN,
CSPNet and RiR build on them.

Layers are named as keras.applications names ResNet's (``{name}_conv``,
``{name}_bn``, ``{name}_add``, ``{name}_out``), so that weights files and the
converters' name tables serve every family that uses them.
"""

from __future__ import annotations

import functools

from keras import layers

from keras_ultradeep import checks
from keras_ultradeep.layers import (
    GroupedConv2D,
    StochasticDepth,
    survival_probabilities,
)

__all__ = [
    "STAGE_PLANES",
    "EXPANSION",
    "SURVIVAL_RULES",
    "conv",
    "conv_bn",
    "merge",
    "projection_shortcut",
    "basic_block",
    "bottleneck_block",
    "stem",
    "survival_probs",
    "cifar_blocks_per_stage",
    "block_stages",
]

STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = 4  # a bottleneck's output has 4x its planes
SURVIVAL_RULES = ("linear", "uniform")


def conv(x, filters, kernel_size, name, *, strides=1, groups=1, dilation=1, use_bias=False, pad=False):
    """A conv named ``{name}_conv`` (grouped when ``groups`` > 1).

    Stride-2 convs pad explicitly (``{name}_pad``, or any conv with ``pad``):
    PyTorch pads (k - 1) / 2 on every side, while Keras' "same" pads only the
    bottom/right of an even input at stride 2.
    """
    if kernel_size > 1 and (strides > 1 or pad):
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"  # at stride 1 (dilated or not) the same as PyTorch's
    options = dict(
        strides=strides, padding=padding, dilation_rate=dilation, use_bias=use_bias, name=f"{name}_conv"
    )
    if groups > 1:
        return GroupedConv2D(filters, kernel_size, groups, **options)(x)
    return layers.Conv2D(filters, kernel_size, **options)(x)


def conv_bn(x, filters, kernel_size, name, *, use_bias, bn_epsilon, **conv_options):
    """:func:`conv` and BatchNorm ``{name}_bn``."""
    x = conv(x, filters, kernel_size, name, use_bias=use_bias, **conv_options)
    return layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)


def merge(shortcut, residual, name, survival_prob):
    """The residual addition ``{name}_add`` (stochastic depth below 1) and its ReLU ``{name}_out``."""
    if survival_prob < 1.0:
        x = StochasticDepth(survival_prob, name=f"{name}_add")([shortcut, residual])
    else:
        x = layers.Add(name=f"{name}_add")([shortcut, residual])
    return layers.Activation("relu", name=f"{name}_out")(x)


def projection_shortcut(x, filters, stride, name, *, use_bias, bn_epsilon):
    """``x`` itself, or a strided 1x1 conv-BN ``{name}_0`` where the shape changes (option B)."""
    if stride == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, f"{name}_0", strides=stride, use_bias=use_bias, bn_epsilon=bn_epsilon)


def basic_block(x, planes, stride, name, *, use_bias, bn_epsilon, survival_prob, shortcut=None, **unused):
    """Two 3x3 convs (ResNet-18/34); the first one strides.

    ``shortcut(x, planes, stride, name)`` makes the skip path; by default the
    projection where the shape changes (the CIFAR nets pass their option A/B/C).
    """
    if shortcut is None:
        shortcut = functools.partial(projection_shortcut, use_bias=use_bias, bn_epsilon=bn_epsilon)
    shortcut = shortcut(x, planes, stride, name)
    y = conv_bn(x, planes, 3, f"{name}_1", strides=stride, use_bias=use_bias, bn_epsilon=bn_epsilon)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = conv_bn(y, planes, 3, f"{name}_2", use_bias=use_bias, bn_epsilon=bn_epsilon)
    return merge(shortcut, y, name, survival_prob)


def bottleneck_block(
    x, planes, stride, name, *, form, cardinality, bottleneck_width, use_bias, bn_epsilon,
    survival_prob, dilation=1,
):
    """1x1 reduce, 3x3 (grouped for ResNeXt, dilated for DRN), 1x1 expand to ``4 * planes``.

    keras.applications strides the first 1x1 (as the original Caffe models);
    torchvision/timm stride the 3x3, which loses no input pixels.
    """
    width = int(planes * bottleneck_width / 64) * cardinality
    shortcut = projection_shortcut(
        x, EXPANSION * planes, stride, name, use_bias=use_bias, bn_epsilon=bn_epsilon
    )
    stride_1x1, stride_3x3 = (stride, 1) if form == "keras" else (1, stride)
    y = conv_bn(x, width, 1, f"{name}_1", strides=stride_1x1, use_bias=use_bias, bn_epsilon=bn_epsilon)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = conv_bn(
        y, width, 3, f"{name}_2", strides=stride_3x3, groups=cardinality, dilation=dilation,
        use_bias=use_bias, bn_epsilon=bn_epsilon,
    )
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = conv_bn(y, EXPANSION * planes, 1, f"{name}_3", use_bias=use_bias, bn_epsilon=bn_epsilon)
    return merge(shortcut, y, name, survival_prob)


def stem(x, *, use_bias, bn_epsilon):
    """7x7/2 conv-BN-ReLU and 3x3/2 max-pool, padded explicitly as PyTorch does."""
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)  # post-ReLU: zeros never win the max
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def survival_probs(num_blocks, survival_prob, survival_rule):
    """Per-block survival probabilities for stochastic depth, checked."""
    checks.number_in(survival_prob, "survival_prob", 0, 1, low_open=True)
    checks.one_of(survival_rule, "survival_rule", SURVIVAL_RULES)
    return survival_probabilities(num_blocks, survival_prob, rule=survival_rule)


def cifar_blocks_per_stage(depth, divisor, form):
    """Blocks per stage of a CIFAR net of ``depth`` = divisor * n + 2 layers; ``form`` names the rule."""
    if isinstance(depth, int) and not isinstance(depth, bool):
        per_stage, remainder = divmod(depth - 2, divisor)
        if remainder == 0 and per_stage >= 1:
            return per_stage
    raise ValueError(f"depth: expected {form}, got {depth!r}")


def block_stages(blocks, reductions, *, prefix="conv", first=2, suffix="out", last=None):
    """A family's feature stages (see ``registry.Family.stages``) under
    keras.applications' names: stage ``s`` (from ``first``) of ``n`` blocks
    ends at ``{prefix}{s}_block{n}_{suffix}``; ``last`` names the final
    norm-activation that ends the last stage instead, where there is one."""
    stages = [
        (f"{prefix}{first + i}_block{n}_{suffix}", r) for i, (n, r) in enumerate(zip(blocks, reductions, strict=True))
    ]
    if last is not None:
        stages[-1] = (last, stages[-1][1])
    return tuple(stages)
