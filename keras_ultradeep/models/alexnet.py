"""AlexNet (Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS 2012), and torchvision's single-tower form.

Five convolutions and three fully connected layers, trained on two GPUs:
ReLUs, local response normalization after the first two convs, overlapping
3x3/2 max-pooling and dropout in the first two FC layers.

``AlexNet`` (registry ``alexnet``), the paper's network at 227x227:

=====  ==============================================  =====================  ===========
paper  ours                                            output (227 input)     params
=====  ==============================================  =====================  ===========
conv1  ``conv1_conv`` 96 11x11/4, ReLU, LRN, pool1      55 -> 27 x 27 x 96     34,944
conv2  ``conv2_conv`` 256 5x5, 2 groups, ReLU, LRN, p2  27 -> 13 x 13 x 256    307,456
conv3  ``conv3_conv`` 384 3x3 (sees both halves)        13 x 13 x 384          885,120
conv4  ``conv4_conv`` 384 3x3, 2 groups                 13 x 13 x 384          663,936
conv5  ``conv5_conv`` 256 3x3, 2 groups, pool5          13 -> 6 x 6 x 256      442,624
fc6    ``fc6`` 4096, ReLU, dropout 0.5                  4096                   37,752,832
fc7    ``fc7`` 4096, ReLU, dropout 0.5                  4096                   16,781,312
fc8    ``predictions`` 1000                             1000                   4,097,000
=====  ==============================================  =====================  ===========

Total **60,965,224** parameters: the paper's "60 million" (it gives no exact
number; this is also the count of Caffe's ``bvlc_alexnet``, the same layout).

* The paper says 224x224; the arithmetic of an unpadded 11x11/4 stem needs
  227 ((227 - 11) / 4 + 1 = 55, the paper's 55x55), the size Caffe uses.
* The two GPUs: conv2, conv4 and conv5 "take input only from those kernel
  maps ... which reside on the same GPU" — grouped convolutions with
  ``groups=2`` (:class:`~keras_ultradeep.layers.GroupedConv2D`); conv3 and the
  FC layers see everything. ``groups=1`` gives the one-GPU network (62.4M).
* LRN (:class:`~keras_ultradeep.layers.LocalResponseNormalization`, k=2,
  n=5, alpha=1e-4, beta=0.75 — the paper's alpha, undivided) follows the ReLU
  of conv1 and conv2, before their pooling.
* The head flattens pool5 (Keras' height-width-channel order) into fc6, so the
  FC sizes follow the input size, as in keras.applications' VGG; at 227 it is
  6 x 6 x 256 = 9,216. Dropout follows the ReLUs of fc6 and fc7 (Caffe's order).
* ``paper_initialization=True``: weights from N(0, 0.01), biases 1 in conv2,
  conv4, conv5, fc6 and fc7 ("accelerates the early stages of learning by
  providing the ReLUs with positive inputs") and 0 elsewhere. Default: Keras'
  (Glorot uniform, zero biases), which trains without the paper's schedule.
* Smallest input 67 (a 1x1 pool5).

``AlexNetTV`` (registry ``alexnet_tv``): torchvision's ``alexnet``, the
single-GPU "one weird trick" variant (Krizhevsky 2014): 64, 192, 384, 256, 256
filters, no groups and no LRN, a 2-pixel-padded stem, an
``AdaptiveAvgPool2d(6)`` before the classifier and dropout *before* fc6 and
fc7. 61,100,840 parameters at any input size (torchvision's count). Its
checkpoints convert with ``keras_ultradeep.convert`` (family
``alexnet_tv``), logits matching torchvision's to 1e-4 relative. The adaptive
pool is :class:`~keras_ultradeep.layers.AdaptiveAveragePooling2DTorch`
(PyTorch's bins, also below 6x6, where it repeats cells); at 223 to 234
pixels pool5 is already 6x6 and it is the identity. Smallest input 63.

Stage outputs for :func:`keras_ultradeep.features.feature_extractor` are each
conv's last layer before pooling (``conv{i}_block1_out``).
"""

from __future__ import annotations

import functools

import keras
from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import (
    AdaptiveAveragePooling2DTorch,
    GroupedConv2D,
    LocalResponseNormalization,
)
from keras_ultradeep.models.blocks import block_stages

__all__ = ["AlexNet", "AlexNetTV", "preprocess_input", "decode_predictions"]

