"""Training with ``fit``: the run folder, resuming after SIGKILL (to the uninterrupted run's
exact state), NaN handling, mixed precision and XLA, datasets (TFDS mocked), bad arguments.

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

from keras_ultradeep.training import build, datasets, fit

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


@pytest.mark.slow
def test_run_folder_contents(finished_run):
    output, record = finished_run
    listing = _listing(output)
    assert [name for name in listing if not name.startswith("tensorboard/")] == [
        "checkpoints",
        "checkpoints/best.keras",
        "checkpoints/last.keras",
        "log.csv",
        "metrics.json",
        "model.keras",
        "tensorboard",
        "training_curves.png",
    ]  # the resume checkpoints are removed and no temporary is left once the run is complete
    assert "tensorboard/train" in listing and "tensorboard/validation" in listing
    assert any(name.startswith("tensorboard/train/events.out.tfevents") for name in listing)
    assert (output / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
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


@pytest.mark.slow
def test_saved_model_is_the_trained_model(finished_run):
    output, record = finished_run
    model = keras.models.load_model(output / "model.keras", safe_mode=True)
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 10)
    assert model.count_params() == record["params"]["total"]
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and all(layer.momentum == build.BATCH_NORM_MOMENTUM for layer in bn)

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


@pytest.mark.slow
def test_training_learns_the_digits(tmp_path):
    """A small DenseNet gets well above chance in a few epochs (the main job runs longer)."""
    record = _train(tmp_path / "run", epochs=4, batch_size=32, model_kwargs={"depth": 16, "growth_rate": 8})
    assert record["best_val_accuracy"] >= 0.8, record["history"]


@pytest.mark.slow
def test_resumes_after_sigkill(tmp_path):
    """A real ``kill -9`` mid-run; the rerun continues from the last checkpointed epoch."""
    output = tmp_path / "run"
    command = [
        sys.executable, "-m", "keras_ultradeep", "train", "densenet40_k12",
        "--dataset", "digits", "--epochs", "4", "--batch-size", "64", "--output", str(output),
        *TINY_ARGS,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    metrics = output / "metrics.json"
    deadline = time.monotonic() + 300
    try:
        # Two epochs recorded: the first one's checkpoint is certainly written.
        while not (metrics.exists() and _read_json(metrics)["epochs_completed"] >= 2):
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed = _read_json(metrics)
    assert not killed["complete"] and 2 <= killed["epochs_completed"] < 4
    assert not (output / "model.keras").exists()
    assert list((output / "checkpoints").glob("epoch-*.keras"))

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Resuming from the checkpoint after epoch" in rerun.stdout
    resumed_at = int(rerun.stdout.split("Resuming from the checkpoint after epoch ")[1].split("/")[0])
    assert 1 <= resumed_at <= killed["epochs_completed"]

    final = _read_json(metrics)
    assert final["complete"] and final["epochs_completed"] == 4
    assert [entry["epoch"] for entry in final["history"]] == [1, 2, 3, 4]
    # The epochs finished before the kill were kept, not trained again.
    assert final["history"][:resumed_at] == killed["history"][:resumed_at]
    assert final["wall_time_s"] > killed["wall_time_s"]
    assert keras.models.load_model(output / "model.keras", safe_mode=True).output_shape == (None, 10)
    assert not any(".tmp-" in name for name in _listing(output))


@pytest.mark.slow
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


def test_epoch_order_ignores_the_global_seed():
    """Each epoch's order depends on the pipeline's seed only: the same under any
    global seed, 0 included (tf.data cannot combine a global seed of 0 with a tensor
    op seed unless the pipeline sets its own graph seed), and the global seed is kept."""
    import tensorflow as tf

    def first_epoch(global_seed):
        tf.random.set_seed(global_seed)
        data = datasets.load_dataset("digits", batch_size=64, min_size=8, seed=2)
        labels = np.concatenate([y.numpy() for _, y in data.train_epochs(0, 1)])
        assert tf.compat.v1.random.get_seed(None)[0] == global_seed  # the caller's global seed, kept
        return labels

    try:
        at_zero, at_seven = first_epoch(0), first_epoch(7)
    finally:
        tf.random.set_seed(None)
    np.testing.assert_array_equal(at_zero, at_seven)
    assert len(at_zero) > 1000 and not np.array_equal(at_zero, np.sort(at_zero))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "epochs: expected a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size: expected a positive integer, got 2.5"),
        ({"learning_rate": -1.0}, "learning_rate: expected a positive number"),
        ({"recipe": "densenet"}, "recipe: unknown recipe 'densenet'"),
        ({"mixed_precision": "float16"}, "mixed_precision: expected one of 'mixed_float16', 'mixed_bfloat16'"),
        ({"distribute": "tpu"}, "distribute: expected one of 'none', 'mirrored', 'multi_worker'"),
        ({"seed": -3}, "seed: expected an integer >= 0, got -3"),
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


# ------------------------------------------------- fault tolerance: same end state

_DETERMINISTIC_RUN = """
import sys
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)
from keras_ultradeep.training import fit
fit.train("densenet40_k12", recipe="densenet_cifar", dataset="digits", epochs=4, batch_size=64,
          output=sys.argv[1], model_kwargs={"depth": 10, "growth_rate": 4}, verbose=0,
          tensorboard=False, plot=False)
