"""A model of every registered family trains a step under ``mixed_float16``
without XLA (custom layers included): the TensorFlow CPU kernels are the ones
that lack float16 paths (GroupedConv2D's filter gradient did), and XLA hides
them, so this is the demanding case. ``families.SMALL`` holds the models;
test_export_families checks that every registered family has one.
"""

import keras
import numpy as np
import pytest
from families import SMALL


@pytest.mark.parametrize("family", sorted(SMALL))
@pytest.mark.slow
def test_family_trains_under_mixed_float16(family):
    keras.utils.set_random_seed(0)
    build, side = SMALL[family]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build(weights=None, input_shape=(side, side, 3), classes=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    computing = {layer.compute_dtype for layer in model.layers if layer.weights}
    assert "float16" in computing
    # A unit loss scale: the default 2**15 may overflow on the first step, which is then skipped.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01), initial_scale=1.0)
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=False)
    before = [w.numpy().copy() for w in model.trainable_weights]
    # Batch 8: with 2 images, BatchNorm over the 1x1 maps of the last stages has
    # near-zero variance and the float16 gradients overflow (a float16 fact, not ours).
    x = np.random.default_rng(0).uniform(0, 1, (8, side, side, 3)).astype("float32")
    logs = model.train_on_batch(x, np.arange(8) % 3, return_dict=True)
    assert np.isfinite(logs["loss"]), family
    after = [w.numpy() for w in model.trainable_weights]
    assert all(np.isfinite(w).all() for w in after), family
    changed = [not np.array_equal(a, b) for a, b in zip(before, after)]
    # The classifier and the body learn (FractalNet's drop-path may leave whole columns out of a step).
    assert changed[-1] and sum(changed[:-2]) >= 1, (family, sum(changed), len(changed))
    if family != "fractalnet":
        assert sum(changed) >= len(changed) // 2, (family, sum(changed), len(changed))
