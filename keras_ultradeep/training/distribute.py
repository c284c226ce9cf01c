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
"""

from __future__ import annotations

import json
import os

__all__ = ["STRATEGIES", "check_strategy", "make_strategy", "is_chief"]

STRATEGIES = ("none", "mirrored", "multi_worker")


def check_strategy(name):
    if name not in STRATEGIES:
        raise ValueError(f"distribute: expected one of {', '.join(STRATEGIES)}, got {name!r}")
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


def make_strategy(name):
    import tensorflow as tf

    check_strategy(name)
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
