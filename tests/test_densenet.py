"""DenseNet: weight compatibility with keras.applications, the paper's knobs and their errors."""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep.models import densenet


def _predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _randomize(model, rng):
    """Every weight random, BatchNorm statistics included, so a mismatch shows."""
    for weight in model.weights:
        if "moving_variance" in weight.path or "gamma" in weight.path:
            value = rng.uniform(0.5, 1.5, weight.shape)
        elif "moving_mean" in weight.path or "beta" in weight.path:
            value = rng.normal(0.0, 0.1, weight.shape)
        else:
            fan_in = np.prod(weight.shape[:-1]) if len(weight.shape) > 1 else 1
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), weight.shape)
        weight.assign(value.astype("float32"))


KERAS_APPLICATIONS = {
    "densenet121": keras.applications.DenseNet121,
    "densenet169": keras.applications.DenseNet169,
    "densenet201": keras.applications.DenseNet201,
}


@pytest.mark.parametrize("name", sorted(KERAS_APPLICATIONS))
@pytest.mark.slow
def test_keras_applications_weights_load_with_identical_outputs(name, rng, tmp_path):
    shape = (32, 32, 3)
    reference = KERAS_APPLICATIONS[name](weights=None, input_shape=shape, classifier_activation=None)
    _randomize(reference, rng)
    x = rng.uniform(0, 1, (2,) + shape).astype("float32")
    expected = _predict(reference, x)

    # Keras 3's own format, and the legacy HDF5 layout of the published files.
    keras3_file = tmp_path / f"{name}.weights.h5"
    legacy_file = tmp_path / f"{name}_legacy.h5"
    reference.save_weights(keras3_file)
    reference.save(legacy_file)

    ours = ku.create_model(name, weights=None, input_shape=shape, classifier_activation=None)
    assert [(w.path, w.shape) for w in ours.weights] == [
        (w.path, w.shape) for w in reference.weights
    ]
    for path in (keras3_file, legacy_file):
        ours.load_weights(path)
        np.testing.assert_allclose(_predict(ours, x), expected, rtol=0, atol=1e-5)
    # And through the builder's ``weights=`` argument.
    loaded = ku.create_model(name, weights=str(legacy_file), input_shape=shape, classifier_activation=None)
    assert np.abs(_predict(loaded, x) - expected).max() <= 1e-5


def test_layer_names_follow_keras_applications():
    model = ku.DenseNet121(weights=None, include_top=False, input_shape=(32, 32, 3))
    names = {layer.name for layer in model.layers}
    for expected in ("conv1_conv", "conv2_block6_concat", "pool2_conv", "conv5_block16_2_conv", "bn", "relu"):
        assert expected in names
    assert model.get_layer("conv1_bn").epsilon == pytest.approx(1.001e-5)


def test_batch_norm_epsilon_knob():
    model = ku.DenseNet121(weights=None, input_shape=(32, 32, 3), batch_norm_epsilon=1e-5)
    epsilons = {layer.epsilon for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert epsilons == {1e-5}


@pytest.mark.slow
def test_densenet161_structure():
    model = ku.DenseNet161(weights=None, include_top=False, input_shape=(32, 32, 3))
    assert model.get_layer("conv1_conv").filters == 96
    assert model.get_layer("conv2_block1_2_conv").filters == 48
    assert model.get_layer("conv2_block1_1_conv").filters == 4 * 48
    # 96 + 6 * 48 = 384 maps halved by the first transition.
    assert model.get_layer("pool2_conv").filters == 192
    assert model.output_shape[-1] == 2208


@pytest.mark.slow
def test_generic_builder_matches_named_variant():
    named = ku.DenseNet169(weights=None, input_shape=(32, 32, 3))
    generic = ku.DenseNet([6, 12, 32, 32], weights=None, input_shape=(32, 32, 3))
    assert named.count_params() == generic.count_params()


@pytest.mark.parametrize(
    "depth, bottleneck, per_block", [(40, False, 12), (100, False, 32), (100, True, 16), (250, True, 41)]
)
def test_cifar_depth_formula(depth, bottleneck, per_block):
    assert densenet._cifar_layers_per_block(depth, bottleneck) == per_block


def test_cifar_structure_follows_the_paper():
    model = ku.DenseNetCIFAR(
        depth=22, growth_rate=6, bottleneck=True, compression=0.5, dropout_rate=0.2, include_top=False
    )
    # DenseNet-BC: a 2k stem, (22 - 4) / 6 = 3 bottleneck layers per block, 4k bottleneck maps.
    assert model.get_layer("conv1_conv").filters == 12
    assert model.get_layer("conv1_conv").kernel_size == (3, 3)
    assert model.get_layer("conv2_block3_1_conv").filters == 24
    with pytest.raises(ValueError):
        model.get_layer("conv2_block4_concat")
    # theta = 0.5 of 12 + 3 * 6 = 30 maps.
    assert model.get_layer("pool2_conv").filters == 15
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    # After every conv but the stem: 2 per layer x 9 layers + 2 transitions.
    assert len(drops) == 2 * 9 + 2 and all(d.rate == 0.2 for d in drops)

    plain = ku.DenseNetCIFAR(depth=13, bottleneck=False, compression=1.0, include_top=False)
    assert plain.get_layer("conv1_conv").filters == 16
    assert not any("_1_conv" in layer.name for layer in plain.layers)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.layers)


@pytest.mark.slow
def test_cifar_training_mode_dropout_changes_outputs(rng):
    model = ku.DenseNetCIFAR(depth=10, growth_rate=4, bottleneck=False, compression=1.0, dropout_rate=0.5)
    x = rng.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    inference = [keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    assert not np.allclose(keras.ops.convert_to_numpy(model(x, training=True)), inference[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=101), r"depth: expected 6n \+ 4"),
        (dict(depth=41, bottleneck=False), r"depth: expected 3n \+ 4"),
        (dict(depth=4, bottleneck=False), "depth"),
        (dict(depth="100"), "depth"),
        (dict(growth_rate=0), "growth_rate"),
        (dict(growth_rate=1.5), "growth_rate"),
        (dict(compression=0), "compression"),
        (dict(compression=1.5), "compression"),
        (dict(dropout_rate=1.0), "dropout_rate"),
        (dict(dropout_rate=-0.1), "dropout_rate"),
        (dict(batch_norm_epsilon=0), "batch_norm_epsilon"),
        (dict(stem_filters=0), "stem_filters"),
    ],
)
def test_cifar_knob_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ku.DenseNetCIFAR(**kwargs)


def test_bottleneck_must_be_bool():
    with pytest.raises(TypeError, match="bottleneck"):
        ku.DenseNetCIFAR(bottleneck="yes")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(blocks=[]), "blocks"),
        (dict(blocks=[6, 0]), "blocks"),
        (dict(blocks=[6, 12], growth_rate=-1), "growth_rate"),
        (dict(blocks=[6, 12], bottleneck_width=0), "bottleneck_width"),
    ],
)
def test_imagenet_knob_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ku.DenseNet(weights=None, **kwargs)


def test_preprocess_input_is_torch_mode():
    x = np.full((1, 2, 2, 3), 255.0, dtype="float32")
    out = np.asarray(ku.densenet.preprocess_input(x))
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-5)


def test_decode_predictions_rejects_wrong_shape():
    with pytest.raises(ValueError, match="1000"):
        ku.densenet.decode_predictions(np.zeros((1, 10)))