"""


def _final_weights(output):
    model = keras.models.load_model(output / "model.keras", safe_mode=True)
    return [w.numpy() for w in model.weights], [v.numpy() for v in model.optimizer.variables]


@pytest.mark.slow
def test_a_killed_and_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    """SIGKILL at a random moment after the first checkpoint; the rerun continues from the
    last checkpoint (model, optimizer, schedule step, data order, augmentation) and ends
    with the uninterrupted run's weights and optimizer state, bit for bit."""
    script = tmp_path / "run.py"
    script.write_text(_DETERMINISTIC_RUN)
    env = dict(os.environ, PYTHONPATH=os.getcwd(), PYTHONUNBUFFERED="1")
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    reference = subprocess.Popen([sys.executable, str(script), str(whole)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    process = subprocess.Popen([sys.executable, str(script), str(interrupted)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not list((interrupted / "checkpoints").glob("epoch-*.keras")):
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        time.sleep(np.random.default_rng().uniform(0.0, 1.0))  # anywhere in the next epochs
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    killed = _read_json(interrupted / "metrics.json")
    rerun = subprocess.run([sys.executable, str(script), str(interrupted)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _, reference_err = reference.communicate(timeout=600)
    assert reference.returncode == 0, reference_err.decode()[-3000:]

    final = _read_json(interrupted / "metrics.json")
    assert final["complete"] and [e["epoch"] for e in final["history"]] == [1, 2, 3, 4]
    if not killed["complete"] and "Resuming" in rerun.stdout:
        resumed_at = int(rerun.stdout.split("after epoch ")[1].split("/")[0])
        # No completed (checkpointed) epoch was trained again.
        assert final["history"][:resumed_at] == killed["history"][:resumed_at]
    weights, slots = _final_weights(whole)
    weights_resumed, slots_resumed = _final_weights(interrupted)
    for a, b in zip(weights + slots, weights_resumed + slots_resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    reference_history = _read_json(whole / "metrics.json")["history"]
    assert [e["loss"] for e in final["history"]] == [e["loss"] for e in reference_history]


class _PoisonAt(keras.callbacks.Callback):
    """Makes a kernel NaN at the start of epoch ``epoch`` (0-based), so the loss becomes NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.current = -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch and batch == 2:
            kernel = next(w for w in self.model.trainable_weights if len(w.shape) == 4)
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    output = tmp_path / "run"
    with pytest.raises(fit.TrainingDiverged, match="non-finite training loss .* at epoch 2, batch 3"):
        _train(output, epochs=3, callbacks=[_PoisonAt(1)])
    metrics = _read_json(output / "metrics.json")
    assert metrics["stopped"].startswith("non-finite training loss")
    assert metrics["epochs_completed"] == 1 and not metrics["complete"]
    assert not (output / "model.keras").exists()
    assert sorted(p.name for p in (output / "checkpoints").glob("*.keras")) == [
        "best.keras", "epoch-0001.keras", "last.keras",
    ]
    good = keras.models.load_model(output / "checkpoints" / "last.keras", safe_mode=True)
    assert all(np.isfinite(w.numpy()).all() for w in good.weights)
    assert int(good.optimizer.iterations) == metrics["steps_per_epoch"]

    # The rerun resumes from the good checkpoint and finishes.
    record = _train(output, epochs=3)
    assert record["complete"] and [e["epoch"] for e in record["history"]] == [1, 2, 3]
    assert record["stopped"] is None


# ------------------------------------------------- XLA and mixed precision


@pytest.mark.slow
def test_mixed_precision_with_a_float32_softmax(tmp_path):
    policy = "mixed_float16"
    record = _train(tmp_path / policy, epochs=1, mixed_precision=policy, tensorboard=False, plot=False)
    assert record["complete"] and record["mixed_precision"] == policy
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model = keras.models.load_model(tmp_path / policy / "model.keras", safe_mode=True)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs[0].compute_dtype == "float16"
    assert model.layers[-1].compute_dtype == "float32"
    assert model(np.zeros((2, 8, 8, 1), "float32")).dtype == "float32"


@pytest.mark.slow
def test_bfloat16_head_and_xla_compile(monkeypatch):
    data = datasets.load_dataset("digits", batch_size=8, min_size=8)
    model = build.build_model(
        "densenet40_k12", TINY, input_shape=data.image_shape, classes=data.num_classes,
        mixed_precision="mixed_bfloat16",
    )
    assert model.layers[1].compute_dtype == "bfloat16" and model.layers[-1].compute_dtype == "float32"
    assert model(np.zeros((1, 8, 8, 1), "float32")).dtype == "float32"
    build.compile_model(model, keras.optimizers.SGD(0.01), jit_compile=True)
    assert model.jit_compile is True
    x, y = next(iter(data.train))
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])


# ------------------------------------------------- TensorFlow Datasets, mocked


@pytest.mark.slow
def test_cifar_pipeline_normalizes_and_augments_deterministically():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24):
        plain = datasets.load_dataset("cifar10", batch_size=8, normalization="mean_std")
        augmented = datasets.load_dataset(
            "cifar10", batch_size=8, normalization="mean_std", augmentation="crop_flip", seed=3
        )
        assert plain.mean == datasets.KNOWN_STATS["cifar10"][0]
        images, labels = next(iter(plain.validation))
        assert images.shape == (8, 32, 32, 3) and labels.shape == (8,)
        raw, _ = next(iter(tfds.load("cifar10", split="test", as_supervised=True).batch(8)))
        expected = (raw.numpy() / 255.0 - np.array(plain.mean)) / np.array(plain.std)
        np.testing.assert_allclose(images.numpy(), expected, rtol=1e-5, atol=1e-5)

        def epoch(data, index):
            return np.concatenate([x.numpy() for x, _ in data.train_epochs(index, index + 1)])

        first, second = epoch(augmented, 0), epoch(augmented, 1)
        np.testing.assert_array_equal(first, epoch(augmented, 0))  # the same epoch, the same data
        assert not np.array_equal(first, second)  # another epoch: another order and crops
        # Resuming at epoch 1 yields exactly epoch 1 of an uninterrupted pipeline.
        both = np.concatenate([x.numpy() for x, _ in augmented.train_epochs(0, 2)])
        np.testing.assert_array_equal(both[len(first):], second)
        # ``train`` (for a plain fit) reshuffles and re-augments at every pass.
        passes = [np.concatenate([x.numpy() for x, _ in augmented.train]) for _ in range(2)]
        assert passes[0].shape == first.shape and not np.array_equal(*passes)
        # Padding is zero after normalization (the mean), so crops keep the value range.
        assert np.abs(first).max() <= np.abs(epoch(plain, 0)).max() + 1e-6


def test_imagenet_style_pipeline_and_one_hot_labels():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        data = datasets.load_dataset(
            "imagenette", batch_size=3, input_size=32, augmentation="imagenet",
            normalization="mean_std", one_hot=True,
        )
        images, labels = next(iter(data.train))
        assert images.shape == (3, 32, 32, 3) and labels.shape == (3, 10)
        np.testing.assert_allclose(labels.numpy().sum(-1), 1.0)
        assert next(iter(data.validation))[0].shape == (3, 32, 32, 3)
        with pytest.raises(ValueError, match="input_size: the images of dataset 'imagenette' vary"):
            datasets.load_dataset("imagenette", batch_size=3)


def test_svhn_extra_split_and_imagenet_validation_split():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=10):
        svhn = datasets.load_dataset("svhn_cropped", batch_size=4, train_split="train+extra")
        assert svhn.image_shape == (32, 32, 3)
        assert svhn.train_examples == sum(len(y) for _, y in svhn.train) >= 10
        imagenet = datasets.load_dataset("imagenet2012", batch_size=2, input_size=16, augmentation="imagenet")
        assert imagenet.num_classes == 1000 and imagenet.validation_examples == 10
