"""ResNet v1 on ImageNet (He, Zhang, Ren, Sun, CVPR 2016), with its wide
(Zagoruyko & Komodakis 2016) and aggregated (ResNeXt, Xie et al. 2017) forms.

"Deep Residual Learning for Image Recognition": each block learns a residual
F(x) and outputs relu(x + F(x)); the shortcut is the identity, or a 1x1
projection (the paper's option B) where the shape changes. ResNet-18/34 use
basic blocks (two 3x3 convs), ResNet-50/101/152 bottlenecks (1x1 reduce, 3x3,
1x1 expand to 4x the planes).

Two forms of the bottleneck exist and both are here:

* **keras.applications' form** (``ResNet50``, ``ResNet101``, ``ResNet152``;
  registry ``resnet50_keras`` ...): the original Caffe models, which stride
  the first 1x1 of a block, and give every conv a bias. Layer for layer as
  keras.applications, names included, so its weights files load unchanged.
* **torchvision/timm's form** ("ResNet v1.5", the "ResNet-B" of Bag of Tricks,
  He et al. 2019; registry ``resnet50`` ...; builders ``ResNet50B`` ...): the
  stride moves to the 3x3, convs have no bias, BatchNorm epsilon 1e-5.
  Stride-2 3x3 convs pad explicitly because Keras' ``"same"`` pads stride-2
  layers asymmetrically while PyTorch pads both sides. ResNet-18/34 exist only
  in this form. Wide ResNet-50-2/101-2 double the bottleneck width and ResNeXt
  splits the 3x3 into ``cardinality`` groups of ``bottleneck_width`` maps
  (:class:`~keras_ultradeep.layers.GroupedConv2D`); timm checkpoints of all of
  them convert with ``keras_ultradeep.convert``.

The CIFAR models are here too: the paper's 6n + 2-layer nets with 16/32/64
filters and its shortcut options A (zero padding), B and C (``ResNetCIFAR``),
and ResNeXt-29 (``ResNeXtCIFAR``).

Every residual addition can be a stochastic-depth one (Huang et al. 2016):
``survival_prob`` is the last block's survival probability p_L, decayed
linearly from 1 (``survival_rule="linear"``) or the same for every block.
"""

from __future__ import annotations

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import (
    GroupedConv2D,
    StochasticDepth,
    ZeroPadShortcut,
    survival_probabilities,
)

__all__ = [
    "ResNet",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "ResNet18",
    "ResNet34",
    "ResNet50B",
    "ResNet101B",
    "ResNet152B",
    "WideResNet50_2",
    "WideResNet101_2",
    "ResNeXt50_32x4d",
    "ResNeXt101_32x4d",
    "ResNeXt101_32x8d",
    "ResNeXt101_64x4d",
    "ResNetCIFAR",
    "ResNeXtCIFAR",
    "preprocess_input",
    "decode_predictions",
]

KERAS_BN_EPSILON = 1.001e-5  # keras.applications'
TORCH_BN_EPSILON = 1e-5  # PyTorch's default, which timm's checkpoints were trained with
STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = 4  # a bottleneck's output has 4x its planes
FORMS = ("keras", "timm")
BLOCK_TYPES = ("basic", "bottleneck")
SURVIVAL_RULES = ("linear", "uniform")


# ----------------------------------------------------------------------- blocks


def conv(x, filters, kernel_size, name, *, strides=1, groups=1, dilation=1, use_bias=False, pad=False):
    """A conv named ``{name}_conv`` (grouped when ``groups`` > 1).

    Stride-2 convs pad explicitly (``{name}_pad``, or any conv with ``pad``):
    PyTorch pads (k - 1) / 2 on every side, while Keras' "same" pads only the
    bottom/right of an even input at stride 2.
    """
    if kernel_size > 1 and (strides > 1 or pad):
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"  # at stride 1 (dilated or not) the same as PyTorch's
    options = dict(
        strides=strides, padding=padding, dilation_rate=dilation, use_bias=use_bias, name=f"{name}_conv"
    )
    if groups > 1:
        return GroupedConv2D(filters, kernel_size, groups, **options)(x)
    return layers.Conv2D(filters, kernel_size, **options)(x)


def conv_bn(x, filters, kernel_size, name, *, use_bias, bn_epsilon, **conv_options):
    """:func:`conv` and BatchNorm ``{name}_bn``."""
    x = conv(x, filters, kernel_size, name, use_bias=use_bias, **conv_options)
    return layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)


