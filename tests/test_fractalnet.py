"""FractalNet: the expansion rule, the official wiring and parameter counts,
drop-path in the network, one column as a plain network, stage features."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ultradeep as ku
from keras_ultradeep.features import feature_extractor
from keras_ultradeep.layers import DropPathSampler, FractalJoin
from keras_ultradeep.models import fractalnet
from keras_ultradeep.models.fractalnet import FractalNet, fractal_column, fractal_expansion

TINY = dict(columns=3, blocks=2, filters=(4, 8), input_shape=(8, 8, 3), classes=5)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)



def expected_trainable(columns, filters, classes, in_channels=3, only_column=None):
    """Conv weights and biases (column c has 2^c units; a column's first unit
    sees the block input), no BatchNorm parameters, the classifier."""
    total = 0
    for width in filters:
        for c in range(columns) if only_column is None else [only_column]:
            units = 2**c
            total += 9 * in_channels * width + width + (units - 1) * (9 * width * width + width)
        in_channels = width
    return total + in_channels * classes + classes


@pytest.fixture(scope="module")
def tiny():
    """C=3, B=2, no dropout, every batch global: training computes one column."""
    return FractalNet(**TINY, dropout_rates=(0, 0), global_drop_path=1.0, seed=3)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32")


# ------------------------------------------------------------ the expansion rule


def symbolic_block(columns):
    """fractal_expansion on strings, recording each unit and join."""
    calls = []

    def unit(z, column, index):
        calls.append(("unit", column, index))
        return f"u{column}.{index}({z})"

    def join(tensors, joined_columns, depth):
        calls.append(("join", tuple(joined_columns), depth))
        return f"J{list(joined_columns)}@{depth}[{', '.join(tensors)}]"

    return fractal_expansion("z", columns, unit, join), calls


def test_expansion_rule_gives_the_official_three_column_wiring():
    outputs, _ = symbolic_block(3)
    inner = "J[1, 2]@2[u1.1(z), u2.2(u2.1(z))]"  # the official join2(c1, c2)
    assert outputs == ["u0.1(z)", f"u1.2({inner})", f"u2.4(u2.3({inner}))"]


@pytest.mark.parametrize("columns", [1, 2, 3, 4, 5])
def test_expansion_rule_counts(columns):
    outputs, calls = symbolic_block(columns)
    assert len(outputs) == columns
    units = [(c, i) for kind, c, i in calls if kind == "unit"]
    for c in range(columns):  # column c: units 1 .. 2^c
        assert sorted(i for col, i in units if col == c) == list(range(1, 2**c + 1))
    joins = [(cols, depth) for kind, cols, depth in calls if kind == "join"]
    # Inside the block (its last join is the caller's), a join sits wherever two
    # columns end: at every even depth, in units of the deepest column...
    assert sorted(depth for _, depth in joins) == list(range(2, 2 ** (columns - 1), 2))
    # ... and gathers every column whose units (2^(C-1-c) long) end there.
    for cols, depth in joins:
        assert list(cols) == [c for c in range(columns) if depth % 2 ** (columns - 1 - c) == 0]


def test_official_unit_and_block_structure(tiny):
    names = [layer.name for layer in tiny.layers]
    # Block 1: 7 units, an inner join at depth 2, per-column pools, the final join.
    assert sorted(n for n in names if n.startswith("conv1_col") and n.endswith("_conv")) == [
        "conv1_col0_1_conv", "conv1_col1_1_conv", "conv1_col1_2_conv",
        "conv1_col2_1_conv", "conv1_col2_2_conv", "conv1_col2_3_conv", "conv1_col2_4_conv",
    ]
    joins = [layer for layer in tiny.layers if isinstance(layer, FractalJoin)]
    assert [(j.name, j.columns) for j in joins] == [
        ("conv1_block2_out", (1, 2)), ("conv1_block4_out", (0, 1, 2)),
        ("conv2_block2_out", (1, 2)), ("conv2_block4_out", (0, 1, 2)),
    ]
    # The block's last join comes after each column's own 2x2 max-pool; the
    # sampler's selection is its last input.
    final = tiny.get_layer("conv1_block4_out")
    assert [t._keras_history.operation.name for t in final.input] == [
        "conv1_col0_pool", "conv1_col1_pool", "conv1_col2_pool", "drop_path"
    ]
    assert tiny.get_layer("conv2_col2_4_relu").output.shape == (None, 4, 4, 8)
    # One sampler drives every join.
    assert sum(isinstance(layer, DropPathSampler) for layer in tiny.layers) == 1
    # The official unit: conv (bias) -> dropout -> BN without gamma/beta -> ReLU.
    model = FractalNet(**TINY, dropout_rates=(0.0, 0.3))
    bn = model.get_layer("conv2_col1_2_bn")
    assert not bn.center and not bn.scale and bn.epsilon == 1e-5
    assert model.get_layer("conv2_col1_2_conv").use_bias
    assert model.get_layer("conv2_col1_2_drop").rate == 0.3
    assert "conv1_col1_2_drop" not in [layer.name for layer in model.layers]  # rate 0: no layer


# ----------------------------------------------------------- parameter counts


def test_official_20_layer_parameter_count(trainable):
    """ARCHITECTURE_FACTS part 2 section 4: 33,760,484 in the official Caffe
    form (conv bias, BatchNorm without gamma/beta, FC), CIFAR-100; the paper
    prints 38.6M, which no convention of the released code reaches."""
    model = ku.create_model("fractalnet20", classes=100)
    assert trainable(model) == 33_760_484
    assert model.count_params() == 33_760_484 + 2 * 10_304  # + BN moving mean and variance
    assert trainable(model) == expected_trainable(3, (64, 128, 256, 512, 512), 100)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 35 and len([c for c in convs if c.name.startswith("conv1_col2")]) == 4
    assert model.name == "fractalnet20" and model.input_shape == (None, 32, 32, 3)
    assert model.get_layer("conv5_block4_out").output.shape == (None, 1, 1, 512)

    deepest = fractal_column(model, -1)
    assert trainable(deepest) == expected_trainable(3, (64, 128, 256, 512, 512), 100, only_column=2)
    assert len([layer for layer in deepest.layers if isinstance(layer, keras.layers.Conv2D)]) == 20


@pytest.mark.slow
def test_40_layer_parameter_count(trainable):
    model = ku.create_model("fractalnet40", classes=100)
    assert trainable(model) == 76_130_724 == expected_trainable(4, (64, 128, 256, 512, 512), 100)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]) == 75
    assert len(fractal_column(model).layers) > 0
    assert model.name == "fractalnet40"


@pytest.mark.parametrize("columns, filters", [(1, (3,)), (2, (4, 6)), (4, (2, 3, 5))])
def test_parameter_count_formula(trainable, columns, filters):
    model = FractalNet(
        columns=columns, blocks=len(filters), filters=filters, input_shape=(8, 8, 3), classes=7
    )
    assert trainable(model) == expected_trainable(columns, filters, 7)


# -------------------------------------------------------------- drop-path


@pytest.mark.slow
def test_a_global_batch_computes_exactly_one_column(tiny, x):
    """Training with every batch global: each output is exactly one column's
    network (BatchNorm on batch statistics in both), and every column comes up."""
    columns = [fractal_column(tiny, c) for c in range(3)]
    references = [to_numpy(column(x, training=True)) for column in columns]
    chosen = []
    for _ in range(15):
        y = to_numpy(tiny(x, training=True))
        matches = [c for c, ref in enumerate(references) if np.allclose(y, ref, rtol=1e-6, atol=1e-7)]
        assert len(matches) == 1
        chosen.append(matches[0])
    assert set(chosen) == {0, 1, 2}


def test_column_models_share_the_weights_and_count_the_column_alone(trainable, tiny):
    for c in range(3):
        column = fractal_column(tiny, c)
        assert trainable(column) == expected_trainable(3, TINY["filters"], TINY["classes"], only_column=c)
        convs = [layer for layer in column.layers if isinstance(layer, keras.layers.Conv2D)]
        assert len(convs) == 2 * 2**c
        assert all(conv is tiny.get_layer(conv.name) for conv in convs)  # shared, not copied
        assert not any(isinstance(layer, (FractalJoin, DropPathSampler)) for layer in column.layers)
    assert fractal_column(tiny, -1).name == f"{tiny.name}_column2"


def test_inference_joins_every_path_deterministically(rng):
    # One block of two columns: the output is the mean of the two pooled columns.
    model = FractalNet(columns=2, blocks=1, filters=(5,), dropout_rates=(0.2,), include_top=False,
                       input_shape=(6, 6, 3), seed=1)
    x = rng.uniform(0, 1, (3, 6, 6, 3)).astype("float32")
    y = to_numpy(model(x, training=False))
    np.testing.assert_array_equal(to_numpy(model(x, training=False)), y)
    mean = (to_numpy(fractal_column(model, 0)(x)) + to_numpy(fractal_column(model, 1)(x))) / 2
    np.testing.assert_allclose(y, mean, rtol=1e-6, atol=1e-6)


def test_training_is_random_and_local_batches_mix_columns(rng):
    model = FractalNet(**TINY, dropout_rates=(0, 0), global_drop_path=0.0, local_drop_path=0.5, seed=5)
    assert not any(isinstance(layer, DropPathSampler) for layer in model.layers)
    x = rng.uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    outs = {to_numpy(model(x, training=True)).tobytes() for _ in range(8)}
    assert len(outs) > 1


@pytest.mark.slow
def test_xla_and_mixed_precision(tiny, x):
    train = tf.function(lambda v: tiny(v, training=True), jit_compile=True)
    references = [to_numpy(fractal_column(tiny, c)(x, training=True)) for c in range(3)]
    for _ in range(4):
        y = train(x).numpy()
        assert any(np.allclose(y, ref, rtol=1e-4, atol=1e-5) for ref in references)
    infer = tf.function(lambda v: tiny(v, training=False), jit_compile=True)
    np.testing.assert_allclose(infer(x).numpy(), to_numpy(tiny(x, training=False)), rtol=1e-5, atol=1e-6)

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = FractalNet(**TINY, seed=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    full = FractalNet(**TINY, seed=2)
    half.set_weights(full.get_weights())
    assert half.get_layer("conv2_block4_out").compute_dtype == "float16"
    np.testing.assert_allclose(
        to_numpy(half(x, training=False)).astype("float32"), to_numpy(full(x, training=False)), atol=1e-2
    )
    for _ in range(3):
        y = to_numpy(half(x, training=True))
        assert np.isfinite(y).all()
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-2)


@pytest.mark.slow
def test_save_and_load_keeps_the_drop_path_configuration(tiny, x, tmp_path):
    path = tmp_path / "fractal.keras"
    tiny.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_numpy(reloaded(x, training=False)), to_numpy(tiny(x, training=False)))
    assert reloaded.get_layer("drop_path").global_drop_path == 1.0
    assert reloaded.get_layer("conv1_block2_out").columns == (1, 2)
    column = fractal_column(reloaded, 1)
    np.testing.assert_allclose(
        to_numpy(column(x)), to_numpy(fractal_column(tiny, 1)(x)), rtol=1e-6, atol=1e-7
    )


# ------------------------------------------------------------------- features


def test_feature_extractor_finds_every_block(x):
    model = FractalNet(**{**TINY, "input_shape": None}, include_top=False, dropout_rates=(0, 0))
    # A configuration of one's own is no registered variant; the family's
    # declaration, read for that configuration, names its stages.
    with pytest.raises(ValueError, match="is not a registered model name.*pass registry_name"):
        feature_extractor(model)
    stages = fractalnet.FAMILY.stages(TINY)
    assert stages == (("conv1_block4_out", 2), ("conv2_block4_out", 4))
    features = feature_extractor(model, [name for name, _ in stages])(x)
    assert features["conv1_block4_out"].shape == (4, 4, 4, 4)
    assert features["conv2_block4_out"].shape == (4, 2, 2, 8)
    np.testing.assert_allclose(to_numpy(features["conv2_block4_out"]), to_numpy(model(x)), rtol=1e-6)


# -------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(columns=0), "columns: expected a positive integer"),
        (dict(blocks=2.0), "blocks: expected a positive integer"),
        (dict(filters=(64, 128)), "filters: expected 5 positive integers, one per block"),
        (dict(dropout_rates=(0, 0.1, 0.2, 0.3, 1.0)), r"dropout_rates\[4\]: expected a number in \[0, 1\)"),
        (dict(local_drop_path=1.0), r"local_drop_path: expected a number in \[0, 1\)"),
        (dict(global_drop_path=1.5), r"global_drop_path: expected a number in \[0, 1\]"),
        (dict(seed="x"), "seed: expected None or an integer"),
        (dict(input_shape=(16, 16, 3)), "input_shape: height and width must be at least 32"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FractalNet(**kwargs)


def test_fractal_column_bad_arguments(tiny):
    with pytest.raises(ValueError, match=r"column: expected an integer in \[-3, 2\]"):
        fractal_column(tiny, 3)
    with pytest.raises(TypeError, match="model: expected a FractalNet"):
        fractal_column("fractalnet20", 0)
    with pytest.raises(ValueError, match="model: .* has no FractalNet units"):
        fractal_column(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), 0)
