"""Training with ``fit``: the run folder, resuming after SIGKILL, datasets, bad arguments.

Every run trains a tiny DenseNet (L=10, k=4, about 6k parameters) on the 8x8
digits for a few epochs.
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_ultradeep.training import datasets, fit

TINY = {"depth": 10, "growth_rate": 4}
TINY_ARGS = ["--model-arg", "depth=10", "--model-arg", "growth_rate=4"]


def _train(output, **overrides):
    arguments = dict(
        dataset="digits",
        epochs=2,
        batch_size=64,
        output=output,
        model_kwargs=TINY,
        verbose=0,
    )
    arguments.update(overrides)
    return fit.train("densenet40_k12", **arguments)


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One complete two-epoch run, shared by the tests that only read it."""
    output = tmp_path_factory.mktemp("run") / "digits"
    record = _train(output)
    return output, record


def test_run_folder_contents(finished_run):
    output, record = finished_run
    assert _listing(output) == [
        "checkpoints",
        "checkpoints/best.keras",
        "checkpoints/last.keras",
        "log.csv",
        "metrics.json",
        "model.keras",
    ]  # the backup is removed and no temporary is left once the run is complete
    metrics = _read_json(output / "metrics.json")
    assert metrics == record
    assert metrics["complete"] is True
    assert metrics["epochs_completed"] == 2
    assert [entry["epoch"] for entry in metrics["history"]] == [1, 2]
    assert metrics["val_accuracy"] == metrics["history"][-1]["val_accuracy"]
    assert metrics["best_val_accuracy"] == max(e["val_accuracy"] for e in metrics["history"])
    assert (metrics["train_examples"], metrics["validation_examples"]) == (1437, 360)
    assert metrics["input_shape"] == [8, 8, 1] and metrics["classes"] == 10
    lines = (output / "log.csv").read_text().splitlines()
    assert lines[0].split(",")[0] == "epoch" and "val_accuracy" in lines[0]
    assert len(lines) == 3


