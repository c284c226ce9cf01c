"""FractalJoin and DropPathSampler: the mean of the active inputs, local and
global drop-path, inference, gradients, XLA, mixed precision, saving, export."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ultradeep.layers import DropPathSampler, FractalJoin

VALUES = (1.0, 10.0, 100.0)  # every non-empty subset of these has its own mean
SUBSETS = {
    subset: np.mean([VALUES[i] for i in subset])
    for k in range(1, len(VALUES) + 1)
    for subset in itertools.combinations(range(len(VALUES)), k)
}


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def branches(batch=4, shape=(2, 2, 3)):
    """Input i is VALUES[i] times (sample index + 1): a join's output tells which inputs it kept."""
    scale = np.arange(1, batch + 1, dtype="float32").reshape(batch, 1, 1, 1)
    return [np.broadcast_to(v * scale, (batch, *shape)).astype("float32") for v in VALUES]


def kept_inputs(out, batch=4):
    """The subset of inputs a join's output averages; the same for the whole batch."""
    scale = np.arange(1, batch + 1, dtype="float32").reshape(batch, 1, 1, 1)
    per_sample = out / scale
    assert np.allclose(per_sample, per_sample[0, 0, 0, 0], rtol=1e-5), "one mask for the whole batch"
    value = per_sample[0, 0, 0, 0]
    matches = [s for s, mean in SUBSETS.items() if np.isclose(value, mean, rtol=1e-5)]
    assert len(matches) == 1, f"{value} is not the mean of a non-empty subset of {VALUES}"
    return matches[0]


# ------------------------------------------------------------------ inference


def test_inference_is_the_deterministic_mean_of_all_inputs():
    xs = branches()
    join = FractalJoin(0.5, columns=[0, 1, 2], seed=1)
    expected = np.mean(xs, axis=0)
    global_selection = np.array([0.0, 1.0, 0.0], "float32")
    for _ in range(3):
        np.testing.assert_allclose(to_numpy(join(xs, training=False)), expected, rtol=1e-6)
        np.testing.assert_allclose(to_numpy(join(xs)), expected, rtol=1e-6)  # no flag: inference
        np.testing.assert_allclose(
            to_numpy(join(xs, selection=global_selection, training=False)), expected, rtol=1e-6
        )


def test_a_single_input_passes_unchanged():
    x = branches()[1]
    for training in (True, False):
        np.testing.assert_array_equal(to_numpy(FractalJoin(0.9)([x], training=training)), x)


# ---------------------------------------------------------------------- local


@pytest.mark.parametrize("p", [0.3, 0.9])
@pytest.mark.slow
def test_local_drop_path_keeps_at_least_one_input_and_averages_the_kept(p):
    xs = branches()
    join = FractalJoin(p, seed=7)
    kept = [kept_inputs(to_numpy(join(xs, training=True))) for _ in range(300)]
    assert all(kept), "at least one input is always kept"
    # Each input survives with 1 - p, plus its share of the rescue when all are dropped.
    expected = (1 - p) + p ** len(VALUES) / len(VALUES)
    rates = [np.mean([i in subset for subset in kept]) for i in range(len(VALUES))]
    assert np.allclose(rates, expected, atol=0.08), rates
    assert len(set(kept)) > 3, "training draws a new mask each call"


def test_local_drop_path_zero_is_the_plain_mean_in_training():
    xs = branches()
    np.testing.assert_allclose(
        to_numpy(FractalJoin(0.0)(xs, training=True)), np.mean(xs, axis=0), rtol=1e-6
    )


def test_gradients_flow_only_to_kept_inputs_scaled_by_one_over_their_number():
    xs = [tf.constant(x) for x in branches()]
    join = FractalJoin(0.5, seed=11)
    seen = set()
    for _ in range(20):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            out = join(xs, training=True)
        grads = tape.gradient(out, xs)
        kept = kept_inputs(out.numpy())
        seen.add(kept)
        for i, grad in enumerate(grads):
            want = 1.0 / len(kept) if i in kept else 0.0
            np.testing.assert_allclose(grad.numpy(), want, rtol=1e-6)
    assert len(seen) > 1


