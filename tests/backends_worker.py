"""The cross-backend checks, run in a process of their own per backend.

The backend is fixed when Keras is imported, so tests/test_backends.py runs
``KERAS_BACKEND=<backend> python tests/backends_worker.py PART FOLDER`` once
on TensorFlow (``reference``: builds every case with seeded weights, saves its
weights and ``.keras`` file and its outputs into FOLDER) and once per other
backend (``check``: loads what TensorFlow saved, runs the same inputs, trains
a step, and writes its own outputs beside). The test compares the numbers.

PART is ``layers`` (every custom layer), ``families`` (a small model of each
family, tests/families.py), ``registered`` (registered models as ``create_model``
gives them, ``BACKENDS_MODELS`` names them), ``weights`` (a keras.applications-layout ``.h5``
and a converted timm checkpoint, both written on TensorFlow) or ``features``
(export formats and ``train --distribute`` strategies: they work or name the
backend).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import conftest  # noqa: E402,F401  (the torchvision and triton stubs that importing timm needs)
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers as kl  # noqa: E402

from keras_ultradeep import layers as ul  # noqa: E402

BACKEND = keras.backend.backend()


# ---------------------------------------------------------------------- layers


def _wrap(layer, *shapes):
    """A functional model around ``layer`` (so that weights files and training work alike)."""
    inputs = [keras.Input(shape) for shape in shapes]
    outputs = layer(inputs if len(inputs) > 1 else inputs[0])
    return keras.Model(inputs, outputs)


def _bottleneck(recompute):
    inputs = [keras.Input((5, 5, 6)), keras.Input((5, 5, 2))]
    # A layer before and after, so that the recomputed gradient reaches weights on both sides.
    x = ul.DenseBottleneck(8, input_channels=[4, 2], recompute=recompute)([kl.Conv2D(4, 1)(inputs[0]), inputs[1]])
    return keras.Model(inputs, kl.Conv2D(4, 3)(x))


def _layer_cases():
    """name -> (a model around one layer; random: whether its training form is random).

    Every case of tests/layer_cases.py (the shared harness's table: each exported
    layer), and variants whose code paths differ by backend. Random training
    forms are compared in inference, and checked by :func:`_random_forms`.
    """
    from layer_cases import CASES

    cases = {case.layer: (case.model, case.random_in_training) for case in CASES}
    cases.update({
        "GroupedConv2D-valid-bias": (lambda: _wrap(ul.GroupedConv2D(6, 3, groups=2, use_bias=True), (7, 7, 4)), False),
        "GroupedConv2D-dilated": (
            lambda: _wrap(ul.GroupedConv2D(4, 3, groups=2, dilation_rate=2, padding="same"), (7, 7, 4)), False),
        "DenseBottleneck-remat-between-layers": (lambda: _bottleneck(True), False),
        "DenseBottleneck-plain-between-layers": (lambda: _bottleneck(False), False),
        "StochasticDepth-inverted": (
            lambda: _wrap(ul.StochasticDepth(0.8, scale="training"), (4, 4, 3), (4, 4, 3)), True),
    })
    return cases


def _inputs(model, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(2, *tensor.shape[1:])).astype("float32") for tensor in model.inputs]


def _outputs(model, inputs, training=False):
    outputs = model(inputs if len(inputs) > 1 else inputs[0], training=training)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [keras.ops.convert_to_numpy(o).astype("float32") for o in outputs]


def _randomize(model, seed=1):
    """Weights away from their initial values (unit BatchNorm statistics would hide mistakes)."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [(np.abs if "variance" in w.path else (lambda a: a))(rng.normal(0.3, 0.5, w.shape)).astype(w.dtype)
         for w in model.weights]
    )


