"""Pre-activation ResNets and Wide ResNets: keras.applications parity, the papers'
parameter counts, structure and knob errors."""

import time

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep.layers import StochasticDepth

from test_resnet import _randomize, _without_batch_norm_affine

SMALL = (64, 64, 3)


@pytest.mark.parametrize("name", ["ResNet50V2", "ResNet101V2", "ResNet152V2"])
@pytest.mark.slow
def test_keras_applications_weights_load_with_identical_outputs(name, tmp_path, rng):
    theirs = getattr(keras.applications, name)(weights=None, input_shape=SMALL, include_top=False, pooling="avg")
    _randomize(theirs, rng)
    path = tmp_path / "keras.weights.h5"
    theirs.save_weights(path)
    model = getattr(ku, name)(weights=str(path), input_shape=SMALL, include_top=False, pooling="avg")
    assert [(w.path, w.shape) for w in model.weights] == [(w.path, w.shape) for w in theirs.weights]
    x = rng.uniform(-1, 1, (2,) + SMALL).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(theirs(x, training=False)),
    )


@pytest.mark.slow
def test_keras_applications_legacy_h5_with_top(tmp_path, rng):
    theirs = keras.applications.ResNet50V2(weights=None)
    _randomize(theirs, rng)
    path = tmp_path / "resnet50v2_weights_tf_dim_ordering_tf_kernels.h5"
    theirs.save(path)  # legacy HDF5, the layout of the published files
    model = ku.ResNet50V2(weights=str(path))
    assert model.count_params() == 25_613_800  # keras.io's table
    x = rng.uniform(-1, 1, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(theirs(x, training=False)),
    )


# The identity-mappings paper counts without BatchNorm's scales and offsets
# (ResNet-1001: 10.33M with them, 10.18M without); the WRN paper with them.
@pytest.mark.parametrize(
    "name, millions, with_bn",
    [
        ("preact_resnet164_cifar", 1.7, False),
        ("preact_resnet1001_cifar", 10.2, False),
        ("wrn16_4", 2.7, True),
        ("wrn16_8", 11.0, True),
        ("wrn28_10", 36.5, True),
        ("wrn40_4", 8.9, True),
        ("wrn52_1", 0.8, True),
    ],
)
@pytest.mark.slow
def test_cifar_parameter_counts_match_the_papers(trainable, name, millions, with_bn):
    start = time.perf_counter()
    model = ku.create_model(name, input_shape=(8, 8, 3))
    seconds = time.perf_counter() - start
    count = trainable(model) if with_bn else _without_batch_norm_affine(trainable, model)
    print(f"\n{name}: {trainable(model):,} trainable, {_without_batch_norm_affine(trainable, model):,} without BN, "
          f"built in {seconds:.1f} s")
    assert model.output_shape == (None, 10)
    assert round(count / 1e6, 1) == millions


def test_preact_structure():
    model = ku.PreActResNetCIFAR(depth=20, input_shape=(32, 32, 3))  # n = 2
    # The first unit of a stage pre-activates once for both paths; its
    # projection and its first 1x1 stride (the authors' Torch code).
    first = model.get_layer("conv3_block1_0_conv")
    assert first.strides == (2, 2) and first.input is model.get_layer("conv3_block1_preact_relu").output
    assert model.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert model.get_layer("conv3_block1_2_conv").strides == (1, 1)
    # Other units add their branch to the untouched input.
    add = model.get_layer("conv3_block2_out")
    assert add.input[0] is model.get_layer("conv3_block1_out").output
    assert not any(layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert model.get_layer("post_bn") and model.output_shape == (None, 10)


def test_wide_resnet_structure_and_dropout(rng):
    model = ku.WideResNet(depth=16, widening_factor=2, dropout_rate=0.3, input_shape=(16, 16, 3))
    assert model.get_layer("conv2_block1_0_conv").filters == 32  # 16 -> 16k: projected
    assert model.get_layer("conv4_block2_2_conv").filters == 128
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(drops) == 6 and all(layer.rate == 0.3 for layer in drops)
    thin = ku.create_model("wrn52_1", input_shape=(8, 8, 3))
    with pytest.raises(ValueError):
        thin.get_layer("conv2_block1_0_conv")  # 16 -> 16: identity
    x = rng.normal(0, 1, (2, 16, 16, 3)).astype("float32")
    a = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(model(x, training=False)))


