"""Highway networks: the transform gate at its extremes and in between, the
official 19-layer CIFAR net's parameter count, serialization, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ultradeep as ku
from keras_ultradeep.layers import HighwayConv2D


def _conv_same(x, kernel, bias):
    return keras.ops.convert_to_numpy(keras.ops.conv(x, kernel, padding="same")) + bias


def _layer(rng, channels, gate_bias):
    layer = HighwayConv2D(3, gate_bias=gate_bias)
    layer.build((None, 6, 6, channels))
    for variable in (layer.transform_kernel, layer.gate_kernel, layer.transform_bias):
        variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))
    return layer


def test_gate_extremes_and_formula(rng):
    x = rng.normal(0, 1, (2, 6, 6, 4)).astype("float32")
    carry = _layer(rng, 4, gate_bias=-60.0)  # T = 0: the input passes unchanged
    np.testing.assert_allclose(keras.ops.convert_to_numpy(carry(x)), x, atol=1e-6)
    transform = _layer(rng, 4, gate_bias=60.0)  # T = 1: only H
    h = np.maximum(_conv_same(x, transform.transform_kernel.numpy(), transform.transform_bias.numpy()), 0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(transform(x)), h, atol=1e-5)

    mixed = _layer(rng, 4, gate_bias=-2.0)
    assert np.all(mixed.gate_bias_weight.numpy() == -2.0)  # a fresh layer mostly carries
    h = np.maximum(_conv_same(x, mixed.transform_kernel.numpy(), mixed.transform_bias.numpy()), 0)
    t = 1 / (1 + np.exp(-_conv_same(x, mixed.gate_kernel.numpy(), mixed.gate_bias_weight.numpy())))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mixed(x)), h * t + x * (1 - t), atol=1e-5)
    compiled = tf.function(mixed.__call__, jit_compile=True)
    np.testing.assert_allclose(compiled(x).numpy(), h * t + x * (1 - t), atol=1e-5)


def test_official_19_layer_network(rng, tmp_path):
    model = ku.create_model("highway19_cifar")
    assert model.count_params() == 2_256_838  # ARCHITECTURE_FACTS 3.2; no BatchNorm
    assert ku.create_model("highway19_cifar", classes=100).count_params() == 2_265_928
    highway = [layer for layer in model.layers if isinstance(layer, HighwayConv2D)]
    assert [layer.name for layer in highway][:2] == ["conv2_block1_out", "conv2_block2_out"]
    assert len(highway) == 14
    drops = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert drops == ["input_drop", "conv2_drop", "conv3_drop", "head_drop"]

    x = rng.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    path = tmp_path / "highway.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x, training=False)), expected, atol=1e-6)


def test_mixed_precision(rng):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        y = HighwayConv2D(3)(rng.normal(0, 1, (1, 4, 4, 2)).astype("float32"))
        assert y.dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: HighwayConv2D(0), "kernel_size: expected a positive integer"),
        (lambda: HighwayConv2D(3, gate_bias="low"), "gate_bias: expected a finite number"),
        (lambda: ku.create_model("highway19_cifar", stages=((32, 4), (80,))), "stages: expected"),
        (lambda: ku.create_model("highway19_cifar", head_filters=0), "head_filters: expected a positive"),
        (lambda: ku.create_model("highway19_cifar", dropout_rate=1.0), r"dropout_rate: expected a number in \[0, 1\)"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()
