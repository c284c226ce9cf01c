"""Network in Network for CIFAR (Lin, Chen, Yan, "Network In Network", ICLR 2014).

The idea: replace the linear filter of a conv layer by a small multilayer
perceptron slid over the image -- an "mlpconv" layer, a conv followed by two
1x1 convs ("cascaded cross channel parametric pooling", ``cccp``), every one
with bias and ReLU. The last mlpconv produces one map per class, and global
average pooling of those maps replaces the fully connected layers: the class
scores are the maps' means, which need no parameters and cannot overfit.

``nin_cifar`` is the authors' CIFAR-10 network (their cuda-convnet definition
``NIN/cifar-10_def``, as also ported to the Caffe model zoo):

=========  =======================================  =========  ========
mlpconv    layers (all with bias and ReLU)          output     params
=========  =======================================  =========  ========
1          conv1 5x5 192, cccp1 160, cccp2 96       32x32x96   60,928
           pool1 3x3/2 max, dropout 0.5             16x16x96
2          conv2 5x5 192, cccp3 192, cccp4 192      16x16x192  535,104
           pool2 3x3/2 max, dropout 0.5             8x8x192
3          conv3 3x3 192, cccp5 192, cccp6 classes  8x8x10     370,954
head       global average pool, softmax             10
=========  =======================================  =========  ========

966,986 parameters with 10 classes (984,356 with 100), no BatchNorm and no
fully connected layer. Published accuracy (paperswithcode's copy of the
paper's tables, unconfirmed here): CIFAR-10 91.2% (with augmentation),
CIFAR-100 64.3%.

Details that make it the original:

* The pools are cuda-convnet/Caffe's ceil-mode 3x3/2 windows without padding
  (32 -> 16 -> 8). For an even side that is exactly Keras' ``"same"``
  pooling, which pads only after the last row/column and never lets the
  padding win the max (or count in an average). For odd sides the two differ
  (ceil mode gives (side - 1) / 2 rows, ``"same"`` one more): sides divisible
  by 4 reproduce the original geometry.
* ``second_pool="avg"`` is the Caffe-zoo model's average pool2 (the original
  definition max-pools both).
* cccp6 has a ReLU too, so the pooled class scores are non-negative before
  the softmax, as in the official definitions.

The head is convolutional: with the top, the third mlpconv (whose cccp6
makes ``classes`` maps), ``avg_pool`` and the activation ``predictions``.
Without it the model ends after mlpconv 2's dropout (8x8x192 on CIFAR), and
``pooling`` pools that map, as keras.applications does.
"""

from __future__ import annotations

from keras import layers

from keras_ultradeep import checks, contract, registry

__all__ = ["NINCIFAR", "nin_head"]

DEFAULT_SIZE = 32
MIN_SIZE = 8  # two stride-2 pools leave 2x2 maps
POOLS = ("max", "avg")


def mlpconv(x, filters, kernel_size, names):
    """A ``kernel_size`` conv and two 1x1 convs (the "micro network"), each
    with bias and ReLU; ``names`` are the three layers' names."""
    for width, size, name in zip(filters, (kernel_size, 1, 1), names):
        x = layers.Conv2D(width, size, padding="same", activation="relu", name=name)(x)
    return x


def nin_features(*, second_pool, dropout_rate):
    """mlpconv 1 and 2, each ended by a 3x3/2 pool and dropout."""

    def features(x):
        x = mlpconv(x, (192, 160, 96), 5, ("conv1", "cccp1", "cccp2"))
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="drop1")(x)
        x = mlpconv(x, (192, 192, 192), 5, ("conv2", "cccp3", "cccp4"))
        pool = layers.MaxPooling2D if second_pool == "max" else layers.AveragePooling2D
        x = pool(3, strides=2, padding="same", name="pool2")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="drop2")(x)
        return x

    return features


def nin_head(x, *, include_top, pooling, classes, classifier_activation):
    """The global-average-pooling head: mlpconv 3 (conv3 3x3 192, cccp5 192,
    cccp6 ``classes``), ``avg_pool`` and ``predictions`` (the activation).
    Without the top, keras.applications' pooling of the features."""
    if not include_top:
        return contract.classifier_head(
            x, include_top=False, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation,
        )
    x = mlpconv(x, (192, 192, classes), 3, ("conv3", "cccp5", "cccp6"))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return layers.Activation(classifier_activation, name="predictions")(x)


def NINCIFAR(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="nin_cifar",
    *,
    second_pool="max",
    dropout_rate=0.5,
):
    """Network in Network, the authors' CIFAR model.

    Args (beyond keras.applications'):
        second_pool: ``"max"`` (the original cuda-convnet definition) or
            ``"avg"`` (the Caffe model zoo's) for pool2.
        dropout_rate: dropout after pool1 and pool2 (0.5).
    """
    checks.one_of(second_pool, "second_pool", POOLS)
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    return contract.application(
        nin_features(second_pool=second_pool, dropout_rate=dropout_rate),
        model_name="nin_cifar",
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=nin_head,
        **contract.keras_arguments(locals()),
    )


registry.register_variants(
    {"nin_cifar": (NINCIFAR, {})},
    family="nin",
    default_size=DEFAULT_SIZE,
    min_size=MIN_SIZE,
)
