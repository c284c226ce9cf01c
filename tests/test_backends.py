"""Every backend: every registered model builds to its zoo row and predicts on
PyTorch (on JAX, one per family builder); the custom layers, a model of each family and the weight files
written on TensorFlow give the same numbers on JAX and PyTorch; each family
trains a step (float32 and mixed_float16) and round-trips through ``.keras``
(safe_mode) there; export and ``train --distribute`` work there or name the backend.

Keras fixes its backend when imported, so each backend runs
tests/backends_worker.py in a process of its own: TensorFlow writes the
reference (weights, ``.keras`` files, outputs) and the other backend loads it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_ultradeep as ku

from families import one_per_family_builder

pytestmark = pytest.mark.slow  # every test here runs models end to end (seconds to minutes)

WORKER = Path(__file__).with_name("backends_worker.py")
OTHERS = ("jax", "torch")
# The heavy checks' smoke table: the 12 families a new user tried first (issue 17) on
# PyTorch; on JAX, whose XLA compilations cost most of this file's time (~55 s a
# family), three whose layers take backend-specific paths: DenseBottleneck's
# recomputation, grouped convolutions with stochastic depth, fractal joins with
# drop-path sampling. Every layer of ours is compared on JAX in test_layers_match_tensorflow.
SMOKE_FAMILIES = {
    "torch": (
        "densenet_cifar", "resnet_cifar", "fractalnet", "dpn", "cspnet", "highway", "alexnet",
        "inception_v4", "rir", "drn", "lenet", "inception_resnet_v1",
    ),
    "jax": ("densenet_cifar", "resnet_cifar", "fractalnet"),
}


def _run(backend, part, folder, mode, **env):
    result = subprocess.run(
        [sys.executable, str(WORKER), part, str(folder), mode],
        env={**os.environ, "KERAS_BACKEND": backend, **env},
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"{part} on {backend} failed:\n{result.stderr[-4000:]}"
    return json.loads((Path(folder) / f"{part}.{backend}.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """TensorFlow's files and outputs, written once per part on first use."""
    folders = {}

    def get(part, **env):
        if part not in folders:
            folder = tmp_path_factory.mktemp(f"backends_{part}")
            _run("tensorflow", part, folder, "reference", **env)
            folders[part] = folder
        return folders[part]

    return get


def _relative(expected, actual):
    return float(np.max(np.abs(expected - actual)) / max(1.0, float(np.max(np.abs(expected)))))


@pytest.mark.parametrize("backend", OTHERS)
def test_layers_match_tensorflow(backend, reference):
    folder = reference("layers")
    cases = _run(backend, "layers", folder, "check")
    random_forms = cases.pop("random_forms")
    assert random_forms == dict.fromkeys(
        ("stochastic_depth_inference", "stochastic_depth_training", "drop_path_sampler", "fractal_join_local"), True
    ), backend
    from layer_cases import CASES

    assert {case.layer for case in CASES} < set(cases)  # every exported layer, and the variants
    for name, keys in cases.items():
        expected = np.load(folder / f"layer_{name}.tensorflow.npz")
        actual = np.load(folder / f"layer_{name}.{backend}.npz")
        assert sorted(expected.files) == keys
        for key in keys:
            assert expected[key].shape == actual[key].shape, (name, key)
            # Inference and training outputs, and the weights after one SGD step (the gradients).
            assert _relative(expected[key], actual[key]) < 2e-5, (name, key, backend)


