"""Weights: the manifest, hash-checked atomic downloads, pretrained loading, bad files.

Downloads run against a server on 127.0.0.1 (the ``file_server`` fixture);
KERAS_HOME is a fresh folder per test (conftest).
"""

import hashlib
import os

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep import registry
from keras_ultradeep import weights as weights_lib
from keras_ultradeep.weights import table as weights_table


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _files_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------ the manifest


def test_manifest_entries_are_complete_and_registered():
    rows = weights_lib.rows()
    assert rows
    for row in rows:
        registry.model_entry(row.arch)  # raises for an unknown model
        assert row.licence and row.classes == 1000
        if row.format == "keras-h5":
            assert set(row.files) == {"top", "notop"}
        else:
            assert set(row.files) == {"checkpoint"}
        for spec in row.files.values():
            if "url" in spec:
                assert spec["url"].startswith("https://")
            if "hash" in spec:
                algorithm, _, digest = spec["hash"].partition(":")
                assert len(digest) == {"sha256": 64, "md5": 32}[algorithm]
                int(digest, 16)
        if row.source == "torchvision":
            assert row.files["checkpoint"]["file_name"].split("-")[-1].startswith(
                row.files["checkpoint"]["hash_prefix"]
            )


def test_list_models_filters_by_weights():
    with_weights = ku.list_models(weights=True)
    assert with_weights == sorted({row.arch for row in weights_lib.rows()})
    assert set(ku.list_models("densenet*", weights="imagenet")) <= set(with_weights)
    assert "densenet264" not in with_weights
    assert ku.list_models(weights="no-such-tag") == []


# -------------------------------------------------------------------- downloads


def test_download_verifies_and_writes_atomically(file_server, tmp_path):
    root, url_of, requests = file_server
    payload = os.urandom(3 * (1 << 20) + 7)  # several chunks
    (root / "w.h5").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "w.h5"

    assert weights_lib.download(url_of("w.h5"), dest, "sha256:" + digest) == dest
    assert dest.read_bytes() == payload
    assert len(requests) == 1
    # Cached and verified: no second request.
    weights_lib.download(url_of("w.h5"), dest, "sha256:" + digest)
    assert len(requests) == 1
    # md5, as keras.applications publishes, is accepted too.
    md5_dest = tmp_path / "cache" / "w_md5.h5"
    weights_lib.download(url_of("w.h5"), md5_dest, "md5:" + hashlib.md5(payload).hexdigest())
    assert md5_dest.read_bytes() == payload


def test_download_with_wrong_hash_leaves_nothing(file_server, tmp_path):
    root, url_of, _ = file_server
    (root / "w.h5").write_bytes(b"not the published file")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="does not match its published sha256"):
        weights_lib.download(url_of("w.h5"), cache / "w.h5", "sha256:" + "0" * 64)
    assert _files_in(cache) == []


def test_failed_download_leaves_nothing(file_server, tmp_path):
    _, url_of, _ = file_server
    cache = tmp_path / "cache"
    with pytest.raises(OSError):  # urllib's HTTPError for the 404
        weights_lib.download(url_of("missing.h5"), cache / "w.h5", "sha256:" + "0" * 64)
    assert _files_in(cache) == []


def test_corrupted_cached_file_is_reported_and_not_modified(file_server, tmp_path):
    root, url_of, requests = file_server
    (root / "w.h5").write_bytes(b"published bytes")
    dest = tmp_path / "cache" / "w.h5"
    dest.parent.mkdir()
    dest.write_bytes(b"published by")  # truncated
    with pytest.raises(ValueError, match="truncated, corrupted"):
        weights_lib.download(url_of("w.h5"), dest, "sha256:" + hashlib.sha256(b"published bytes").hexdigest())
    assert dest.read_bytes() == b"published by"
    assert requests == []


def test_bad_hash_spec():
    with pytest.raises(ValueError, match="sha256:<hex>"):
        weights_lib.download("http://127.0.0.1:9/x", "/nonexistent/x", "crc32:1234")


# ------------------------------------------------- weights="imagenet" end to end


