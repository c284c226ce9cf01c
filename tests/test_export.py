"""Export to SavedModel, TFLite/LiteRT and ONNX: reloaded with the runtime that
serves it and compared, and nothing left behind by a failed call.

``tests/test_export_families.py`` does the same for a model of every family.
"""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ultradeep as ku
from keras_ultradeep import export

pytestmark = pytest.mark.slow  # every test here runs models end to end (seconds to minutes)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small DenseNet with random BatchNorm statistics, saved as .keras."""
    model = ku.create_model(
        "densenet40_k12", weights=None, depth=10, growth_rate=4, input_shape=(16, 16, 3)
    )
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_export_reloads_with_the_same_outputs(model_file, tmp_path, rng):
    output = tmp_path / "exported"
    difference = export.export_model(model_file, output)
    assert 0.0 <= difference <= export.VERIFY_TOLERANCE
    assert (output / "saved_model.pb").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["exported"]  # no temporary folder left

    # Independently of the built-in check: reload and compare on other data.
    model = keras.models.load_model(model_file, safe_mode=True)
    x = rng.normal(0.0, 1.0, (3, 16, 16, 3)).astype("float32")
    loaded = tf.saved_model.load(str(output))
    served = loaded.serve(tf.constant(x)).numpy()
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert served.shape == (3, 10)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(served.sum(axis=-1), 1.0, rtol=1e-5)


def test_existing_output_is_kept_unless_overwrite(model_file, tmp_path):
    output = tmp_path / "exported"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="output: .* already exists; pass overwrite=True"):
        export.export_model(model_file, output)
    assert _listing(output) == ["keep.txt"]

    export.export_model(model_file, output, overwrite=True)
    assert not (output / "keep.txt").exists() and (output / "saved_model.pb").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["exported"]


def test_failed_verification_writes_nothing(model_file, tmp_path, monkeypatch):
    def wrong_runner(path, batch):
        return np.zeros((len(batch), 10), "float32")

    monkeypatch.setitem(export._FORMATS, "saved_model", export._Format("tf_saved_model", wrong_runner))
    output = tmp_path / "exported"
    with pytest.raises(export.ExportVerificationError, match="differs from the Keras model by up to"):
        export.export_model(model_file, output)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("format, suffix", [("tflite", ".tflite"), ("onnx", ".onnx")])
def test_file_formats_reload_in_their_runtime(model_file, tmp_path, rng, format, suffix):
    output = tmp_path / f"model{suffix}"
    difference = export.export_model(model_file, output, format=format)
    assert 0.0 <= difference <= export.VERIFY_TOLERANCE
    assert output.is_file() and [p.name for p in tmp_path.iterdir()] == [output.name]

    # Independently of the built-in check: other data, another batch size.
    model = keras.models.load_model(model_file, safe_mode=True)
    x = rng.normal(0.0, 1.0, (3, 16, 16, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        (served,) = session.run(None, {session.get_inputs()[0].name: x})
    else:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(output)).get_signature_runner()
        (served,) = runner(**{next(iter(runner.get_input_details())): x}).values()
    assert served.shape == (3, 10)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)


def test_file_format_needs_its_suffix_and_its_runtime(model_file, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="output: a onnx export is a file ending in '.onnx'"):
        export.export_model(model_file, tmp_path / "model.tflite", format="onnx")

    real_find_spec = export.importlib.util.find_spec
    monkeypatch.setattr(
        export.importlib.util, "find_spec", lambda name: None if name == "tf2onnx" else real_find_spec(name)
    )
    with pytest.raises(ValueError, match=r"format: 'onnx' needs tf2onnx; .*keras-ultradeep\[export\]"):
        export.export_model(model_file, tmp_path / "model.onnx", format="onnx")
    # On JAX, Keras converts through jax2onnx: the message names the extra that brings it.
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match=r"format: 'onnx' needs jax2onnx and onnxruntime; .*keras-ultradeep\[jax-export\]"):
        export.export_model(model_file, tmp_path / "model.onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(model_file, tmp_path):
    with pytest.raises(ValueError, match="format: expected one of 'saved_model', 'tflite', 'onnx', got 'coreml'"):
        export.export_model(model_file, tmp_path / "out", format="coreml")
    with pytest.raises(FileNotFoundError, match="model_file: no such file"):
        export.export_model(tmp_path / "missing.keras", tmp_path / "out")
    with pytest.raises(TypeError, match="output: expected a path, got 3"):
        export.export_model(model_file, 3)
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("not a zip")
    with pytest.raises(ValueError, match="model_file: cannot load .*notes.keras"):
        export.export_model(not_a_model, tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.keras"]


def test_a_training_runs_model_exports_in_a_fresh_process(tmp_path):
    """A run's model.keras carries this package's optimizer; the export command (a new
    process that never imported keras_ultradeep.training) must still load it."""
    from keras_ultradeep.training.optimizers import Adam

    model = ku.create_model("densenet40_k12", weights=None, depth=10, growth_rate=4, input_shape=(8, 8, 1),
                            classes=3)
    model.compile(Adam(1e-3, coupled_weight_decay=1e-4), "sparse_categorical_crossentropy")
    model.train_on_batch(np.zeros((2, 8, 8, 1), "float32"), np.array([0, 1]))
    model.save(tmp_path / "model.keras")
    output = tmp_path / "saved_model"
    result = subprocess.run(
        [sys.executable, "-m", "keras_ultradeep", "export", str(tmp_path / "model.keras"),
         "--format", "saved_model", "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (output / "saved_model.pb").exists()
