"""GoogLeNet / Inception v1 (Szegedy et al. 2014) and BN-Inception
("Inception v2", Ioffe & Szegedy 2015).

"Going Deeper with Convolutions": an Inception module runs four branches on
the same input and concatenates them — a 1x1 conv, a 1x1 reduction then a
3x3, a 1x1 reduction then a 5x5, and a 3x3/1 max-pool then a 1x1 "pool
projection". The 1x1 reductions keep the 3x3 and 5x5 cheap, so the network
can be 22 layers deep and wide at about 7M parameters (the often quoted 6.8M
is in no paper; the paper says "12 times fewer than AlexNet"). Nine modules
(3a-3b at 28x28, 4a-4e at 14x14, 5a-5b at 7x7) sit on a conv stem, with 3x3/2
max-pools between the resolutions; the head is the paper's 7x7 average pool
(global average pooling here, the same at 224), dropout 0.4 and a linear
classifier. Two auxiliary classifiers on the outputs of 4a and 4d
(5x5/3 average pool, 1x1 conv 128, FC 1024, dropout 0.7, FC) add their losses
with weight 0.3 in training and are discarded at inference. Their FC reads
4x4x128 maps at 224 (the paper's 2048 inputs); its width follows the input
size, and inputs must be at least 79x79 (5x5 maps at 4a).

GoogLeNet comes in two forms (``form``):

* ``"paper"`` (registry ``googlenet``): the BVLC Caffe replication of the
  paper (``models/bvlc_googlenet``): every conv has a bias and a ReLU and no
  BatchNorm, local response normalization after pool1 and after conv2
  (Caffe's ``local_size 5, alpha 1e-4, beta 0.75``: alpha divided by the
  window, k = 1, i.e. ``LocalResponseNormalization(5, 2e-5, 0.75, 1.0)``),
  5x5 convs, 3x3/2 max-pools in Caffe's ceil mode. 6,998,552 parameters
  without the auxiliary heads, 13,378,280 with them (1000 classes).
* ``"torchvision"`` (registry ``googlenet_tv``): torchvision's ``googlenet``,
  whose checkpoints convert with ``keras_ultradeep.convert``: every conv is
  conv (no bias) - BatchNorm (epsilon 1e-3) - ReLU, no LRN, the "5x5" branch
  uses a 3x3 kernel (torchvision issue #906, as TF-slim's inception_v1), pool4
  is 2x2/2, the main dropout is 0.2 and the auxiliary heads pool adaptively to
  4x4 (``AdaptiveAveragePooling2D``, the same windows as PyTorch's). 6,624,904
  parameters without the auxiliary heads, 13,004,888 with them. torchvision's
  ``transform_input`` maps ImageNet-normalized input to ``x / 127.5 - 1``: use
  ``preprocess_input(x)`` ("tf" mode) instead.

PyTorch/Caffe ceil-mode max-pools are a zero padding of ``stride - 1`` at the
bottom and right and a valid pool: the same windows at every input size, exact
because every pool here follows a ReLU (a window always holds one real,
non-negative value).

With ``aux_logits=True`` the model has three outputs, ``[predictions,
aux1_predictions, aux2_predictions]``; compile it with one loss per output
and ``loss_weights=aux_loss_weights(model)`` (1 for the main output, 0.3 for
the auxiliary ones, the paper's and Caffe's ``loss_weight``). The main output
never depends on the auxiliary layers; their dropout acts only in training.
For deployment build the model without them (``aux_logits=False``: the same
layer names) and copy the weights of its layers by name, or keep only
``model.outputs[0]``.

BN-Inception (registry ``bn_inception``), the network of the BatchNorm
paper's ImageNet experiments: BatchNorm after every conv, each 5x5 replaced by
two 3x3s, average pooling in most modules, a third 28x28 module (3c) and
stride-2 modules (3c, 4e: stride on the branch's 3x3, max-pool pass-through,
no pool projection) instead of pools between the stages, no dropout and no
auxiliary heads. As in our ResNets, the module that halves the grid opens a
stage: 3a-3b are ``conv3_block1``-``2``, 3c-4d ``conv4_block1``-``5``, 4e-5b
``conv5_block1``-``3``. The module table is the Caffe model ported by Cadene
(pretrainedmodels ``bninception``); its 4c/4d filter numbers match the paper's
as quoted in apache/mxnet#1643, the other rows were not checked against the
paper (unconfirmed). The paper's table gives 576 output maps for 4c/4d while
its filter numbers give 608 (as here, so 4e outputs 1056); TF-slim's
inception_v2 instead cuts the 4c/4d pool projection to 96. Convs have no bias
(BatchNorm follows every one; ``use_bias=True`` is the Caffe port's): 11,285,224
parameters, 11,295,240 with biases (the port's count). BatchNorm epsilon 1e-5
(the port's; the original's is unknown). The paper states no parameter count.
"""

