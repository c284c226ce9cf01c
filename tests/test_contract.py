"""The keras.applications contract, checked the same way over every registered model.

Every registered model is built once, at its default input with its default
head: its output is a softmax, its parameter counts are the published ones
where there are some, and its row of the shipped zoo table (``keras-ultradeep
list``) is its own. The contract's options (an input tensor, one channel,
classes, no top with pooling, save and reload) are argument handling, which
each family builder does once for all its variants: they are checked on the
smallest registered model of each family builder (30 of them), so that
ResNet-1202 and its five siblings are not saved and reloaded six times.
"""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep import registry, zoo

import reference_counts
from families import check_declared_stages, one_per_family_builder

ALL_MODELS = ku.list_models()
ONE_PER_BUILDER = one_per_family_builder()


def _batch(rng, size, channels, n=2):
    return rng.uniform(0, 1, (n, size, size, channels)).astype("float32")


def test_one_model_of_every_family_builder_is_checked():
    assert {registry.model_entry(name).family for name in ONE_PER_BUILDER} == {
        registry.model_entry(name).family for name in ALL_MODELS
    }
    assert "resnet20_cifar" in ONE_PER_BUILDER and "resnet1202_cifar" not in ONE_PER_BUILDER


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.slow
def test_default_build_counts_and_zoo_row(trainable, name, rng):
    entry = registry.model_entry(name)
    model = zoo.build_at_default(name)
    size = entry.default_size
    assert model.input_shape[:3] == (None, size, size)  # LeNet-5's default input has one channel
    assert zoo.row(name, model) == zoo.table()[name], f"run `python -m keras_ultradeep.zoo {name}`"
    classes = model.output_shape[-1]
    assert classes in (10, 1000)
    # With the batch's own statistics, as at the first training step: untrained and in
    # inference mode BN is the identity, and ResNet-1202's 600 residual sums, each doubling the
    # activations' variance, overflow float32 for some initialisations (inf, then NaN).
    y = keras.ops.convert_to_numpy(model(_batch(rng, size, model.input_shape[-1], n=1), training=True))
    assert y.shape == (1, classes)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)  # softmax head

    if name in reference_counts.KERAS_TOTAL:
        assert model.count_params() == reference_counts.KERAS_TOTAL[name]
    if name in reference_counts.TRAINABLE:
        assert trainable(model) == reference_counts.TRAINABLE[name]
    if name in reference_counts.PAPER_MILLIONS:
        assert round(trainable(model) / 1e6, 1) == reference_counts.PAPER_MILLIONS[name]
    if registry.declares_stages(name):  # its feature stages (features.py) on the same model
        check_declared_stages(name, model)


@pytest.mark.parametrize("name", ONE_PER_BUILDER)
@pytest.mark.slow
def test_input_tensor_one_channel_classes_activation_and_round_trip(name, rng, tmp_path):
    size = registry.model_entry(name).min_size
    source = keras.Input(shape=(size, size, 1))
    # A layer in front of the model: its inputs must be the source, not the tensor.
    scaled = keras.layers.Rescaling(2.0, offset=-1.0)(source)
    model = ku.create_model(
        name, weights=None, input_tensor=scaled, classes=7, classifier_activation=None
    )
    assert model.inputs[0] is source
    assert model.output_shape == (None, 7)
    x = _batch(rng, size, 1)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.isfinite(y).all()
    assert not np.allclose(y.sum(axis=-1), 1.0)  # logits, not probabilities

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert [w.shape for w in reloaded.weights] == [w.shape for w in model.weights]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(x, training=False)), y, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", ONE_PER_BUILDER)
@pytest.mark.slow
def test_no_top_pooling(name, rng):
    size = registry.model_entry(name).min_size
    pooled = {
        pooling: ku.create_model(
            name, weights=None, include_top=False, pooling=pooling, input_shape=(None, None, 3)
        )
        for pooling in ("avg", "max")
    }
    pooled["max"].set_weights(pooled["avg"].get_weights())
    # The feature map under the pooling layer, without building a third model.
    features = keras.Model(pooled["avg"].input, pooled["avg"].layers[-2].output)
    x = _batch(rng, 2 * size, 3)  # a dynamic input shape takes any size above the minimum
    fmap = keras.ops.convert_to_numpy(features(x, training=False))
    assert fmap.ndim == 4
    for pooling, model in pooled.items():
        assert model.output_shape == (None, fmap.shape[-1])
        reduce = np.mean if pooling == "avg" else np.max
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(model(x, training=False)),
            reduce(fmap, axis=(1, 2)),
            rtol=1e-5,
            atol=1e-5,
        )


