"""Resumable training with Keras ``fit``, from a paper's recipe.

A run lives in one output folder:

* ``model.keras``: the trained model, written when the last epoch is done;
* ``metrics.json``: the run's settings (the resolved recipe included), its
  per-epoch history, ``val_accuracy``, ``best_val_accuracy``,
  ``epochs_completed``, parameter counts and wall time, rewritten after every
  epoch;
* ``log.csv``: the per-epoch history as a table;
* ``training_curves.png``: loss and accuracy per epoch (matplotlib);
* ``tensorboard/``: TensorBoard logs (``tensorboard --logdir DIR/tensorboard``);
* ``checkpoints/last.keras`` and ``checkpoints/best.keras`` (best validation
  accuracy); while the run is unfinished also ``checkpoints/epoch-NNNN.keras``,
  the resume point (model, optimizer and with it the schedule's step).

Every file is written under a temporary name in its folder and then renamed,
so a run killed at any moment (SIGKILL included) leaves each file whole.

**Resuming.** Running the same training again loads the newest
``epoch-NNNN.keras`` (weights, optimizer slots, step count, loss scale) and
continues at epoch NNNN+1; no completed epoch is trained again. The data of
epoch ``e`` depends only on ``(seed, e)`` (see :mod:`.datasets`), so a resumed
run reaches the same weights as an uninterrupted one (bit for bit on CPU with
``tf.config.experimental.enable_op_determinism()``; dropout masks and
stochastic depth draw from Keras' seed generators, which restart). Per epoch
the files are written in the order ``metrics.json`` -> ``epoch-NNNN.keras``, so
the checkpoint is the truth: history entries after it are dropped on resume.
Keras' ``BackupAndRestore`` is not used: it restores the epoch but not the
data order, and ``TerminateOnNaN`` with it can remove the backup.

**NaN.** A non-finite training loss stops the run at that batch; the epoch is
not checkpointed (the last good checkpoint stays the resume point),
``metrics.json`` records ``stopped``, and :class:`TrainingDiverged` is raised.

**Recipes** (:mod:`.recipes`): the optimizer (Torch's SGD, RMSprop or Adam,
with the papers' coupled weight decay, :mod:`.optimizers`), the schedule
(steps, cosine, exponential), label smoothing, dropout, augmentation and
normalization. The default recipe is Adam with a cosine decay to zero. BatchNorm
moving statistics are updated with momentum 0.9 (Torch's) in every recipe.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from keras_ultradeep import registry
from keras_ultradeep.training import datasets, recipes
from keras_ultradeep.training import distribute as distribute_lib
from keras_ultradeep.training import optimizers

__all__ = [
    "train",
    "parameter_counts",
    "RunRecorder",
    "TrainingDiverged",
    "DEFAULT_LEARNING_RATE",
    "BATCH_NORM_MOMENTUM",
    "MIXED_PRECISION",
]

DEFAULT_LEARNING_RATE = recipes.RECIPES["default"].learning_rate
# The paper's Torch code (and PyTorch) updates BatchNorm statistics with
# momentum 0.9; Keras' 0.99 needs hundreds of steps before the moving averages
# describe the trained network, which a short run on a small dataset never has.
BATCH_NORM_MOMENTUM = 0.9
MIXED_PRECISION = ("mixed_float16", "mixed_bfloat16")

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
PLOT_FILE = "training_curves.png"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
_EPOCH_CHECKPOINT = re.compile(r"^epoch-(\d+)\.keras$")
_TEMP_MARK = ".tmp-"

# Set by the trainer from the dataset, so not accepted in ``model_kwargs``.
_TRAINER_ARGUMENTS = ("input_shape", "input_tensor", "classes", "include_top")
# Keys of metrics.json that are not settings (everything else must match on resume).
_RECORD_ONLY = (
    "input_shape", "classes", "train_examples", "validation_examples", "params", "total_epochs",
    "steps_per_epoch", "schedule_boundaries", "normalization_mean", "normalization_std",
    "batch_norm_momentum", "epochs_completed", "val_accuracy", "best_val_accuracy", "best_epoch",
    "wall_time_s", "complete", "history", "stopped", "replicas", "jit_compile", "distribute",
    "model_kwargs_applied",
)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


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


def _builder_arguments(entry):
    try:
        return set(inspect.signature(entry.builder).parameters)
    except (TypeError, ValueError):
        return set()


def _model_kwargs_for(entry, model_kwargs, config, dropout_given):
    """The builder's arguments: the recipe's (dropout, e.g. survival_prob) under the user's."""
    accepted = _builder_arguments(entry)
    applied = {}
    for key, value in config["recipe_model_kwargs"].items():
        if key in accepted:
            applied[key] = value
    if config["dropout"] is not None:
        if "dropout_rate" in accepted:
            applied["dropout_rate"] = config["dropout"]
        elif dropout_given:
            raise ValueError(f"dropout: {entry.name} has no dropout_rate argument")
    applied.update(model_kwargs)
    return applied


