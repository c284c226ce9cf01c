"""Memory-efficient DenseNet: the same model and the same function as the naive one.

Same variables (paths, shapes, order), identical forward outputs, gradients
equal to the naive model's, BatchNorm moving statistics updated exactly once
per training step; weights files of either form load into either; save/load
(safe_mode), XLA, mixed precision and MirroredStrategy. Tiny models only; no
timing is asserted (the memory and speed figures are in docs/benchmarks.md).
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ultradeep import features
from keras_ultradeep.layers.dense_bottleneck import DenseBottleneck
from keras_ultradeep.models import densenet

REPO = Path(__file__).resolve().parents[1]

CONFIGS = {
    # DenseNet-BC (bottleneck + compression).
    "bc": (densenet.DenseNetCIFAR, dict(depth=16, growth_rate=4, input_shape=(8, 8, 3))),
    # Without bottlenecks: the recomputed part is concat -> BN -> ReLU -> conv3x3.
    "plain": (
        densenet.DenseNetCIFAR,
        dict(depth=13, growth_rate=4, bottleneck=False, compression=1.0, input_shape=(8, 8, 3)),
    ),
    # The ImageNet form (stem, four blocks, keras.applications' epsilon).
    "imagenet": (
        densenet.DenseNet,
        dict(blocks=(1, 2, 1, 1), growth_rate=4, stem_filters=8, weights=None, input_shape=(32, 32, 3),
             classes=5),
    ),
}


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if "moving_variance" in weight.path or "gamma" in weight.path:
            value = rng.uniform(0.5, 1.5, weight.shape)
        elif "moving_mean" in weight.path or "beta" in weight.path:
            value = rng.normal(0.0, 0.1, weight.shape)
        else:
            fan_in = np.prod(weight.shape[:-1]) if len(weight.shape) > 1 else 1
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), weight.shape)
        weight.assign(value.astype("float32"))


def _pair(config, **extra):
    builder, kwargs = CONFIGS[config]
    kwargs = {**kwargs, "classifier_activation": None, **extra}
    naive = builder(**kwargs)
    efficient = builder(**kwargs, memory_efficient=True)
    _randomize(naive)
    densenet.copy_weights(naive, efficient)
    return naive, efficient


def _batch(model, n=4, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, *model.input_shape[1:])).astype("float32")
    y = rng.integers(0, model.output_shape[-1], (n,))
    return x, y


def _numpy(weights):
    return {w.path: keras.ops.convert_to_numpy(w) for w in weights}


def _relative(a, b):
    return float(np.abs(a - b).max() / max(1.0, np.abs(a).max()))


def _gradients(model, x, jit_compile=False):
    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_sum(tf.square(tf.cast(logits, "float32")))
        return tape.gradient(loss, model.trainable_weights), logits

    grads, logits = step()
    return {w.path: g.numpy() for w, g in zip(model.trainable_weights, grads)}, logits.numpy()


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request):
    return _pair(request.param)


def test_same_variables_in_the_same_order(pair):
    naive, efficient = pair
    assert [(w.path, tuple(w.shape), w.trainable) for w in efficient.weights] == [
        (w.path, tuple(w.shape), w.trainable) for w in naive.weights
    ]
    assert efficient.count_params() == naive.count_params()
    assert any(isinstance(layer, DenseBottleneck) for layer in efficient.layers)
    assert not any(isinstance(layer, DenseBottleneck) for layer in naive.layers)


def test_identical_inference_outputs(pair):
    naive, efficient = pair
    x, _ = _batch(naive)
    np.testing.assert_array_equal(efficient.predict_on_batch(x), naive.predict_on_batch(x))


@pytest.mark.slow
def test_equal_gradients_and_statistics_after_a_step(pair):
    _check_step(*pair, jit_compile=False)


@pytest.mark.slow
def test_equal_gradients_and_statistics_under_xla():
    _check_step(*_pair("bc"), jit_compile=True)


def _check_step(naive, efficient, jit_compile):
    densenet.copy_weights(naive, efficient)
    x, _ = _batch(naive)
    expected, expected_logits = _gradients(naive, x, jit_compile)
    got, logits = _gradients(efficient, x, jit_compile)
    np.testing.assert_allclose(logits, expected_logits, rtol=0, atol=1e-5)
    for path in expected:
        assert _relative(expected[path], got[path]) <= 1e-5, path
    # One training call updated every moving statistic once, exactly as the naive layers did.
    naive_stats = _numpy(naive.non_trainable_weights)
    efficient_stats = _numpy(efficient.non_trainable_weights)
    for path, value in naive_stats.items():
        np.testing.assert_allclose(efficient_stats[path], value, rtol=0, atol=1e-6, err_msg=path)


@pytest.mark.slow
def test_train_step_updates_equally():
    """``train_on_batch`` (SGD with momentum): weights and statistics after a step."""
    naive, efficient = _pair("bc")
    x, y = _batch(naive)
    for model in (naive, efficient):
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    before = _numpy(naive.non_trainable_weights)
    naive.train_on_batch(x, y)
    efficient.train_on_batch(x, y)
    expected, got = _numpy(naive.weights), _numpy(efficient.weights)
    for path in expected:
        assert _relative(expected[path], got[path]) <= 1e-5, path
    # The statistics moved (once: after two updates they would differ from the naive ones).
    assert any(not np.array_equal(before[p], expected[p]) for p in before)


def test_dropout_follows_the_same_convs():
    naive, efficient = _pair("bc", dropout_rate=0.2)
    x, _ = _batch(naive)
    drops = [[l.name for l in m.layers if isinstance(l, keras.layers.Dropout)] for m in (naive, efficient)]
    assert drops[0] == drops[1] and len(drops[0]) == 2 * 6 + 2
    # Dropout masks are random, so training outputs do not compare; inference ones do.
    np.testing.assert_array_equal(efficient.predict_on_batch(x), naive.predict_on_batch(x))


@pytest.mark.slow
def test_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        naive, efficient = _pair("plain")
        x, _ = _batch(naive)
        assert efficient.get_layer("conv2_block1_0_2_bottleneck").compute_dtype == "float16"
        assert all(w.dtype == "float32" for w in efficient.weights)
        np.testing.assert_array_equal(efficient.predict_on_batch(x), naive.predict_on_batch(x))
        expected, logits_naive = _gradients(naive, x)
        got, logits = _gradients(efficient, x)
        assert logits.dtype == np.float16
        np.testing.assert_allclose(logits.astype("float32"), logits_naive.astype("float32"), atol=1e-2)
        for path in expected:
            assert _relative(expected[path], got[path]) <= 1e-2, path
        for path, value in _numpy(naive.non_trainable_weights).items():
            np.testing.assert_allclose(
                _numpy(efficient.non_trainable_weights)[path], value, rtol=1e-3, atol=1e-3
            )
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_save_and_load_round_trip(tmp_path):
    _, efficient = _pair("bc")
    x, _ = _batch(efficient)
    path = tmp_path / "efficient.keras"
    efficient.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert any(isinstance(layer, DenseBottleneck) for layer in loaded.layers)
    assert [w.path for w in loaded.weights] == [w.path for w in efficient.weights]
    np.testing.assert_array_equal(loaded.predict_on_batch(x), efficient.predict_on_batch(x))
    # Still memory-efficient and trainable after loading.
    got, _ = _gradients(loaded, x)
    assert all(np.isfinite(g).all() for g in got.values())


@pytest.mark.slow
def test_weights_files_load_into_either_form(tmp_path):
    """keras.applications' legacy .h5 and Keras 3 .weights.h5 files, both directions."""
    blocks = (1, 2, 1, 1)
    shape = (32, 32, 3)
    from keras.src.applications.densenet import DenseNet as KerasDenseNet  # DenseNet121's generic builder

    reference = KerasDenseNet(
        blocks, weights=None, input_shape=shape, classes=5, classifier_activation=None
    )
    _randomize(reference, seed=3)
    x, _ = _batch(reference)
    expected = reference.predict_on_batch(x)
    legacy, keras3 = tmp_path / "reference.h5", tmp_path / "reference.weights.h5"
    reference.save(legacy)
    reference.save_weights(keras3)

    build = dict(weights=None, input_shape=shape, classes=5, classifier_activation=None, growth_rate=32)
    for path in (legacy, keras3):
        efficient = densenet.DenseNet(blocks, **{**build, "weights": str(path)}, memory_efficient=True)
        assert any(isinstance(layer, DenseBottleneck) for layer in efficient.layers)
        np.testing.assert_allclose(efficient.predict_on_batch(x), expected, rtol=0, atol=1e-5)

    # A file saved from the memory-efficient form loads into both forms.
    saved = tmp_path / "efficient.weights.h5"
    efficient.save_weights(saved)
    for memory_efficient in (False, True):
        model = densenet.DenseNet(
            blocks, **{**build, "weights": str(saved)}, memory_efficient=memory_efficient
        )
        np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=0, atol=1e-5)

    # A file of neither form still fails with the contract's message.
    other = densenet.DenseNet((1, 1, 1, 1), **build)
    other.save_weights(tmp_path / "other.weights.h5")
    for memory_efficient in (False, True):
        with pytest.raises(ValueError, match="weights: could not load"):
            densenet.DenseNet(
                blocks, **{**build, "weights": str(tmp_path / "other.weights.h5")},
                memory_efficient=memory_efficient,
            )


