"""Pre-activation ResNets (He, Zhang, Ren, Sun, ECCV 2016) and Wide ResNets for
CIFAR (Zagoruyko & Komodakis, BMVC 2016).

"Identity Mappings in Deep Residual Networks": moving BN-ReLU in front of each
conv ("pre-activation") makes the shortcut path a pure identity from any block
to any later one, x_L = x_l + sum F(x_i), which is what lets a 1001-layer
network train. The unit where the shape changes applies one BN-ReLU to its
input and feeds both the residual branch and the 1x1 projection shortcut from
it; every other unit adds its branch to the untouched input.

* ``ResNet50V2``, ``ResNet101V2``, ``ResNet152V2``: keras.applications' models
  layer for layer (names included, so its weights files load): the stride sits
  in the 3x3 of each stage's *last* unit, an identity shortcut that strides is
  a 1x1 max-pool, and the expanding 1x1 convs and projections have biases.
* ``PreActResNet18`` ... ``PreActResNet152`` (timm's ``resnetv2_18`` ...
  ``resnetv2_152``, whose checkpoints convert): the stride in the 3x3 of each
  stage's first unit, no conv biases, BatchNorm epsilon 1e-5, and a stem
  max-pool padded with -inf (:class:`~keras_ultradeep.layers.SymmetricMaxPooling2D`).
* ``PreActResNetCIFAR`` (``preact_resnet164_cifar``, ``preact_resnet1001_cifar``):
  the paper's CIFAR bottleneck nets, 9n + 2 layers, as the authors' Torch code
  (KaimingHe/resnet-1k-layers): a 16-map 3x3 stem, three stages with 64, 128
  and 256 output maps, the stride on the first 1x1 of each stage's first unit,
  no conv biases, and a final BN-ReLU.
* ``WideResNet`` (``wrn16_4`` ... ``wrn52_1``): pre-activation basic blocks
  (two 3x3 convs, dropout between them) widened ``widening_factor`` times,
  (depth - 4) / 6 blocks per stage, as the authors' code.

Every residual addition can be a stochastic-depth one (``survival_prob``,
``survival_rule``; see :mod:`keras_ultradeep.models.resnet`).
"""

from __future__ import annotations

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import StochasticDepth, SymmetricMaxPooling2D
from keras_ultradeep.models.blocks import (
    EXPANSION,
    STAGE_PLANES,
    block_stages,
    cifar_blocks_per_stage,
    conv,
    survival_probs,
)
from keras_ultradeep.models.resnet import (
    CIFAR_BN_EPSILON,
    CIFAR_DEFAULT_SIZE,
    CIFAR_MIN_SIZE,
    DEFAULT_SIZE,
    KERAS_BN_EPSILON,
    MIN_SIZE,
)
from keras_ultradeep.models.resnet import preprocess_input as _resnet_preprocess_input

__all__ = [
    "ResNetV2",
    "ResNet50V2",
    "ResNet101V2",
    "ResNet152V2",
    "PreActResNet",
    "PreActResNet18",
    "PreActResNet34",
    "PreActResNet50",
    "PreActResNet101",
    "PreActResNet152",
    "PreActResNetCIFAR",
    "WideResNet",
    "preprocess_input",
    "decode_predictions",
]

# ----------------------------------------------------------------------- blocks


def _preactivate(x, name, bn_epsilon):
    x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_preact_bn")(x)
    return layers.Activation("relu", name=f"{name}_preact_relu")(x)


def _bn_relu(x, name, bn_epsilon):
    x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _add(shortcut, residual, name, survival_prob):
    if survival_prob < 1.0:
        return StochasticDepth(survival_prob, name=name)([shortcut, residual])
    return layers.Add(name=name)([shortcut, residual])


def preact_bottleneck(
    x, planes, stride, name, *, projection, stride_on, keras_biases, bn_epsilon, survival_prob
):
    """BN-ReLU, 1x1 (planes), BN-ReLU, 3x3, BN-ReLU, 1x1 (4 * planes), plus the shortcut."""
    preact = _preactivate(x, name, bn_epsilon)
    if projection:
        shortcut = layers.Conv2D(
            EXPANSION * planes, 1, strides=stride, use_bias=keras_biases, name=f"{name}_0_conv"
        )(preact)
    elif stride > 1:
        # keras.applications' identity that strides: 1x1 max-pool = subsampling.
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    else:
        shortcut = x
    stride_1x1, stride_3x3 = (stride, 1) if stride_on == "1x1" else (1, stride)
    y = conv(preact, planes, 1, f"{name}_1", strides=stride_1x1)
    y = _bn_relu(y, f"{name}_1", bn_epsilon)
    y = conv(y, planes, 3, f"{name}_2", strides=stride_3x3, pad=keras_biases)
    y = _bn_relu(y, f"{name}_2", bn_epsilon)
    y = conv(y, EXPANSION * planes, 1, f"{name}_3", use_bias=keras_biases)
    return _add(shortcut, y, f"{name}_out", survival_prob)


