"""Keras Tuner search spaces over the papers' knobs, and the ``tune`` command.

Three :class:`keras_tuner.HyperModel` subclasses, each built from
``input_shape`` and ``classes`` (any size the CIFAR-form networks take):

* :class:`HyperDenseNet`: ``growth_rate``, ``depth``, ``compression``
  (DenseNet-BC's bottleneck layers by default, Huang et al. 2017);
* :class:`HyperResNeXt`: ``cardinality``, ``bottleneck_width``, ``depth``
  (ResNeXt-29-style CIFAR networks, Xie et al. 2017);
* :class:`HyperWideResNet`: ``widening_factor``, ``depth``, ``dropout_rate``
  (WRN-d-k, Zagoruyko & Komodakis 2016);

each plus ``learning_rate`` (SGD with Nesterov momentum 0.9, the papers'
optimizer). Invalid combinations are never built because the space only
holds valid values: every ``depth`` offered fits its family's formula
(DenseNet-BC ``6n + 4``, DenseNet ``3n + 4``, ResNeXt ``9n + 2``, WRN
``6n + 4``), and ResNeXt's grouped width is ``cardinality *
bottleneck_width``, which the cardinality always divides. ``space=`` narrows
or replaces any hyperparameter's choices; its values are checked the same way
(``ValueError`` naming the hyperparameter) before anything is built.

``tune(family, dataset=..., tuner=..., max_trials=..., epochs=..., output=...)``
runs a search (``keras-ultradeep tune``), writes ``results.csv`` (one row per
trial: its hyperparameters, parameter count and best ``val_accuracy``), and
saves the best model as ``best_model.keras`` and exports it as a SavedModel
(``best_saved_model/``), verified against the Keras model.
"""

from __future__ import annotations

import csv
import io
import math

import keras_tuner

from keras_ultradeep import checks, files

__all__ = [
    "HYPERMODELS",
    "TUNERS",
    "HyperDenseNet",
    "HyperResNeXt",
    "HyperWideResNet",
    "tune",
]

LEARNING_RATE_RANGE = (1e-3, 0.3)  # sampled on a log scale unless ``space`` gives choices
MOMENTUM = 0.9
RESULTS_FILE = "results.csv"
BEST_MODEL_FILE = "best_model.keras"
BEST_EXPORT = "best_saved_model"
PROJECT = "search"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_input(input_shape, classes):
    input_shape = checks.positive_ints(input_shape, "input_shape", length=3, what="(height, width, channels)")
    return input_shape, checks.positive_int(classes, "classes")


class _PaperSpace(keras_tuner.HyperModel):
    """A family's knobs as hyperparameters with only valid values.

    Subclasses set ``CHOICES`` (hyperparameter -> default choices), ``_valid``
    (whether one value of a hyperparameter is allowed, with the rule in words)
    and ``_build_network``.
    """

    CHOICES: dict = {}

    def __init__(self, input_shape, classes, *, space=None, name=None, tunable=True):
        super().__init__(name=name, tunable=tunable)
        self.input_shape, self.classes = _check_input(input_shape, classes)
        self.choices = {**self.CHOICES, "learning_rate": None}
        for key, values in (space or {}).items():
            if key not in self.choices:
                raise ValueError(
                    f"space: unknown hyperparameter {key!r}; {type(self).__name__} has "
                    f"{', '.join(self.choices)}"
                )
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)) or not values:
                raise ValueError(f"{key}: expected a non-empty list of choices, got {values!r}")
            for value in values:
                ok, rule = self._valid(key, value)
                if not ok:
                    raise ValueError(f"{key}: {value!r} is not allowed ({rule})")
            self.choices[key] = list(dict.fromkeys(values))

    def _valid(self, key, value):
        if key == "learning_rate":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
            return ok, "a positive number"
        raise NotImplementedError

    def _hyperparameters(self, hp):
        values = {key: hp.Choice(key, choices) for key, choices in self.choices.items() if choices is not None}
        if self.choices["learning_rate"] is None:
            low, high = LEARNING_RATE_RANGE
            values["learning_rate"] = hp.Float("learning_rate", low, high, sampling="log", default=0.1)
        return values

    def build(self, hp):
        # The trainer's preparation and compilation; SGD with Nesterov momentum at
        # the trial's constant learning rate (where Keras' SGD and Torch's agree).
        import keras

        from keras_ultradeep.training import build

        values = self._hyperparameters(hp)
        learning_rate = values.pop("learning_rate")
        model = build.prepare(
            self._build_network(weights=None, input_shape=self.input_shape, classes=self.classes, **values)
        )
        return build.compile_model(model, keras.optimizers.SGD(learning_rate, momentum=MOMENTUM, nesterov=True))


