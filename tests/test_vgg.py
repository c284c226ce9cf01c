"""VGG: keras.applications weights compatibility, timm parity, parameter counts
(torchvision/Keras exact, the paper's Table 2), structure, stage outputs and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py. VGG at 224x224 with the top has ~138M parameters:
only the tests that need 224 build there, one big model (two with timm's) at a time.
"""



import gc  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402
from keras_ultradeep import convert  # noqa: E402
from keras_ultradeep.convert import vgg as vgg_convert  # noqa: E402
from keras_ultradeep.convert.common import plan_assignment  # noqa: E402
from keras_ultradeep.layers import LocalResponseNormalization  # noqa: E402
from keras_ultradeep.models import vgg  # noqa: E402

from timm_models import randomized_timm  # noqa: E402
from timm_models import assert_parity, nchw as _nchw, relative as _relative  # noqa: E402

SMALL = (32, 32, 3)
FULL = (224, 224, 3)
# fc1 (7x7x512 -> 4096), fc2 and a 1000-class classifier, with biases.
HEAD_224 = 7 * 7 * 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
# torchvision's documented counts; keras.applications' VGG16/VGG19 totals are the same (no BN).
PUBLISHED = {
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}
# The paper's Table 2, millions (A-LRN is A plus a parameter-free LRN).
TABLE_2 = {"vgg11": 133, "vgg11_lrn": 133, "vgg13": 133, "vgg16_c": 134, "vgg16": 138, "vgg19": 144}



