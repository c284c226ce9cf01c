"""ResNet in ResNet (Targ, Almeida, Lyman, arXiv 1603.08029, 2016).

"Resnet in Resnet: Generalizing Residual Architectures": a generalized
residual layer carries two streams side by side, a *residual* stream r that
has an identity shortcut and a *transient* stream t that has none. Each
stream's next state sees both (four 3x3 convs, two of them crossing over),
and the shortcut is summed in *before* the normalization::

    r' = ReLU(BN_r(conv_rr(r) + conv_tr(t) + shortcut(r)))
    t' = ReLU(BN_t(conv_rt(r) + conv_tt(t)))

The transient stream lets a layer discard what it no longer needs (a plain
network's freedom), the residual stream keeps ResNet's easy gradient path.
With r and t of C/2 maps each, the four convs hold exactly the weights of one
C -> C conv. An **RiR block** is a two-layer ResNet block whose two convs are
replaced by two generalized residual layers, so it also has an outer shortcut
on r from the block's input to its output (added after the second layer's
ReLU, without a further activation).

``resnet_in_resnet18_cifar`` is the paper's "18-layer + wide RiR" CIFAR
model (CIFAR-10 94.99%, CIFAR-100 77.10% accuracy reported): a stem of two
parallel 3x3 conv-BN-ReLU (one per stream, 48 maps each), three stages of
2, 3 and 3 RiR blocks (4, 6 and 6 generalized layers) with 48, 96 and 192
maps per stream at 32x32, 16x16 and 8x8, and the head: the concatenated
streams (384 maps) -> 1x1 conv to the classes -> BN -> global average pool
-> softmax. 18 weight layers = stem + 16 generalized layers + classifier.
The first layer of stages 2 and 3 strides and doubles the width.

What the paper fixes and what is read from implementations. The paper's own
architecture table could not be read (ARCHITECTURE_FACTS 2); this follows
the consensus of two implementations (nutszebra's Chainer RiR and
osmr/imgclsmob's ``rir_cifar``) and decides their disagreements so:

* outer RiR-block shortcut: **present** (the paper's "RiR block = ResNet
  block of generalized layers"; nutszebra has it, imgclsmob omits it);
* shortcuts where the shape changes: **zero padding** (subsample, append
  zero channels; the paper's "identity with appropriate padding", nutszebra's
  choice; ``shortcut="projection"`` gives imgclsmob's bias-free 1x1 conv);
* convs without bias (every sum goes into a BatchNorm, which has its own
  offset; ``use_bias=True`` gives nutszebra's biases);
* stride on the first layer of a stage (imgclsmob, like a CIFAR ResNet
  block); nutszebra strides the block's second layer instead, which changes
  no parameter count;
* no activation after the head's BN (imgclsmob; nutszebra has a ReLU there).

Parameter counts (trainable; Keras ``count_params()`` adds 7,892 BatchNorm
moving statistics for 10 classes):

* ``resnet_in_resnet18_cifar``: 9,469,940 (CIFAR-10), 9,504,680 (CIFAR-100);
* nutszebra's layout (``use_bias=True``): 9,477,726, as computed in
  ARCHITECTURE_FACTS 2.3;
* imgclsmob's layout (``outer_shortcut=False, shortcut="projection"``):
  9,492,980 (CIFAR-10) and 9,527,720 (CIFAR-100), the counts imgclsmob
  asserts (ARCHITECTURE_FACTS 2.3).

The three differ only by 7,786 conv biases and the two 1x1 projections
(48 x 96 + 96 x 192 = 23,040 weights). The paper's own parameter count was
not found (REFERENCE_RESULTS 8: [U]), so none of them can be checked against
it; all are "about 9.5M".

The imgclsmob layout was checked once against pytorchcv 0.0.74's
``rir_cifar10`` (weights copied over, every BatchNorm tensor randomized):
max |diff| / max(1, max |logit|) = 6.4e-7 at 32x32. pytorchcv is not a
dependency, so that check is not part of the test suite.
"""

from __future__ import annotations

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import ChannelSplit, ZeroPadShortcut
from keras_ultradeep.models.blocks import block_stages, conv

__all__ = ["ResNetInResNet"]

DEFAULT_SIZE = 32
MIN_SIZE = 8  # two stride-2 stages leave 2x2 maps
BN_EPSILON = 1e-5  # PyTorch's (imgclsmob); nutszebra's Chainer default is 2e-5
SHORTCUTS = ("zero_pad", "projection")
DEFAULT_CONFIG = dict(
    blocks=(2, 3, 3),
    residual_widths=(48, 96, 192),
    transient_widths=(48, 96, 192),
    outer_shortcut=True,
    shortcut="zero_pad",
    use_bias=False,
)