def wide_basic_block(x, filters, stride, name, *, dropout_rate, bn_epsilon, survival_prob):
    """BN-ReLU, 3x3 (strided), BN-ReLU, dropout, 3x3, plus the shortcut."""
    preact = _preactivate(x, name, bn_epsilon)
    if stride > 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_0_conv")(preact)
    else:
        shortcut = x
    y = conv(preact, filters, 3, f"{name}_1", strides=stride)
    y = _bn_relu(y, f"{name}_1", bn_epsilon)
    if dropout_rate:
        y = layers.Dropout(dropout_rate, name=f"{name}_1_drop")(y)
    y = conv(y, filters, 3, f"{name}_2")
    return _add(shortcut, y, f"{name}_out", survival_prob)


def _post_activation(x, bn_epsilon):
    x = layers.BatchNormalization(epsilon=bn_epsilon, name="post_bn")(x)
    return layers.Activation("relu", name="post_relu")(x)


# ------------------------------------------------------------- ImageNet (keras)

KERAS_VARIANTS = {
    "resnet50v2": (3, 4, 6, 3),
    "resnet101v2": (3, 4, 23, 3),
    "resnet152v2": (3, 8, 36, 3),
}


def _check_blocks(blocks):
    if (
        not isinstance(blocks, (tuple, list))
        or len(blocks) != 4
        or any(isinstance(b, bool) or not isinstance(b, int) or b < 2 for b in blocks)
    ):
        raise ValueError(f"blocks: expected 4 block counts of at least 2, one per stage, got {blocks!r}")