def _perturb_normalization(model, seed=1):
    """BatchNorm statistics and affine weights off their initial values (a model's
    random weights are its initializers'; all-random weights would saturate its outputs)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        name = w.path.rsplit("/", 1)[-1]
        if name in ("moving_variance", "gamma"):
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
        elif name in ("moving_mean", "beta"):
            w.assign(rng.normal(0.0, 0.1, w.shape).astype(w.dtype))


def _train_step(model, inputs):
    """One SGD step on a fixed target; returns the updated weights (the gradients, compared)."""
    target = [np.full(o.shape, 0.5, "float32") for o in _outputs(model, inputs)]
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.train_on_batch(inputs if len(inputs) > 1 else inputs[0], target if len(target) > 1 else target[0])
    return [keras.ops.convert_to_numpy(w).astype("float32") for w in model.weights]


def layers_part(folder, mode):
    results = {}
    for name, (build, random) in _layer_cases().items():
        keras.utils.set_random_seed(0)
        model = build()
        path = folder / f"layer_{name}.keras"
        if mode == "reference":
            _randomize(model)
            model.save(path)
        else:
            model = keras.models.load_model(path, safe_mode=True)
        inputs = _inputs(model)
        arrays = {f"infer{i}": a for i, a in enumerate(_outputs(model, inputs))}
        if not random:
            arrays.update({f"train{i}": a for i, a in enumerate(_outputs(model, inputs, training=True))})
            if model.trainable_weights:
                arrays.update({f"stepped{i}": w for i, w in enumerate(_train_step(model, inputs))})
        np.savez(folder / f"layer_{name}.{BACKEND}.npz", **arrays)
        results[name] = sorted(arrays)
    results["random_forms"] = _random_forms()
    return results


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _random_forms():
    """The stochastic layers' training forms, which no two backends draw alike:
    each draw is one the paper allows, and both outcomes occur."""
    rng = np.random.default_rng(0)
    shortcut, residual = (rng.normal(size=(256, 2, 2, 3)).astype("float32") for _ in range(2))
    checks = {}
    for scale, factor in (("inference", 1.0), ("training", 2.0)):
        out = _numpy(ul.StochasticDepth(0.5, scale=scale, seed=1)([shortcut, residual], training=True))
        kept = np.isclose(out, shortcut + factor * residual, atol=1e-5).all(axis=(1, 2, 3))
        dropped = np.isclose(out, shortcut, atol=1e-5).all(axis=(1, 2, 3))
        checks[f"stochastic_depth_{scale}"] = bool((kept | dropped).all() and 0.3 < kept.mean() < 0.7)
    sampler = ul.DropPathSampler(3, global_drop_path=0.5, seed=1)
    draws = np.stack([_numpy(sampler(shortcut, training=True)) for _ in range(60)])
    one_hot = (draws.sum(axis=1) == 1) & (draws.max(axis=1) == 1)
    checks["drop_path_sampler"] = bool(((draws.sum(axis=1) == 0) | one_hot).all() and 0.2 < one_hot.mean() < 0.8)
    join = ul.FractalJoin(local_drop_path=0.5, seed=1)
    inputs = [np.full((1, 2, 2, 1), value, "float32") for value in (1.0, 2.0, 4.0)]
    means = {round(float(_numpy(join(inputs, training=True)).mean()), 4) for _ in range(60)}
    allowed = {1.0, 2.0, 4.0, 1.5, 2.5, 3.0, round(7 / 3, 4)}
    checks["fractal_join_local"] = bool(means <= allowed and len(means) >= 3)
    return checks


# -------------------------------------------------------------------- families


def families_part(folder, mode):
    from families import SMALL

    names = os.environ.get("BACKENDS_FAMILIES")
    names = names.split(",") if names else sorted(SMALL)
    results = {}
    for family in names:
        build, side = SMALL[family]
        keras.utils.set_random_seed(0)
        # Logits, not probabilities: a saturated softmax would hide differences.
        model = build(weights=None, input_shape=(side, side, 3), classes=3, classifier_activation=None)
        x = np.random.default_rng(0).uniform(0, 1, (4, side, side, 3)).astype("float32")
        weights_file = folder / f"family_{family}.weights.h5"
        if mode == "reference":
            _perturb_normalization(model)
            model.save_weights(weights_file)
            model.save(folder / f"family_{family}.keras")
            arrays = {"predicted": model.predict_on_batch(x)}
        else:
            model.load_weights(weights_file)
            loaded = keras.models.load_model(folder / f"family_{family}.keras", safe_mode=True)
            # predict_on_batch: compiled as users run it (XLA on JAX); the other
            # two calls run eagerly, which on JAX skips a compilation each.
            arrays = {"predicted": model.predict_on_batch(x), "loaded": _numpy(loaded(x, training=False))}
            # Saved on this backend and loaded back.
            model.save(folder / f"family_{family}.{BACKEND}.keras")
            again = keras.models.load_model(folder / f"family_{family}.{BACKEND}.keras", safe_mode=True)
            arrays["round_trip"] = _numpy(again(x, training=False))
            arrays.update(_training_steps(build, side, x))
        np.savez(folder / f"family_{family}.{BACKEND}.npz", **arrays)
        results[family] = sorted(arrays)
    return results


def _training_steps(build, side, x):
    """A step in float32 and one under mixed_float16: finite losses, every weight finite, the head learns."""
    arrays = {}
    y = np.arange(len(x)) % 3
    for policy in ("float32", "mixed_float16"):
        keras.utils.set_random_seed(0)
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = build(weights=None, input_shape=(side, side, 3), classes=3)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        optimizer = keras.optimizers.SGD(0.01)
        if policy == "mixed_float16":
            # A unit loss scale: the default 2**15 may overflow on the first step, which is then skipped.
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=1.0)
        # The float32 step compiled as users run it; the mixed one eagerly (on
        # JAX, a second compilation of the same graph would double the cost).
        model.compile(optimizer, "sparse_categorical_crossentropy",
                      jit_compile="auto" if policy == "float32" else False)
        head = keras.ops.convert_to_numpy(model.trainable_weights[-1]).copy()
        loss = model.train_on_batch(x, y)
        loss = loss[0] if isinstance(loss, (list, tuple)) else loss
        arrays[f"{policy}_loss"] = np.float32(loss)
        arrays[f"{policy}_finite"] = np.array(
            all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)
        )
        arrays[f"{policy}_head_moved"] = np.array(
            not np.array_equal(head, keras.ops.convert_to_numpy(model.trainable_weights[-1]))
        )
        arrays[f"{policy}_compute_dtypes"] = np.array(
            sorted({layer.compute_dtype for layer in model.layers if layer.weights})
        )
    return arrays


# --------------------------------------------------------------------- weights


def weights_part(folder, mode):
    """Files written on TensorFlow: keras.applications' legacy ``.h5`` and a converted timm checkpoint."""
    from keras_ultradeep import registry
    from keras_ultradeep import weights as weights_lib

    side = 32
    x = np.random.default_rng(0).uniform(0, 255, (2, side, side, 3)).astype("float32")
    applications_file = folder / "resnet50_keras_applications.h5"
    converted_file = folder / "resnet18_converted.weights.h5"
    arrays = {}
    if mode == "reference":
        keras.utils.set_random_seed(0)
        reference = keras.applications.ResNet50(weights=None, input_shape=(side, side, 3),
                                                classifier_activation=None)
        _perturb_normalization(reference)
        reference.save(applications_file)  # the legacy whole-model .h5 that keras.applications publishes
        arrays["applications"] = reference.predict_on_batch(x)

        import torch
        import timm

        from keras_ultradeep import convert

        torch.manual_seed(0)
        timm_model = timm.create_model("resnet18", pretrained=False).eval()
        ours = registry.create_model("resnet18", weights=None, input_shape=(side, side, 3),
                                     classifier_activation=None)
        convert.convert_into(ours, timm_model.state_dict(), registry.model_entry("resnet18").family)
        ours.save_weights(converted_file)
        arrays["converted"] = ours.predict_on_batch(x)
        with torch.no_grad():
            arrays["timm"] = timm_model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    else:
        ours = registry.create_model("resnet50_keras", weights=None, input_shape=(side, side, 3),
                                     classifier_activation=None)
        weights_lib.load_weights_file(ours, applications_file)
        arrays["applications"] = ours.predict_on_batch(x)
        ours = registry.create_model("resnet18", weights=None, input_shape=(side, side, 3),
                                     classifier_activation=None)
        weights_lib.load_weights_file(ours, converted_file)
        arrays["converted"] = ours.predict_on_batch(x)
    np.savez(folder / f"weights.{BACKEND}.npz", **arrays)
    return sorted(arrays)


