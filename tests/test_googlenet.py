"""GoogLeNet (Inception v1): parameter counts of both forms, torchvision parity
(main path and auxiliary heads), the auxiliary loss weighting, structure,
features and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""



import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402
from keras_ultradeep import convert  # noqa: E402
from keras_ultradeep.layers import LocalResponseNormalization  # noqa: E402
from keras_ultradeep.models import inception  # noqa: E402
from keras_ultradeep.models.inception import GoogLeNet, GoogLeNetTV, aux_loss_weights  # noqa: E402
from timm_models import assert_parity, nchw as _nchw, relative as _relative  # noqa: E402

PAPER_AUX_SIZE = (79, 79, 3)  # the smallest input whose 4a maps are 5x5 for the 5x5/3 aux pool



def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _randomized_torchvision(aux_logits, seed):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(seed)
    model = torchvision.models.googlenet(
        weights=None, aux_logits=aux_logits, init_weights=False, transform_input=False
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                # PyTorch's default init shrinks the signal layer by layer: at 35x35 the
                # logits then hardly depend on the input (2e-6 of their size) and parity
                # would check little beyond the biases. He init keeps it (7e-2).
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, torch.nn.Linear):
                module.bias.normal_(0.0, 0.1)
    return model.eval()


def _state(reference):
    return {k: v.numpy() for k, v in reference.state_dict().items()}


@pytest.fixture(scope="module")
def paper_aux():
    return GoogLeNet(aux_logits=True, input_shape=PAPER_AUX_SIZE)


# ------------------------------------------------------------------ counts


@pytest.mark.slow
def test_parameter_counts(trainable):
    # BVLC's prototxt structure, computed in ARCHITECTURE_FACTS: 6,998,552 / 13,378,280
    # (the aux FC reads 128 x 4 x 4 maps at 224; its width follows the input size).
    assert trainable(GoogLeNet(input_shape=(32, 32, 3))) == 6_998_552
    assert trainable(GoogLeNet(aux_logits=True)) == 13_378_280
    # torchvision's googlenet (its documented num_params without the aux heads).
    tv = GoogLeNetTV(input_shape=(32, 32, 3))
    assert trainable(tv) == 6_624_904
    assert tv.count_params() == 6_624_904 + 2 * 7_280  # BN moving mean and variance
    assert trainable(GoogLeNetTV(aux_logits=True, input_shape=(32, 32, 3))) == 13_004_888


# ------------------------------------------------------------- torchvision


@pytest.mark.torch
@pytest.mark.slow
def test_torchvision_parity_with_aux_heads_at_an_odd_size(trainable, rng):
    # 35x35: every ceil-mode pool meets an odd or overhanging map (18, 9, 4, 2), and the
    # adaptive aux pools widen 2x2 maps to 4x4.
    import torch

    reference = _randomized_torchvision(aux_logits=True, seed=1)
    model = GoogLeNetTV(aux_logits=True, input_shape=(35, 35, 3), classifier_activation=None)
    convert.convert_into(model, _state(reference), "googlenet")
    assert trainable(model) == sum(p.numel() for p in reference.parameters())
    x = rng.normal(0.0, 1.0, (2, 35, 35, 3)).astype("float32")
    with torch.no_grad():  # torchvision runs its aux heads in training mode only: call them
        t = reference.maxpool1(reference.conv1(_nchw(x)))
        t = reference.maxpool2(reference.conv3(reference.conv2(t)))
        t = reference.inception4a(reference.maxpool3(reference.inception3b(reference.inception3a(t))))
        aux1 = reference.aux1(t).numpy()
        aux2 = reference.aux2(reference.inception4d(reference.inception4c(reference.inception4b(t)))).numpy()
        main = reference(_nchw(x)).numpy()
    got = [_numpy(y) for y in model(x, training=False)]
    for output, expected, what in zip(got, (main, aux1, aux2), ("main", "aux1", "aux2")):
        assert_parity(output, expected, f"googlenet_tv {what}")


@pytest.mark.torch
@pytest.mark.slow
def test_checkpoint_file_converts(tmp_path, rng):
    import torch
    from safetensors.torch import save_file

    # Published torchvision checkpoints hold the aux heads: they convert into a model built without them.
    reference = _randomized_torchvision(aux_logits=True, seed=2)
    checkpoint = tmp_path / "googlenet.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(checkpoint))
    output = convert.convert_checkpoint(
        "googlenet_tv", checkpoint, tmp_path / "googlenet.weights.h5", input_shape=(32, 32, 3)
    )
    model = GoogLeNetTV(weights=str(output), input_shape=(32, 32, 3), classifier_activation=None)
    x = rng.normal(0.0, 1.0, (1, 32, 32, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(_nchw(x)).numpy()
    assert _relative(_numpy(model(x, training=False)), expected) <= 1e-4
    # Keys outside the optional aux heads are still refused.
    stray = dict(_state(reference), **{"aux3.fc.weight": np.zeros((2, 2), "float32")})
    with pytest.raises(ValueError, match="unexpected checkpoint keys .*aux3.fc.weight"):
        convert.convert_into(GoogLeNetTV(input_shape=(32, 32, 3)), stray, "googlenet")
    # The paper form has biases and no BatchNorm: the checkpoint does not fit it.
    with pytest.raises(ValueError, match="does not fit model 'googlenet'"):
        convert.convert_into(GoogLeNet(input_shape=(32, 32, 3)), _state(reference), "googlenet")


# ---------------------------------------------------------- auxiliary heads


def test_training_loss_weighs_the_aux_heads_by_0_3(rng):
    # Without dropout the paper form (no BatchNorm) computes the same in training and inference.
    model = GoogLeNet(aux_logits=True, input_shape=PAPER_AUX_SIZE, dropout_rate=0.0, aux_dropout_rate=0.0,
                      classes=5)
    assert list(model.output_names) == ["predictions", "aux1_predictions", "aux2_predictions"]
    assert aux_loss_weights(model) == {"predictions": 1.0, "aux1_predictions": 0.3, "aux2_predictions": 0.3}
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss={name: "sparse_categorical_crossentropy" for name in model.output_names},
        loss_weights=aux_loss_weights(model),
        run_eagerly=True,  # one step: tracing it would cost more than running it
    )
    x = rng.uniform(0.0, 1.0, (2,) + PAPER_AUX_SIZE).astype("float32")
    y = np.array([1, 3])
    main, aux1, aux2 = [_numpy(p) for p in model(x, training=True)]

    def cross_entropy(p):
        return float(np.mean(-np.log(p[np.arange(len(y)), y])))

    expected = cross_entropy(main) + 0.3 * (cross_entropy(aux1) + cross_entropy(aux2))
    logs = model.train_on_batch(x, [y, y, y], return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


@pytest.mark.slow
def test_main_output_ignores_the_aux_heads_and_aux_dropout_is_training_only(paper_aux, rng):
    main_only = keras.Model(paper_aux.input, paper_aux.outputs[0])
    assert not any(layer.name.startswith("aux") for layer in main_only.layers)
    plain = GoogLeNet(input_shape=PAPER_AUX_SIZE)  # same names: weights copy by name
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(paper_aux.get_layer(layer.name).get_weights())
    x = rng.uniform(0.0, 1.0, (2,) + PAPER_AUX_SIZE).astype("float32")
    inference = [_numpy(y) for y in paper_aux(x, training=False)]
    np.testing.assert_array_equal(inference[0], _numpy(plain(x, training=False)))
    again = [_numpy(y) for y in paper_aux(x, training=False)]
    for a, b in zip(inference, again):
        np.testing.assert_array_equal(a, b)
    assert paper_aux.get_layer("aux1_drop").rate == 0.7
    assert paper_aux.get_layer("head_drop").rate == 0.4
    training = [_numpy(y) for y in paper_aux(x, training=True)]
    assert all(not np.allclose(t, i) for t, i in zip(training[1:], inference[1:]))


def test_aux_loss_weights_needs_aux_heads():
    with pytest.raises(ValueError, match="model: expected a model built with aux_logits=True"):
        aux_loss_weights(GoogLeNet(input_shape=(32, 32, 3)))


# --------------------------------------------------------------- structure


def test_structure_of_both_forms(paper_aux):
    norms = [layer for layer in paper_aux.layers if isinstance(layer, LocalResponseNormalization)]
    assert [layer.name for layer in norms] == ["pool1_norm", "conv2_block1_out"]
    # BVLC's local_size 5, alpha 1e-4, beta 0.75 in Caffe's convention (alpha / n, k = 1).
    assert {(n.size, n.alpha, n.beta, n.k) for n in norms} == {(5, 1e-4 / 5, 0.75, 1.0)}
    assert paper_aux.get_layer("conv3_block1_5x5_conv").kernel_size == (5, 5)
    assert paper_aux.get_layer("pool4_pool").pool_size == (3, 3)
    assert paper_aux.get_layer("aux1_pool").pool_size == (5, 5)
    assert paper_aux.get_layer("aux1_pool").strides == (3, 3)
    assert all(getattr(layer, "use_bias", True) for layer in paper_aux.layers if hasattr(layer, "kernel"))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in paper_aux.layers)
    assert paper_aux.get_layer("conv1_pad").padding == ((3, 3), (3, 3))
    assert paper_aux.get_layer("pool1_pad").padding == ((0, 1), (0, 1))  # Caffe's ceil mode
    assert paper_aux.get_layer("conv4_block5_concat").output.shape[-1] == 832

    tv = GoogLeNetTV(aux_logits=True, input_shape=(32, 32, 3))
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in tv.layers)
    assert tv.get_layer("conv3_block1_5x5_conv").kernel_size == (3, 3)  # torchvision's
    assert tv.get_layer("pool4_pool").pool_size == (2, 2)
    assert tv.get_layer("head_drop").rate == 0.2
    assert isinstance(tv.get_layer("aux1_pool"), keras.layers.AdaptiveAveragePooling2D)
    norms = [layer for layer in tv.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert {layer.epsilon for layer in norms} == {1e-3}
    convs = [layer for layer in tv.layers if isinstance(layer, keras.layers.Conv2D)]
    assert not any(conv.use_bias for conv in convs)
    assert not any(type(layer).__name__ == "Lambda" for layer in tv.layers + paper_aux.layers)


def test_feature_extractor_stages():
    extractor = ku.feature_extractor(GoogLeNet(include_top=False, input_shape=(64, 64, 3)))
    shapes = {key: tuple(t.shape) for key, t in extractor.output.items()}
    assert shapes == {
        "stage1_s4": (None, 16, 16, 192),
        "stage2_s8": (None, 8, 8, 480),
        "stage3_s16": (None, 4, 4, 832),
        "stage4_s32": (None, 2, 2, 1024),
    }


@pytest.mark.slow
def test_registry_and_preprocessing():
    assert ku.create_model("googlenet_tv", input_shape=(32, 32, 3)).name == "googlenet_tv"
    assert ku.create_model("googlenet", input_shape=(32, 32, 3)).name == "googlenet"
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(inception.preprocess_input(pixels.copy()), [[[[-1.0, 0.0, 1.0]]]])


# -------------------------------------------------------------- bad knobs


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(form="caffe"), ValueError, "form: expected one of"),
        (dict(aux_logits=1), TypeError, "aux_logits: expected True or False"),
        (dict(aux_logits=True, include_top=False), ValueError, "aux_logits: the auxiliary classifiers need"),
        (dict(dropout_rate=1.0), ValueError, "dropout_rate: expected a number in"),
        (dict(aux_dropout_rate=-0.1), ValueError, "aux_dropout_rate: expected a number in"),
        (dict(aux_logits=True, input_shape=(64, 64, 3)), ValueError, "at least 79"),
        (dict(input_shape=(31, 31, 3)), ValueError, "at least 32"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    with pytest.raises(error, match=message):
        GoogLeNet(**kwargs)


def test_variant_fixes_the_form():
    with pytest.raises(TypeError, match="form: googlenet_tv fixes it"):
        GoogLeNetTV(form="paper")
