"""LocalResponseNormalization: the AlexNet formula, Caffe/PyTorch/TensorFlow equivalents, saving, XLA, float16."""



import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_ultradeep.layers import LocalResponseNormalization  # noqa: E402


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def reference(x, size, alpha, beta, k):
    """The paper's formula, one channel at a time, with the window cut at the edges."""
    x = np.asarray(x, dtype="float64")
    channels = x.shape[-1]
    out = np.empty_like(x)
    for i in range(channels):
        lo, hi = max(0, i - size // 2), min(channels - 1, i + size // 2)
        total = np.sum(x[..., lo : hi + 1] ** 2, axis=-1)
        out[..., i] = x[..., i] / (k + alpha * total) ** beta
    return out


@pytest.fixture
def activations(rng):
    # Large activations so the normalization is far from the identity.
    return rng.normal(0.0, 30.0, (2, 3, 4, 7)).astype("float32")


@pytest.mark.parametrize(
    "size, alpha, beta, k",
    [(5, 1e-4, 0.75, 2.0), (3, 1e-3, 0.5, 1.0), (1, 2e-3, 0.75, 2.0), (9, 1e-3, 0.75, 1.5), (15, 1e-3, 1.0, 1.0)],
)
def test_matches_the_paper_formula(activations, size, alpha, beta, k):
    out = to_numpy(LocalResponseNormalization(size, alpha, beta, k)(activations))
    np.testing.assert_allclose(out, reference(activations, size, alpha, beta, k), rtol=2e-6, atol=1e-6)


def test_channel_edges_see_a_cut_window():
    # One active channel: with n = 5 only channels within 2 of it are damped.
    x = np.zeros((1, 1, 1, 6), "float32")
    x[..., 0] = 100.0
    x[..., 1:] = 1.0
    out = to_numpy(LocalResponseNormalization(5, 1e-2, 1.0, 2.0)(x))[0, 0, 0]
    sums = [100.0**2 + 2, 100.0**2 + 3, 100.0**2 + 4, 5.0, 4.0, 3.0]  # first three reach channel 0
    np.testing.assert_allclose(out, x[0, 0, 0] / (2.0 + 1e-2 * np.array(sums)), rtol=1e-6)


def test_defaults_are_alexnets():
    layer = LocalResponseNormalization()
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 2.0)


def test_tensorflow_lrn_uses_the_same_alpha(activations):
    expected = tf.nn.local_response_normalization(activations, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    out = LocalResponseNormalization(5, 1e-4, 0.75, 2.0)(activations)
    np.testing.assert_allclose(to_numpy(out), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_from_caffe_divides_alpha_by_the_window():
    layer = LocalResponseNormalization.from_caffe(5, 1e-4, 0.75, name="norm1")
    assert (layer.size, layer.beta, layer.k, layer.name) == (5, 0.75, 1.0, "norm1")
    assert layer.alpha == pytest.approx(2e-5)


@pytest.mark.torch
@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (3, 1e-3, 0.6, 1.0)])
def test_matches_torch_local_response_norm(activations, size, alpha, beta, k):
    import torch

    # PyTorch divides its alpha by the size: the paper's alpha is torch's alpha / size.
    torch_layer = torch.nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)
    expected = torch_layer(torch.from_numpy(activations).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    for layer in (
        LocalResponseNormalization(size, alpha, beta, k),
        LocalResponseNormalization.from_caffe(size, alpha * size, beta, k),
    ):
        np.testing.assert_allclose(to_numpy(layer(activations)), expected, rtol=1e-5, atol=1e-6)


def test_save_and_safe_load(tmp_path, activations):
    inputs = keras.Input(activations.shape[1:])
    outputs = LocalResponseNormalization(3, 1e-3, 0.5, 1.5, name="norm")(keras.layers.Dense(7)(inputs))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "lrn.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    layer = loaded.get_layer("norm")
    assert isinstance(layer, LocalResponseNormalization)
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (3, 1e-3, 0.5, 1.5)
    np.testing.assert_array_equal(to_numpy(loaded(activations)), to_numpy(model(activations)))
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "exported"))  # kept: serve needs its variables alive
    np.testing.assert_allclose(served.serve(activations).numpy(), to_numpy(model(activations)), rtol=1e-6, atol=1e-6)


def test_jit_compile(activations):
    layer = LocalResponseNormalization()
    step = tf.function(layer, jit_compile=True)
    np.testing.assert_allclose(
        to_numpy(step(activations)), reference(activations, 5, 1e-4, 0.75, 2.0), rtol=2e-6, atol=1e-6
    )
    # Unknown batch and spatial sizes in a graph.
    graph = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 7))], jit_compile=True)
    assert graph(activations).shape == activations.shape


def test_mixed_float16_computes_in_float32(rng):
    # Squares of these float16 values overflow float16 (> 65504); the sum must not.
    x = rng.normal(0.0, 1.0, (2, 2, 2, 8)).astype("float32") * 500.0
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = LocalResponseNormalization(5, 1e-4, 0.75, 2.0)
        out = layer(x)
        compiled = tf.function(layer, jit_compile=True)(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == compiled.dtype == tf.float16
    expected = reference(x.astype("float16").astype("float32"), 5, 1e-4, 0.75, 2.0)
    for result in (out, compiled):
        result = to_numpy(result).astype("float32")
        assert np.all(np.isfinite(result))
        np.testing.assert_allclose(result, expected, rtol=2e-3, atol=1e-2)


def test_output_shape_and_other_ranks(rng):
    layer = LocalResponseNormalization(3)
    assert layer.compute_output_shape((None, 5, 5, 16)) == (None, 5, 5, 16)
    x = rng.normal(0.0, 10.0, (4, 6)).astype("float32")  # (batch, channels)
    np.testing.assert_allclose(to_numpy(layer(x)), reference(x, 3, 1e-4, 0.75, 2.0), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 4}, "size: expected a positive odd integer"),
        ({"size": 0}, "size: expected a positive odd integer"),
        ({"size": -3}, "size: expected a positive odd integer"),
        ({"size": 5.0}, "size: expected a positive odd integer"),
        ({"size": True}, "size: expected a positive odd integer"),
        ({"alpha": -1e-4}, "alpha: expected a non-negative number"),
        ({"alpha": "1e-4"}, "alpha: expected a non-negative number"),
        ({"alpha": float("nan")}, "alpha: expected a non-negative number"),
        ({"beta": -0.75}, "beta: expected a non-negative number"),
        ({"beta": None}, "beta: expected a non-negative number"),
        ({"k": 0.0}, "k: expected a positive number"),
        ({"k": -2.0}, "k: expected a positive number"),
        ({"k": float("inf")}, "k: expected a positive number"),
    ],
)
def test_bad_arguments(kwargs, message):
    # checks' rule: a wrong type is as much a ValueError as a wrong value.
    with pytest.raises(ValueError, match=f"^{message}"):
        LocalResponseNormalization(**kwargs)


def test_bad_caffe_arguments_and_inputs():
    with pytest.raises(ValueError, match="^local_size:"):
        LocalResponseNormalization.from_caffe(local_size=4)
    with pytest.raises(ValueError, match="^inputs:"):
        LocalResponseNormalization()(keras.Input((None, None, None)))
