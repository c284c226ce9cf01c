"""SymmetricMaxPooling2D: PyTorch's nn.MaxPool2d padding, serializable."""

import keras
import numpy as np
import pytest

from keras_ultradeep.layers import SymmetricMaxPooling2D


def _reference(x, pool, stride, pad):
    """nn.MaxPool2d(pool, stride, pad) in numpy, channels-last."""
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)], constant_values=-np.inf)
    out_h = (padded.shape[1] - pool) // stride + 1
    out_w = (padded.shape[2] - pool) // stride + 1
    out = np.empty((x.shape[0], out_h, out_w, x.shape[3]), x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, i * stride:i * stride + pool, j * stride:j * stride + pool, :]
            out[:, i, j, :] = window.max(axis=(1, 2))
    return out


@pytest.mark.parametrize("size, pool, stride, pad", [(8, 3, 2, 1), (7, 3, 2, 1), (6, 2, 2, 0), (5, 3, 1, 1)])
def test_matches_torch_padding(rng, size, pool, stride, pad):
    x = rng.normal(-2.0, 1.0, (2, size, size, 3)).astype("float32")  # mostly negative
    layer = SymmetricMaxPooling2D(pool, strides=stride, padding=pad)
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(got, _reference(x, pool, stride, pad))
    assert layer.compute_output_shape(x.shape) == got.shape
    # Keras' own "same" pooling differs on exactly such inputs.
    if (size, stride) == (8, 2):
        same = keras.ops.convert_to_numpy(keras.layers.MaxPooling2D(pool, stride, padding="same")(x))
        assert not np.array_equal(same, got)


def test_round_trip_and_dynamic_shape(rng, tmp_path):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, SymmetricMaxPooling2D(3, strides=2, padding=1, name="pool")(inputs))
    path = tmp_path / "pool.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    x = rng.normal(0.0, 1.0, (1, 9, 9, 2)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded(x)), _reference(x, 3, 2, 1))
    assert reloaded.get_layer("pool").get_config()["padding"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pool_size=0), "pool_size: expected a positive integer, got 0"),
        (dict(strides=1.5), "strides: expected a positive integer"),
        (dict(padding=-1), "padding: expected an integer >= 0"),
        (dict(pool_size=3, padding=2), "padding: expected at most half of pool_size=3, got 2"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SymmetricMaxPooling2D(**kwargs)
