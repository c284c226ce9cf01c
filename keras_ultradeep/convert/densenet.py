"""timm/torchvision DenseNet-121/169/201/161/264 names for our DenseNet layers.

The two are the same network (see models/densenet.py), so only names differ.
Our layers are numbered the keras.applications way: ``conv1`` is the stem and
dense block ``b`` is ``conv{b + 1}``, its transition ``pool{b + 1}``; PyTorch
numbers dense blocks and transitions from 1.
"""

from __future__ import annotations

import re

# PyTorch's BatchNorm default, which the checkpoints were trained and
# evaluated with (keras.applications' DenseNet uses 1.001e-5).
ARCHITECTURE = {"batch_norm_epsilon": 1e-5}

_FIXED = {
    "conv1_conv": "features.conv0",
    "conv1_bn": "features.norm0",
    "bn": "features.norm5",
    "predictions": "classifier",
}
_DENSE_LAYER = re.compile(r"conv(\d+)_block(\d+)_(0_bn|1_conv|1_bn|2_conv)")
_DENSE_LAYER_PARTS = {"0_bn": "norm1", "1_conv": "conv1", "1_bn": "norm2", "2_conv": "conv2"}
_TRANSITION = re.compile(r"pool(\d+)_(bn|conv)")
_TRANSITION_PARTS = {"bn": "norm", "conv": "conv"}
# torchvision's published files predate its rename of ``norm.1`` to ``norm1``.
_TORCHVISION_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


def torch_module(layer_name):
    if layer_name in _FIXED:
        return _FIXED[layer_name]
    match = _DENSE_LAYER.fullmatch(layer_name)
    if match:
        stage, layer, part = match.groups()
        return (
            f"features.denseblock{int(stage) - 1}.denselayer{layer}."
            f"{_DENSE_LAYER_PARTS[part]}"
        )
    match = _TRANSITION.fullmatch(layer_name)
    if match:
        stage, part = match.groups()
        return f"features.transition{int(stage) - 1}.{_TRANSITION_PARTS[part]}"
    return None


def rename_key(key):
    return _TORCHVISION_KEY.sub(r"\1\2.", key)