def test_feature_extractor_finds_the_stages():
    # The memory-efficient form keeps the layer names that the family declares.
    from keras_ultradeep import registry

    efficient = registry.create_model(
        "densenet_bc100_k12", memory_efficient=True, include_top=False, input_shape=(8, 8, 3)
    )
    assert any(isinstance(layer, DenseBottleneck) for layer in efficient.layers)
    names = [name for _, name in features.stage_layers(efficient)]
    assert names == ["conv2_block16_concat", "conv3_block16_concat", "relu"]


@pytest.mark.slow
def test_named_variants_take_the_knob():
    from keras_ultradeep import registry

    model = registry.create_model("densenet_bc100_k12", memory_efficient=True, include_top=False,
                                  input_shape=(8, 8, 3))
    assert sum(isinstance(layer, DenseBottleneck) for layer in model.layers) == 3 * 16
    model = registry.create_model("densenet121", weights=None, memory_efficient=True, include_top=False,
                                  input_shape=(32, 32, 3))
    assert sum(isinstance(layer, DenseBottleneck) for layer in model.layers) == 6 + 12 + 24 + 16
    assert model.count_params() == keras.applications.DenseNet121(
        weights=None, include_top=False, input_shape=(32, 32, 3)).count_params()


def test_memory_efficient_must_be_bool():
    with pytest.raises(TypeError, match="memory_efficient: expected True or False"):
        densenet.DenseNetCIFAR(memory_efficient="yes")
    with pytest.raises(TypeError, match="memory_efficient"):
        densenet.DenseNet((1, 1), weights=None, memory_efficient=1)


