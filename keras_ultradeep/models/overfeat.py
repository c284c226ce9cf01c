"""OverFeat (Sermanet, Eigen, Zhang, Mathieu, Fergus, LeCun, "OverFeat:
Integrated Recognition, Localization and Detection using Convolutional
Networks", ICLR 2014, arXiv 1312.6229): the fast and the accurate model.

An AlexNet-like classifier whose fully connected layers are convolutions
(6x6 or 5x5, then 1x1), so that one pass over a larger image evaluates the
classifier densely at every window, sharing the convolutions between windows.
Without LRN, with non-overlapping max-pooling and ReLUs after every layer but
the last.

Fast model (``OverFeatFast``, registry ``overfeat_fast``), 231x231 input:

=====  ========================  =======  ====================  =============
layer  ours                      maps     kernel/stride, pool   params
=====  ========================  =======  ====================  =============
1      ``conv1`` + ``pool1``      96       11x11/4, 2x2/2        34,944
2      ``conv2`` + ``pool2``      256      5x5/1, 2x2/2          614,656
3      ``conv3``                  512      3x3/1, pad 1          1,180,160
4      ``conv4``                  1024     3x3/1, pad 1          4,719,616
5      ``conv5`` + ``pool5``      1024     3x3/1, pad 1, 2x2/2   9,438,208
6      ``fc6`` (6x6 conv)         3072     6x6                   113,249,280
7      ``fc7`` (1x1 conv)         4096     1x1                   12,587,008
8      ``predictions``            1000     1x1                   4,097,000
=====  ========================  =======  ====================  =============

Total **145,920,872**.

Accurate model (``OverFeatAccurate``, registry ``overfeat_accurate``),
221x221 input: 96 7x7/2 + 3x3/3 pool, 256 7x7 + 2x2/2 pool, 512, 512, 1024
and 1024 3x3 convs (pad 1) + 3x3/3 pool, then ``fc7`` 4096 5x5,
``fc8`` 4096 1x1 and ``predictions`` 1000: total **144,656,488**.

Both counts are computed from the layer shapes of the official weight files
(as read by the Torch port ``jhjin/overfeat-torch``; each equals the file's
last offset plus the final 1,000 biases) and match ours exactly. The paper's
own Table 4 (which reportedly says 145M and 144M) could not be read here, so
no rounding of it is asserted.

* At the canonical sizes every conv and pool divides exactly; larger inputs
  give a map of class scores. ``class_map=False`` (default, the
  keras.applications contract) reduces it by the spatial maximum of each
  class, the paper's multi-view classification rule ("the maximum for each
  class ... at each scale"); at the canonical size it is the one position.
  ``class_map=True`` returns the ``(height, width, classes)`` map itself.
* The smallest input is the canonical one (231 fast, 221 accurate): the first
  full layer needs a 6x6 (5x5) pool5 map.
* Dropout 0.5 after the first two full layers (training only; from a
  secondary summary of the paper).
* The official weights take RGB in 0-255 normalized as
  (x - 118.380948) / 61.896913, one scalar for all channels
  (:func:`preprocess_input`, ``mode="overfeat"``). No pretrained weights are
  shipped. The official binary uses Threshold(0, 1e-6) — a ReLU for all
  practical purposes; ours is a ReLU.
"""

from __future__ import annotations

import functools
import math

import keras
from keras import layers, ops

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.models.blocks import block_stages

__all__ = [
    "OverFeat",
    "OverFeatFast",
    "OverFeatAccurate",
    "preprocess_input",
    "decode_predictions",
]

# (filters, kernel, stride, padding, pool size = pool stride or 0)
VARIANTS = {
    "overfeat_fast": dict(
        convs=((96, 11, 4, 0, 2), (256, 5, 1, 0, 2), (512, 3, 1, 1, 0), (1024, 3, 1, 1, 0), (1024, 3, 1, 1, 2)),
        full=(6, (3072, 4096)),
    ),
    "overfeat_accurate": dict(
        convs=(
            (96, 7, 2, 0, 3), (256, 7, 1, 0, 2), (512, 3, 1, 1, 0), (512, 3, 1, 1, 0), (1024, 3, 1, 1, 0),
            (1024, 3, 1, 1, 3),
        ),
        full=(5, (4096, 4096)),
    ),
}
DEFAULT_SIZES = {"overfeat_fast": 231, "overfeat_accurate": 221}


def _smallest_input(convs, full_kernel):
    """The smallest side whose last pool gives the first full layer its ``full_kernel`` map."""
    side = full_kernel
    for filters, kernel, stride, padding, pool in reversed(convs):
        side = side * pool if pool else side
        side = (side - 1) * stride + kernel - 2 * padding
    return side


# ----------------------------------------------------------------------- blocks


def overfeat_features(convs):
    def features(x):
        for i, (filters, kernel, stride, padding, pool) in enumerate(convs, start=1):
            if padding:
                x = layers.ZeroPadding2D(padding, name=f"conv{i}_pad")(x)
            x = layers.Conv2D(filters, kernel, strides=stride, name=f"conv{i}_conv")(x)
            x = layers.Activation("relu", name=f"conv{i}_block1_out")(x)
            if pool:
                x = layers.MaxPooling2D(pool, strides=pool, name=f"pool{i}")(x)
        return x

    return features


