"""A training run's settings, checked before any work: :class:`TrainSettings`.

:func:`resolve_settings` turns ``train``'s arguments into one frozen
:class:`TrainSettings` (the recipe's values with the overrides, the model, the
dataset, the seed...). Its fields are exactly what must match for a run folder
to be resumed: ``metrics.json`` stores them beside the run's measurements, and
:meth:`TrainSettings.differences` compares them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from pathlib import Path

from keras_ultradeep import checks, registry
from keras_ultradeep.training import datasets, folders, recipes

__all__ = [
    "JIT_COMPILE",
    "MIXED_PRECISION",
    "DEFAULT_VAL_SPLIT",
    "FINE_TUNE_LR_FACTOR",
    "TrainSettings",
    "builder_kwargs",
    "check_output",
    "resolve_settings",
]

MIXED_PRECISION = ("mixed_float16", "mixed_bfloat16")
DEFAULT_VAL_SPLIT = 0.2
# Fine-tuning's second phase (everything trainable) runs at this fraction of the
# learning rate, so that the pretrained body moves little (Keras' transfer-learning guide).
FINE_TUNE_LR_FACTOR = 0.1
JIT_COMPILE = (True, False, "auto")
# Set by the trainer from the dataset, so not accepted in ``model_kwargs``.
_TRAINER_ARGUMENTS = ("input_shape", "input_tensor", "classes", "include_top")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a run's result (see :func:`resolve_settings`)."""

    model: str
    model_kwargs: dict
    dataset: str
    input_size: int | None
    # The resolved recipe (:func:`.recipes.resolve`).
    recipe: str
    epochs: int | None
    batch_size: int
    optimizer: str
    learning_rate: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str
    milestones: list
    lr_factor: float
    label_smoothing: float
    dropout: float | None
    augmentation: str
    normalization: str
    clipnorm: float | None
    train_split: str
    steps: int | None
    milestone_steps: list
    decay_epochs: float | None
    rmsprop_epsilon: float | None
    recipe_model_kwargs: dict
    milestone_scale: float | None
    seed: int = 0
    mixed_precision: str | None = None
    # Fine-tuning (``weights``: a pretrained tag): the head alone for
    # ``freeze_epochs`` epochs, then everything at ``learning_rate * FINE_TUNE_LR_FACTOR``.
    weights: str | None = None
    freeze_epochs: int = 0
    # An image folder without train/ and val/: the validation fraction of each class.
    val_split: float = 0.2

    def record(self):
        """The settings as the JSON-friendly dict stored in ``metrics.json``."""
        return dataclasses.asdict(self)

    def differences(self, record):
        """``["key X there, Y here", ...]`` for each setting ``record`` holds otherwise."""
        # A setting added after the record was written matches at its default.
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return [
            f"{key} {record.get(key)!r} there, {value!r} here"
            for key, value in self.record().items()
            if record.get(key, defaults[key]) != value
        ]


def check_output(output):
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


def builder_kwargs(entry, settings, *, dropout_given):
    """The builder's arguments: the recipe's (dropout, e.g. survival_prob) under the user's."""
    try:
        accepted = set(inspect.signature(entry.builder).parameters)
    except (TypeError, ValueError):
        accepted = set()
    applied = {key: value for key, value in settings.recipe_model_kwargs.items() if key in accepted}
    if settings.dropout is not None:
        if "dropout_rate" in accepted:
            applied["dropout_rate"] = settings.dropout
        elif dropout_given:
            raise ValueError(f"dropout: {entry.name} has no dropout_rate argument")
    applied.update(settings.model_kwargs)
    return applied


def _check_fine_tuning(entry, weights, freeze_epochs, epochs, dataset):
    """``freeze_epochs`` checked (by default half the run, at least one epoch, with ``weights``)."""
    from keras_ultradeep import weights as weights_lib

    if weights is None:
        if freeze_epochs:
            raise ValueError("freeze_epochs: only with weights (fine-tuning a pretrained model)")
        return 0
    tags = weights_lib.tags(entry.name)
    if weights_lib.resolve(entry.name, weights, warn=False) is None:
        raise ValueError(
            f"weights: {entry.name} has no pretrained tag {weights!r} "
            f"(available: {', '.join(tags) or 'none'})"
        )
    if dataset == datasets.DIGITS:
        raise ValueError("weights: pretrained weights need RGB images; digits is grayscale")
    if epochs is None:
        raise ValueError("epochs: fine-tuning counts epochs; give epochs rather than steps")
    if freeze_epochs is None:
        return max(1, epochs // 2)
    checks.integer(freeze_epochs, "freeze_epochs", minimum=0, maximum=epochs)
    return freeze_epochs


def _default_input_size(entry, weights):
    """An image folder's input side: the pretrained tag's, else the model's default."""
    if weights is not None:
        from keras_ultradeep.training.finetune import tag_data_config

        return int(tag_data_config(entry.name, weights)["input_size"][0])
    return entry.default_size


def resolve_settings(
    model_name, *, dataset, seed, input_size, model_kwargs, recipe, overrides, mixed_precision,
    weights=None, freeze_epochs=None, val_split=DEFAULT_VAL_SPLIT,
):
    """Checks every argument (before any work); returns ``(registry entry, TrainSettings)``."""
    entry = registry.model_entry(model_name)
    config = recipes.resolve(recipe, **overrides)
    checks.integer(seed, "seed", minimum=0)
    val_split = checks.number_in(val_split, "val_split", 0, 1, low_open=True, high_open=True)
    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    folder = dataset is not None and folders.is_image_folder(dataset)
    freeze_epochs = _check_fine_tuning(entry, weights, freeze_epochs, config["epochs"], dataset)
    if input_size is None:
        input_size = config["input_size"]
    if input_size is None and folder:
        input_size = _default_input_size(entry, weights)
    if input_size is not None:
        checks.positive_int(input_size, "input_size")
        if input_size < entry.min_size:
            raise ValueError(
                f"input_size: {model_name} needs inputs of at least {entry.min_size}x"
                f"{entry.min_size}, got {input_size}"
            )
    if mixed_precision is not None:
        checks.one_of(mixed_precision, "mixed_precision", MIXED_PRECISION)
    model_kwargs = _check_model_kwargs(model_kwargs)
    if dataset is None:
        dataset = recipes.get_recipe(config["recipe"]).dataset
        if dataset is None:
            raise ValueError("dataset: expected a dataset name (the recipe has none)")
    datasets.check_dataset_name(dataset, val_split=val_split, seed=seed)
    config.pop("input_size")
    if weights is not None:
        config["normalization"] = "mean_std"  # with the tag's mean and standard deviation
    settings = TrainSettings(
        model=model_name,
        model_kwargs=model_kwargs,
        dataset=dataset,
        input_size=input_size,
        **config,
        seed=seed,
        mixed_precision=mixed_precision,
        weights=weights,
        freeze_epochs=freeze_epochs,
        val_split=val_split,
    )
    return entry, settings
