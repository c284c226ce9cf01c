"""torchvision's ``alexnet`` names for our ``AlexNetTV`` layers.

torchvision keeps two sequences: ``features`` (convs at indices 0, 3, 6, 8,
10) and ``classifier`` (Dropout, Linear 9216->4096, ReLU, Dropout, Linear,
ReLU, Linear: the Linears at 1, 4 and 6).

Two things differ in form:

* the flatten order: torchvision flattens pool5 as channel-height-width after
  its 6x6 adaptive pool, Keras as height-width-channel, so fc6's input axis
  is permuted from (256, 6, 6) to (6, 6, 256);
* the classifier keys are renamed under one prefix, ``classifier.fc6``,
  ``classifier.fc7`` and ``classifier`` itself for the last Linear (our
  ``predictions``), so that a model built with ``include_top=False`` (which
  has no FC layers at all) leaves every one of them unused, as the shared
  conversion expects of the head.
"""

from __future__ import annotations

import numpy as np

_FEATURES = {"conv1_conv": 0, "conv2_conv": 3, "conv3_conv": 6, "conv4_conv": 8, "conv5_conv": 10}
_CLASSIFIER = {"1": "classifier.fc6", "4": "classifier.fc7", "6": "classifier"}
_MODULES = {
    **{layer: f"features.{index}" for layer, index in _FEATURES.items()},
    "fc6": "classifier.fc6",
    "fc7": "classifier.fc7",
    "predictions": "classifier",
}
POOL5_SHAPE = (256, 6, 6)  # torchvision's (channels, height, width) in front of fc6


def torch_module(layer_name):
    return _MODULES.get(layer_name)


def rename_key(key):
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "classifier" and parts[1] in _CLASSIFIER:
        return f"{_CLASSIFIER[parts[1]]}.{parts[2]}"
    return key


def adapt_tensor(key, value):
    """fc6's input axis from torchvision's (C, H, W) flatten order to Keras' (H, W, C)."""
    if key == "classifier.fc6.weight" and value.ndim == 2 and value.shape[1] == int(np.prod(POOL5_SHAPE)):
        out = value.shape[0]
        return value.reshape(out, *POOL5_SHAPE).transpose(0, 2, 3, 1).reshape(out, -1)
    return value
