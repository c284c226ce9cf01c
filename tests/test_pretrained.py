"""Pretrained tags: the table, naming, data configs, offline loading, the cache, verification.

Everything runs offline: timm checkpoints are written into a huggingface_hub
cache in a temporary folder (``hub_fixtures.write_hub_cache``) and
``HF_HUB_OFFLINE`` is on; KERAS_HOME is a fresh folder per test (conftest).
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep import contract, registry
from keras_ultradeep import weights as weights_lib
from keras_ultradeep.convert import common as convert_common

from hub_fixtures import write_hub_cache

ROOT = Path(__file__).resolve().parent.parent
SMALL = (32, 32, 3)


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "weights" / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty huggingface_hub cache, offline (set after import, so patched)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def _safetensors(state):
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in state.items()})


def _random_state(model, family, rng):
    """A checkpoint of the right keys and shapes for ``model``: the inverse of the mapping."""
    state = {}
    for key, shape in _expected(model, family):
        value = rng.normal(0.0, 0.1, shape)
        state[key] = (np.abs(value) + 0.5 if key.endswith("running_var") else value).astype("float32")
    return state


def _expected(model, family):
    """``(torch key, torch shape)`` of every weight of ``model`` under ``family``'s mapping."""
    out = []
    for layer in convert_common._weighted_layers(model):  # noqa: SLF001 (test of the mapping)
        module = family.torch_module(layer.name)
        layout = convert_common._layout(layer)  # noqa: SLF001
        for variable in layer.weights:
            torch_name, transform = layout[variable.name]
            shape = tuple(variable.shape)
            if transform is not None and len(shape) == 4:
                shape = (shape[3], shape[2], shape[0], shape[1])
            elif transform is not None and len(shape) == 2:
                shape = (shape[1], shape[0])
            out.append((f"{module}.{torch_name}", shape))
    return out


# ------------------------------------------------------------------ the table


def test_tag_table_is_what_timm_publishes():
    pytest.importorskip("timm")
    committed = json.loads((ROOT / "weights" / "timm_tags.json").read_text())
    fresh = _script("timm_tags").generate()
    assert fresh["tags"] == committed["tags"], (
        "weights/timm_tags.json is stale: run python weights/scripts/timm_tags.py"
    )


def test_tag_table_covers_registered_architectures_only():
    names = ku.list_models(pretrained=True)
    assert names == sorted(row.name for row in weights_lib.rows())
    assert len(names) == len(set(names)) == 121
    registered = set(ku.list_models())
    assert {row.arch for row in weights_lib.rows()} <= registered
    for name, reason in weights_lib.excluded().items():
        assert len(reason) > 20 and name not in names
    timm_rows = [row for row in weights_lib.rows() if row.source == "timm"]
    assert len(timm_rows) == 106 and len({row.arch for row in timm_rows}) == 39
    for row in weights_lib.rows():
        assert row.classes == 1000 and row.licence
        assert row.data["input_size"][2] == 3 and row.data["crop_mode"] == "center"
    assert {row.name for row in weights_lib.rows() if row.source == "torchvision"} == {
        "googlenet_tv.tv_in1k", "alexnet_tv.tv_in1k",
    }


def test_one_naming_rule():
    """A name timm uses is timm's model; keras.applications' forms are *_keras."""
    for timm_name, keras_name, builder in [
        ("inception_v3", "inception_v3_keras", "InceptionV3"),
        ("inception_resnet_v2", "inception_resnet_v2_keras", "InceptionResNetV2"),
        ("vgg16", "vgg16_keras", "VGG16"),
        ("vgg19", "vgg19_keras", "VGG19"),
    ]:
        assert weights_lib.resolve(timm_name, "imagenet").source == "timm"
        assert weights_lib.resolve(keras_name, "imagenet").source == "keras-applications"
        assert registry.model_entry(keras_name).builder is getattr(ku, builder)
    assert weights_lib.resolve("inception_v3", "imagenet").name == "inception_v3.tv_in1k"
    assert weights_lib.resolve("vgg16", "imagenet").name == "vgg16.tv_in1k"
    for name in ("inception_v3_timm", "inception_resnet_v2_timm"):
        with pytest.raises(ValueError, match="unknown model"):
            registry.model_entry(name)
    # densenet121 is both keras.applications' and timm's name (identical layers).
    assert weights_lib.tags("densenet121") == ("imagenet", "ra_in1k", "tv_in1k")
    assert weights_lib.find("densenet121", "tv_in1k").architecture == {"batch_norm_epsilon": 1e-5}


