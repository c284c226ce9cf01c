"""AlexNet: the paper's layout and count, torchvision parity and checkpoint
conversion for the single-tower form, the adaptive pool, features and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""



import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402
from keras_ultradeep import convert  # noqa: E402
from keras_ultradeep.features import feature_extractor  # noqa: E402
from keras_ultradeep.layers import (  # noqa: E402
    AdaptiveAveragePooling2DTorch,
    GroupedConv2D,
    LocalResponseNormalization,
)
from keras_ultradeep.models.alexnet import AlexNet, AlexNetTV  # noqa: E402
from timm_models import assert_parity, relative as _relative  # noqa: E402

PAPER_TOTAL = 60_965_224  # the paper's "60 million"; Caffe bvlc_alexnet's count
TORCHVISION_TOTAL = 61_100_840


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def paper_model():
    return AlexNet()


# ------------------------------------------------------------------- the paper


@pytest.mark.slow
def test_paper_parameter_count(paper_model):
    assert paper_model.count_params() == PAPER_TOTAL
    assert sum(int(np.prod(w.shape)) for w in paper_model.trainable_weights) == PAPER_TOTAL
    assert abs(PAPER_TOTAL / 60e6 - 1) < 0.02  # "60 million parameters"
    # One GPU's worth of connections more without the groups.
    assert AlexNet(groups=1, include_top=False).count_params() == 2_334_080 + 1_413_120


def test_paper_layout(paper_model):
    shapes = {layer.name: layer.output.shape[1:] for layer in paper_model.layers}
    assert paper_model.input_shape == (None, 227, 227, 3)
    assert shapes["conv1_conv"] == (55, 55, 96)
    assert shapes["pool1"] == (27, 27, 96)
    assert shapes["pool2"] == (13, 13, 256)
    assert shapes["pool5"] == (6, 6, 256)
    assert shapes["flatten"] == (9216,)
    grouped = {layer.name: layer.groups for layer in paper_model.layers if isinstance(layer, GroupedConv2D)}
    assert grouped == {"conv2_conv": 2, "conv4_conv": 2, "conv5_conv": 2}
    norms = [layer for layer in paper_model.layers if isinstance(layer, LocalResponseNormalization)]
    assert [n.name for n in norms] == ["conv1_block1_out", "conv2_block1_out"]
    assert all((n.size, n.alpha, n.beta, n.k) == (5, 1e-4, 0.75, 2.0) for n in norms)
    names = [layer.name for layer in paper_model.layers]
    # ReLU, then LRN, then the overlapping pool; dropout after the FC ReLUs.
    assert names.index("conv1_relu") < names.index("conv1_block1_out") < names.index("pool1")
    assert names[-5:] == ["fc6", "fc6_drop", "fc7", "fc7_drop", "predictions"]
    assert paper_model.get_layer("fc6_drop").rate == 0.5


def test_grouped_convs_see_only_their_half():
    model = AlexNet(include_top=False, input_shape=(67, 67, 3))
    conv4 = model.get_layer("conv4_conv")
    probe = keras.Model(model.get_layer("conv3_block1_out").output, conv4.output)
    x = np.random.default_rng(0).normal(size=(1, 3, 3, 384)).astype("float32")
    changed = x.copy()
    changed[..., :192] += 1.0  # the first GPU's maps only
    difference = np.abs(to_numpy(probe(changed)) - to_numpy(probe(x))).max(axis=(0, 1, 2))
    assert np.all(difference[:192] > 0) and np.all(difference[192:] == 0)


def test_paper_initialization():
    model = AlexNet(include_top=True, input_shape=(67, 67, 3), paper_initialization=True)
    for layer in ("conv2_conv", "conv4_conv", "conv5_conv", "fc6", "fc7"):
        np.testing.assert_array_equal(to_numpy(model.get_layer(layer).bias), 1.0)
    for layer in ("conv1_conv", "conv3_conv", "predictions"):
        np.testing.assert_array_equal(to_numpy(model.get_layer(layer).bias), 0.0)
    kernel = to_numpy(model.get_layer("fc6").kernel)
    assert abs(kernel.std() - 0.01) < 1e-3


def test_feature_stages():
    extractor = feature_extractor("alexnet", input_shape=(227, 227, 3))
    shapes = {key: tuple(t.shape[1:]) for key, t in extractor.output.items()}
    assert shapes == {
        "stage1_s4": (55, 55, 96),
        "stage2_s8": (27, 27, 256),
        "stage3_s16": (13, 13, 384),
        "stage4_s16": (13, 13, 384),
        "stage5_s16": (13, 13, 256),
    }


# ------------------------------------------------------------ torchvision form


def _adaptive_reference(x, output_size):
    import torch

    pooled = torch.nn.AdaptiveAvgPool2d(output_size)(torch.from_numpy(x).permute(0, 3, 1, 2))
    return pooled.permute(0, 2, 3, 1).numpy()


@pytest.mark.torch
@pytest.mark.parametrize("side", [1, 2, 4, 5, 6, 7, 13])
@pytest.mark.slow
def test_adaptive_pool_matches_torch(side, rng):
    x = rng.normal(0.0, 1.0, (2, side, side + 1, 3)).astype("float32")
    layer = AdaptiveAveragePooling2DTorch(6)
    np.testing.assert_allclose(to_numpy(layer(x)), _adaptive_reference(x, 6), rtol=1e-6, atol=1e-6)


def test_adaptive_pool_saves_and_rejects_bad_arguments(tmp_path, rng):
    inputs = keras.Input((5, 9, 2))
    model = keras.Model(inputs, AdaptiveAveragePooling2DTorch((3, 4), name="pool")(inputs))
    model.save(tmp_path / "pool.keras")
    loaded = keras.models.load_model(tmp_path / "pool.keras", safe_mode=True)
    x = rng.normal(0.0, 1.0, (1, 5, 9, 2)).astype("float32")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    assert loaded.output_shape == (None, 3, 4, 2)
    with pytest.raises(ValueError, match="^output_size:"):
        AdaptiveAveragePooling2DTorch(0)
    with pytest.raises(ValueError, match="^inputs:"):
        AdaptiveAveragePooling2DTorch(6)(keras.Input((None, None, 3)))


def _randomized_torchvision_alexnet(seed):
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.alexnet(weights=None)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:  # biases: random, so a misplaced one shows
                parameter.normal_(0.0, 0.1)
    return model.eval()


@pytest.mark.torch
@pytest.mark.slow
def test_torchvision_parity_through_a_checkpoint_file(tmp_path, rng):
    import torch
    from safetensors.torch import save_file

    reference = _randomized_torchvision_alexnet(seed=3)
    assert sum(p.numel() for p in reference.parameters()) == TORCHVISION_TOTAL
    checkpoint = tmp_path / "alexnet.safetensors"
    save_file(reference.state_dict(), str(checkpoint))
    output = convert.convert_checkpoint("alexnet_tv", checkpoint, tmp_path / "alexnet_tv.weights.h5")

    # 224 (and 227): pool5 is 6x6 and the adaptive pool is the identity;
    # 100: pool5 is 2x2 and PyTorch repeats each cell three times.
    converted = AlexNetTV(weights=str(output), classifier_activation=None)
    for side in (224, 100):
        model = AlexNetTV(input_shape=(side, side, 3), classifier_activation=None)
        model.set_weights(converted.get_weights())
        assert model.count_params() == TORCHVISION_TOTAL
        x = rng.normal(0.0, 1.0, (2, side, side, 3)).astype("float32")
        with torch.no_grad():
            expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
        assert_parity(to_numpy(model(x, training=False)), expected, f"alexnet_tv at {side}")

    # Without the top every classifier tensor is left unused; the features match.
    trunk = AlexNetTV(include_top=False, input_shape=(224, 224, 3))
    convert.convert_into(trunk, {k: v.numpy() for k, v in reference.state_dict().items()}, "alexnet_tv")
    x = rng.normal(0.0, 1.0, (1, 224, 224, 3)).astype("float32")
    with torch.no_grad():
        expected = reference.features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert _relative(to_numpy(trunk(x)), expected.transpose(0, 2, 3, 1)) <= 1e-4


def test_torchvision_form_layout():
    model = AlexNetTV(include_top=False, input_shape=(224, 224, 3))
    assert model.count_params() == 2_469_696  # torchvision's features
    narrow = AlexNetTV(filters=(8, 16, 16, 16, 16), fc_units=16, input_shape=(63, 63, 3), classes=10)
    assert narrow.get_layer("fc6").kernel.shape == (6 * 6 * 16, 16)  # the adaptive pool's 6x6 at any input
    assert not any(isinstance(layer, (LocalResponseNormalization, GroupedConv2D)) for layer in model.layers)
    assert model.output_shape == (None, 6, 6, 256)


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(filters=(96, 256, 384, 384)), ValueError, "^filters:"),
        (dict(filters=(96, 256, 384, 384, 0)), ValueError, "^filters:"),
        (dict(groups=0), ValueError, "^groups:"),
        (dict(groups=5), ValueError, "^groups:"),
        (dict(local_response_normalization=1), TypeError, "^local_response_normalization:"),
        (dict(dropout_rate=1.0), ValueError, "^dropout_rate:"),
        (dict(fc_units=0), ValueError, "^fc_units:"),
        (dict(paper_initialization="yes"), TypeError, "^paper_initialization:"),
        (dict(input_shape=(66, 66, 3)), ValueError, "at least 67"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        AlexNet(**kwargs)


def test_bad_torchvision_arguments():
    with pytest.raises(ValueError, match="^dropout_rate:"):
        AlexNetTV(dropout_rate=-0.1)
    with pytest.raises(ValueError, match="^filters:"):
        AlexNetTV(filters=(64, 192))
    with pytest.raises(ValueError, match="^fc_units:"):
        AlexNetTV(fc_units=True)
    with pytest.raises(ValueError, match="at least 63"):
        AlexNetTV(input_shape=(62, 62, 3))
    assert ku.create_model("alexnet_tv", include_top=False).input_shape == (None, None, None, 3)


@pytest.mark.torch
def test_convert_checkpoint_takes_classes_from_the_renamed_classifier(tmp_path):
    import safetensors.numpy

    from keras_ultradeep.convert import convert_checkpoint

    narrow = AlexNetTV(filters=(8, 16, 16, 16, 16), fc_units=16, input_shape=(63, 63, 3), classes=7)
    state = {}
    from keras_ultradeep.convert import alexnet_tv

    for layer in narrow.layers:
        module = alexnet_tv.torch_module(layer.name)
        if module is None or not layer.weights:
            continue
        kernel, bias = (w.numpy() for w in layer.weights)
        weight = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
        state[f"{module}.weight"], state[f"{module}.bias"] = weight.copy(), bias
    checkpoint = tmp_path / "narrow.safetensors"
    safetensors.numpy.save_file(state, str(checkpoint))
    output = convert_checkpoint(
        "alexnet_tv", checkpoint, tmp_path / "narrow.weights.h5",
        filters=(8, 16, 16, 16, 16), fc_units=16, input_shape=(63, 63, 3),
    )
    rebuilt = AlexNetTV(filters=(8, 16, 16, 16, 16), fc_units=16, input_shape=(63, 63, 3), classes=7)
    rebuilt.load_weights(output)  # 7 classes came from the checkpoint
    assert rebuilt.output_shape == (None, 7)