def _settings(model_name, dataset, seed, input_size, model_kwargs, recipe, overrides, mixed_precision):
    """Validates every argument (before any work) and returns the run's settings."""
    entry = registry.model_entry(model_name)
    config = recipes.resolve(recipe, **overrides)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if input_size is None:
        input_size = config["input_size"]
    if input_size is not None:
        _check_positive_int(input_size, "input_size")
        if input_size < entry.min_size:
            raise ValueError(
                f"input_size: {model_name} needs inputs of at least {entry.min_size}x"
                f"{entry.min_size}, got {input_size}"
            )
    if mixed_precision not in (None, *MIXED_PRECISION):
        raise ValueError(
            f"mixed_precision: expected one of {', '.join(MIXED_PRECISION)} or None, got {mixed_precision!r}"
        )
    model_kwargs = _check_model_kwargs(model_kwargs)
    if dataset is None:
        dataset = recipes.get_recipe(config["recipe"]).dataset
        if dataset is None:
            raise ValueError("dataset: expected a dataset name (the recipe has none)")
    datasets.check_dataset_name(dataset)
    config.pop("input_size")
    return entry, {
        "model": model_name,
        "model_kwargs": model_kwargs,
        "dataset": dataset,
        "input_size": input_size,
        **config,
        "seed": seed,
        "mixed_precision": mixed_precision,
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


def _link_or_copy(source, path):
    """``path`` becomes the same file as ``source`` (a hard link, else a copy), atomically."""

    def write(temp):
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)

    _replace_with(path, write, suffix=".keras")


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
        f"{key} {record.get(key)!r} there, {value!r} here"
        for key, value in settings.items()
        if record.get(key) != value
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


def _epoch_checkpoints(output):
    """``{epoch: path}`` of the resume checkpoints in the run folder."""
    found = {}
    folder = output / CHECKPOINTS
    if folder.is_dir():
        for path in folder.iterdir():
            match = _EPOCH_CHECKPOINT.match(path.name)
            if match:
                found[int(match.group(1))] = path
    return found


