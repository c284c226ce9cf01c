"""ResidualScaling: shortcut + scale * residual, its config, saving, XLA and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ultradeep.layers import ResidualScaling


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def pair(rng, shape=(2, 3, 3, 4)):
    return (rng.normal(0.0, 1.0, shape).astype("float32") for _ in range(2))


def test_scales_the_residual_before_the_addition(rng):
    shortcut, residual = pair(rng)
    out = to_numpy(ResidualScaling(0.17)([shortcut, residual]))
    # keras.applications' CustomScaleLayer and timm's Block35 compute the same float32 ops.
    np.testing.assert_array_equal(out, shortcut + residual * np.float32(0.17))
    np.testing.assert_array_equal(to_numpy(ResidualScaling(1.0)([shortcut, residual])), shortcut + residual)
    # Not symmetric: the shortcut is never scaled.
    assert not np.allclose(to_numpy(ResidualScaling(0.17)([residual, shortcut])), out)


def test_float64_keeps_the_scale_exact():
    ones = np.ones((1, 2), "float64")
    out = to_numpy(ResidualScaling(0.17, dtype="float64")([ones, ones]))
    assert out.dtype == np.float64 and out[0, 0] == 1.0 + 0.17


def test_symbolic_shapes_and_config():
    layer = ResidualScaling(0.1, name="block17_1_add")
    out = layer([keras.Input((None, None, 8)), keras.Input((5, None, 8))])
    assert tuple(out.shape) == (None, 5, None, 8)
    config = layer.get_config()
    assert config["scale"] == 0.1 and config["name"] == "block17_1_add"
    clone = ResidualScaling.from_config(config)
    assert clone.scale == 0.1 and not clone.weights


@pytest.mark.parametrize("scale", [0, -0.1, float("nan"), float("inf"), True, "0.2", None])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale: expected a positive number"):
        ResidualScaling(scale)


def test_bad_inputs():
    layer = ResidualScaling(0.2)
    with pytest.raises(ValueError, match="inputs: .* expects a list \\[shortcut, residual\\]"):
        layer(keras.Input((4, 4, 2)))
    with pytest.raises(ValueError, match="inputs: .* of the same shape"):
        ResidualScaling(0.2)([keras.Input((4, 4, 2)), keras.Input((4, 4, 3))])


def test_xla_and_graph(rng):
    shortcut, residual = pair(rng)
    layer = ResidualScaling(0.2)
    expected = shortcut + residual * np.float32(0.2)
    for jit_compile in (True, False):
        step = tf.function(lambda s, r: layer([s, r]), jit_compile=jit_compile)
        np.testing.assert_allclose(to_numpy(step(shortcut, residual)), expected, rtol=1e-6, atol=1e-6)
    dynamic = tf.function(
        lambda s, r: layer([s, r]),
        input_signature=[tf.TensorSpec((None, None, None, 4))] * 2,
        jit_compile=True,
    )
    np.testing.assert_allclose(to_numpy(dynamic(shortcut, residual)), expected, rtol=1e-6, atol=1e-6)


def test_mixed_precision(rng):
    shortcut, residual = pair(rng)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = ResidualScaling(0.17)
        eager = layer([shortcut, residual])
        compiled = tf.function(lambda s, r: layer([s, r]), jit_compile=True)(shortcut, residual)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert eager.dtype == compiled.dtype == tf.float16
    expected = shortcut + 0.17 * residual
    for out in (eager, compiled):
        np.testing.assert_allclose(to_numpy(out).astype("float32"), expected, atol=1e-2)


def tiny_model():
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="branch")(inputs)
    x = keras.layers.Conv2D(4, 1, name="up")(x)
    x = ResidualScaling(0.17, name="block35_1_add")([inputs, x])
    return keras.Model(inputs, keras.layers.Activation("relu", name="block35_1_ac")(x))


def test_tf_saved_model_export(rng, tmp_path):
    model = tiny_model()
    x = rng.normal(0.0, 1.0, (2, 6, 6, 4)).astype("float32")
    expected = to_numpy(model(x))
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))  # kept: serve needs its variables alive
    np.testing.assert_allclose(reloaded.serve(x).numpy(), expected, rtol=1e-6, atol=1e-6)
