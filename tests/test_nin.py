"""Network in Network (CIFAR): the official layer table and its parameter count,
ceil-mode pooling, the global-average-pooling head, knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep.models.nin import NINCIFAR

# ARCHITECTURE_FACTS 4.1: (layer, kernel, filters, parameters).
TABLE = [
    ("conv1", 5, 192, 14_592),
    ("cccp1", 1, 160, 30_880),
    ("cccp2", 1, 96, 15_456),
    ("conv2", 5, 192, 460_992),
    ("cccp3", 1, 192, 37_056),
    ("cccp4", 1, 192, 37_056),
    ("conv3", 3, 192, 331_968),
    ("cccp5", 1, 192, 37_056),
    ("cccp6", 1, 10, 1_930),
]


@pytest.fixture(scope="module")
def model():
    return ku.create_model("nin_cifar")


def _ceil_mode_pool(x, reduce):
    """cuda-convnet/Caffe's 3x3/2 pooling in ceil mode without padding: windows
    cut at the border, averages over the cells inside only."""
    n, h, w, c = x.shape
    out_h, out_w = -(-(h - 3) // 2) + 1, -(-(w - 3) // 2) + 1
    y = np.empty((n, out_h, out_w, c), x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            y[:, i, j] = reduce(x[:, 2 * i : min(2 * i + 3, h), 2 * j : min(2 * j + 3, w)], axis=(1, 2))
    return y


def test_layer_table_and_parameter_count(model):
    assert model.count_params() == 966_986  # ARCHITECTURE_FACTS 4.1 (imgclsmob asserts it too)
    assert ku.create_model("nin_cifar", classes=100).count_params() == 984_356
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.name, c.kernel_size[0], c.filters, c.count_params()) for c in convs] == TABLE
    # Every conv has a bias and a ReLU, cccp6 included; no BatchNorm, no Dense.
    assert all(c.use_bias and c.activation is keras.activations.relu and c.padding == "same" for c in convs)
    unwanted = (keras.layers.BatchNormalization, keras.layers.Dense)
    assert not any(isinstance(layer, unwanted) for layer in model.layers)
    shapes = {name: model.get_layer(name).output.shape[1:] for name in ("cccp2", "pool1", "pool2", "cccp6")}
    assert shapes == {"cccp2": (32, 32, 96), "pool1": (16, 16, 96), "pool2": (8, 8, 192), "cccp6": (8, 8, 10)}
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [(d.name, d.rate) for d in drops] == [("drop1", 0.5), ("drop2", 0.5)]
    assert model.get_layer("drop1").input is model.get_layer("pool1").output


def test_pools_are_ceil_mode(model, rng):
    x = rng.normal(0.0, 1.0, (2, 16, 16, 4)).astype("float32")
    pool1 = keras.ops.convert_to_numpy(model.get_layer("pool1")(x))
    np.testing.assert_allclose(pool1, _ceil_mode_pool(x, np.max), rtol=1e-6)
    caffe_zoo = NINCIFAR(second_pool="avg")
    assert isinstance(caffe_zoo.get_layer("pool2"), keras.layers.AveragePooling2D)
    assert isinstance(model.get_layer("pool2"), keras.layers.MaxPooling2D)
    pool2 = keras.ops.convert_to_numpy(caffe_zoo.get_layer("pool2")(x))
    np.testing.assert_allclose(pool2, _ceil_mode_pool(x, np.mean), rtol=1e-5, atol=1e-6)


def test_global_average_pooling_head(model, rng):
    x = rng.uniform(0.0, 1.0, (2, 32, 32, 3)).astype("float32")
    logits = keras.Model(model.input, [model.get_layer("cccp6").output, model.get_layer("avg_pool").output])
    maps, scores = (keras.ops.convert_to_numpy(t) for t in logits(x, training=False))
    np.testing.assert_allclose(scores, maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert (scores >= 0).all()  # cccp6's ReLU: non-negative class scores
    probabilities = keras.ops.convert_to_numpy(model(x, training=False))
    softmax = keras.ops.convert_to_numpy(keras.ops.softmax(scores))
    np.testing.assert_allclose(probabilities, softmax, rtol=1e-5)
    head = ["conv3", "cccp5", "cccp6", "avg_pool", "predictions"]
    assert [layer.name for layer in model.layers[-5:]] == head


def test_without_the_top_the_features_end_before_the_classifier_mlpconv(rng):
    features = NINCIFAR(include_top=False)
    assert features.input_shape == (None, None, None, 3)
    assert features.layers[-1].name == "drop2" and features.output_shape == (None, None, None, 192)
    assert features.count_params() == 14_592 + 30_880 + 15_456 + 460_992 + 37_056 + 37_056
    pooled = NINCIFAR(include_top=False, pooling="max", input_shape=(64, 64, 3))
    assert pooled.output_shape == (None, 192)
    stages = ku.feature_extractor(features, layer_names=["pool1", "pool2"])
    x = rng.uniform(0.0, 1.0, (1, 32, 32, 3)).astype("float32")
    assert [tuple(t.shape) for t in stages(x).values()] == [(1, 16, 16, 96), (1, 8, 8, 192)]


def test_no_dropout_and_registry():
    plain = NINCIFAR(dropout_rate=0.0, classes=100)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.layers)
    assert plain.output_shape == (None, 100)
    assert ku.list_models("nin*") == ["nin_cifar"]
    assert plain.name == "nin_cifar"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(second_pool="stochastic"), ValueError, "second_pool: expected one of"),
        (dict(second_pool=None), ValueError, "second_pool: expected one of"),
        (dict(dropout_rate=1.0), ValueError, r"dropout_rate: expected a number in \[0, 1\)"),
        (dict(dropout_rate=True), ValueError, "dropout_rate: expected a number"),
        (dict(input_shape=(4, 4, 3)), ValueError, "at least 8"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    with pytest.raises(error, match=message):
        NINCIFAR(**kwargs)
