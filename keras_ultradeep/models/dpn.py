"""Dual Path Networks (Chen, Li, Xiao, Jin, Yan, Feng, NIPS 2017).

"Dual Path Networks": a ResNeXt reuses features (the residual path adds each
block's output to a fixed-width state), a DenseNet explores new ones (the
dense path concatenates each block's new maps). A DPN block does both at once:
its input is the concatenation of a residual state of ``bw`` maps and a dense
state, and its bottleneck (BN-ReLU-1x1, BN-ReLU-grouped 3x3, BN-ReLU-1x1)
produces ``bw + inc`` maps, the first ``bw`` added to the residual state and
the last ``inc`` appended to the dense state::

    out = concat([shortcut[:bw] + branch[:bw], shortcut[bw:], branch[bw:]])

The first block of every stage projects its input (a BN-ReLU-1x1 to
``bw + 2 * inc`` maps, strided in stages 3-5) into a fresh residual state and
a dense state of ``2 * inc`` maps; the other blocks use their input as it is.

As timm's ``dpn68`` ... ``dpn131`` (the ports of the authors' MXNet models),
whose checkpoints convert with ``keras_ultradeep.convert``:

* every conv is pre-activated (BatchNorm, epsilon 1e-3, and ReLU in front of
  it), without bias, and the network ends with a BatchNorm-ReLU over the
  concatenated paths (``post_bn``/``post_relu``);
* the stem is a strided conv-BN-ReLU (3x3 in the small DPN-68, else 7x7) and
  a 3x3/2 max-pool; the 3x3 of each stage's first block strides (but the first
  stage's), padding symmetrically as PyTorch does;
* ``b=True`` (DPN-68b) computes the residual and dense outputs of a block's
  last 1x1 with two convs behind one BN-ReLU instead of splitting one conv;
* the classifier is a 1x1 conv over the pooled features: our Dense
  ``predictions`` (global average pooling then Dense is the same map).

Splitting channels is :class:`keras_ultradeep.layers.ChannelSplit` (no Lambda layers).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from keras_ultradeep import checks, contract, registry
from keras_ultradeep.layers import ChannelSplit
from keras_ultradeep.models.blocks import block_stages, conv

__all__ = [
    "DPN",
    "DPN68",
    "DPN68b",
    "DPN92",
    "DPN98",
    "DPN107",
    "DPN131",
    "preprocess_input",
    "decode_predictions",
]

BN_EPSILON = 1e-3  # the MXNet models'
STAGE_BASES = (64, 128, 256, 512)  # a stage's k_r and residual width scale with these
DEFAULT_SIZE = 224
MIN_SIZE = 32  # the total stride


# ----------------------------------------------------------------------- blocks


def bn_relu(x, name, bn_epsilon):
    """BatchNorm ``{name}_bn`` and ReLU ``{name}_relu``."""
    x = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def bn_relu_conv(x, filters, kernel_size, name, *, bn_epsilon, strides=1, groups=1):
    """timm's BnActConv2d: BN-ReLU, then a bias-free conv (symmetric padding at stride 2)."""
    x = bn_relu(x, name, bn_epsilon)
    return conv(x, filters, kernel_size, name, strides=strides, groups=groups)


def dual_path_block(x, name, *, r, bw, inc, groups, stride, projection, b, bn_epsilon):
    """One dual path block ``{name}``: ``_0`` the projection (first block of a
    stage), ``_1`` the 1x1 reduce to ``r``, ``_2`` the grouped 3x3 (strided),
    ``_3`` the 1x1 to ``bw`` residual and ``inc`` dense maps, ``_add`` the
    residual sum and ``_out`` the concatenated paths."""
    shortcut = x
    if projection:
        shortcut = bn_relu_conv(x, bw + 2 * inc, 1, f"{name}_0", strides=stride, bn_epsilon=bn_epsilon)
    residual, dense = ChannelSplit(bw, name=f"{name}_0_split")(shortcut)

    y = bn_relu_conv(x, r, 1, f"{name}_1", bn_epsilon=bn_epsilon)
    y = bn_relu_conv(y, r, 3, f"{name}_2", strides=stride, groups=groups, bn_epsilon=bn_epsilon)
    if b:
        y = bn_relu(y, f"{name}_3", bn_epsilon)
        new_residual = conv(y, bw, 1, f"{name}_3_res")
        new_dense = conv(y, inc, 1, f"{name}_3_dense")
    else:
        y = bn_relu_conv(y, bw + inc, 1, f"{name}_3", bn_epsilon=bn_epsilon)
        new_residual, new_dense = ChannelSplit(bw, name=f"{name}_3_split")(y)

    residual = layers.Add(name=f"{name}_add")([residual, new_residual])
    return layers.Concatenate(name=f"{name}_out")([residual, dense, new_dense])