@pytest.fixture
def served_keras_weights(file_server, monkeypatch, rng):
    """keras.applications DenseNet121 with random weights, published like the
    real files (legacy HDF5, top and no-top) on the local server, and a
    manifest entry pointing at them."""
    root, url_of, requests = file_server
    reference = keras.applications.DenseNet121(weights=None)
    for weight in reference.weights:
        low, high = (0.5, 1.5) if "variance" in weight.path or "gamma" in weight.path else (-0.05, 0.05)
        weight.assign(rng.uniform(low, high, weight.shape).astype("float32"))
    reference_notop = keras.applications.DenseNet121(weights=None, include_top=False)
    reference_notop.set_weights(reference.get_weights()[: len(reference_notop.weights)])
    reference.save(root / "top.h5")
    reference_notop.save(root / "notop.h5")
    row = weights_lib.Weights(
        arch="densenet121",
        tag="imagenet",
        source="keras-applications",
        format="keras-h5",
        files={
            "top": {"url": url_of("top.h5"), "file_name": "top.h5", "hash": "md5:" + hashlib.md5((root / "top.h5").read_bytes()).hexdigest()},
            "notop": {"url": url_of("notop.h5"), "file_name": "notop.h5", "hash": "sha256:" + _sha256(root / "notop.h5")},
        },
        classes=1000,
        licence="test",
        top1={"224": 75.0},
        data={},
    )
    monkeypatch.setattr(weights_table, "index", lambda: {"densenet121": {"imagenet": row}})
    return reference, reference_notop, requests


@pytest.mark.slow
def test_pretrained_weights_download_verify_and_match(served_keras_weights, rng):
    reference, reference_notop, requests = served_keras_weights
    x = rng.uniform(0, 1, (1, 224, 224, 3)).astype("float32")

    model = ku.DenseNet121(weights="imagenet")
    np.testing.assert_allclose(model(x), reference(x), atol=1e-6)
    assert requests == ["/top.h5"]
    assert (weights_lib.cache_dir() / "top.h5").exists()

    small = rng.uniform(0, 1, (1, 64, 64, 3)).astype("float32")
    features = ku.DenseNet121(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    np.testing.assert_allclose(features(small), reference_notop(small), atol=1e-5)
    assert requests == ["/top.h5", "/notop.h5"]


@pytest.mark.slow
def test_corrupted_cache_gives_clear_error(served_keras_weights):
    _, _, requests = served_keras_weights
    ku.DenseNet121(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    cached = weights_lib.cache_dir() / "notop.h5"
    data = cached.read_bytes()
    cached.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        ku.DenseNet121(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert cached.read_bytes() == data[: len(data) // 2]
    assert requests == ["/notop.h5"]


# ----------------------------------------------------------- weights=<a path>


@pytest.fixture(scope="module")
def small_weights_file(tmp_path_factory):
    model = ku.create_model("densenet40_k12", depth=10, growth_rate=4, weights=None)
    path = tmp_path_factory.mktemp("weights") / "small.weights.h5"
    model.save_weights(path)
    return path


def test_truncated_weights_file(small_weights_file, tmp_path):
    broken = tmp_path / "broken.weights.h5"
    data = small_weights_file.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not load .*broken.weights.h5.* into model"):
        ku.create_model("densenet40_k12", depth=10, growth_rate=4, weights=str(broken))
    assert broken.read_bytes() == data[: len(data) // 2]


def test_foreign_weights_file(small_weights_file):
    before = _sha256(small_weights_file)
    with pytest.raises(ValueError, match="could not load"):
        ku.create_model("densenet40_k12", depth=13, growth_rate=4, weights=str(small_weights_file))
    assert _sha256(small_weights_file) == before


def test_weights_path_round_trip(small_weights_file, rng):
    model = ku.create_model("densenet40_k12", depth=10, growth_rate=4, weights=small_weights_file)
    again = ku.create_model("densenet40_k12", depth=10, growth_rate=4, weights=str(small_weights_file))
    x = rng.uniform(0, 1, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model(x), again(x))


# ------------------------------------------------------------------- registry


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="densenet121"):
        ku.create_model("densenet12")
    with pytest.raises(TypeError, match="name"):
        ku.create_model(121)


def test_every_builder_is_registered_with_a_snake_case_name():
    names = ku.list_models()
    assert names == sorted(names)
    assert all(name == name.lower() and " " not in name for name in names)
    for expected in (
        "densenet121", "densenet169", "densenet201", "densenet264", "densenet161",
        "densenet40_k12", "densenet100_k12", "densenet100_k24",
        "densenet_bc100_k12", "densenet_bc250_k24", "densenet_bc190_k40",
    ):
        assert expected in names
    assert ku.list_models("densenet_bc*") == ["densenet_bc100_k12", "densenet_bc190_k40", "densenet_bc250_k24"]


def test_dotted_name_selects_a_weights_tag():
    # densenet40_k12 has no pretrained weights, so the tag is rejected by name.
    with pytest.raises(ValueError, match="weights: .*'tv_in1k'"):
        ku.create_model("densenet40_k12.tv_in1k")


def test_list_models_argument_errors():
    with pytest.raises(TypeError, match="pattern"):
        ku.list_models(3)
    with pytest.raises(TypeError, match="weights"):
        ku.list_models(weights=3)