@pytest.mark.slow
def test_stochastic_depth_on_preact_and_wide():
    preact = ku.create_model("preact_resnet164_cifar", survival_prob=0.5, input_shape=(8, 8, 3))
    probs = [layer.survival_prob for layer in preact.layers if isinstance(layer, StochasticDepth)]
    assert len(probs) == 54 and probs[-1] == 0.5
    wide = ku.WideResNet(depth=16, widening_factor=1, survival_prob=0.7, survival_rule="uniform")
    assert {layer.survival_prob for layer in wide.layers if isinstance(layer, StochasticDepth)} == {0.7}
    keras_form = ku.ResNet50V2(weights=None, include_top=False, input_shape=(32, 32, 3), survival_prob=0.8)
    assert sum(isinstance(layer, StochasticDepth) for layer in keras_form.layers) == 16


@pytest.mark.parametrize(
    "builder, kwargs, message",
    [
        ("WideResNet", dict(depth=27), r"depth: expected \(depth - 4\) % 6 == 0"),
        ("WideResNet", dict(depth=4), r"depth: expected \(depth - 4\) % 6 == 0"),
        ("WideResNet", dict(widening_factor=0), "widening_factor: expected a positive integer"),
        ("WideResNet", dict(widening_factor=2.5), "widening_factor: expected a positive integer"),
        ("WideResNet", dict(dropout_rate=1.0), r"dropout_rate: expected a number in \[0, 1\)"),
        ("PreActResNetCIFAR", dict(depth=165), r"depth: expected 9n \+ 2"),
        ("PreActResNetCIFAR", dict(survival_rule="exp"), "survival_rule: expected one of"),
        ("ResNetV2", dict(blocks=(3, 4, 6)), "blocks: expected 4 block counts"),
        ("ResNetV2", dict(blocks=(1, 4, 6, 3)), "blocks: expected 4 block counts of at least 2"),
    ],
)
def test_bad_knobs(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(ku, builder)(**kwargs)


def test_preprocess_input_is_tf_mode():
    x = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(ku.resnet_v2.preprocess_input(x), [[[[-1.0, 0.0, 1.0]]]])


# --------------------------------------------------------------------------- timm

# The others (resnetv2_18 ... resnetv2_101, which have pretrained tags) are in
# test_timm_parity.py's table; resnetv2_152 has no tag, so its parity is here.
TIMM_MODELS = ["resnetv2_152"]


@pytest.mark.torch
@pytest.mark.parametrize("name", TIMM_MODELS)
@pytest.mark.slow
def test_timm_parity_and_parameter_count(trainable, name, rng):
    import torch

    from test_resnet import _randomized_timm
    from timm_models import assert_parity, nchw

    from keras_ultradeep import convert

    reference = _randomized_timm(name, seed=TIMM_MODELS.index(name))
    model = ku.create_model(name, weights=None, input_shape=SMALL, classifier_activation=None)
    convert.convert_into(model, {k: v.numpy() for k, v in reference.state_dict().items()}, "resnet_v2")
    assert trainable(model) == sum(p.numel() for p in reference.parameters())

    # Inputs with a negative mean: the stem max-pool sees negative values, so
    # padding it with zeros instead of -inf would show.
    x = rng.normal(-1.0, 1.0, (2,) + SMALL).astype("float32")
    with torch.no_grad():
        expected = reference(nchw(x)).numpy()
    got = keras.ops.convert_to_numpy(model(x, training=False))
    assert_parity(got, expected, f"{name} (trainable {trainable(model):,})")