def stem(x, *, num_init_features, small, bn_epsilon):
    """A strided conv-BN-ReLU (3x3 when ``small``, else 7x7) and a 3x3/2 max-pool."""
    x = conv(x, num_init_features, 3 if small else 7, "conv1", strides=2)
    x = layers.BatchNormalization(epsilon=bn_epsilon, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)  # post-ReLU: zeros never win the max
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def dpn_features(k_sec, inc_sec, *, k_r, groups, num_init_features, small, b, bn_epsilon):
    """Stem, stages ``conv2``..``conv5`` and the final BN-ReLU."""
    width_factor = 1 if small else 4

    def features(x):
        x = stem(x, num_init_features=num_init_features, small=small, bn_epsilon=bn_epsilon)
        for stage, (base, depth, inc) in enumerate(zip(STAGE_BASES, k_sec, inc_sec)):
            options = dict(
                r=k_r * base // 64, bw=base * width_factor, inc=inc, groups=groups, b=b,
                bn_epsilon=bn_epsilon,
            )
            for i in range(depth):
                x = dual_path_block(
                    x, f"conv{stage + 2}_block{i + 1}", projection=i == 0,
                    stride=2 if stage > 0 and i == 0 else 1, **options,
                )
        return bn_relu(x, "post", bn_epsilon)

    return features


# ------------------------------------------------------------------------ knobs


def _check_knobs(k_sec, inc_sec, k_r, groups, num_init_features, small, b, batch_norm_epsilon):
    stages = len(STAGE_BASES)
    k_sec = checks.positive_ints(k_sec, "k_sec", length=stages, what="positive block counts, one per stage")
    inc_sec = checks.positive_ints(
        inc_sec, "inc_sec", length=stages, what="positive dense-path increments, one per stage"
    )
    checks.positive_int(k_r, "k_r")
    checks.positive_int(groups, "groups")
    checks.positive_int(num_init_features, "num_init_features")
    if k_r * STAGE_BASES[0] // 64 % groups:
        raise ValueError(
            f"k_r: the first stage's 3x3 has k_r = {k_r} maps, which groups={groups} does not divide"
        )
    checks.boolean(small, "small")
    checks.boolean(b, "b")
    checks.positive_number(batch_norm_epsilon, "batch_norm_epsilon")
    return k_sec, inc_sec


# --------------------------------------------------------------------- variants

_SMALL = dict(
    small=True, num_init_features=10, k_r=128, groups=32, k_sec=(3, 4, 12, 3), inc_sec=(16, 32, 32, 64)
)
VARIANTS = {
    "dpn68": dict(**_SMALL, b=False),
    "dpn68b": dict(**_SMALL, b=True),
    "dpn92": dict(
        small=False, num_init_features=64, k_r=96, groups=32, k_sec=(3, 4, 20, 3),
        inc_sec=(16, 32, 24, 128), b=False,
    ),
    "dpn98": dict(
        small=False, num_init_features=96, k_r=160, groups=40, k_sec=(3, 6, 20, 3),
        inc_sec=(16, 32, 32, 128), b=False,
    ),
    "dpn107": dict(
        small=False, num_init_features=128, k_r=200, groups=50, k_sec=(4, 8, 20, 3),
        inc_sec=(20, 64, 64, 128), b=False,
    ),
    "dpn131": dict(
        small=False, num_init_features=128, k_r=160, groups=40, k_sec=(4, 8, 28, 3),
        inc_sec=(16, 32, 32, 128), b=False,
    ),
}


