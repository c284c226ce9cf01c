"""Exporting a saved Keras model for serving, verified against the model.

``export_model("runs/digits/model.keras", "runs/digits/saved_model")`` loads
the model (with Keras' safe mode), exports it into a temporary folder beside
the output, reloads the export, runs it and the Keras model on the same
deterministic random batch and moves the export into place only if they agree
within :data:`VERIFY_TOLERANCE`. A failed call leaves nothing at ``output``.

Formats (Keras' own ``Model.export`` does the conversion; we load the result
back with the runtime that serves it):

* ``saved_model``: a TensorFlow SavedModel folder, reloaded with
  ``tf.saved_model.load``;
* ``tflite``: a LiteRT/TFLite flatbuffer (``.tflite``), run with the LiteRT
  interpreter (``ai-edge-litert``; TensorFlow's deprecated ``tf.lite`` one where
  that is missing);
* ``onnx``: an ONNX file (``.onnx``) written by tf2onnx, run with ONNX Runtime.

``tflite`` and ``onnx`` need the ``export`` extra
(``pip install "keras-ultradeep[export]"``). Grouped convolutions export
because :class:`~keras_ultradeep.layers.GroupedConv2D` is one TensorFlow
convolution; Keras' ``Conv2D(groups=...)`` wraps its op in a nested XLA
function that tf2onnx cannot convert.

Each format is one entry of ``_FORMATS``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from pathlib import Path

import numpy as np

from keras_ultradeep import checks, files

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


def _tflite_interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's own, deprecated but still shipped
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path))


def _run_tflite(path, batch):
    runner = _tflite_interpreter(path).get_signature_runner()
    (input_name,) = runner.get_input_details()
    outputs = runner(**{input_name: batch})
    # Keras names the outputs output_0, output_1, ... in the model's order.
    return [outputs[key] for key in sorted(outputs, key=lambda key: int(re.sub(r"\D", "", key) or 0))]


def _run_onnx(path, batch):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (spec,) = session.get_inputs()
    return session.run(None, {spec.name: batch})


@dataclasses.dataclass(frozen=True)
class _Format:
    keras_format: str  # Model.export's name for it
    run: object  # runs the exported artifact on a batch
    suffix: str = ""  # a file format's required suffix ("" for a folder)
    # Keras backend -> what Keras' export needs there beyond the backend: (import name, pip name).
    # A backend not listed cannot export this format (Keras has no converter from it).
    backends: dict = dataclasses.field(default_factory=lambda: {"tensorflow": ()})


_FORMATS = {
    # On JAX Keras converts through jax2tf; PyTorch has no SavedModel path.
    "saved_model": _Format("tf_saved_model", _run_saved_model, backends={"tensorflow": (), "jax": ()}),
    # PyTorch would need litert-torch (not an extra here); JAX has no LiteRT path in Keras.
    "tflite": _Format("litert", _run_tflite, ".tflite"),
    "onnx": _Format("onnx", _run_onnx, ".onnx", backends={
        "tensorflow": (("tf2onnx", "tf2onnx"), ("onnxruntime", "onnxruntime")),
        "jax": (("jax2onnx", "jax2onnx"), ("onnxruntime", "onnxruntime")),
        "torch": (("onnxruntime", "onnxruntime"),),
    }),
}
SUPPORTED_FORMATS = tuple(_FORMATS)


def _check_format(format, output):
    checks.one_of(format, "format", SUPPORTED_FORMATS)
    spec = _FORMATS[format]
    if spec.suffix and output.suffix.lower() != spec.suffix:
        raise ValueError(f"output: a {format} export is a file ending in {spec.suffix!r}, got {str(output)!r}")
    import keras

    backend = keras.backend.backend()
    if backend not in spec.backends:
        raise ValueError(
            f"format: a {format} export needs the {' or '.join(spec.backends)} backend of Keras, and Keras "
            f"runs on {backend} here; run it with KERAS_BACKEND={next(iter(spec.backends))}"
        )
    missing = [pip for module, pip in spec.backends[backend] if importlib.util.find_spec(module) is None]
    if missing:
        raise ValueError(
            f"format: {format!r} needs {' and '.join(missing)}; install them with "
            + {"tensorflow": 'pip install "keras-ultradeep[export]"',
               "jax": 'pip install "keras-ultradeep[jax-export]"'}.get(
                backend, f"pip install {' '.join(missing)} (on the {backend} backend)")
        )
    return spec


def _as_path(value, argument):
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise TypeError(f"{argument}: expected a path, got {value!r}")
    return Path(value)


def _load(model_file):
    import keras

    import keras_ultradeep.models  # noqa: F401  (registers every family's layers for loading)
    from keras_ultradeep.contract import ensure_recursion_limit

    ensure_recursion_limit()  # loading a very deep model recurses as deep as building it

    try:
        # Inference only: the training state (a run's optimizer is this package's, registered
        # by keras_ultradeep.training, which need not be imported here) is not restored.
        return keras.models.load_model(model_file, compile=False)
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
        format: one of :data:`SUPPORTED_FORMATS` (``saved_model``, ``tflite``, ``onnx``).
        overwrite: replace an existing ``output``.
        verify: run the export and the model on a deterministic random batch
            and raise :class:`ExportVerificationError` if their outputs differ
            by more than :data:`VERIFY_TOLERANCE`.

    Returns:
        The largest absolute difference between the two outputs, or ``None``
        when ``verify`` is False.
    """
    model_file = _as_path(model_file, "model_file")
    output = _as_path(output, "output")
    spec = _check_format(format, output)
    if not model_file.is_file():
        raise FileNotFoundError(f"model_file: no such file {str(model_file)!r}")
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"output: {str(output)!r} already exists; pass overwrite=True (--overwrite) to replace it"
        )
    model = _load(model_file)

    # The export appears at ``output`` only once it is verified.
    with files.atomic_path(output) as exported:
        batch = _verification_batch(model)
        expected = model(batch, training=False)  # also marks a loaded model as called (ONNX needs it)
        model.export(str(exported), format=spec.keras_format, verbose=False)
        difference = None
        if verify:
            difference = _max_abs_difference(expected, spec.run(exported, batch))
            if not difference <= VERIFY_TOLERANCE:
                raise ExportVerificationError(
                    f"the {format} export of {str(model_file)!r} differs from the Keras model by "
                    f"up to {difference:.3g} (tolerance {VERIFY_TOLERANCE:g}); nothing was written"
                )
    return difference
