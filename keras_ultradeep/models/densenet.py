"""DenseNet (Huang, Liu, van der Maaten, Weinberger, CVPR 2017).

"Densely Connected Convolutional Networks": every layer of a dense block gets
the concatenated feature maps of all layers before it, x_l = H_l([x_0, ...,
x_{l-1}]), and adds ``growth_rate`` new maps. H_l is BN-ReLU-Conv3x3, or with
a bottleneck (DenseNet-B) BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k). Transitions
between blocks are BN-ReLU-Conv1x1-AvgPool2, the 1x1 keeping a fraction
``compression`` (theta) of the maps (DenseNet-C; both together: DenseNet-BC).

ImageNet models (DenseNet121/169/201) reproduce keras.applications layer for
layer, names included, so its weights files load unchanged. They also match
timm/torchvision's DenseNet structure (symmetric padding, concat order
[old, new]); the only difference is BatchNorm epsilon (Keras 1.001e-5, PyTorch
1e-5), a build option that converted timm weights set for themselves.

CIFAR models follow the paper and its official Torch code: a 3x3 stem conv (16
maps, or 2k with bottlenecks), three dense blocks of (L-4)/3 layers, or
(L-4)/6 bottleneck layers, and dropout after every conv but the first.

Every builder takes ``memory_efficient=True`` (Pleiss et al., "Memory-Efficient
Implementation of DenseNets", 2017): a dense block keeps its feature maps as a
list, and each layer's concat -> BN -> ReLU -> conv (1x1, or 3x3 without
bottlenecks) is one ``DenseBottleneck`` layer recomputed in the backward pass
(``keras.remat``), so training stores each map once instead of every
concatenation: memory linear in depth instead of quadratic. The variables and
their paths are the naive model's, the function is the same (gradients equal,
BatchNorm statistics updated once per step), and weights files of either form
load into either through the builders' ``weights=`` (see
:mod:`keras_ultradeep.models.densenet_memory`).
"""

from __future__ import annotations

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.models.blocks import block_stages
from keras_ultradeep.models.densenet_memory import (
    build_in_form,
    copy_weights,
    efficient_conv_block,
    saved_memory_efficient,
)

__all__ = [
    "DenseNet",
    "DenseNet121",
    "DenseNet169",
    "DenseNet201",
    "DenseNet264",
    "DenseNet161",
    "DenseNetCIFAR",
    "preprocess_input",
    "decode_predictions",
    "copy_weights",
    "saved_memory_efficient",
]

KERAS_BN_EPSILON = 1.001e-5  # keras.applications' value; PyTorch's default is 1e-5
CIFAR_BN_EPSILON = 1e-5  # the official Torch code's default


