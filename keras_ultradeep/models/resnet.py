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

import functools

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import ZeroPadShortcut
from keras_ultradeep.models.blocks import (
    STAGE_PLANES,
    basic_block,
    block_stages,
    bottleneck_block,
    cifar_blocks_per_stage,
    conv_bn,
    stem,
    survival_probs,
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
FORMS = ("keras", "timm")
BLOCK_TYPES = ("basic", "bottleneck")


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
    model_name=None,
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
    probs = survival_probs(sum(blocks), survival_prob, survival_rule)
    model_name = model_name or "resnet"
    features = resnet_features(
        blocks,
        block=block,
        survival_probs=probs,
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


FAMILY = registry.Family(
    "resnet", DEFAULT_SIZE, MIN_SIZE, VARIANTS, preprocessing="caffe",
    stages=lambda config: block_stages(config["blocks"], (4, 8, 16, 32)),
)


def _doc(title, variant, config):
    form = "keras.applications'" if config["form"] == "keras" else "torchvision/timm's"
    return (
        f"{title} ({variant}): {config['block']} blocks {list(config['blocks'])}, {form} form.\n\n"
        "Takes keras.applications' arguments and :func:`ResNet`'s other knobs\n"
        "(``survival_prob``/``survival_rule`` for stochastic depth, ``batch_norm_epsilon``)."
    )


(
    ResNet50, ResNet101, ResNet152, ResNet18, ResNet34, ResNet50B, ResNet101B, ResNet152B, WideResNet50_2,
    WideResNet101_2, ResNeXt50_32x4d, ResNeXt101_32x4d, ResNeXt101_32x8d, ResNeXt101_64x4d,
) = contract.register_family(
    ResNet,
    FAMILY,
    {
        "resnet50_keras": "ResNet50", "resnet101_keras": "ResNet101", "resnet152_keras": "ResNet152",
        "resnet18": "ResNet18", "resnet34": "ResNet34", "resnet50": "ResNet50B", "resnet101": "ResNet101B",
        "resnet152": "ResNet152B", "wide_resnet50_2": "WideResNet50_2", "wide_resnet101_2": "WideResNet101_2",
        "resnext50_32x4d": "ResNeXt50_32x4d", "resnext101_32x4d": "ResNeXt101_32x4d",
        "resnext101_32x8d": "ResNeXt101_32x8d", "resnext101_64x4d": "ResNeXt101_64x4d",
    },
    doc=_doc,
    default_weights=dict.fromkeys(("resnet50_keras", "resnet101_keras", "resnet152_keras"), "imagenet"),
)


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
    """:func:`~keras_ultradeep.models.blocks.basic_block` with the paper's shortcut option."""
    return basic_block(
        x, filters, stride, name, use_bias=False, bn_epsilon=bn_epsilon, survival_prob=survival_prob,
        shortcut=functools.partial(_cifar_shortcut, option=shortcut, bn_epsilon=bn_epsilon),
    )


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
    per_stage = cifar_blocks_per_stage(depth, 6, "6n + 2 (e.g. 20, 32, 44, 56, 110, 1202)")
    name = name or f"resnet{depth}_cifar"
    checks.one_of(shortcut, "shortcut", SHORTCUTS)
    probs = survival_probs(3 * per_stage, survival_prob, survival_rule)

    def features(x):
        x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1_conv")(x)
        x = layers.BatchNormalization(epsilon=batch_norm_epsilon, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
        for stage, filters in enumerate(CIFAR_WIDTHS):
            for i in range(per_stage):
                x = cifar_basic_block(
                    x, filters, 2 if stage > 0 and i == 0 else 1, f"conv{stage + 2}_block{i + 1}",
                    shortcut=shortcut, bn_epsilon=batch_norm_epsilon,
                    survival_prob=probs[stage * per_stage + i],
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
    per_stage = cifar_blocks_per_stage(depth, 9, "9n + 2 (e.g. 29)")
    name = name or f"resnext{depth}_{cardinality}x{bottleneck_width}d"
    checks.positive_int(cardinality, "cardinality")
    checks.positive_int(bottleneck_width, "bottleneck_width")
    probs = survival_probs(3 * per_stage, survival_prob, survival_rule)
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
                    survival_prob=probs[stage * per_stage + i], **options,
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


def _cifar_stages(layers_per_block):
    def stages(config):
        per_stage = cifar_blocks_per_stage(config["depth"], layers_per_block, "a CIFAR depth")
        return block_stages((per_stage,) * 3, (1, 2, 4))

    return stages


# Two declarations, one per builder: ResNet's blocks are basic (6n + 2
# layers), ResNeXt-29's bottlenecks (9n + 2).
CIFAR_FAMILIES = tuple(
    registry.declare(
        registry.Family(
            "resnet_cifar", CIFAR_DEFAULT_SIZE, CIFAR_MIN_SIZE,
            {variant: kwargs for variant, (b, kwargs) in CIFAR_VARIANTS.items() if b is builder},
            stages=_cifar_stages(layers_per_block),
        )
    )
    for builder, layers_per_block in ((ResNetCIFAR, 6), (ResNeXtCIFAR, 9))
)


# ------------------------------------------------------------------ preprocessing


def preprocess_input(x, data_format=None, mode=FAMILY.preprocessing):
    """keras.applications' ResNet preprocessing: ``"caffe"`` (RGB to BGR, ImageNet
    mean subtracted, as the keras-form weights expect); ``mode="torch"`` for
    weights converted from timm/torchvision."""
    return contract.preprocess_input(x, data_format, mode=mode)


decode_predictions = contract.decode_predictions
