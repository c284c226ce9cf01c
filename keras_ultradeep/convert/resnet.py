"""timm/torchvision ResNet, Wide ResNet and ResNeXt names for our ResNet layers.

Our layers are named the keras.applications way: ``conv1`` is the stem, stage
``s`` is ``conv{s}`` (2..5) and its block ``b`` (from 1) ``conv{s}_block{b}``,
with convs ``_1``.. ``_3`` and the projection shortcut ``_0``. PyTorch numbers
stages ``layer1``..``layer4`` and blocks from 0, and calls the shortcut
``downsample`` (a Sequential of conv and BN).
"""

from __future__ import annotations

import re

# PyTorch's BatchNorm default and bias-free convs: the torchvision/timm form.
ARCHITECTURE = {"batch_norm_epsilon": 1e-5}

_FIXED = {
    "conv1_conv": "conv1",
    "conv1_bn": "bn1",
    "predictions": "fc",
}
_BLOCK = re.compile(r"conv(\d)_block(\d+)_([0-3])_(conv|bn)")


def torch_module(layer_name):
    if layer_name in _FIXED:
        return _FIXED[layer_name]
    match = _BLOCK.fullmatch(layer_name)
    if match is None:
        return None
    stage, block, index, kind = match.groups()
    prefix = f"layer{int(stage) - 1}.{int(block) - 1}"
    if index == "0":
        return f"{prefix}.downsample.{0 if kind == 'conv' else 1}"
    return f"{prefix}.{kind}{index}"