def _merge(shortcut, residual, name, survival_prob):
    if survival_prob < 1.0:
        x = StochasticDepth(survival_prob, name=f"{name}_add")([shortcut, residual])
    else:
        x = layers.Add(name=f"{name}_add")([shortcut, residual])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _shortcut(x, filters, stride, name, *, use_bias, bn_epsilon):
    if stride == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, f"{name}_0", strides=stride, use_bias=use_bias, bn_epsilon=bn_epsilon)


def basic_block(x, planes, stride, name, *, use_bias, bn_epsilon, survival_prob, **unused):
    """Two 3x3 convs (ResNet-18/34); the first one strides."""
    shortcut = _shortcut(x, planes, stride, name, use_bias=use_bias, bn_epsilon=bn_epsilon)
    y = conv_bn(x, planes, 3, f"{name}_1", strides=stride, use_bias=use_bias, bn_epsilon=bn_epsilon)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = conv_bn(y, planes, 3, f"{name}_2", use_bias=use_bias, bn_epsilon=bn_epsilon)
    return _merge(shortcut, y, name, survival_prob)


def bottleneck_block(
    x, planes, stride, name, *, form, cardinality, bottleneck_width, use_bias, bn_epsilon,
    survival_prob, dilation=1,
):
    """1x1 reduce, 3x3 (grouped for ResNeXt, dilated for DRN), 1x1 expand to ``4 * planes``.

    keras.applications strides the first 1x1 (as the original Caffe models);
    torchvision/timm stride the 3x3, which loses no input pixels.
    """
    width = int(planes * bottleneck_width / 64) * cardinality
    shortcut = _shortcut(x, EXPANSION * planes, stride, name, use_bias=use_bias, bn_epsilon=bn_epsilon)
    stride_1x1, stride_3x3 = (stride, 1) if form == "keras" else (1, stride)
    y = conv_bn(x, width, 1, f"{name}_1", strides=stride_1x1, use_bias=use_bias, bn_epsilon=bn_epsilon)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = conv_bn(
        y, width, 3, f"{name}_2", strides=stride_3x3, groups=cardinality, dilation=dilation,
        use_bias=use_bias, bn_epsilon=bn_epsilon,
    )
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = conv_bn(y, EXPANSION * planes, 1, f"{name}_3", use_bias=use_bias, bn_epsilon=bn_epsilon)
    return _merge(shortcut, y, name, survival_prob)