# --------------------------------------------------------------------- global


def test_global_selection_keeps_only_the_chosen_column():
    xs = branches()
    join = FractalJoin(0.5, columns=[0, 1, 2], seed=2)
    for column in range(3):
        selection = np.eye(3, dtype="float32")[column]
        for _ in range(5):  # local masks are still drawn, but ignored
            np.testing.assert_array_equal(to_numpy(join(xs, selection=selection, training=True)), xs[column])


def test_a_join_the_chosen_column_bypasses_returns_the_mean_of_all():
    # A join of columns 1 and 2 while column 0 is the global choice: its output
    # reaches nothing; the mean keeps the BatchNorm statistics behind it sane.
    xs = branches()[1:]
    join = FractalJoin(0.5, columns=[1, 2], seed=3)
    selection = np.array([1.0, 0.0, 0.0], "float32")
    np.testing.assert_allclose(
        to_numpy(join(xs, selection=selection, training=True)), np.mean(xs, axis=0), rtol=1e-6
    )


def test_an_all_zero_selection_is_a_local_batch():
    xs = branches()
    join = FractalJoin(0.6, columns=[0, 1, 2], seed=5)
    local = np.zeros(3, "float32")
    kept = {kept_inputs(to_numpy(join(xs, selection=local, training=True))) for _ in range(40)}
    assert len(kept) > 2


def test_sampler_mixes_global_and_local_batches():
    sampler = DropPathSampler(3, 0.5, seed=4)
    x = np.zeros((2, 4, 4, 3), "float32")
    draws = np.array([to_numpy(sampler(x, training=True)) for _ in range(300)])
    is_global = draws.sum(axis=1) == 1
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert np.all(draws.sum(axis=1) <= 1)
    assert abs(is_global.mean() - 0.5) < 0.1
    columns = draws[is_global].argmax(axis=1)
    assert np.allclose(np.bincount(columns, minlength=3) / len(columns), 1 / 3, atol=0.1)

    np.testing.assert_array_equal(to_numpy(sampler(x, training=False)), np.zeros(3))
    always = DropPathSampler(3, 1.0, seed=4)
    assert all(to_numpy(always(x, training=True)).sum() == 1 for _ in range(20))
    never = DropPathSampler(3, 0.0)
    np.testing.assert_array_equal(to_numpy(never(x, training=True)), np.zeros(3))


# ---------------------------------------------------- a small joined network

def tiny_model(seed=9):
    """Two columns reaching a 3-way join through an inner join, driven by one sampler."""
    inputs = keras.Input((6, 6, 3))
    selection = DropPathSampler(3, 0.5, seed=seed, name="drop_path")(inputs)
    deep = keras.layers.Conv2D(4, 3, padding="same", name="deep1")(inputs)
    mid = keras.layers.Conv2D(4, 3, padding="same", name="mid1")(inputs)
    joined = FractalJoin(0.15, columns=[1, 2], seed=seed + 1, name="join1")([mid, deep], selection=selection)
    deep = keras.layers.Conv2D(4, 3, padding="same", name="deep2")(joined)
    mid = keras.layers.Conv2D(4, 3, padding="same", name="mid2")(joined)
    shallow = keras.layers.Conv2D(4, 3, padding="same", name="shallow")(inputs)
    out = FractalJoin(0.15, columns=[0, 1, 2], seed=seed + 2, name="join2")(
        [shallow, mid, deep], selection=selection
    )
    return keras.Model(inputs, out)


