"""The shared layer harness: the same checks over every custom layer (layer_cases.CASES).

Config round trip, `.keras` save and `safe_mode=True` load with the same
outputs, XLA-compiled equal to eager, mixed_float16 close to float32 with the
same weights, and a finite training step. What is particular to a layer (its
formula, its reference implementation, its errors) stays in its own test file.
"""

import keras
import numpy as np
import pytest

from keras_ultradeep import layers as ku_layers

from layer_cases import CASES, to_numpy

IDS = [case.layer for case in CASES]


def _ours(model):
    return [layer for layer in model.layers if type(layer).__module__.startswith("keras_ultradeep.")]


def _close(got, expected, rtol):
    got, expected = np.concatenate([g.ravel() for g in got]), np.concatenate([e.ravel() for e in expected])
    return float(np.abs(got - expected).max()) <= rtol * max(1.0, float(np.abs(expected).max()))


def _outputs(model, inputs, training=False):
    out = model(inputs, training=training) if isinstance(model, keras.Model) else model(inputs)
    return [np.asarray(o, dtype="float32") for o in (to_numpy(out) if isinstance(out, (list, tuple)) else [to_numpy(out)])]


def test_every_layer_has_a_case():
    exported = {
        name for name in ku_layers.__all__
        if isinstance(getattr(ku_layers, name), type)
        and issubclass(getattr(ku_layers, name), keras.layers.Layer)
        and keras.saving.get_registered_object(f"keras_ultradeep>{name}") is not None
    }
    assert exported == set(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_round_trip_and_registration(case):
    model = case.model()
    layers = _ours(model)
    assert case.layer in {type(layer).__name__ for layer in layers}
    for layer in layers:
        assert keras.saving.get_registered_name(type(layer)) == f"keras_ultradeep>{type(layer).__name__}"
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_save_and_safe_mode_load_give_the_same_outputs(case, rng, tmp_path):
    model = case.model()
    inputs = case.inputs(rng)
    path = tmp_path / "layer.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert [type(layer).__name__ for layer in _ours(reloaded)] == [type(layer).__name__ for layer in _ours(model)]
    for got, expected in zip(_outputs(reloaded, inputs), _outputs(model, inputs)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_xla_equals_eager(case, rng):
    if keras.backend.backend() != "tensorflow":
        pytest.fail("the harness's XLA check is written for the TensorFlow backend")
    import tensorflow as tf

    model = case.model()
    inputs = case.inputs(rng)
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
    assert _close(_outputs(compiled, inputs), _outputs(model, inputs), 1e-5)
    # Training mode compiles too (random layers draw inside the compiled graph).
    trained = tf.function(lambda x: model(x, training=True), jit_compile=True)
    assert all(np.isfinite(o).all() for o in _outputs(trained, inputs))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_mixed_float16_is_close_to_float32(case, rng):
    reference = case.model()
    inputs = case.inputs(rng)
    expected = _outputs(reference, inputs)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = case.model()
        mixed.set_weights(reference.get_weights())
        got = _outputs(mixed, inputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(g).all() for g in got)
    assert _close(got, expected, 2e-2)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_training_step_is_finite(case, rng):
    model = case.model()
    inputs = case.inputs(rng)
    targets = [np.zeros_like(o) for o in _outputs(model, inputs)]
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(inputs, targets[0] if len(targets) == 1 else targets)
    assert np.isfinite(loss)
    if before:
        assert any(not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights))