def stem(x, *, use_bias, bn_epsilon):
    """7x7/2 conv-BN-ReLU and 3x3/2 max-pool, padded explicitly as PyTorch does."""
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)  # post-ReLU: zeros never win the max
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def resnet_features(blocks, *, block, survival_probs, **block_options):
    """Stem and stages ``conv2``..``conv5``; the first block of each stage but
    the first halves the resolution."""
    block_fn = bottleneck_block if block == "bottleneck" else basic_block

    def features(x):
        x = stem(x, use_bias=block_options["use_bias"], bn_epsilon=block_options["bn_epsilon"])
        index = 0
        for stage, (num_blocks, planes) in enumerate(zip(blocks, STAGE_PLANES)):
            for i in range(num_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                x = block_fn(
                    x, planes, stride, f"conv{stage + 2}_block{i + 1}",
                    survival_prob=survival_probs[index], **block_options,
                )
                index += 1
        return x

    return features


# ------------------------------------------------------------------------ knobs


def _check_knobs(blocks, block, form, cardinality, bottleneck_width, use_bias, batch_norm_epsilon):
    checks.positive_ints(blocks, "blocks", length=len(STAGE_PLANES), what="positive block counts, one per stage")
    checks.one_of(block, "block", BLOCK_TYPES)
    checks.one_of(form, "form", FORMS)
    checks.positive_int(cardinality, "cardinality")
    checks.positive_int(bottleneck_width, "bottleneck_width")
    if block == "basic" and (cardinality != 1 or bottleneck_width != 64):
        raise ValueError(
            "cardinality: basic blocks have no bottleneck to group or widen; use "
            "block='bottleneck' for ResNeXt and wide ResNets"
        )
    if block == "basic" and form == "keras":
        raise ValueError("form: keras.applications has no basic-block ResNet; use form='timm'")
    if int(STAGE_PLANES[0] * bottleneck_width / 64) < 1:
        raise ValueError(f"bottleneck_width: {bottleneck_width} leaves no maps per group")
    checks.boolean(use_bias, "use_bias")
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")


def _survival_probs(num_blocks, survival_prob, survival_rule):
    checks.number_in(survival_prob, "survival_prob", 0, 1, low_open=True)
    checks.one_of(survival_rule, "survival_rule", SURVIVAL_RULES)
    return survival_probabilities(num_blocks, survival_prob, rule=survival_rule)


# ------------------------------------------------------------------- variants

_KERAS = dict(block="bottleneck", form="keras")
_TIMM = dict(block="bottleneck", form="timm")
VARIANTS = {
    # keras.applications' models (the original Caffe form).
    "resnet50_keras": dict(blocks=(3, 4, 6, 3), **_KERAS),
    "resnet101_keras": dict(blocks=(3, 4, 23, 3), **_KERAS),
    "resnet152_keras": dict(blocks=(3, 8, 36, 3), **_KERAS),
    # torchvision/timm's models, named as timm names them.
    "resnet18": dict(blocks=(2, 2, 2, 2), block="basic", form="timm"),
    "resnet34": dict(blocks=(3, 4, 6, 3), block="basic", form="timm"),
    "resnet50": dict(blocks=(3, 4, 6, 3), **_TIMM),
    "resnet101": dict(blocks=(3, 4, 23, 3), **_TIMM),
    "resnet152": dict(blocks=(3, 8, 36, 3), **_TIMM),
    "wide_resnet50_2": dict(blocks=(3, 4, 6, 3), bottleneck_width=128, **_TIMM),
    "wide_resnet101_2": dict(blocks=(3, 4, 23, 3), bottleneck_width=128, **_TIMM),
    "resnext50_32x4d": dict(blocks=(3, 4, 6, 3), cardinality=32, bottleneck_width=4, **_TIMM),
    "resnext101_32x4d": dict(blocks=(3, 4, 23, 3), cardinality=32, bottleneck_width=4, **_TIMM),
    "resnext101_32x8d": dict(blocks=(3, 4, 23, 3), cardinality=32, bottleneck_width=8, **_TIMM),
    "resnext101_64x4d": dict(blocks=(3, 4, 23, 3), cardinality=64, bottleneck_width=4, **_TIMM),
}
DEFAULT_SIZE = 224
MIN_SIZE = 32  # keras.applications' value: the total stride


def ResNet(
    blocks,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet",
    *,
    block="bottleneck",
    form="timm",
    cardinality=1,
    bottleneck_width=64,
    use_bias=None,
    batch_norm_epsilon=None,
    survival_prob=1.0,
    survival_rule="linear",
):
    """An ImageNet ResNet with ``blocks`` blocks in each of its four stages.

    Args (beyond keras.applications'):
        blocks: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        block: ``"basic"`` (two 3x3 convs) or ``"bottleneck"``.
        form: ``"timm"`` (stride on the 3x3, torchvision/timm) or ``"keras"``
            (stride on the first 1x1, keras.applications).
        cardinality: ResNeXt's number of groups in each 3x3 conv (1: ResNet).
        bottleneck_width: maps per group in the first stage's 3x3 (doubling
            every stage): 64 for ResNet, 4 for ResNeXt 32x4d, 128 for Wide
            ResNet-50-2.
        use_bias: conv biases; None: True in the keras form, False in timm's.
        batch_norm_epsilon: None: 1.001e-5 in the keras form, 1e-5 in timm's.
        survival_prob: stochastic depth's survival probability of the last
            block, p_L (1.0: no stochastic depth).
        survival_rule: ``"linear"`` (p_l = 1 - l/L (1 - p_L)) or ``"uniform"``.
    """
    blocks = tuple(blocks) if isinstance(blocks, list) else blocks
    checks.one_of(form, "form", FORMS)
    if use_bias is None:
        use_bias = form == "keras"
    if batch_norm_epsilon is None:
        batch_norm_epsilon = KERAS_BN_EPSILON if form == "keras" else TORCH_BN_EPSILON
    _check_knobs(blocks, block, form, cardinality, bottleneck_width, use_bias, batch_norm_epsilon)
    survival_probs = _survival_probs(sum(blocks), survival_prob, survival_rule)
    defaults = dict(cardinality=1, bottleneck_width=64)
    model_name = contract.variant_name(
        VARIANTS,
        dict(blocks=blocks, block=block, form=form, cardinality=cardinality, bottleneck_width=bottleneck_width),
        "resnet",
        normalize=lambda known: {**defaults, **known},
    )
    features = resnet_features(
        blocks,
        block=block,
        survival_probs=survival_probs,
        form=form,
        cardinality=cardinality,
        bottleneck_width=bottleneck_width,
        use_bias=use_bias,
        bn_epsilon=batch_norm_epsilon,
    )
    return contract.application(
        features,
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


def _builder(variant, title, default_weights=None):
    config = VARIANTS[variant]
    form = "keras.applications'" if config["form"] == "keras" else "torchvision/timm's"
    return contract.registered_variant(
        ResNet, variant, title, config, default_weights=default_weights,
        family="resnet", default_size=DEFAULT_SIZE, min_size=MIN_SIZE,
        doc=(
            f"{title} ({variant}): {config['block']} blocks {list(config['blocks'])}, {form} form.\n\n"
            "Takes keras.applications' arguments and :func:`ResNet`'s other knobs\n"
            "(``survival_prob``/``survival_rule`` for stochastic depth, ``batch_norm_epsilon``)."
        ),
    )


ResNet50 = _builder("resnet50_keras", "ResNet50", "imagenet")
ResNet101 = _builder("resnet101_keras", "ResNet101", "imagenet")
ResNet152 = _builder("resnet152_keras", "ResNet152", "imagenet")
ResNet18 = _builder("resnet18", "ResNet18")
ResNet34 = _builder("resnet34", "ResNet34")
ResNet50B = _builder("resnet50", "ResNet50B")
ResNet101B = _builder("resnet101", "ResNet101B")
ResNet152B = _builder("resnet152", "ResNet152B")
WideResNet50_2 = _builder("wide_resnet50_2", "WideResNet50_2")
WideResNet101_2 = _builder("wide_resnet101_2", "WideResNet101_2")
ResNeXt50_32x4d = _builder("resnext50_32x4d", "ResNeXt50_32x4d")
ResNeXt101_32x4d = _builder("resnext101_32x4d", "ResNeXt101_32x4d")
ResNeXt101_32x8d = _builder("resnext101_32x8d", "ResNeXt101_32x8d")
ResNeXt101_64x4d = _builder("resnext101_64x4d", "ResNeXt101_64x4d")


# ------------------------------------------------------------------ CIFAR models

CIFAR_DEFAULT_SIZE = 32
CIFAR_MIN_SIZE = 8  # two stride-2 stages leave 2x2 maps
CIFAR_BN_EPSILON = 1e-5  # the papers' Torch code
CIFAR_WIDTHS = (16, 32, 64)
SHORTCUTS = ("A", "B", "C")


def _cifar_shortcut(x, filters, stride, name, *, option, bn_epsilon):
    """The paper's options: A zero-pads (no parameters), B projects where the
    shape changes, C projects everywhere."""
    changes = stride != 1 or x.shape[-1] != filters
    if option == "C" or (option == "B" and changes):
        return conv_bn(x, filters, 1, f"{name}_0", strides=stride, use_bias=False, bn_epsilon=bn_epsilon)
    if changes:
        return ZeroPadShortcut(filters, strides=stride, name=f"{name}_0_pad")(x)
    return x


def cifar_basic_block(x, filters, stride, name, *, shortcut, bn_epsilon, survival_prob):
    skip = _cifar_shortcut(x, filters, stride, name, option=shortcut, bn_epsilon=bn_epsilon)
    y = conv_bn(x, filters, 3, f"{name}_1", strides=stride, use_bias=False, bn_epsilon=bn_epsilon)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = conv_bn(y, filters, 3, f"{name}_2", use_bias=False, bn_epsilon=bn_epsilon)
    return _merge(skip, y, name, survival_prob)


def _cifar_blocks_per_stage(depth, divisor, form):
    if isinstance(depth, int) and not isinstance(depth, bool):
        per_stage, remainder = divmod(depth - 2, divisor)
        if remainder == 0 and per_stage >= 1:
            return per_stage
    raise ValueError(f"depth: expected {form}, got {depth!r}")


def ResNetCIFAR(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    *,
    depth=20,
    shortcut="A",
    survival_prob=1.0,
    survival_rule="linear",
    batch_norm_epsilon=CIFAR_BN_EPSILON,
):
    """The paper's CIFAR ResNet: 6n + 2 layers, three stages of n basic blocks
    with 16, 32 and 64 filters on a 3x3 conv stem.

    Args (beyond keras.applications'):
        depth: 6n + 2 (20, 32, 44, 56, 110, 1202).
        shortcut: ``"A"`` (zero-padding identity, parameter free, as the paper's
            CIFAR models), ``"B"`` (projection where the shape changes) or
            ``"C"`` (projection everywhere).
        survival_prob, survival_rule: stochastic depth (Huang et al. trained
            ResNet-110 and ResNet-1202 with linear decay to 0.5).
    """
    per_stage = _cifar_blocks_per_stage(depth, 6, "6n + 2 (e.g. 20, 32, 44, 56, 110, 1202)")
    name = name or f"resnet{depth}_cifar"
    checks.one_of(shortcut, "shortcut", SHORTCUTS)
    survival_probs = _survival_probs(3 * per_stage, survival_prob, survival_rule)

    def features(x):
        x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1_conv")(x)
        x = layers.BatchNormalization(epsilon=batch_norm_epsilon, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
        for stage, filters in enumerate(CIFAR_WIDTHS):
            for i in range(per_stage):
                x = cifar_basic_block(
                    x, filters, 2 if stage > 0 and i == 0 else 1, f"conv{stage + 2}_block{i + 1}",
                    shortcut=shortcut, bn_epsilon=batch_norm_epsilon,
                    survival_prob=survival_probs[stage * per_stage + i],
                )
        return x

    return contract.application(
        features,
        model_name="resnet_cifar",
        default_size=CIFAR_DEFAULT_SIZE,
        min_size=CIFAR_MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


def ResNeXtCIFAR(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    *,
    depth=29,
    cardinality=8,
    bottleneck_width=64,
    survival_prob=1.0,
    survival_rule="linear",
    batch_norm_epsilon=CIFAR_BN_EPSILON,
):
    """ResNeXt-29 for CIFAR (Xie et al. 2017, the official Torch code): a 64-map
    3x3 stem and three stages of (depth - 2) / 9 bottlenecks with 256, 512 and
    1024 output maps; each 3x3 has ``cardinality`` groups of
    ``bottleneck_width`` maps in the first stage, doubling every stage, and
    strides like timm's form (the 3x3, not the 1x1).
    """
    per_stage = _cifar_blocks_per_stage(depth, 9, "9n + 2 (e.g. 29)")
    name = name or f"resnext{depth}_{cardinality}x{bottleneck_width}d"
    checks.positive_int(cardinality, "cardinality")
    checks.positive_int(bottleneck_width, "bottleneck_width")
    survival_probs = _survival_probs(3 * per_stage, survival_prob, survival_rule)
    options = dict(
        form="timm", cardinality=cardinality, bottleneck_width=bottleneck_width, use_bias=False,
        bn_epsilon=batch_norm_epsilon,
    )

    def features(x):
        x = layers.Conv2D(64, 3, padding="same", use_bias=False, name="conv1_conv")(x)
        x = layers.BatchNormalization(epsilon=batch_norm_epsilon, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
        for stage in range(3):
            for i in range(per_stage):
                x = bottleneck_block(
                    x, STAGE_PLANES[stage], 2 if stage > 0 and i == 0 else 1,
                    f"conv{stage + 2}_block{i + 1}",
                    survival_prob=survival_probs[stage * per_stage + i], **options,
                )
        return x

    return contract.application(
        features,
        model_name="resnext_cifar",
        default_size=CIFAR_DEFAULT_SIZE,
        min_size=CIFAR_MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


CIFAR_VARIANTS = {
    **{f"resnet{depth}_cifar": (ResNetCIFAR, dict(depth=depth)) for depth in (20, 32, 44, 56, 110, 1202)},
    "resnext29_8x64d": (ResNeXtCIFAR, dict(depth=29, cardinality=8, bottleneck_width=64)),
    "resnext29_16x64d": (ResNeXtCIFAR, dict(depth=29, cardinality=16, bottleneck_width=64)),
}
registry.register_variants(
    CIFAR_VARIANTS, family="resnet_cifar", default_size=CIFAR_DEFAULT_SIZE, min_size=CIFAR_MIN_SIZE
)


# ------------------------------------------------------------------ preprocessing


def preprocess_input(x, data_format=None, mode="caffe"):
    """keras.applications' ResNet preprocessing: ``"caffe"`` (RGB to BGR, ImageNet
    mean subtracted, as the keras-form weights expect); ``mode="torch"`` for
    weights converted from timm/torchvision."""
    return contract.preprocess_input(x, data_format, mode=mode)


decode_predictions = contract.decode_predictions