# ------------------------------------------------------------------- callbacks


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite."""

    def __init__(self):
        super().__init__()
        self.stopped = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stopped = (
                f"non-finite training loss ({float(loss)}) at epoch {self._epoch + 1}, batch {batch + 1}"
            )
            self.model.stop_training = True


class RunRecorder(keras.callbacks.Callback):
    """Writes the run's files after every epoch, and ``model.keras`` at the end.

    Per epoch: ``metrics.json``, ``log.csv`` and the plot first, then the
    resume checkpoint ``epoch-NNNN.keras`` (with ``last.keras`` linked to it and
    ``best.keras``). Nothing is written for an epoch whose loss went NaN.
    On a non-chief worker of a multi-worker run it writes nothing.
    """

    def __init__(self, output, record, session_start, *, nan_guard=None, write=True, plot=True):
        super().__init__()
        self.output = Path(output)
        self.record = record
        self._earlier_wall_time = record["wall_time_s"]
        self._session_start = session_start
        self.nan_guard = nan_guard
        self.writes = write
        self.plot = plot

    @property
    def history(self):
        return self.record["history"]

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_guard is not None and self.nan_guard.stopped:
            self.record["stopped"] = self.nan_guard.stopped
            self._write()
            return
        entry = {"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}}
        best = max((earlier["val_accuracy"] for earlier in self.history), default=None)
        self.history.append(entry)
        self._write()
        if not self.writes:
            return
        checkpoints = self.output / CHECKPOINTS
        resume = checkpoints / f"epoch-{epoch + 1:04d}.keras"
        _save_model(self.model, resume)
        _link_or_copy(resume, checkpoints / "last.keras")
        if best is None or entry["val_accuracy"] > best:
            _link_or_copy(resume, checkpoints / "best.keras")
        for older, path in _epoch_checkpoints(self.output).items():
            if older < epoch + 1:
                path.unlink()

    def finish(self):
        """Writes ``model.keras`` and marks the run complete (all epochs done)."""
        if self.writes:
            _save_model(self.model, self.output / MODEL_FILE)
        self.record["complete"] = True
        self._write()
        if self.writes:  # only once the run is recorded complete: they are its resume point
            for path in _epoch_checkpoints(self.output).values():
                path.unlink()  # last.keras keeps the final state

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
        if not self.writes:
            return
        _write_text(self.output / LOG_FILE, _history_csv(history))
        if self.plot and history:
            from keras_ultradeep.training.plots import plot_history

            title = f"{record['model']} on {record['dataset']} ({record['recipe']})"
            _replace_with(
                self.output / PLOT_FILE, lambda temp: plot_history(history, temp, title), suffix=".png"
            )
        _write_text(self.output / METRICS_FILE, json.dumps(record, indent=2) + "\n")


# ----------------------------------------------------------------------- training


def _layers(layer):
    yield layer
    for inner in getattr(layer, "layers", ()):
        yield from _layers(inner)


def _build_model(entry, kwargs, data, mixed_precision):
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy(mixed_precision)
    try:
        model = registry.create_model(
            entry.name,
            **{"weights": None, **kwargs},
            input_shape=data.image_shape,
            classes=data.num_classes,
        )
    finally:
        keras.config.set_dtype_policy(previous)
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BATCH_NORM_MOMENTUM
    if mixed_precision:
        float32_head(model)
    return model


def float32_head(model):
    """Computes the model's output layers in float32 (softmax in float32 under mixed precision)."""
    for output in model.outputs:
        layer = output._keras_history.operation
        if layer.compute_dtype != "float32":
            layer.dtype_policy = "float32"
    return model


def _compile(model, config, steps_per_epoch, total_epochs, boundaries, jit_compile, num_classes):
    schedule = optimizers.make_schedule(
        config["schedule"],
        config["learning_rate"],
        total_steps=total_epochs * steps_per_epoch,
        boundaries=boundaries,
        factor=config["lr_factor"],
        decay_steps=(config["decay_epochs"] or 1) * steps_per_epoch,
    )
    optimizer = optimizers.make_optimizer(
        config["optimizer"],
        schedule,
        momentum=config["momentum"],
        nesterov=config["nesterov"],
        weight_decay=config["weight_decay"],
        epsilon=config["rmsprop_epsilon"],
        clipnorm=config["clipnorm"],
    )
    if config["label_smoothing"]:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config["label_smoothing"])
        metrics = ["accuracy"]
        if num_classes > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(5, name="top5_accuracy"))
    else:
        loss = "sparse_categorical_crossentropy"
        metrics = ["accuracy"]
        if num_classes > 5 and config["recipe"] != "default":
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)


