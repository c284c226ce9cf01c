"""CSPDenseNet: DenseNet with cross stage partial stages (Wang, Liao, Wu, Chen,
Hsieh, Yeh, "CSPNet: A New Backbone that can Enhance Learning Capability of
CNN", CVPR Workshops 2020).

The paper's first CSP network. A stage's input x0 is split channel-wise into
x0' and x0''; only x0'' goes through the dense block, x0' crosses the stage
and rejoins at its end, so the dense layers' gradients never flow into x0'
and each dense layer reads (and a stage stores) fewer maps::

    x_k = H_k([x0'', x_1, ..., x_{k-1}])           (DenseNet's layers)
    x_T = w_T * [x0'', x_1, ..., x_n]              (partial transition)
    x_U = w_U * [x0', x_T]                         (fusion transition)

Built from the DenseNet family's pieces (:mod:`keras_ultradeep.models.densenet`:
its stem and its BN-ReLU-1x1-BN-ReLU-3x3 bottleneck layers, concatenated old
maps first), a stage ``conv{s}`` is:

* ``conv{s}_split``: x0' (the first ``1 - part_ratio`` of the maps) and x0''
  (the rest, ``part_ratio`` = the paper's gamma, 0.5);
* ``conv{s}_block1`` ... ``_block{n}``: the dense layers on x0'';
* with ``fusion="csp"`` (the paper's Fig. 3(b), its proposal):
  ``conv{s}_partial`` a BN-ReLU-1x1 to ``compression`` (theta) times its
  input (the partial transition), then ``conv{s}_block{n+1}_concat`` =
  [x0', x_T] (crossing part first, the paper's order) and the fusion
  transition ``pool{s}`` (BN-ReLU-1x1, 2x2 average pool between stages);
* ``fusion="first"`` (Fig. 3(c)): [x0', dense output] -> fusion transition;
* ``fusion="last"`` (Fig. 3(d)): the transition on the dense output only,
  then [x0', x_T] (and the pool, which commutes with the concatenation).

The fusion transition (or, with ``"last"``, x0' plus the partial transition)
gives each stage DenseNet's own output width (theta times the stage input plus
the block's new maps; the last stage's full width, 1024 for CSPDenseNet-121),
so the stem, the head and every stage boundary are DenseNet's; the network
ends with DenseNet's BN-ReLU ``bn``/``relu``, global pooling and classifier.

What could not be confirmed (ARCHITECTURE_FACTS part 2, section 5): no
CSPDenseNet configuration or weights were ever released (the authors' repo
has none in its history; timm has no CSPDenseNet). The split, the fusion
variants and gamma are the paper's design as summarised from its figures;
**the widths of the partial and fusion transitions, the last stage's
transition and the post- vs pre-activation order are this package's
choices** (the authors' darknet DenseNet-201 baseline is post-activation
with LeakyReLU, max-pool transitions and fixed transition widths; ours keeps
this package's torchvision-style DenseNet). So the README's CSPDenseNet-201
+Elastic (20.17M parameters, 7.13 BFLOPs) cannot be reproduced; it also adds
the Elastic blocks, which are not built here.

Parameter counts (trainable, 1000 classes; computed from this definition and
re-derived independently in the tests): ``cspdensenet121`` 8,102,664
(DenseNet-121: 7,978,856), ``cspdensenet201`` 21,283,784 (DenseNet-201:
20,013,928); Keras ``count_params()`` adds the BatchNorm moving statistics
(8,174,440 and 21,477,608). The partial transitions and the last stage's
fusion add parameters, the dense layers' narrower inputs save some; with
DenseNet-121's blocks, ``fusion="first"`` gives 7,972,840 and ``"last"``
7,276,584.
"""

from __future__ import annotations

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import ChannelSplit
from keras_ultradeep.models.blocks import block_stages
from keras_ultradeep.models.densenet import dense_block, imagenet_stem

__all__ = [
    "CSPDenseNet",
    "CSPDenseNet121",
    "CSPDenseNet201",
    "preprocess_input",
    "decode_predictions",
]