def test_no_top_without_pooling_returns_the_feature_map():
    model = ku.create_model("densenet40_k12", weights=None, include_top=False)
    # A 16-map stem and three blocks of 12 layers adding 12 maps each (theta = 1).
    assert model.output_shape == (None, None, None, 16 + 3 * 12 * 12)
    assert model.input_shape == (None, None, None, 3)


# ---------------------------------------------------------------- bad arguments

SMALL = "densenet40_k12"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(pooling="mean"), ValueError, "pooling"),
        (dict(include_top="yes"), TypeError, "include_top"),
        (dict(classes=0), ValueError, "classes"),
        (dict(classes=2.5), ValueError, "classes"),
        (dict(name=""), ValueError, "name"),
        (dict(weights="imagenet"), ValueError, "weights"),
        (dict(weights="no/such/file.weights.h5"), ValueError, "weights"),
        (dict(weights=3), TypeError, "weights"),
        (dict(classifier_activation="nope"), ValueError, "classifier_activation"),
        (dict(classifier_activation=3), TypeError, "classifier_activation"),
        (dict(input_shape=(32, 32)), ValueError, "input_shape"),
        (dict(input_shape=(4, 4, 3)), ValueError, "at least 8"),
        (dict(input_shape=(None, None, 3)), ValueError, "static input shape"),
        (dict(input_shape=(32, 32, None)), ValueError, "channel"),
        (dict(input_tensor=np.zeros((1, 32, 32, 3))), TypeError, "input_tensor"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        ku.create_model(SMALL, **kwargs)


def test_input_shape_disagreeing_with_input_tensor():
    with pytest.raises(ValueError, match="input_shape"):
        ku.create_model(SMALL, input_tensor=keras.Input((16, 16, 3)), input_shape=(32, 32, 3))


def test_weights_file_with_wrong_suffix(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="convert"):
        ku.create_model(SMALL, weights=str(path))


def test_pretrained_rules_follow_keras_applications(monkeypatch):
    """With pretrained weights: 1000 classes with the top, softmax/None only,
    3 channels, the default size with the top. All raised before any download."""
    from keras_ultradeep import weights as weights_lib

    def no_download(*args, **kwargs):
        raise AssertionError("validation must fail before any download")

    monkeypatch.setattr(weights_lib, "fetch", no_download)
    cases = [
        (dict(classes=10), "classes"),
        (dict(classifier_activation="sigmoid"), "classifier_activation"),
        (dict(input_shape=(224, 224, 1)), "3 input channels"),
        (dict(input_shape=(96, 96, 3)), r"\(224, 224, 3\)"),
        (dict(include_top=False, input_shape=(96, 96, 1)), "3 input channels"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            ku.DenseNet121(weights="imagenet", **kwargs)


def test_default_input_shape_with_the_top():
    # keras.applications: the default size with the top, any size without it.
    assert ku.create_model(SMALL, weights=None).input_shape == (None, 32, 32, 3)


def test_building_raises_the_recursion_limit_for_very_deep_graphs():
    import sys

    from keras_ultradeep import contract

    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Python's default, which ResNet-1202's graph exceeds
    try:
        ku.create_model("densenet40_k12", depth=10, growth_rate=4, input_shape=(8, 8, 3))
        assert sys.getrecursionlimit() == contract.MIN_RECURSION_LIMIT
    finally:
        sys.setrecursionlimit(max(previous, contract.MIN_RECURSION_LIMIT))
