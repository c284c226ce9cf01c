"""Lesion studies (Veit, Wilber, Belongie 2016, sections 4.1-4.2).

Deleting one block of a trained residual network barely changes its
accuracy, since each block only adds to the ensemble of paths through the
network; deleting one layer of a plain network (their VGG comparison) breaks
its single path and drops it to chance. Removing k random blocks degrades a
residual network smoothly with k.
"""

from __future__ import annotations

import numpy as np

from keras_ultradeep import checks
from keras_ultradeep.analysis import rewire
from keras_ultradeep.analysis.data import Accuracy, as_arrays, check_progress
from keras_ultradeep.analysis.structure import check_model

__all__ = ["lesion_study", "KINDS"]

KINDS = ("residual", "plain")


def _gated(model, kind):
    if kind == "residual":
        gated, gates, blocks = rewire.gated_residual(model)
        return gated, gates, [block.merge for block in blocks]
    gated, gates, units = rewire.gated_chain(model)
    return gated, gates, [unit.first for unit in units]


def lesion_study(
    model, data, *, kind="residual", draws=5, max_removed=None, seed=0, batch_size=256,
    max_examples=None, progress=None,
):
    """The accuracy of ``model`` with each block removed, then with k random ones.

    A removed residual block outputs its shortcut (see
    :func:`~keras_ultradeep.analysis.lesion`); with ``kind="plain"`` the units
    are a plain network's removable layers (each convolution with what follows
    it up to the next one, where it keeps the shape), and a removed unit passes
    its input on. The networks are evaluated through one gated copy of the
    model (no retracing between lesions); a gate set to 0 computes exactly what
    the rebuilt lesioned model computes.

    Args:
        model: a functional Keras model, built or loaded.
        data: ``(images, labels)`` arrays, a ``tf.data.Dataset`` of batches or
            an ``ImageDataset`` (its validation split), preprocessed as the
            model expects.
        kind: ``"residual"`` or ``"plain"``.
        draws: random sets of blocks evaluated for each k.
        max_removed: the largest k (default: every block).
        seed: the random draws' seed.
        progress: ``progress(done, total)``, called after each evaluation.

    Returns:
        ``{"analysis": "lesion", "kind", "model", "examples", "classes",
        "baseline", "blocks": [names], "single": [{"index", "block",
        "accuracy"}], "random": [{"removed": k, "accuracies": [...],
        "mean", "std"}]}``.
    """
    check_model(model)
    checks.one_of(kind, "kind", KINDS)
    draws = checks.positive_int(draws, "draws")
    max_removed = checks.optional_positive_int(max_removed, "max_removed")
    seed = checks.integer(seed, "seed")
    batch_size = checks.positive_int(batch_size, "batch_size")
    report = check_progress(progress)
    images, labels = as_arrays(data, max_examples)

    gated, gates, names = _gated(model, kind)
    n = len(names)
    ks = list(range(1, min(max_removed or n, n) + 1))
    total = 1 + n + sum(1 if k == n else draws for k in ks)
    done = 0
    measure = Accuracy(gated, images, labels, batch_size)

    def evaluate(removed):
        nonlocal done
        for index, gate in enumerate(gates):
            gate.keep.assign(0.0 if index in removed else 1.0)
        result = measure()
        done += 1
        report(done, total)
        return result

    baseline = evaluate(set())
    single = [{"index": i, "block": name, "accuracy": evaluate({i})} for i, name in enumerate(names)]
    rng = np.random.default_rng(seed)
    random = []
    for k in ks:
        runs = [evaluate(set(rng.choice(n, size=k, replace=False).tolist())) for _ in range(1 if k == n else draws)]
        random.append({"removed": k, "accuracies": runs, "mean": float(np.mean(runs)), "std": float(np.std(runs))})
    for gate in gates:
        gate.keep.assign(1.0)
    return {
        "analysis": "lesion",
        "kind": kind,
        "model": model.name,
        "examples": int(len(labels)),
        "classes": int(gated.output_shape[-1]),
        "baseline": baseline,
        "blocks": names,
        "single": single,
        "random": random,
    }