def parameter_counts(model):
    """``{"total", "trainable", "non_trainable"}`` parameter counts of a built model."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = model.count_params()
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def _describe_end(record, output):
    print(
        f"{record['model']} on {record['dataset']}: {record['epochs_completed']}/"
        f"{record['total_epochs']} epochs, val_accuracy {record['val_accuracy']:.4f} "
        f"(best {record['best_val_accuracy']:.4f} at epoch {record['best_epoch']}), "
        f"{record['wall_time_s']:.0f} s of training. Model: {output / MODEL_FILE}"
    )


def _adapt_to_multi_worker(model, strategy, data):
    """Works around two problems of Keras 3's ``fit`` under ``MultiWorkerMirroredStrategy``.

    1. ``fit`` builds the metrics, loss and optimizer from the first distributed
       batch with ``strategy.reduce("MEAN", (x, y))``, which the strategy
       rejects (a tuple of ``PerReplica`` values): they are built here from a
       local batch, so that step has nothing to do and is skipped.
    2. The step's logs are reduced across workers with ``reduce("MEAN", v,
       axis=0)``, which fails on scalars: the steps return them with a leading
       axis of one (the mean over the workers' equal values is the value).

    Both are open upstream (keras-team/keras#20585, tensorflow/tensorflow#72388:
    TensorFlow's own multi-worker Keras tutorial fails on Keras 3); the strategy,
    the collectives and ``fit`` are still TensorFlow's and Keras' own.
    """
    from keras import ops

    batch = next(iter(data.validation.take(1)))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def with_axis(step):
        def wrapped(batch):
            return {key: ops.expand_dims(value, 0) for key, value in step(batch).items()}

        return wrapped

    model.train_step = with_axis(model.train_step)
    model.test_step = with_axis(model.test_step)


def _check_jit(jit_compile):
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"jit_compile: expected True, False or 'auto', got {jit_compile!r}")


def train(
    model_name,
    *,
    dataset=None,
    output,
    epochs=None,
    batch_size=None,
    learning_rate=None,
    recipe=None,
    seed=0,
    input_size=None,
    model_kwargs=None,
    data_dir=None,
    manual_dir=None,
    jit_compile="auto",
    mixed_precision=None,
    distribute="none",
    tensorboard=True,
    plot=True,
    callbacks=(),
    verbose="auto",
    **recipe_overrides,
):
    """Trains registry model ``model_name`` on ``dataset`` into the folder ``output``.

    Args:
        model_name: a registered name (``keras_ultradeep.list_models()``).
        dataset: ``"digits"`` or a TensorFlow Datasets name (see
            :mod:`keras_ultradeep.training.datasets`); default: the recipe's.
        output: the run folder (created if needed). If it holds an unfinished
            run with the same settings, training resumes; a finished one is
            reported and not trained again.
        epochs, batch_size, learning_rate: override the recipe's.
        recipe: a name from :mod:`keras_ultradeep.training.recipes`
            (``None``: ``"default"``, Adam with a cosine decay).
        seed: fixes initialization, the digits split, data order and augmentation.
        input_size: the image side; ``None``: the recipe's, else the dataset's
            own size raised to the model's minimum input size.
        model_kwargs: further ``create_model`` arguments (e.g. ``depth``).
        data_dir, manual_dir: TensorFlow Datasets' data and manual folders.
        jit_compile: ``Model.compile``'s (``"auto"``: XLA on GPUs).
        mixed_precision: ``None``, ``"mixed_float16"`` or ``"mixed_bfloat16"``
            (the output layer stays float32).
        distribute: ``"none"``, ``"mirrored"`` or ``"multi_worker"`` (TF_CONFIG).
        tensorboard, plot: write TensorBoard logs and the PNG of the curves.
        callbacks: extra Keras callbacks.
        verbose: passed to ``Model.fit`` (``"auto"``: a progress bar).
        **recipe_overrides: any of :data:`recipes.OVERRIDABLE` (``steps``,
            ``optimizer``, ``momentum``, ``nesterov``, ``weight_decay``,
            ``schedule``, ``milestones``, ``lr_factor``, ``label_smoothing``,
            ``dropout``, ``augmentation``, ``normalization``, ``clipnorm``,
            ``train_split``).

    Returns:
        The run's record, as written to ``metrics.json``.

    Raises:
        TrainingDiverged: the loss became NaN (the last good checkpoint is kept).
    """
    session_start = time.monotonic()
    overrides = dict(recipe_overrides, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)
    entry, settings = _settings(
        model_name, dataset, seed, input_size, model_kwargs, recipe, overrides, mixed_precision
    )
    _check_jit(jit_compile)
    distribute_lib.check_strategy(distribute)
    applied_kwargs = _model_kwargs_for(
        entry, settings["model_kwargs"], settings, dropout_given=recipe_overrides.get("dropout") is not None
    )
    output = _check_output(output)
    earlier = _read_metrics(output)
    if earlier is not None:
        _check_same_run(earlier, settings, output)
        if earlier.get("complete"):
            print(f"{output}: this training run is already complete; nothing to do.")
            _describe_end(earlier, output)
            return earlier

    strategy = distribute_lib.make_strategy(distribute)  # before other TensorFlow work
    chief = distribute_lib.is_chief(strategy)
    keras.utils.set_random_seed(seed)
    # TensorFlow's own global seed (tf.data's shuffles) must not be 0: tf.data
    # compares (global, op) seeds with (0, 0), which a per-epoch tensor seed
    # cannot take part in. Keras' initializers use Keras' seed, set above.
    tf.random.set_seed(seed + 1)
    data = datasets.load_dataset(
        settings["dataset"],
        batch_size=settings["batch_size"],
        input_size=settings["input_size"],
        min_size=entry.min_size,
        seed=seed,
        data_dir=data_dir,
        manual_dir=manual_dir,
        augmentation=settings["augmentation"],
        normalization=settings["normalization"],
        one_hot=bool(settings["label_smoothing"]),
        train_split=settings["train_split"],
    )
    steps_per_epoch = data.steps_per_epoch
    total_epochs = recipes.run_epochs(settings, steps_per_epoch)
    boundaries = recipes.schedule_boundaries(settings, steps_per_epoch)
    with strategy.scope():
        model = _build_model(entry, applied_kwargs, data, mixed_precision)
        _compile(model, settings, steps_per_epoch, total_epochs, boundaries, jit_compile, data.num_classes)

    if distribute == "multi_worker":
        _adapt_to_multi_worker(model, strategy, data)
    checkpoints = _epoch_checkpoints(output)
    initial_epoch = max(checkpoints, default=0)
    if initial_epoch:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
            model.load_weights(checkpoints[initial_epoch])

    if chief:
        (output / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(output)
    history = [e for e in (earlier["history"] if earlier else []) if e["epoch"] <= initial_epoch]
    record = {
        **settings,
        "model_kwargs_applied": applied_kwargs,
        "input_shape": list(data.image_shape),
        "classes": data.num_classes,
        "train_examples": data.train_examples,
        "validation_examples": data.validation_examples,
        "steps_per_epoch": steps_per_epoch,
        "total_epochs": total_epochs,
        "schedule_boundaries": boundaries,
        "normalization_mean": list(data.mean),
        "normalization_std": list(data.std),
        "params": parameter_counts(model),
        "batch_norm_momentum": BATCH_NORM_MOMENTUM,
        "jit_compile": jit_compile,
        "distribute": distribute,
        "replicas": strategy.num_replicas_in_sync,
        "epochs_completed": 0,
        "val_accuracy": None,
        "best_val_accuracy": None,
        "best_epoch": None,
        "wall_time_s": earlier["wall_time_s"] if earlier else 0.0,
        "complete": False,
        "stopped": None,
        "history": history,
    }
    print(
        f"Training {model_name} ({record['params']['total']:,} parameters) on {settings['dataset']} "
        f"with recipe {settings['recipe']!r}: {data.train_examples} training and "
        f"{data.validation_examples} validation images of {'x'.join(map(str, data.image_shape))}, "
        f"{data.num_classes} classes, {total_epochs} epochs of {steps_per_epoch} steps"
        f"{f' on {strategy.num_replicas_in_sync} replicas' if strategy.num_replicas_in_sync > 1 else ''}."
    )
    if initial_epoch:
        print(f"Resuming from the checkpoint after epoch {initial_epoch}/{total_epochs}.")
    guard = NanGuard()
    recorder = RunRecorder(output, record, session_start, nan_guard=guard, write=chief, plot=plot)
    fit_callbacks = [guard, recorder]
    if tensorboard and chief:
        fit_callbacks.append(
            keras.callbacks.TensorBoard(str(output / TENSORBOARD), write_graph=False, profile_batch=0)
        )
    fit_callbacks.extend(callbacks)
    if initial_epoch < total_epochs:
        model.fit(
            data.train_epochs(initial_epoch, total_epochs),
            validation_data=data.validation,
            epochs=total_epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=fit_callbacks,
            shuffle=False,  # the pipeline shuffles, by epoch
            verbose=verbose,
        )
    if guard.stopped:
        raise TrainingDiverged(
            f"{guard.stopped}; stopped. The last good checkpoint (after epoch "
            f"{len(record['history'])}) is kept in {output / CHECKPOINTS}"
        )
    if len(record["history"]) == total_epochs:
        recorder.set_model(model)
        recorder.finish()
        _describe_end(record, output)
    return record
