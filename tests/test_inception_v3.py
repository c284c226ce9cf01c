"""Inception v3: keras.applications weight compatibility, timm parity (with the
auxiliary head), parameter counts, names, features, the auxiliary loss weight
and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""



import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402
from keras_ultradeep import convert  # noqa: E402
from keras_ultradeep.models import inception_v3  # noqa: E402
from keras_ultradeep.models.inception_v3 import InceptionV3, InceptionV3Timm  # noqa: E402

from timm_models import randomized_timm  # noqa: E402
from timm_models import assert_parity, nchw as _nchw, relative as _relative  # noqa: E402

SMALL = (75, 75, 3)  # keras.applications' minimum



def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def keras_reference():
    """keras.applications' InceptionV3 with every BatchNorm tensor and the classifier bias random."""
    rng = np.random.default_rng(7)
    model = keras.applications.InceptionV3(weights=None, input_shape=SMALL, classifier_activation=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [rng.normal(0, 0.1, beta.shape), rng.normal(0, 0.1, mean.shape),
                 rng.uniform(0.5, 2.0, variance.shape)]
            )
    bias = model.get_layer("predictions").bias
    bias.assign(rng.normal(0, 0.1, bias.shape))
    return model


# ------------------------------------------------------- keras.applications


@pytest.mark.slow
def test_keras_weights_files_load_unchanged(keras_reference, tmp_path, rng):
    from keras.src.legacy.saving import legacy_h5_format
    import h5py

    path = tmp_path / "inception_v3.weights.h5"
    keras_reference.save_weights(path)
    legacy = tmp_path / "inception_v3_legacy.h5"  # the format of keras' published imagenet files
    with h5py.File(legacy, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, keras_reference)

    x = rng.uniform(-1, 1, (2,) + SMALL).astype("float32")
    expected = _numpy(keras_reference(x, training=False))
    for weights in (path, legacy):
        ours = InceptionV3(weights=str(weights), input_shape=SMALL, classifier_activation=None)
        diff = float(np.abs(_numpy(ours(x, training=False)) - expected).max())
        print(f"\nkeras.applications InceptionV3 vs ours ({weights.name}): max |diff| {diff:.1e}")
        assert diff <= 1e-5 * max(1.0, float(np.abs(expected).max()))

    # Same weighted layers in the same order, and keras' module names and shapes.
    theirs = [layer for layer in keras_reference.layers if layer.weights]
    mine = [layer for layer in ours.layers if layer.weights]
    assert [type(layer) for layer in mine] == [type(layer) for layer in theirs]
    assert [[tuple(w.shape) for w in layer.weights] for layer in mine] == [
        [tuple(w.shape) for w in layer.weights] for layer in theirs
    ]
    names = [f"mixed{i}" for i in range(11)] + ["mixed9_0", "mixed9_1", "avg_pool", "predictions"]
    for name in names:
        assert ours.get_layer(name).output.shape == keras_reference.get_layer(name).output.shape


def test_keras_parameter_count(trainable, keras_reference):
    model = InceptionV3(weights=None, input_shape=SMALL)
    assert model.count_params() == 23_851_784 == keras_reference.count_params()  # keras' documented total
    assert trainable(model) == 23_817_352
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert {(layer.epsilon, layer.scale) for layer in norms} == {(1e-3, False)}
    assert isinstance(model.get_layer("mixed0_avg_pool"), keras.layers.AveragePooling2D)
    assert model.get_layer("mixed0_avg_pool").padding == "same"  # excludes the padding, as TF


# ------------------------------------------------------------------ timm


@pytest.mark.torch
@pytest.mark.slow
def test_timm_parity_and_parameter_count(trainable, rng):
    import torch

    reference = randomized_timm("inception_v3", seed=0)
    model = InceptionV3Timm(input_shape=SMALL, classifier_activation=None)
    convert.convert_into(model, {k: v.numpy() for k, v in reference.state_dict().items()}, "inception_v3")
    assert trainable(model) == sum(p.numel() for p in reference.parameters()) == 23_834_568
    x = rng.normal(0.0, 1.0, (2,) + SMALL).astype("float32")
    with torch.no_grad():
        expected = reference(_nchw(x)).numpy()
    assert_parity(_numpy(model(x, training=False)), expected, "inception_v3 (timm)")
    # The keras form has no BatchNorm gamma: the checkpoint does not fit it.
    with pytest.raises(ValueError, match="does not fit model 'inception_v3'"):
        convert.convert_into(
            InceptionV3(weights=None, input_shape=SMALL), {k: v.numpy() for k, v in reference.state_dict().items()},
            "inception_v3",
        )