def _randomize_conv_biases(model, seed):
    """timm zeroes conv biases at init; random ones make a misplaced bias show."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model


def _timm_features(name, seed):
    """timm's model with every BN tensor and conv bias random; its ConvMlp
    head shrunk (mlp_ratio), which forward_features never uses."""
    import torch
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=0, mlp_ratio=1 / 64)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return _randomize_conv_biases(model, seed).eval()


# ------------------------------------------------------------------ keras.applications


@pytest.mark.parametrize("ours, theirs", [("VGG16", "VGG16"), ("VGG19", "VGG19")])
@pytest.mark.slow
def test_keras_applications_weights_files_load_unchanged(ours, theirs, tmp_path, rng):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    application = getattr(keras.applications, theirs)
    reference = application(weights=None, input_shape=SMALL, classifier_activation=None)
    # He-scaled kernels keep the input's signal through 16-19 layers; random biases.
    scales = [np.sqrt(2.0 / np.prod(w.shape[:-1])) if w.ndim > 1 else 0.1 for w in reference.get_weights()]
    reference.set_weights(
        [rng.normal(0.0, scale, w.shape).astype("float32") for scale, w in zip(scales, reference.get_weights())]
    )
    new_format = tmp_path / "reference.weights.h5"
    reference.save_weights(new_format)
    # The published vgg16_weights_tf_dim_ordering_tf_kernels.h5 are legacy weights-only files.
    legacy = tmp_path / "reference.h5"
    with h5py.File(legacy, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)

    x = rng.normal(0.0, 1.0, (2,) + SMALL).astype("float32")
    expected = keras.ops.convert_to_numpy(reference(x))
    assert np.abs(expected[0] - expected[1]).max() > 1e-2  # the input shows in the logits
    weighted = [layer.name for layer in reference.layers if layer.weights]
    for path in (new_format, legacy):
        model = getattr(vgg, ours)(weights=str(path), input_shape=SMALL, classifier_activation=None)
        assert [layer.name for layer in model.layers if layer.weights] == weighted
        named = {layer.name for layer in reference.layers if not isinstance(layer, keras.layers.InputLayer)}
        assert named <= {layer.name for layer in model.layers}
        got = keras.ops.convert_to_numpy(model(x, training=False))
        assert float(np.abs(got - expected).max()) <= 1e-5
    # Without the top: keras.applications' no-top model's weights, the same feature map.
    no_top = application(weights=None, include_top=False, input_shape=SMALL)
    no_top.set_weights(reference.get_weights()[: len(no_top.get_weights())])
    path = tmp_path / "no_top.weights.h5"
    no_top.save_weights(path)
    ours_no_top = getattr(vgg, ours)(weights=str(path), include_top=False, input_shape=SMALL)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours_no_top(x, training=False)), keras.ops.convert_to_numpy(no_top(x)),
        rtol=1e-5, atol=1e-5,
    )


# ------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("name", ["vgg16_keras", "vgg19_keras"])
@pytest.mark.slow
def test_full_size_counts_equal_keras_applications(trainable, name):
    model = ku.create_model(name, weights=None)
    assert model.input_shape == (None, 224, 224, 3)
    assert model.count_params() == trainable(model) == PUBLISHED[name.removesuffix("_keras")]
    assert model.get_layer("fc1").kernel.shape == (7 * 7 * 512, 4096)
    del model
    gc.collect()


@pytest.mark.slow
def test_counts_of_every_configuration(trainable):
    # The features' count does not depend on the input size; the 224 head is HEAD_224.
    for name in ku.list_models("vgg*"):
        features = ku.create_model(name, weights=None, include_top=False, input_shape=SMALL)
        count = trainable(features) + HEAD_224
        if name in PUBLISHED:
            assert count == PUBLISHED[name], name
        if name in TABLE_2:
            assert round(count / 1e6) == TABLE_2[name], name
    configuration_c = ku.create_model("vgg16_c", weights=None, include_top=False, input_shape=SMALL)
    assert trainable(configuration_c) + HEAD_224 == 133_638_952


# --------------------------------------------------------------------------- timm


@pytest.mark.torch
@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn"])
@pytest.mark.slow
def test_timm_parity_at_224(trainable, name, rng):
    """timm's ConvMlp head (a 7x7 conv over the 7x7 map) is our flatten + fc1 at 224."""
    import torch

    reference = _randomize_conv_biases(randomized_timm(name, seed=3), seed=3)
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    model = ku.create_model(name, weights=None, input_shape=FULL, classifier_activation=None)
    convert.convert_into(model, vgg_convert.prepare_state_dict(state), "vgg")
    trainable = trainable(model)
    assert trainable == sum(p.numel() for p in reference.parameters()) == PUBLISHED[name]

    x = rng.normal(0.0, 1.0, (1,) + FULL).astype("float32")
    with torch.no_grad():
        expected = reference(_nchw(x)).numpy()
    del reference
    got = keras.ops.convert_to_numpy(model(x, training=False))
    relative = _relative(got, expected)
    print(f"\nparity {name} at 224: {relative:.2e} (trainable {trainable:,})")
    assert relative <= 1e-4

    if name != "vgg11":
        return
    # torchvision's layout of the same tensors: Linear classifier.0/3/6, fc1 flattened channels-first.
    torchvision_state = {}
    for key, value in state.items():
        key = key.replace("pre_logits.fc1", "classifier.0").replace("pre_logits.fc2", "classifier.3")
        key = key.replace("head.fc", "classifier.6")
        if key.startswith("classifier.") and value.ndim == 4:
            value = value.reshape(value.shape[0], -1)
        torchvision_state[key] = value
    plan = plan_assignment(model, vgg_convert.prepare_state_dict(torchvision_state), vgg_convert)
    assert len(plan) == len(model.weights)
    assert all(np.array_equal(value, keras.ops.convert_to_numpy(variable)) for variable, value in plan)
    del model
    gc.collect()


