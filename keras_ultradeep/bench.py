"""Throughput, peak memory and build time of a model, against its reference.

``keras-ultradeep bench densenet121 --mode train --batch-size 32 --steps 20
--compare keras`` measures our model and keras.applications' DenseNet121 in
alternating worker processes (one per configuration, so that peak memory is
each configuration's own) and prints both and their ratio.
``--backend tensorflow --backend jax --backend torch`` measures ours on each
Keras backend, one worker process per backend (the backend is fixed when Keras
is imported), alternating with the reference round after round.

``jit_compile``: ``None`` leaves each backend its own default (Keras' "auto":
XLA on JAX, none on a CPU-only TensorFlow, eager PyTorch); ``True`` asks for
XLA (TensorFlow, JAX) or ``torch.compile`` (PyTorch); ``False`` for none
(on JAX that is op-by-op eager execution, far slower than its default).

A worker (``python -m keras_ultradeep.bench --worker SPEC``) builds the model,
runs ``warmup`` untimed steps and ``steps`` timed ones, and prints one JSON
line: ``images_per_sec`` (batch size over the median step time),
``peak_memory_mb`` (the process's peak resident memory on CPU; the
allocator's peak on a GPU), ``build_seconds`` and the step times.

References: ``keras`` is the same architecture from keras.applications (for
the models it has), ``timm`` the same from timm in PyTorch (channels-last;
automatic mixed precision on a GPU when ``mixed_precision``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from keras_ultradeep import checks

__all__ = ["MODES", "COMPARE", "BACKENDS", "benchmark", "KERAS_EQUIVALENTS", "TIMM_EQUIVALENTS"]

MODES = ("train", "infer", "build")
COMPARE = ("keras", "timm")
BACKENDS = ("tensorflow", "jax", "torch")
# Registry families whose builders take ``memory_efficient``.
MEMORY_EFFICIENT_FAMILIES = ("densenet", "densenet_cifar")

# Registry name -> keras.applications builder of the same network.
KERAS_EQUIVALENTS = {
    "densenet121": "DenseNet121",
    "densenet169": "DenseNet169",
    "densenet201": "DenseNet201",
    "resnet50_keras": "ResNet50",
    "resnet101_keras": "ResNet101",
    "resnet152_keras": "ResNet152",
    "resnet50v2": "ResNet50V2",
    "resnet101v2": "ResNet101V2",
    "resnet152v2": "ResNet152V2",
}
# Registry names that are timm's own models (timm's parity tests cover them).
TIMM_EQUIVALENTS = frozenset(
    {"densenet121", "densenet169", "densenet201", "densenet161"}
    | {f"resnet{d}" for d in (18, 34, 50, 101, 152)}
    | {"wide_resnet50_2", "wide_resnet101_2"}
    | {"resnext50_32x4d", "resnext101_32x4d", "resnext101_32x8d", "resnext101_64x4d"}
    | {f"resnetv2_{d}" for d in (18, 34, 50, 101, 152)}
    | {f"dpn{v}" for v in ("68", "68b", "92", "98", "107", "131")}
)


# ------------------------------------------------------------------ arguments


def _backends(backends):
    """The backends as a tuple of distinct names, each installed."""
    import importlib.util

    if isinstance(backends, str):
        backends = (backends,)
    if not isinstance(backends, (tuple, list)) or not backends:
        raise ValueError(f"backend: expected one or more of {BACKENDS}, got {backends!r}")
    for backend in backends:
        checks.one_of(backend, "backend", BACKENDS)
        if importlib.util.find_spec(backend) is None:
            raise ValueError(
                f"backend: {backend} is not installed (pip install \"keras-ultradeep[{backend}]\")"
            )
    if len(set(backends)) != len(backends):
        raise ValueError(f"backend: {list(backends)} names a backend twice")
    return tuple(backends)


def _spec(model_name, *, mode, batch_size, steps, warmup, input_size, jit_compile, mixed_precision,
          compare, model_kwargs, memory_efficient=False):
    """Validates every argument (before any process starts) and returns the worker spec."""
    from keras_ultradeep import registry

    entry = registry.model_entry(model_name)
    model_name = entry.name  # a builder's name ("DenseNet121") as its registry name
    checks.one_of(mode, "mode", MODES)
    checks.positive_int(batch_size, "batch_size")
    checks.positive_int(steps, "steps")
    checks.integer(warmup, "warmup", minimum=0)
    size = entry.default_size if input_size is None else input_size
    checks.positive_int(size, "input_size")
    if size < entry.min_size:
        raise ValueError(f"input_size: {model_name} needs at least {entry.min_size}, got {size}")
    checks.boolean(memory_efficient, "memory_efficient")
    if jit_compile not in (None, True, False):
        raise TypeError(f"jit_compile: expected True, False or None (the backend's default), got {jit_compile!r}")
    model_kwargs = dict(model_kwargs or {})
    if memory_efficient:
        if entry.family not in MEMORY_EFFICIENT_FAMILIES:
            raise ValueError(
                f"memory_efficient: {model_name} has no memory-efficient form (the "
                f"{', '.join(MEMORY_EFFICIENT_FAMILIES)} families have)"
            )
        model_kwargs["memory_efficient"] = True
    if compare not in (None, *COMPARE):
        raise ValueError(f"compare: expected one of {COMPARE} or None, got {compare!r}")
    reference = None
    if compare == "keras":
        reference = KERAS_EQUIVALENTS.get(model_name)
        if reference is None:
            raise ValueError(
                f"compare: keras.applications has no {model_name}; it has the equivalents of "
                f"{', '.join(sorted(KERAS_EQUIVALENTS))}"
            )
    elif compare == "timm":
        if model_name not in TIMM_EQUIVALENTS:
            raise ValueError(f"compare: {model_name} is not one of timm's models")
        reference = model_name
    return {
        "model": model_name,
        "model_kwargs": model_kwargs,
        "mode": mode,
        "batch_size": batch_size,
        "steps": steps,
        "warmup": warmup,
        "input_size": size,
        "jit_compile": jit_compile,
        "mixed_precision": bool(mixed_precision),
        "reference": reference,
        "compare": compare,
    }


# --------------------------------------------------------------------- workers


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _summary(build_seconds, step_seconds, batch_size, peak_mb):
    median = statistics.median(step_seconds) if step_seconds else None
    return {
        "images_per_sec": batch_size / median if median else None,
        "median_step_seconds": median,
        "peak_memory_mb": round(peak_mb, 1),
        "build_seconds": round(build_seconds, 3),
        "step_seconds": [round(s, 5) for s in step_seconds],
    }


def _keras_worker(spec):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    if spec["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_float16")
    shape = (spec["input_size"], spec["input_size"], 3)
    start = time.perf_counter()
    if spec["side"] == "reference":
        model = getattr(keras.applications, spec["reference"])(weights=None, input_shape=shape)
    else:
        from keras_ultradeep import registry

        model = registry.create_model(spec["model"], weights=None, input_shape=shape, **spec["model_kwargs"])
    build_seconds = time.perf_counter() - start
    steps = []
    if spec["mode"] != "build":
        rng = np.random.default_rng(0)
        batch = spec["batch_size"]
        x = rng.uniform(0, 1, (batch, *shape)).astype("float32")
        classes = model.output_shape[-1]
        y = rng.integers(0, classes, (batch,))
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile="auto" if spec["jit_compile"] is None else spec["jit_compile"],
        )
        step = (lambda: model.train_on_batch(x, y)) if spec["mode"] == "train" else (
            lambda: model.predict_on_batch(x)
        )
        for i in range(spec["warmup"] + spec["steps"]):
            start = time.perf_counter()
            step()
            if i >= spec["warmup"]:
                steps.append(time.perf_counter() - start)
    summary = _summary(build_seconds, steps, spec["batch_size"], _accelerator_peak_mb() or _peak_rss_mb())
    summary["backend"] = keras.backend.backend()
    # What "auto" became (None in build mode, where nothing is compiled).
    summary["jit_compile"] = bool(model.jit_compile) if spec["mode"] != "build" else None
    return summary


def _accelerator_peak_mb():
    """The accelerator allocator's peak in MB on this worker's backend, or None on CPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    elif backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return (device.memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20 or None
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
    return None


def _timm_worker(spec):
    # timm imports torchvision, whose registrations fail beside the CPU build of torch.
    import types

    import numpy as np
    import torch

    for module in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(module, types.ModuleType(module))
    import timm

    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    model = timm.create_model(spec["reference"], pretrained=False).to(device)
    model = model.to(memory_format=torch.channels_last)
    build_seconds = time.perf_counter() - start
    steps = []
    if spec["mode"] != "build":
        rng = np.random.default_rng(0)
        batch, side = spec["batch_size"], spec["input_size"]
        x = torch.from_numpy(rng.uniform(0, 1, (batch, 3, side, side)).astype("float32")).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(rng.integers(0, 1000, (batch,))).to(device)
        amp = spec["mixed_precision"] and device == "cuda"
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def train():
            model.train()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device, enabled=amp):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

        def infer():
            model.eval()
            with torch.inference_mode(), torch.autocast(device, enabled=amp):
                model(x)

        step = train if spec["mode"] == "train" else infer
        for i in range(spec["warmup"] + spec["steps"]):
            start = time.perf_counter()
            step()
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= spec["warmup"]:
                steps.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _peak_rss_mb()
    )
    return _summary(build_seconds, steps, spec["batch_size"], peak)


