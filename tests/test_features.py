"""Stage outputs as a dict from one call (timm's features_only)."""



import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402
from keras_ultradeep import registry  # noqa: E402
from keras_ultradeep.features import stage_layers  # noqa: E402
from families import check_declared_stages  # noqa: E402


def _shapes(extractor):
    return {key: tuple(tensor.shape) for key, tensor in extractor.output.items()}


@pytest.mark.slow
def test_resnet_stage_outputs(rng):
    extractor = ku.feature_extractor("resnet50", input_shape=(64, 64, 3))
    assert _shapes(extractor) == {
        "stage1_s4": (None, 16, 16, 256),
        "stage2_s8": (None, 8, 8, 512),
        "stage3_s16": (None, 4, 4, 1024),
        "stage4_s32": (None, 2, 2, 2048),
    }
    x = rng.normal(0, 1, (2, 64, 64, 3)).astype("float32")
    features = extractor(x, training=False)
    assert sorted(features) == ["stage1_s4", "stage2_s8", "stage3_s16", "stage4_s32"]
    # The last stage is what the backbone itself returns.
    backbone = keras.Model(extractor.input, extractor.get_layer("conv5_block3_out").output)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(features["stage4_s32"]),
        keras.ops.convert_to_numpy(backbone(x, training=False)),
    )


@pytest.mark.slow
def test_dynamic_input_and_other_families():
    extractor = ku.feature_extractor("resnet20_cifar")  # input (None, None, 3)
    assert list(_shapes(extractor)) == ["stage1_s1", "stage2_s2", "stage3_s4"]
    preact = ku.feature_extractor("preact_resnet164_cifar", input_shape=(32, 32, 3))
    assert preact.output["stage3_s4"] is preact.get_layer("post_relu").output
    assert _shapes(preact)["stage3_s4"] == (None, 8, 8, 256)
    dense = ku.feature_extractor("densenet121", weights=None, input_shape=(64, 64, 3))
    assert _shapes(dense)["stage4_s32"] == (None, 2, 2, 1024)


def test_layer_names_and_errors():
    model = ku.create_model("resnet18", weights=None, include_top=False, input_shape=(32, 32, 3))
    chosen = ku.feature_extractor(model, ["conv1_relu", "conv3_block2_out"])
    assert _shapes(chosen) == {"conv1_relu": (None, 16, 16, 64), "conv3_block2_out": (None, 4, 4, 128)}
    with pytest.raises(ValueError, match="layer_names: no layer 'conv9_block1_out'"):
        ku.feature_extractor(model, ["conv9_block1_out"])
    with pytest.raises(TypeError, match="layer_names: expected a list of layer names"):
        ku.feature_extractor(model, "conv1_relu")
    with pytest.raises(ValueError, match="model_kwargs: include_top cannot be set"):
        ku.feature_extractor("resnet18", include_top=True)
    with pytest.raises(TypeError, match="model: expected a keras.Model or a registry name"):
        ku.feature_extractor(42)
    with pytest.raises(TypeError, match="registry_name: expected a registry name string"):
        ku.feature_extractor(model, registry_name=18)
    with pytest.raises(TypeError, match="registry_name: only for a built model"):
        ku.feature_extractor("resnet18", registry_name="resnet18")


def test_a_model_is_matched_to_its_registry_entry_by_name():
    model = ku.create_model("resnet18", weights=None, include_top=False, input_shape=(32, 32, 3))
    assert [name for _, name in stage_layers(model)] == [
        "conv2_block2_out", "conv3_block2_out", "conv4_block2_out", "conv5_block2_out"
    ]
    renamed = keras.Model(model.inputs, model.outputs, name="my_backbone")
    with pytest.raises(ValueError, match="model: 'my_backbone' is not a registered model name.*registry_name"):
        ku.feature_extractor(renamed)
    extractor = ku.feature_extractor(renamed, registry_name="resnet18")
    assert list(extractor.output) == ["stage1_s4", "stage2_s8", "stage3_s16", "stage4_s32"]
    # The builder's name is a registry name too.
    assert list(ku.feature_extractor(renamed, registry_name="ResNet18").output) == list(extractor.output)
    # A registry name whose declared stages the model lacks is refused, not guessed around.
    with pytest.raises(ValueError, match="registry_name: 'resnet50' declares stage layer 'conv2_block3_out'"):
        ku.feature_extractor(renamed, registry_name="resnet50")
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)], name="plain")
    with pytest.raises(ValueError, match="model: 'plain' is not a registered model name"):
        ku.feature_extractor(plain)


def test_a_family_without_stages_keeps_refusing():
    with pytest.raises(ValueError, match="model: the 'nin' family of 'nin_cifar' declares no feature stages"):
        ku.feature_extractor("nin_cifar")
    nin = ku.create_model("nin_cifar", include_top=False)
    with pytest.raises(ValueError, match="declares no feature stages; pass layer_names"):
        ku.feature_extractor(nin)


def _check_declared_stages(name):
    entry = registry.model_entry(name)
    channels = 1 if entry.family == "lenet" else 3
    model = entry.build(
        include_top=False, weights=None, input_shape=(entry.min_size, entry.min_size, channels)
    )
    check_declared_stages(name, model)


_DECLARED = [n for n in registry.list_models() if registry.declares_stages(n)]
# One model of each way of naming stages: blocks, CIFAR depths, strides from
# the configuration, pools, stated reductions, dilation.
_SAMPLE = ["resnet18", "resnet20_cifar", "cspdarknet53", "vgg11", "inception_v3", "drn_d_22"]


@pytest.mark.parametrize("name", _SAMPLE)
@pytest.mark.slow
def test_declared_stages_sample(name):
    _check_declared_stages(name)


# Every other registered model's declared stages are checked on the model
# test_contract.py builds at its default input (families.check_declared_stages).
def test_the_sample_and_the_contract_cover_every_declaring_model():
    assert set(_SAMPLE) <= set(_DECLARED)
    assert len(_DECLARED) > 60


@pytest.mark.torch
@pytest.mark.slow
def test_matches_timm_features_only(rng):
    import torch

    from test_resnet import _randomized_timm

    from keras_ultradeep import convert

    reference = _randomized_timm("resnet50", seed=3)
    import timm

    features_only = timm.create_model("resnet50", features_only=True, out_indices=(1, 2, 3, 4))
    features_only.load_state_dict(
        {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    )
    features_only.eval()
    model = ku.create_model("resnet50", weights=None, include_top=False, input_shape=(64, 64, 3))
    state = {k: v.numpy() for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    convert.convert_into(model, state, "resnet")
    extractor = ku.feature_extractor(model)
    x = rng.normal(0, 1, (1, 64, 64, 3)).astype("float32")
    with torch.no_grad():
        expected = features_only(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    ours = extractor(x, training=False)
    for key, theirs in zip(ours, expected):
        theirs = theirs.numpy().transpose(0, 2, 3, 1)
        scale = max(1.0, float(np.abs(theirs).max()))
        assert float(np.abs(keras.ops.convert_to_numpy(ours[key]) - theirs).max()) / scale <= 1e-4, key
