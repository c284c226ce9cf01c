"""Cross Stage Partial Networks (Wang, Liao, Wu, Chen, Hsieh, Yeh, CVPRW 2020).

"CSPNet: A New Backbone that can Enhance Learning Capability of CNN": a
cross stage partial stage splits its input's maps in two parts; only one goes
through the stage's blocks, the other crosses the stage untouched, and the two
are fused by a transition at the end. Gradients of the two parts stay apart,
and a stage computes (and stores) about half of what a plain one would.

As timm's ``cspresnet50``, ``cspresnext50`` and ``cspdarknet53`` (the ports of
the authors' Darknet models), whose checkpoints convert with
``keras_ultradeep.convert``. A stage ``conv{s}`` is:

* ``_down``: a 3x3/2 conv-BN-act (grouped in CSPResNeXt), to the input's
  width (ResNet forms) or the stage's (``down_growth``, CSPDarkNet); not in a
  stride-1 stage (CSPResNet's first);
* ``_exp``: a 1x1 conv-BN to ``expand_ratio`` times the stage's width, linear
  (``cross_linear``, the ResNet forms) or followed by the activation;
* ``_split``: its first half crosses the stage, the second half goes through
  the blocks ``_block1`` ... ``_block{n}`` (ResNet bottlenecks with an
  activation after the sum, or Darknet blocks of a 1x1 and a 3x3 with a plain
  sum) of ``block_ratio`` times the stage's width;
* ``_transition_b``: a 1x1 conv-BN-act back to half the expanded width;
* ``_concat`` (crossing part first) and ``_transition``: a 1x1 conv-BN to the
  stage's width, whose activation ``_block{n + 1}_out`` is the stage's output
  (the last ``_out`` of the stage, which :func:`keras_ultradeep.features.stage_layers` finds).

Every conv is bias-free and followed by BatchNorm (epsilon 1e-5) and, except
where noted, LeakyReLU with slope 0.01. The ResNet forms' stem is a 7x7/2
conv-BN-act and a 3x3/2 max-pool, padded with -inf as PyTorch pads it (the
LeakyReLU leaves negative values); CSPDarkNet-53's a 3x3/1 conv-BN-act.
Stride-2 convs pad symmetrically as PyTorch does. Splitting channels is
:class:`keras_ultradeep.layers.ChannelSplit` (no Lambda layers).
"""

from __future__ import annotations

import itertools
import operator

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import ChannelSplit, SymmetricMaxPooling2D
from keras_ultradeep.models.blocks import block_stages, conv

__all__ = [
    "CSPNet",
    "CSPResNet50",
    "CSPResNeXt50",
    "CSPDarkNet53",
    "preprocess_input",
    "decode_predictions",
]

BN_EPSILON = 1e-5  # PyTorch's default, which timm's checkpoints were trained with
LEAKY_SLOPE = 0.01
DEFAULT_SIZE = 256  # timm's input size for these models
MIN_SIZE = 32  # the total stride
BLOCK_TYPES = ("bottleneck", "dark")


# ----------------------------------------------------------------------- blocks


def conv_bn_act(x, filters, kernel_size, name, *, bn_epsilon, strides=1, groups=1, act=True):
    """:func:`conv` ``{name}_conv``, BatchNorm ``{name}_bn`` and LeakyReLU ``{name}_act``."""
    x = conv(x, filters, kernel_size, name, strides=strides, groups=groups)
    x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    if act:
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{name}_act")(x)
    return x


def bottleneck_block(x, filters, name, *, bottle_ratio, groups, bn_epsilon):
    """ResNe(X)t bottleneck: 1x1, grouped 3x3, linear 1x1, sum, LeakyReLU ``{name}_out``."""
    mid = int(round(filters * bottle_ratio))
    y = conv_bn_act(x, mid, 1, f"{name}_1", bn_epsilon=bn_epsilon)
    y = conv_bn_act(y, mid, 3, f"{name}_2", groups=groups, bn_epsilon=bn_epsilon)
    y = conv_bn_act(y, filters, 1, f"{name}_3", bn_epsilon=bn_epsilon, act=False)
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{name}_out")(y)


