"""timm Dual Path Networks (``dpn68`` ... ``dpn131``) names for our DPN layers.

timm keeps the MXNet models' flat ``features`` sequence: the stem is
``features.conv1_1`` (``.conv``, ``.bn``), block ``conv{s}_block{b}`` is
``features.conv{s}_{b}`` and the final BN-ReLU ``features.conv5_bn_ac.bn``.
Inside a block each BN-ReLU-conv is a module with ``.bn`` and ``.conv``:

====================  =========================================================
ours                  timm
====================  =========================================================
``_0``                ``c1x1_w_s1`` (first stage) / ``c1x1_w_s2`` (strided)
``_1``                ``c1x1_a``
``_2``                ``c3x3_b``
``_3``                ``c1x1_c`` (in DPN-68b only its ``.bn``)
``_3_res_conv``       ``c1x1_c1`` (DPN-68b)
``_3_dense_conv``     ``c1x1_c2`` (DPN-68b)
====================  =========================================================

The classifier is a 1x1 conv with bias, ``classifier``, whose weight becomes
our Dense ``predictions`` kernel.
"""

from __future__ import annotations

import re

ARCHITECTURE = {"batch_norm_epsilon": 1e-3}

_FIXED = {
    "conv1_conv": "features.conv1_1.conv",
    "conv1_bn": "features.conv1_1.bn",
    "post_bn": "features.conv5_bn_ac.bn",
    "predictions": "classifier",
}
_BLOCK = re.compile(r"conv([2-5])_block(\d+)_(0|1|2|3)_(bn|conv)")
_SPLIT = re.compile(r"conv([2-5])_block(\d+)_3_(res|dense)_conv")
_PARTS = {"1": "c1x1_a", "2": "c3x3_b", "3": "c1x1_c"}


def torch_module(layer_name):
    if layer_name in _FIXED:
        return _FIXED[layer_name]
    match = _SPLIT.fullmatch(layer_name)
    if match is not None:
        stage, block, path = match.groups()
        return f"features.conv{stage}_{block}.{'c1x1_c1' if path == 'res' else 'c1x1_c2'}"
    match = _BLOCK.fullmatch(layer_name)
    if match is None:
        return None
    stage, block, part, kind = match.groups()
    if part == "0":
        module = "c1x1_w_s1" if stage == "2" else "c1x1_w_s2"
    else:
        module = _PARTS[part]
    return f"features.conv{stage}_{block}.{module}.{kind}"


def adapt_tensor(key, value):
    """timm's DPN classifies with a 1x1 conv; ours with a Dense layer."""
    if key == "classifier.weight" and value.ndim == 4:
        return value[:, :, 0, 0]
    return value