def _run_worker(spec, side, backend="tensorflow"):
    command = [sys.executable, "-m", "keras_ultradeep.bench", "--worker", json.dumps({**spec, "side": side})]
    # The backend is fixed when Keras is imported: one process per backend.
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        where = f" on {backend}" if side == "ours" else ""
        raise RuntimeError(
            f"the {side} benchmark of {spec['model']}{where} failed (exit {result.returncode}):\n"
            f"{result.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


KEYS = ("images_per_sec", "peak_memory_mb", "build_seconds")


def _median(runs, key):
    values = [run[key] for run in runs if run[key] is not None]
    return statistics.median(values) if values else None


def benchmark(model_name, *, mode="train", batch_size=32, steps=10, warmup=2, input_size=None,
              jit_compile=None, mixed_precision=False, compare=None, model_kwargs=None, rounds=1,
              memory_efficient=False, backend="tensorflow"):
    """Measures ``model_name`` (and ``compare``'s reference) in worker processes.

    ``backend`` is a Keras backend or a list of them: ours runs once per
    backend and round, each in its own process, alternating with the
    reference (once per round), ``rounds`` times; every figure reported is
    the median over rounds. ``memory_efficient=True`` builds ours with
    ``memory_efficient=True`` (DenseNet's recomputed bottlenecks).
    ``jit_compile=None`` is each backend's default (see the module's doc).

    Returns:
        ``{"model", "mode", ..., "backend", "images_per_sec", "peak_memory_mb",
        "build_seconds", "compare": {... the reference's figures, "ratio"},
        "backends": {backend: {"images_per_sec", ..., "jit_compile", "ratio"}}}``;
        the top-level figures are the first backend's.
    """
    spec = _spec(
        model_name, mode=mode, batch_size=batch_size, steps=steps, warmup=warmup,
        input_size=input_size, jit_compile=jit_compile, mixed_precision=mixed_precision,
        compare=compare, model_kwargs=model_kwargs, memory_efficient=memory_efficient,
    )
    backends = _backends(backend)
    checks.positive_int(rounds, "rounds")
    ours = {name: [] for name in backends}
    theirs = []
    for _ in range(rounds):
        for name in backends:
            ours[name].append(_run_worker(spec, "ours", name))
        if spec["reference"] is not None:
            theirs.append(_run_worker(spec, "reference"))

    reference = None
    if theirs:
        reference = {"name": f"{compare}:{spec['reference']}", **{key: _median(theirs, key) for key in KEYS}}
    per_backend = {}
    for name, runs in ours.items():
        figures = {key: _median(runs, key) for key in KEYS}
        figures["jit_compile"] = runs[0]["jit_compile"]
        if reference is not None:
            figures["ratio"] = {
                key: (figures[key] / reference[key]) if figures[key] and reference[key] else None for key in KEYS
            }
        per_backend[name] = figures

    first = per_backend[backends[0]]
    result = {k: v for k, v in spec.items() if k not in ("reference", "compare")}
    result["backend"] = backends[0]
    result.update({key: first[key] for key in KEYS})
    if reference is not None:
        result["compare"] = {**reference, "ratio": first["ratio"]}
    result["backends"] = per_backend
    return result


def _worker_main(argv):
    spec = json.loads(argv[argv.index("--worker") + 1])
    worker = _timm_worker if spec["side"] == "reference" and spec["compare"] == "timm" else _keras_worker
    print(json.dumps(worker(spec)))


if __name__ == "__main__":
    _worker_main(sys.argv)
