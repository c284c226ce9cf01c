"""Inception v3 (Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, CVPR 2016).

"Rethinking the Inception Architecture for Computer Vision": factorize
convolutions — a 5x5 into two 3x3s, an n x n into a 1 x n and an n x 1 —
and reduce the grid with parallel stride-2 branches (conv and pool
concatenated) instead of a pool in front of a wider module, so no
representational bottleneck forms. On 299x299 input a conv stem (to 35x35x192)
feeds three 35x35 modules (``mixed0``-``mixed2``, 5x5 factorized), a grid
reduction (``mixed3``), four 17x17 modules with 1x7/7x1 factorization
(``mixed4``-``mixed7``), a second reduction (``mixed8``) and two 8x8 modules
with expanded 1x3/3x1 filter banks (``mixed9``, ``mixed10``). Every conv is
conv (no bias) - BatchNorm - ReLU. One auxiliary classifier on the last 17x17
module (5x5/3 average pool, 1x1 conv 128, 5x5 conv 768, classifier) acts as a
regularizer; the paper's training recipe also smooths the labels (epsilon 0.1,
a loss matter: not part of the model).

Two forms (``form``):

* ``"keras"`` (registry ``inception_v3_keras``, builder ``InceptionV3``):
  keras.applications' InceptionV3 layer for layer — BatchNorm without scale
  (gamma), epsilon 1e-3; 3x3/1 average pools that exclude the padding (TF's
  "SAME", as TF-slim trained the original) — so its weights files load
  unchanged. The concatenations keep Keras' names (``mixed0`` ... ``mixed10``,
  ``mixed9_0``, ``mixed9_1``); the convs are named after TF-slim's/timm's
  branches (``mixed4_7x7dbl_3_conv``) where Keras leaves them unnamed.
  23,851,784 parameters (23,817,352 trainable), Keras' figure.
* ``"timm"`` (registry ``inception_v3``, timm's name): timm's ``inception_v3`` (the
  torchvision module), whose checkpoints (``tv_in1k``, ``tf_in1k``,
  ``tf_adv_in1k``, ``gluon_in1k``: one architecture, different weights)
  convert with ``keras_ultradeep.convert`` — BatchNorm with gamma, epsilon
  1e-3, and PyTorch's ``avg_pool2d(3, 1, 1)``, which counts the zero padding.
  23,834,568 parameters without the auxiliary head, 27,161,264 with it
  (torchvision's documented count).

``aux_logits=True`` adds the auxiliary classifier (timm's ``AuxLogits``,
BatchNorm as the form's): the model returns ``[predictions,
aux_predictions]``; compile with ``loss_weights=aux_loss_weights(model)``
(1 and 0.4: TF-slim's ``train_image_classifier.py`` weighs ``AuxLogits`` by
0.4; the paper gives no weight). It needs 299x299 inputs or larger: its
valid 5x5 conv reads the 5x5 maps that the 5x5/3 pool makes of mixed7's
17x17. A pretrained tag (Keras' ImageNet weights have no auxiliary head)
loads into the rest of the model and the auxiliary head starts untrained; a
weights file loads as it is (save it from a model with the head).

Stage outputs: ``mixed2`` (stride 8), ``mixed7`` (16), ``mixed10`` (32), and
``conv2b_relu`` (2) and ``conv4a_relu`` (4), the taps of timm's
``feature_info``.
"""

from __future__ import annotations

from keras import layers

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.models import transfer
from keras_ultradeep.models.inception import aux_loss_weights as _aux_loss_weights
from keras_ultradeep.models.inception import (
    check_aux_arguments,
    conv_unit,
    head_with_aux,
    padded_average_pool,
)

__all__ = [
    "InceptionV3",
    "InceptionV3Timm",
    "aux_loss_weights",
    "preprocess_input",
    "decode_predictions",
]