@pytest.mark.torch
@pytest.mark.parametrize("name", ["vgg13", "vgg16", "vgg19", "vgg13_bn", "vgg16_bn", "vgg19_bn"])
def test_timm_feature_parity(trainable, name, rng):
    import torch

    reference = _timm_features(name, seed=len(name))
    state = {k: v.numpy() for k, v in reference.state_dict().items() if k.startswith("features.")}
    model = ku.create_model(name, weights=None, include_top=False, input_shape=SMALL)
    convert.convert_into(model, vgg_convert.prepare_state_dict(state), "vgg")
    assert trainable(model) == sum(p.numel() for p in reference.features.parameters())

    x = rng.normal(0.0, 1.0, (2,) + SMALL).astype("float32")
    with torch.no_grad():
        expected = reference.forward_features(_nchw(x)).numpy().transpose(0, 2, 3, 1)
        stages = reference.forward_intermediates(_nchw(x), indices=[0, 1, 2, 3, 4], intermediates_only=True)
    assert_parity(keras.ops.convert_to_numpy(model(x, training=False)), expected, f"{name} features")
    # timm's intermediates are the stages before their pools: our last conv (its ReLU) of each stage.
    convs = {}
    for layer in model.layers:
        if layer.name.startswith("block") and "_conv" in layer.name and not layer.name.endswith("_bn"):
            convs[layer.name.split("_")[0]] = layer.name
    extractor = ku.feature_extractor(model, layer_names=list(convs.values()))
    for ours, theirs in zip(extractor(x, training=False).values(), stages):
        theirs = theirs.numpy().transpose(0, 2, 3, 1)
        assert _relative(keras.ops.convert_to_numpy(ours), theirs) <= 1e-4


def test_prepare_state_dict_renames_by_position():
    def flat(indices, bn):
        state = {}
        for i in indices:
            state[f"features.{i}.weight"] = np.zeros((1, 1, 3, 3))
            state[f"features.{i}.bias"] = np.zeros(1)
            if bn:
                for part in ("weight", "bias", "running_mean", "running_var"):
                    state[f"features.{i + 1}.{part}"] = np.zeros(1)
        return state

    # vgg11: conv, relu, pool between stages; vgg13_bn: conv, bn, relu.
    vgg11 = vgg_convert.prepare_state_dict(flat([0, 3, 6, 8, 11, 13, 16, 18], bn=False) | {"head.fc.bias": 0})
    assert sorted(k.split(".")[0] for k in vgg11 if k.endswith("weight")) == sorted(
        ["block1_conv1", "block2_conv1", "block3_conv1", "block3_conv2",
         "block4_conv1", "block4_conv2", "block5_conv1", "block5_conv2"]
    )
    assert vgg11["head.fc.bias"] == 0
    vgg13_bn = vgg_convert.prepare_state_dict(flat([0, 3, 7, 10, 14, 17, 21, 24, 28, 31], bn=True))
    assert "block2_conv2_bn.running_var" in vgg13_bn and "block5_conv2.weight" in vgg13_bn
    assert vgg_convert.prepare_state_dict(vgg13_bn) == vgg13_bn  # idempotent
    with pytest.raises(ValueError, match="state_dict: features.0 and features.5 are 5 apart"):
        vgg_convert.prepare_state_dict(flat([0, 5], bn=False))
    assert vgg_convert.torch_module("block3_conv2_bn") == "block3_conv2_bn"
    assert vgg_convert.torch_module("fc1") == "pre_logits.fc1"
    assert vgg_convert.torch_module("block1_pool") is None


@pytest.mark.torch
def test_bn_checkpoint_does_not_fit_the_plain_model():
    reference = _timm_features("vgg11_bn", seed=0)
    state = {k: v.numpy() for k, v in reference.state_dict().items() if k.startswith("features.")}
    model = ku.create_model("vgg11", weights=None, include_top=False, input_shape=SMALL)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="does not fit model 'vgg11'"):
        convert.convert_into(model, vgg_convert.prepare_state_dict(state), "vgg")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# ---------------------------------------------------------------------- structure


