"""Resumable training with Keras ``fit``.

A run lives in one output folder:

* ``model.keras``: the trained model, written when the last epoch is done;
* ``metrics.json``: the run's settings, its per-epoch history, ``val_accuracy``,
  ``best_val_accuracy``, ``epochs_completed``, parameter counts and wall time,
  rewritten after every epoch;
* ``log.csv``: the per-epoch history as a table;
* ``checkpoints/last.keras`` and ``checkpoints/best.keras`` (best validation
  accuracy);
* ``backup/``: Keras' ``BackupAndRestore`` state while the run is unfinished.

Every file is written under a temporary name in its folder and then renamed,
so a run killed at any moment (SIGKILL included) leaves each file whole.
Running the same training again resumes from the last finished epoch:
``BackupAndRestore`` restores the weights, the optimizer (and with it the
learning-rate schedule) and the epoch. Once a run is complete, running it
again reports it and trains nothing.

The recipe: Adam with a cosine decay of the learning rate to zero over the
whole run, and BatchNorm moving statistics updated with momentum 0.9.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import uuid
from pathlib import Path

import keras

from keras_ultradeep import registry
from keras_ultradeep.training import datasets

__all__ = ["train", "parameter_counts", "RunRecorder", "DEFAULT_LEARNING_RATE", "BATCH_NORM_MOMENTUM"]

DEFAULT_LEARNING_RATE = 3e-3
# The paper's Torch code (and PyTorch) updates BatchNorm statistics with
# momentum 0.9; Keras' 0.99 needs hundreds of steps before the moving averages
# describe the trained network, which a short run on a small dataset never has.
BATCH_NORM_MOMENTUM = 0.9

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
CHECKPOINTS = "checkpoints"
BACKUP = "backup"
_TEMP_MARK = ".tmp-"

# Set by the trainer from the dataset, so not accepted in ``model_kwargs``.
_TRAINER_ARGUMENTS = ("input_shape", "input_tensor", "classes", "include_top")
# What a resumed or repeated run must share with the run already in the folder.
_SETTINGS = (
    "model",
    "model_kwargs",
    "dataset",
    "input_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "seed",
)


# ------------------------------------------------------------------ validation


def _check_positive_int(value, argument):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument}: expected a positive integer, got {value!r}")


def _check_output(output):
    """The output folder: an existing folder, or one that can be created."""
    if not isinstance(output, (str, os.PathLike)) or not os.fspath(output):
        raise TypeError(f"output: expected a folder path, got {output!r}")
    path = Path(output)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"output: {str(path)!r} exists and is not a folder")
        existing = path
    else:
        existing = next(parent for parent in path.absolute().parents if parent.exists())
        if not existing.is_dir():
            raise ValueError(f"output: cannot create {str(path)!r}: {str(existing)!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output: cannot write into {str(existing)!r}")
    return path


def _check_model_kwargs(model_kwargs):
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, dict) or not all(isinstance(k, str) for k in model_kwargs):
        raise TypeError(f"model_kwargs: expected a dict of keyword arguments, got {model_kwargs!r}")
    reserved = sorted(set(model_kwargs) & set(_TRAINER_ARGUMENTS))
    if reserved:
        raise ValueError(
            f"model_kwargs: {', '.join(reserved)} cannot be set: the trainer sets "
            "input_shape and classes from the dataset (use input_size to resize)"
        )
    # Stored in metrics.json and compared on resume, so it must survive JSON.
    try:
        return json.loads(json.dumps(model_kwargs))
    except (TypeError, ValueError):
        raise TypeError(
            f"model_kwargs: expected numbers, strings, booleans, None, lists or dicts, "
            f"got {model_kwargs!r}"
        ) from None


def _settings(model_name, dataset, epochs, batch_size, learning_rate, seed, input_size, model_kwargs):
    """Validates every argument (before any work) and returns the run's settings."""
    entry = registry.model_entry(model_name)
    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float))
        or not math.isfinite(learning_rate)
        or learning_rate <= 0
    ):
        raise ValueError(f"learning_rate: expected a positive number, got {learning_rate!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if input_size is not None:
        _check_positive_int(input_size, "input_size")
        if input_size < entry.min_size:
            raise ValueError(
                f"input_size: {model_name} needs inputs of at least {entry.min_size}x"
                f"{entry.min_size}, got {input_size}"
            )
    model_kwargs = _check_model_kwargs(model_kwargs)
    datasets.check_dataset_name(dataset)
    return {
        "model": model_name,
        "model_kwargs": model_kwargs,
        "dataset": dataset,
        "input_size": input_size,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": float(learning_rate),
        "seed": seed,
    }


# ------------------------------------------------------------- files, atomically


def _temp_path(path, suffix=""):
    # A fresh name rather than mkstemp's file, so the file gets the usual permissions.
    return str(path.with_name(f".{path.name}{_TEMP_MARK}{uuid.uuid4().hex}{suffix}"))


def _replace_with(path, write, suffix=""):
    """Runs ``write(temp_path)`` on a temporary file beside ``path``, then renames it."""
    temp = _temp_path(path, suffix)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def _write_text(path, text):
    def write(temp):
        with open(temp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    _replace_with(path, write)


def _save_model(model, path):
    _replace_with(path, model.save, suffix=".keras")  # Keras wants the suffix


def _history_csv(history):
    columns = ["epoch", *sorted({key for entry in history for key in entry} - {"epoch"})]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()


def _read_metrics(output):
    path = output / METRICS_FILE
    if not path.exists():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if not isinstance(record, dict) or not isinstance(record.get("history"), list):
            raise ValueError("no run history in it")
    except (OSError, ValueError) as error:
        raise ValueError(
            f"output: {str(path)!r} is not a keras-ultradeep metrics file ({error}); "
            "choose another output folder"
        ) from None
    return record


def _check_same_run(record, settings, output):
    differences = [
        f"{key} {record.get(key)!r} there, {settings[key]!r} here"
        for key in _SETTINGS
        if record.get(key) != settings[key]
    ]
    if differences:
        raise ValueError(
            f"output: {str(output)!r} holds another training run ({'; '.join(differences)}); "
            "run it again with its own settings to resume it, or choose another output folder"
        )


def _remove_stale_temporaries(output):
    """Temporary files of a run that was killed while writing one."""
    for folder in (output, output / CHECKPOINTS):
        for stale in folder.glob(f".*{_TEMP_MARK}*"):
            if stale.is_file():
                stale.unlink()


# ------------------------------------------------------------------- the recorder


class RunRecorder(keras.callbacks.Callback):
    """Writes the run's files after every epoch, and ``model.keras`` at the end.

    It must come before ``BackupAndRestore`` in the callback list: when a
    backup of epoch ``n`` exists, every file of epoch ``n`` is then already
    written. A file of an epoch whose backup never completed is superseded
    when that epoch runs again.
    """

    def __init__(self, output, record, session_start):
        super().__init__()
        self.output = Path(output)
        self.record = record
        self._earlier_wall_time = record["wall_time_s"]
        self._session_start = session_start
        self._first_epoch = True

    @property
    def history(self):
        return self.record["history"]

    def on_epoch_begin(self, epoch, logs=None):
        if not self._first_epoch:
            return
        self._first_epoch = False
        # fit starts after the last epoch BackupAndRestore backed up; the
        # records of any later epoch were written before a backup that failed.
        self.record["history"] = [entry for entry in self.history if entry["epoch"] <= epoch]
        if epoch:
            print(f"Resuming from the backup after epoch {epoch}/{self.record['epochs']}.")

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}}
        best = max((earlier["val_accuracy"] for earlier in self.history), default=None)
        self.history.append(entry)
        checkpoints = self.output / CHECKPOINTS
        _save_model(self.model, checkpoints / "last.keras")
        if best is None or entry["val_accuracy"] > best:
            _save_model(self.model, checkpoints / "best.keras")
        self._write()

    def on_train_end(self, logs=None):
        if len(self.history) == self.record["epochs"]:
            _save_model(self.model, self.output / MODEL_FILE)
            self.record["complete"] = True
        self._write()

    def _write(self):
        record = self.record
        history = self.history
        record["epochs_completed"] = len(history)
        record["val_accuracy"] = history[-1]["val_accuracy"] if history else None
        best = max(history, key=lambda entry: entry["val_accuracy"], default=None)
        record["best_val_accuracy"] = best["val_accuracy"] if best else None
        record["best_epoch"] = best["epoch"] if best else None
        record["wall_time_s"] = round(
            self._earlier_wall_time + time.monotonic() - self._session_start, 3
        )
        _write_text(self.output / LOG_FILE, _history_csv(history))
        _write_text(self.output / METRICS_FILE, json.dumps(record, indent=2) + "\n")