class HyperDenseNet(_PaperSpace):
    """DenseNet for CIFAR-size inputs over ``growth_rate``, ``depth``,
    ``compression`` and ``learning_rate``.

    Args:
        input_shape: ``(height, width, channels)``.
        classes: the number of classes.
        bottleneck: DenseNet-B's 1x1 bottleneck layers (``depth = 6n + 4``);
            without them ``depth = 3n + 4``.
        space: ``{hyperparameter: [choices]}`` replacing the default choices.
    """

    CHOICES = {"growth_rate": [12, 24, 32, 40], "depth": [40, 100, 190, 250], "compression": [0.5, 1.0]}

    def __init__(self, input_shape, classes, *, bottleneck=True, space=None, name=None, tunable=True):
        if not isinstance(bottleneck, bool):
            raise TypeError(f"bottleneck: expected True or False, got {bottleneck!r}")
        self.bottleneck = bottleneck
        if not bottleneck:
            self.CHOICES = {**self.CHOICES, "depth": [40, 100]}
        super().__init__(input_shape, classes, space=space, name=name, tunable=tunable)

    def _valid(self, key, value):
        per_block = 6 if self.bottleneck else 3
        if key == "growth_rate":
            return _is_int(value) and value > 0, "a positive integer"
        if key == "depth":
            ok = _is_int(value) and value >= 4 + per_block and (value - 4) % per_block == 0
            return ok, f"depth must be {per_block}n + 4 with n >= 1"
        if key == "compression":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
            return ok, "compression must be in (0, 1]"
        return super()._valid(key, value)

    def _build_network(self, **kwargs):
        from keras_ultradeep.models.densenet import DenseNetCIFAR

        return DenseNetCIFAR(bottleneck=self.bottleneck, name="hyper_densenet", **kwargs)


class HyperResNeXt(_PaperSpace):
    """ResNeXt for CIFAR-size inputs over ``cardinality``,
    ``bottleneck_width``, ``depth`` (``9n + 2``) and ``learning_rate``."""

    CHOICES = {"cardinality": [2, 4, 8, 16, 32], "bottleneck_width": [4, 8, 16, 32, 64], "depth": [11, 20, 29]}

    def _valid(self, key, value):
        if key in ("cardinality", "bottleneck_width"):
            return _is_int(value) and value > 0, "a positive integer"
        if key == "depth":
            return _is_int(value) and value >= 11 and (value - 2) % 9 == 0, "depth must be 9n + 2 with n >= 1"
        return super()._valid(key, value)

    def _build_network(self, **kwargs):
        from keras_ultradeep.models.resnet import ResNeXtCIFAR

        return ResNeXtCIFAR(name="hyper_resnext", **kwargs)


class HyperWideResNet(_PaperSpace):
    """Wide ResNet for CIFAR-size inputs over ``widening_factor``, ``depth``
    (``6n + 4``), ``dropout_rate`` and ``learning_rate``."""

    CHOICES = {"widening_factor": [1, 2, 4, 8, 10], "depth": [16, 22, 28, 40], "dropout_rate": [0.0, 0.3]}

    def _valid(self, key, value):
        if key == "widening_factor":
            return _is_int(value) and value > 0, "a positive integer"
        if key == "depth":
            return _is_int(value) and value >= 10 and (value - 4) % 6 == 0, "depth must be 6n + 4 with n >= 1"
        if key == "dropout_rate":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
            return ok, "dropout_rate must be in [0, 1)"
        return super()._valid(key, value)

    def _build_network(self, **kwargs):
        from keras_ultradeep.models.resnet_v2 import WideResNet

        return WideResNet(name="hyper_wide_resnet", **kwargs)