def test_imagenet_is_the_default_tag_but_never_non_commercial():
    for arch in {row.arch for row in weights_lib.rows()}:
        row = weights_lib.resolve(arch, "imagenet")
        assert row is not None and not row.non_commercial
        assert row.tag == "imagenet" or row.default or not weights_lib.find(arch, row.tag).default
    assert weights_lib.resolve("resnext101_32x4d", "imagenet").tag == "gluon_in1k"
    assert weights_lib.resolve("resnet50", "imagenet").tag == "a1_in1k"
    with pytest.warns(UserWarning, match="cc-by-nc-4.0"):
        assert weights_lib.resolve("resnet50", "fb_swsl_ig1b_ft_in1k").non_commercial
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weights_lib.resolve("resnext101_32x4d", "imagenet")


@pytest.mark.slow
def test_the_three_spellings_of_a_tag_are_one(monkeypatch):
    loaded = []
    monkeypatch.setattr(contract, "_load_pretrained", lambda model, row, top: loaded.append(row.name))
    for name, kwargs in [
        ("dpn68b.ra_in1k", {}),
        ("dpn68b", {"weights": "ra_in1k"}),
        ("dpn68b", {"weights": "timm/dpn68b.ra_in1k"}),
        ("timm/dpn68b.ra_in1k", {}),
    ]:
        ku.create_model(name, include_top=False, input_shape=SMALL, **kwargs)
    assert loaded == ["dpn68b.ra_in1k"] * 4


def test_bad_tags_are_refused_before_any_work(monkeypatch):
    with pytest.raises(ValueError, match=r"available: 'mx_in1k', 'ra_in1k'"):
        ku.create_model("dpn68b", weights="no_such_tag")
    with pytest.raises(ValueError, match="unknown model"):
        ku.create_model("dpn68x.ra_in1k")
    with pytest.raises(ValueError, match=r"classes: .* has 1000 classes, got classes=10"):
        ku.create_model("resnet18.a1_in1k", classes=10)
    with pytest.raises(ValueError, match="not a model of 'resnet18'"):
        ku.create_model("resnet18", weights="densenet121.tv_in1k")
    assert not weights_lib.cache_dir("keras_ultradeep").exists()


# --------------------------------------------------------------- data configs

DATA_KEYS = {"input_size", "test_input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std", "channel_order"}


def test_data_config_follows_the_tag():
    config = ku.data_config("inception_v4.tf_in1k")
    assert set(config) == DATA_KEYS
    assert config["input_size"] == (299, 299, 3) and config["interpolation"] == "bicubic"
    assert config["mean"] == (0.5, 0.5, 0.5) and config["std"] == (0.5, 0.5, 0.5)
    assert ku.data_config("resnet50.tv2_in1k")["input_size"] == (176, 176, 3)
    assert ku.data_config("resnet50.tv2_in1k")["test_input_size"] == (224, 224, 3)
    assert ku.data_config("timm/dpn68b.mx_in1k")["mean"] == pytest.approx((124 / 255, 117 / 255, 104 / 255))
    # Without a tag: the default weights' config, else the family's preprocessing.
    assert ku.data_config("resnet50") == ku.data_config("resnet50.a1_in1k")
    assert ku.data_config("resnet50_keras")["channel_order"] == "BGR"
    cifar = ku.data_config("densenet40_k12")
    assert set(cifar) == DATA_KEYS and cifar["input_size"] == (32, 32, 3)
    with pytest.raises(ValueError, match="available: 'tv_in1k'"):
        ku.data_config("vgg11.nope")


def _normalized(x, config):
    mean, std = np.array(config["mean"]), np.array(config["std"])
    y = (x / 255.0 - mean) / std
    return y[..., ::-1] if config["channel_order"] == "BGR" else y