def DPN(
    k_sec,
    inc_sec,
    k_r=96,
    groups=32,
    num_init_features=64,
    small=False,
    b=False,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="dpn",
    *,
    batch_norm_epsilon=BN_EPSILON,
    model_name=None,
):
    """A Dual Path Network (timm's ``DPN`` and the authors' MXNet models).

    Args (beyond keras.applications'):
        k_sec: blocks per stage, e.g. ``(3, 4, 20, 3)`` for DPN-92.
        inc_sec: maps each block adds to the dense path, per stage.
        k_r: maps of the first stage's 1x1 reduce and grouped 3x3 (doubling
            every stage).
        groups: groups of every 3x3 conv (the cardinality).
        num_init_features: maps of the stem conv.
        small: a 3x3 stem conv and residual widths 64, 128, 256, 512 (DPN-68);
            else a 7x7 stem conv and widths 256, 512, 1024, 2048.
        b: the last 1x1 of each block as two convs (residual, dense), DPN-68b.
        batch_norm_epsilon: 1e-3, the MXNet models' (and timm's).
    """
    k_sec, inc_sec = _check_knobs(
        k_sec, inc_sec, k_r, groups, num_init_features, small, b, batch_norm_epsilon
    )
    model_name = model_name or "dpn"
    features = dpn_features(
        k_sec, inc_sec, k_r=k_r, groups=groups, num_init_features=num_init_features, small=small, b=b,
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
    "dpn", DEFAULT_SIZE, MIN_SIZE, VARIANTS, preprocessing="dpn",
    stages=lambda config: block_stages(config["k_sec"], (4, 8, 16, 32), last="post_relu"),
)


def _doc(title, variant, config):
    return (
        f"{title} (timm's {variant}): blocks {list(config['k_sec'])}, dense increments "
        f"{list(config['inc_sec'])}, k_r={config['k_r']}, groups={config['groups']}"
        f"{', split last 1x1 (b)' if config['b'] else ''}.\n\n"
        "Takes keras.applications' arguments and ``batch_norm_epsilon``; see :func:`DPN`."
    )


DPN68, DPN68b, DPN92, DPN98, DPN107, DPN131 = contract.register_family(
    DPN,
    FAMILY,
    {"dpn68": "DPN68", "dpn68b": "DPN68b", "dpn92": "DPN92", "dpn98": "DPN98", "dpn107": "DPN107", "dpn131": "DPN131"},
    doc=_doc,
)


# ------------------------------------------------------------------ preprocessing

# timm's IMAGENET_DPN_MEAN/STD (the MXNet models'): mean (124, 117, 104) / 255 and
# std 1 / (0.0167 * 255), i.e. on 0-255 pixels (x - (124, 117, 104)) * 0.0167.
DPN_MEAN = (124.0, 117.0, 104.0)
DPN_SCALE = 0.0167
PREPROCESS_MODES = ("dpn", *contract.PREPROCESS_MODES)


def preprocess_input(x, data_format=None, mode=FAMILY.preprocessing):
    """Pixels in [0, 255], RGB, to the models' input.

    ``mode="dpn"`` (default): ``(x - (124, 117, 104)) * 0.0167`` per channel,
    the normalization of the MXNet-trained checkpoints (timm's ``*.mx_in1k``
    tags); ``mode="torch"`` for timm's ``dpn68b.ra_in1k`` (ImageNet mean/std),
    and keras.applications' ``"caffe"``/``"tf"``. Arrays come back as new
    float arrays; tensors through ``keras.ops``.
    """
    checks.one_of(mode, "mode", PREPROCESS_MODES)
    if mode != "dpn":
        return contract.preprocess_input(x, data_format, mode=mode)
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format: expected 'channels_last' or 'channels_first', got {data_format!r}")
    shape = (3, 1, 1) if data_format == "channels_first" else (3,)
    mean = np.reshape(np.asarray(DPN_MEAN, keras.backend.floatx()), shape)
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(keras.backend.floatx())
        return ((x - mean) * DPN_SCALE).astype(x.dtype)
    x = ops.convert_to_tensor(x)
    if "float" not in keras.backend.standardize_dtype(x.dtype):
        x = ops.cast(x, keras.backend.floatx())
    return (x - ops.cast(mean, x.dtype)) * DPN_SCALE


decode_predictions = contract.decode_predictions
