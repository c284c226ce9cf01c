"""timm (= torchvision) Inception v3 names for our ``inception_v3`` layers.

timm names the stem convs after TF-slim (``Conv2d_1a_3x3`` ...), the modules
``Mixed_5b`` ... ``Mixed_7c`` and their branches ``branch1x1``,
``branch5x5_1``, ..., ``branch_pool``; each conv unit is a ConvNormAct with
``.conv`` and ``.bn``. Ours keep Keras' module names (``mixed0`` ...
``mixed10``) and the branch part of timm's names:

==================  ===========================  ==================
ours                timm                         ours -> timm
==================  ===========================  ==================
``conv1a``          ``Conv2d_1a_3x3``            ``mixed0``-``2``: ``Mixed_5b``-``5d``
``conv2a``          ``Conv2d_2a_3x3``            ``mixed3``: ``Mixed_6a``
``conv2b``          ``Conv2d_2b_3x3``            ``mixed4``-``7``: ``Mixed_6b``-``6e``
``conv3b``          ``Conv2d_3b_1x1``            ``mixed8``: ``Mixed_7a``
``conv4a``          ``Conv2d_4a_3x3``            ``mixed9``, ``10``: ``Mixed_7b``, ``7c``
==================  ===========================  ==================

``mixed4_7x7dbl_3_conv`` is ``Mixed_6b.branch7x7dbl_3.conv``; ``_pool`` is
``branch_pool``. The auxiliary head ``aux_conv0``/``aux_conv1``/
``aux_predictions`` is ``AuxLogits.conv0``/``.conv1``/``.fc``; the classifier
``fc``. The keras form (``inception_v3``, BatchNorm without gamma) does not
take these checkpoints: build ``inception_v3``.
"""

from __future__ import annotations

import re

ARCHITECTURE = {}  # inception_v3 fixes every option the checkpoints need
# timm's tv_in1k checkpoint carries the auxiliary head: it may stay unused in a
# model built without it.
OPTIONAL_PREFIXES = ("AuxLogits.",)

_STEM = {
    "conv1a": "Conv2d_1a_3x3",
    "conv2a": "Conv2d_2a_3x3",
    "conv2b": "Conv2d_2b_3x3",
    "conv3b": "Conv2d_3b_1x1",
    "conv4a": "Conv2d_4a_3x3",
    "aux_conv0": "AuxLogits.conv0",
    "aux_conv1": "AuxLogits.conv1",
}
_MIXED = ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")
_FIXED = {"predictions": "fc", "aux_predictions": "AuxLogits.fc"}
_UNIT = re.compile(r"(.+)_(conv|bn)")
_MODULE_UNIT = re.compile(r"mixed(\d+)_(.+)")


def torch_module(layer_name):
    if layer_name in _FIXED:
        return _FIXED[layer_name]
    match = _UNIT.fullmatch(layer_name)
    if match is None:
        return None
    unit, kind = match.groups()
    if unit in _STEM:
        return f"{_STEM[unit]}.{kind}"
    match = _MODULE_UNIT.fullmatch(unit)
    if match is None or int(match.group(1)) >= len(_MIXED):
        return None
    index, part = match.groups()
    branch = "branch_pool" if part == "pool" else f"branch{part}"
    return f"Mixed_{_MIXED[int(index)]}.{branch}.{kind}"