BN_EPSILON = 1e-5  # PyTorch's default (no checkpoint exists to match)
DEFAULT_SIZE = 224
MIN_SIZE = 32  # the total stride
FUSIONS = ("csp", "first", "last")


# ----------------------------------------------------------------------- blocks


def transition(x, filters, name, *, pool, dropout_rate, bn_epsilon):
    """BN-ReLU-Conv1x1(``filters``) ``{name}_*``, then a 2x2 average pool when ``pool``.

    DenseNet's transition layer (``densenet.transition_block``) with its width
    given rather than a fraction, and the pool optional: CSP's partial
    transition and the last stage's fusion do not downsample.
    """
    x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"{name}_drop")(x)
    if pool:
        x = layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)
    return x


def cross_stage_partial_dense_stage(
    x, num_layers, stage, *, last, growth_rate, part_ratio, compression, fusion, layer_options
):
    """One CSP dense stage ``conv{stage}`` (see the module's docstring)."""
    name = f"conv{stage}"
    width = x.shape[-1]
    stage_width = width + num_layers * growth_rate  # DenseNet's block output
    out_width = stage_width if last else int(stage_width * compression)
    options = dict(dropout_rate=layer_options["dropout_rate"], bn_epsilon=layer_options["bn_epsilon"])

    cross, y = ChannelSplit(width - int(round(width * part_ratio)), name=f"{name}_split")(x)
    y = dense_block(y, num_layers, growth_rate, name, **layer_options)
    if fusion == "csp":
        y = transition(y, int(y.shape[-1] * compression), f"{name}_partial", pool=False, **options)
    elif fusion == "last":
        y = transition(y, out_width - cross.shape[-1], f"{name}_partial", pool=False, **options)
    # The fused maps at the stage's resolution: its output for feature_extractor.
    y = layers.Concatenate(name=f"{name}_block{num_layers + 1}_concat")([cross, y])
    if fusion == "last":
        return y if last else layers.AveragePooling2D(2, strides=2, name=f"pool{stage}_pool")(y)
    return transition(y, out_width, f"pool{stage}", pool=not last, **options)


def cspdensenet_features(
    blocks, *, growth_rate, stem_filters, bottleneck_width, compression, part_ratio, fusion,
    dropout_rate, bn_epsilon,
):
    """DenseNet's stem, the CSP dense stages ``conv2``.. and the final BN-ReLU."""
    layer_options = dict(
        bottleneck=True, bottleneck_width=bottleneck_width, dropout_rate=dropout_rate,
        bn_epsilon=bn_epsilon,
    )

    def features(x):
        x = imagenet_stem(x, stem_filters, bn_epsilon)
        for i, num_layers in enumerate(blocks):
            x = cross_stage_partial_dense_stage(
                x, num_layers, i + 2, last=i == len(blocks) - 1, growth_rate=growth_rate,
                part_ratio=part_ratio, compression=compression, fusion=fusion,
                layer_options=layer_options,
            )
        x = layers.BatchNormalization(epsilon=bn_epsilon, name="bn")(x)
        return layers.Activation("relu", name="relu")(x)

    return features


# ------------------------------------------------------------------------ knobs




def _check_knobs(
    blocks, growth_rate, stem_filters, bottleneck_width, compression, part_ratio, fusion, dropout_rate,
    batch_norm_epsilon,
):
    checks.positive_ints(blocks, "blocks", what="positive layer counts")
    checks.positive_int(growth_rate, "growth_rate")
    checks.positive_int(stem_filters, "stem_filters")
    checks.positive_int(bottleneck_width, "bottleneck_width")
    checks.number_in(compression, "compression", 0, 1, low_open=True)
    checks.number_in(part_ratio, "part_ratio", 0, 1, low_open=True, high_open=True)
    checks.one_of(fusion, "fusion", FUSIONS)
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")
    # Every stage's input must leave maps on both sides of the split (and,
    # fusing last, the crossing part must leave room in the stage's output).
    width = stem_filters
    for i, num_layers in enumerate(blocks):
        dense = int(round(width * part_ratio))
        if not 0 < dense < width:
            raise ValueError(
                f"part_ratio: stage {i + 1}'s {width} input maps leave {dense} for the dense block "
                "and the rest to cross; both parts need at least one map"
            )
        last = i == len(blocks) - 1
        out_width = width + num_layers * growth_rate
        out_width = out_width if last else int(out_width * compression)
        if fusion == "last" and out_width <= width - dense:
            raise ValueError(
                f"compression: with fusion='last', stage {i + 1}'s output ({out_width} maps) must "
                f"exceed its crossing part ({width - dense} maps)"
            )
        width = out_width
    return tuple(blocks)


