"""StochasticDepth, survival_probabilities and ZeroPadShortcut."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ultradeep.layers.residual import StochasticDepth, ZeroPadShortcut, survival_probabilities


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def pair(rng, batch=4, shape=(3, 3, 2)):
    shortcut = rng.normal(0.0, 1.0, (batch, *shape)).astype("float32")
    residual = rng.normal(0.0, 1.0, (batch, *shape)).astype("float32")
    return shortcut, residual


def kept_per_sample(shortcut, residual, out, gain, atol=1e-5):
    """Which samples kept their branch (scaled by ``gain``); fails on any other output."""
    axes = tuple(range(1, out.ndim))
    kept = np.all(np.isclose(out, shortcut + gain * residual, atol=atol), axis=axes)
    dropped = np.all(out == shortcut, axis=axes)
    assert np.all(kept ^ dropped), "each sample is either shortcut or shortcut + gain * residual"
    return kept


# -------------------------------------------------------------- StochasticDepth


def test_inference_scales_the_branch_by_p(rng):
    shortcut, residual = pair(rng)
    out = to_numpy(StochasticDepth(0.7)([shortcut, residual], training=False))
    np.testing.assert_allclose(out, shortcut + np.float32(0.7) * residual, rtol=1e-6, atol=1e-6)
    # Without a training flag a layer is at inference.
    np.testing.assert_array_equal(to_numpy(StochasticDepth(0.7)([shortcut, residual])), out)


def test_inverted_inference_is_a_plain_addition(rng):
    shortcut, residual = pair(rng)
    out = to_numpy(StochasticDepth(0.7, scale="training")([shortcut, residual], training=False))
    np.testing.assert_array_equal(out, shortcut + residual)


@pytest.mark.parametrize("mode", ["sample", "batch"])
@pytest.mark.parametrize("scale", ["inference", "training"])
def test_survival_prob_one_is_an_exact_addition(rng, mode, scale):
    shortcut, residual = pair(rng)
    layer = StochasticDepth(1.0, mode=mode, scale=scale)
    for training in (True, False):
        out = to_numpy(layer([shortcut, residual], training=training))
        np.testing.assert_array_equal(out, shortcut + residual)


@pytest.mark.parametrize("scale, gain", [("inference", 1.0), ("training", 1 / 0.6)])
def test_training_drops_each_sample_with_probability_1_minus_p(rng, scale, gain):
    shortcut, residual = pair(rng, batch=2000, shape=(2, 2, 3))
    layer = StochasticDepth(0.6, scale=scale, seed=1)
    kept = kept_per_sample(shortcut, residual, to_numpy(layer([shortcut, residual], training=True)), gain)
    assert abs(kept.mean() - 0.6) < 0.05
    # A fresh draw on every call.
    again = kept_per_sample(shortcut, residual, to_numpy(layer([shortcut, residual], training=True)), gain)
    assert np.any(kept != again)


def test_batch_mode_draws_once_for_the_batch(rng):
    shortcut, residual = pair(rng, batch=64, shape=(2, 2, 3))
    layer = StochasticDepth(0.5, mode="batch", seed=3)
    outcomes = set()
    for _ in range(20):
        kept = kept_per_sample(shortcut, residual, to_numpy(layer([shortcut, residual], training=True)), 1.0)
        assert kept.all() or not kept.any()
        outcomes.add(bool(kept[0]))
    assert outcomes == {True, False}


def test_inference_is_deterministic(rng):
    shortcut, residual = pair(rng)
    layer = StochasticDepth(0.5)
    first = to_numpy(layer([shortcut, residual], training=False))
    for _ in range(3):
        np.testing.assert_array_equal(to_numpy(layer([shortcut, residual], training=False)), first)


def test_seeded_layers_repeat_their_draws(rng):
    shortcut, residual = pair(rng, batch=256, shape=(2,))
    a, b = StochasticDepth(0.5, seed=7), StochasticDepth(0.5, seed=7)
    np.testing.assert_array_equal(
        to_numpy(a([shortcut, residual], training=True)), to_numpy(b([shortcut, residual], training=True))
    )


def test_training_under_xla_and_in_graph(rng):
    shortcut, residual = pair(rng, batch=500, shape=(2, 2, 1))
    layer = StochasticDepth(0.5, scale="training", seed=5)
    for jit_compile in (True, False):
        step = tf.function(lambda s, r: layer([s, r], training=True), jit_compile=jit_compile)
        first = kept_per_sample(shortcut, residual, to_numpy(step(shortcut, residual)), 2.0)
        second = kept_per_sample(shortcut, residual, to_numpy(step(shortcut, residual)), 2.0)
        assert 0.4 < first.mean() < 0.6
        assert np.any(first != second)  # the seed state advances inside the compiled function


def test_mixed_precision(rng):
    shortcut, residual = pair(rng, batch=200, shape=(2, 2, 2))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = StochasticDepth(0.5, scale="training", seed=2)
        trained = layer([shortcut, residual], training=True)
        inferred = layer([shortcut, residual], training=False)
        step = tf.function(lambda s, r: layer([s, r], training=True), jit_compile=True)
        compiled = step(shortcut, residual)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert trained.dtype == inferred.dtype == compiled.dtype == tf.float16
    # Compared with the float16-rounded inputs the layer saw.
    shortcut, residual = (x.astype("float16").astype("float32") for x in (shortcut, residual))
    for out in (trained, compiled):
        kept = kept_per_sample(shortcut, residual, to_numpy(out).astype("float32"), 2.0, atol=1e-2)
        assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(to_numpy(inferred).astype("float32"), shortcut + residual, atol=1e-2)


def test_symbolic_shapes_and_config():
    layer = StochasticDepth(0.8, mode="batch", scale="training", seed=11, name="gate")
    out = layer([keras.Input((None, None, 8)), keras.Input((5, None, 8))])
    assert tuple(out.shape) == (None, 5, None, 8)
    config = layer.get_config()
    assert {k: config[k] for k in ("survival_prob", "mode", "scale", "seed")} == dict(
        survival_prob=0.8, mode="batch", scale="training", seed=11
    )
    clone = StochasticDepth.from_config(config)
    assert (clone.survival_prob, clone.mode, clone.scale, clone.seed) == (0.8, "batch", "training", 11)
    assert clone.name == "gate"
    assert layer.trainable_weights == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(survival_prob=0), r"^survival_prob: expected a number in \(0, 1\], got 0$"),
        (dict(survival_prob=1.5), r"^survival_prob: expected a number in \(0, 1\], got 1.5$"),
        (dict(survival_prob=True), r"^survival_prob: expected a number in \(0, 1\], got True$"),
        (dict(survival_prob="0.5"), r"^survival_prob: expected a number in \(0, 1\]"),
        (dict(mode="x"), r"^mode: expected one of 'sample', 'batch', got 'x'$"),
        (dict(scale="test"), r"^scale: expected one of 'inference', 'training', got 'test'$"),
        (dict(seed=1.5), r"^seed: expected None or an integer, got 1.5$"),
    ],
)
def test_stochastic_depth_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StochasticDepth(**kwargs)


@pytest.mark.parametrize(
    "inputs",
    [
        lambda x: x,
        lambda x: [x],
        lambda x: [x, x, x],
        lambda x: [x, x[:, :2]],
        lambda x: [x, x[..., 0]],
    ],
    ids=["tensor", "one", "three", "shapes", "ranks"],
)
def test_stochastic_depth_bad_inputs(rng, inputs):
    x = rng.normal(0.0, 1.0, (2, 3, 3, 2)).astype("float32")
    with pytest.raises(ValueError, match=r"^inputs: "):
        StochasticDepth(0.5)(inputs(x), training=True)
    with pytest.raises(ValueError, match=r"^inputs: "):
        StochasticDepth(0.5)(inputs(keras.Input((3, 3, 2))))


# -------------------------------------------------------- survival_probabilities


def test_survival_probabilities():
    probs = survival_probabilities(54, 0.5)
    assert len(probs) == 54 and all(isinstance(p, float) for p in probs)
    assert probs[0] == pytest.approx(1 - 0.5 / 54) and probs[-1] == 0.5
    np.testing.assert_allclose(probs, [1 - (l / 54) * 0.5 for l in range(1, 55)])  # noqa: E741
    assert np.all(np.diff(probs) < 0)
    assert survival_probabilities(3, 0.8)[-1] == 0.8
    assert survival_probabilities(1, 0.3) == [0.3]
    assert survival_probabilities(4, 1.0) == [1.0] * 4
    assert survival_probabilities(5, 0.8, rule="uniform") == [0.8] * 5
    assert survival_probabilities(2) == [0.75, 0.5]


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((0,), {}, r"^num_blocks: expected a positive integer, got 0$"),
        ((2.0,), {}, r"^num_blocks: expected a positive integer, got 2.0$"),
        ((True,), {}, r"^num_blocks: expected a positive integer, got True$"),
        ((4, 0.0), {}, r"^final_survival_prob: expected a number in \(0, 1\], got 0.0$"),
        ((4, 1.01), {}, r"^final_survival_prob: expected a number in \(0, 1\], got 1.01$"),
        ((4,), dict(rule="cosine"), r"^rule: expected 'linear' or 'uniform', got 'cosine'$"),
    ],
)
def test_survival_probabilities_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        survival_probabilities(*args, **kwargs)


# --------------------------------------------------------------- ZeroPadShortcut


def zero_pad_reference(x, filters, strides):
    sub = x[:, ::strides, ::strides, :]
    zeros = np.zeros((*sub.shape[:3], filters - x.shape[-1]), x.dtype)
    return np.concatenate([sub, zeros], axis=-1)


@pytest.mark.parametrize(
    "size, channels, filters, strides, out_size",
    [(8, 16, 32, 2, 4), (9, 16, 32, 2, 5), (7, 4, 4, 1, 7), (7, 4, 10, 1, 7), (10, 3, 6, 3, 4)],
)
def test_zero_pad_shortcut_values(rng, size, channels, filters, strides, out_size):
    x = rng.normal(0.0, 1.0, (2, size, size, channels)).astype("float32")
    layer = ZeroPadShortcut(filters, strides)
    out = to_numpy(layer(x))
    assert out.shape == (2, out_size, out_size, filters)
    np.testing.assert_array_equal(out, zero_pad_reference(x, filters, strides))
    assert layer.weights == []
    # The size of a 1x1 convolution of the same stride, either padding.
    for padding in ("valid", "same"):
        conv = keras.layers.Conv2D(1, 1, strides=strides, padding=padding)
        assert conv.compute_output_shape(x.shape)[1:3] == out.shape[1:3]


def test_zero_pad_shortcut_dynamic_spatial_size(rng):
    layer = ZeroPadShortcut(32)
    symbolic = layer(keras.Input((None, None, 16)))
    assert tuple(symbolic.shape) == (None, None, None, 32)
    assert layer.compute_output_shape((None, 9, None, 16)) == (None, 5, None, 32)
    step = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 16))])
    for size in (9, 6):
        x = rng.normal(0.0, 1.0, (1, size, size + 1, 16)).astype("float32")
        np.testing.assert_array_equal(to_numpy(step(x)), zero_pad_reference(x, 32, 2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(filters=0), r"^filters: expected a positive integer, got 0$"),
        (dict(filters=16.0), r"^filters: expected a positive integer, got 16.0$"),
        (dict(filters=16, strides=0), r"^strides: expected a positive integer, got 0$"),
        (dict(filters=16, strides=(2, 2)), r"^strides: expected a positive integer, got \(2, 2\)$"),
    ],
)
def test_zero_pad_shortcut_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ZeroPadShortcut(**kwargs)


def test_zero_pad_shortcut_needs_filters_at_least_the_input_channels(rng):
    message = r"^filters: expected at least the input's 32 channels, got 16$"
    with pytest.raises(ValueError, match=message):
        ZeroPadShortcut(16)(keras.Input((8, 8, 32)))
    with pytest.raises(ValueError, match=message):
        ZeroPadShortcut(16)(rng.normal(0.0, 1.0, (1, 8, 8, 32)).astype("float32"))
    with pytest.raises(ValueError, match=r"^inputs: "):
        ZeroPadShortcut(16)(keras.Input((8, 8)))


# ------------------------------------------------------------- saving and export


def tiny_model():
    inputs = keras.Input((9, 9, 4))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(inputs)
    shortcut = ZeroPadShortcut(8, strides=2, name="shortcut")(inputs)
    x = StochasticDepth(0.6, seed=4, name="gate")([shortcut, x])
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(x)
    x = StochasticDepth(0.8, mode="batch", scale="training", name="gate2")([x, y])
    return keras.Model(inputs, x)


def test_save_and_load_round_trip(rng, tmp_path):
    model = tiny_model()
    x = rng.normal(0.0, 1.0, (3, 9, 9, 4)).astype("float32")
    expected = to_numpy(model(x, training=False))
    path = tmp_path / "tiny.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_numpy(reloaded(x, training=False)), expected)
    gate = reloaded.get_layer("gate2")
    assert isinstance(gate, StochasticDepth)
    assert (gate.survival_prob, gate.mode, gate.scale) == (0.8, "batch", "training")
    assert isinstance(reloaded.get_layer("shortcut"), ZeroPadShortcut)


def test_tf_saved_model_export(rng, tmp_path):
    model = tiny_model()
    x = rng.normal(0.0, 1.0, (2, 9, 9, 4)).astype("float32")
    expected = to_numpy(model(x, training=False))
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))  # kept: serve needs its variables alive
    served = reloaded.serve(x)
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-6, atol=1e-6)