def test_family_preprocess_input_agrees_with_every_tag(rng):
    """Each tag's data config is one of the families' preprocess_input modes,
    and that mode of its family's preprocess_input computes it."""
    x = rng.uniform(0, 255, (1, 2, 2, 3)).astype("float32")
    for row in weights_lib.rows():
        config = ku.data_config(row.name)
        mode = next(
            m for m, preset in weights_lib.PREPROCESSING.items()
            if np.allclose(preset["mean"], config["mean"]) and np.allclose(preset["std"], config["std"])
            and preset["channel_order"] == config["channel_order"]
        )
        module = sys.modules[registry.model_entry(row.arch).builder.__module__]
        preprocess = module.preprocess_input
        takes_mode = "mode" in preprocess.__code__.co_varnames
        got = preprocess(x.copy(), mode=mode) if takes_mode else preprocess(x.copy())
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got), _normalized(x, config), rtol=1e-4, atol=1e-3,
            err_msg=f"{row.name}: {module.__name__}.preprocess_input(mode={mode!r})",
        )


# ------------------------------------------------------------ loading offline


@pytest.fixture(scope="module")
def resnet18_checkpoint():
    """A resnet18 checkpoint in timm's layout with random weights (the mapping's inverse)."""
    model = ku.create_model("resnet18", weights=None, input_shape=SMALL)
    family = convert_common.family_module("resnet")
    state = _random_state(model, family, np.random.default_rng(0))
    return _safetensors(state)


def _count_conversions(monkeypatch):
    calls = []
    original = contract._load_checkpoint  # noqa: SLF001 (instrumented, not replaced)
    monkeypatch.setattr(contract, "_load_checkpoint", lambda *a: (calls.append(a[1]), original(*a)))
    return calls


@pytest.mark.slow
def test_tag_loads_offline_once_and_saved_models_never_fetch(hub_cache, resnet18_checkpoint, monkeypatch, tmp_path, rng):
    import shutil

    write_hub_cache(hub_cache, "timm/resnet18.a1_in1k", "model.safetensors", resnet18_checkpoint)
    conversions = _count_conversions(monkeypatch)
    model = ku.create_model("resnet18.a1_in1k", include_top=False, pooling="avg", input_shape=SMALL)
    again = ku.create_model("resnet18", weights="a1_in1k", include_top=False, pooling="avg", input_shape=SMALL)
    assert len(conversions) == 1
    folder = weights_lib.cache_dir("keras_ultradeep") / "resnet18.a1_in1k"
    converted = sorted(p.name for p in folder.glob("*.weights.h5"))
    sha = hashlib.sha256(resnet18_checkpoint).hexdigest()
    assert converted == [f"{sha[:16]}-c{convert_common.converter_version(convert_common.family_module('resnet'))}-notop.weights.h5"]
    stamp = json.loads((folder / converted[0].replace(".weights.h5", ".json")).read_text())
    assert stamp["source_sha256"] == sha and stamp["source"] == "timm/resnet18.a1_in1k"

    x = rng.uniform(-1, 1, (2,) + SMALL).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(x)), expected)
    path = tmp_path / "m.keras"
    model.save(path)
    shutil.rmtree(hub_cache)
    shutil.rmtree(weights_lib.cache_dir("keras_ultradeep"))
    restored = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored(x)), expected)
    assert len(conversions) == 1 and not hub_cache.exists()

    # A converter change makes old conversions stale.
    write_hub_cache(hub_cache, "timm/resnet18.a1_in1k", "model.safetensors", resnet18_checkpoint)
    ku.create_model("resnet18.a1_in1k", include_top=False, input_shape=SMALL)
    monkeypatch.setattr(convert_common, "CONVERTER_VERSION", convert_common.CONVERTER_VERSION + 1)
    ku.create_model("resnet18.a1_in1k", include_top=False, input_shape=SMALL)
    assert len(conversions) == 3


@pytest.mark.slow
def test_include_top_and_pooling_with_a_tag(hub_cache, resnet18_checkpoint):
    write_hub_cache(hub_cache, "timm/resnet18.a1_in1k", "model.safetensors", resnet18_checkpoint)
    top = ku.create_model("resnet18.a1_in1k")
    assert top.output_shape == (None, 1000)
    pooled = ku.create_model("resnet18.a1_in1k", include_top=False, pooling="max", input_shape=(64, 64, 3))
    assert pooled.output_shape == (None, 512)
    kernel = keras.ops.convert_to_numpy(top.get_layer("predictions").kernel)
    from safetensors.numpy import load

    np.testing.assert_array_equal(kernel, load(resnet18_checkpoint)["fc.weight"].T)