HYPERMODELS = {"densenet": HyperDenseNet, "resnext": HyperResNeXt, "wide_resnet": HyperWideResNet}
TUNERS = ("random", "bayesian", "hyperband")


def _make_tuner(kind, hypermodel, *, max_trials, epochs, seed, directory):
    common = dict(objective="val_accuracy", seed=seed, directory=str(directory), project_name=PROJECT)
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    # Hyperband's brackets decide the trials' epochs (up to ``epochs``); the
    # oracle's max_trials caps how many it starts.
    tuner = keras_tuner.Hyperband(hypermodel, max_epochs=epochs, factor=3, hyperband_iterations=1, **common)
    tuner.oracle.max_trials = max_trials
    return tuner


def _results_table(tuner, hypermodel):
    trials = [trial for trial in tuner.oracle.trials.values() if trial.score is not None]
    trials.sort(key=lambda trial: -trial.score)
    keys = list(hypermodel.choices)
    rows = []
    for trial in trials:
        model = hypermodel.build(trial.hyperparameters)
        rows.append(
            {
                "trial": trial.trial_id,
                **{key: trial.hyperparameters.get(key) for key in keys},
                "parameters": model.count_params(),
                "val_accuracy": round(float(trial.score), 6),
            }
        )
    return rows


def _csv_text(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["trial"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def tune(
    family,
    *,
    dataset,
    tuner="random",
    max_trials,
    epochs,
    output,
    batch_size=64,
    input_size=None,
    seed=0,
    space=None,
    data_dir=None,
    verbose=0,
):
    """Searches ``family``'s space on ``dataset`` and keeps the best model.

    Args:
        family: ``"densenet"``, ``"resnext"`` or ``"wide_resnet"``.
        dataset: ``"digits"`` (bundled, offline) or a TensorFlow Datasets name.
        tuner: ``"random"``, ``"bayesian"`` or ``"hyperband"``.
        max_trials: the most trials to run.
        epochs: epochs per trial (Hyperband: the most epochs a trial gets).
        output: the search folder; rerunning with the same folder resumes the
            search (Keras Tuner's own state lives in ``output/search``).
        space: ``{hyperparameter: [choices]}`` narrowing the space.

    Returns:
        The rows written to ``results.csv``, best first.
    """
    from keras_ultradeep.training import datasets
    from keras_ultradeep.training.settings import check_output

    checks.one_of(family, "family", HYPERMODELS)
    checks.one_of(tuner, "tuner", TUNERS)
    for value, argument in ((max_trials, "max_trials"), (epochs, "epochs"), (batch_size, "batch_size")):
        checks.positive_int(value, argument)
    output = check_output(output)
    datasets.check_dataset_name(dataset)
    # The space is checked on a placeholder shape before any data is loaded.
    HYPERMODELS[family]((32, 32, 3), 10, space=space)

    data = datasets.load_dataset(
        dataset, batch_size=batch_size, input_size=input_size, min_size=8, seed=seed, data_dir=data_dir
    )
    hypermodel = HYPERMODELS[family](data.image_shape, data.num_classes, space=space)
    output.mkdir(parents=True, exist_ok=True)
    search = _make_tuner(tuner, hypermodel, max_trials=max_trials, epochs=epochs, seed=seed, directory=output)
    search.search(data.train, validation_data=data.validation, epochs=epochs, verbose=verbose)

    rows = _results_table(search, hypermodel)
    if not rows:
        raise RuntimeError(f"no trial of the search in {str(output)!r} completed; Keras Tuner printed why")
    files.write_text(output / RESULTS_FILE, _csv_text(rows))
    from keras_ultradeep import export
    from keras_ultradeep.training import run_folder

    run_folder.save_model(search.get_best_models(num_models=1)[0], output / BEST_MODEL_FILE)
    export.export_model(output / BEST_MODEL_FILE, output / BEST_EXPORT, overwrite=True)
    return rows
