"""Dilated Residual Networks: the official code's parameter counts, dilation
layout, the stride-8 feature map, and knob errors."""



import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402

# ../shared/ARCHITECTURE_FACTS.md 1.4: trainable parameters computed from fyu/drn's drn.py
# (all round to its README), and Keras' count_params() with the BN statistics.
OFFICIAL = {
    "drn_a_50": (25_557_032, 25_610_152),
    "drn_c_26": (21_126_584, 21_140_568),
    "drn_c_42": (31_234_744, 31_256_152),
    "drn_d_22": (16_393_752, 16_405_528),
    "drn_d_38": (26_501_912, 26_521_112),
    "drn_d_54": (35_809_176, 35_864_344),
    "drn_d_105": (54_801_304, 54_908_696),
}
# drn.py gives DRN-C-58's non-residual level 7 a 2048->512 projection (conv + BN,
# 1,049,600 parameters) that it never uses; a functional model has no unused layers.
DRN_C_58_DEAD_PROJECTION = 1_049_600



@pytest.mark.parametrize("name", sorted(OFFICIAL) + ["drn_c_58"])
@pytest.mark.slow
def test_parameter_counts_and_output_stride(trainable, name):
    model = ku.create_model(name, weights=None, include_top=False, input_shape=(64, 64, 3))
    assert model.output_shape[1:3] == (8, 8)  # output stride 8
    top = ku.create_model(name, weights=None, input_shape=(64, 64, 3))
    if name == "drn_c_58":
        assert trainable(top) == 41_591_608 - DRN_C_58_DEAD_PROJECTION
    else:
        assert (trainable(top), top.count_params()) == OFFICIAL[name]


@pytest.mark.slow
def test_dilation_layout():
    c26 = ku.create_model("drn_c_26", weights=None, include_top=False, input_shape=(32, 32, 3))
    rates = {layer.name: layer.dilation_rate[0] for layer in c26.layers if isinstance(layer, keras.layers.Conv2D)}
    assert rates["stem_conv"] == 1 and c26.get_layer("stem_conv").kernel_size == (7, 7)
    assert rates["level4_block1_1_conv"] == 1 and c26.get_layer("level4_block1_1_conv").strides == (2, 2)
    # Dilated levels dilate every block's both convs, the first block's included.
    assert rates["level5_block1_1_conv"] == rates["level5_block2_2_conv"] == 2
    assert rates["level6_block1_1_conv"] == rates["level6_block2_2_conv"] == 4
    assert rates["level7_block1_1_conv"] == 2 and rates["level8_block1_2_conv"] == 1
    assert "level7_block1_add" not in {layer.name for layer in c26.layers}  # not residual
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in c26.layers)

    d22 = ku.create_model("drn_d_22", weights=None, include_top=False, input_shape=(32, 32, 3))
    assert [layer.name for layer in d22.layers if layer.name.startswith("level7")] == [
        "level7_block1_conv", "level7_block1_bn", "level7_block1_out",
    ]
    assert d22.get_layer("level7_block1_conv").dilation_rate == (2, 2)

    a50 = ku.create_model("drn_a_50", weights=None, include_top=False, input_shape=(32, 32, 3))
    # The code leaves the first block of each dilated stage undilated and unstrided.
    assert a50.get_layer("conv4_block1_2_conv").dilation_rate == (1, 1)
    assert a50.get_layer("conv4_block1_2_conv").strides == (1, 1)
    assert a50.get_layer("conv4_block2_2_conv").dilation_rate == (2, 2)
    assert a50.get_layer("conv5_block1_2_conv").dilation_rate == (1, 1)
    assert a50.get_layer("conv5_block3_2_conv").dilation_rate == (4, 4)


def test_feature_extractor_keeps_stride_8():
    extractor = ku.feature_extractor("drn_c_26", weights=None, input_shape=(64, 64, 3))
    shapes = {key: tuple(t.shape) for key, t in extractor.output.items()}
    assert list(shapes) == [f"stage{i}_s{s}" for i, s in zip(range(1, 9), (1, 2, 4, 8, 8, 8, 8, 8))]
    assert shapes["stage8_s8"] == (None, 8, 8, 512)


@pytest.mark.slow
def test_drn_a_takes_resnet50_weights(rng):
    """The official DRN-A-50 loads torchvision's ResNet-50 checkpoint as is."""
    from keras_ultradeep import convert
    from keras_ultradeep.convert import resnet as names

    resnet = ku.create_model("resnet50", weights=None, input_shape=(32, 32, 3))
    for variable in resnet.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    state = {}
    for layer in resnet.layers:
        for variable in layer.weights:
            torch_name = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias",
                          "moving_mean": "running_mean", "moving_variance": "running_var"}[variable.name]
            value = variable.numpy()
            if variable.name == "kernel":
                value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
            state[f"{names.torch_module(layer.name)}.{torch_name}"] = np.ascontiguousarray(value)
    drn = convert.convert_into(ku.create_model("drn_a_50", weights=None, input_shape=(32, 32, 3)), state, "drn_a")
    for a, b in zip(resnet.weights, drn.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(arch="B"), "arch: expected one of"),
        (dict(blocks=(1, 1, 2, 2)), "blocks: expected 8 positive block counts"),
        (dict(blocks=(1, 1, 2, 2, 2, 0, 1, 1)), "blocks: expected 8 positive block counts"),
        (dict(block="wide"), "block: expected 'basic' or 'bottleneck'"),
        (dict(arch="D", blocks=(2, 1, 2, 2, 2, 2, 1, 1)), "blocks: DRN-D's levels 1, 2, 7 and 8 are single convs"),
    ],
)
def test_bad_knobs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ku.DRN(**kwargs, input_shape=(32, 32, 3))
