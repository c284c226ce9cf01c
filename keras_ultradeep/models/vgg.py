"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", ICLR 2015).

The idea: depth from nothing but small filters. Five stages of 3x3 convs
(stride 1, padding 1, ReLU) with 64, 128, 256, 512 and 512 maps, each stage
ending in a 2x2/2 max-pool, then three fully connected layers (4096, 4096,
classes; dropout 0.5 after the first two). Two stacked 3x3 convs see a 5x5
field and three a 7x7 one, with fewer weights and more non-linearities than
one large filter. The configurations of the paper's Table 1 differ only in the
convs per stage:

=======  ===========  ================================================  ======  ========
config   registry     convs per stage (kernel sizes)                    layers  Table 2
=======  ===========  ================================================  ======  ========
A        vgg11        3 | 3 | 3 3 | 3 3 | 3 3                           11      133M
A-LRN    vgg11_lrn    A, with LRN after the first conv's ReLU           11      133M
B        vgg13        3 3 | 3 3 | 3 3 | 3 3 | 3 3                       13      133M
C        vgg16_c      3 3 | 3 3 | 3 3 1 | 3 3 1 | 3 3 1                 16      134M
D        vgg16        3 3 | 3 3 | 3 3 3 | 3 3 3 | 3 3 3                 16      138M
E        vgg19        3 3 | 3 3 | 3 3 3 3 | 3 3 3 3 | 3 3 3 3           19      144M
=======  ===========  ================================================  ======  ========

Configuration C is a 16-layer net (its last conv in stages 3-5 is a 1x1 conv,
a linear map of the channels followed by a ReLU); it is registered as
``vgg16_c`` so that ``vgg16`` stays the D configuration everyone means.
A-LRN's local response normalization is the AlexNet one
(:class:`~keras_ultradeep.layers.LocalResponseNormalization`, k=2, n=5,
alpha=1e-4, beta=0.75); the paper found it does not help.

``VGG16`` and ``VGG19`` (registry ``vgg16_keras``, ``vgg19_keras``) are
keras.applications' models layer for layer
(``block{s}_conv{n}``, ``block{s}_pool``, ``flatten``, ``fc1``, ``fc2``,
``predictions``), so a weights file of ``keras.applications.VGG16`` (the
published ``.h5`` or a ``.weights.h5``) loads unchanged. Ours also has the
paper's dropout after ``fc1`` and ``fc2`` (``fc1_drop``, ``fc2_drop``), which
has no weights and does nothing at inference.

``vgg16`` and ``vgg19`` are timm's names and so timm's models: the same
layers, with timm's ``tv_in1k`` weights (``weights="imagenet"`` on them means
that tag, and ImageNet mean/std preprocessing).
``vgg11_bn`` ... ``vgg19_bn`` are torchvision/timm's batch-normalized forms:
conv (with bias) -> BatchNorm (epsilon 1e-5) -> ReLU. timm's checkpoints of
every ``vgg*`` and ``vgg*_bn`` convert with ``keras_ultradeep.convert``; timm
computes the first two FC layers as a 7x7 conv and a 1x1 conv (its
``pre_logits``), which on the 7x7 map of a 224x224 input is exactly our
flatten + Dense.

