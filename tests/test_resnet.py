"""ImageNet ResNet v1, Wide ResNet and ResNeXt: keras.applications and timm parity,
stochastic depth, and knob errors.

The contract itself (shapes, pooling, saving, published parameter counts) is
checked for every registered model in test_contract.py.
"""



import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402
from keras_ultradeep import convert  # noqa: E402
from keras_ultradeep.layers import StochasticDepth  # noqa: E402
from timm_models import randomized_timm  # noqa: E402

SMALL = (64, 64, 3)


def _randomize(model, rng):
    """Every weight random, BatchNorm statistics included (variances positive)."""
    for variable in model.weights:
        if "moving_variance" in variable.path:
            value = rng.uniform(0.5, 2.0, variable.shape)
        elif "gamma" in variable.path:
            value = rng.uniform(0.5, 1.5, variable.shape)
        else:
            fan_in = int(np.prod(variable.shape[:-1])) if len(variable.shape) > 1 else 50
            value = rng.normal(0.0, (2.0 / fan_in) ** 0.5, variable.shape)
        variable.assign(value.astype("float32"))


# ------------------------------------------------------------ keras.applications


@pytest.mark.parametrize(
    "ours, reference",
    [("ResNet50", "ResNet50"), ("ResNet101", "ResNet101"), ("ResNet152", "ResNet152")],
)
@pytest.mark.slow
def test_keras_applications_weights_load_with_identical_outputs(ours, reference, tmp_path, rng):
    theirs = getattr(keras.applications, reference)(weights=None, input_shape=SMALL, include_top=False,
                                                    pooling="avg")
    _randomize(theirs, rng)
    path = tmp_path / "keras.weights.h5"
    theirs.save_weights(path)

    model = getattr(ku, ours)(weights=str(path), input_shape=SMALL, include_top=False, pooling="avg")
    assert [layer.name for layer in model.layers if layer.weights] == [
        layer.name for layer in theirs.layers if layer.weights
    ]
    assert [(w.path, w.shape) for w in model.weights] == [(w.path, w.shape) for w in theirs.weights]
    x = rng.uniform(0, 255, (2,) + SMALL).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(theirs(x, training=False)),
    )


@pytest.mark.slow
def test_keras_applications_legacy_h5_with_top(tmp_path, rng):
    theirs = keras.applications.ResNet50(weights=None)
    _randomize(theirs, rng)
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    theirs.save(path)  # legacy HDF5, the layout of the published files
    model = ku.ResNet50(weights=str(path))
    x = rng.uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(theirs(x, training=False)),
    )


# --------------------------------------------------------------------------- timm


_randomized_timm = randomized_timm


# timm parity of every architecture with pretrained tags (resnet18 ... resnext101_64x4d):
# test_timm_parity.py, one table.


@pytest.mark.torch
@pytest.mark.slow
def test_timm_checkpoint_file_converts(tmp_path, rng):
    from safetensors.torch import save_file

    reference = _randomized_timm("resnext50_32x4d", seed=0)
    checkpoint = tmp_path / "resnext.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(checkpoint))
    output = convert.convert_checkpoint(
        "resnext50_32x4d", checkpoint, tmp_path / "resnext.weights.h5", include_top=False,
        input_shape=SMALL, pooling="avg",
    )
    model = ku.ResNeXt50_32x4d(weights=str(output), include_top=False, input_shape=SMALL, pooling="avg")
    import torch

    x = rng.normal(0.0, 1.0, (1,) + SMALL).astype("float32")
    with torch.no_grad():
        expected = reference.forward_head(
            reference.forward_features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())),
            pre_logits=True,
        ).numpy()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x, training=False)), expected, rtol=1e-4, atol=1e-4
    )


@pytest.mark.slow
def test_keras_form_does_not_take_a_timm_checkpoint(rng):
    model = ku.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    timm_form = ku.create_model("resnet50", weights=None, include_top=False, input_shape=(32, 32, 3))
    from keras_ultradeep.convert import resnet as names

    state = {}
    for layer in timm_form.layers:
        for variable in layer.weights:
            torch_name = {"kernel": "weight", "gamma": "weight", "beta": "bias",
                          "moving_mean": "running_mean", "moving_variance": "running_var"}[variable.name]
            value = np.zeros(variable.shape, "float32")
            if variable.name == "kernel":
                value = np.ascontiguousarray(value.transpose(3, 2, 0, 1))
            state[f"{names.torch_module(layer.name)}.{torch_name}"] = value
    convert.convert_into(timm_form, state, "resnet")  # fits the timm form exactly
    with pytest.raises(ValueError, match=r"missing from the checkpoint \(conv1_conv/bias <- conv1.bias"):
        convert.convert_into(model, state, "resnet")  # keras' convs have biases


