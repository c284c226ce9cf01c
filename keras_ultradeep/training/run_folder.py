"""The run folder's files: names, the resume checkpoints, ``metrics.json``.

Every file is written through :func:`keras_ultradeep.files.atomic_path` (a
temporary beside it, then a rename), so a run killed at any moment leaves
each file whole; :func:`remove_stale_temporaries` clears what such a kill left.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

from keras_ultradeep import files, saving

__all__ = [
    "CHECKPOINTS",
    "LOG_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "PLOT_FILE",
    "TENSORBOARD",
    "epoch_checkpoints",
    "history_csv",
    "read_metrics",
    "remove_stale_temporaries",
    "save_model",
]

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
PLOT_FILE = "training_curves.png"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
_EPOCH_CHECKPOINT = re.compile(r"^epoch-(\d+)\.keras$")


def save_model(model, path, info=None):
    """Saves ``model`` to ``path`` atomically, with this package's ``info`` inside (see :mod:`..saving`)."""
    with files.atomic_path(path) as temp:
        model.save(temp)
        if info:
            saving.write_model_info(temp, info)


def history_csv(history):
    columns = ["epoch", *sorted({key for entry in history for key in entry} - {"epoch"})]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()


def read_metrics(output):
    """The run record in ``output/metrics.json``, or ``None`` where there is none."""
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


def remove_stale_temporaries(output):
    """The temporaries of a run that was killed while writing a file."""
    for folder in (output, output / CHECKPOINTS):
        for stale in folder.glob(f"{files.TEMP_PREFIX}*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)


def epoch_checkpoints(output):
    """``{epoch: path}`` of the resume checkpoints in the run folder."""
    found = {}
    folder = output / CHECKPOINTS
    if folder.is_dir():
        for path in folder.iterdir():
            match = _EPOCH_CHECKPOINT.match(path.name)
            if match:
                found[int(match.group(1))] = path
    return found