# ------------------------------------------------------------------ registered


def registered_part(folder, mode):
    """Every registered model, as ``create_model`` gives it at its default input on
    this backend: its parameter counts are its row of the shipped zoo table (measured
    on TensorFlow), and it predicts a softmax over its classes. With the batch's
    own statistics, as at a first training step: untrained and in inference mode,
    ResNet-1202's activations may overflow float32 (see test_contract)."""
    import time

    from keras_ultradeep import registry, zoo

    names = os.environ.get("BACKENDS_MODELS")
    names = names.split(",") if names else registry.list_models()
    results = {}
    for name in names:
        start = time.perf_counter()
        keras.utils.set_random_seed(0)
        model = zoo.build_at_default(name)
        x = np.random.default_rng(0).uniform(0, 1, (1, *model.input_shape[1:])).astype("float32")
        y = _numpy(model(x, training=True))
        results[name] = {
            "row": zoo.row(name, model), "expected": zoo.table()[name],
            "classes": int(model.output_shape[-1]), "output_shape": list(y.shape), "finite": bool(np.isfinite(y).all()),
            "sum": float(y.sum()), "seconds": time.perf_counter() - start,
        }
        del model
        keras.backend.clear_session()
    return results


# ----------------------------------------------------- TensorFlow-only features


def features_part(folder, mode):
    """export's formats and train --distribute's strategies on this backend: each
    works, or raises the ValueError that names the backend, before writing anything."""
    from keras_ultradeep import export
    from keras_ultradeep.training import distribute

    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, kl.GlobalAveragePooling2D()(ul.GroupedConv2D(4, 3, groups=2)(inputs)))
    model.save(folder / f"features.{BACKEND}.keras")
    results = {}
    for format, name in (("saved_model", "saved"), ("tflite", "m.tflite"), ("onnx", "m.onnx")):
        output = folder / f"{BACKEND}_{name}"
        try:
            results[f"export_{format}"] = {"difference": export.export_model(
                folder / f"features.{BACKEND}.keras", output, format=format)}
        except ValueError as error:
            results[f"export_{format}"] = {"error": str(error), "written": output.exists()}
    for strategy in distribute.STRATEGIES:
        try:
            made = distribute.make_strategy(strategy)
            results[f"distribute_{strategy}"] = {
                "replicas": made.num_replicas_in_sync,
                "distribution": type(keras.distribution.distribution()).__name__
                if BACKEND == "jax" else None,
            }
        except ValueError as error:
            results[f"distribute_{strategy}"] = {"error": str(error)}
    return results


PARTS = {"features": features_part, "layers": layers_part, "families": families_part, "weights": weights_part,
         "registered": registered_part}


def main(argv):
    part, folder, mode = argv[1], Path(argv[2]), argv[3]
    results = PARTS[part](folder, mode)
    (folder / f"{part}.{BACKEND}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv)
