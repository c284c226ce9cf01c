"""Inception-v4: parameter count, stage features against timm, structure, knobs.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py, timm's logits in test_timm_parity.py (float32).

Here timm's model runs in float64 with BatchNorm statistics measured on random
images (``timm_models.calibrated_timm``): with timm's default initialisation
and random statistics the activations of a network this deep barely depend on
the input, and a model with a wrong stem padding still matched timm's logits
to 1e-7. Measured statistics keep every layer's output input-dependent;
float64 keeps the rounding noise, which such a random 60-layer network
amplifies about two-fold per block, far below any structural difference, so
every stage's output must agree to 1e-9.
"""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep import contract, convert, registry
from keras_ultradeep.models import inception_v4
from keras_ultradeep.models.inception_v4 import InceptionV4

from timm_models import build_float64, calibrated_timm, stage_features_agree

SIZE = 75  # the smallest input of these networks
TIMM_V4_PARAMS = 42_679_816


@pytest.fixture(scope="module")
def converted():
    """timm's inception_v4 (calibrated, float64) and ours with its weights."""
    pytest.importorskip("torch")
    reference = calibrated_timm("inception_v4", seed=0, size=SIZE, batch=8, dtype="float64")
    model = build_float64(InceptionV4, input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    state = {key: value.numpy() for key, value in reference.state_dict().items()}
    convert.convert_into(model, state, "inception_v4")
    return reference, model


# ---------------------------------------------------------------------- timm


@pytest.mark.torch
@pytest.mark.slow
def test_parameter_count_and_stage_features_match_timm(trainable, converted, rng):
    reference, model = converted
    assert trainable(model) == sum(p.numel() for p in reference.parameters()) == TIMM_V4_PARAMS
    # Keras also counts BatchNorm's moving mean and variance (2 x 31,584 maps).
    assert model.count_params() == TIMM_V4_PARAMS + 2 * 31_584
    stages = ["conv_2b_ac", "mixed_3a", "block35_4_concat", "block17_7_concat", "block8_3_concat"]
    stage_features_agree(reference, model, stages, rng.normal(0.0, 1.0, (2, SIZE, SIZE, 3)))


def test_converter_is_registered():
    assert {"inception_v4", "inception_resnet_v2"} <= set(convert.families())
    assert ku.list_models("inception_v4") == ["inception_v4"]


# ------------------------------------------------------------------ structure


@pytest.mark.torch
def test_structure(converted):
    _, model = converted
    shapes = {
        "conv_1a": (37, 37, 32),
        "conv_2b_ac": (35, 35, 64),
        "mixed_3a": (17, 17, 64 + 96),
        "mixed_4a": (15, 15, 96 + 96),
        "mixed_5a": (7, 7, 192 + 192),
        "block35_4_concat": (7, 7, 4 * 96),
        "mixed_6a": (3, 3, 384 + 256 + 384),
        "block17_7_concat": (3, 3, 384 + 256 + 256 + 128),
        "mixed_7a": (1, 1, 192 + 320 + 1024),
        "block8_3_concat": (1, 1, 256 + 512 + 512 + 256),
    }
    assert {name: tuple(model.get_layer(name).output.shape[1:]) for name in shapes} == shapes
    assert model.get_layer("conv_1a").padding == "valid" and model.get_layer("conv_1a").strides == (2, 2)
    assert model.get_layer("block17_1_branch1_2").kernel_size == (7, 1)  # the code's, not Fig. 5's
    assert model.get_layer("block17_1_branch2_4").kernel_size == (1, 7)
    assert model.get_layer("mixed_5a_branch0_0").strides == (2, 2)  # unmarked in Fig. 3
    assert model.get_layer("block8_1_branch2_3a").kernel_size == (1, 3)
    assert model.get_layer("block8_1_branch2_3b").kernel_size == (3, 1)
    pool = model.get_layer("block35_1_branch3_pool")
    assert isinstance(pool, keras.layers.AveragePooling2D) and pool.padding == "same"
    assert isinstance(model.get_layer("mixed_3a_branch0_pool"), keras.layers.MaxPooling2D)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert {(n.epsilon, n.scale) for n in norms} == {(1e-3, True)}
    assert not any(getattr(layer, "use_bias", False) for layer in model.layers if layer.name != "predictions")
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)
    assert model.get_layer("head_drop").rate == 0.2


@pytest.mark.slow
def test_default_input_and_family_builder():
    model = InceptionV4(include_top=False, blocks=(1, 1, 1), pooling="avg", input_shape=(SIZE, SIZE, 3))
    assert model.output_shape == (None, 1536)
    assert not any(layer.name.startswith("block35_2") for layer in model.layers)
    assert ku.create_model("inception_v4", include_top=False).input_shape == (None, None, None, 3)
    entry = registry.model_entry("inception_v4")
    assert (entry.default_size, entry.min_size, entry.family) == (299, 75, "inception_v4")


def test_preprocess_input_is_minus_one_to_one():
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(inception_v4.preprocess_input(pixels.copy()), [[[[-1.0, 0.0, 1.0]]]])
    assert inception_v4.decode_predictions is contract.decode_predictions


# --------------------------------------------------------------------- knobs


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(blocks=(4, 7)), ValueError, "blocks: expected 3 positive block counts"),
        (dict(blocks=(4, 0, 3)), ValueError, "blocks: expected 3 positive block counts"),
        (dict(blocks="473"), ValueError, "blocks: expected 3 positive block counts"),
        (dict(dropout_rate=1.0), ValueError, "dropout_rate: expected a number in \\[0, 1\\)"),
        (dict(dropout_rate=True), ValueError, "dropout_rate: expected a number"),
        (dict(batch_norm_epsilon=0), ValueError, "batch_norm_epsilon: expected a positive number"),
        (dict(batch_norm_scale=1), TypeError, "batch_norm_scale: expected True or False"),
        (dict(input_shape=(74, 74, 3), include_top=False), ValueError, "at least 75"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    with pytest.raises(error, match=message):
        InceptionV4(**kwargs)