@pytest.mark.parametrize("backend", OTHERS)
def test_families_load_train_and_round_trip(backend, reference):
    folder = reference("families", BACKENDS_FAMILIES=",".join(SMOKE_FAMILIES["torch"]))
    results = _run(backend, "families", folder, "check", BACKENDS_FAMILIES=",".join(SMOKE_FAMILIES[backend]))
    assert sorted(results) == sorted(SMOKE_FAMILIES[backend])
    for family in results:
        expected = np.load(folder / f"family_{family}.tensorflow.npz")["predicted"]
        actual = np.load(folder / f"family_{family}.{backend}.npz")
        # TensorFlow's weights file and its .keras file (safe_mode), and this backend's own .keras.
        for key in ("predicted", "loaded", "round_trip"):
            assert _relative(expected, actual[key]) < 1e-4, (family, key, backend)
        # Logits that depend on the input (a constant output would hide a wrong backend).
        # ... by more than twice the parity bound above (DRN's random-weight logits vary by 5e-4).
        assert np.std(expected, axis=0).max() > 2e-4, family
        for policy in ("float32", "mixed_float16"):
            assert np.isfinite(actual[f"{policy}_loss"]), (family, policy)
            assert actual[f"{policy}_finite"] and actual[f"{policy}_head_moved"], (family, policy)
        assert "float16" in actual["mixed_float16_compute_dtypes"], family


@pytest.mark.parametrize("backend", OTHERS)
def test_registered_models_build_and_predict(backend, tmp_path):
    """What ``create_model`` gives on this backend: every registered model on PyTorch;
    on JAX, where each new op shape costs a compilation even eagerly (DenseNet-121:
    25 s to build, 80 s for a first call), the smallest model of each family builder."""
    names = ku.list_models() if backend == "torch" else one_per_family_builder()
    results = _run(backend, "registered", tmp_path, "check", BACKENDS_MODELS=",".join(names))
    assert sorted(results) == sorted(names)
    for name, result in results.items():
        # Parameter counts, MACs and input shape: the zoo row measured on TensorFlow.
        assert result["row"] == result["expected"], (name, backend)
        assert result["output_shape"] == [1, result["classes"]] and result["classes"] in (10, 1000), name
        assert result["finite"] and abs(result["sum"] - 1.0) < 1e-4, (name, backend, result)


@pytest.mark.torch
@pytest.mark.parametrize("backend", OTHERS)
def test_tensorflow_weight_files(backend, reference):
    """keras.applications' legacy .h5 (ResNet-50) and a converted timm checkpoint (ResNet-18)."""
    folder = reference("weights")
    _run(backend, "weights", folder, "check")
    expected = np.load(folder / "weights.tensorflow.npz")
    actual = np.load(folder / f"weights.{backend}.npz")
    assert _relative(expected["applications"], actual["applications"]) < 1e-4
    assert _relative(expected["converted"], actual["converted"]) < 1e-4
    assert _relative(expected["timm"], expected["converted"]) < 1e-4  # the conversion itself
    assert np.std(expected["applications"], axis=0).max() > 1e-3 and np.std(expected["timm"], axis=0).max() > 1e-3


@pytest.mark.parametrize("backend", OTHERS)
def test_tensorflow_only_features_work_or_name_the_backend(backend, tmp_path):
    # Two host devices, so that JAX's DataParallel has replicas to spread over.
    results = _run(backend, "features", tmp_path, "check", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    # Keras exports these from this backend (ONNX on JAX through jax2onnx, the jax-export extra);
    # verified by running the export against the model.
    works = {"jax": ("export_saved_model", "export_onnx"), "torch": ("export_onnx",)}[backend]
    for key in works:
        assert results[key]["difference"] <= 1e-5, (key, results[key])
    for key in ("export_saved_model", "export_tflite", "export_onnx"):
        if key in works:
            continue
        assert f"Keras runs on {backend} here; run it with KERAS_BACKEND=tensorflow" in results[key]["error"]
        assert not results[key]["written"]
    assert results["distribute_none"]["replicas"] == 1
    if backend == "jax":  # train --distribute mirrored: Keras' DataParallel over the JAX devices
        assert results["distribute_mirrored"] == {"replicas": 2, "distribution": "DataParallel"}
    else:
        assert "mirrored is tf.distribute's and Keras runs on torch here" in results["distribute_mirrored"]["error"]
    assert f"multi_worker is tf.distribute's and Keras runs on {backend} here" in (
        results["distribute_multi_worker"]["error"])