# ------------------------------------------------------------------ structure


@pytest.mark.slow
def test_stride_placement_and_widths():
    keras_form = ku.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    timm_form = ku.create_model("resnet50", weights=None, include_top=False, input_shape=(64, 64, 3))
    assert keras_form.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert keras_form.get_layer("conv3_block1_2_conv").strides == (1, 1)
    assert timm_form.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert timm_form.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert timm_form.get_layer("conv3_block1_2_pad").padding == ((1, 1), (1, 1))
    assert keras_form.get_layer("conv1_conv").use_bias and not timm_form.get_layer("conv1_conv").use_bias
    assert keras_form.get_layer("conv1_bn").epsilon == 1.001e-5
    assert timm_form.get_layer("conv1_bn").epsilon == 1e-5
    assert timm_form.output_shape == (None, 2, 2, 2048)

    resnext = ku.create_model("resnext101_64x4d", weights=None, include_top=False, input_shape=(32, 32, 3))
    grouped = resnext.get_layer("conv2_block1_2_conv")
    assert (grouped.groups, grouped.filters) == (64, 256)  # 64 groups of 4 maps
    assert resnext.get_layer("conv5_block1_2_conv").filters == 2048
    wide = ku.create_model("wide_resnet50_2", weights=None, include_top=False, input_shape=(32, 32, 3))
    assert wide.get_layer("conv2_block1_2_conv").filters == 128
    assert wide.get_layer("conv5_block3_3_conv").filters == 2048