DEFAULT_SIZE = 227
TV_DEFAULT_SIZE = 224
MIN_SIZE = 67  # a 1x1 pool5
TV_MIN_SIZE = 63
PAPER_FILTERS = (96, 256, 384, 384, 256)
TV_FILTERS = (64, 192, 384, 256, 256)
PAPER_GROUPED = (False, True, False, True, True)  # conv2, conv4, conv5 stay on their GPU
PAPER_BIAS_ONE = ("conv2_conv", "conv4_conv", "conv5_conv", "fc6", "fc7")
FC_UNITS = 4096
TV_POOL_OUTPUT = 6


# ----------------------------------------------------------------------- blocks


def _initializers(name, paper_initialization):
    if not paper_initialization:
        return {}
    bias = 1.0 if name in PAPER_BIAS_ONE else 0.0
    return dict(
        kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
        bias_initializer=keras.initializers.Constant(bias),
    )


def conv(x, filters, kernel_size, name, *, strides=1, padding=0, groups=1, paper_initialization=False):
    """A conv with bias ``{name}_conv`` (grouped when ``groups`` > 1), padded
    symmetrically by ``{name}_pad`` first when ``padding``, as Caffe and PyTorch pad."""
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    options = dict(strides=strides, padding="valid", use_bias=True, name=f"{name}_conv")
    options.update(_initializers(f"{name}_conv", paper_initialization))
    if groups > 1:
        options.setdefault("kernel_initializer", "glorot_uniform")
        x = GroupedConv2D(filters, kernel_size, groups, **options)(x)
    else:
        x = layers.Conv2D(filters, kernel_size, **options)(x)
    return x


def max_pool(x, name):
    """Overlapping 3x3/2 max-pooling (the paper's s=2, z=3), unpadded."""
    return layers.MaxPooling2D(3, strides=2, name=name)(x)


def alexnet_features(filters, *, groups, local_response_normalization, stem_padding, paper_initialization):
    grouped = [groups if g else 1 for g in PAPER_GROUPED]

    def unit(x, i, kernel_size, *, strides=1, padding, lrn):
        name = f"conv{i}"
        x = conv(
            x, filters[i - 1], kernel_size, name, strides=strides, padding=padding, groups=grouped[i - 1],
            paper_initialization=paper_initialization,
        )
        if lrn:
            x = layers.Activation("relu", name=f"{name}_relu")(x)
            return LocalResponseNormalization(5, 1e-4, 0.75, 2.0, name=f"{name}_block1_out")(x)
        return layers.Activation("relu", name=f"{name}_block1_out")(x)

    def features(x):
        x = unit(x, 1, 11, strides=4, padding=stem_padding, lrn=local_response_normalization)
        x = max_pool(x, "pool1")
        x = unit(x, 2, 5, padding=2, lrn=local_response_normalization)
        x = max_pool(x, "pool2")
        x = unit(x, 3, 3, padding=1, lrn=False)
        x = unit(x, 4, 3, padding=1, lrn=False)
        x = unit(x, 5, 3, padding=1, lrn=False)
        return max_pool(x, "pool5")

    return features


def _dense(x, units, name, activation, paper_initialization):
    return layers.Dense(units, activation=activation, name=name, **_initializers(name, paper_initialization))(x)


def fc_head(
    x, *, include_top, pooling, classes, classifier_activation, dropout_rate, fc_units,
    torchvision_order=False, paper_initialization=False,
):
    """fc6, fc7 (ReLU, dropout) and ``predictions`` over the flattened pool5.

    ``torchvision_order``: an adaptive 6x6 average pool first and dropout in
    front of fc6 and fc7 (torchvision's ``classifier``); else dropout after
    their ReLUs (the paper's and Caffe's). Without the top, the contract's pooling.
    """
    if not include_top:
        return contract.classifier_head(
            x, include_top=False, pooling=pooling, classes=classes, classifier_activation=classifier_activation
        )
    if torchvision_order:
        x = AdaptiveAveragePooling2DTorch(TV_POOL_OUTPUT, name="avgpool")(x)
    x = layers.Flatten(name="flatten")(x)
    for fc in ("fc6", "fc7"):
        if torchvision_order and dropout_rate:
            x = layers.Dropout(dropout_rate, name=f"{fc}_drop")(x)
        x = _dense(x, fc_units, fc, "relu", paper_initialization)
        if not torchvision_order and dropout_rate:
            x = layers.Dropout(dropout_rate, name=f"{fc}_drop")(x)
    return _dense(x, classes, "predictions", classifier_activation, paper_initialization)


