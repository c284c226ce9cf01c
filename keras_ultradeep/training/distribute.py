"""``tf.distribute`` strategies for ``train --distribute``.

* ``none``: TensorFlow's default strategy (one device);
* ``mirrored``: ``MirroredStrategy`` over every GPU, or every logical CPU
  device when there is no GPU (tests split the CPU into two);
* ``multi_worker``: ``MultiWorkerMirroredStrategy`` configured by the
  ``TF_CONFIG`` environment variable (``cluster`` and ``task``); run the same
  command on every worker. The chief (``task`` ``chief``, or ``worker`` 0 when
  the cluster has no chief) writes the run folder; the other workers write
  nothing, and resume from the chief's checkpoints (the folder must be shared).

The batch size is global: each of N replicas gets ``batch_size / N``.

These are TensorFlow's. On the JAX backend ``mirrored`` is Keras' own
``keras.distribution.DataParallel`` over every JAX device (the GPUs, or the
host's devices: ``XLA_FLAGS=--xla_force_host_platform_device_count=N``);
``multi_worker`` and, on PyTorch, ``mirrored`` raise a ``ValueError`` naming
the backend.
"""

from __future__ import annotations

import contextlib
import json
import os

from keras_ultradeep import checks

__all__ = ["STRATEGIES", "adapt_to_multi_worker", "check_strategy", "is_chief", "make_strategy"]

STRATEGIES = ("none", "mirrored", "multi_worker")


def _backend():
    import keras

    return keras.backend.backend()


def check_strategy(name):
    checks.one_of(name, "distribute", STRATEGIES)
    backend = _backend()
    supported = {"tensorflow": STRATEGIES, "jax": ("none", "mirrored")}.get(backend, ("none",))
    if name not in supported:
        raise ValueError(
            f"distribute: {name} is tf.distribute's and Keras runs on {backend} here "
            f"(KERAS_BACKEND); on {backend} it can be {' or '.join(supported)}; use KERAS_BACKEND=tensorflow"
        )
    if name == "multi_worker":
        config = os.environ.get("TF_CONFIG")
        try:
            parsed = json.loads(config) if config else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or "cluster" not in parsed or "task" not in parsed:
            raise ValueError(
                "distribute: multi_worker needs the TF_CONFIG environment variable "
                '(JSON with "cluster" and "task"), got ' + repr(config)
            )
    return name


class _KerasDistribution:
    """What training uses of a strategy, for Keras' own distribution API (JAX) or none."""

    cluster_resolver = None

    def __init__(self, replicas):
        self.num_replicas_in_sync = replicas

    def scope(self):
        return contextlib.nullcontext()


def make_strategy(name):
    check_strategy(name)
    if _backend() != "tensorflow":
        if name == "none":
            return _KerasDistribution(1)
        import keras

        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return _KerasDistribution(len(devices))

    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    communication = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)


def is_chief(strategy):
    """Whether this process writes the run's files."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def adapt_to_multi_worker(model, strategy, batch):
    """Works around two problems of Keras 3's ``fit`` under ``MultiWorkerMirroredStrategy``.

    1. ``fit`` builds the metrics, loss and optimizer from the first distributed
       batch with ``strategy.reduce("MEAN", (x, y))``, which the strategy
       rejects (a tuple of ``PerReplica`` values): they are built here from a
       local ``batch``, so that step has nothing to do and is skipped.
    2. The step's logs are reduced across workers with ``reduce("MEAN", v,
       axis=0)``, which fails on scalars: the steps return them with a leading
       axis of one (the mean over the workers' equal values is the value).

    Both are open upstream (keras-team/keras#20585, tensorflow/tensorflow#72388:
    TensorFlow's own multi-worker Keras tutorial fails on Keras 3); the strategy,
    the collectives and ``fit`` are still TensorFlow's and Keras' own.
    """
    from keras import ops

    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def with_axis(step):
        def wrapped(batch):
            return {key: ops.expand_dims(value, 0) for key, value in step(batch).items()}

        return wrapped

    model.train_step = with_axis(model.train_step)
    model.test_step = with_axis(model.test_step)