def test_layer_config_round_trip_and_errors():
    layer = DenseBottleneck(8, 3, input_channels=[4, 2], norm_name="a_bn", conv_name="a_conv", epsilon=1e-5)
    clone = DenseBottleneck.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert [w.path for w in clone.weights] == ["a_bn/gamma", "a_bn/beta", "a_bn/moving_mean",
                                               "a_bn/moving_variance", "a_conv/kernel"]
    with pytest.raises(ValueError, match="filters"):
        DenseBottleneck(0)
    with pytest.raises(ValueError, match="kernel_size"):
        DenseBottleneck(4, kernel_size=0)
    with pytest.raises(ValueError, match="inputs: expected channels"):
        layer([np.zeros((1, 4, 4, 4), "float32"), np.zeros((1, 4, 4, 3), "float32")])


DISTRIBUTED = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_ultradeep.models import densenet

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, (8,))
    results = []
    for memory_efficient in (False, True):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = densenet.DenseNetCIFAR(depth=16, growth_rate=4, input_shape=(8, 8, 3),
                                           classifier_activation=None, memory_efficient=memory_efficient)
            model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if results:
            for w, value in zip(model.weights, results[0][1]):
                w.assign(value)
        else:
            initial = [w.numpy() for w in model.weights]
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        results.append(({w.path: w.numpy() for w in model.weights}, initial))
    naive, efficient = results[0][0], results[1][0]
    worst = max(float(np.abs(naive[p] - efficient[p]).max() / max(1, np.abs(naive[p]).max())) for p in naive)
    moved = any(not np.array_equal(naive[p], i) for p, i in zip(naive, initial))
    print("WORST", worst, moved)
    """
)


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpus():
    result = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED], capture_output=True, text=True, cwd=REPO,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("WORST")][-1]
    _, worst, moved = line.split()
    assert float(worst) <= 1e-5 and moved == "True", line
