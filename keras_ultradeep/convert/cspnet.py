"""timm CSPNets (``cspresnet50``, ``cspresnext50``, ``cspdarknet53``) names for our layers.

timm's stem conv is ``stem.conv1`` and stage ``conv{s}`` is ``stages.{s - 2}``;
every conv-BN(-act) is a ``ConvNormAct`` with ``.conv`` and ``.bn``:

==========================  ====================================================
ours                        timm
==========================  ====================================================
``conv1``                   ``stem.conv1``
``conv{s}_down``            ``stages.{s - 2}.conv_down``
``conv{s}_exp``             ``stages.{s - 2}.conv_exp``
``conv{s}_block{b}_{k}``    ``stages.{s - 2}.blocks.{b - 1}.conv{k}``
``conv{s}_transition_b``    ``stages.{s - 2}.conv_transition_b``
``conv{s}_transition``      ``stages.{s - 2}.conv_transition``
``predictions``             ``head.fc``
==========================  ====================================================
"""

from __future__ import annotations

import re

ARCHITECTURE = {"batch_norm_epsilon": 1e-5}

_FIXED = {
    "conv1_conv": "stem.conv1.conv",
    "conv1_bn": "stem.conv1.bn",
    "predictions": "head.fc",
}
_STAGE = re.compile(r"conv(\d+)_(down|exp|transition_b|transition)_(conv|bn)")
_BLOCK = re.compile(r"conv(\d+)_block(\d+)_(1|2|3)_(conv|bn)")
_PARTS = {
    "down": "conv_down",
    "exp": "conv_exp",
    "transition_b": "conv_transition_b",
    "transition": "conv_transition",
}


def torch_module(layer_name):
    if layer_name in _FIXED:
        return _FIXED[layer_name]
    match = _STAGE.fullmatch(layer_name)
    if match is not None:
        stage, part, kind = match.groups()
        if int(stage) < 2:
            return None
        return f"stages.{int(stage) - 2}.{_PARTS[part]}.{kind}"
    match = _BLOCK.fullmatch(layer_name)
    if match is None:
        return None
    stage, block, part, kind = match.groups()
    if int(stage) < 2 or int(block) < 1:
        return None
    return f"stages.{int(stage) - 2}.blocks.{int(block) - 1}.conv{part}.{kind}"