def test_saved_model_is_the_trained_model(finished_run):
    output, record = finished_run
    model = keras.models.load_model(output / "model.keras", safe_mode=True)
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 10)
    assert model.count_params() == record["params"]["total"]
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and all(layer.momentum == fit.BATCH_NORM_MOMENTUM for layer in bn)

    # The model evaluates to the accuracy recorded for its last epoch.
    data = datasets.load_dataset("digits", batch_size=64, min_size=8)
    images, labels = zip(*data.validation.unbatch().as_numpy_iterator())
    predictions = model.predict(np.stack(images), verbose=0).argmax(axis=-1)
    accuracy = float(np.mean(predictions == np.array(labels)))
    assert accuracy == pytest.approx(record["val_accuracy"], abs=1e-6)
    last = keras.models.load_model(output / "checkpoints" / "last.keras", safe_mode=True)
    for a, b in zip(model.weights, last.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_finished_run_is_not_trained_again(finished_run, capsys):
    output, record = finished_run
    before = {p: p.stat().st_mtime_ns for p in output.rglob("*") if p.is_file()}
    assert _train(output) == record
    assert "already complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in output.rglob("*") if p.is_file()} == before


def test_another_run_in_the_same_folder_is_refused(finished_run):
    output, _ = finished_run
    before = _listing(output)
    with pytest.raises(ValueError, match=r"output: .* holds another training run \(epochs 2 there, 3 here\)"):
        _train(output, epochs=3)
    assert _listing(output) == before


def test_training_learns_the_digits(tmp_path):
    """A small DenseNet gets well above chance in a few epochs (the main job runs longer)."""
    record = _train(tmp_path / "run", epochs=4, batch_size=32, model_kwargs={"depth": 16, "growth_rate": 8})
    assert record["best_val_accuracy"] >= 0.8, record["history"]


def test_resumes_after_sigkill(tmp_path):
    """A real ``kill -9`` mid-run; the rerun continues from the last backed-up epoch."""
    output = tmp_path / "run"
    command = [
        sys.executable, "-m", "keras_ultradeep", "train", "densenet40_k12",
        "--dataset", "digits", "--epochs", "6", "--batch-size", "64", "--output", str(output),
        *TINY_ARGS,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    metrics = output / "metrics.json"
    deadline = time.monotonic() + 300
    try:
        # Two epochs recorded: the first one's backup is certainly written.
        while not (metrics.exists() and _read_json(metrics)["epochs_completed"] >= 2):
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed = _read_json(metrics)
    assert not killed["complete"] and 2 <= killed["epochs_completed"] < 6
    assert not (output / "model.keras").exists()
    assert (output / "backup").is_dir()

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Resuming from the backup after epoch" in rerun.stdout
    resumed_at = int(rerun.stdout.split("Resuming from the backup after epoch ")[1].split("/")[0])
    assert 1 <= resumed_at <= killed["epochs_completed"]

    final = _read_json(metrics)
    assert final["complete"] and final["epochs_completed"] == 6
    assert [entry["epoch"] for entry in final["history"]] == [1, 2, 3, 4, 5, 6]
    # The epochs finished before the kill were kept, not trained again.
    assert final["history"][:resumed_at] == killed["history"][:resumed_at]
    assert final["wall_time_s"] > killed["wall_time_s"]
    assert keras.models.load_model(output / "model.keras", safe_mode=True).output_shape == (None, 10)
    assert not any(".tmp-" in name for name in _listing(output))


def test_tfds_dataset(tmp_path):
    """Any other name goes through TensorFlow Datasets (mocked: no download here)."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):
        data = datasets.load_dataset("mnist", batch_size=16, min_size=8)
        images, labels = next(iter(data.train))
        assert data.image_shape == (28, 28, 1) and data.num_classes == 10
        assert images.shape == (16, 28, 28, 1) and images.dtype == "float32"
        assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
        assert labels.shape == (16,)

        resized = datasets.load_dataset("mnist", batch_size=8, input_size=12)
        assert next(iter(resized.validation))[0].shape == (8, 12, 12, 1)

        record = _train(tmp_path / "mnist", dataset="mnist", epochs=1, batch_size=16)
    assert record["complete"] and record["input_shape"] == [28, 28, 1]
    assert record["train_examples"] == 64


def test_digits_resized_to_the_requested_size():
    data = datasets.load_dataset("digits", batch_size=10, input_size=32, seed=1)
    images, labels = next(iter(data.train))
    assert images.shape == (10, 32, 32, 1) and labels.dtype == "int64"
    assert data.image_shape == (32, 32, 1)
    # The seed fixes the split: the same validation set twice.
    again = datasets.load_dataset("digits", batch_size=10, input_size=32, seed=1)
    np.testing.assert_array_equal(
        next(iter(data.validation))[1].numpy(), next(iter(again.validation))[1].numpy()
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "epochs: expected a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size: expected a positive integer, got 2.5"),
        ({"learning_rate": -1.0}, "learning_rate: expected a positive number"),
        ({"seed": -3}, "seed: expected a non-negative integer"),
        ({"input_size": 4}, "input_size: densenet40_k12 needs inputs of at least 8x8, got 4"),
        ({"dataset": "mnistt"}, "dataset: unknown dataset 'mnistt'. Did you mean 'mnist'"),
        ({"model_kwargs": {"classes": 3}}, "model_kwargs: classes cannot be set"),
        ({"model_kwargs": {"depth": 11}}, "depth"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path, overrides, message):
    output = tmp_path / "run"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        _train(output, **overrides)
    assert not output.exists()


def test_unknown_model_and_bad_output(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'densenet41_k12'"):
        fit.train("densenet41_k12", dataset="digits", epochs=1, batch_size=8, output=tmp_path / "a")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(ValueError, match="output: .* exists and is not a folder"):
        _train(not_a_folder)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="output: .* is not a keras-ultradeep metrics file"):
        _train(foreign)
    assert (foreign / "metrics.json").read_text() == "[1, 2]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "foreign"]
