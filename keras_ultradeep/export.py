"""Exporting a saved Keras model for serving, verified against the model.

``export_model("runs/digits/model.keras", "runs/digits/saved_model")`` loads
the model (with Keras' safe mode), exports it into a temporary folder beside
the output, reloads the export, runs it and the Keras model on the same
deterministic random batch and moves the export into place only if they agree
within :data:`VERIFY_TOLERANCE`. A failed call leaves nothing at ``output``.

Each format is one entry of ``_FORMATS``: the Keras export format and a
function that runs the exported artifact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["SUPPORTED_FORMATS", "VERIFY_TOLERANCE", "ExportVerificationError", "export_model"]

VERIFY_TOLERANCE = 1e-5
_VERIFY_BATCH = 4
_DYNAMIC_SIDE = 32  # the side a batch gets where the model accepts any size


class ExportVerificationError(RuntimeError):
    """The exported artifact does not compute what the Keras model computes."""


def _run_saved_model(path, batch):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # its endpoints need it alive while they run
    return loaded.serve(tf.constant(batch))


# format name -> (Keras' ``Model.export`` format, runner of the exported artifact)
_FORMATS = {
    "saved_model": ("tf_saved_model", _run_saved_model),
}
SUPPORTED_FORMATS = tuple(_FORMATS)


def _as_path(value, argument):
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise TypeError(f"{argument}: expected a path, got {value!r}")
    return Path(value)


def _load(model_file):
    import keras

    import keras_ultradeep.models  # noqa: F401  (registers every family's layers for loading)
    from keras_ultradeep.contract import _ensure_recursion_limit

    _ensure_recursion_limit()  # loading a very deep model recurses as deep as building it

    try:
        return keras.models.load_model(model_file)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors...
        raise ValueError(f"model_file: cannot load {str(model_file)!r} as a Keras model ({error})") from error


def _verification_batch(model):
    if len(model.inputs) != 1:
        raise ValueError(f"model_file: expected a model with one input, got {len(model.inputs)}")
    spec = model.inputs[0]
    shape = [_DYNAMIC_SIDE if side is None else side for side in spec.shape[1:]]
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, (_VERIFY_BATCH, *shape)).astype(spec.dtype)


def _max_abs_difference(expected, actual):
    import keras

    expected = [np.asarray(keras.ops.convert_to_numpy(x)) for x in keras.tree.flatten(expected)]
    actual = [np.asarray(x) for x in keras.tree.flatten(actual)]
    if [x.shape for x in expected] != [x.shape for x in actual]:
        raise ExportVerificationError(
            f"the export's outputs have shapes {[x.shape for x in actual]}, the model's "
            f"{[x.shape for x in expected]}"
        )
    return max(float(np.max(np.abs(e - a))) for e, a in zip(expected, actual))


def export_model(model_file, output, format="saved_model", overwrite=False, verify=True):
    """Exports the Keras model file ``model_file`` to ``output`` in ``format``.

    Args:
        model_file: a ``.keras`` file (loaded with ``safe_mode=True``).
        output: the path of the export (a folder for ``saved_model``).
        format: one of :data:`SUPPORTED_FORMATS`.
        overwrite: replace an existing ``output``.
        verify: run the export and the model on a deterministic random batch
            and raise :class:`ExportVerificationError` if their outputs differ
            by more than :data:`VERIFY_TOLERANCE`.

    Returns:
        The largest absolute difference between the two outputs, or ``None``
        when ``verify`` is False.
    """
    if format not in _FORMATS:
        raise ValueError(
            f"format: expected one of {', '.join(map(repr, SUPPORTED_FORMATS))}, got {format!r}"
        )
    model_file = _as_path(model_file, "model_file")
    output = _as_path(output, "output")
    if not model_file.is_file():
        raise FileNotFoundError(f"model_file: no such file {str(model_file)!r}")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"output: {str(output)!r} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    keras_format, run_export = _FORMATS[format]
    model = _load(model_file)

    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.export-", dir=output.parent))
    try:
        exported = work / output.name
        model.export(str(exported), format=keras_format, verbose=False)
        difference = None
        if verify:
            batch = _verification_batch(model)
            difference = _max_abs_difference(model(batch, training=False), run_export(exported, batch))
            if not difference <= VERIFY_TOLERANCE:
                raise ExportVerificationError(
                    f"the {format} export of {str(model_file)!r} differs from the Keras model by "
                    f"up to {difference:.3g} (tolerance {VERIFY_TOLERANCE:g}); nothing was written"
                )
        if output.exists() or output.is_symlink():
            os.replace(output, work / "replaced")  # keep the old one until the new is in place
        os.replace(exported, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return difference
