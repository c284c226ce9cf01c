"""LeNet-5: the paper's counts and Table I, its layers (connection table,
trainable subsampling, Euclidean RBF, squashing) against NumPy, saving, XLA,
float16, features and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ultradeep as ku
from keras_ultradeep.features import feature_extractor
from keras_ultradeep.layers import (
    LENET5_C3_TABLE,
    ConnectionTableConv2D,
    EuclideanRBF,
    Subsampling2D,
    lecun_tanh,
)
from keras_ultradeep.models.lenet import LeNet5


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)



@pytest.fixture(scope="module")
def model():
    return LeNet5()


# ------------------------------------------------------------------- the paper


def test_paper_parameter_counts(trainable, model):
    assert model.input_shape == (None, 32, 32, 1)
    assert model.output_shape == (None, 10)
    counts = {layer.name: layer.count_params() for layer in model.layers if layer.weights}
    assert counts == {
        "conv1_conv": 156,
        "conv1_subsample": 12,
        "conv2_conv": 1_516,
        "conv2_subsample": 32,
        "conv3_conv": 48_120,
        "f6": 10_164,
        "predictions": 840,  # the fixed RBF codes
    }
    assert trainable(model) == 60_000
    assert model.count_params() == 60_840
    assert not model.get_layer("predictions").trainable_weights


def test_counts_of_the_other_forms(trainable):
    rgb = LeNet5(input_shape=(32, 32, 3))
    assert (trainable(rgb), rgb.count_params()) == (60_300, 61_140)
    dense = LeNet5(output="dense")
    assert (trainable(dense), dense.count_params()) == (60_850, 60_850)
    full = LeNet5(connection_table=None)
    assert full.get_layer("conv2_conv").count_params() == 2_416


def test_table_one():
    inputs = {j: {i for i in range(6) if LENET5_C3_TABLE[i][j]} for j in range(16)}
    assert [inputs[j] for j in range(6)] == [{0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {4, 5, 0}, {5, 0, 1}]
    assert [inputs[j] for j in range(6, 12)] == [
        {0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5}, {3, 4, 5, 0}, {4, 5, 0, 1}, {5, 0, 1, 2}
    ]
    assert [inputs[j] for j in range(12, 16)] == [{0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}, set(range(6))]


def test_squashing_function():
    values = to_numpy(lecun_tanh(np.array([-1.0, 0.0, 1.0], "float32")))
    np.testing.assert_allclose(values, [-1.0, 0.0, 1.0], atol=1e-4)  # f(+-1) = +-1
    assert float(to_numpy(lecun_tanh(np.float32(100.0)))) == pytest.approx(1.7159, rel=1e-6)


def test_feature_stages():
    extractor = feature_extractor("lenet5", input_shape=(32, 32, 1))
    shapes = [tuple(t.shape[1:]) for t in extractor.output.values()]
    assert shapes == [(14, 14, 6), (5, 5, 16), (1, 1, 120)]


def test_trains(rng):
    model = LeNet5(connection_table=LENET5_C3_TABLE)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    x = rng.normal(0.0, 1.0, (16, 32, 32, 1)).astype("float32")
    y = rng.integers(0, 10, 16)
    before = {w.path: to_numpy(w).copy() for w in model.weights}
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for w in model.weights:
        changed = not np.array_equal(to_numpy(w), before[w.path])
        assert changed == w.trainable, w.path  # every trainable weight learns; the RBF codes stay


# -------------------------------------------------------------------- layers


def _connection_reference(x, layer):
    """A full 'valid' conv with the unconnected kernel slices zeroed, via NumPy."""
    kernel = np.zeros((5, 5, 6, 16), "float32")
    flat = to_numpy(layer.kernel)
    slot = 0
    for j in range(16):
        for i in range(6):
            if LENET5_C3_TABLE[i][j]:
                kernel[:, :, i, j] = flat[:, :, slot]
                slot += 1
    full = tf.nn.conv2d(x, kernel, 1, "VALID").numpy()
    return full + to_numpy(layer.bias)


def test_connection_table_conv(rng):
    layer = ConnectionTableConv2D(LENET5_C3_TABLE, 5, bias_initializer="random_normal")
    x = rng.normal(0.0, 1.0, (2, 9, 11, 6)).astype("float32")
    y = to_numpy(layer(x))
    assert layer.kernel.shape == (5, 5, 60) and layer.bias.shape == (16,)
    np.testing.assert_allclose(y, _connection_reference(x, layer), rtol=1e-5, atol=1e-5)
    # Changing input map 5 moves only the 10 output maps that see it.
    changed = x.copy()
    changed[..., 5] += 1.0
    moved = np.abs(to_numpy(layer(changed)) - y).max(axis=(0, 1, 2)) > 0
    assert moved.tolist() == [bool(v) for v in LENET5_C3_TABLE[5]]
    # The paper's initialization: uniform in +-2.4 / F_i.
    bound = 2.4 / (25 * np.repeat([3] * 6 + [4] * 9 + [6], [3] * 6 + [4] * 9 + [6]))
    assert np.all(np.abs(to_numpy(layer.kernel)) <= bound)


def test_subsampling(rng):
    layer = Subsampling2D(2, coefficient_initializer="random_normal", bias_initializer="random_normal")
    x = rng.normal(0.0, 1.0, (2, 5, 6, 3)).astype("float32")
    y = to_numpy(layer(x))
    sums = x[:, :4, :6].reshape(2, 2, 2, 3, 2, 3).sum(axis=(2, 4))
    np.testing.assert_allclose(y, sums * to_numpy(layer.coefficient) + to_numpy(layer.bias), rtol=1e-5, atol=1e-5)
    assert layer.count_params() == 6


def test_subsampling_starts_as_an_average(rng):
    x = rng.normal(0.0, 1.0, (1, 4, 4, 2)).astype("float32")
    expected = x.reshape(1, 2, 2, 2, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(to_numpy(Subsampling2D()(x)), expected, rtol=1e-5, atol=1e-6)


def test_euclidean_rbf(rng):
    layer = EuclideanRBF(7, seed=3)
    x = rng.normal(0.0, 1.0, (4, 84)).astype("float32")
    y = to_numpy(layer(x))
    codes = to_numpy(layer.prototypes)
    assert codes.shape == (84, 7) and set(np.unique(codes)) == {-1.0, 1.0}
    distances = ((x[:, :, None] - codes[None]) ** 2).sum(axis=1)
    np.testing.assert_allclose(y, -distances, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(to_numpy(EuclideanRBF(7, seed=3)(x)), y)  # seeded codes
    probabilities = to_numpy(EuclideanRBF(7, activation="softmax", seed=3)(x))
    np.testing.assert_allclose(probabilities, to_numpy(keras.activations.softmax(y)), rtol=1e-5, atol=1e-7)


def test_layers_save_load_jit_and_float16(rng, tmp_path):
    def build():
        inputs = keras.Input((14, 14, 6))
        x = ConnectionTableConv2D(name="c3")(inputs)
        x = Subsampling2D(name="s4")(x)
        x = keras.layers.Activation(lecun_tanh)(x)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, EuclideanRBF(10, name="rbf")(x))  # logits: -distances

    x = rng.normal(0.0, 1.0, (2, 14, 14, 6)).astype("float32")
    model = build()
    expected = to_numpy(model(x))
    model.save(tmp_path / "layers.keras")
    loaded = keras.models.load_model(tmp_path / "layers.keras", safe_mode=True)
    np.testing.assert_array_equal(to_numpy(loaded(x)), expected)
    assert loaded.get_layer("c3").connection_table == [list(row) for row in LENET5_C3_TABLE]
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "exported"))  # kept: serve needs its variables alive
    np.testing.assert_allclose(served.serve(x).numpy(), expected, rtol=1e-6, atol=1e-4)
    compiled = tf.function(model, jit_compile=True)
    np.testing.assert_allclose(to_numpy(compiled(x)), expected, rtol=1e-5, atol=1e-4)

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half.set_weights(model.get_weights())
    inner = keras.Model(half.input, half.get_layer("s4").output)
    assert inner(x).dtype == tf.float16
    scale = np.abs(expected).max()
    for out in (half(x), tf.function(half, jit_compile=True)(x)):
        assert out.dtype == tf.float16
        assert np.abs(to_numpy(out).astype("float32") - expected).max() <= 1e-2 * scale


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(output="softmax"), ValueError, "^output:"),
        (dict(connection_table=[[1, 0], [0, 1]]), ValueError, "^connection_table:"),
        (dict(connection_table=[[1, 2]] * 6), ValueError, "^connection_table:"),
        (dict(connection_table=[[1, 0]] * 6), ValueError, "^connection_table: output maps"),
        (dict(connection_table="table"), ValueError, "^connection_table:"),
        (dict(input_shape=(31, 31, 1)), ValueError, "at least 32"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        LeNet5(**kwargs)


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="^pool_size:"):
        Subsampling2D(0)
    with pytest.raises(ValueError, match="^classes:"):
        EuclideanRBF(0)
    with pytest.raises(ValueError, match="^seed:"):
        EuclideanRBF(3, seed=-1)
    with pytest.raises(ValueError, match="^kernel_size:"):
        ConnectionTableConv2D(kernel_size=0)
    with pytest.raises(ValueError, match="^inputs:"):
        ConnectionTableConv2D()(keras.Input((14, 14, 5)))


def test_registry_defaults():
    model = ku.create_model("lenet5")
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 10)
    assert ku.create_model("lenet5", include_top=False).input_shape == (None, None, None, 1)