Parameter counts (1000 classes, 224x224; no BatchNorm, so trainable equals
Keras' total): A 132,863,336; B 133,047,848; C 133,638,952; D 138,357,544;
E 143,667,240 -- Table 2's 133, 133, 134, 138 and 144 million. The BN forms add
two trainable (and two moving) numbers per conv channel: vgg16_bn has
138,365,992 trainable parameters as torchvision's.
"""

from __future__ import annotations

import functools

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import LocalResponseNormalization

__all__ = [
    "VGG",
    "VGG11",
    "VGG11_LRN",
    "VGG13",
    "VGG16_C",
    "VGG16",
    "VGG19",
    "VGG11_BN",
    "VGG13_BN",
    "VGG16_BN",
    "VGG19_BN",
    "vgg_head",
    "preprocess_input",
    "decode_predictions",
]

STAGE_WIDTHS = (64, 128, 256, 512, 512)
# Table 1: the kernel size of every conv, stage by stage.
CONFIGS = {
    "A": ((3,), (3,), (3, 3), (3, 3), (3, 3)),
    "B": ((3, 3), (3, 3), (3, 3), (3, 3), (3, 3)),
    "C": ((3, 3), (3, 3), (3, 3, 1), (3, 3, 1), (3, 3, 1)),
    "D": ((3, 3), (3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3)),
    "E": ((3, 3), (3, 3), (3, 3, 3, 3), (3, 3, 3, 3), (3, 3, 3, 3)),
}
TORCH_BN_EPSILON = 1e-5  # torchvision/timm's BN forms
DEFAULT_SIZE = 224
MIN_SIZE = 32  # five 2x2/2 max-pools


# ----------------------------------------------------------------------- blocks


def conv_block(x, filters, kernel_size, name, *, batch_norm, bn_epsilon):
    """A conv ``{name}`` with ReLU; with ``batch_norm`` conv -> ``{name}_bn`` ->
    ``{name}_relu`` (torchvision's order; the conv keeps its bias)."""
    if not batch_norm:
        return layers.Conv2D(filters, kernel_size, padding="same", activation="relu", name=name)(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", name=name)(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def vgg_features(stages, *, batch_norm, lrn, bn_epsilon):
    """Stages ``block1``..``block5``: convs ``block{s}_conv{n}``, each stage
    ended by the 2x2/2 max-pool ``block{s}_pool`` (keras.applications' names);
    with ``lrn``, ``block1_lrn`` after the first conv (A-LRN)."""

    def features(x):
        for s, (kernels, filters) in enumerate(zip(stages, STAGE_WIDTHS), start=1):
            for n, kernel_size in enumerate(kernels, start=1):
                x = conv_block(
                    x, filters, kernel_size, f"block{s}_conv{n}",
                    batch_norm=batch_norm, bn_epsilon=bn_epsilon,
                )
                if lrn and s == 1 and n == 1:  # AlexNet's LRN: k=2, n=5, alpha=1e-4, beta=0.75
                    x = LocalResponseNormalization(
                        size=5, alpha=1e-4, beta=0.75, k=2.0, name="block1_lrn"
                    )(x)
            x = layers.MaxPooling2D(2, strides=2, name=f"block{s}_pool")(x)
        return x

    return features


def vgg_head(
    x, *, include_top, pooling, classes, classifier_activation, fc_units=4096, dropout_rate=0.5
):
    """VGG's head: ``flatten``, ``fc1`` and ``fc2`` (``fc_units`` each, ReLU,
    dropout ``fc1_drop``/``fc2_drop``), ``predictions``. Without the top,
    keras.applications' pooling (:func:`keras_ultradeep.contract.classifier_head`)."""
    if not include_top:
        return contract.classifier_head(
            x, include_top=False, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation,
        )
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(fc_units, activation="relu", name=f"fc{i}")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name=f"fc{i}_drop")(x)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


# ------------------------------------------------------------------------ knobs


def _odd_kernels(stage):
    return (
        isinstance(stage, (tuple, list))
        and len(stage) > 0
        and all(not isinstance(k, bool) and isinstance(k, int) and k >= 1 and k % 2 for k in stage)
    )


def _stages(config):
    """Table 1's letter, or five stages of kernel sizes, as a tuple of tuples."""
    if isinstance(config, str) and config in CONFIGS:
        return CONFIGS[config]
    if (
        isinstance(config, (tuple, list))
        and len(config) == len(STAGE_WIDTHS)
        and all(map(_odd_kernels, config))
    ):
        return tuple(tuple(stage) for stage in config)
    raise ValueError(
        f"config: expected one of {sorted(CONFIGS)} or 5 stages of odd kernel sizes, "
        f"e.g. ((3,), (3,), (3, 3), (3, 3), (3, 3)), got {config!r}"
    )


def _check_knobs(batch_norm, lrn, dropout_rate, fc_units, batch_norm_epsilon):
    checks.boolean(batch_norm, "batch_norm")
    checks.boolean(lrn, "lrn")
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    checks.positive_int(fc_units, "fc_units")
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")


# --------------------------------------------------------------------- variants

VARIANTS = {
    "vgg11": dict(config="A", batch_norm=False, lrn=False),
    "vgg11_lrn": dict(config="A", batch_norm=False, lrn=True),
    "vgg13": dict(config="B", batch_norm=False, lrn=False),
    "vgg16_c": dict(config="C", batch_norm=False, lrn=False),
    "vgg16_keras": dict(config="D", batch_norm=False, lrn=False),
    "vgg19_keras": dict(config="E", batch_norm=False, lrn=False),
    # timm's names are timm's models, so that "vgg16.<tag>" is timm's <tag>:
    # the keras form's layers (timm's 7x7-conv pre_logits is exactly flatten +
    # fc1 on the 7x7 map of a 224x224 input), timm's weights.
    "vgg16": dict(config="D", batch_norm=False, lrn=False),
    "vgg19": dict(config="E", batch_norm=False, lrn=False),
    "vgg11_bn": dict(config="A", batch_norm=True, lrn=False),
    "vgg13_bn": dict(config="B", batch_norm=True, lrn=False),
    "vgg16_bn": dict(config="D", batch_norm=True, lrn=False),
    "vgg19_bn": dict(config="E", batch_norm=True, lrn=False),
}


def VGG(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="vgg",
    *,
    config="D",
    batch_norm=False,
    lrn=False,
    dropout_rate=0.5,
    fc_units=4096,
    batch_norm_epsilon=TORCH_BN_EPSILON,
    model_name=None,
):
    """A VGG network of the paper's Table 1.

    Args (beyond keras.applications'):
        config: ``"A"`` (11 layers), ``"B"`` (13), ``"C"`` (16, 1x1 convs last
            in stages 3-5), ``"D"`` (16) or ``"E"`` (19); or five stages of
            kernel sizes, e.g. ``((3,), (3,), (3, 3), (3, 3), (3, 3))`` for A.
        batch_norm: conv -> BatchNorm -> ReLU (torchvision/timm's ``_bn`` nets).
        lrn: local response normalization after the first conv (A-LRN).
        dropout_rate: dropout after ``fc1`` and ``fc2`` (0.5, the paper's).
        fc_units: width of ``fc1`` and ``fc2`` (4096).
        batch_norm_epsilon: 1e-5, PyTorch's (with ``batch_norm``).
    """
    stages = _stages(config)
    _check_knobs(batch_norm, lrn, dropout_rate, fc_units, batch_norm_epsilon)
    model_name = model_name or "vgg"
    features = vgg_features(stages, batch_norm=batch_norm, lrn=lrn, bn_epsilon=batch_norm_epsilon)
    return contract.application(
        features,
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=functools.partial(vgg_head, fc_units=fc_units, dropout_rate=dropout_rate),
        **contract.keras_arguments(locals()),
    )


FAMILY = registry.Family(
    "vgg", DEFAULT_SIZE, MIN_SIZE, VARIANTS, preprocessing="caffe",
    # keras.applications' names: each block ends with its max-pool.
    stages=lambda config: tuple((f"block{s}_pool", 2**s) for s in range(1, 6)),
)
DESCRIPTIONS = {
    "vgg11": "configuration A, 11 weight layers",
    "vgg11_lrn": "configuration A-LRN, A with local response normalization",
    "vgg13": "configuration B, 13 weight layers",
    "vgg16_c": "configuration C, 16 weight layers, 1x1 convs last in stages 3-5",
    "vgg16_keras": "configuration D, keras.applications' VGG16 layer for layer",
    "vgg19_keras": "configuration E, keras.applications' VGG19 layer for layer",
    "vgg16": "configuration D, timm's vgg16 (tv_in1k weights)",
    "vgg19": "configuration E, timm's vgg19 (tv_in1k weights)",
    **{
        f"vgg{depth}_bn": f"configuration {letter} with BatchNorm, torchvision/timm's vgg{depth}_bn"
        for depth, letter in ((11, "A"), (13, "B"), (16, "D"), (19, "E"))
    },
}


def _doc(title, variant, config):
    return (
        f"{title} ({variant}): {DESCRIPTIONS[variant]}.\n\n"
        "Takes keras.applications' arguments and ``dropout_rate``, ``fc_units``"
        f"{', ``batch_norm_epsilon``' if config['batch_norm'] else ''}; see :func:`VGG`."
    )


(
    VGG11, VGG11_LRN, VGG13, VGG16_C, VGG16, VGG19, VGG16Timm, VGG19Timm, VGG11_BN, VGG13_BN, VGG16_BN, VGG19_BN
) = contract.register_family(
    VGG,
    FAMILY,
    {
        "vgg11": "VGG11", "vgg11_lrn": "VGG11_LRN", "vgg13": "VGG13", "vgg16_c": "VGG16_C",
        "vgg16_keras": "VGG16", "vgg19_keras": "VGG19", "vgg16": "VGG16Timm", "vgg19": "VGG19Timm",
        "vgg11_bn": "VGG11_BN", "vgg13_bn": "VGG13_BN", "vgg16_bn": "VGG16_BN", "vgg19_bn": "VGG19_BN",
    },
    doc=_doc,
    default_weights={"vgg16_keras": "imagenet", "vgg19_keras": "imagenet"},
)


# ------------------------------------------------------------------ preprocessing


def preprocess_input(x, data_format=None, mode=FAMILY.preprocessing):
    """Pixels in [0, 255], RGB, to the models' input.

    ``mode="caffe"`` (default, keras.applications' VGG16/VGG19 weights): RGB
    to BGR and the ImageNet mean subtracted; ``"torch"`` for torchvision/timm
    checkpoints (``tv_in1k``); ``"tf"`` scales to [-1, 1].
    """
    return contract.preprocess_input(x, data_format, mode=mode)


decode_predictions = contract.decode_predictions
