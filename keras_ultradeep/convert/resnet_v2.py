"""timm ResNetV2 (``resnetv2_18`` ... ``resnetv2_152``) names for our
pre-activation ResNet layers.

A unit ``conv{s}_block{b}`` is timm's ``stages.{s-2}.blocks.{b-1}``: its
pre-activation BatchNorm is ``norm1``, conv ``_k`` is ``conv{k}`` and the
BatchNorm after it ``norm{k+1}``; the projection is ``downsample.conv``.
"""

from __future__ import annotations

import re

ARCHITECTURE = {"batch_norm_epsilon": 1e-5}

_FIXED = {
    "conv1_conv": "stem.conv",
    "post_bn": "norm",
    "predictions": "head.fc",
}
_UNIT = re.compile(r"conv(\d)_block(\d+)_(preact_bn|0_conv|[1-3]_conv|[1-2]_bn)")


def torch_module(layer_name):
    if layer_name in _FIXED:
        return _FIXED[layer_name]
    match = _UNIT.fullmatch(layer_name)
    if match is None:
        return None
    stage, unit, part = match.groups()
    prefix = f"stages.{int(stage) - 2}.blocks.{int(unit) - 1}"
    if part == "preact_bn":
        return f"{prefix}.norm1"
    if part == "0_conv":
        return f"{prefix}.downsample.conv"
    index, kind = part.split("_")
    return f"{prefix}.conv{index}" if kind == "conv" else f"{prefix}.norm{int(index) + 1}"


def adapt_tensor(key, value):
    """timm's ResNetV2 classifies with a 1x1 conv; ours with a Dense layer."""
    if key == "head.fc.weight" and value.ndim == 4:
        return value[:, :, 0, 0]
    return value
