"""Inception-ResNet-v2 (keras.applications' weights files, timm's stage
features in float64) and Inception-ResNet-v1 (derived parameter count,
structure), knobs.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py, timm's logits in test_timm_parity.py; the float64
method is test_inception_v4.py's.
"""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep import convert
from keras_ultradeep.layers import ResidualScaling
from keras_ultradeep.models.inception_v4 import InceptionResNetV1, InceptionResNetV2

from test_inception_v4 import SIZE
from timm_models import build_float64, calibrated_timm, stage_features_agree

KERAS_IRV2_TOTAL = 55_873_736  # keras.applications' documented count
TIMM_IRV2_PARAMS = 55_843_464
IRV2_BN_MAPS = 30_272  # BatchNorm channels: Keras' moving mean and variance count 2x


def _weighted(model):
    return [
        (type(layer).__name__, [tuple(w.shape) for w in layer.weights])
        for layer in model.layers
        if layer.weights
    ]


# ------------------------------------------------------ keras.applications form


@pytest.fixture(scope="module")
def keras_pair(tmp_path_factory):
    """keras.applications' InceptionResNetV2 with random weights and statistics,
    its ``.weights.h5`` file, and ours built with ``weights=`` that file."""
    reference = keras.applications.InceptionResNetV2(
        weights=None, input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    rng = np.random.default_rng(1)
    for weight in reference.weights:
        shape = tuple(weight.shape)
        if weight.name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif weight.name in ("moving_mean", "beta", "bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:  # He-normal kernels keep every layer input-dependent
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
        weight.assign(value.astype("float32"))
    path = tmp_path_factory.mktemp("irv2") / "inception_resnet_v2.weights.h5"
    reference.save_weights(path)
    ours = InceptionResNetV2(weights=str(path), input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    return reference, ours


@pytest.mark.slow
def test_keras_weights_file_loads_and_outputs_match(keras_pair, rng):
    reference, ours = keras_pair
    x = rng.uniform(-1.0, 1.0, (2, SIZE, SIZE, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(reference(x, training=False))
    got = keras.ops.convert_to_numpy(ours(x, training=False))
    print(f"\nkeras parity inception_resnet_v2: max |diff| {np.abs(got - expected).max():.2e}")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.abs(expected[0] - expected[1]).max() > 0.1 * np.abs(expected).max()


def test_keras_layer_for_layer(trainable, keras_pair):
    reference, ours = keras_pair
    assert ours.count_params() == reference.count_params() == KERAS_IRV2_TOTAL
    assert trainable(ours) == KERAS_IRV2_TOTAL - 2 * IRV2_BN_MAPS
    # Keras' weights files are read in layer order (by class in .weights.h5,
    # by position in the legacy .h5 of weights="imagenet"): the same order.
    assert _weighted(ours) == _weighted(reference)
    # Every layer keras.applications names keeps its name.
    named = {
        layer.name for layer in reference.layers
        if layer.name.startswith(("block35", "block17", "block8", "mixed", "conv_7b", "predictions"))
    }
    assert len(named) == 3 + 3 * (10 + 20 + 10) - 1 + 3 + 1  # the last block8 has no _ac
    assert named <= {layer.name for layer in ours.layers}
    scaling = [layer for layer in ours.layers if isinstance(layer, ResidualScaling)]
    assert [layer.scale for layer in scaling] == [0.17] * 10 + [0.1] * 20 + [0.2] * 9 + [1.0]
    assert scaling[-1].name == "block8_10_add" and "block8_10_ac" not in {layer.name for layer in ours.layers}
    assert not any(type(layer).__name__ in ("Lambda", "CustomScaleLayer") for layer in ours.layers)
    assert {(layer.epsilon, layer.scale) for layer in ours.layers
            if isinstance(layer, keras.layers.BatchNormalization)} == {(1e-3, False)}


@pytest.mark.torch
@pytest.mark.slow
def test_timm_checkpoint_does_not_fit_the_keras_form(keras_pair, timm_pair):
    reference, _ = timm_pair
    _, ours = keras_pair
    state = {key: value.float().numpy() for key, value in reference.state_dict().items()}
    with pytest.raises(ValueError, match="unexpected checkpoint keys .*bn.weight"):
        convert.convert_into(ours, state, "inception_resnet_v2")


# ------------------------------------------------------------------ timm form


@pytest.fixture(scope="module")
def timm_pair():
    pytest.importorskip("torch")
    reference = calibrated_timm("inception_resnet_v2", seed=0, size=SIZE, batch=8, dtype="float64")
    model = build_float64(
        ku.create_model, "inception_resnet_v2", input_shape=(SIZE, SIZE, 3), classifier_activation=None
    )
    state = {key: value.numpy() for key, value in reference.state_dict().items()}
    convert.convert_into(model, state, "inception_resnet_v2")
    return reference, model


@pytest.mark.torch
@pytest.mark.slow
def test_parameter_count_and_stage_features_match_timm(trainable, timm_pair, rng):
    reference, model = timm_pair
    assert model.name == "inception_resnet_v2"
    assert trainable(model) == sum(p.numel() for p in reference.parameters()) == TIMM_IRV2_PARAMS
    assert model.count_params() == TIMM_IRV2_PARAMS + 2 * IRV2_BN_MAPS
    # timm = keras.applications + BatchNorm's gamma.
    assert TIMM_IRV2_PARAMS - IRV2_BN_MAPS == KERAS_IRV2_TOTAL - 2 * IRV2_BN_MAPS
    stages = ["conv_2b_ac", "conv_4a_ac", "block35_10_ac", "block17_20_ac", "conv_7b_ac"]
    stage_features_agree(reference, model, stages, rng.normal(0.0, 1.0, (2, SIZE, SIZE, 3)))


# ------------------------------------------------------- Inception-ResNet-v1


@pytest.mark.slow
def test_inception_resnet_v1_structure_and_derived_count(trainable):
    model = InceptionResNetV1(input_shape=(299, 299, 3))
    # Derived, not published: conv weights + BN gamma/beta + residual biases + FC
    # of the 5/10/5 structure (ARCHITECTURE_FACTS part 2, 3b, counted the same).
    assert trainable(model) == 22_756_328
    assert model.count_params() == 22_783_368
    shapes = {
        "conv_4a_ac": (71, 71, 192),
        "conv_4b_ac": (35, 35, 256),
        "block35_5_ac": (35, 35, 256),
        "mixed_6a": (17, 17, 384 + 256 + 256),
        "block17_10_ac": (17, 17, 896),
        "mixed_7a": (8, 8, 384 + 256 + 256 + 896),
        "block8_5_ac": (8, 8, 1792),
    }
    assert {name: tuple(model.get_layer(name).output.shape[1:]) for name in shapes} == shapes
    assert model.get_layer("block35_1_conv").use_bias and model.get_layer("block35_1_conv").filters == 256
    assert model.get_layer("block17_1_branch1_1").kernel_size == (1, 7)
    assert model.layers[-1].name == "predictions" and model.get_layer("head_drop").rate == 0.2
    assert ku.list_models("inception_resnet*") == [
        "inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_keras"
    ]


@pytest.mark.slow
def test_facenet_form_and_residual_scale_knobs(trainable):
    model = InceptionResNetV1(
        blocks=(5, 10, 6), linear_final_block=True, residual_scales=(0.1, 0.2, 0.3),
        include_top=False, input_shape=(SIZE, SIZE, 3),
    )
    # facenet's sixth, linear 8x8 block adds one IR-C block (1,600,768 parameters).
    assert trainable(model) == 24_357_096 - 1_793_000  # without the FC
    scales = {layer.name: layer.scale for layer in model.layers if isinstance(layer, ResidualScaling)}
    assert (scales["block35_1_add"], scales["block17_10_add"], scales["block8_5_add"]) == (0.1, 0.2, 0.3)
    assert scales["block8_6_add"] == 1.0
    assert model.layers[-1].name == "block8_6_add"


@pytest.mark.slow
def test_mixed_float16_under_xla(rng):
    import tensorflow as tf

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = InceptionResNetV1(blocks=(1, 1, 1), include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("block35_1_add").compute_dtype == "float16"
    x = rng.uniform(-1.0, 1.0, (2, SIZE, SIZE, 3)).astype("float32")
    compiled = tf.function(lambda images: model(images, training=False), jit_compile=True)(x)
    eager = model(x, training=False)
    assert compiled.dtype == eager.dtype == tf.float16
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(compiled).astype("float32"),
        keras.ops.convert_to_numpy(eager).astype("float32"), rtol=1e-2, atol=1e-2,
    )
    assert np.isfinite(keras.ops.convert_to_numpy(compiled)).all()


# --------------------------------------------------------------------- knobs


@pytest.mark.parametrize("builder", [InceptionResNetV1, InceptionResNetV2])
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(blocks=(10, 20)), ValueError, "blocks: expected 3 positive block counts"),
        (dict(residual_scales=(0.17, 0.1)), ValueError, "residual_scales: expected 3 positive numbers"),
        (dict(residual_scales=(0.17, 0.0, 0.2)), ValueError, "residual_scales: expected 3 positive"),
        (dict(residual_scales=(0.17, float("nan"), 0.2)), ValueError, "residual_scales: expected 3"),
        (dict(residual_scales="0.17"), ValueError, "residual_scales: expected 3"),
        (dict(linear_final_block=None), TypeError, "linear_final_block: expected True or False"),
        (dict(dropout_rate=-0.1), ValueError, "dropout_rate: expected a number in"),
        (dict(batch_norm_epsilon="1e-3"), ValueError, "batch_norm_epsilon: expected a positive number"),
        (dict(batch_norm_scale="yes"), TypeError, "batch_norm_scale: expected True or False"),
    ],
)
def test_bad_knobs(builder, kwargs, error, message):
    with pytest.raises(error, match=message):
        builder(**kwargs)

