"""torchvision GoogLeNet names for our ``googlenet_tv`` layers.

torchvision's modules are ``conv1``, ``conv2`` (the 1x1), ``conv3`` (the
3x3), ``inception3a`` ... ``inception5b`` with ``branch1``, ``branch2``
(``.0`` reduce, ``.1`` 3x3), ``branch3`` (``.0``, ``.1``: the "5x5") and
``branch4.1`` (pool projection); each conv is a BasicConv2d with ``.conv`` and
``.bn``. Ours are ``conv1``, ``conv2_block1_1``, ``conv2_block1_2`` and
``conv{stage}_block{n}`` (3a is ``conv3_block1``, 4e ``conv4_block5``) with
``_1x1``, ``_3x3_reduce``, ``_3x3``, ``_5x5_reduce``, ``_5x5``,
``_pool_proj``. The auxiliary heads ``aux1``/``aux2`` have ``_reduce``
(torchvision's ``conv``), ``_fc`` (``fc1``) and ``_predictions`` (``fc2``);
the classifier is ``fc``.

torchvision flattens the auxiliary 128x4x4 maps channel-first, we flatten
channels-last: ``adapt_tensor`` reorders the columns of ``aux*.fc1.weight``.
The paper form (``googlenet``: conv biases, LRN, no BatchNorm) does not take
these checkpoints.
"""

from __future__ import annotations

import re

ARCHITECTURE = {}  # googlenet_tv fixes every option the checkpoints need
# torchvision's published checkpoint carries (untrained) auxiliary heads: they
# may stay unused in a model built without them.
OPTIONAL_PREFIXES = ("aux1.", "aux2.")

_FIXED = {
    "conv1_conv": "conv1.conv",
    "conv1_bn": "conv1.bn",
    "conv2_block1_1_conv": "conv2.conv",
    "conv2_block1_1_bn": "conv2.bn",
    "conv2_block1_2_conv": "conv3.conv",
    "conv2_block1_2_bn": "conv3.bn",
    "predictions": "fc",
}
_BRANCHES = {
    "1x1": "branch1",
    "3x3_reduce": "branch2.0",
    "3x3": "branch2.1",
    "5x5_reduce": "branch3.0",
    "5x5": "branch3.1",
    "pool_proj": "branch4.1",
}
_MODULE = re.compile(r"conv([345])_block(\d)_(.+)_(conv|bn)")
_AUX = re.compile(r"(aux[12])_(reduce_conv|reduce_bn|fc|predictions)")
_AUX_PARTS = {"reduce_conv": "conv.conv", "reduce_bn": "conv.bn", "fc": "fc1", "predictions": "fc2"}
_AUX_FC1 = re.compile(r"aux[12]\.fc1\.weight")
AUX_MAPS = (128, 4, 4)  # channels, rows, columns before the auxiliary flatten


def torch_module(layer_name):
    if layer_name in _FIXED:
        return _FIXED[layer_name]
    match = _AUX.fullmatch(layer_name)
    if match is not None:
        head, part = match.groups()
        return f"{head}.{_AUX_PARTS[part]}"
    match = _MODULE.fullmatch(layer_name)
    if match is None or match.group(3) not in _BRANCHES:
        return None
    stage, block, part, kind = match.groups()
    letter = "abcde"[int(block) - 1]
    return f"inception{stage}{letter}.{_BRANCHES[part]}.{kind}"


def adapt_tensor(key, value):
    """(out, C*H*W) channel-first columns to (out, H*W*C) channels-last."""
    if _AUX_FC1.fullmatch(key) and value.ndim == 2:
        channels, rows, cols = AUX_MAPS
        out = value.shape[0]
        return value.reshape(out, channels, rows, cols).transpose(0, 2, 3, 1).reshape(out, -1)
    return value
