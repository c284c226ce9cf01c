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

The work is split by job: :mod:`.settings` (the checked settings),
:mod:`.run_folder` (its files), :mod:`.callbacks`, :mod:`.build` (building and
compiling, shared with the tuner) and :mod:`.distribute`; this module runs them.
"""

from __future__ import annotations

import time

import keras

from keras_ultradeep import checks
from keras_ultradeep.stats import parameter_counts
from keras_ultradeep.training import build, datasets, finetune, recipes, run_folder
from keras_ultradeep.training import distribute as distribute_lib
from keras_ultradeep.training.callbacks import NanGuard, RunRecorder
from keras_ultradeep.training.settings import (
    JIT_COMPILE,
    builder_kwargs,
    check_output,
    resolve_settings,
)

__all__ = ["DEFAULT_LEARNING_RATE", "TrainingDiverged", "train"]

DEFAULT_LEARNING_RATE = recipes.RECIPES["default"].learning_rate


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def _describe_end(record, output):
    print(
        f"{record['model']} on {record['dataset']}: {record['epochs_completed']}/"
        f"{record['total_epochs']} epochs, val_accuracy {record['val_accuracy']:.4f} "
        f"(best {record['best_val_accuracy']:.4f} at epoch {record['best_epoch']}), "
        f"{record['wall_time_s']:.0f} s of training. Model: {output / run_folder.MODEL_FILE}"
    )


def _describe_start(record, data, strategy, initial_epoch):
    replicas = strategy.num_replicas_in_sync
    print(
        f"Training {record['model']} ({record['params']['total']:,} parameters) on {record['dataset']} "
        f"with recipe {record['recipe']!r}: {data.train_examples} training and "
        f"{data.validation_examples} validation images of {'x'.join(map(str, data.image_shape))}, "
        f"{data.num_classes} classes, {record['total_epochs']} epochs of {record['steps_per_epoch']} steps"
        f"{f' on {replicas} replicas' if replicas > 1 else ''}."
    )
    if initial_epoch:
        print(f"Resuming from the checkpoint after epoch {initial_epoch}/{record['total_epochs']}.")


def _load_data(settings, entry, *, data_dir, manual_dir):
    folder_options = {}
    if settings.weights is not None:  # the tag's preprocessing
        config = finetune.tag_data_config(entry.name, settings.weights)
        folder_options = dict(
            crop_pct=config["crop_pct"], interpolation=config["interpolation"],
            stats=(config["mean"], config["std"]), channel_order=config["channel_order"],
        )
    return datasets.load_dataset(
        settings.dataset,
        batch_size=settings.batch_size,
        input_size=settings.input_size,
        min_size=entry.min_size,
        seed=settings.seed,
        data_dir=data_dir,
        manual_dir=manual_dir,
        augmentation=settings.augmentation,
        normalization=settings.normalization,
        one_hot=bool(settings.label_smoothing),
        train_split=settings.train_split,
        val_split=settings.val_split,
        **folder_options,
    )


def _build(entry, settings, applied_kwargs, data):
    if settings.weights is None:
        return build.build_model(
            entry.name,
            applied_kwargs,
            input_shape=data.image_shape,
            classes=data.num_classes,
            mixed_precision=settings.mixed_precision,
        )
    model = finetune.build_finetune_model(
        entry.name, applied_kwargs, weights=settings.weights, input_shape=data.image_shape,
        classes=data.num_classes,
    )
    return build.prepare(model, mixed_precision=settings.mixed_precision)


def _compile(model, settings, phase, data, *, boundaries, jit_compile):
    """Compiles ``model`` for ``phase`` (a fresh optimizer for each phase)."""
    if phase.body_trainable is not None:
        finetune.set_body_trainable(model, phase.body_trainable)
    optimizer = build.make_optimizer(
        settings,
        steps_per_epoch=data.steps_per_epoch,
        total_epochs=phase.end - phase.start,
        boundaries=boundaries if phase.body_trainable is None else [],
        learning_rate=phase.learning_rate,
        schedule=phase.schedule,
    )
    # The short default recipe reports accuracy only; the papers' recipes also top-5.
    top5 = data.num_classes > 5 and (bool(settings.label_smoothing) or settings.recipe != "default")
    build.compile_model(
        model, optimizer, label_smoothing=settings.label_smoothing, top5=top5, jit_compile=jit_compile
    )


def _model_info(settings, data):
    """What ``predict`` and ``evaluate`` need from the model file: class names, data configuration."""
    channels = data.image_shape[-1]
    mean, std = {
        "unit": ((0.0,) * channels, (1.0,) * channels),
        "mean": (data.mean, (1.0,) * channels),
        "mean_std": (data.mean, data.std),
        "symmetric": ((0.5,) * channels, (0.5,) * channels),
    }[settings.normalization]
    crop_pct, interpolation, channel_order = 1.0, "bilinear", "RGB"
    if settings.weights is not None:
        config = finetune.tag_data_config(settings.model, settings.weights)
        crop_pct, interpolation, channel_order = config["crop_pct"], config["interpolation"], config["channel_order"]
    return {
        "class_names": list(data.class_names) or [str(i) for i in range(data.num_classes)],
        "data_config": {
            "input_size": list(data.image_shape),
            "crop_pct": crop_pct,
            "interpolation": interpolation,
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "channel_order": channel_order,
        },
    }


def _new_record(settings, applied_kwargs, data, model, *, earlier, initial_epoch, total_epochs,
                boundaries, jit_compile, distribute, replicas):
    history = [e for e in (earlier["history"] if earlier else []) if e["epoch"] <= initial_epoch]
    return {
        **settings.record(),
        "model_kwargs_applied": applied_kwargs,
        "input_shape": list(data.image_shape),
        "classes": data.num_classes,
        "train_examples": data.train_examples,
        "validation_examples": data.validation_examples,
        "steps_per_epoch": data.steps_per_epoch,
        "total_epochs": total_epochs,
        "schedule_boundaries": boundaries,
        "normalization_mean": list(data.mean),
        "normalization_std": list(data.std),
        "params": parameter_counts(model),
        "batch_norm_momentum": build.BATCH_NORM_MOMENTUM,
        "jit_compile": jit_compile,
        "distribute": distribute,
        "replicas": replicas,
        "epochs_completed": 0,
        "val_accuracy": None,
        "best_val_accuracy": None,
        "best_epoch": None,
        "wall_time_s": earlier["wall_time_s"] if earlier else 0.0,
        "complete": False,
        "stopped": None,
        "history": history,
    }


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
    weights=None,
    freeze_epochs=None,
    val_split=0.2,
    **recipe_overrides,
):
    """Trains registry model ``model_name`` on ``dataset`` into the folder ``output``.

    Args:
        model_name: a registered name (``keras_ultradeep.list_models()``).
        dataset: ``"digits"``, a TensorFlow Datasets name (see
            :mod:`keras_ultradeep.training.datasets`) or a folder with one
            subfolder of images per class (:mod:`.folders`); default: the recipe's.
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
        weights: a pretrained tag of ``model_name``: fine-tune it (:mod:`.finetune`),
            with the tag's preprocessing.
        freeze_epochs: with ``weights``, the head-only epochs (default: half the run).
        val_split: an image folder's validation fraction per class (without ``val/``).
        **recipe_overrides: any other of :data:`.recipes.OVERRIDES`.

    Returns:
        The run's record, as written to ``metrics.json``.

    Raises:
        TrainingDiverged: the loss became NaN (the last good checkpoint is kept).
    """
    session_start = time.monotonic()
    overrides = dict(recipe_overrides, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)
    entry, settings = resolve_settings(
        model_name, dataset=dataset, seed=seed, input_size=input_size, model_kwargs=model_kwargs,
        recipe=recipe, overrides=overrides, mixed_precision=mixed_precision,
        weights=weights, freeze_epochs=freeze_epochs, val_split=val_split,
    )
    checks.one_of(jit_compile, "jit_compile", JIT_COMPILE)
    distribute_lib.check_strategy(distribute)
    applied_kwargs = builder_kwargs(entry, settings, dropout_given=recipe_overrides.get("dropout") is not None)
    output = check_output(output)
    earlier = run_folder.read_metrics(output)
    if earlier is not None:
        differences = settings.differences(earlier)
        if differences:
            raise ValueError(
                f"output: {str(output)!r} holds another training run ({'; '.join(differences)}); "
                "run it again with its own settings to resume it, or choose another output folder"
            )
        if earlier.get("complete"):
            print(f"{output}: this training run is already complete; nothing to do.")
            _describe_end(earlier, output)
            return earlier

    strategy = distribute_lib.make_strategy(distribute)  # before other TensorFlow work
    chief = distribute_lib.is_chief(strategy)
    keras.utils.set_random_seed(seed)
    data = _load_data(settings, entry, data_dir=data_dir, manual_dir=manual_dir)
    total_epochs = recipes.run_epochs(settings.record(), data.steps_per_epoch)
    boundaries = recipes.schedule_boundaries(settings.record(), data.steps_per_epoch)
    run_phases = finetune.phases(settings, total_epochs)
    checkpoints = run_folder.epoch_checkpoints(output)
    initial_epoch = max(checkpoints, default=0)
    # The phase that wrote the checkpoint restores it (its optimizer's variables).
    current = next(i for i, p in enumerate(run_phases) if p.start <= initial_epoch <= p.end)
    with strategy.scope():
        model = _build(entry, settings, applied_kwargs, data)
        _compile(model, settings, run_phases[current], data, boundaries=boundaries, jit_compile=jit_compile)
    if distribute == "multi_worker":
        distribute_lib.adapt_to_multi_worker(model, strategy, next(iter(data.validation.take(1))))
    if initial_epoch:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
            model.load_weights(checkpoints[initial_epoch])
    if chief:
        (output / run_folder.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        run_folder.remove_stale_temporaries(output)

    record = _new_record(
        settings, applied_kwargs, data, model, earlier=earlier, initial_epoch=initial_epoch,
        total_epochs=total_epochs, boundaries=boundaries, jit_compile=jit_compile,
        distribute=distribute, replicas=strategy.num_replicas_in_sync,
    )
    _describe_start(record, data, strategy, initial_epoch)
    guard = NanGuard()
    recorder = RunRecorder(
        output, record, session_start, nan_guard=guard, write=chief, plot=plot,
        model_info=_model_info(settings, data),
    )
    fit_callbacks = [guard, recorder]
    if tensorboard and chief:
        fit_callbacks.append(
            keras.callbacks.TensorBoard(str(output / run_folder.TENSORBOARD), write_graph=False, profile_batch=0)
        )
    fit_callbacks.extend(callbacks)
    for index, phase in enumerate(run_phases[current:], start=current):
        start = max(initial_epoch, phase.start)
        if start >= phase.end:
            continue
        if index != current:
            with strategy.scope():
                _compile(model, settings, phase, data, boundaries=boundaries, jit_compile=jit_compile)
        model.fit(
            data.train_epochs(start, phase.end),
            validation_data=data.validation,
            epochs=phase.end,
            initial_epoch=start,
            steps_per_epoch=data.steps_per_epoch,
            callbacks=fit_callbacks,
            shuffle=False,  # the pipeline shuffles, by epoch
            verbose=verbose,
        )
        if guard.stopped:
            break
    if guard.stopped:
        raise TrainingDiverged(
            f"{guard.stopped}; stopped. The last good checkpoint (after epoch "
            f"{len(record['history'])}) is kept in {output / run_folder.CHECKPOINTS}"
        )
    if len(record["history"]) == total_epochs:
        recorder.set_model(model)
        recorder.finish()
        _describe_end(record, output)
    return record