@pytest.mark.slow
def test_xla_compiled_training_and_inference(rng):
    xs = branches()
    join = FractalJoin(0.5, seed=13)
    compiled = tf.function(lambda v: join(v, training=True), jit_compile=True)
    kept = {kept_inputs(compiled(xs).numpy()) for _ in range(30)}
    assert len(kept) > 2, "a new draw on every compiled call"
    infer = tf.function(lambda v: join(v, training=False), jit_compile=True)
    np.testing.assert_allclose(infer(xs).numpy(), np.mean(xs, axis=0), rtol=1e-6)

    model = tiny_model()
    x = rng.uniform(0, 1, (2, 6, 6, 3)).astype("float32")
    train = tf.function(lambda v: model(v, training=True), jit_compile=True)
    outs = [train(x).numpy() for _ in range(12)]
    assert len({o.tobytes() for o in outs}) > 1
    test = tf.function(lambda v: model(v, training=False), jit_compile=True)
    np.testing.assert_allclose(test(x).numpy(), to_numpy(model(x, training=False)), rtol=1e-5, atol=1e-6)


def test_mixed_precision(rng):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        xs = [x.astype("float16") for x in branches()]
        join = FractalJoin(0.5, columns=[0, 1, 2], seed=1)
        out = join(xs, selection=DropPathSampler(3, 1.0, seed=2)(xs[0], training=True), training=True)
        assert out.dtype == "float16"
        assert kept_inputs(to_numpy(out).astype("float32")) in {(0,), (1,), (2,)}
        np.testing.assert_allclose(to_numpy(join(xs)).astype("float32"), np.mean(xs, axis=0), rtol=1e-3)
        model = tiny_model()
        x = rng.uniform(0, 1, (2, 6, 6, 3)).astype("float32")
        for training in (True, False):
            y = model(x, training=training)
            assert y.dtype == "float16" and np.isfinite(to_numpy(y)).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_save_load_round_trip_and_export(rng, tmp_path):
    model = tiny_model()
    x = rng.uniform(0, 1, (2, 6, 6, 3)).astype("float32")
    expected = to_numpy(model(x, training=False))
    path = tmp_path / "joins.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_numpy(reloaded(x, training=False)), expected)
    join = reloaded.get_layer("join1")
    assert isinstance(join, FractalJoin)
    assert (join.local_drop_path, join.columns, join.seed) == (0.15, (1, 2), 10)
    sampler = reloaded.get_layer("drop_path")
    assert (sampler.columns, sampler.global_drop_path, sampler.seed) == (3, 0.5, 9)
    assert np.isfinite(to_numpy(reloaded(x, training=True))).all()

    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "exported"))  # kept: serve needs its variables alive
    np.testing.assert_allclose(served.serve(x).numpy(), expected, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: FractalJoin(1.0), r"local_drop_path: expected a number in \[0, 1\)"),
        (lambda: FractalJoin(-0.1), "local_drop_path"),
        (lambda: FractalJoin(0.1, columns=[0, 0]), "columns: expected distinct"),
        (lambda: FractalJoin(0.1, columns=[-1]), "columns: expected distinct"),
        (lambda: FractalJoin(0.1, seed="a"), "seed: expected None or an integer"),
        (lambda: DropPathSampler(0), "columns: expected a positive integer"),
        (lambda: DropPathSampler(3, 1.5), r"global_drop_path: expected a number in \[0, 1\]"),
        (lambda: FractalJoin(0.1)(np.zeros((1, 2, 2, 1), "float32")), "inputs:"),
        (
            lambda: FractalJoin(0.1)([np.zeros((1, 2, 2, 1), "float32"), np.zeros((1, 2, 2, 2), "float32")]),
            "inputs: .* same shape",
        ),
        (
            lambda: FractalJoin(0.1, columns=[0, 1, 2])([keras.Input((2, 2, 1))] * 2),
            "columns: .* 3 column indices for 2 inputs",
        ),
        (
            lambda: FractalJoin(0.1)(
                [np.zeros((1, 2, 2, 1), "float32")] * 2, selection=np.zeros(3, "float32")
            ),
            "columns: .* needs",
        ),
        (
            lambda: FractalJoin(0.1, columns=[0, 3])(
                [np.zeros((1, 2, 2, 1), "float32")] * 2, selection=np.zeros(3, "float32")
            ),
            "selection: .* at least 4 columns",
        ),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()