# --------------------------------------------------------------------- variants

VARIANTS = {
    "cspdensenet121": dict(blocks=(6, 12, 24, 16)),
    "cspdensenet201": dict(blocks=(6, 12, 48, 32)),
}


def CSPDenseNet(
    blocks,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="cspdensenet",
    *,
    growth_rate=32,
    stem_filters=64,
    bottleneck_width=4,
    compression=0.5,
    part_ratio=0.5,
    fusion="csp",
    dropout_rate=0.0,
    batch_norm_epsilon=BN_EPSILON,
    model_name=None,
):
    """A DenseNet-BC with cross stage partial stages of ``blocks`` dense layers.

    Args (beyond keras.applications'):
        blocks: dense layers per stage, e.g. ``(6, 12, 48, 32)`` for
            CSPDenseNet-201.
        growth_rate, stem_filters, bottleneck_width, compression,
            dropout_rate: DenseNet's (k, the stem's maps, the 1x1's 4k,
            theta, dropout after each conv).
        part_ratio: gamma, the fraction of a stage's input maps that goes
            through its dense block (the rest crosses the stage).
        fusion: ``"csp"`` (partial transition, concatenation, transition: the
            paper's CSPDenseNet), ``"first"`` (concatenate, then one
            transition) or ``"last"`` (transition, then concatenate).
        batch_norm_epsilon: 1e-5.
    """
    blocks = _check_knobs(
        blocks, growth_rate, stem_filters, bottleneck_width, compression, part_ratio, fusion,
        dropout_rate, batch_norm_epsilon,
    )
    model_name = model_name or "cspdensenet"
    features = cspdensenet_features(
        blocks, growth_rate=growth_rate, stem_filters=stem_filters, bottleneck_width=bottleneck_width,
        compression=compression, part_ratio=part_ratio, fusion=fusion, dropout_rate=dropout_rate,
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
    "cspdensenet", DEFAULT_SIZE, MIN_SIZE, VARIANTS, preprocessing="torch",
    # Each stage ends at its fused concat, one past its dense layers.
    stages=lambda config: block_stages(
        [n + 1 for n in config["blocks"]], (4, 8, 16, 32), suffix="concat", last="relu"
    ),
)


def _doc(title, variant, config):
    return (
        f"{title}: DenseNet-{variant.removeprefix('cspdensenet')}'s dense layers "
        f"{list(config['blocks'])} in cross stage partial stages (growth rate 32, gamma 0.5, "
        "the paper's CSP fusion).\n\n"
        "Takes keras.applications' arguments and :func:`CSPDenseNet`'s other knobs. The\n"
        "transition widths are this package's choice: no official configuration exists."
    )


CSPDenseNet121, CSPDenseNet201 = contract.register_family(
    CSPDenseNet, FAMILY, {"cspdensenet121": "CSPDenseNet121", "cspdensenet201": "CSPDenseNet201"}, doc=_doc
)


# ------------------------------------------------------------------ preprocessing


def preprocess_input(x, data_format=None):
    """ImageNet mean/std on pixels scaled to [0, 1] (keras.applications' "torch"
    mode), as this package's DenseNets."""
    return contract.preprocess_input(x, data_format, mode=FAMILY.preprocessing)


decode_predictions = contract.decode_predictions