def ResNetV2(
    blocks,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnetv2",
    *,
    survival_prob=1.0,
    survival_rule="linear",
    model_name=None,
):
    """keras.applications' pre-activation ResNet with ``blocks`` units per stage."""
    _check_blocks(blocks)
    blocks = tuple(blocks)
    probs = survival_probs(sum(blocks), survival_prob, survival_rule)
    model_name = model_name or "resnetv2"

    def features(x):
        x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
        index = 0
        for stage, (count, planes) in enumerate(zip(blocks, (64, 128, 256, 512))):
            for i in range(count):
                # keras.applications strides the last unit of every stage but the last.
                stride = 2 if i == count - 1 and stage < 3 else 1
                x = preact_bottleneck(
                    x, planes, stride, f"conv{stage + 2}_block{i + 1}", projection=i == 0,
                    stride_on="3x3", keras_biases=True, bn_epsilon=KERAS_BN_EPSILON,
                    survival_prob=probs[index],
                )
                index += 1
        return _post_activation(x, KERAS_BN_EPSILON)

    return contract.application(
        features,
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


def _stages(blocks, reductions=(4, 8, 16, 32)):
    # The last stage's output is the final BatchNorm-ReLU (timm's norm=True).
    return block_stages(blocks, reductions, last="post_relu")


KERAS_FAMILY = registry.Family(
    "resnet_v2",
    DEFAULT_SIZE,
    MIN_SIZE,
    {variant: dict(blocks=blocks) for variant, blocks in KERAS_VARIANTS.items()},
    preprocessing="tf",
    # keras.applications strides in each stage's last block, so a stage ends
    # at the next one's reduction.
    stages=lambda config: _stages(config["blocks"], (8, 16, 32, 32)),
)


def _keras_doc(title, variant, config):
    return (
        f"{title}: keras.applications' pre-activation ResNet, units {list(config['blocks'])}.\n\n"
        "Takes keras.applications' arguments plus stochastic depth (``survival_prob``,\n"
        "``survival_rule``)."
    )


ResNet50V2, ResNet101V2, ResNet152V2 = contract.register_family(
    ResNetV2,
    KERAS_FAMILY,
    {"resnet50v2": "ResNet50V2", "resnet101v2": "ResNet101V2", "resnet152v2": "ResNet152V2"},
    doc=_keras_doc,
    default_weights=dict.fromkeys(KERAS_VARIANTS, "imagenet"),
)


# -------------------------------------------------------------- ImageNet (timm)

TIMM_VARIANTS = {
    "resnetv2_18": dict(blocks=(2, 2, 2, 2), block="basic"),
    "resnetv2_34": dict(blocks=(3, 4, 6, 3), block="basic"),
    "resnetv2_50": dict(blocks=(3, 4, 6, 3), block="bottleneck"),
    "resnetv2_101": dict(blocks=(3, 4, 23, 3), block="bottleneck"),
    "resnetv2_152": dict(blocks=(3, 8, 36, 3), block="bottleneck"),
}
TORCH_BN_EPSILON = 1e-5


def PreActResNet(
    blocks,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="preact_resnet",
    *,
    block="bottleneck",
    survival_prob=1.0,
    survival_rule="linear",
    batch_norm_epsilon=TORCH_BN_EPSILON,
    model_name=None,
):
    """timm's pre-activation ResNet (``resnetv2_50`` ...): the paper's units with
    the stride on the 3x3 of each stage's first unit, no conv biases, and a
    stem whose max-pool pads with -inf as PyTorch does (it pools values that
    no ReLU has clipped).

    Args (beyond keras.applications'):
        blocks: units per stage, e.g. ``(3, 4, 6, 3)``.
        block: ``"bottleneck"`` (1x1, 3x3, 1x1 to 4x the planes) or ``"basic"``
            (two 3x3 convs).
        survival_prob, survival_rule: stochastic depth.
        batch_norm_epsilon: PyTorch's 1e-5 by default.
    """
    blocks = checks.positive_ints(blocks, "blocks", length=4, what="positive block counts, one per stage")
    checks.one_of(block, "block", ("basic", "bottleneck"))
    blocks = tuple(blocks)
    probs = survival_probs(sum(blocks), survival_prob, survival_rule)
    model_name = model_name or "preact_resnet"

    def features(x):
        x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
        x = SymmetricMaxPooling2D(3, strides=2, padding=1, name="pool1_pool")(x)
        index = 0
        for stage, (count, planes) in enumerate(zip(blocks, STAGE_PLANES)):
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                unit = f"conv{stage + 2}_block{i + 1}"
                if block == "basic":
                    x = wide_basic_block(
                        x, planes, stride, unit, dropout_rate=0.0, bn_epsilon=batch_norm_epsilon,
                        survival_prob=probs[index],
                    )
                else:
                    x = preact_bottleneck(
                        x, planes, stride, unit, projection=i == 0, stride_on="3x3",
                        keras_biases=False, bn_epsilon=batch_norm_epsilon, survival_prob=probs[index],
                    )
                index += 1
        return _post_activation(x, batch_norm_epsilon)

    return contract.application(
        features,
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


TIMM_FAMILY = registry.Family(
    "resnet_v2", DEFAULT_SIZE, MIN_SIZE, TIMM_VARIANTS, preprocessing="tf",
    stages=lambda config: _stages(config["blocks"]),
)


def _timm_doc(title, variant, config):
    return (
        f"{title} (timm's {variant}): {config['block']} pre-activation units "
        f"{list(config['blocks'])}; see :func:`PreActResNet`."
    )


PreActResNet18, PreActResNet34, PreActResNet50, PreActResNet101, PreActResNet152 = contract.register_family(
    PreActResNet,
    TIMM_FAMILY,
    {
        "resnetv2_18": "PreActResNet18", "resnetv2_34": "PreActResNet34", "resnetv2_50": "PreActResNet50",
        "resnetv2_101": "PreActResNet101", "resnetv2_152": "PreActResNet152",
    },
    doc=_timm_doc,
)


# ------------------------------------------------------------------------ CIFAR


def PreActResNetCIFAR(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    *,
    depth=164,
    survival_prob=1.0,
    survival_rule="linear",
    batch_norm_epsilon=CIFAR_BN_EPSILON,
):
    """The paper's pre-activation bottleneck ResNet for CIFAR, 9n + 2 layers
    (ResNet-164: n = 18, 1.7M parameters; ResNet-1001: n = 111, 10.2M)."""
    per_stage = cifar_blocks_per_stage(depth, 9, "9n + 2 (e.g. 164, 1001)")
    probs = survival_probs(3 * per_stage, survival_prob, survival_rule)

    def features(x):
        x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1_conv")(x)
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(per_stage):
                x = preact_bottleneck(
                    x, planes, 2 if stage > 0 and i == 0 else 1, f"conv{stage + 2}_block{i + 1}",
                    projection=i == 0, stride_on="1x1", keras_biases=False,
                    bn_epsilon=batch_norm_epsilon, survival_prob=probs[stage * per_stage + i],
                )
        return _post_activation(x, batch_norm_epsilon)

    name = name or f"preact_resnet{depth}_cifar"
    return contract.application(
        features,
        model_name="preact_resnet_cifar",
        default_size=CIFAR_DEFAULT_SIZE,
        min_size=CIFAR_MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


def WideResNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    *,
    depth=28,
    widening_factor=10,
    dropout_rate=0.0,
    survival_prob=1.0,
    survival_rule="linear",
    batch_norm_epsilon=CIFAR_BN_EPSILON,
):
    """WRN-depth-k for CIFAR: a 16-map 3x3 stem and three stages of
    (depth - 4) / 6 pre-activation basic blocks with 16k, 32k and 64k maps.

    Args (beyond keras.applications'):
        depth: n, with (n - 4) % 6 == 0 (16, 22, 28, 40, 52 in the paper).
        widening_factor: k, the width multiplier (1 is the thin ResNet).
        dropout_rate: dropout between the two convs of a block (the paper's 0.3).
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth: expected (depth - 4) % 6 == 0 and depth >= 10 (e.g. 16, 28, 40), got {depth!r}")
    checks.positive_int(widening_factor, "widening_factor")
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    per_stage = (depth - 4) // 6
    probs = survival_probs(3 * per_stage, survival_prob, survival_rule)

    def features(x):
        x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1_conv")(x)
        for stage, width in enumerate((16, 32, 64)):
            for i in range(per_stage):
                x = wide_basic_block(
                    x, width * widening_factor, 2 if stage > 0 and i == 0 else 1,
                    f"conv{stage + 2}_block{i + 1}", dropout_rate=dropout_rate,
                    bn_epsilon=batch_norm_epsilon, survival_prob=probs[stage * per_stage + i],
                )
        return _post_activation(x, batch_norm_epsilon)

    name = name or f"wrn{depth}_{widening_factor}"
    return contract.application(
        features,
        model_name="wide_resnet_cifar",
        default_size=CIFAR_DEFAULT_SIZE,
        min_size=CIFAR_MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


CIFAR_VARIANTS = {
    "preact_resnet164_cifar": (PreActResNetCIFAR, dict(depth=164)),
    "preact_resnet1001_cifar": (PreActResNetCIFAR, dict(depth=1001)),
    **{
        f"wrn{depth}_{k}": (WideResNet, dict(depth=depth, widening_factor=k))
        for depth, k in ((16, 4), (16, 8), (28, 10), (40, 4), (52, 1))
    },
}
registry.register_variants(
    CIFAR_VARIANTS, family="resnet_v2_cifar", default_size=CIFAR_DEFAULT_SIZE, min_size=CIFAR_MIN_SIZE
)


def _preact_cifar_stages(config):
    per_stage = cifar_blocks_per_stage(config["depth"], 9, "9n + 2")
    return _stages((per_stage,) * 3, (1, 2, 4))


def _wide_cifar_stages(config):
    per_stage = (config["depth"] - 4) // 6  # Wide ResNets count depth as 6n + 4
    return _stages((per_stage,) * 3, (1, 2, 4))


# Two declarations, one per builder: the pre-activation bottleneck nets count
# depth as 9n + 2, Wide ResNets as 6n + 4.
CIFAR_FAMILIES = tuple(
    registry.declare(
        registry.Family(
            "resnet_v2_cifar", CIFAR_DEFAULT_SIZE, CIFAR_MIN_SIZE,
            {variant: kwargs for variant, (b, kwargs) in CIFAR_VARIANTS.items() if b is builder},
            stages=stages,
        )
    )
    for builder, stages in ((PreActResNetCIFAR, _preact_cifar_stages), (WideResNet, _wide_cifar_stages))
)


# ------------------------------------------------------------------ preprocessing


def preprocess_input(x, data_format=None, mode=KERAS_FAMILY.preprocessing):
    """keras.applications' ResNetV2 preprocessing: ``"tf"`` (pixels scaled to
    [-1, 1]), as its weights expect."""
    return _resnet_preprocess_input(x, data_format, mode=mode)


decode_predictions = contract.decode_predictions