def test_a_local_checkpoint_path_converts(tmp_path, resnet18_checkpoint):
    path = tmp_path / "model.safetensors"
    path.write_bytes(resnet18_checkpoint)
    model = ku.create_model("resnet18", weights=str(path), include_top=False, input_shape=SMALL)
    from safetensors.numpy import load

    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("conv1_conv").kernel),
        load(resnet18_checkpoint)["conv1.weight"].transpose(2, 3, 1, 0),
    )


def test_offline_without_the_file_says_how_to_prefetch(hub_cache):
    with pytest.raises(OSError, match=r"hf download timm/resnet18\.a1_in1k model\.safetensors"):
        ku.create_model("resnet18.a1_in1k", include_top=False, input_shape=SMALL)
    assert list(weights_lib.cache_dir("keras_ultradeep").rglob("*.weights.h5")) == []


@pytest.mark.slow
def test_tampered_download_is_refused_and_removed(hub_cache, resnet18_checkpoint):
    snapshot = write_hub_cache(hub_cache, "timm/resnet18.a1_in1k", "model.safetensors", resnet18_checkpoint)
    ku.create_model("resnet18.a1_in1k", include_top=False, input_shape=SMALL)  # records its sha256
    for converted in weights_lib.cache_dir("keras_ultradeep").rglob("*.weights.h5"):
        converted.unlink()
    blob = snapshot.resolve()
    tampered = bytearray(blob.read_bytes())
    tampered[-1] ^= 0xFF
    blob.write_bytes(bytes(tampered))
    good, bad = hashlib.sha256(resnet18_checkpoint).hexdigest(), hashlib.sha256(tampered).hexdigest()
    with pytest.raises(weights_lib.WeightsVerificationError) as error:
        ku.create_model("resnet18.a1_in1k", include_top=False, input_shape=SMALL)
    message = str(error.value)
    assert "timm/resnet18.a1_in1k/model.safetensors" in message and good in message and bad in message
    assert "recorded on first use" in message
    assert not blob.exists() and not snapshot.is_symlink()
    assert list(weights_lib.cache_dir("keras_ultradeep").rglob("*.weights.h5")) == []


@pytest.mark.slow
def test_the_manifest_pin_wins(hub_cache, rng):
    """densenet121.tv_in1k is pinned: a file with other bytes is refused, whatever the cache says."""
    model = ku.create_model("densenet121", weights=None, include_top=False, input_shape=SMALL)
    payload = _safetensors(_random_state(model, convert_common.family_module("densenet"), rng))
    snapshot = write_hub_cache(hub_cache, "timm/densenet121.tv_in1k", "model.safetensors", payload)
    with pytest.raises(weights_lib.WeightsVerificationError, match="the manifest's pin: expected sha256 c894c6d9"):
        ku.create_model("densenet121.tv_in1k", include_top=False, input_shape=SMALL)
    assert not snapshot.exists()


@pytest.mark.slow
def test_concurrent_processes_convert_once(hub_cache, resnet18_checkpoint, tmp_path):
    write_hub_cache(hub_cache, "timm/resnet18.a1_in1k", "model.safetensors", resnet18_checkpoint)
    log = tmp_path / "conversions.log"
    code = textwrap.dedent(f"""
        import os
        import keras_ultradeep as ku
        from keras_ultradeep import contract
        original = contract._load_checkpoint
        def counted(*args):
            with open({str(log)!r}, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            return original(*args)
        contract._load_checkpoint = counted
        model = ku.create_model("resnet18.a1_in1k", include_top=False, input_shape=(32, 32, 3))
        print(model.count_params())
    """)
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    results = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], [r[1][-2000:] for r in results]
    assert len({r[0] for r in results}) == 1
    assert len(log.read_text().split()) == 1
    folder = Path(env.get("KERAS_HOME")) / "keras_ultradeep" / "resnet18.a1_in1k"
    assert len(list(folder.glob("*.weights.h5"))) == 1
