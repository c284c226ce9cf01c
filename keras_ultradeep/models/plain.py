"""Plain CIFAR networks: the ResNet paper's baselines without shortcuts.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition" (CVPR
2016), section 4.2, Fig. 6 and Table 6: the CIFAR ResNets' 6n + 2 layers
(a 3x3 stem with 16 filters, three stages of 2n 3x3 convs with 16, 32 and
64 filters, the first conv of stages 2 and 3 striding by 2, global average
pooling, a 10-way classifier) with every shortcut taken out. These are the
networks of the degradation problem: the deeper plain nets reach *higher*
training error (plain-56 worse than plain-20), while the ResNets of the same
depths improve with depth. Veit et al. 2016 lesion them to show that
removing one layer of a plain network breaks its only path.

Layers are named as the ResNet's, block for block (``conv2_block1_1_conv``,
...), so the two nets of one depth compare layer to layer.
"""

from __future__ import annotations

from keras import layers

from keras_ultradeep import contract, registry
from keras_ultradeep.models.blocks import cifar_blocks_per_stage, conv_bn
from keras_ultradeep.models.resnet import CIFAR_BN_EPSILON, CIFAR_DEFAULT_SIZE, CIFAR_MIN_SIZE, CIFAR_WIDTHS

__all__ = ["PlainCIFAR"]

DEPTHS = (20, 32, 44, 56, 110)


def plain_block(x, filters, stride, name, *, bn_epsilon):
    """The ResNet CIFAR basic block without its shortcut: two conv-BN-ReLU."""
    for index, step in ((1, stride), (2, 1)):
        x = conv_bn(x, filters, 3, f"{name}_{index}", strides=step, use_bias=False, bn_epsilon=bn_epsilon)
        x = layers.Activation("relu", name=f"{name}_{index}_relu")(x)
    return x


def PlainCIFAR(
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
    batch_norm_epsilon=CIFAR_BN_EPSILON,
):
    """A plain 6n + 2-layer CIFAR network (the paper's plain-20 ... plain-110).

    Args (beyond keras.applications'):
        depth: 6n + 2 weighted layers (20, 32, 44, 56, 110).
        batch_norm_epsilon: BatchNorm's epsilon (the Torch code's 1e-5).
    """
    per_stage = cifar_blocks_per_stage(depth, 6, "6n + 2 (e.g. 20, 32, 44, 56, 110)")
    name = name or f"plain{depth}_cifar"

    def features(x):
        x = conv_bn(x, CIFAR_WIDTHS[0], 3, "conv1", use_bias=False, bn_epsilon=batch_norm_epsilon)
        x = layers.Activation("relu", name="conv1_relu")(x)
        for stage, filters in enumerate(CIFAR_WIDTHS):
            for i in range(per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                x = plain_block(x, filters, stride, f"conv{stage + 2}_block{i + 1}", bn_epsilon=batch_norm_epsilon)
        return x

    return contract.application(
        features,
        model_name="plain_cifar",
        default_size=CIFAR_DEFAULT_SIZE,
        min_size=CIFAR_MIN_SIZE,
        **contract.keras_arguments(locals()),
    )


registry.register_variants(
    {f"plain{depth}_cifar": (PlainCIFAR, dict(depth=depth)) for depth in DEPTHS},
    family="plain_cifar",
    default_size=CIFAR_DEFAULT_SIZE,
    min_size=CIFAR_MIN_SIZE,
)