def dark_block(x, filters, name, *, bottle_ratio, groups, bn_epsilon):
    """Darknet block: 1x1, 3x3 (both activated) and a plain sum ``{name}_out``."""
    mid = int(round(filters * bottle_ratio))
    y = conv_bn_act(x, mid, 1, f"{name}_1", bn_epsilon=bn_epsilon)
    y = conv_bn_act(y, filters, 3, f"{name}_2", groups=groups, bn_epsilon=bn_epsilon)
    return layers.Add(name=f"{name}_out")([x, y])


def cross_stage(
    x, name, *, filters, depth, stride, block, expand_ratio, bottle_ratio, block_ratio, groups,
    down_growth, cross_linear, bn_epsilon,
):
    """One cross stage partial stage ``{name}`` (see the module's docstring)."""
    if stride > 1:
        down = filters if down_growth else x.shape[-1]
        x = conv_bn_act(x, down, 3, f"{name}_down", strides=stride, groups=groups, bn_epsilon=bn_epsilon)
    expanded = int(round(filters * expand_ratio))
    x = conv_bn_act(x, expanded, 1, f"{name}_exp", bn_epsilon=bn_epsilon, act=not cross_linear)
    cross, y = ChannelSplit(expanded // 2, name=f"{name}_split")(x)
    block_fn = bottleneck_block if block == "bottleneck" else dark_block
    block_filters = int(round(filters * block_ratio))
    for i in range(depth):
        y = block_fn(
            y, block_filters, f"{name}_block{i + 1}", bottle_ratio=bottle_ratio, groups=groups,
            bn_epsilon=bn_epsilon,
        )
    y = conv_bn_act(y, expanded // 2, 1, f"{name}_transition_b", bn_epsilon=bn_epsilon)
    x = layers.Concatenate(name=f"{name}_concat")([cross, y])
    x = conv_bn_act(x, filters, 1, f"{name}_transition", bn_epsilon=bn_epsilon, act=False)
    return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{name}_block{depth + 1}_out")(x)


def stem(x, *, filters, kernel_size, stride, bn_epsilon):
    """A conv-BN-act (strided when ``stride`` > 1) and, at ``stride`` 4, a 3x3/2 max-pool."""
    x = conv_bn_act(x, filters, kernel_size, "conv1", strides=min(stride, 2), bn_epsilon=bn_epsilon)
    if stride == 4:
        # After a LeakyReLU: pad with -inf (as PyTorch), zeros could win the max.
        x = SymmetricMaxPooling2D(3, 2, 1, name="pool1_pool")(x)
    return x


def cspnet_features(config, bn_epsilon):
    """Stem and stages ``conv2``, ``conv3``, ..."""

    def features(x):
        x = stem(
            x, filters=config["stem_filters"], kernel_size=config["stem_kernel_size"],
            stride=config["stem_stride"], bn_epsilon=bn_epsilon,
        )
        per_stage = [
            "depths", "filters", "strides", "expand_ratio", "bottle_ratio", "block_ratio",
        ]
        for stage, values in enumerate(zip(*(config[k] for k in per_stage))):
            depth, filters, stride, expand_ratio, bottle_ratio, block_ratio = values
            x = cross_stage(
                x, f"conv{stage + 2}", filters=filters, depth=depth, stride=stride,
                block=config["block"], expand_ratio=expand_ratio, bottle_ratio=bottle_ratio,
                block_ratio=block_ratio, groups=config["groups"], down_growth=config["down_growth"],
                cross_linear=config["cross_linear"], bn_epsilon=bn_epsilon,
            )
        return x

    return features


# ------------------------------------------------------------------------ knobs


def _per_stage(value, argument, num_stages, *, allowed=None):
    """A number for every stage, or one per stage."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * num_stages
    if len(values) != num_stages or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
        or (allowed is not None and v not in allowed)
        for v in values
    ):
        expected = f"one of {allowed}" if allowed else "a positive number"
        raise ValueError(
            f"{argument}: expected {expected}, or {num_stages} of them (one per stage), got {value!r}"
        )
    return values


def _check_knobs(config, batch_norm_epsilon):
    depths = checks.positive_ints(config["depths"], "depths", what="positive block counts, one per stage")
    num_stages = len(depths)
    filters = checks.positive_ints(
        config["filters"], "filters", length=num_stages, what="positive widths, one per stage"
    )
    checked = dict(config, depths=depths, filters=filters)
    checked["strides"] = _per_stage(config["strides"], "strides", num_stages, allowed=(1, 2))
    for key in ("expand_ratio", "bottle_ratio", "block_ratio"):
        checked[key] = _per_stage(config[key], key, num_stages)
    checks.one_of(config["block"], "block", BLOCK_TYPES)
    checks.positive_int(config["groups"], "groups")
    checks.positive_int(config["stem_filters"], "stem_filters")
    if config["stem_kernel_size"] not in (3, 5, 7):
        raise ValueError(f"stem_kernel_size: expected 3, 5 or 7, got {config['stem_kernel_size']!r}")
    if config["stem_stride"] not in (1, 2, 4):
        raise ValueError(f"stem_stride: expected 1, 2 or 4, got {config['stem_stride']!r}")
    for key in ("down_growth", "cross_linear"):
        checks.boolean(config[key], key)
    for stage, (width, expand, bottle, ratio) in enumerate(
        zip(filters, checked["expand_ratio"], checked["bottle_ratio"], checked["block_ratio"])
    ):
        expanded = int(round(width * expand))
        widths = {
            "expand_ratio": expanded // 2 if expanded >= 2 else 0,
            "block_ratio": int(round(width * ratio)),
            "bottle_ratio": int(round(int(round(width * ratio)) * bottle)),
        }
        for key, maps in widths.items():
            if maps < 1 or maps % config["groups"]:
                raise ValueError(
                    f"{key}: stage {stage + 1} gets {maps} maps, which groups={config['groups']} "
                    "does not divide (or none at all)"
                )
        if widths["block_ratio"] != widths["expand_ratio"]:
            raise ValueError(
                f"block_ratio: stage {stage + 1}'s blocks output {widths['block_ratio']} maps but "
                f"take half the expanded width, {widths['expand_ratio']}"
            )
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")
    return checked


# --------------------------------------------------------------------- variants

_RESNET = dict(
    depths=(3, 3, 5, 2), strides=(1, 2, 2, 2), block="bottleneck", stem_filters=64,
    stem_kernel_size=7, stem_stride=4, down_growth=False, cross_linear=True,
)
VARIANTS = {
    "cspresnet50": dict(
        **_RESNET, filters=(128, 256, 512, 1024), expand_ratio=2.0, bottle_ratio=0.5, block_ratio=1.0,
        groups=1,
    ),
    "cspresnext50": dict(
        **_RESNET, filters=(256, 512, 1024, 2048), expand_ratio=1.0, bottle_ratio=1.0, block_ratio=0.5,
        groups=32,
    ),
    "cspdarknet53": dict(
        depths=(1, 2, 8, 8, 4), filters=(64, 128, 256, 512, 1024), strides=(2, 2, 2, 2, 2),
        block="dark", stem_filters=32, stem_kernel_size=3, stem_stride=1,
        expand_ratio=(2.0, 1.0, 1.0, 1.0, 1.0), bottle_ratio=(0.5, 1.0, 1.0, 1.0, 1.0),
        block_ratio=(1.0, 0.5, 0.5, 0.5, 0.5), groups=1, down_growth=True, cross_linear=False,
    ),
}


def CSPNet(
    depths,
    filters,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="cspnet",
    *,
    strides=2,
    block="bottleneck",
    expand_ratio=1.0,
    bottle_ratio=1.0,
    block_ratio=1.0,
    groups=1,
    stem_filters=64,
    stem_kernel_size=7,
    stem_stride=4,
    down_growth=False,
    cross_linear=False,
    batch_norm_epsilon=BN_EPSILON,
    model_name=None,
):
    """A Cross Stage Partial Network (timm's ``CspNet`` with ``CrossStage`` stages).

    Args (beyond keras.applications'):
        depths: blocks per stage, e.g. ``(3, 3, 5, 2)`` for CSPResNet-50.
        filters: each stage's output width.
        strides: each stage's stride (1 or 2; one number for all stages).
        block: ``"bottleneck"`` (ResNe(X)t blocks) or ``"dark"`` (Darknet blocks).
        expand_ratio: the width of a stage's 1x1 expansion over its output
            width, split in two equal parts (number or one per stage).
        bottle_ratio: a block's inner width over its output width.
        block_ratio: a block's output width over the stage's (it must equal
            half the expanded width).
        groups: groups of every 3x3 conv (the cardinality of CSPResNeXt).
        stem_filters, stem_kernel_size: the stem conv.
        stem_stride: 1 (a stride-1 conv), 2 (a stride-2 conv) or 4 (a
            stride-2 conv and a 3x3/2 max-pool).
        down_growth: the stride-2 3x3 of a stage goes to the stage's width
            (CSPDarkNet) instead of keeping its input's.
        cross_linear: no activation after the expansion (the ResNet forms).
        batch_norm_epsilon: 1e-5, PyTorch's (and timm's).
    """
    config = dict(
        depths=depths, filters=filters, strides=strides, block=block, expand_ratio=expand_ratio,
        bottle_ratio=bottle_ratio, block_ratio=block_ratio, groups=groups, stem_filters=stem_filters,
        stem_kernel_size=stem_kernel_size, stem_stride=stem_stride, down_growth=down_growth,
        cross_linear=cross_linear,
    )
    checked = _check_knobs(config, batch_norm_epsilon)
    model_name = model_name or "cspnet"
    features = cspnet_features(checked, batch_norm_epsilon)
    return contract.application(
        features,
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


def _stages(config):
    # A stage's output is its last _out, past the cross-stage merge: block depth + 1.
    reductions = itertools.accumulate(config["strides"], operator.mul, initial=config["stem_stride"])
    return block_stages([depth + 1 for depth in config["depths"]], list(reductions)[1:])


FAMILY = registry.Family("cspnet", DEFAULT_SIZE, MIN_SIZE, VARIANTS, preprocessing="torch", stages=_stages)


def _doc(title, variant, config):
    return (
        f"{title} (timm's {variant}): blocks {list(config['depths'])}, widths "
        f"{list(config['filters'])}, {config['block']} blocks"
        f"{', groups=' + str(config['groups']) if config['groups'] > 1 else ''}.\n\n"
        "Takes keras.applications' arguments and ``batch_norm_epsilon``; see :func:`CSPNet`."
    )


CSPResNet50, CSPResNeXt50, CSPDarkNet53 = contract.register_family(
    CSPNet,
    FAMILY,
    {"cspresnet50": "CSPResNet50", "cspresnext50": "CSPResNeXt50", "cspdarknet53": "CSPDarkNet53"},
    doc=_doc,
)


# ------------------------------------------------------------------ preprocessing


def preprocess_input(x, data_format=None, mode=FAMILY.preprocessing):
    """Pixels in [0, 255], RGB, to the models' input.

    ``mode="torch"`` (default): ImageNet's mean (0.485, 0.456, 0.406) and std
    (0.229, 0.224, 0.225) on pixels scaled to [0, 1], timm's ``default_cfg``
    for these checkpoints; keras.applications' ``"caffe"``/``"tf"`` too.
    """
    return contract.preprocess_input(x, data_format, mode=mode)


decode_predictions = contract.decode_predictions
