"""Checkpoint conversion: timm parity with every tensor randomized, strictness, errors,
and a checkpoint refused for a model it does not fit.

Parity bound (ARCHITECTURES.md, timm-compatible): max abs logit difference
<= 1e-4 * max(1, max |timm logit|).
"""

import sys


import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_ultradeep as ku  # noqa: E402
from keras_ultradeep import convert  # noqa: E402
from keras_ultradeep.convert import densenet as densenet_names  # noqa: E402
from timm_models import assert_parity  # noqa: E402

PARITY_SHAPE = (64, 64, 3)
TIMM_EPS = 1e-5


def _files_in(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _randomized_timm(name, seed):
    """timm's model with every parameter and BatchNorm statistic random, in eval mode."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    touched = set()
    with torch.no_grad():
        for module_name, module in model.named_modules():
            prefix = f"{module_name}." if module_name else ""
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                touched |= {prefix + k for k in ("weight", "bias", "running_mean", "running_var")}
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
                touched.add(prefix + "weight")
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1)
                    touched.add(prefix + "bias")
    tensors = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert touched == tensors, sorted(tensors ^ touched)[:5]
    return model.eval()


def _timm_outputs(model, x, pooled=False):
    import torch

    with torch.no_grad():
        inputs = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        if pooled:
            return model.forward_features(inputs).mean(dim=(2, 3)).numpy()
        return model(inputs).numpy()


def _keras_outputs(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _assert_parity(ours, reference, what):
    assert np.isfinite(reference).all()
    return assert_parity(ours, reference, what)[0]


@pytest.fixture(scope="module")
def timm_checkpoint(tmp_path_factory):
    """``get(name) -> (timm model, safetensors path)``, each built once per module."""
    cache = {}
    folder = tmp_path_factory.mktemp("timm")

    def get(name):
        if name not in cache:
            from safetensors.torch import save_file

            model = _randomized_timm(name, seed=len(cache))
            path = folder / f"{name}.safetensors"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
            cache[name] = model, path
        return cache[name]

    return get


@pytest.fixture(scope="module")
def keras_densenet121():
    """Our densenet121 as timm builds it, for tests that convert into a built model."""
    return ku.create_model(
        "densenet121", weights=None, input_shape=PARITY_SHAPE,
        classifier_activation=None, batch_norm_epsilon=TIMM_EPS,
    )


# --------------------------------------------------------------------- parity


@pytest.mark.torch
@pytest.mark.parametrize("name", ["densenet121", "densenet169", "densenet201", "densenet161"])
@pytest.mark.slow
def test_timm_parity(name, timm_checkpoint, tmp_path, rng, record_property):
    reference, checkpoint = timm_checkpoint(name)
    output = convert.convert_checkpoint(
        name, checkpoint, tmp_path / f"{name}.weights.h5", input_shape=PARITY_SHAPE
    )
    assert output == tmp_path / f"{name}.weights.h5" and output.is_file()
    assert _files_in(tmp_path) == [output.name]  # no temporary left behind

    ours = ku.create_model(
        name,
        weights=str(output),
        input_shape=PARITY_SHAPE,
        classifier_activation=None,
        batch_norm_epsilon=TIMM_EPS,
    )
    x = rng.normal(0.0, 1.0, (2,) + PARITY_SHAPE).astype("float32")
    record_property(
        "relative_diff", _assert_parity(_keras_outputs(ours, x), _timm_outputs(reference, x), name)
    )


@pytest.mark.torch
def test_torchvision_pth_with_old_key_names(timm_checkpoint, keras_densenet121, tmp_path, rng):
    import torch

    reference, _ = timm_checkpoint("densenet121")
    old_style = {}
    for key, value in reference.state_dict().items():
        for part in ("norm1", "norm2", "conv1", "conv2"):
            key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        old_style[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in old_style
    checkpoint = tmp_path / "densenet121-old.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in old_style.items()}}, checkpoint)

    ours = convert.convert_into(keras_densenet121, convert.load_state_dict(checkpoint), "densenet")
    x = rng.normal(0.0, 1.0, (1,) + PARITY_SHAPE).astype("float32")
    _assert_parity(_keras_outputs(ours, x), _timm_outputs(reference, x), "densenet121 torchvision .pth")


@pytest.mark.torch
@pytest.mark.slow
def test_notop_model_ignores_the_classifier(timm_checkpoint, rng):
    reference, checkpoint = timm_checkpoint("densenet121")
    ours = ku.create_model(
        "densenet121", weights=None, include_top=False, pooling="avg",
        input_shape=PARITY_SHAPE, batch_norm_epsilon=TIMM_EPS,
    )
    convert.convert_into(ours, convert.load_state_dict(checkpoint), "densenet")
    x = rng.normal(0.0, 1.0, (2,) + PARITY_SHAPE).astype("float32")
    _assert_parity(
        _keras_outputs(ours, x), _timm_outputs(reference, x, pooled=True), "densenet121 notop"
    )


# --------------------------------------------------------------------- errors


@pytest.mark.torch
@pytest.mark.slow
def test_wrong_architecture_changes_nothing(timm_checkpoint, keras_densenet121, tmp_path):
    _, checkpoint = timm_checkpoint("densenet169")
    output = tmp_path / "out.weights.h5"
    with pytest.raises(ValueError, match="missing|unexpected|shape") as error:
        convert.convert_checkpoint("densenet121", checkpoint, output)
    assert "denseblock3.denselayer25" in str(error.value)  # a densenet169-only key
    assert _files_in(tmp_path) == []

    # convert_into assigns nothing on failure.
    model = keras_densenet121
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(ValueError, match="nothing was assigned"):
        convert.convert_into(model, convert.load_state_dict(checkpoint), "densenet")
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))


@pytest.mark.slow
def test_state_dict_strictness_without_torch():
    model = ku.create_model("densenet121", weights=None, include_top=False, input_shape=(32, 32, 3))
    state = {}
    for layer in model.layers:
        for variable in layer.weights:
            module = densenet_names.torch_module(layer.name)
            name = {"kernel": "weight", "gamma": "weight", "beta": "bias",
                    "moving_mean": "running_mean", "moving_variance": "running_var"}[variable.name]
            value = np.full(variable.shape, 0.5, "float32")
            if variable.name == "kernel":
                value = value.transpose(3, 2, 0, 1)
            state[f"{module}.{name}"] = value
    state["features.norm0.num_batches_tracked"] = np.array(3)
    state["classifier.weight"] = np.zeros((7, 1024), "float32")  # ignored: no top
    state["classifier.bias"] = np.zeros((7,), "float32")
    convert.convert_into(model, state, "densenet")
    assert float(model.get_layer("conv1_conv").kernel.numpy().mean()) == 0.5

    extra = dict(state, **{"features.extra.weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"1 unexpected checkpoint keys \(features.extra.weight\)"):
        convert.convert_into(model, extra, "densenet")
    lacking = {k: v for k, v in state.items() if k != "features.norm5.running_var"}
    with pytest.raises(ValueError, match=r"1 model weights missing from the checkpoint \(bn/moving_variance <- features.norm5.running_var"):
        convert.convert_into(model, lacking, "densenet")
    misshapen = dict(state, **{"features.conv0.weight": np.zeros((64, 3, 5, 5), "float32")})
    with pytest.raises(ValueError, match=r"1 shape mismatches \(conv1_conv/kernel \(7, 7, 3, 64\)"):
        convert.convert_into(model, misshapen, "densenet")
    with pytest.raises(ValueError, match="family: no checkpoint converter for family 'resnet_v9'; converters exist for: .*densenet"):
        convert.convert_into(model, state, "resnet_v9")


def test_truncated_safetensors(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "broken.safetensors"
    save_file({"features.conv0.weight": np.zeros((64, 3, 7, 7), "float32")}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="broken.safetensors.*truncated, corrupted"):
        convert.load_state_dict(path)
    with pytest.raises(ValueError, match="broken.safetensors.*truncated, corrupted"):
        convert.convert_checkpoint("densenet121", path, tmp_path / "out.weights.h5")
    assert _files_in(tmp_path) == ["broken.safetensors"]


def test_pth_without_torch_says_how_to_install_it(tmp_path, monkeypatch):
    checkpoint = tmp_path / "model.pth"
    checkpoint.write_bytes(b"a pickle")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ImportError, match=r'pip install "keras-ultradeep\[torch\]"'):
        convert.load_state_dict(checkpoint)


def test_convert_checkpoint_argument_errors(tmp_path):
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"never read: the arguments fail first")
    output = tmp_path / "out.weights.h5"
    with pytest.raises(ValueError, match="model_name: unknown model 'densenet12'"):
        convert.convert_checkpoint("densenet12", checkpoint, output)
    with pytest.raises(ValueError, match="model_name: no checkpoint converter for .*'densenet_cifar'"):
        convert.convert_checkpoint("densenet40_k12", checkpoint, output)
    with pytest.raises(ValueError, match="checkpoint: expected a file ending in"):
        convert.convert_checkpoint("densenet121", tmp_path / "model.ckpt", output)
    with pytest.raises(ValueError, match="checkpoint: no such file"):
        convert.convert_checkpoint("densenet121", tmp_path / "missing.pth", output)
    with pytest.raises(ValueError, match=r"output: expected a path ending in '.weights.h5'"):
        convert.convert_checkpoint("densenet121", checkpoint, tmp_path / "out.h5")
    with pytest.raises(ValueError, match="output: the folder .* does not exist"):
        convert.convert_checkpoint("densenet121", checkpoint, tmp_path / "no" / "out.weights.h5")
    with pytest.raises(ValueError, match="model_kwargs: 'weights'"):
        convert.convert_checkpoint("densenet121", checkpoint, output, weights="imagenet")
    assert _files_in(tmp_path) == ["model.safetensors"]


# ------------------------------------------------- a checkpoint for another model


@pytest.mark.torch
@pytest.mark.slow
def test_convert_refuses_a_checkpoint_for_another_model_and_names_it(timm_checkpoint, tmp_path, capsys):
    """timm's inception_v3 checkpoint does not fit keras.applications' form:
    nothing is written, the exit status is non-zero, and the error names the
    registered model it fits."""
    from keras_ultradeep import cli

    _, checkpoint = timm_checkpoint("inception_v3")
    output = tmp_path / "out.weights.h5"
    status = cli.main(["convert", "inception_v3_keras", str(checkpoint), str(output)])
    assert status != 0
    error = capsys.readouterr().err
    assert "does not fit 'inception_v3_keras'" in error and "It fits 'inception_v3'" in error
    assert not output.exists() and _files_in(tmp_path) == []
    assert cli.main(["convert", "inception_v3", str(checkpoint), str(output)]) == 0
    assert output.is_file()
