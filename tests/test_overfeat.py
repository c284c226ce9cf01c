"""OverFeat fast and accurate: the official layer shapes and counts, dense
evaluation over larger inputs, preprocessing, features and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep.features import feature_extractor
from keras_ultradeep.models.overfeat import OverFeat, OverFeatAccurate, OverFeatFast, preprocess_input

# Computed from the official weight files' layer shapes (ARCHITECTURE_FACTS.md 6).
FAST_TOTAL = 145_920_872
ACCURATE_TOTAL = 144_656_488


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def _shapes(model):
    return {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}


@pytest.mark.slow
def test_fast_model():
    model = OverFeatFast()
    assert model.input_shape == (None, 231, 231, 3)
    assert model.count_params() == FAST_TOTAL
    counts = {layer.name: layer.count_params() for layer in model.layers if layer.weights}
    assert list(counts.values()) == [
        34_944, 614_656, 1_180_160, 4_719_616, 9_438_208, 113_249_280, 12_587_008, 4_097_000
    ]
    shapes = _shapes(model)
    assert [shapes[n] for n in ("conv1_conv", "pool1", "conv2_conv", "pool2", "conv5_conv", "pool5", "fc6")] == [
        (56, 56, 96), (28, 28, 96), (24, 24, 256), (12, 12, 256), (12, 12, 1024), (6, 6, 1024), (1, 1, 3072)
    ]
    assert model.get_layer("fc6").kernel.shape == (6, 6, 1024, 3072)
    assert [model.get_layer(n).rate for n in ("fc6_drop", "fc7_drop")] == [0.5, 0.5]


@pytest.mark.slow
def test_accurate_model():
    model = OverFeatAccurate()
    assert model.input_shape == (None, 221, 221, 3)
    assert model.count_params() == ACCURATE_TOTAL
    counts = {layer.name: layer.count_params() for layer in model.layers if layer.weights}
    assert list(counts.values()) == [
        14_208, 1_204_480, 1_180_160, 2_359_808, 4_719_616, 9_438_208, 104_861_696, 16_781_312, 4_097_000
    ]
    shapes = _shapes(model)
    assert [shapes[n] for n in ("conv1_conv", "pool1", "conv2_conv", "pool2", "conv6_conv", "pool6", "fc7")] == [
        (108, 108, 96), (36, 36, 96), (30, 30, 256), (15, 15, 256), (15, 15, 1024), (5, 5, 1024), (1, 1, 4096)
    ]


@pytest.mark.slow
def test_dense_evaluation_over_a_larger_input(rng):
    # 263 = 231 + 32: pool5 is 7x7 and the classifier slides over 2x2 positions.
    model = OverFeatFast(input_shape=(263, 263, 3), classes=5, classifier_activation=None)
    class_map = keras.Model(model.input, model.get_layer("predictions").output)
    x = rng.uniform(0.0, 1.0, (1, 263, 263, 3)).astype("float32")
    scores = to_numpy(class_map(x))
    assert scores.shape == (1, 2, 2, 5)
    np.testing.assert_allclose(to_numpy(model(x)), scores.max(axis=(1, 2)), rtol=1e-6)

    mapped = OverFeatFast(input_shape=(263, 263, 3), classes=5, class_map=True)
    assert mapped.output_shape == (None, 2, 2, 5)
    mapped.set_weights(model.get_weights())
    probabilities = to_numpy(mapped(x))
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)  # a softmax per position
    np.testing.assert_allclose(probabilities, to_numpy(keras.activations.softmax(scores)), rtol=1e-5, atol=1e-7)


def test_feature_stages():
    extractor = feature_extractor("overfeat_accurate", input_shape=(221, 221, 3))
    shapes = [tuple(t.shape[1:]) for t in extractor.output.values()]
    assert shapes == [(108, 108, 96), (30, 30, 256), (15, 15, 512), (15, 15, 512), (15, 15, 1024), (15, 15, 1024)]


def test_preprocess_input():
    x = np.array([[[0.0, 118.380948, 255.0]]], "float32")
    expected = (x - 118.380948) / 61.896913
    np.testing.assert_allclose(to_numpy(preprocess_input(x)), expected, rtol=1e-6)
    pixels = x.astype("uint8")
    np.testing.assert_allclose(to_numpy(preprocess_input(pixels)), (pixels - 118.380948) / 61.896913, atol=1e-6)
    torch_mode = to_numpy(preprocess_input(x.copy(), mode="torch"))
    assert torch_mode.shape == x.shape
    with pytest.raises(ValueError, match="^mode:"):
        preprocess_input(x, mode="big")


@pytest.mark.parametrize(
    "builder, kwargs, error, message",
    [
        (OverFeat, dict(model="big"), ValueError, "^model:"),
        (OverFeatFast, dict(dropout_rate=1.0), ValueError, "^dropout_rate:"),
        (OverFeatFast, dict(class_map="yes"), TypeError, "^class_map:"),
        (OverFeatFast, dict(input_shape=(230, 230, 3)), ValueError, "at least 231"),
        (OverFeatAccurate, dict(input_shape=(220, 220, 3)), ValueError, "at least 221"),
        (OverFeatFast, dict(model="accurate"), TypeError, "^model:"),
        (OverFeatFast, dict(filters=(96, 256)), ValueError, "^filters:"),
        (OverFeatAccurate, dict(filters=(8,) * 5), ValueError, "^filters:"),
        (OverFeatFast, dict(full_units=(16, 0)), ValueError, "^full_units:"),
    ],
)
def test_bad_arguments(builder, kwargs, error, message):
    with pytest.raises(error, match=message):
        builder(**kwargs)


def test_narrow_model_keeps_the_layout():
    model = OverFeat("fast", filters=(8, 8, 8, 8, 16), full_units=(12, 10), classes=3)
    assert model.get_layer("fc6").kernel.shape == (6, 6, 16, 12)
    assert model.get_layer("fc7").kernel.shape == (1, 1, 12, 10)
    assert model.output_shape == (None, 3)


def test_registry():
    assert ku.list_models("overfeat*") == ["overfeat_accurate", "overfeat_fast"]
    assert OverFeat("accurate", include_top=False, input_shape=(221, 221, 3)).name == "overfeat_accurate"