def test_configurations_follow_table_1():
    kernels = {}
    for name in ("vgg11", "vgg13", "vgg16_c", "vgg16", "vgg19"):
        model = ku.create_model(name, weights=None, include_top=False, input_shape=SMALL)
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        kernels[name] = [
            [c.kernel_size[0] for c in convs if c.name.startswith(f"block{s}_")] for s in range(1, 6)
        ]
        widths = {c.name.split("_")[0]: c.filters for c in convs}
        assert widths == dict(block1=64, block2=128, block3=256, block4=512, block5=512)
        assert all(c.padding == "same" and c.strides == (1, 1) and c.use_bias for c in convs)
        assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)] == [
            f"block{s}_pool" for s in range(1, 6)
        ]
        assert model.output_shape == (None, 1, 1, 512)
    assert kernels == {
        "vgg11": [[3], [3], [3, 3], [3, 3], [3, 3]],
        "vgg13": [[3, 3]] * 5,
        "vgg16_c": [[3, 3], [3, 3], [3, 3, 1], [3, 3, 1], [3, 3, 1]],
        "vgg16": [[3, 3], [3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
        "vgg19": [[3, 3], [3, 3], [3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3]],
    }


def test_head_dropout_and_knobs():
    model = ku.create_model("vgg11", weights=None, input_shape=SMALL, classes=10)
    names = [layer.name for layer in model.layers]
    assert names[-6:] == ["flatten", "fc1", "fc1_drop", "fc2", "fc2_drop", "predictions"]
    assert {model.get_layer(n).rate for n in ("fc1_drop", "fc2_drop")} == {0.5}
    assert model.get_layer("fc1").activation is keras.activations.relu
    assert model.get_layer("predictions").kernel.shape == (4096, 10)
    slim = vgg.VGG(config="A", dropout_rate=0.0, fc_units=256, input_shape=SMALL, classes=10)
    assert slim.name == "vgg"
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in slim.layers)
    assert slim.get_layer("fc2").kernel.shape == (256, 256)
    custom = vgg.VGG(config=((3,), (3,), (3,), (3,), (1,)), include_top=False, input_shape=SMALL)
    assert custom.get_layer("block5_conv1").kernel_size == (1, 1)
    # The family builder recognises a registered configuration (for its weights).
    assert vgg.VGG(config="E", include_top=False, input_shape=SMALL, name="x").get_layer("block5_conv4")


def test_batch_norm_forms_are_conv_bn_relu():
    model = ku.create_model("vgg16_bn", weights=None, include_top=False, input_shape=SMALL)
    conv, norm, relu = (model.get_layer(f"block3_conv3{s}") for s in ("", "_bn", "_relu"))
    assert conv.use_bias and conv.activation is keras.activations.linear
    assert norm.input is conv.output and relu.input is norm.output
    assert model.get_layer("block3_pool").input is relu.output
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 13 and {layer.epsilon for layer in norms} == {1e-5}
    # keras.applications' names: the BN forms keep block{s}_conv{n} for the convs.
    plain = ku.create_model("vgg16", weights=None, include_top=False, input_shape=SMALL)
    assert {layer.name for layer in plain.layers if layer.weights} <= {layer.name for layer in model.layers}


def test_a_lrn_normalizes_after_the_first_conv(rng):
    lrn_model = ku.create_model("vgg11_lrn", input_shape=SMALL, classifier_activation=None)
    plain = ku.create_model("vgg11", weights=None, input_shape=SMALL, classifier_activation=None)
    lrn = lrn_model.get_layer("block1_lrn")
    assert isinstance(lrn, LocalResponseNormalization)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)
    assert lrn.input is lrn_model.get_layer("block1_conv1").output
    assert lrn_model.get_layer("block1_pool").input is lrn.output
    assert lrn_model.count_params() == plain.count_params()

    lrn_model.set_weights(plain.get_weights())
    probe = keras.Model(lrn_model.input, [lrn_model.get_layer("block1_conv1").output, lrn.output])
    x = rng.uniform(0.0, 255.0, (1,) + SMALL).astype("float32")
    a, b = (keras.ops.convert_to_numpy(t) for t in probe(x))
    squares = np.pad(a**2, ((0, 0), (0, 0), (0, 0), (2, 2)))
    window = sum(squares[..., i : i + a.shape[-1]] for i in range(5))
    np.testing.assert_allclose(b, a / (2.0 + 1e-4 * window) ** 0.75, rtol=1e-5, atol=1e-6)
    assert not np.allclose(
        keras.ops.convert_to_numpy(lrn_model(x)), keras.ops.convert_to_numpy(plain(x))
    )


