"""ResNet in ResNet: the generalized residual layer's equation, the 18-layer +
wide RiR's layout and parameter counts (ours and the two implementations'
layouts), stage features and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep.layers import ZeroPadShortcut
from keras_ultradeep.models.rir import ResNetInResNet



@pytest.fixture(scope="module")
def rir18():
    return ku.create_model("resnet_in_resnet18_cifar")


# ------------------------------------------------------------------- counts


@pytest.mark.slow
def test_parameter_counts(trainable, rir18):
    # ARCHITECTURE_FACTS 2.3 layouts; the paper's own count was not found.
    assert rir18.name == "resnet_in_resnet18_cifar"
    assert trainable(rir18) == 9_469_940
    assert rir18.count_params() == 9_469_940 + 7_892  # + BatchNorm moving statistics
    # nutszebra's layout: conv biases (stride position does not change the count).
    assert trainable(ResNetInResNet(use_bias=True)) == 9_477_726
    # imgclsmob's layout: 1x1 projections, no outer shortcut (the counts it asserts).
    plain = dict(outer_shortcut=False, shortcut="projection")
    assert trainable(ResNetInResNet(**plain)) == 9_492_980
    assert trainable(ResNetInResNet(**plain, classes=100)) == 9_527_720


# ---------------------------------------------------------------- structure


def test_layout_of_the_18_layer_model(rir18):
    convs = [layer for layer in rir18.layers if isinstance(layer, keras.layers.Conv2D)]
    # 18 weight layers: the stem (two parallel convs), 16 generalized layers of
    # four convs, the 1x1 classifier conv. No projection: shortcuts zero-pad.
    assert len(convs) == 2 + 16 * 4 + 1
    assert not any(layer.use_bias for layer in convs)
    assert rir18.get_layer("conv1_r_conv").filters == rir18.get_layer("conv1_t_conv").filters == 48
    for stage, (blocks, width) in enumerate(zip((2, 3, 3), (48, 96, 192))):
        last = f"conv{stage + 2}_block{blocks}"
        assert rir18.get_layer(f"{last}_2_tt_conv").filters == width
        with pytest.raises(ValueError):
            rir18.get_layer(f"conv{stage + 2}_block{blocks + 1}_out")
    # The first layer of stages 2 and 3 strides; r's shortcuts subsample and zero-pad.
    assert rir18.get_layer("conv3_block1_1_tr_conv").strides == (2, 2)
    assert rir18.get_layer("conv3_block1_2_rr_conv").strides == (1, 1)
    assert isinstance(rir18.get_layer("conv3_block1_1_r_0_pad"), ZeroPadShortcut)
    assert isinstance(rir18.get_layer("conv3_block1_0_pad"), ZeroPadShortcut)
    # The outer RiR shortcut adds the block's input r to its output r, after the ReLU.
    add = rir18.get_layer("conv2_block1_add")
    assert add.input[0] is rir18.get_layer("conv2_block1_split").output[0]
    assert add.input[1] is rir18.get_layer("conv2_block1_2_r_relu").output
    # Head: concat(r, t) -> 1x1 conv -> BN -> global average pool -> softmax.
    assert rir18.get_layer("head_conv").input.shape[-1] == 384
    assert [layer.name for layer in rir18.layers[-4:]] == ["head_conv", "head_bn", "avg_pool", "predictions"]
    assert not any(type(layer).__name__ == "Lambda" for layer in rir18.layers)


def test_generalized_residual_layer_equation(rng):
    # r' = ReLU(BN(conv_rr(r) + conv_tr(t) + r)), t' = ReLU(BN(conv_rt(r) + conv_tt(t))).
    model = ResNetInResNet(
        blocks=(1,), residual_widths=(4,), transient_widths=(3,), include_top=False,
        input_shape=(8, 8, 3),
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    name = "conv2_block1_1"
    probe = keras.Model(
        model.input,
        [model.get_layer("conv2_block1_split").output, model.get_layer(f"{name}_r_relu").output,
         model.get_layer(f"{name}_t_relu").output],
    )
    (r, t), r_out, t_out = probe(rng.normal(0, 1, (2, 8, 8, 3)).astype("float32"), training=False)

    def conv(x, path):
        return keras.ops.conv(x, model.get_layer(f"{name}_{path}_conv").kernel, padding="same")

    def bn_relu(x, stream):
        gamma, beta, mean, var = model.get_layer(f"{name}_{stream}_bn").get_weights()
        return np.maximum((np.asarray(x) - mean) / np.sqrt(var + 1e-5) * gamma + beta, 0)

    np.testing.assert_allclose(r_out, bn_relu(conv(r, "rr") + conv(t, "tr") + r, "r"), atol=1e-5)
    np.testing.assert_allclose(t_out, bn_relu(conv(r, "rt") + conv(t, "tt"), "t"), atol=1e-5)


def test_stage_features(rir18):
    extractor = ku.feature_extractor(rir18)
    assert {key: tuple(t.shape) for key, t in extractor.output.items()} == {
        "stage1_s1": (None, 32, 32, 96),
        "stage2_s2": (None, 16, 16, 192),
        "stage3_s4": (None, 8, 8, 384),
    }
    pooled = ku.create_model("resnet_in_resnet18_cifar", include_top=False, pooling="avg")
    assert pooled.output_shape == (None, 384)


def test_family_knobs():
    model = ResNetInResNet(
        blocks=(1, 1), residual_widths=(8, 16), transient_widths=(4, 4), shortcut="projection",
        include_top=False, input_shape=(16, 16, 3),
    )
    assert model.name == "resnet_in_resnet"
    assert model.output_shape == (None, 8, 8, 20)
    assert model.get_layer("conv3_block1_0_proj_conv").kernel_size == (1, 1)


# ---------------------------------------------------------------- bad knobs


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(blocks=()), ValueError, "blocks: expected a non-empty sequence of positive block counts"),
        (dict(blocks=(2, 0, 3)), ValueError, "blocks: expected a non-empty sequence of positive block counts"),
        (dict(residual_widths=(48, 96)), ValueError, "residual_widths: expected 3 positive widths"),
        (dict(transient_widths=(48, 96, 0)), ValueError, "transient_widths: expected 3 positive"),
        (dict(residual_widths=(96, 48, 192)), ValueError, "residual_widths: a zero-padding shortcut"),
        (dict(shortcut="B"), ValueError, "shortcut: expected one of"),
        (dict(outer_shortcut=1), TypeError, "outer_shortcut: expected True or False"),
        (dict(use_bias="no"), TypeError, "use_bias: expected True or False"),
        (dict(batch_norm_epsilon=0), ValueError, "batch_norm_epsilon: expected a positive number"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    with pytest.raises(error, match=message):
        ResNetInResNet(**kwargs)
