"""``train --distribute``: MirroredStrategy on two logical CPU devices and
MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1.

Each runs in subprocesses: logical devices must be configured before TensorFlow
initializes, and a multi-worker strategy needs one process per worker.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from keras_ultradeep.training import distribute

pytestmark = pytest.mark.slow  # every test here runs models end to end (seconds to minutes)

_COMMON = """
import sys
import numpy as np
import keras
from keras_ultradeep.training import fit


class SaveWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        np.savez(sys.argv[2], *[w.numpy() for w in self.model.trainable_weights])


def run(strategy):
    return fit.train("densenet40_k12", recipe="densenet_cifar", dataset="digits", epochs={epochs},
                     batch_size=64, output=sys.argv[1], model_kwargs={{"depth": 10, "growth_rate": 4}},
                     distribute=strategy, callbacks=[SaveWeights()], verbose=0, plot=False)
"""

_MIRRORED = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
""" + _COMMON.format(epochs=2) + """
record = run("mirrored")
assert record["replicas"] == 2 and record["complete"], record
print("REPLICAS", record["replicas"], "VAL", record["val_accuracy"])
"""

_WORKER = _COMMON.format(epochs=1) + """
record = run("multi_worker")
print("REPLICAS", record["replicas"])
"""


def _env():
    return dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="2")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED)
    output = tmp_path / "run"
    result = subprocess.run([sys.executable, str(script), str(output), str(tmp_path / "w.npz")],
                            capture_output=True, text=True, env=_env(), timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "REPLICAS 2" in result.stdout
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["distribute"] == "mirrored" and metrics["epochs_completed"] == 2
    assert metrics["val_accuracy"] > 0.2  # it learns (chance is 0.1)
    weights = np.load(tmp_path / "w.npz")
    assert all(np.isfinite(weights[k]).all() for k in weights.files)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_strategy_with_two_processes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    output = tmp_path / "run"
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    try:
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            processes.append(subprocess.Popen(
                [sys.executable, str(script), str(output), str(tmp_path / f"w{index}.npz")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=dict(_env(), TF_CONFIG=json.dumps(config)),
            ))
        results = [p.communicate(timeout=240) for p in processes]
    finally:
        for p in processes:  # bounded: never leave a worker behind
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(processes, results):
        assert p.returncode == 0, err[:3000] + "\n...\n" + err[-1500:]
        assert "REPLICAS 2" in out
    chief, other = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert chief.files == other.files
    # All-reduced gradients: the workers agree on every trainable weight. (BatchNorm's
    # moving statistics are each worker's own, from its half of the batches.)
    for key in chief.files:
        np.testing.assert_allclose(chief[key], other[key], rtol=1e-5, atol=1e-6)
    # Only the chief (worker 0) writes the run folder.
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["complete"] and metrics["replicas"] == 2
    assert (output / "model.keras").exists()


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="distribute: multi_worker needs the TF_CONFIG"):
        distribute.check_strategy("multi_worker")
    with pytest.raises(ValueError, match="distribute: expected one of 'none', 'mirrored', 'multi_worker'"):
        distribute.check_strategy("tpu")