# ----------------------------------------------------------------------- blocks


def _shortcut(r, filters, stride, name, *, shortcut, use_bias):
    """The residual stream's identity, zero-padded or projected where its shape changes."""
    if stride == 1 and r.shape[-1] == filters:
        return r
    if shortcut == "projection":
        return conv(r, filters, 1, f"{name}_proj", strides=stride, use_bias=use_bias)
    return ZeroPadShortcut(filters, strides=stride, name=f"{name}_pad")(r)


def bn_relu(x, name, bn_epsilon):
    x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def generalized_residual_layer(
    r, t, residual_filters, transient_filters, stride, name, *, shortcut, use_bias, bn_epsilon
):
    """One generalized residual layer ``{name}``: the four 3x3 convs
    ``_rr`` (r -> r), ``_tr`` (t -> r), ``_rt`` (r -> t), ``_tt`` (t -> t), the
    sums ``_r_add`` (with r's shortcut ``_r_0``) and ``_t_add``, each then
    BN-ReLU (``_r_bn``/``_r_relu``, ``_t_bn``/``_t_relu``). Returns (r', t')."""
    options = dict(strides=stride, use_bias=use_bias)
    skip = _shortcut(r, residual_filters, stride, f"{name}_r_0", shortcut=shortcut, use_bias=use_bias)
    r_to_r = conv(r, residual_filters, 3, f"{name}_rr", **options)
    t_to_r = conv(t, residual_filters, 3, f"{name}_tr", **options)
    r_to_t = conv(r, transient_filters, 3, f"{name}_rt", **options)
    t_to_t = conv(t, transient_filters, 3, f"{name}_tt", **options)
    # The identity joins the sum before BN (unlike a post-activation ResNet).
    new_r = layers.Add(name=f"{name}_r_add")([r_to_r, t_to_r, skip])
    new_t = layers.Add(name=f"{name}_t_add")([r_to_t, t_to_t])
    return bn_relu(new_r, f"{name}_r", bn_epsilon), bn_relu(new_t, f"{name}_t", bn_epsilon)


def rir_block(
    x, residual_in, residual_filters, transient_filters, stride, name, *, outer_shortcut, shortcut,
    use_bias, bn_epsilon,
):
    """An RiR block ``{name}`` on ``x = concat(r, t)`` (r: the first ``residual_in``
    maps): ``_split``, two generalized layers ``_1`` (strided) and ``_2``, the
    outer shortcut ``_0``/``_add`` on r, and ``_out = concat(r, t)``."""
    r, t = ChannelSplit(residual_in, name=f"{name}_split")(x)
    options = dict(shortcut=shortcut, use_bias=use_bias, bn_epsilon=bn_epsilon)
    new_r, new_t = generalized_residual_layer(
        r, t, residual_filters, transient_filters, stride, f"{name}_1", **options
    )
    new_r, new_t = generalized_residual_layer(
        new_r, new_t, residual_filters, transient_filters, 1, f"{name}_2", **options
    )
    if outer_shortcut:
        skip = _shortcut(r, residual_filters, stride, f"{name}_0", shortcut=shortcut, use_bias=use_bias)
        new_r = layers.Add(name=f"{name}_add")([skip, new_r])
    return layers.Concatenate(name=f"{name}_out")([new_r, new_t])


def stem(x, residual_filters, transient_filters, *, use_bias, bn_epsilon):
    """Two parallel 3x3 conv-BN-ReLU on the image, one per stream, concatenated as ``conv1_concat``."""
    r = bn_relu(conv(x, residual_filters, 3, "conv1_r", use_bias=use_bias), "conv1_r", bn_epsilon)
    t = bn_relu(conv(x, transient_filters, 3, "conv1_t", use_bias=use_bias), "conv1_t", bn_epsilon)
    return layers.Concatenate(name="conv1_concat")([r, t])


def rir_features(config, bn_epsilon):
    """Stem and stages ``conv2``, ``conv3``, ...: each stage's last ``_out`` is concat(r, t)."""
    options = dict(
        outer_shortcut=config["outer_shortcut"], shortcut=config["shortcut"],
        use_bias=config["use_bias"], bn_epsilon=bn_epsilon,
    )

    def features(x):
        widths = list(zip(config["residual_widths"], config["transient_widths"]))
        x = stem(x, *widths[0], use_bias=config["use_bias"], bn_epsilon=bn_epsilon)
        residual_in = widths[0][0]
        for stage, (count, (residual, transient)) in enumerate(zip(config["blocks"], widths)):
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                x = rir_block(
                    x, residual_in, residual, transient, stride, f"conv{stage + 2}_block{i + 1}",
                    **options,
                )
                residual_in = residual
        return x

    return features


