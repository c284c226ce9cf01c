"""Dual Path Networks: timm parity and parameter counts, structure, features,
checkpoint conversion, preprocessing and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""



import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402
from keras_ultradeep import convert  # noqa: E402
from keras_ultradeep.layers import ChannelSplit  # noqa: E402

import reference_counts  # noqa: E402
from timm_models import randomized_timm  # noqa: E402
from timm_models import assert_parity, nchw as _nchw, relative as _relative  # noqa: E402

pytestmark = pytest.mark.slow  # every test here runs models end to end (seconds to minutes)

SMALL = (64, 64, 3)
TIMM_MODELS = ["dpn68", "dpn68b", "dpn92", "dpn98", "dpn107", "dpn131"]



_randomized_timm = randomized_timm


# --------------------------------------------------------------------------- timm


# timm parity and parameter counts of every DPN: test_timm_parity.py, one table.


def test_published_counts():
    # timm's parameter counts (the papers: DPN-68 12.6M, DPN-92 37.7M, ...).
    assert reference_counts.TRAINABLE["dpn92"] == 37_668_392
    assert reference_counts.TRAINABLE["dpn68"] == 12_611_602


@pytest.mark.torch
def test_checkpoint_file_converts_and_features_match_timm(tmp_path, rng):
    import torch
    from safetensors.torch import save_file

    reference = _randomized_timm("dpn68", seed=10)
    checkpoint = tmp_path / "dpn68.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(checkpoint))
    output = convert.convert_checkpoint("dpn68", checkpoint, tmp_path / "dpn68.weights.h5", input_shape=SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dpn68.safetensors", "dpn68.weights.h5"]

    model = ku.DPN68(weights=str(output), input_shape=SMALL, classifier_activation=None)
    x = rng.normal(0.0, 1.0, (2,) + SMALL).astype("float32")
    with torch.no_grad():
        logits = reference(_nchw(x)).numpy()
        stages = reference.forward_intermediates(
            _nchw(x), indices=[1, 2, 3, 4], norm=True, intermediates_only=True
        )
    assert_parity(keras.ops.convert_to_numpy(model(x, training=False)), logits, "dpn68 from its checkpoint file")

    # The stage outputs (the last after post_bn/post_relu) are timm's intermediates.
    extractor = ku.feature_extractor(ku.DPN68(weights=str(output), include_top=False, input_shape=SMALL))
    features = extractor(x, training=False)
    assert list(features) == ["stage1_s4", "stage2_s8", "stage3_s16", "stage4_s32"]
    for ours, theirs in zip(features.values(), stages):
        theirs = theirs.numpy().transpose(0, 2, 3, 1)
        assert _relative(keras.ops.convert_to_numpy(ours), theirs) <= 1e-4


@pytest.mark.torch
def test_b_checkpoint_does_not_fit_the_plain_model():
    reference = _randomized_timm("dpn68b", seed=0)
    model = ku.DPN68(input_shape=SMALL)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="does not fit model 'dpn68'"):
        convert.convert_into(model, {k: v.numpy() for k, v in reference.state_dict().items()}, "dpn")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# ---------------------------------------------------------------------- structure


def test_structure_of_the_dual_path_block():
    model = ku.DPN68b(input_shape=SMALL)
    # Stem: a 3x3/2 conv (small), BN-ReLU, then a 3x3/2 max-pool padded with zeros after the ReLU.
    assert model.get_layer("conv1_conv").kernel_size == (3, 3)
    assert model.get_layer("conv1_conv").strides == (2, 2)
    assert model.get_layer("pool1_pool").pool_size == (3, 3)
    # First stage: a stride-1 projection to bw + 2 inc = 64 + 32 maps.
    assert model.get_layer("conv2_block1_0_conv").filters == 96
    assert model.get_layer("conv2_block1_2_conv").strides == (1, 1)
    # Later stages: the projection and the grouped 3x3 stride; the 3x3 pads symmetrically.
    assert model.get_layer("conv3_block1_0_conv").strides == (2, 2)
    grouped = model.get_layer("conv3_block1_2_conv")
    assert grouped.strides == (2, 2) and grouped.groups == 32 and grouped.padding == "valid"
    assert model.get_layer("conv3_block1_2_pad").padding == ((1, 1), (1, 1))
    # b: the last 1x1 is two convs behind one BN-ReLU.
    assert model.get_layer("conv3_block2_3_res_conv").filters == 128
    assert model.get_layer("conv3_block2_3_dense_conv").filters == 32
    # Normal blocks split their input, projections their projection.
    assert model.get_layer("conv3_block2_0_split").input is model.get_layer("conv3_block1_out").output
    with pytest.raises(ValueError):
        model.get_layer("conv3_block2_0_conv")
    assert model.get_layer("conv3_block2_out").output.shape[-1] == 128 + 3 * 32 + 32
    assert not any(
        getattr(layer, "use_bias", False) for layer in model.layers if layer.name != "predictions"
    )
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert {layer.epsilon for layer in norms} == {1e-3}
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)

    plain = ku.DPN92(include_top=False, input_shape=SMALL)
    assert plain.get_layer("conv1_conv").kernel_size == (7, 7)
    assert plain.get_layer("conv1_pad").padding == ((3, 3), (3, 3))
    assert plain.get_layer("conv2_block3_3_conv").filters == 256 + 16  # bw + inc, split after
    assert plain.get_layer("conv2_block3_3_split")
    assert plain.layers[-1].name == "post_relu"
    assert plain.output_shape == (None, 2, 2, 2048 + 3 * 128 + 2 * 128)


def test_no_top_shapes_and_pooling(rng):
    x = rng.uniform(0, 1, (1,) + SMALL).astype("float32")
    fmap = ku.DPN68(include_top=False)
    assert fmap.output_shape == (None, None, None, 832)  # 512 + 3 * 64 + 2 * 64
    maps = keras.ops.convert_to_numpy(fmap(x, training=False))
    assert maps.shape == (1, 2, 2, 832)
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        pooled = ku.DPN68(include_top=False, pooling=pooling)
        pooled.set_weights(fmap.get_weights())
        assert pooled.output_shape == (None, 832)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(pooled(x, training=False)), reduce(maps, axis=(1, 2)),
            rtol=1e-5, atol=1e-5,
        )
    top = ku.DPN68(classes=10, input_shape=(32, 32, 3))
    assert top.output_shape == (None, 10) and top.get_layer("predictions").kernel.shape == (832, 10)


def test_feature_extractor_stages():
    extractor = ku.feature_extractor("dpn92", input_shape=SMALL)
    shapes = {key: tuple(t.shape) for key, t in extractor.output.items()}
    assert shapes == {
        "stage1_s4": (None, 16, 16, 256 + 3 * 16 + 2 * 16),
        "stage2_s8": (None, 8, 8, 512 + 3 * 32 + 3 * 32),
        "stage3_s16": (None, 4, 4, 1024 + 3 * 24 + 19 * 24),
        "stage4_s32": (None, 2, 2, 2048 + 3 * 128 + 2 * 128),
    }


def test_family_builder_and_variant_names():
    positional = ku.DPN((3, 4, 12, 3), (16, 32, 32, 64), 128, 32, 10, True, True, input_shape=(32, 32, 3))
    assert positional.name == "dpn"
    tiny = ku.DPN((1, 1, 1, 1), (4, 4, 4, 4), k_r=8, groups=4, num_init_features=8, small=True,
                  include_top=False, pooling="avg", input_shape=(32, 32, 3))
    assert tiny.output_shape == (None, 512 + 3 * 4)
    assert {n for n in ku.list_models() if n.startswith("dpn")} == set(TIMM_MODELS)
    with pytest.raises(TypeError, match="k_sec: dpn92 fixes it"):
        ku.DPN92(k_sec=(1, 1, 1, 1))


def test_channel_split_layer():
    layer = ChannelSplit(2, name="split")
    first, rest = layer(np.arange(5, dtype="float32").reshape(1, 1, 1, 5))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first).ravel(), [0, 1])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rest).ravel(), [2, 3, 4])
    assert ChannelSplit.from_config(layer.get_config()).channels == 2
    with pytest.raises(ValueError, match="channels: expected a positive integer"):
        ChannelSplit(0)


# ------------------------------------------------------------------ preprocessing


def test_preprocess_input_is_timms_dpn_normalization():
    timm_data = pytest.importorskip("timm.data")
    pixels = np.array([[[[0.0, 117.0, 255.0], [124.0, 0.0, 104.0]]]], "float32")
    mean = np.asarray(timm_data.IMAGENET_DPN_MEAN)
    std = np.asarray(timm_data.IMAGENET_DPN_STD)
    expected = (pixels / 255.0 - mean) / std
    got = ku.dpn.preprocess_input(pixels.copy())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ku.dpn.preprocess_input(keras.ops.array(pixels))),
                               expected, rtol=1e-5, atol=1e-5)
    first = ku.dpn.preprocess_input(
        pixels.transpose(0, 3, 1, 2).astype("uint8"), data_format="channels_first"
    )
    assert first.dtype == np.float32
    np.testing.assert_allclose(first, expected.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
    # dpn68b.ra_in1k was trained with ImageNet's mean and std: mode "torch".
    torch_mode = ku.dpn.preprocess_input(pixels.copy(), mode="torch")
    np.testing.assert_allclose(torch_mode, (pixels / 255.0 - timm_data.IMAGENET_DEFAULT_MEAN)
                               / timm_data.IMAGENET_DEFAULT_STD, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="mode: expected one of"):
        ku.dpn.preprocess_input(pixels, mode="mxnet")
    assert ku.dpn.decode_predictions is ku.resnet.decode_predictions


# ---------------------------------------------------------------------- bad knobs


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(k_sec=(3, 4, 12)), ValueError, "k_sec: expected 4 positive block counts"),
        (dict(k_sec=(3, 0, 12, 3)), ValueError, "k_sec: expected 4 positive block counts"),
        (dict(k_sec="3,4,12,3"), ValueError, "k_sec: expected 4 positive block counts"),
        (dict(inc_sec=(16, 32, 32, -1)), ValueError, "inc_sec: expected 4 positive"),
        (dict(inc_sec=(16, 32, 32, 6.5)), ValueError, "inc_sec: expected 4 positive"),
        (dict(k_r=0), ValueError, "k_r: expected a positive integer"),
        (dict(k_r=100), ValueError, "k_r: the first stage's 3x3 has k_r = 100 maps"),
        (dict(groups=True), ValueError, "groups: expected a positive integer"),
        (dict(num_init_features=0), ValueError, "num_init_features: expected a positive integer"),
        (dict(small=1), TypeError, "small: expected True or False"),
        (dict(b="yes"), TypeError, "b: expected True or False"),
        (dict(batch_norm_epsilon=0.0), ValueError, "batch_norm_epsilon: expected a positive number"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    knobs = dict(k_sec=(3, 4, 12, 3), inc_sec=(16, 32, 32, 64), k_r=128, groups=32, small=True)
    with pytest.raises(error, match=message):
        ku.DPN(**{**knobs, **kwargs})