# ------------------------------------------------------------------------ knobs


def _check_filters(filters):
    return checks.positive_ints(filters, "filters", length=5, what="positive integers, one per conv")


# --------------------------------------------------------------------- builders


def AlexNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="alexnet",
    *,
    filters=PAPER_FILTERS,
    groups=2,
    local_response_normalization=True,
    dropout_rate=0.5,
    fc_units=FC_UNITS,
    paper_initialization=False,
):
    """AlexNet as in the paper (see the module docstring), 227x227 by default.

    Args (beyond keras.applications'):
        filters: the five convs' filters, ``(96, 256, 384, 384, 256)``.
        groups: groups of conv2, conv4 and conv5 (2: the two GPUs; 1: one tower).
        local_response_normalization: LRN after conv1's and conv2's ReLU.
        dropout_rate: dropout after fc6 and fc7 (0.5).
        fc_units: width of fc6 and fc7 (4096).
        paper_initialization: the paper's N(0, 0.01) weights and unit biases
            (conv2, conv4, conv5, fc6, fc7) instead of Keras' defaults.
    """
    filters = _check_filters(filters)
    checks.positive_int(groups, "groups")
    for i, (f, g) in enumerate(zip(filters, PAPER_GROUPED)):
        # A grouped conv splits both its input (the previous conv's maps) and its output.
        if g and (f % groups or filters[i - 1] % groups):
            raise ValueError(
                f"groups: conv{i + 1} is grouped, and groups={groups} must divide its {filters[i - 1]} "
                f"input and {f} output maps"
            )
    checks.boolean(local_response_normalization, "local_response_normalization")
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    checks.positive_int(fc_units, "fc_units")
    checks.boolean(paper_initialization, "paper_initialization")
    features = alexnet_features(
        filters, groups=groups, local_response_normalization=local_response_normalization,
        stem_padding=0, paper_initialization=paper_initialization,
    )
    head = functools.partial(
        fc_head, dropout_rate=dropout_rate, fc_units=fc_units, paper_initialization=paper_initialization
    )
    return contract.application(
        features,
        model_name="alexnet",
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=head,
        **contract.keras_arguments(locals()),
    )


def AlexNetTV(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="alexnet_tv",
    *,
    filters=TV_FILTERS,
    dropout_rate=0.5,
    fc_units=FC_UNITS,
):
    """torchvision's ``alexnet`` (one tower, no LRN; see the module docstring), 224x224 by default.

    Args (beyond keras.applications'):
        filters: the five convs' filters, torchvision's ``(64, 192, 384, 256, 256)``.
        dropout_rate: dropout in front of fc6 and fc7 (0.5).
        fc_units: width of fc6 and fc7 (4096).
    """
    filters = _check_filters(filters)
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    checks.positive_int(fc_units, "fc_units")
    features = alexnet_features(
        filters, groups=1, local_response_normalization=False, stem_padding=2, paper_initialization=False
    )
    head = functools.partial(fc_head, dropout_rate=dropout_rate, fc_units=fc_units, torchvision_order=True)
    return contract.application(
        features,
        model_name="alexnet_tv",
        default_size=TV_DEFAULT_SIZE,
        min_size=TV_MIN_SIZE,
        head=head,
        **contract.keras_arguments(locals()),
    )


registry.register("alexnet", AlexNet, family="alexnet", default_size=DEFAULT_SIZE, min_size=MIN_SIZE)
registry.register(
    "alexnet_tv", AlexNetTV, family="alexnet_tv", default_size=TV_DEFAULT_SIZE, min_size=TV_MIN_SIZE
)
# Each conv's last layer before its pool; conv3-5 share the 13x13 grid.
FAMILIES = tuple(
    registry.declare(
        registry.Family(
            family, default_size, min_size,
            stages=lambda config: block_stages((1,) * 5, (4, 8, 16, 16, 16), first=1),
        )
    )
    for family, default_size, min_size in (
        ("alexnet", DEFAULT_SIZE, MIN_SIZE), ("alexnet_tv", TV_DEFAULT_SIZE, TV_MIN_SIZE)
    )
)


def preprocess_input(x, data_format=None, mode="torch"):
    """Pixels in [0, 255], RGB, to the models' input: ``mode="torch"``
    (ImageNet mean/std, torchvision's checkpoints) by default; keras.applications'
    ``"caffe"``/``"tf"`` otherwise."""
    return contract.preprocess_input(x, data_format, mode=mode)


decode_predictions = contract.decode_predictions
