"""timm ``inception_v4`` names for our Inception-v4 layers.

timm keeps the TF-slim network as one ``features`` sequence: the stem convs
``features.0``..``features.2``, Mixed_3a/4a/5a ``features.3``..``5``, the
Inception-A blocks ``6``..``9``, Reduction-A ``10``, Inception-B ``11``..``17``,
Reduction-B ``18`` and Inception-C ``19``..``21``; the classifier is
``last_linear``. Every conv is a ConvNormAct (``.conv``, ``.bn``).

Inside a block, our ``{block}_branch{i}_{j}`` is timm's ``branch{i}.{j}``,
except where timm's branch is a single conv (``branch{i}``, or ``conv`` in
Mixed_3a/5a), where it starts with the average pool (``branch3.{j + 1}``), and
in Inception-C, whose convs are flat attributes (``branch1_1a``...).
"""

from __future__ import annotations

import re

# Our stage-by-stage layout of timm's ``features`` (the default blocks=(4, 7, 3)).
_FIXED = {
    "conv_1a": "features.0",
    "conv_2a": "features.1",
    "conv_2b": "features.2",
}
_ONE_OFF = {"mixed_3a": 3, "mixed_4a": 4, "mixed_5a": 5, "mixed_6a": 10, "mixed_7a": 18}
_FIRST_BLOCK = {"block35": 6, "block17": 11, "block8": 19}
# Branches that are a single ConvNormAct in timm, and those led by a pool.
_SINGLE = {"block35": {"0"}, "block17": {"0"}, "block8": {"0"}, "mixed_6a": {"0"}}
_POOL_FIRST = {"block35": {"3"}, "block17": {"3"}, "block8": {"3"}}
_CONV = re.compile(r"(mixed_[3-7]a|(block35|block17|block8)_(\d+))_branch(\d)_(\d[ab]?)")


def _conv_module(name):
    if name in _FIXED:
        return _FIXED[name]
    match = _CONV.fullmatch(name)
    if match is None:
        return None
    block, grid, number, branch, conv = match.groups()
    kind = grid or block
    index = _ONE_OFF[block] if grid is None else _FIRST_BLOCK[grid] + int(number) - 1
    prefix = f"features.{index}"
    if kind in ("mixed_3a", "mixed_5a"):  # one conv beside a max-pool
        return f"{prefix}.conv"
    if branch in _SINGLE.get(kind, ()):
        return f"{prefix}.branch{branch}"
    if branch in _POOL_FIRST.get(kind, ()):
        return f"{prefix}.branch{branch}.{int(conv) + 1}"
    if kind == "block8":  # Inception-C: flat attributes branch1_0, branch1_1a...
        return f"{prefix}.branch{branch}_{conv}"
    return f"{prefix}.branch{branch}.{conv}"


def torch_module(layer_name):
    if layer_name == "predictions":
        return "last_linear"
    if layer_name.endswith("_bn"):
        module = _conv_module(layer_name[: -len("_bn")])
        return None if module is None else f"{module}.bn"
    module = _conv_module(layer_name)
    return None if module is None else f"{module}.conv"