# ----------------------------------------------------------------------- training


def _layers(layer):
    yield layer
    for inner in getattr(layer, "layers", ()):
        yield from _layers(inner)


def _build_model(model_name, model_kwargs, data):
    kwargs = {"weights": None, **model_kwargs}
    model = registry.create_model(
        model_name, **kwargs, input_shape=data.image_shape, classes=data.num_classes
    )
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BATCH_NORM_MOMENTUM
    return model


def _compile(model, settings, steps_per_epoch):
    schedule = keras.optimizers.schedules.CosineDecay(
        settings["learning_rate"], decay_steps=settings["epochs"] * steps_per_epoch
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def parameter_counts(model):
    """``{"total", "trainable", "non_trainable"}`` parameter counts of a built model."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = model.count_params()
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def _describe_end(record, output):
    print(
        f"{record['model']} on {record['dataset']}: {record['epochs_completed']}/"
        f"{record['epochs']} epochs, val_accuracy {record['val_accuracy']:.4f} "
        f"(best {record['best_val_accuracy']:.4f} at epoch {record['best_epoch']}), "
        f"{record['wall_time_s']:.0f} s of training. Model: {output / MODEL_FILE}"
    )


def train(
    model_name,
    *,
    dataset,
    epochs,
    batch_size,
    output,
    learning_rate=DEFAULT_LEARNING_RATE,
    seed=0,
    input_size=None,
    model_kwargs=None,
    data_dir=None,
    verbose="auto",
):
    """Trains registry model ``model_name`` on ``dataset`` into the folder ``output``.

    Args:
        model_name: a registered name (``keras_ultradeep.list_models()``).
        dataset: ``"digits"`` or a TensorFlow Datasets name (see
            :mod:`keras_ultradeep.training.datasets`).
        epochs, batch_size: the run's length and batch size.
        output: the run folder (created if needed). If it holds an unfinished
            run with the same settings, training resumes; a finished one is
            reported and not trained again.
        learning_rate: Adam's initial learning rate, decayed to zero (cosine).
        seed: fixes initialization, the digits split and the data order.
        input_size: the image side; ``None`` keeps the dataset's own size,
            raised to the model's minimum input size.
        model_kwargs: further ``create_model`` arguments (e.g. ``depth``).
        data_dir: TensorFlow Datasets' data folder.
        verbose: passed to ``Model.fit`` (``"auto"``: a progress bar).

    Returns:
        The run's record, as written to ``metrics.json``.
    """
    session_start = time.monotonic()
    settings = _settings(
        model_name, dataset, epochs, batch_size, learning_rate, seed, input_size, model_kwargs
    )
    output = _check_output(output)
    earlier = _read_metrics(output)
    if earlier is not None:
        _check_same_run(earlier, settings, output)
        if earlier.get("complete"):
            print(f"{output}: this training run is already complete; nothing to do.")
            _describe_end(earlier, output)
            return earlier

    keras.utils.set_random_seed(seed)
    entry = registry.model_entry(model_name)
    data = datasets.load_dataset(
        dataset,
        batch_size=batch_size,
        input_size=input_size,
        min_size=entry.min_size,
        seed=seed,
        data_dir=data_dir,
    )
    model = _build_model(model_name, settings["model_kwargs"], data)
    steps_per_epoch = math.ceil(data.train_examples / batch_size)
    _compile(model, settings, steps_per_epoch)

    (output / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(output)
    record = {
        **settings,
        "input_shape": list(data.image_shape),
        "classes": data.num_classes,
        "train_examples": data.train_examples,
        "validation_examples": data.validation_examples,
        "params": parameter_counts(model),
        "optimizer": "adam, cosine decay to 0",
        "batch_norm_momentum": BATCH_NORM_MOMENTUM,
        "epochs_completed": 0,
        "val_accuracy": None,
        "best_val_accuracy": None,
        "best_epoch": None,
        "wall_time_s": earlier["wall_time_s"] if earlier else 0.0,
        "complete": False,
        "history": earlier["history"] if earlier else [],
    }
    print(
        f"Training {model_name} ({record['params']['total']:,} parameters) on {dataset}: "
        f"{data.train_examples} training and {data.validation_examples} validation images "
        f"of {'x'.join(map(str, data.image_shape))}, {data.num_classes} classes."
    )
    recorder = RunRecorder(output, record, session_start)
    backup = keras.callbacks.BackupAndRestore(str(output / BACKUP), double_checkpoint=True)
    model.fit(
        data.train,
        validation_data=data.validation,
        epochs=epochs,
        callbacks=[recorder, backup],  # the recorder first: see RunRecorder
        shuffle=False,  # the pipeline shuffles
        verbose=verbose,
    )
    if record["complete"]:
        _describe_end(record, output)
    return record
