"""Path lengths (Veit, Wilber, Belongie 2016, section 4.2).

Unrolled, n residual blocks are 2^n paths from input to output, C(n, k) of
them through exactly k residual branches (a binomial distribution around
n / 2). The gradient a path carries shrinks with its length, so the paths
that matter in training are far shorter than the typical one: in their
54-block ResNet, almost all the gradient came from paths 5 to 17 blocks long.

The measurement is theirs: one forward pass through the whole network, and a
backward pass that goes through the residual branch of k randomly chosen
blocks and through the shortcut of every other, so that only paths of length
k carry gradient to the input; the mean gradient norm at the input, times
the number of such paths, is the total gradient of paths of length k.
"""

from __future__ import annotations

import math

import numpy as np

from keras_ultradeep import checks
from keras_ultradeep.analysis import rewire
from keras_ultradeep.analysis.data import as_arrays, check_progress
from keras_ultradeep.analysis.structure import check_model

__all__ = ["path_length_distribution", "path_lengths", "EFFECTIVE_MASS"]

EFFECTIVE_MASS = 0.9  # the central share of the gradient the "effective" range holds


def path_length_distribution(num_blocks):
    """``{"lengths": [0..n], "counts": [C(n, k)], "fractions": [C(n, k) / 2^n]}``."""
    n = checks.integer(num_blocks, "num_blocks", minimum=0)
    counts = [math.comb(n, k) for k in range(n + 1)]
    return {"lengths": list(range(n + 1)), "counts": counts, "fractions": [c / 2**n for c in counts]}


def _central_range(fractions, mass):
    cumulative = np.cumsum(fractions)
    tail = (1 - mass) / 2
    low = int(np.searchsorted(cumulative, tail, side="right"))
    high = int(np.searchsorted(cumulative, 1 - tail - 1e-12, side="left"))
    return [low, min(high, len(fractions) - 1)]


def _softmax_output(model):
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def path_lengths(model, data, *, samples=8, batch_size=32, seed=0, max_examples=None, progress=None):
    """The gradient reaching the input along paths of each length, and the effective path length.

    Args:
        model: a functional Keras model with residual blocks.
        data: ``(images, labels)`` arrays, a ``tf.data.Dataset`` or an
            ``ImageDataset``, preprocessed as the model expects.
        samples: random block choices (each on its own random batch) per length.
        batch_size: examples per measurement.
        seed: the random draws' seed.
        progress: ``progress(done, total)``, called after each length.

    Returns:
        ``{"analysis": "paths", "model", "blocks": n, "lengths", "path_counts",
        "path_fractions", "gradient_magnitude": [mean input-gradient norm of a
        path of length k], "total_gradient": [C(n, k) * magnitude],
        "gradient_fractions", "effective_range": [low, high] (the central 90%
        of the gradient), "effective_length" (its mean length),
        "mean_path_length": n / 2, "path_range" (the central 90% of the paths)}``.
    """
    import tensorflow as tf

    check_model(model)
    samples = checks.positive_int(samples, "samples")
    batch_size = checks.positive_int(batch_size, "batch_size")
    seed = checks.integer(seed, "seed")
    report = check_progress(progress)
    images, labels = as_arrays(data, max_examples)

    gated, gates, blocks = rewire.gated_residual(model)
    n = len(blocks)
    from_logits = not _softmax_output(model)

    @tf.function(reduce_retracing=True)
    def input_gradient_norm(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = gated(x, training=False)
            loss = tf.reduce_sum(
                tf.keras.losses.sparse_categorical_crossentropy(y, outputs, from_logits=from_logits)
            )
        gradient = tape.gradient(loss, x)
        per_example = tf.sqrt(tf.reduce_sum(tf.reshape(gradient, (tf.shape(x)[0], -1)) ** 2, axis=-1))
        return tf.reduce_mean(per_example)

    rng = np.random.default_rng(seed)
    magnitudes = []
    try:
        for k in range(n + 1):
            values = []
            for _ in range(samples):
                through = set(rng.choice(n, size=k, replace=False).tolist())
                for index, gate in enumerate(gates):
                    gate.route.assign(1.0 if index in through else 0.0)
                batch = rng.choice(len(images), size=min(batch_size, len(images)), replace=False)
                values.append(float(input_gradient_norm(tf.constant(images[batch]), tf.constant(labels[batch]))))
            magnitudes.append(float(np.mean(values)))
            report(k + 1, n + 1)
    finally:
        for gate in gates:
            gate.route.assign(-1.0)

    paths = path_length_distribution(n)
    total = [count * magnitude for count, magnitude in zip(paths["counts"], magnitudes)]
    mass = sum(total)
    fractions = [t / mass for t in total] if mass > 0 else [0.0] * (n + 1)
    return {
        "analysis": "paths",
        "model": model.name,
        "blocks": n,
        "examples": int(len(labels)),
        "samples": samples,
        "lengths": paths["lengths"],
        "path_counts": paths["counts"],
        "path_fractions": paths["fractions"],
        "gradient_magnitude": magnitudes,
        "total_gradient": total,
        "gradient_fractions": fractions,
        "effective_range": _central_range(fractions, EFFECTIVE_MASS) if mass > 0 else [0, 0],
        "effective_length": float(np.dot(paths["lengths"], fractions)),
        "mean_path_length": n / 2,
        "path_range": _central_range(paths["fractions"], EFFECTIVE_MASS),
    }