@pytest.mark.slow
def test_stochastic_depth(rng, tmp_path):
    model = ku.ResNet18(weights=None, input_shape=(32, 32, 3), classes=5, survival_prob=0.5)
    gates = [layer for layer in model.layers if isinstance(layer, StochasticDepth)]
    assert len(gates) == 8  # every block
    probs = [layer.survival_prob for layer in gates]
    np.testing.assert_allclose(probs, [1 - (i / 8) * 0.5 for i in range(1, 9)])
    uniform = ku.ResNet18(weights=None, input_shape=(32, 32, 3), survival_prob=0.8, survival_rule="uniform")
    assert {layer.survival_prob for layer in uniform.layers if isinstance(layer, StochasticDepth)} == {0.8}
    plain = ku.ResNet18(weights=None, input_shape=(32, 32, 3))
    assert not any(isinstance(layer, StochasticDepth) for layer in plain.layers)

    x = rng.normal(0.0, 1.0, (4, 32, 32, 3)).astype("float32")
    inference = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_array_equal(inference, keras.ops.convert_to_numpy(model(x, training=False)))
    trained = [keras.ops.convert_to_numpy(model(x, training=True)) for _ in range(3)]
    assert not all(np.allclose(trained[0], t) for t in trained[1:])  # branches dropped at random

    inference = keras.ops.convert_to_numpy(model(x, training=False))  # training moved BN statistics
    path = tmp_path / "sd.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(x, training=False)), inference, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(blocks=(3, 4, 6)), ValueError, "blocks: expected 4 positive block counts"),
        (dict(blocks=(3, 4, 0, 3)), ValueError, "blocks: expected 4 positive block counts"),
        (dict(blocks=(3, 4, 6, 3), block="dense"), ValueError, "block: expected one of"),
        (dict(blocks=(3, 4, 6, 3), form="caffe"), ValueError, "form: expected one of"),
        (dict(blocks=(3, 4, 6, 3), cardinality=0), ValueError, "cardinality: expected a positive integer"),
        (dict(blocks=(3, 4, 6, 3), bottleneck_width=2.5), ValueError, "bottleneck_width: expected a positive"),
        (dict(blocks=(2, 2, 2, 2), block="basic", cardinality=32), ValueError, "cardinality: basic blocks"),
        (dict(blocks=(2, 2, 2, 2), block="basic", form="keras"), ValueError, "form: keras.applications has no"),
        (dict(blocks=(3, 4, 6, 3), survival_prob=0.0), ValueError, r"survival_prob: expected a number in \(0, 1\]"),
        (dict(blocks=(3, 4, 6, 3), survival_prob=1.5), ValueError, r"survival_prob: expected a number in \(0, 1\]"),
        (dict(blocks=(3, 4, 6, 3), survival_rule="cosine"), ValueError, "survival_rule: expected one of"),
        (dict(blocks=(3, 4, 6, 3), use_bias="yes"), TypeError, "use_bias: expected True or False"),
        (dict(blocks=(3, 4, 6, 3), batch_norm_epsilon=0), ValueError, "batch_norm_epsilon: expected a positive"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    with pytest.raises(error, match=message):
        ku.ResNet(**kwargs, weights=None, input_shape=(32, 32, 3))


def test_preprocess_input_modes():
    x = np.full((1, 2, 2, 3), 255.0, "float32")
    caffe = ku.resnet.preprocess_input(x.copy())
    np.testing.assert_allclose(caffe[0, 0, 0], [255 - 103.939, 255 - 116.779, 255 - 123.68], rtol=1e-5)
    torch_mode = ku.resnet.preprocess_input(x.copy(), mode="torch")
    np.testing.assert_allclose(torch_mode[0, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225], rtol=1e-5)
    with pytest.raises(ValueError, match="mode: expected one of"):
        ku.resnet.preprocess_input(x, mode="bgr")


# ------------------------------------------------------------------------ CIFAR



def _without_batch_norm_affine(trainable, model):
    return trainable(model) - sum(
        int(np.prod(w.shape))
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.trainable_weights
    )


# The ResNet paper's counts include BatchNorm's scales and offsets (ResNet-1202's
# 19.4M needs them: 19.33M without); the ResNeXt paper's do not (ResNeXt-29
# 16x64d: 68.16M with them, 68.05M without).
@pytest.mark.parametrize(
    "name, millions, digits, with_bn",
    [
        ("resnet20_cifar", 0.27, 2, True),
        ("resnet32_cifar", 0.46, 2, True),
        ("resnet44_cifar", 0.66, 2, True),
        ("resnet56_cifar", 0.85, 2, True),
        ("resnet110_cifar", 1.7, 1, True),
        ("resnet1202_cifar", 19.4, 1, True),
        ("resnext29_8x64d", 34.4, 1, False),
        ("resnext29_16x64d", 68.1, 1, False),
    ],
)
@pytest.mark.slow
def test_cifar_parameter_counts_match_the_papers(trainable, name, millions, digits, with_bn):
    model = ku.create_model(name, input_shape=(8, 8, 3))
    assert model.output_shape == (None, 10)
    count = trainable(model) if with_bn else _without_batch_norm_affine(trainable, model)
    print(f"\n{name}: {trainable(model):,} trainable, {_without_batch_norm_affine(trainable, model):,} without BN")
    assert round(count / 1e6, digits) == millions


def test_cifar_shortcut_options(trainable):
    counts = {}
    for option in ("A", "B", "C"):
        model = ku.ResNetCIFAR(depth=20, shortcut=option, input_shape=(32, 32, 3))
        counts[option] = trainable(model)
        projections = [layer.name for layer in model.layers if layer.name.endswith("_0_conv")]
        pads = [layer.name for layer in model.layers if layer.name.endswith("_0_pad")]
        if option == "A":
            assert projections == [] and pads == ["conv3_block1_0_pad", "conv4_block1_0_pad"]
        elif option == "B":
            assert projections == ["conv3_block1_0_conv", "conv4_block1_0_conv"] and pads == []
        else:
            assert len(projections) == 9 and pads == []
    assert counts["A"] == 269_722  # 0.27M; the often quoted 272,474 is option B
    # B: two 1x1 projections with their BatchNorm (16->32, 32->64).
    assert counts["B"] - counts["A"] == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    # C: also one in each of the other seven blocks (16->16 x3, 32->32 x2, 64->64 x2).
    assert counts["C"] - counts["B"] == 3 * (16 * 16 + 32) + 2 * (32 * 32 + 64) + 2 * (64 * 64 + 128)


@pytest.mark.slow
def test_cifar_stochastic_depth_is_the_papers_resnet110():
    model = ku.create_model("resnet110_cifar", survival_prob=0.5, input_shape=(8, 8, 3))
    probs = [layer.survival_prob for layer in model.layers if isinstance(layer, StochasticDepth)]
    assert len(probs) == 54
    np.testing.assert_allclose(probs[0], 1 - 0.5 / 54)
    assert probs[-1] == 0.5


@pytest.mark.parametrize(
    "builder, kwargs, message",
    [
        ("ResNetCIFAR", dict(depth=21), r"depth: expected 6n \+ 2"),
        ("ResNetCIFAR", dict(depth=2), r"depth: expected 6n \+ 2"),
        ("ResNetCIFAR", dict(shortcut="D"), "shortcut: expected one of"),
        ("ResNetCIFAR", dict(survival_prob=-0.1), "survival_prob: expected a number"),
        ("ResNeXtCIFAR", dict(depth=30), r"depth: expected 9n \+ 2"),
        ("ResNeXtCIFAR", dict(cardinality=0), "cardinality: expected a positive integer"),
    ],
)
def test_cifar_bad_knobs(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(ku, builder)(**kwargs)