@pytest.mark.torch
@pytest.mark.slow
def test_timm_parity_with_the_aux_head(trainable, rng):
    import timm
    import torch

    torch.manual_seed(3)
    reference = timm.create_model("inception_v3", aux_logits=True)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, torch.nn.Linear):
                module.bias.normal_(0.0, 0.1)
    reference.eval()
    model = InceptionV3Timm(aux_logits=True, input_shape=(299, 299, 3), classifier_activation=None)
    convert.convert_into(model, {k: v.numpy() for k, v in reference.state_dict().items()}, "inception_v3")
    assert trainable(model) == sum(p.numel() for p in reference.parameters()) == 27_161_264  # torchvision's
    x = rng.normal(0.0, 1.0, (1, 299, 299, 3)).astype("float32")
    with torch.no_grad():
        main, aux = (t.numpy() for t in reference(_nchw(x)))
    got_main, got_aux = (_numpy(y) for y in model(x, training=False))
    relative = (_relative(got_main, main), _relative(got_aux, aux))
    print(f"\nparity inception_v3 (timm) main/aux: {relative[0]:.2e}, {relative[1]:.2e}")
    assert max(relative) <= 1e-4


# --------------------------------------------------------------- aux head


@pytest.mark.slow
def test_aux_head_takes_a_pretrained_trunk_and_weighs_0_4(file_server, monkeypatch, rng):
    """A pretrained tag (keras' ImageNet files have no auxiliary head) fills the
    trunk and the main classifier; the auxiliary head starts untrained."""
    from keras_ultradeep import weights as weights_lib

    root, url_of, _ = file_server
    plain = InceptionV3(weights=None, input_shape=(299, 299, 3))
    plain.save_weights(root / "plain.weights.h5")
    from keras_ultradeep.weights import table

    row = weights_lib.Weights(
        arch="inception_v3_keras", tag="imagenet", source="keras-applications", format="keras-h5",
        files={"top": {"url": url_of("plain.weights.h5"), "file_name": "plain.weights.h5",
                       "hash": "sha256:" + weights_lib.file_hash(root / "plain.weights.h5")}},
        classes=1000, licence="test", top1={}, data={},
    )
    monkeypatch.setattr(table, "index", lambda: {"inception_v3_keras": {"imagenet": row}})
    model = InceptionV3(aux_logits=True, weights="imagenet", input_shape=(299, 299, 3))
    assert list(model.output_names) == ["predictions", "aux_predictions"]
    assert inception_v3.aux_loss_weights(model) == {"predictions": 1.0, "aux_predictions": 0.4}
    for layer in (layer for layer in plain.layers if layer.weights):
        for ours, theirs in zip(model.get_layer(layer.name).weights, layer.weights):
            np.testing.assert_array_equal(_numpy(ours), _numpy(theirs))
    # The main output never reads the auxiliary head.
    main_only = keras.Model(model.input, model.outputs[0])
    assert not any(layer.name.startswith("aux") for layer in main_only.layers)
    assert model.get_layer("aux_conv1_conv").kernel_size == (5, 5)


# --------------------------------------------------------------- features


def test_stage_outputs():
    model = InceptionV3(weights=None, include_top=False, input_shape=SMALL)
    extractor = ku.feature_extractor(model, layer_names=list(inception_v3.STAGE_OUTPUTS))
    shapes = {key: tuple(t.shape) for key, t in extractor.output.items()}
    assert shapes == {
        "conv2b_relu": (None, 35, 35, 64),  # stride 2
        "conv4a_relu": (None, 15, 15, 192),  # 4
        "mixed2": (None, 7, 7, 288),  # 8
        "mixed7": (None, 3, 3, 768),  # 16
        "mixed10": (None, 1, 1, 2048),  # 32
    }


# ---------------------------------------------------------- preprocessing


def test_preprocess_input_is_keras():
    pixels = np.array([[[[0.0, 100.0, 255.0]]]], "float32")
    np.testing.assert_allclose(
        inception_v3.preprocess_input(pixels.copy()),
        keras.applications.inception_v3.preprocess_input(pixels.copy()),
    )
    assert ku.create_model("inception_v3_keras", weights=None, input_shape=SMALL).name == "inception_v3"


# --------------------------------------------------------------- bad knobs


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(form="tf"), ValueError, "form: expected one of"),
        (dict(aux_logits="no"), TypeError, "aux_logits: expected True or False"),
        (dict(aux_logits=True, include_top=False), ValueError, "aux_logits: the auxiliary classifiers need"),
        (dict(aux_logits=True, input_shape=(107, 107, 3)), ValueError, "at least 299"),
        (dict(input_shape=(74, 74, 3)), ValueError, "at least 75"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    with pytest.raises(error, match=message):
        InceptionV3(weights=None, **kwargs)
