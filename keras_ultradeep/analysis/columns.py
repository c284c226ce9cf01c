"""FractalNet's columns, and stochastic depth's test-time rule.

Larsson, Maire, Shakhnarovich 2017, Table 3: a FractalNet trained with
drop-path holds plain networks (its columns) that work on their own: the
20-layer net's deepest column alone errs about as little as the whole network
(CIFAR-10: 7.27% against 7.33%; CIFAR-100: 29.05% against 28.20%, no data
augmentation).

Huang, Sun, Liu, Sedra, Weinberger 2016, section 3: a stochastic-depth
network scales each residual branch by its survival probability p_l at test
time (the expected contribution during training); leaving the branches
unscaled gives a network that never occurred in training.
"""

from __future__ import annotations

from keras_ultradeep import checks
from keras_ultradeep.analysis import rewire
from keras_ultradeep.analysis.data import Accuracy, accuracy, as_arrays, check_progress
from keras_ultradeep.analysis.lesion import lesion_study
from keras_ultradeep.analysis.structure import check_model
from keras_ultradeep.layers import StochasticDepth

__all__ = ["fractal_columns", "stochastic_depth"]


def fractal_columns(model, data, *, batch_size=256, max_examples=None, progress=None):
    """The accuracy of every column of a FractalNet alone, and of the whole network.

    Returns ``{"analysis": "columns", "model", "examples", "whole",
    "columns": [{"column", "convolutions", "accuracy"}]}`` (column 0 the
    shallowest; ``convolutions`` the column's conv layers).
    """
    from keras_ultradeep.models.fractalnet import fractal_column

    check_model(model)
    batch_size = checks.positive_int(batch_size, "batch_size")
    report = check_progress(progress)
    images, labels = as_arrays(data, max_examples)
    # Raises for a model that is not a FractalNet; named {model.name}_column{C - 1}.
    count = 1 + int(fractal_column(model, -1).name.rsplit("_column", 1)[1])
    whole = accuracy(model, images, labels, batch_size)
    report(1, count + 1)
    results = []
    for column in range(count):
        network = fractal_column(model, column)
        convolutions = sum(1 for layer in network.layers if layer.__class__.__name__ == "Conv2D")
        results.append(
            {"column": column, "convolutions": convolutions, "accuracy": accuracy(network, images, labels, batch_size)}
        )
        report(column + 2, count + 1)
    return {"analysis": "columns", "model": model.name, "examples": int(len(labels)), "whole": whole, "columns": results}


def stochastic_depth(model, data, *, lesion=True, batch_size=256, max_examples=None, progress=None, **lesion_options):
    """A stochastic-depth network's accuracy with its test-time scaling and without.

    ``scaled``: every residual branch times its survival probability p_l (the
    paper's rule); ``unscaled``: every branch added whole. Which of the two the
    model computes itself depends on each merge's ``scale`` option. With
    ``lesion``, also the lesion study of the model as it is
    (:func:`lesion_study`, taking ``lesion_options``).

    Returns ``{"analysis": "stochastic_depth", "model", "examples",
    "survival_probs", "scaled", "unscaled", "lesion"}``.
    """
    check_model(model)
    checks.boolean(lesion, "lesion")
    batch_size = checks.positive_int(batch_size, "batch_size")
    images, labels = as_arrays(data, max_examples)
    gated, gates, blocks = rewire.gated_residual(model)
    merges = [gated.get_layer(block.merge) for block in blocks]
    depth = [(gate, merge) for gate, merge in zip(gates, merges) if isinstance(merge, StochasticDepth)]
    if not depth:
        raise ValueError(f"model: {model.name!r} has no stochastic-depth merges (StochasticDepth layers)")
    figures = {}
    measure = Accuracy(gated, images, labels, batch_size)
    for rule in ("scaled", "unscaled"):
        for gate, merge in depth:
            p = merge.survival_prob
            scales_itself = merge.scale == "inference"
            # keep * residual goes into the merge, which multiplies by p itself when scales_itself.
            keep = (1.0 if scales_itself else p) if rule == "scaled" else (1.0 / p if scales_itself else 1.0)
            gate.keep.assign(keep)
        figures[rule] = measure()
    for gate, _ in depth:
        gate.keep.assign(1.0)
    result = {
        "analysis": "stochastic_depth",
        "model": model.name,
        "examples": int(len(labels)),
        "survival_probs": [merge.survival_prob for _, merge in depth],
        **figures,
        "lesion": None,
    }
    if lesion:
        result["lesion"] = lesion_study(
            model, (images, labels), batch_size=batch_size, progress=progress, **lesion_options
        )
    return result