def conv_block(x, growth_rate, name, *, bottleneck, bottleneck_width, dropout_rate, bn_epsilon):
    """One dense layer H_l: it returns [x, H_l(x)] (old maps first, as Keras and timm)."""
    y = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_0_bn")(x)
    y = layers.Activation("relu", name=f"{name}_0_relu")(y)
    if bottleneck:
        y = layers.Conv2D(bottleneck_width * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(y)
        if dropout_rate:
            y = layers.Dropout(dropout_rate, name=f"{name}_1_drop")(y)
        y = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_1_bn")(y)
        y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    if dropout_rate:
        y = layers.Dropout(dropout_rate, name=f"{name}_2_drop")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def dense_block(x, num_layers, growth_rate, name, *, memory_efficient=False, **layer_options):
    """``num_layers`` dense layers; ``memory_efficient`` keeps the block's maps as a list
    (recomputing each layer's concat -> BN -> ReLU -> conv in the backward pass) and
    concatenates them once, in ``{last layer}_concat``."""
    if not memory_efficient:
        for i in range(num_layers):
            x = conv_block(x, growth_rate, f"{name}_block{i + 1}", **layer_options)
        return x
    pieces = [x]
    for i in range(num_layers):
        pieces.append(efficient_conv_block(pieces, growth_rate, f"{name}_block{i + 1}", **layer_options))
    return layers.Concatenate(name=f"{name}_block{num_layers}_concat")(pieces)


def transition_block(x, compression, name, *, dropout_rate, bn_epsilon):
    """BN-ReLU-Conv1x1(floor(theta * m))-AvgPool2, between two dense blocks."""
    x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(int(x.shape[-1] * compression), 1, use_bias=False, name=f"{name}_conv")(x)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"{name}_drop")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def imagenet_stem(x, filters, bn_epsilon):
    # Explicit zero padding + "valid" reproduces PyTorch's symmetric padding on
    # the stride-2 layers; the max-pool input is post-ReLU, so zeros are exact.
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(filters, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1")(x)


def cifar_stem(x, filters, bn_epsilon):
    del bn_epsilon  # the CIFAR stem is a bare conv; the first dense layer normalizes
    return layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv1_conv")(x)


def densenet_features(
    blocks, *, stem, stem_filters, growth_rate, bottleneck, bottleneck_width, compression,
    dropout_rate, bn_epsilon, memory_efficient=False,
):
    """The body: stem, dense blocks ``conv2..`` with transitions ``pool2..``, final BN-ReLU.

    ``memory_efficient``: dense blocks whose concat -> BN -> ReLU -> conv parts are
    recomputed in the backward pass (see :func:`dense_block`); the same function and
    weights.
    """
    layer_options = dict(
        bottleneck=bottleneck,
        bottleneck_width=bottleneck_width,
        dropout_rate=dropout_rate,
        bn_epsilon=bn_epsilon,
    )

    def features(x):
        x = stem(x, stem_filters, bn_epsilon)
        for i, num_layers in enumerate(blocks):
            x = dense_block(
                x, num_layers, growth_rate, f"conv{i + 2}", memory_efficient=memory_efficient,
                **layer_options,
            )
            if i < len(blocks) - 1:
                x = transition_block(
                    x, compression, f"pool{i + 2}", dropout_rate=dropout_rate, bn_epsilon=bn_epsilon
                )
        x = layers.BatchNormalization(epsilon=bn_epsilon, name="bn")(x)
        return layers.Activation("relu", name="relu")(x)

    return features


# --------------------------------------------------------------------------- knobs


def _check_knobs(
    *, blocks, growth_rate, stem_filters, bottleneck_width, compression, dropout_rate,
    batch_norm_epsilon,
):
    checks.positive_ints(blocks, "blocks", what="positive layer counts")
    checks.positive_int(growth_rate, "growth_rate")
    checks.positive_int(stem_filters, "stem_filters")
    checks.positive_int(bottleneck_width, "bottleneck_width")
    checks.number_in(compression, "compression", 0, 1, low_open=True)
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")


# ---------------------------------------------------------------- ImageNet models

IMAGENET_VARIANTS = {
    "densenet121": dict(blocks=(6, 12, 24, 16), growth_rate=32, stem_filters=64),
    "densenet169": dict(blocks=(6, 12, 32, 32), growth_rate=32, stem_filters=64),
    "densenet201": dict(blocks=(6, 12, 48, 32), growth_rate=32, stem_filters=64),
    "densenet264": dict(blocks=(6, 12, 64, 48), growth_rate=32, stem_filters=64),
    "densenet161": dict(blocks=(6, 12, 36, 24), growth_rate=48, stem_filters=96),
}
IMAGENET_DEFAULT_SIZE = 224
IMAGENET_MIN_SIZE = 32  # keras.applications' value: the total stride


def DenseNet(
    blocks,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="densenet",
    *,
    growth_rate=32,
    stem_filters=64,
    bottleneck_width=4,
    compression=0.5,
    dropout_rate=0.0,
    batch_norm_epsilon=None,
    memory_efficient=False,
    model_name=None,
):
    """An ImageNet DenseNet-BC with dense blocks of ``blocks`` layers.

    keras.applications' ``DenseNet(blocks, ...)`` plus the paper's knobs:
    ``growth_rate`` (k), ``stem_filters`` (2k in the paper, 96 for
    DenseNet-161), ``bottleneck_width`` (the 1x1 conv makes
    ``bottleneck_width * k`` maps), ``compression`` (theta), ``dropout_rate``
    and ``batch_norm_epsilon`` (None: the pretrained checkpoint's value, else
    keras.applications' 1.001e-5). ``memory_efficient=True`` recomputes each
    dense layer's concat -> BN -> ReLU -> conv1x1 in the backward pass
    (:class:`~keras_ultradeep.layers.DenseBottleneck`): training memory linear
    instead of quadratic in depth, the same function and the same weights.
    """
    blocks = tuple(blocks) if isinstance(blocks, list) else blocks
    model_name = model_name or "densenet"
    if batch_norm_epsilon is None:
        batch_norm_epsilon = contract.pretrained_option(
            model_name, weights, "batch_norm_epsilon", KERAS_BN_EPSILON
        )
    _check_knobs(
        blocks=blocks,
        growth_rate=growth_rate,
        stem_filters=stem_filters,
        bottleneck_width=bottleneck_width,
        compression=compression,
        dropout_rate=dropout_rate,
        batch_norm_epsilon=batch_norm_epsilon,
    )
    checks.boolean(memory_efficient, "memory_efficient")
    features = densenet_features(
        blocks,
        stem=imagenet_stem,
        stem_filters=stem_filters,
        growth_rate=growth_rate,
        bottleneck=True,
        bottleneck_width=bottleneck_width,
        compression=compression,
        dropout_rate=dropout_rate,
        bn_epsilon=batch_norm_epsilon,
        memory_efficient=memory_efficient,
    )
    arguments = contract.keras_arguments(locals())
    return build_in_form(
        DenseNet,
        {"blocks": blocks, **arguments},
        dict(growth_rate=growth_rate, stem_filters=stem_filters, bottleneck_width=bottleneck_width,
             compression=compression, dropout_rate=dropout_rate, batch_norm_epsilon=batch_norm_epsilon),
        memory_efficient,
        lambda: contract.application(
            features,
            model_name=model_name,
            default_size=IMAGENET_DEFAULT_SIZE,
            min_size=IMAGENET_MIN_SIZE,
            **arguments,
        ),
    )


IMAGENET_FAMILY = registry.Family(
    "densenet", IMAGENET_DEFAULT_SIZE, IMAGENET_MIN_SIZE, IMAGENET_VARIANTS, preprocessing="torch",
    stages=lambda config: block_stages(config["blocks"], (4, 8, 16, 32), suffix="concat", last="relu"),
)


def _imagenet_doc(title, variant, config):
    return (
        f"{title}: dense blocks {list(config['blocks'])}, growth rate "
        f"{config['growth_rate']}, {config['stem_filters']}-map stem.\n\n"
        "Takes keras.applications' arguments and :func:`DenseNet`'s other knobs\n"
        "(``dropout_rate``, ``batch_norm_epsilon``: None for the checkpoint's own,\n"
        "keras.applications' 1.001e-5 otherwise)."
    )


DenseNet121, DenseNet169, DenseNet201, DenseNet264, DenseNet161 = contract.register_family(
    DenseNet,
    IMAGENET_FAMILY,
    {
        "densenet121": "DenseNet121", "densenet169": "DenseNet169", "densenet201": "DenseNet201",
        "densenet264": "DenseNet264", "densenet161": "DenseNet161",
    },
    doc=_imagenet_doc,
    # DenseNet-264 has no public checkpoint.
    default_weights=dict.fromkeys(("densenet121", "densenet169", "densenet201", "densenet161"), "imagenet"),
)


# ------------------------------------------------------------------- CIFAR models

CIFAR_VARIANTS = {
    "densenet40_k12": dict(depth=40, growth_rate=12, bottleneck=False, compression=1.0),
    "densenet100_k12": dict(depth=100, growth_rate=12, bottleneck=False, compression=1.0),
    "densenet100_k24": dict(depth=100, growth_rate=24, bottleneck=False, compression=1.0),
    "densenet_bc100_k12": dict(depth=100, growth_rate=12, bottleneck=True, compression=0.5),
    "densenet_bc250_k24": dict(depth=250, growth_rate=24, bottleneck=True, compression=0.5),
    "densenet_bc190_k40": dict(depth=190, growth_rate=40, bottleneck=True, compression=0.5),
}
CIFAR_DEFAULT_SIZE = 32
# Two transitions halve 8x8 to 2x2: the last block's 3x3 convs still see a neighbourhood.
CIFAR_MIN_SIZE = 8


def _cifar_layers_per_block(depth, bottleneck):
    # depth = 3 blocks x n layers x (convs per layer) + stem conv + 2 transitions + classifier
    convs_per_layer = 2 if bottleneck else 1
    if isinstance(depth, int) and not isinstance(depth, bool):
        per_block, remainder = divmod(depth - 4, 3 * convs_per_layer)
        if remainder == 0 and per_block >= 1:
            return per_block
    form = (
        "6n + 4 with bottleneck=True (e.g. 100, 190, 250)"
        if bottleneck
        else "3n + 4 with bottleneck=False (e.g. 40, 100)"
    )
    raise ValueError(f"depth: expected {form}, got {depth!r}")


def DenseNetCIFAR(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    *,
    depth=100,
    growth_rate=12,
    bottleneck=True,
    compression=0.5,
    dropout_rate=0.0,
    stem_filters=None,
    batch_norm_epsilon=CIFAR_BN_EPSILON,
    memory_efficient=False,
):
    """The paper's CIFAR/SVHN DenseNet (L, k), DenseNet-B, -C and -BC.

    Args (beyond keras.applications'):
        depth: L, counting the stem conv, the convs of the three blocks, the two
            transitions and the classifier: 3n + 4, or 6n + 4 with bottlenecks.
        growth_rate: k, the maps each layer adds.
        bottleneck: DenseNet-B's 1x1 conv to 4k maps before each 3x3.
        compression: theta, the fraction of maps a transition keeps (0.5 for -C/-BC).
        dropout_rate: dropout after every conv but the stem (the paper's 0.2
            for training without augmentation).
        stem_filters: maps of the first conv; None gives the paper's 16, or 2k
            with bottlenecks.
        memory_efficient: recompute each dense layer's concat -> BN -> ReLU ->
            conv in the backward pass (training memory linear in depth instead
            of quadratic); the same function and the same weights.
    """
    checks.boolean(bottleneck, "bottleneck")
    per_block = _cifar_layers_per_block(depth, bottleneck)
    if stem_filters is None and isinstance(growth_rate, int):
        stem_filters = 2 * growth_rate if bottleneck else 16
    _check_knobs(
        blocks=(per_block,) * 3,
        growth_rate=growth_rate,
        stem_filters=stem_filters,
        bottleneck_width=4,
        compression=compression,
        dropout_rate=dropout_rate,
        batch_norm_epsilon=batch_norm_epsilon,
    )
    checks.boolean(memory_efficient, "memory_efficient")
    if name is None:
        name = f"densenet{'_bc' if bottleneck and compression < 1 else ''}{depth}_k{growth_rate}"
    features = densenet_features(
        (per_block,) * 3,
        stem=cifar_stem,
        stem_filters=stem_filters,
        growth_rate=growth_rate,
        bottleneck=bottleneck,
        bottleneck_width=4,
        compression=compression,
        dropout_rate=dropout_rate,
        bn_epsilon=batch_norm_epsilon,
        memory_efficient=memory_efficient,
    )
    arguments = contract.keras_arguments(locals())
    return build_in_form(
        DenseNetCIFAR,
        arguments,
        dict(depth=depth, growth_rate=growth_rate, bottleneck=bottleneck, compression=compression,
             dropout_rate=dropout_rate, stem_filters=stem_filters, batch_norm_epsilon=batch_norm_epsilon),
        memory_efficient,
        lambda: contract.application(
            features,
            model_name="densenet_cifar",
            default_size=CIFAR_DEFAULT_SIZE,
            min_size=CIFAR_MIN_SIZE,
            **arguments,
        ),
    )


registry.register_variants(
    {variant: (DenseNetCIFAR, config) for variant, config in CIFAR_VARIANTS.items()},
    family="densenet_cifar",
    default_size=CIFAR_DEFAULT_SIZE,
    min_size=CIFAR_MIN_SIZE,
)
CIFAR_FAMILY = registry.declare(
    registry.Family(
        "densenet_cifar", CIFAR_DEFAULT_SIZE, CIFAR_MIN_SIZE, CIFAR_VARIANTS,
        stages=lambda config: block_stages(
            (_cifar_layers_per_block(config["depth"], config["bottleneck"]),) * 3, (1, 2, 4),
            suffix="concat", last="relu",
        ),
    )
)


# ------------------------------------------------------------------ preprocessing


def preprocess_input(x, data_format=None):
    """Scales pixels to [0, 1] and normalizes with the ImageNet mean and std
    (keras.applications' "torch" mode, as the DenseNet weights expect)."""
    return contract.preprocess_input(x, data_format, mode=IMAGENET_FAMILY.preprocessing)


decode_predictions = contract.decode_predictions
