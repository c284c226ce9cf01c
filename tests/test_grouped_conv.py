"""GroupedConv2D: exactly Keras' Conv2D(groups=...), and serializable, exportable,
XLA- and mixed-precision-safe."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ultradeep.layers import GroupedConv2D


def _pair(rng, channels, filters, groups, **options):
    reference = keras.layers.Conv2D(filters, 3, groups=groups, **options)
    ours = GroupedConv2D(filters, 3, groups, **options)
    shape = (2, 9, 9, channels)
    reference.build(shape)
    ours.build(shape)
    assert ours.kernel.shape == reference.kernel.shape
    ours.kernel.assign(rng.normal(0, 0.2, ours.kernel.shape).astype("float32"))
    reference.kernel.assign(ours.kernel.numpy())
    if options.get("use_bias"):
        ours.bias.assign(rng.normal(0, 0.2, ours.bias.shape).astype("float32"))
        reference.bias.assign(ours.bias.numpy())
    return ours, reference, rng.normal(0, 1, shape).astype("float32")


@pytest.mark.parametrize(
    "groups, options",
    [
        (1, dict(padding="same")),
        (2, dict(padding="valid", use_bias=True)),
        (4, dict(padding="same", strides=2)),
        (4, dict(padding="valid", strides=2, use_bias=True)),
        (32, dict(padding="same", dilation_rate=2)),
        (8, dict(padding="valid", dilation_rate=(2, 1))),
    ],
)
def test_equals_keras_grouped_conv(rng, groups, options):
    ours, reference, x = _pair(rng, 32, 64, groups, **options)
    expected = keras.ops.convert_to_numpy(reference(x))
    got = keras.ops.convert_to_numpy(ours(x))
    assert got.shape == expected.shape == ours.compute_output_shape(x.shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    compiled = tf.function(ours.__call__, jit_compile=True)
    np.testing.assert_allclose(compiled(x).numpy(), expected, rtol=0, atol=1e-5)


def test_gradients_equal_keras_grouped_conv(rng):
    # The layer bypasses Keras' XLA wrapper, so TensorFlow's own grouped
    # backprop kernels run on CPU: check them too.
    ours, reference, x = _pair(rng, 16, 32, 4, padding="same", strides=2, use_bias=True)
    x = tf.constant(x)

    def grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x)))
        return tape.gradient(loss, [x, layer.kernel, layer.bias])

    for got, expected in zip(grads(ours), grads(reference)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=1e-4)


def test_one_convolution_op_and_no_nested_function(rng):
    ours, _, x = _pair(rng, 16, 32, 4, padding="same")
    graph = tf.function(ours.__call__).get_concrete_function(tf.TensorSpec((None, 9, 9, 16))).graph
    op_types = [op.type for op in graph.get_operations()]
    assert op_types.count("Conv2D") == 1
    assert not {"PartitionedCall", "StatefulPartitionedCall"} & set(op_types)


def test_save_load_and_export(rng, tmp_path):
    inputs = keras.Input((8, 8, 16))
    outputs = GroupedConv2D(32, 3, 8, padding="same", use_bias=True, name="grouped")(inputs)
    model = keras.Model(inputs, outputs)
    x = rng.normal(0, 1, (2, 8, 8, 16)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))

    path = tmp_path / "grouped.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(reloaded.get_layer("grouped"), GroupedConv2D)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded(x)), expected)

    export = tmp_path / "saved_model"
    model.export(str(export), format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(export))
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(), expected, rtol=0, atol=1e-5)



def test_get_config_round_trip():
    layer = GroupedConv2D(
        32, (3, 1), 8, strides=(2, 1), padding="same", use_bias=True,
        kernel_initializer="glorot_uniform", bias_initializer=keras.initializers.Constant(0.5),
        kernel_regularizer=keras.regularizers.L2(1e-4), name="grouped",
    )
    config = layer.get_config()
    clone = GroupedConv2D.from_config(config)
    assert clone.get_config() == config
    assert (clone.filters, clone.kernel_size, clone.groups, clone.strides) == (32, (3, 1), 8, (2, 1))
    assert isinstance(clone.kernel_regularizer, keras.regularizers.L2)
    assert clone.kernel_regularizer.l2 == pytest.approx(1e-4)
    clone.build((None, 8, 8, 16))
    np.testing.assert_array_equal(clone.bias.numpy(), np.full(32, 0.5, "float32"))


def test_mixed_precision(rng):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = GroupedConv2D(16, 3, 4, padding="same")
        x = rng.normal(0, 1, (2, 8, 8, 8)).astype("float32")
        y = layer(x)
        assert y.dtype == "float16" and layer.kernel.dtype == "float32"
        compiled = tf.function(layer.__call__, jit_compile=True)(x)
        assert compiled.dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    reference = GroupedConv2D(16, 3, 4, padding="same")
    reference.build(x.shape)
    reference.kernel.assign(layer.kernel.numpy())
    expected = keras.ops.convert_to_numpy(reference(x))
    for got in (y, compiled):
        got = keras.ops.convert_to_numpy(got).astype("float32")
        assert np.abs(got - expected).max() <= 1e-2 * np.abs(expected).max()


@pytest.mark.parametrize("jit_compile", [False, True])
def test_mixed_float16_trains(rng, jit_compile):
    # TensorFlow's CPU float16 filter gradient for grouped convolutions sizes
    # its buffer for one group and fails; the layer computes in float32 there.
    x = rng.normal(0, 1, (4, 8, 8, 16)).astype("float32")
    y = rng.integers(0, 2, 4)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8, 8, 16))
        layer = GroupedConv2D(16, 3, 4, padding="same")
        features = keras.layers.GlobalAveragePooling2D()(layer(inputs))
        model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(features))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert layer.compute_dtype == "float16"
    before = layer.kernel.numpy().copy()
    # A unit loss scale: the default 2**15 can overflow on the first step and skip it.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=1.0)
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=jit_compile)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert np.abs(layer.kernel.numpy() - before).max() > 0
    assert model.predict_on_batch(x).dtype == "float32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(filters=16, kernel_size=3, groups=0), "groups: expected a positive integer, got 0"),
        (dict(filters=30, kernel_size=3, groups=4), "filters: 30 is not divisible by groups=4"),
        (dict(filters=16, kernel_size=0, groups=4), "kernel_size: expected a positive integer"),
        (dict(filters=16, kernel_size=3, groups=4, padding="causal"), "padding: expected one of"),
        (dict(filters=16, kernel_size=3, groups=4, strides=2, dilation_rate=2), "dilation_rate: a strided"),
        (dict(filters=16, kernel_size=3, groups=2.0), "groups: expected a positive integer"),
        (dict(filters=0, kernel_size=3, groups=1), "filters: expected a positive integer, got 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupedConv2D(**kwargs)


def test_input_channels_must_divide():
    with pytest.raises(ValueError, match="groups: the input's 30 channels are not divisible by groups=4"):
        GroupedConv2D(16, 3, 4)(keras.Input((8, 8, 30)))
    with pytest.raises(ValueError, match="inputs: expected"):
        GroupedConv2D(16, 3, 4).build((8, 8, 32))
