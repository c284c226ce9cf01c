"""The trainer's two callbacks: :class:`NanGuard` stops at a non-finite loss,
:class:`RunRecorder` writes the run folder after every epoch."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras

from keras_ultradeep import files
from keras_ultradeep.training import run_folder

__all__ = ["NanGuard", "RunRecorder"]


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

    def __init__(self, output, record, session_start, *, nan_guard=None, write=True, plot=True, model_info=None):
        super().__init__()
        self.model_info = model_info  # stored in every model file (class names, data configuration)
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
        checkpoints = self.output / run_folder.CHECKPOINTS
        resume = checkpoints / f"epoch-{epoch + 1:04d}.keras"
        run_folder.save_model(self.model, resume, self.model_info)
        files.link_or_copy(resume, checkpoints / "last.keras")
        if best is None or entry["val_accuracy"] > best:
            files.link_or_copy(resume, checkpoints / "best.keras")
        for older, path in run_folder.epoch_checkpoints(self.output).items():
            if older < epoch + 1:
                path.unlink()

    def finish(self):
        """Writes ``model.keras`` and marks the run complete (all epochs done)."""
        if self.writes:
            run_folder.save_model(self.model, self.output / run_folder.MODEL_FILE, self.model_info)
        self.record["complete"] = True
        self._write()
        if self.writes:  # only once the run is recorded complete: they are its resume point
            for path in run_folder.epoch_checkpoints(self.output).values():
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
        files.write_text(self.output / run_folder.LOG_FILE, run_folder.history_csv(history))
        if self.plot and history:
            from keras_ultradeep.training.plots import plot_history

            title = f"{record['model']} on {record['dataset']} ({record['recipe']})"
            with files.atomic_path(self.output / run_folder.PLOT_FILE) as temp:
                plot_history(history, temp, title)
        files.write_text(self.output / run_folder.METRICS_FILE, json.dumps(record, indent=2) + "\n")
