"""timm/torchvision VGG (``vgg11`` ... ``vgg19``, ``vgg*_bn``) names for our layers.

Both keep the convs in one flat ``features`` sequence, ``features.{i}``, whose
indices depend on the configuration (how many convs each stage has) and on
BatchNorm (conv, BN, ReLU or conv, ReLU; a max-pool after each stage). The
index alone cannot say which conv it is, so :func:`prepare_state_dict` reads
the whole checkpoint once and renames ``features.{i}`` to our layer names: a
gap of one more index than a conv takes is a pool, i.e. a new stage.

==========================  ====================================================
ours                        timm (torchvision)
==========================  ====================================================
``block{s}_conv{n}``        ``features.{i}`` (the n-th conv of stage s)
``block{s}_conv{n}_bn``     ``features.{i + 1}`` (BN forms)
``fc1``                     ``pre_logits.fc1`` (``classifier.0``)
``fc2``                     ``pre_logits.fc2`` (``classifier.3``)
``predictions``             ``head.fc`` (``classifier.6``)
==========================  ====================================================

timm's ``fc1`` is a 7x7 conv over the last 7x7x512 map (torchvision's a
Linear over it flattened channels-first): its kernel becomes our Dense
``fc1`` kernel in Keras' flatten order (height, width, channels). ``fc2`` is a
1x1 conv (a Linear in torchvision): the Dense ``fc2``.
"""

from __future__ import annotations

import re

import numpy as np

ARCHITECTURE = {"batch_norm_epsilon": 1e-5}
# The layers include_top=False leaves out: a no-top model ignores their tensors.
HEAD_LAYERS = ("fc1", "fc2", "predictions")

_FIXED = {
    "fc1": "pre_logits.fc1",
    "fc2": "pre_logits.fc2",
    "predictions": "head.fc",
}
_TORCHVISION = {
    "classifier.0.": "pre_logits.fc1.",
    "classifier.3.": "pre_logits.fc2.",
    "classifier.6.": "head.fc.",
}
_OURS = re.compile(r"block\d+_conv\d+(_bn)?")
_FLAT = re.compile(r"features\.(\d+)\.(.+)")
_BN_ONLY = ("running_mean", "running_var", "num_batches_tracked")


def torch_module(layer_name):
    if layer_name in _FIXED:
        return _FIXED[layer_name]
    if _OURS.fullmatch(layer_name):
        return layer_name  # prepare_state_dict's names
    return None


def prepare_state_dict(state_dict):
    """timm/torchvision's ``features.{i}`` keys renamed to ``block{s}_conv{n}``
    (``_bn``); other keys unchanged. Idempotent: a prepared dict comes back as is.
    """
    params = {}
    for key in state_dict:
        match = _FLAT.fullmatch(key)
        if match is not None:
            params.setdefault(int(match.group(1)), set()).add(match.group(2))
    if not params:
        return dict(state_dict)
    batch_norms = {i for i, names in params.items() if names & set(_BN_ONLY)}
    convs = sorted(set(params) - batch_norms)
    step = 3 if batch_norms else 2  # conv, (BN,) ReLU
    if batch_norms and batch_norms != {c + 1 for c in convs}:
        raise ValueError("state_dict: its features.{i} are not VGG's conv(-BN)-ReLU sequence")

    names, stage, n = {}, 1, 0
    for previous, index in zip([None, *convs], convs):
        gap = None if previous is None else index - previous
        if gap == step + 1:  # a max-pool between: the next stage
            stage, n = stage + 1, 0
        elif gap not in (None, step):
            raise ValueError(
                f"state_dict: features.{previous} and features.{index} are {gap} apart; "
                f"VGG's convs are {step} (same stage) or {step + 1} (after a pool) apart"
            )
        n += 1
        names[index] = f"block{stage}_conv{n}"
        if batch_norms:
            names[index + 1] = f"block{stage}_conv{n}_bn"

    prepared = {}
    for key, value in state_dict.items():
        match = _FLAT.fullmatch(key)
        if match is not None:
            key = f"{names[int(match.group(1))]}.{match.group(2)}"
        prepared[key] = value
    return prepared


def rename_key(key):
    """torchvision's ``classifier.{0,3,6}`` to timm's names."""
    for old, new in _TORCHVISION.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def adapt_tensor(key, value):
    """timm's conv FC layers (torchvision's Linear ones) for our Dense layers.

    ``fc1``: (out, c, h, w) -> (out, h * w * c), Keras' flatten order (the
    Dense layout then transposes it); torchvision's (out, c * 7 * 7) is its
    channels-first flattening of the same kernel.
    """
    if key == "pre_logits.fc1.weight":
        if value.ndim == 2:
            value = value.reshape(value.shape[0], -1, 7, 7)
        return np.transpose(value, (0, 2, 3, 1)).reshape(value.shape[0], -1)
    if key == "pre_logits.fc2.weight" and value.ndim == 4:
        return value[:, :, 0, 0]
    return value