DEFAULT_SIZE = 299
MIN_SIZE = 75  # keras.applications'
AUX_MIN_SIZE = 299  # the auxiliary 5x5 conv needs 17x17 maps at mixed7 (5x5 after its 5x5/3 pool)
FORMS = ("keras", "timm")
BN_EPSILON = 1e-3  # TF-slim's, Keras' and timm's
AUX_LOSS_WEIGHT = 0.4  # TF-slim's train_image_classifier.py
STAGE_OUTPUTS = ("conv2b_relu", "conv4a_relu", "mixed2", "mixed7", "mixed10")


def aux_loss_weights(model, aux_weight=AUX_LOSS_WEIGHT):
    """``loss_weights`` for ``model.compile`` of an ``aux_logits=True``
    Inception v3: ``{"predictions": 1.0, "aux_predictions": 0.4}`` (TF-slim's
    weight of ``AuxLogits``); see :func:`keras_ultradeep.models.inception.aux_loss_weights`."""
    return _aux_loss_weights(model, aux_weight)


# ----------------------------------------------------------------- modules


class _Units:
    """conv-BN-ReLU units and 3x3/1 average pools in one form."""

    def __init__(self, form):
        self.timm = form == "timm"

    def __call__(self, x, filters, kernel_size, name, strides=1, padding="same"):
        """Keras' conv2d_bn: "same" (symmetric for these odd kernels at stride
        1) or "valid" (every stride-2 conv)."""
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        return conv_unit(
            x, filters, (kh, kw), name, strides=strides,
            padding=(kh // 2, kw // 2) if padding == "same" else 0,
            use_bias=False, batch_norm=True, bn_epsilon=BN_EPSILON, bn_scale=self.timm,
        )

    def average_pool(self, x, name):
        if self.timm:
            return padded_average_pool(x, name)  # PyTorch counts the padding
        return layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


def module_a(x, pool_features, name, unit):
    """35x35: [1x1 64] [1x1 48, 5x5 64] [1x1 64, 3x3 96, 3x3 96] [avg, 1x1]."""
    branch1x1 = unit(x, 64, 1, f"{name}_1x1")
    branch5x5 = unit(x, 48, 1, f"{name}_5x5_1")
    branch5x5 = unit(branch5x5, 64, 5, f"{name}_5x5_2")
    dbl = unit(x, 64, 1, f"{name}_3x3dbl_1")
    dbl = unit(dbl, 96, 3, f"{name}_3x3dbl_2")
    dbl = unit(dbl, 96, 3, f"{name}_3x3dbl_3")
    pool = unit.average_pool(x, f"{name}_avg_pool")
    pool = unit(pool, pool_features, 1, f"{name}_pool")
    return layers.Concatenate(name=name)([branch1x1, branch5x5, dbl, pool])


def module_b(x, name, unit):
    """Grid reduction 35 -> 17: [3x3/2 384] [1x1 64, 3x3 96, 3x3/2 96] [max 3x3/2]."""
    branch3x3 = unit(x, 384, 3, f"{name}_3x3", strides=2, padding="valid")
    dbl = unit(x, 64, 1, f"{name}_3x3dbl_1")
    dbl = unit(dbl, 96, 3, f"{name}_3x3dbl_2")
    dbl = unit(dbl, 96, 3, f"{name}_3x3dbl_3", strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, name=f"{name}_max_pool")(x)
    return layers.Concatenate(name=name)([branch3x3, dbl, pool])


def module_c(x, channels_7x7, name, unit):
    """17x17: [1x1 192] [1x1 c, 1x7 c, 7x1 192] [1x1 c, 7x1, 1x7, 7x1, 1x7 192] [avg, 1x1 192]."""
    c = channels_7x7
    branch1x1 = unit(x, 192, 1, f"{name}_1x1")
    b7 = unit(x, c, 1, f"{name}_7x7_1")
    b7 = unit(b7, c, (1, 7), f"{name}_7x7_2")
    b7 = unit(b7, 192, (7, 1), f"{name}_7x7_3")
    dbl = unit(x, c, 1, f"{name}_7x7dbl_1")
    dbl = unit(dbl, c, (7, 1), f"{name}_7x7dbl_2")
    dbl = unit(dbl, c, (1, 7), f"{name}_7x7dbl_3")
    dbl = unit(dbl, c, (7, 1), f"{name}_7x7dbl_4")
    dbl = unit(dbl, 192, (1, 7), f"{name}_7x7dbl_5")
    pool = unit.average_pool(x, f"{name}_avg_pool")
    pool = unit(pool, 192, 1, f"{name}_pool")
    return layers.Concatenate(name=name)([branch1x1, b7, dbl, pool])


def module_d(x, name, unit):
    """Grid reduction 17 -> 8: [1x1 192, 3x3/2 320] [1x1 192, 1x7, 7x1, 3x3/2 192] [max 3x3/2]."""
    branch3x3 = unit(x, 192, 1, f"{name}_3x3_1")
    branch3x3 = unit(branch3x3, 320, 3, f"{name}_3x3_2", strides=2, padding="valid")
    b7 = unit(x, 192, 1, f"{name}_7x7x3_1")
    b7 = unit(b7, 192, (1, 7), f"{name}_7x7x3_2")
    b7 = unit(b7, 192, (7, 1), f"{name}_7x7x3_3")
    b7 = unit(b7, 192, 3, f"{name}_7x7x3_4", strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, name=f"{name}_max_pool")(x)
    return layers.Concatenate(name=name)([branch3x3, b7, pool])


def module_e(x, index, name, unit):
    """8x8, expanded filter banks: [1x1 320] [1x1 384, {1x3, 3x1} 384]
    [1x1 448, 3x3 384, {1x3, 3x1} 384] [avg, 1x1 192]."""
    branch1x1 = unit(x, 320, 1, f"{name}_1x1")
    b3 = unit(x, 384, 1, f"{name}_3x3_1")
    b3 = layers.Concatenate(name=f"mixed9_{index}")(
        [unit(b3, 384, (1, 3), f"{name}_3x3_2a"), unit(b3, 384, (3, 1), f"{name}_3x3_2b")]
    )
    dbl = unit(x, 448, 1, f"{name}_3x3dbl_1")
    dbl = unit(dbl, 384, 3, f"{name}_3x3dbl_2")
    dbl = layers.Concatenate(name=f"{name}_3x3dbl_concat")(
        [unit(dbl, 384, (1, 3), f"{name}_3x3dbl_3a"), unit(dbl, 384, (3, 1), f"{name}_3x3dbl_3b")]
    )
    pool = unit.average_pool(x, f"{name}_avg_pool")
    pool = unit(pool, 192, 1, f"{name}_pool")
    return layers.Concatenate(name=name)([branch1x1, b3, dbl, pool])


def inception_v3_features(unit, taps):
    """The stem and mixed0 ... mixed10; ``taps["aux"]`` is mixed7's output."""

    def features(x):
        x = unit(x, 32, 3, "conv1a", strides=2, padding="valid")
        x = unit(x, 32, 3, "conv2a", padding="valid")
        x = unit(x, 64, 3, "conv2b")
        x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
        x = unit(x, 80, 1, "conv3b", padding="valid")
        x = unit(x, 192, 3, "conv4a", padding="valid")
        x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
        for index, pool_features in enumerate((32, 64, 64)):
            x = module_a(x, pool_features, f"mixed{index}", unit)
        x = module_b(x, "mixed3", unit)
        for index, channels_7x7 in enumerate((128, 160, 160, 192), start=4):
            x = module_c(x, channels_7x7, f"mixed{index}", unit)
        if taps is not None:
            taps["aux"] = x
        x = module_d(x, "mixed8", unit)
        for index in range(2):
            x = module_e(x, index, f"mixed{9 + index}", unit)
        return x

    return features


def aux_head(unit):
    """timm's ``AuxLogits``: 5x5/3 average pool, 1x1 conv 128, 5x5 conv 768,
    global average pool, classifier."""

    def head(x, name, *, classes, classifier_activation):
        x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
        x = unit(x, 128, 1, f"{name}_conv0")
        x = unit(x, 768, 5, f"{name}_conv1", padding="valid")
        x = layers.GlobalAveragePooling2D(name=f"{name}_avg_pool")(x)
        return layers.Dense(classes, activation=classifier_activation, name=f"{name}_predictions")(x)

    return head


def InceptionV3(
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    form="keras",
    aux_logits=False,
    model_name=None,
):
    """Inception v3.

    Args (beyond keras.applications'):
        form: ``"keras"`` (keras.applications' layers and weights files) or
            ``"timm"`` (BatchNorm with gamma, padding-counting average pools;
            converts timm/torchvision checkpoints).
        aux_logits: add the auxiliary classifier on ``mixed7``: the model
            returns ``[predictions, aux_predictions]``; compile with
            ``loss_weights=aux_loss_weights(model)``. Needs ``include_top``
            and inputs of at least 299x299.
    """
    checks.one_of(form, "form", FORMS)
    check_aux_arguments(aux_logits, include_top)
    model_name = model_name or ("inception_v3_keras" if form == "keras" else "inception_v3")
    name = "inception_v3" if name is None else name
    if aux_logits and contract.is_pretrained(model_name, weights):
        # Pretrained files hold no auxiliary head: load them into the model
        # without it, then copy them layer by layer (the names are the same).
        arguments = contract.keras_arguments(locals())
        return transfer.load_through(
            lambda: InceptionV3(**arguments, form=form),
            lambda: InceptionV3(**{**arguments, "weights": None}, form=form, aux_logits=True),
            transfer.copy_by_layer_name,
        )

    unit = _Units(form)
    taps = {}
    return contract.application(
        inception_v3_features(unit, taps if aux_logits else None),
        model_name=model_name,
        default_size=DEFAULT_SIZE,
        min_size=AUX_MIN_SIZE if aux_logits else MIN_SIZE,
        head=head_with_aux(aux_head(unit), taps, 0.0),
        **contract.keras_arguments(locals()),
    )


registry.register(
    "inception_v3_keras", InceptionV3, family="inception_v3", default_size=DEFAULT_SIZE, min_size=MIN_SIZE
)
# timm's feature_info taps. The valid-padded convs lose pixels (75 -> 3x3 at
# mixed7), so a measured reduction would be off: these are the nominal ones.
FAMILY = registry.declare(
    registry.Family(
        "inception_v3", DEFAULT_SIZE, MIN_SIZE,
        stages=lambda config: tuple(zip(STAGE_OUTPUTS, (2, 4, 8, 16, 32))),
    )
)
InceptionV3Timm = contract.registered_variant(
    InceptionV3, "inception_v3", "InceptionV3Timm", {"form": "timm"},
    family="inception_v3", default_size=DEFAULT_SIZE, min_size=MIN_SIZE,
    doc=(
        "InceptionV3Timm (inception_v3): timm's inception_v3 — BatchNorm with gamma\n"
        "(epsilon 1e-3), average pools counting their padding; converts timm checkpoints.\n\n"
        "Takes keras.applications' arguments and ``aux_logits``; see :func:`InceptionV3`."
    ),
)


def preprocess_input(x, data_format=None, mode="tf"):
    """Pixels in [0, 255], RGB, to the models' input.

    ``mode="tf"`` (default): [-1, 1], as
    ``keras.applications.inception_v3.preprocess_input`` and timm's Inception
    tags (mean = std = 0.5); ``"torch"`` (ImageNet mean/std) for timm's
    ``inception_v3.gluon_in1k``.
    """
    return contract.preprocess_input(x, data_format, mode=mode)


decode_predictions = contract.decode_predictions