from __future__ import annotations

import functools

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import LocalResponseNormalization

__all__ = [
    "GoogLeNet",
    "GoogLeNetTV",
    "BNInception",
    "aux_loss_weights",
    "preprocess_input",
    "decode_predictions",
]

DEFAULT_SIZE = 224
MIN_SIZE = 32  # the total stride
GOOGLENET_FORMS = ("paper", "torchvision")
AUX_LOSS_WEIGHT = 0.3  # the paper's; BVLC's loss_weight on both auxiliary losses
TORCHVISION_BN_EPSILON = 1e-3
BN_INCEPTION_BN_EPSILON = 1e-5


# --------------------------------------------------------------- shared units


def conv_unit(
    x, filters, kernel_size, name, *, strides=1, padding=0, use_bias=True, batch_norm=False,
    bn_epsilon=1e-3, bn_scale=True, activation="relu",
):
    """A conv ``{name}_conv`` (PyTorch's symmetric ``padding``), optionally a
    BatchNorm ``{name}_bn``, and a ReLU ``{name}_relu``.

    ``kernel_size`` and ``padding`` are ints or (rows, cols) pairs. A stride-1
    conv padded by half its kernel is Keras' "same"; any other padding is an
    explicit ``{name}_pad`` (Keras' "same" pads a stride-2 conv on the
    bottom/right only).
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    if (ph, pw) == (0, 0):
        mode = "valid"
    elif strides == 1 and (ph, pw) == (kh // 2, kw // 2):
        mode = "same"
    else:
        x = layers.ZeroPadding2D((ph, pw), name=f"{name}_pad")(x)
        mode = "valid"
    x = layers.Conv2D(
        filters, (kh, kw), strides=strides, padding=mode, use_bias=use_bias, name=f"{name}_conv"
    )(x)
    if batch_norm:
        x = layers.BatchNormalization(epsilon=bn_epsilon, scale=bn_scale, name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_relu")(x)


def ceil_max_pool(x, pool_size, strides, name):
    """PyTorch's ``MaxPool2d(pool_size, strides, ceil_mode=True)`` (and Caffe's
    pooling): ``strides - 1`` zeros at the bottom/right, then a valid pool.
    Exact on non-negative input (after a ReLU)."""
    extra = strides - 1
    if extra:
        x = layers.ZeroPadding2D(((0, extra), (0, extra)), name=f"{name}_pad")(x)
    return layers.MaxPooling2D(pool_size, strides=strides, name=f"{name}_pool")(x)


def padded_average_pool(x, name):
    """A 3x3/1 average pool that counts its zero padding, as PyTorch's
    ``avg_pool2d(x, 3, 1, 1)`` and Caffe do (Keras' "same" excludes it)."""
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return layers.AveragePooling2D(3, strides=1, name=name)(x)


def aux_loss_weights(model, aux_weight=AUX_LOSS_WEIGHT):
    """``loss_weights`` for ``model.compile`` of a model with auxiliary heads:
    ``{"predictions": 1.0, "aux1_predictions": aux_weight, ...}``, keyed by
    the output names. Keras pairs them with one loss per output::

        model.compile(
            optimizer="sgd",
            loss={name: "sparse_categorical_crossentropy" for name in model.output_names},
            loss_weights=aux_loss_weights(model),
        )

    GoogLeNet's weight is 0.3 (the default); Inception v3's is 0.4
    (:func:`keras_ultradeep.models.inception_v3.aux_loss_weights`).
    """
    names = list(model.output_names)
    if "predictions" not in names or len(names) < 2:
        raise ValueError(
            f"model: expected a model built with aux_logits=True (outputs 'predictions' and "
            f"'aux*_predictions'), got outputs {names}"
        )
    return {name: 1.0 if name == "predictions" else float(aux_weight) for name in names}


def check_aux_arguments(aux_logits, include_top):
    checks.boolean(aux_logits, "aux_logits")
    if aux_logits and include_top is not True:
        raise ValueError("aux_logits: the auxiliary classifiers need include_top=True")


def head_with_aux(aux_head, taps, dropout_rate):
    """contract.classifier_head, followed by ``aux_head(tap, name, ...)`` on each
    tapped tensor (``taps``: ``{name: tensor}``, filled by the features)."""

    def head(x, *, include_top, pooling, classes, classifier_activation):
        main = contract.classifier_head(
            x, include_top=include_top, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation, dropout_rate=dropout_rate,
        )
        if not taps:
            return main
        aux = [
            aux_head(tap, name, classes=classes, classifier_activation=classifier_activation)
            for name, tap in taps.items()
        ]
        return [main, *aux]

    return head


# ------------------------------------------------------------------ GoogLeNet

# Per stage, per module: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
# (the paper's Table 1). Module 3a is conv3_block1, 4e conv4_block5, ...
GOOGLENET_MODULES = {
    3: ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    4: (
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ),
    5: ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
}
GOOGLENET_AUX_TAPS = {"conv4_block1": "aux1", "conv4_block4": "aux2"}  # 4a, 4d
AUX_MIN_SIZE = {"paper": 79, "torchvision": MIN_SIZE}  # the paper's 5x5/3 pool needs 5x5 maps at 4a


def _bvlc_lrn(name):
    return LocalResponseNormalization.from_caffe(5, 1e-4, 0.75, name=name)


def inception_module(x, filters, name, *, unit, wide_kernel=5):
    """The four branches, concatenated in ``{name}_concat``; ``wide_kernel``
    is the "5x5" branch's kernel (3 in torchvision, its issue #906)."""
    n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj = filters
    branch1 = unit(x, n1x1, 1, f"{name}_1x1")
    branch2 = unit(x, n3x3_reduce, 1, f"{name}_3x3_reduce")
    branch2 = unit(branch2, n3x3, 3, f"{name}_3x3", padding=1)
    branch3 = unit(x, n5x5_reduce, 1, f"{name}_5x5_reduce")
    branch3 = unit(branch3, n5x5, wide_kernel, f"{name}_5x5", padding=wide_kernel // 2)
    branch4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branch4 = unit(branch4, pool_proj, 1, f"{name}_pool_proj")
    return layers.Concatenate(name=f"{name}_concat")([branch1, branch2, branch3, branch4])


def googlenet_features(form, taps):
    paper = form == "paper"

    def unit(x, filters, kernel_size, name, **options):
        return conv_unit(
            x, filters, kernel_size, name, use_bias=paper, batch_norm=not paper,
            bn_epsilon=TORCHVISION_BN_EPSILON, **options,
        )

    def features(x):
        x = unit(x, 64, 7, "conv1", strides=2, padding=3)
        x = ceil_max_pool(x, 3, 2, "pool1")
        if paper:
            x = _bvlc_lrn("pool1_norm")(x)
        x = unit(x, 64, 1, "conv2_block1_1")
        x = unit(x, 192, 3, "conv2_block1_2", padding=1)
        # The stage's output, named for feature extraction: the LRN (norm2) in
        # the paper, the ReLU's output in torchvision.
        if paper:
            x = _bvlc_lrn("conv2_block1_out")(x)
        else:
            x = layers.Identity(name="conv2_block1_out")(x)
        for stage, modules in GOOGLENET_MODULES.items():
            pool_size = 2 if stage == 5 and not paper else 3
            x = ceil_max_pool(x, pool_size, 2, f"pool{stage - 1}")
            for block, filters in enumerate(modules, start=1):
                name = f"conv{stage}_block{block}"
                x = inception_module(x, filters, name, unit=unit, wide_kernel=5 if paper else 3)
                if taps is not None and name in GOOGLENET_AUX_TAPS:
                    taps[GOOGLENET_AUX_TAPS[name]] = x
        return x

    return features


def googlenet_aux_head(form):
    """The auxiliary classifier: pool, 1x1 conv 128, FC 1024 + ReLU, dropout,
    FC. The paper pools 5x5/3, torchvision adaptively to 4x4."""
    paper = form == "paper"

    def aux_head(x, name, *, classes, classifier_activation, dropout_rate):
        if paper:
            x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
        else:
            x = layers.AdaptiveAveragePooling2D((4, 4), name=f"{name}_pool")(x)
        x = conv_unit(
            x, 128, 1, f"{name}_reduce", use_bias=paper, batch_norm=not paper,
            bn_epsilon=TORCHVISION_BN_EPSILON,
        )
        x = layers.Flatten(name=f"{name}_flatten")(x)
        x = layers.Dense(1024, name=f"{name}_fc")(x)
        x = layers.Activation("relu", name=f"{name}_fc_relu")(x)
        x = layers.Dropout(dropout_rate, name=f"{name}_drop")(x)
        return layers.Dense(classes, activation=classifier_activation, name=f"{name}_predictions")(x)

    return aux_head


def GoogLeNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    form="paper",
    aux_logits=False,
    dropout_rate=None,
    aux_dropout_rate=0.7,
    model_name=None,
):
    """GoogLeNet (Inception v1).

    Args (beyond keras.applications'):
        form: ``"paper"`` (BVLC Caffe: conv biases, LRN, 5x5 convs, no BN) or
            ``"torchvision"`` (BN after every conv, no LRN, 3x3 in the "5x5"
            branch, 2x2 pool4; converts torchvision checkpoints).
        aux_logits: add the two auxiliary classifiers (on 4a and 4d): the
            model then returns ``[predictions, aux1_predictions,
            aux2_predictions]``; compile with ``loss_weights=
            aux_loss_weights(model)`` (0.3 each). Needs ``include_top``.
        dropout_rate: before the classifier; None: 0.4 (paper), 0.2
            (torchvision).
        aux_dropout_rate: in the auxiliary classifiers, 0.7 in both.
    """
    checks.one_of(form, "form", GOOGLENET_FORMS)
    check_aux_arguments(aux_logits, include_top)
    if dropout_rate is None:
        dropout_rate = 0.4 if form == "paper" else 0.2
    checks.number_in(dropout_rate, "dropout_rate", 0, 1, high_open=True)
    checks.number_in(aux_dropout_rate, "aux_dropout_rate", 0, 1, high_open=True)
    model_name = model_name or ("googlenet" if form == "paper" else "googlenet_tv")
    name = model_name if name is None else name
    taps = {}  # filled by the features with the tensors the auxiliary heads read
    aux_head = functools.partial(googlenet_aux_head(form), dropout_rate=aux_dropout_rate)
    return contract.application(
        googlenet_features(form, taps if aux_logits else None),
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=AUX_MIN_SIZE[form] if aux_logits else MIN_SIZE,
        head=head_with_aux(aux_head, taps, dropout_rate),
        **contract.keras_arguments(locals()),
    )


registry.register("googlenet", GoogLeNet, family="googlenet", default_size=DEFAULT_SIZE, min_size=MIN_SIZE)
GoogLeNetTV = contract.registered_variant(
    GoogLeNet, "googlenet_tv", "GoogLeNetTV", {"form": "torchvision"},
    family="googlenet", default_size=DEFAULT_SIZE, min_size=MIN_SIZE,
    doc=(
        "GoogLeNetTV (googlenet_tv): torchvision's GoogLeNet — BatchNorm (epsilon 1e-3) after\n"
        "every bias-free conv, no LRN, a 3x3 in the \"5x5\" branch, a 2x2/2 pool4, dropout 0.2.\n\n"
        "Takes keras.applications' arguments and :func:`GoogLeNet`'s ``aux_logits``,\n"
        "``dropout_rate``, ``aux_dropout_rate``."
    ),
)


# --------------------------------------------------------------- BN-Inception

# Per stage (our names: a stage's first module halves the grid, as in our
# ResNets): #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool
# ("avg"/"max"), its projection and the stride. The grid-reduction modules
# (stride 2) have no 1x1 and pass their max-pool through without projection.
BN_INCEPTION_MODULES = {
    3: (
        (64, 64, 64, 64, 96, "avg", 32, 1),  # 3a: conv3_block1
        (64, 64, 96, 64, 96, "avg", 64, 1),  # 3b: conv3_block2
    ),
    4: (
        (0, 128, 160, 64, 96, "max", 0, 2),  # 3c: conv4_block1, 28 -> 14
        (224, 64, 96, 96, 128, "avg", 128, 1),  # 4a: conv4_block2
        (192, 96, 128, 96, 128, "avg", 128, 1),  # 4b: conv4_block3
        (160, 128, 160, 128, 160, "avg", 128, 1),  # 4c: conv4_block4 (608 maps, the table says 576)
        (96, 128, 192, 160, 192, "avg", 128, 1),  # 4d: conv4_block5
    ),
    5: (
        (0, 128, 192, 192, 256, "max", 0, 2),  # 4e: conv5_block1, 14 -> 7
        (352, 192, 320, 160, 224, "avg", 128, 1),  # 5a: conv5_block2
        (352, 192, 320, 192, 224, "max", 128, 1),  # 5b: conv5_block3
    ),
}


def bn_inception_module(x, config, name, *, unit):
    """Branches [1x1] [1x1 -> 3x3] [1x1 -> 3x3 -> 3x3] [pool -> 1x1]; a
    stride-2 module strides the 3x3 and the second double 3x3 (padding 1) and
    passes its 3x3/2 max-pool through."""
    n1x1, n3x3_reduce, n3x3, ndbl_reduce, ndbl, pool, pool_proj, stride = config
    branches = []
    if n1x1:
        branches.append(unit(x, n1x1, 1, f"{name}_1x1"))
    y = unit(x, n3x3_reduce, 1, f"{name}_3x3_reduce")
    branches.append(unit(y, n3x3, 3, f"{name}_3x3", strides=stride, padding=1))
    y = unit(x, ndbl_reduce, 1, f"{name}_double_3x3_reduce")
    y = unit(y, ndbl, 3, f"{name}_double_3x3_1", padding=1)
    branches.append(unit(y, ndbl, 3, f"{name}_double_3x3_2", strides=stride, padding=1))
    if stride == 2:
        # Caffe's ceil-mode 3x3/2 pool: Keras' "same" has its windows on even
        # maps (as at 224) and keeps the conv branches' ceil(n / 2) on odd ones.
        y = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    elif pool == "max":
        y = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    else:
        y = padded_average_pool(x, f"{name}_pool")  # Caffe counts the padding
    if pool_proj:
        y = unit(y, pool_proj, 1, f"{name}_pool_proj")
    branches.append(y)
    return layers.Concatenate(name=f"{name}_concat")(branches)


def BNInception(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="bn_inception",
    *,
    use_bias=False,
    batch_norm_epsilon=BN_INCEPTION_BN_EPSILON,
):
    """BN-Inception (Inception v2 of the BatchNorm paper).

    Args (beyond keras.applications'):
        use_bias: conv biases before each BatchNorm (the Caffe port has them;
            BatchNorm's beta makes them redundant).
        batch_norm_epsilon: 1e-5, the port's.
    """
    checks.boolean(use_bias, "use_bias")
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")

    def unit(x, filters, kernel_size, unit_name, **options):
        return conv_unit(
            x, filters, kernel_size, unit_name, use_bias=use_bias, batch_norm=True,
            bn_epsilon=batch_norm_epsilon, **options,
        )

    def features(x):
        x = unit(x, 64, 7, "conv1", strides=2, padding=3)
        x = ceil_max_pool(x, 3, 2, "pool1")
        x = unit(x, 64, 1, "conv2_block1_1")
        x = unit(x, 192, 3, "conv2_block1_2", padding=1)
        x = layers.Identity(name="conv2_block1_out")(x)
        x = ceil_max_pool(x, 3, 2, "pool2")
        for stage, modules in BN_INCEPTION_MODULES.items():
            for block, config in enumerate(modules, start=1):
                x = bn_inception_module(x, config, f"conv{stage}_block{block}", unit=unit)
        return x

    return contract.application(
        features,
        model_name="bn_inception",
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


registry.register(
    "bn_inception", BNInception, family="bn_inception", default_size=DEFAULT_SIZE, min_size=MIN_SIZE
)
# The stem's last layer, then each grid's last Inception module (the 7x7
# grid has two in GoogLeNet, three in BN-Inception).
FAMILIES = tuple(
    registry.declare(registry.Family(
        family, DEFAULT_SIZE, MIN_SIZE, stages=lambda config, last=last: (
            ("conv2_block1_out", 4), ("conv3_block2_concat", 8), ("conv4_block5_concat", 16),
            (f"conv5_block{last}_concat", 32),
        ),
    ))
    for family, last in (("googlenet", 2), ("bn_inception", 3))
)


# -------------------------------------------------------------- preprocessing


def preprocess_input(x, data_format=None, mode="tf"):
    """Pixels in [0, 255], RGB, to ``x / 127.5 - 1`` (``mode="tf"``, the
    default: torchvision's GoogLeNet weights expect it, which is what its
    ``transform_input`` computes from ImageNet-normalized input). The BVLC
    Caffe model expects ``mode="caffe"`` (BGR, mean subtracted)."""
    return contract.preprocess_input(x, data_format, mode=mode)


decode_predictions = contract.decode_predictions
