"""``keras-ultradeep analyze``: an analysis of a saved model on a dataset.

The model file is loaded with ``safe_mode=True``; the dataset (``digits``, a
TensorFlow Datasets name, or whatever else ``load_dataset`` accepts) is its
validation split, prepared as the training run that wrote the file prepared
it: the run folder's ``metrics.json`` gives the normalization and the seed of
the digits split (otherwise ``unit`` and 0).
"""

from __future__ import annotations

import sys
from pathlib import Path

from keras_ultradeep import checks

__all__ = ["ANALYSES", "analyze", "load_validation", "summary"]

ANALYSES = ("lesion", "paths", "reuse", "columns")
KINDS = ("auto", "residual", "plain")


def load_validation(model, model_file, dataset, *, batch_size=128, max_examples=None):
    """``(images, labels)``: the validation split of ``dataset`` prepared for ``model`` as its run was."""
    from keras_ultradeep.analysis.data import as_arrays
    from keras_ultradeep.training import datasets, evaluate

    record = evaluate.run_record(model_file) or {}
    same = record.get("dataset") == dataset
    height, width, channels = model.input_shape[1:]
    if height is None or height != width:
        raise ValueError(f"model_file: expected a model with a fixed square input, got {model.input_shape}")
    data = datasets.load_dataset(
        dataset,
        batch_size=batch_size,
        input_size=int(height),
        seed=record.get("seed", 0) if same else 0,
        normalization=record.get("normalization", "unit") if same else "unit",
    )
    if data.image_shape[-1] != channels:
        raise ValueError(f"dataset: {dataset!r} has {data.image_shape[-1]}-channel images, the model takes {channels}")
    return as_arrays(data.validation, max_examples, argument="dataset")


def _progress_bar(description):
    from tqdm import tqdm

    bar = None

    def update(done, total):
        nonlocal bar
        if bar is None:
            # disable=None: drawn on a terminal only, so piped --json output stays clean.
            bar = tqdm(total=total, desc=description, file=sys.stderr, disable=None, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def analyze(
    analysis, model_file, *, dataset=None, kind="auto", draws=5, max_removed=None, samples=8, batch_size=128,
    max_examples=None, seed=0, plot=None, progress=True,
):
    """Runs ``analysis`` (one of :data:`ANALYSES`) on the ``.keras`` file
    ``model_file``; writes the figure to ``plot`` (a .png) if given; returns the result."""
    import keras

    import keras_ultradeep.layers  # noqa: F401  (registers the custom layers for loading)
    from keras_ultradeep import analysis as lib
    from keras_ultradeep.analysis.structure import residual_blocks

    checks.one_of(analysis, "analysis", ANALYSES)
    checks.one_of(kind, "kind", KINDS)
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise ValueError(f"plot: expected a .png file, got {str(plot)!r}")
    if not Path(model_file).is_file():
        raise FileNotFoundError(f"model_file: no such file {str(model_file)!r}")
    if analysis != "reuse" and dataset is None:
        raise ValueError(f"dataset: the {analysis} analysis needs a dataset (--dataset digits, say)")
    if dataset is not None:
        from keras_ultradeep.training import datasets

        datasets.check_dataset_name(dataset)
    model = keras.models.load_model(model_file, compile=False, safe_mode=True)
    report = _progress_bar(analysis) if progress else None
    if analysis == "reuse":
        result = lib.feature_reuse(model)
    else:
        data = load_validation(model, model_file, dataset, batch_size=batch_size, max_examples=max_examples)
        if analysis == "lesion":
            if kind == "auto":
                try:
                    residual_blocks(model)
                    kind = "residual"
                except ValueError:
                    kind = "plain"
            result = lib.lesion_study(
                model, data, kind=kind, draws=draws, max_removed=max_removed, seed=seed,
                batch_size=batch_size, progress=report,
            )
        elif analysis == "paths":
            result = lib.path_lengths(model, data, samples=samples, batch_size=batch_size, seed=seed, progress=report)
        else:
            result = lib.fractal_columns(model, data, batch_size=batch_size, progress=report)
    result = {**result, "model_file": str(model_file), "dataset": dataset}
    if plot is not None:
        lib.plot(result, plot, title=f"{Path(model_file).name} on {dataset}" if dataset else Path(model_file).name)
    return result


def summary(result):
    """A few human-readable lines about ``result``."""
    kind = result["analysis"]
    lines = [f"{result['model']} ({result['model_file']}): {kind}"]
    if kind == "lesion":
        single = [entry["accuracy"] for entry in result["single"]]
        lines.append(f"{result['kind']} units: {len(single)}; accuracy {result['baseline']:.4f} on "
                     f"{result['examples']} images, chance {1 / result['classes']:.4f}")
        lines.append(f"one removed: mean {sum(single) / len(single):.4f}, worst {min(single):.4f}, best {max(single):.4f}")
        for entry in result["random"]:
            lines.append(f"{entry['removed']:4d} removed at random: {entry['mean']:.4f} +- {entry['std']:.4f}")
    elif kind == "paths":
        lines.append(f"{result['blocks']} blocks: paths are {result['path_range'][0]}-{result['path_range'][1]} "
                     f"blocks long (central 90%), mean {result['mean_path_length']:.1f}")
        lines.append(f"gradient: central 90% from paths {result['effective_range'][0]}-"
                     f"{result['effective_range'][1]} blocks long, mean {result['effective_length']:.2f}")
    elif kind == "reuse":
        for index, block in enumerate(result["blocks"]):
            lines.append(f"dense block {index + 1}: {len(block['sources']) - 1} layers, "
                         f"{len(block['targets'])} targets (from {block['targets'][0]})")
    else:
        lines.append(f"whole network: {result['whole']:.4f}")
        for column in result["columns"]:
            lines.append(f"column {column['column']} ({column['convolutions']} convs): {column['accuracy']:.4f}")
    return "\n".join(lines)
