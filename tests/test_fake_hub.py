"""Downloads through huggingface_hub from a fake Hub on 127.0.0.1.

huggingface_hub checks only a download's size: a same-size file with other
bytes is stored under the good file's sha256 name. keras_ultradeep hashes
what it got against the Hub's LFS sha256 and refuses it. A truncated body,
a 404 and a server that is down each give an error that says what to do, and
leave no converted file (nor the bad download) behind.
"""

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep import weights as weights_lib
from keras_ultradeep.convert import common as convert_common

from hub_fixtures import FakeHub

REPO, FILE = "timm/resnet18.a1_in1k", "model.safetensors"
SMALL = (32, 32, 3)


@pytest.fixture(scope="module")
def checkpoint():
    """resnet18's tensors (random, of the right keys and shapes) as safetensors bytes."""
    from safetensors.numpy import save

    model = ku.create_model("resnet18", weights=None, input_shape=SMALL)
    family = convert_common.family_module("resnet")
    rng = np.random.default_rng(0)
    state = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        module = family.torch_module(layer.name)
        for variable in layer.weights:
            name = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                    "moving_mean": "running_mean", "moving_variance": "running_var"}[variable.name]
            shape = tuple(variable.shape)
            shape = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape[::-1]
            value = rng.normal(0.0, 0.1, shape)
            state[f"{module}.{name}"] = (np.abs(value) + 0.5 if name == "running_var" else value).astype("float32")
    return save(state)


@pytest.fixture
def hub(tmp_path, monkeypatch, checkpoint):
    """The fake Hub serving ``checkpoint`` as timm/resnet18.a1_in1k, and an empty
    cache. HF_ENDPOINT is read when huggingface_hub is imported, so the
    constants it became are patched; huggingface_hub's retry waits are skipped."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(_http.time, "sleep", lambda seconds: None)
    with FakeHub() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        server.files[(REPO, FILE)] = checkpoint
        server.cache = cache
        yield server


def _converted():
    return sorted(weights_lib.cache_dir("keras_ultradeep").rglob("*.weights.h5"))


def _blobs(cache):
    return sorted(p.name for p in cache.rglob("blobs/*"))


def _build():
    return ku.create_model(f"{REPO.split('/')[1]}", include_top=False, input_shape=SMALL)


@pytest.mark.slow
def test_a_good_file_downloads_verifies_and_converts(hub, checkpoint):
    model = _build()
    assert [path for method, path in hub.requests if method == "GET" and "resolve" in path] == [
        f"/{REPO}/resolve/main/{FILE}"
    ]
    digest = hashlib.sha256(checkpoint).hexdigest()
    assert _blobs(hub.cache) == [digest]
    assert len(_converted()) == 1 and _converted()[0].name.startswith(digest[:16])
    assert model.get_layer("conv1_conv").kernel.shape == (7, 7, 3, 64)


@pytest.mark.slow
def test_same_size_other_bytes_is_refused(hub, checkpoint):
    hub.mode = "swapped"
    good = hashlib.sha256(checkpoint).hexdigest()
    bad = hashlib.sha256(bytes(reversed(checkpoint))).hexdigest()
    with pytest.raises(weights_lib.WeightsVerificationError) as error:
        _build()
    message = str(error.value)
    assert f"{REPO}/{FILE}" in message and "the Hub's LFS sha256" in message
    assert good in message and bad in message
    assert _blobs(hub.cache) == [] and _converted() == []
    assert not list(hub.cache.rglob(f"snapshots/*/{FILE}"))


def test_a_truncated_body_leaves_nothing(hub):
    hub.mode = "truncated"
    with pytest.raises(OSError, match=f"could not get {REPO}/{FILE}.*hf download {REPO} {FILE}"):
        _build()
    assert _blobs(hub.cache) == [] and _converted() == []


def test_a_missing_file_names_the_repository(hub):
    hub.mode = "missing"
    with pytest.raises(ValueError, match=f"resnet18.a1_in1k: the Hub has no {REPO}/{FILE}"):
        _build()
    assert _blobs(hub.cache) == [] and _converted() == []


def test_the_server_down_says_how_to_prefetch(hub):
    hub.__exit__()
    with pytest.raises(OSError, match=f"hf download {REPO} {FILE}.*or pass a local file"):
        _build()
    assert _blobs(hub.cache) == [] and _converted() == []


@pytest.mark.slow
def test_hf_endpoint_from_the_environment(hub, tmp_path):
    """HF_ENDPOINT and HF_HUB_CACHE set before import, as a user sets them."""
    code = textwrap.dedent("""
        import keras_ultradeep as ku
        model = ku.create_model("resnet18.a1_in1k", include_top=False, input_shape=(32, 32, 3))
        print(model.count_params())
    """)
    env = {
        **os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(hub.cache),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 11_000_000
    assert ("GET", f"/{REPO}/resolve/main/{FILE}") in hub.requests
