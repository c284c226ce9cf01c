"""timm ``inception_resnet_v2`` names for our Inception-ResNet-v2 layers.

timm's checkpoint (Cadene's port of TF-slim's) keeps BatchNorm's gamma, so it
converts into the timm form, registry ``inception_resnet_v2``
(``batch_norm_scale=True``, recorded in ``ARCHITECTURE``);
keras.applications' form has no gamma and loads Keras' own weights files.

timm names the stem ``conv2d_1a`` ... ``conv2d_4a`` (ours ``conv_1a`` ...), the
blocks ``mixed_5b``/``mixed_6a``/``mixed_7a`` as we do, the repeated blocks
``repeat.{b}`` (our ``block35_{b + 1}``), ``repeat_1.{b}`` (``block17_*``),
``repeat_2.{b}`` (``block8_1``..``block8_9``) and the final linear 8x8 block
``block8`` (our ``block8_10``); ``conv2d_7b`` and the classifier ``classif``.
Every conv is a ConvNormAct (``.conv``, ``.bn``) but each block's residual
1x1, ``conv2d`` (a plain conv with bias, our ``{block}_conv``).
"""

from __future__ import annotations

import re

ARCHITECTURE = {"batch_norm_scale": True}

_STEM = {f"conv_{n}": f"conv2d_{n}" for n in ("1a", "2a", "2b", "3b", "4a", "7b")}
_REPEATS = {"block35": "repeat", "block17": "repeat_1", "block8": "repeat_2"}
_LAST_BLOCK8 = 10  # timm's separate, linear ``block8``
# Branches that are a single ConvNormAct in timm, and those led by a pool.
_SINGLE = {"0"}  # branch0 of every block but Mixed_7a
_POOL_FIRST = {"mixed_5b": {"3"}}
_BLOCK = re.compile(r"(mixed_5b|mixed_6a|mixed_7a|(block35|block17|block8)_(\d+))(?:_branch(\d)_(\d+))?")


def _block_module(block, grid, number):
    if grid is None:
        return block
    if grid == "block8" and int(number) == _LAST_BLOCK8:
        return "block8"
    return f"{_REPEATS[grid]}.{int(number) - 1}"


def _conv_module(name):
    if name in _STEM:
        return _STEM[name]
    match = _BLOCK.fullmatch(name)
    if match is None or match.group(4) is None:
        return None
    block, grid, number, branch, conv = match.groups()
    prefix = _block_module(block, grid, number)
    if branch in _SINGLE and block != "mixed_7a":
        return f"{prefix}.branch{branch}"
    if branch in _POOL_FIRST.get(block, ()):
        return f"{prefix}.branch{branch}.{int(conv) + 1}"
    return f"{prefix}.branch{branch}.{conv}"


def torch_module(layer_name):
    if layer_name == "predictions":
        return "classif"
    if layer_name.endswith("_conv"):  # a block's residual 1x1
        match = _BLOCK.fullmatch(layer_name[: -len("_conv")])
        if match is not None and match.group(2) is not None:
            return f"{_block_module(*match.group(1, 2, 3))}.conv2d"
        return None
    if layer_name.endswith("_bn"):
        module = _conv_module(layer_name[: -len("_bn")])
        return None if module is None else f"{module}.bn"
    module = _conv_module(layer_name)
    return None if module is None else f"{module}.conv"