def make_head(use_bias, bn_epsilon):
    """The paper's all-convolutional head (see :func:`contract.classifier_head` for the interface)."""

    def head(x, *, include_top, pooling, classes, classifier_activation):
        if include_top:
            x = layers.Conv2D(classes, 1, use_bias=use_bias, name="head_conv")(x)
            x = layers.BatchNormalization(epsilon=bn_epsilon, name="head_bn")(x)
            x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
            return layers.Activation(classifier_activation, name="predictions")(x)
        return contract.classifier_head(
            x, include_top=False, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation,
        )

    return head


# ------------------------------------------------------------------------ knobs


def _check_knobs(
    blocks, residual_widths, transient_widths, outer_shortcut, shortcut, use_bias, batch_norm_epsilon
):
    blocks = checks.positive_ints(blocks, "blocks", what="positive block counts, one per stage")
    stage_widths = dict(length=len(blocks), what="positive widths, one per stage")
    residual_widths = checks.positive_ints(residual_widths, "residual_widths", **stage_widths)
    transient_widths = checks.positive_ints(transient_widths, "transient_widths", **stage_widths)
    checks.one_of(shortcut, "shortcut", SHORTCUTS)
    if shortcut == "zero_pad" and any(b < a for a, b in zip(residual_widths, residual_widths[1:])):
        raise ValueError(
            "residual_widths: a zero-padding shortcut cannot narrow the residual stream; expected "
            f"non-decreasing widths (or shortcut='projection'), got {residual_widths!r}"
        )
    checks.boolean(outer_shortcut, "outer_shortcut")
    checks.boolean(use_bias, "use_bias")
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")
    return dict(
        blocks=blocks, residual_widths=residual_widths, transient_widths=transient_widths,
        outer_shortcut=outer_shortcut, shortcut=shortcut, use_bias=use_bias,
    )


# ------------------------------------------------------------------------ model


def ResNetInResNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    *,
    blocks=(2, 3, 3),
    residual_widths=(48, 96, 192),
    transient_widths=None,
    outer_shortcut=True,
    shortcut="zero_pad",
    use_bias=False,
    batch_norm_epsilon=BN_EPSILON,
):
    """A ResNet in ResNet for CIFAR-sized inputs; the defaults build the
    paper's "18-layer + wide RiR" (``resnet_in_resnet18_cifar``).

    Args (beyond keras.applications'):
        blocks: RiR blocks (two generalized residual layers each) per stage;
            stages after the first halve the maps in their first layer.
        residual_widths: maps of the residual stream per stage (the stem has
            the first stage's).
        transient_widths: maps of the transient stream per stage; None: the
            residual widths (the paper's even split).
        outer_shortcut: the RiR block's own shortcut on the residual stream
            (the paper's RiR block; False gives a plain stack of generalized
            layers, as imgclsmob).
        shortcut: ``"zero_pad"`` (subsample and append zero maps, no
            parameters) or ``"projection"`` (a 1x1 conv) where r's shape changes.
        use_bias: biases on the convs (all of them feed a BatchNorm).
        batch_norm_epsilon: 1e-5.
    """
    if transient_widths is None:
        transient_widths = residual_widths
    config = _check_knobs(
        blocks, residual_widths, transient_widths, outer_shortcut, shortcut, use_bias, batch_norm_epsilon
    )
    model_name = "resnet_in_resnet18_cifar" if config == DEFAULT_CONFIG else "resnet_in_resnet"
    if name is None:
        name = model_name
    features = rir_features(config, batch_norm_epsilon)
    return contract.application(
        features,
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        head=make_head(use_bias, batch_norm_epsilon),
        **contract.keras_arguments(locals()),
    )


registry.register_variants(
    {"resnet_in_resnet18_cifar": (ResNetInResNet, {})},
    family="rir",
    default_size=DEFAULT_SIZE,
    min_size=MIN_SIZE,
)
FAMILY = registry.declare(
    registry.Family(
        "rir", DEFAULT_SIZE, MIN_SIZE,
        stages=lambda config: block_stages({**DEFAULT_CONFIG, **config}["blocks"], (1, 2, 4)),
    )
)