def test_pooling_stage_outputs(rng):
    model = ku.create_model("vgg16", weights=None, include_top=False, input_shape=(64, 64, 3))
    extractor = ku.feature_extractor(model, layer_names=[f"block{s}_pool" for s in range(1, 6)])
    x = rng.uniform(0.0, 1.0, (1, 64, 64, 3)).astype("float32")
    shapes = {key: tuple(t.shape) for key, t in extractor(x).items()}
    assert shapes == {
        "block1_pool": (1, 32, 32, 64),
        "block2_pool": (1, 16, 16, 128),
        "block3_pool": (1, 8, 8, 256),
        "block4_pool": (1, 4, 4, 512),
        "block5_pool": (1, 2, 2, 512),
    }


def test_registry_and_preprocessing():
    assert ku.list_models("vgg*") == sorted(vgg.VARIANTS)
    assert vgg.VGG16.__name__ == "VGG16" and vgg.VGG16_C.__name__ == "VGG16_C"
    with pytest.raises(TypeError, match="config: vgg16_keras fixes it"):
        vgg.VGG16(config="A")
    with pytest.raises(TypeError, match="batch_norm: vgg16_bn fixes it"):
        vgg.VGG16_BN(batch_norm=False)
    pixels = np.array([[[[10.0, 120.0, 250.0]]]], "float32")
    np.testing.assert_allclose(
        vgg.preprocess_input(pixels.copy()), keras.applications.vgg16.preprocess_input(pixels.copy())
    )
    assert vgg.decode_predictions is ku.resnet.decode_predictions


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(config="F"), ValueError, "config: expected one of"),
        (dict(config=((3,), (3,), (3,), (3,))), ValueError, "config: expected one of"),
        (dict(config=((3,), (3,), (2,), (3,), (3,))), ValueError, "config: expected one of"),
        (dict(config=((3,), (), (3,), (3,), (3,))), ValueError, "config: expected one of"),
        (dict(batch_norm=1), TypeError, "batch_norm: expected True or False"),
        (dict(lrn="yes"), TypeError, "lrn: expected True or False"),
        (dict(dropout_rate=1.0), ValueError, r"dropout_rate: expected a number in \[0, 1\)"),
        (dict(fc_units=0), ValueError, "fc_units: expected a positive integer"),
        (dict(batch_norm_epsilon=0.0), ValueError, "batch_norm_epsilon: expected a positive number"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    with pytest.raises(error, match=message):
        vgg.VGG(input_shape=SMALL, **kwargs)


@pytest.mark.torch
@pytest.mark.slow
def test_checkpoint_file_converts_without_the_top(tmp_path, rng):
    """A whole timm checkpoint (ConvMlp head included) into a no-top model:
    features.{i} renamed by convert itself, the head's tensors ignored."""
    import torch
    from safetensors.torch import save_file

    reference = _timm_features("vgg13_bn", seed=5)
    checkpoint = tmp_path / "vgg13_bn.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(checkpoint))
    output = convert.convert_checkpoint(
        "vgg13_bn", checkpoint, tmp_path / "vgg13_bn.weights.h5", include_top=False, input_shape=SMALL
    )
    model = ku.create_model("vgg13_bn", weights=str(output), include_top=False, input_shape=SMALL)
    x = rng.normal(0.0, 1.0, (2,) + SMALL).astype("float32")
    with torch.no_grad():
        expected = reference.forward_features(_nchw(x)).numpy().transpose(0, 2, 3, 1)
    assert_parity(keras.ops.convert_to_numpy(model(x, training=False)), expected, "vgg13_bn from its checkpoint")
    # A model with the top needs every head tensor: timm's 64-wide ConvMlp does not fit it.
    with pytest.raises(ValueError, match="does not fit model 'vgg13_bn'"):
        convert.convert_into(
            ku.create_model("vgg13_bn", weights=None, input_shape=SMALL),
            {k: v.numpy() for k, v in reference.state_dict().items()}, "vgg",
        )


def test_feature_extractor_finds_the_pooling_stages():
    extractor = ku.feature_extractor("vgg16", weights=None, input_shape=(64, 64, 3))
    assert {k: tuple(t.shape) for k, t in extractor.output.items()} == {
        "stage1_s2": (None, 32, 32, 64), "stage2_s4": (None, 16, 16, 128), "stage3_s8": (None, 8, 8, 256),
        "stage4_s16": (None, 4, 4, 512), "stage5_s32": (None, 2, 2, 512)}