def full_head(x, *, include_top, pooling, classes, classifier_activation, full, first, dropout_rate, class_map):
    """The "full" layers as convolutions (``fc{first}``, ``fc{first + 1}``,
    ``predictions``), then the spatial maximum of each class unless ``class_map``."""
    if not include_top:
        return contract.classifier_head(
            x, include_top=False, pooling=pooling, classes=classes, classifier_activation=classifier_activation
        )
    kernel, units = full
    for n, width in enumerate(units):
        name = f"fc{first + n}"
        x = layers.Conv2D(width, kernel if n == 0 else 1, activation="relu", name=name)(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name=f"{name}_drop")(x)
    x = layers.Conv2D(classes, 1, name="predictions")(x)
    if not class_map:
        x = layers.GlobalMaxPooling2D(name="class_max")(x)
    if classifier_activation is not None:
        x = layers.Activation(classifier_activation, name="probabilities")(x)
    return x


# --------------------------------------------------------------------- builders


def OverFeat(
    model="fast",
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    dropout_rate=0.5,
    class_map=False,
    filters=None,
    full_units=None,
    model_name=None,
):
    """OverFeat's ``"fast"`` or ``"accurate"`` model (see the module docstring).

    Args (beyond keras.applications'):
        model: ``"fast"`` (231x231) or ``"accurate"`` (221x221).
        dropout_rate: dropout after the first two full layers (0.5).
        class_map: return the ``(height, width, classes)`` map of a larger
            input instead of each class's spatial maximum.
        filters: the convs' filters (5 fast, 6 accurate); None: the model's.
        full_units: the widths of the two hidden full layers; None: the
            model's ((3072, 4096) fast, (4096, 4096) accurate).
    """
    variant = f"overfeat_{model}" if isinstance(model, str) else None
    if variant not in VARIANTS:
        raise ValueError(f"model: expected 'fast' or 'accurate', got {model!r}")
    config = VARIANTS[variant]
    convs, (full_kernel, units) = config["convs"], config["full"]
    if filters is not None:
        checks.positive_ints(filters, "filters", length=len(convs), what="positive integers, one per conv")
        convs = tuple((f, *conv[1:]) for f, conv in zip(filters, convs))
    if full_units is not None:
        checks.positive_ints(full_units, "full_units", length=2)
        units = tuple(full_units)
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    checks.boolean(class_map, "class_map")
    if name is None:
        name = variant
    head = functools.partial(
        full_head, full=(full_kernel, units), first=len(convs) + 1, dropout_rate=dropout_rate,
        class_map=class_map,
    )
    return contract.application(
        overfeat_features(convs),
        model_name=model_name or variant,
        default_size=DEFAULT_SIZES[variant],
        min_size=_smallest_input(convs, full_kernel),
        head=head,
        **contract.keras_arguments(locals()),
    )


def _builder(variant, title):
    model = variant.removeprefix("overfeat_")
    size = DEFAULT_SIZES[variant]
    config = VARIANTS[variant]
    return contract.registered_variant(
        OverFeat, variant, title, {"model": model},
        family="overfeat", default_size=size, min_size=_smallest_input(config["convs"], config["full"][0]),
        doc=(
            f"OverFeat's {model} model, {size}x{size} input.\n\n"
            "Takes keras.applications' arguments and OverFeat's knobs; see :func:`OverFeat`."
        ),
    )


OverFeatFast = _builder("overfeat_fast", "OverFeatFast")
OverFeatAccurate = _builder("overfeat_accurate", "OverFeatAccurate")


def _stages(config):
    # Each conv's last layer before its pool. The 3x3 pools make reductions
    # such as 6; a stage is named by the nearest power of two (s8).
    reductions, reduction = [], 1
    for _, _, stride, _, pool in config["convs"]:
        reduction *= stride
        reductions.append(2 ** round(math.log2(reduction)))
        reduction *= pool or 1
    return block_stages((1,) * len(config["convs"]), reductions, first=1)


FAMILY = registry.declare(
    registry.Family(
        "overfeat", min(DEFAULT_SIZES.values()),
        min(_smallest_input(c["convs"], c["full"][0]) for c in VARIANTS.values()), VARIANTS, stages=_stages,
    )
)


# ------------------------------------------------------------------ preprocessing

OVERFEAT_MEAN = 118.380948
OVERFEAT_STD = 61.896913
PREPROCESS_MODES = ("overfeat", *contract.PREPROCESS_MODES)


def preprocess_input(x, data_format=None, mode="overfeat"):
    """Pixels in [0, 255], RGB, to the models' input: ``(x - 118.380948) /
    61.896913`` (the official weights' normalization, one scalar for every
    channel) by default, or keras.applications' ``"caffe"``/``"tf"``/``"torch"``."""
    checks.one_of(mode, "mode", PREPROCESS_MODES)
    if mode != "overfeat":
        return contract.preprocess_input(x, data_format, mode=mode)
    x = ops.convert_to_tensor(x)
    if "float" not in keras.backend.standardize_dtype(x.dtype):
        x = ops.cast(x, keras.backend.floatx())
    return (x - OVERFEAT_MEAN) / OVERFEAT_STD


decode_predictions = contract.decode_predictions
