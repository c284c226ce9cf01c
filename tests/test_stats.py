"""Multiply-accumulate counting, checked by hand and against published figures."""

import keras
import pytest

import keras_ultradeep as ku
from keras_ultradeep.layers import GroupedConv2D
from keras_ultradeep.stats import count_macs


def test_counts_match_the_formula_by_hand():
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=True)(inputs)  # 16*16 * 3*3*8*16
    x = keras.layers.BatchNormalization()(x)  # not counted
    x = GroupedConv2D(32, 3, groups=4, strides=2, padding="same")(x)  # 8*8 * 3*3*(16/4)*32
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 8*8 * 3*3*32
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)  # 32*10
    model = keras.Model(inputs, outputs)
    expected = 16 * 16 * 9 * 8 * 16 + 8 * 8 * 9 * 4 * 32 + 8 * 8 * 9 * 32 + 32 * 10
    assert count_macs(model) == expected


@pytest.mark.parametrize(
    "name, published_gmacs",
    [
        ("resnet50", 4.11),  # timm resnet50 (torchvision form): 4.11 GMACs at 224
        ("densenet121", 2.87),  # timm densenet121: 2.87 GMACs at 224
    ],
)
def test_close_to_published_figures(name, published_gmacs):
    model = ku.create_model(name, weights=None)
    assert count_macs(model) / 1e9 == pytest.approx(published_gmacs, rel=0.02)


def test_needs_a_static_input_size():
    model = ku.create_model("resnet20_cifar", include_top=False, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="model: layer .* counting needs a static input size"):
        count_macs(model)
