"""keras_ultradeep.analysis: structure from the graph, lesions, path lengths, feature reuse,
fractal columns, stochastic depth, on tiny models with known answers."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep import analysis
from keras_ultradeep.analysis import rewire
from keras_ultradeep.layers import BypassGate, ResidualGate, StochasticDepth
from tests.families import SMALL


def _family(name, **keras_arguments):
    build, size = SMALL[name]
    return build(input_shape=(size, size, 3), classes=5, weights=None, **keras_arguments), size


def _data(size, count=16, seed=0, classes=5, channels=3):
    generator = np.random.default_rng(seed)
    images = generator.normal(size=(count, size, size, channels)).astype("float32")
    return images, generator.integers(0, classes, count)


def _randomize_batchnorm(model, seed=0):
    """Non-trivial BatchNorm statistics, so that removing a block changes the output."""
    generator = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for weight in layer.weights:
                positive = weight.path.endswith(("gamma", "variance"))
                shape = tuple(weight.shape)
                value = generator.uniform(0.5, 1.5, shape) if positive else generator.normal(0, 0.2, shape)
                weight.assign(value.astype("float32"))


def _zero_residual_branches(model, blocks):
    """Zeroes the last weighted layer of every residual branch: each branch then outputs zeros."""
    for block in blocks:
        last = next(name for name in reversed(block.branch_layers) if model.get_layer(name).weights)
        layer = model.get_layer(last)
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


# family -> (residual blocks of the tiny variant, layers of its first block's shortcut path)
RESIDUAL_FAMILIES = {
    "resnet": (4, 2),  # ResNeXt form (timm), bottlenecks with stochastic depth, 1x1 conv + BN projection
    "resnet_cifar": (3, 2),  # ResNeXt-29 form, projection where the width changes
    "resnet_v2": (8, 1),  # keras.applications' pre-activation ResNet (projection from the pre-activation)
    "resnet_v2_cifar": (3, 0),  # Wide ResNet
    "drn": (6, 0),  # DRN-C: levels 7 and 8 have no shortcut
    "dpn": (4, 4),  # DPN's residual path: BN-ReLU-conv projection and the channel split
    "inception_resnet_v2": (3, 0),  # ResidualScaling merges, declared [shortcut, residual]
    "rir": (2, 0),  # ResNet in ResNet: the residual stream's Adds; the transient stream's sums are not blocks
    "cspnet": (2, 0),
}


@pytest.mark.parametrize("family", sorted(RESIDUAL_FAMILIES))
@pytest.mark.slow
def test_every_residual_family_lesions_from_its_graph(family):
    model, size = _family(family)
    _randomize_batchnorm(model)
    images, _ = _data(size, count=4)
    blocks = analysis.residual_blocks(model)
    count, first_shortcut = RESIDUAL_FAMILIES[family]
    assert len(blocks) == count
    assert len(blocks[0].shortcut_layers) == first_shortcut
    assert all(len(b.shortcut_layers) < len(b.branch_layers) for b in blocks)
    reference = model.predict(images, verbose=0)

    # A gate set to 0 computes what the rebuilt lesioned model computes; both differ from the model.
    gated, gates, _ = rewire.gated_residual(model)
    np.testing.assert_allclose(gated.predict(images, verbose=0), reference, rtol=1e-5, atol=1e-6)
    last = len(blocks) - 1
    lesioned = analysis.lesion(model, [last])
    assert not any(layer.name == blocks[last].merge for layer in lesioned.layers)
    gates[last].keep.assign(0.0)
    np.testing.assert_allclose(
        gated.predict(images, verbose=0), lesioned.predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )

    # Branches that output zeros: no lesion changes anything.
    _zero_residual_branches(model, blocks)
    reference = model.predict(images, verbose=0)
    everything = analysis.lesion(model, range(len(blocks)))
    np.testing.assert_allclose(everything.predict(images, verbose=0), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_keras_form_resnet_v1():
    model = ku.resnet.ResNet((1, 1, 1, 1), form="keras", input_shape=(32, 32, 3), classes=5)
    blocks = analysis.residual_blocks(model)
    assert len(blocks) == 4 and blocks[0].shortcut_layers == ("conv2_block1_0_conv", "conv2_block1_0_bn")
    _zero_residual_branches(model, blocks)
    images, _ = _data(32, count=2)
    np.testing.assert_allclose(
        analysis.lesion(model, [0, 3]).predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5
    )


@pytest.mark.slow
def test_cifar_resnet_option_a_and_preactivation_cifar():
    resnet = ku.create_model("resnet20_cifar", input_shape=(8, 8, 3))
    blocks = analysis.residual_blocks(resnet)
    assert len(blocks) == 9
    assert blocks[3].shortcut_layers == ("conv3_block1_0_pad",)  # the zero-padded option-A shortcut
    assert [b.shortcut_layers for b in blocks].count(()) == 7
    preact = ku.PreActResNetCIFAR(depth=11, input_shape=(8, 8, 3))
    assert len(analysis.residual_blocks(preact)) == 3


def test_merge_order_comes_from_the_graph_not_the_argument_order():
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="branch_a")(x)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="branch_b")(branch)
    y = keras.layers.Add(name="merge")([branch, x])  # the residual first
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(y))
    model = keras.Model(inputs, outputs)
    (block,) = analysis.residual_blocks(model)
    assert (block.merge, block.shortcut_index, block.block_input) == ("merge", 1, "stem")
    assert block.branch_layers == ("branch_a", "branch_b")
    images = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    stem_only = keras.Model(inputs, model.get_layer("dense")(model.get_layer("global_average_pooling2d")(x)))
    np.testing.assert_allclose(
        analysis.lesion(model, "merge").predict(images, verbose=0), stem_only.predict(images, verbose=0), rtol=1e-6
    )


def test_models_without_residual_blocks_get_a_clear_error():
    inputs = keras.Input((6, 6, 2))
    a = keras.layers.Conv2D(2, 1, name="a")(inputs)
    b = keras.layers.Conv2D(2, 1, name="b")(inputs)
    two_paths = keras.Model(inputs, keras.layers.Add()([a, b]))  # a sum of equal paths, no shortcut
    for model in (two_paths, ku.create_model("plain20_cifar", input_shape=(8, 8, 3))):
        with pytest.raises(ValueError, match="has no residual blocks"):
            analysis.residual_blocks(model)
        with pytest.raises(ValueError, match="has no residual blocks"):
            analysis.lesion_study(model, _data(6, channels=2) if model is two_paths else _data(8))
    with pytest.raises(TypeError, match="model: expected a keras.Model"):
        analysis.residual_blocks("resnet20_cifar")
    resnet = ku.create_model("resnet20_cifar", input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="blocks: index 9 out of range for 9 blocks"):
        analysis.lesion(resnet, 9)
    with pytest.raises(ValueError, match="blocks: 'nope' is not one of the model's blocks"):
        analysis.lesion(resnet, ["nope"])
    with pytest.raises(ValueError, match="kind: expected one of 'residual', 'plain'"):
        analysis.lesion_study(resnet, _data(8), kind="vgg")
    with pytest.raises(ValueError, match="draws: expected a positive integer"):
        analysis.lesion_study(resnet, _data(8), draws=0)
    with pytest.raises(ValueError, match="data: expected a batch of images"):
        analysis.lesion_study(resnet, (np.zeros((4, 8, 8, 3)), np.zeros(3)))


@pytest.mark.slow
def test_lesion_works_on_a_model_loaded_from_a_keras_file(tmp_path):
    model = ku.create_model("resnet20_cifar", input_shape=(8, 8, 3), survival_prob=0.5)
    _randomize_batchnorm(model)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert analysis.residual_blocks(loaded) == analysis.residual_blocks(model)
    images, _ = _data(8, count=4)
    np.testing.assert_allclose(
        analysis.lesion(loaded, [2, 5]).predict(images, verbose=0),
        analysis.lesion(model, [2, 5]).predict(images, verbose=0),
        rtol=1e-6,
    )
    # The lesioned model is a model of its own: it saves and loads safely too (no Lambda).
    analysis.lesion(loaded, [2]).save(tmp_path / "lesioned.keras")
    keras.models.load_model(tmp_path / "lesioned.keras", safe_mode=True)


@pytest.mark.slow
def test_lesion_study_schema_and_known_answers():
    model = ku.create_model("resnet20_cifar", input_shape=(8, 8, 3), classes=5)
    blocks = analysis.residual_blocks(model)
    _zero_residual_branches(model, blocks)
    images, labels = _data(8, count=24)
    calls = []
    result = analysis.lesion_study(
        model, (images, labels), draws=2, max_removed=3, progress=lambda done, total: calls.append((done, total))
    )
    expected = analysis.as_arrays((images, labels))
    accuracy = float(np.mean(model.predict(expected[0], verbose=0).argmax(-1) == labels))
    assert result["baseline"] == accuracy
    assert [entry["accuracy"] for entry in result["single"]] == [accuracy] * 9  # branches of zeros
    assert [entry["removed"] for entry in result["random"]] == [1, 2, 3]
    assert all(len(entry["accuracies"]) == 2 and entry["mean"] == accuracy for entry in result["random"])
    assert result["blocks"] == [b.merge for b in blocks] and result["classes"] == 5 and result["examples"] == 24
    assert calls[-1] == (1 + 9 + 3 * 2, 1 + 9 + 3 * 2) and len(calls) == 16


@pytest.mark.slow
def test_plain_network_lesion_breaks_the_chain():
    model = ku.create_model("plain20_cifar", input_shape=(8, 8, 3), classes=5)
    _randomize_batchnorm(model)
    units = analysis.chain_units(model)
    # 19 convs: the stem (3 -> 16 channels) and the two strided ones change the shape.
    assert len(units) == 16
    assert units[0].layers == ("conv2_block1_1_conv", "conv2_block1_1_bn", "conv2_block1_1_relu")
    images, labels = _data(8, count=8)
    # Compared a little after the removed unit: an untrained deep plain net's output barely
    # depends on its input.
    features = keras.Model(model.inputs, model.get_layer("conv2_block3_1_relu").output)
    removed = analysis.remove_units(features, [3])
    gated, gates, _ = rewire.gated_chain(features)
    gates[3].keep.assign(0.0)
    np.testing.assert_allclose(gated.predict(images, verbose=0), removed.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(removed.predict(images, verbose=0), features.predict(images, verbose=0), atol=1e-2)
    result = analysis.lesion_study(model, (images, labels), kind="plain", draws=1, max_removed=2)
    assert result["kind"] == "plain" and len(result["single"]) == 16


@pytest.mark.slow
def test_plain_cifar_models_are_the_resnets_without_shortcuts():
    assert ku.list_models("plain*") == [f"plain{d}_cifar" for d in (110, 20, 32, 44, 56)]
    for depth in (20, 56):
        plain = ku.create_model(f"plain{depth}_cifar")
        resnet = ku.create_model(f"resnet{depth}_cifar")  # option A: shortcuts without parameters
        assert plain.count_params() == resnet.count_params()
        assert plain.input_shape == (None, 32, 32, 3) and plain.output_shape == (None, 10)
        convs = [layer.name for layer in plain.layers if isinstance(layer, keras.layers.Conv2D)]
        assert len(convs) == depth - 1  # plus the classifier: depth weighted layers
        assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
        assert {w.path for w in plain.weights} == {w.path for w in resnet.weights}
    with pytest.raises(ValueError, match=r"depth: expected 6n \+ 2"):
        ku.PlainCIFAR(depth=21)


def test_path_length_distribution_is_binomial():
    for n in (0, 1, 9, 54):
        paths = analysis.path_length_distribution(n)
        assert paths["counts"] == [math.comb(n, k) for k in range(n + 1)]
        assert math.isclose(sum(paths["fractions"]), 1.0)
    with pytest.raises(ValueError, match="num_blocks: expected an integer >= 0"):
        analysis.path_length_distribution(-1)


@pytest.mark.slow
def test_path_lengths_measures_the_gradient_of_each_length():
    model = ku.create_model("resnet20_cifar", input_shape=(8, 8, 3), classes=5)
    images, labels = _data(8, count=16)
    result = analysis.path_lengths(model, (images, labels), samples=2, batch_size=8)
    assert result["path_counts"] == [math.comb(9, k) for k in range(10)]
    assert all(m > 0 for m in result["gradient_magnitude"])
    assert math.isclose(sum(result["gradient_fractions"]), 1.0)
    assert result["total_gradient"][4] == pytest.approx(126 * result["gradient_magnitude"][4])
    assert 0 <= result["effective_range"][0] <= result["effective_range"][1] <= 9
    # The gates are back to their neutral state: the model computes what it computed before.
    gated, gates, _ = rewire.gated_residual(model)
    assert all(float(g.route.numpy()) == -1.0 for g in gates)

    # Known answer: residual branches of zeros pass no gradient; only the path through
    # every shortcut (length 0) carries any, so the effective length is 0.
    _zero_residual_branches(model, analysis.residual_blocks(model))
    zero = analysis.path_lengths(model, (images, labels), samples=1, batch_size=8)
    assert zero["gradient_magnitude"][0] > 0 and zero["gradient_magnitude"][1:] == [0.0] * 9
    assert zero["effective_length"] == 0 and zero["effective_range"] == [0, 0]


def test_feature_reuse_heatmap_shows_zero_for_a_zeroed_source():
    model = ku.DenseNetCIFAR(
        depth=10, growth_rate=4, bottleneck=False, compression=1.0, input_shape=(8, 8, 3), classes=5
    )
    # Dense layer 2 of block 1 reads [block input (16 maps of the stem... 2 * growth), layer 1's 4 maps].
    conv = model.get_layer("conv2_block2_2_conv")
    kernel = conv.get_weights()[0]
    stem_channels = model.get_layer("conv1_conv").filters
    kernel[:, :, stem_channels:stem_channels + 4, :] = 0.0  # nothing from layer 1
    conv.set_weights([kernel])
    result = analysis.feature_reuse(model)
    assert len(result["blocks"]) == 3
    block = result["blocks"][0]
    assert block["targets"] == ["conv2_block1_2_conv", "conv2_block2_2_conv", "pool2_conv"]
    assert block["sources"] == ["conv1_conv", "conv2_block1_2_conv", "conv2_block2_2_conv"]
    weights = block["weights"]
    assert weights[1][1] == 0.0 and weights[1][0] > 0
    assert weights[0][1:] == [None, None] and weights[1][2] is None
    assert all(value > 0 for value in weights[2])  # the transition reads every layer
    expected = float(np.abs(kernel[:, :, :stem_channels, :]).mean())
    assert weights[1][0] == pytest.approx(expected)
    # The last block feeds the classifier (after global pooling).
    assert result["blocks"][2]["targets"][-1] == "predictions"
    with pytest.raises(ValueError, match="has no dense blocks"):
        analysis.feature_reuse(ku.create_model("resnet20_cifar", input_shape=(8, 8, 3)))


@pytest.mark.slow
def test_a_one_column_fractal_equals_its_column():
    model = ku.fractalnet.FractalNet(columns=1, blocks=2, filters=(8, 8), input_shape=(8, 8, 3), classes=5)
    images, labels = _data(8, count=16)
    result = analysis.fractal_columns(model, (images, labels))
    assert len(result["columns"]) == 1
    assert result["columns"][0]["accuracy"] == result["whole"]
    column = ku.fractal_column(model, 0)
    np.testing.assert_allclose(column.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6)
    three = ku.fractalnet.FractalNet(columns=3, blocks=2, filters=(8, 8), input_shape=(8, 8, 3), classes=5)
    result = analysis.fractal_columns(three, (images, labels))
    assert [c["convolutions"] for c in result["columns"]] == [2, 4, 8]
    with pytest.raises(ValueError, match="has no FractalNet units"):
        analysis.fractal_columns(ku.create_model("resnet20_cifar", input_shape=(8, 8, 3)), (images, labels))


@pytest.mark.slow
def test_stochastic_depth_scaled_and_unscaled():
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="branch")(x)
    pooling, head = keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5, activation="softmax")
    model = keras.Model(inputs, head(pooling(StochasticDepth(0.25, name="merge")([x, branch]))))
    unscaled = keras.Model(inputs, head(pooling(keras.layers.Add()([x, branch]))))
    images = np.random.default_rng(1).normal(size=(64, 6, 6, 4)).astype("float32")
    labels = unscaled.predict(images, verbose=0).argmax(-1)  # the unscaled net is right everywhere
    result = analysis.stochastic_depth(model, (images, labels), lesion=False)
    assert result["unscaled"] == 1.0
    assert result["scaled"] == float(np.mean(model.predict(images, verbose=0).argmax(-1) == labels)) < 1.0
    assert result["survival_probs"] == [0.25] and result["lesion"] is None
    deep = ku.create_model("resnet20_cifar", input_shape=(8, 8, 3), classes=5, survival_prob=0.5)
    with_lesion = analysis.stochastic_depth(deep, _data(8), draws=1, max_removed=1)
    assert len(with_lesion["lesion"]["single"]) == 9
    with pytest.raises(ValueError, match="has no stochastic-depth merges"):
        analysis.stochastic_depth(ku.create_model("resnet20_cifar", input_shape=(8, 8, 3)), _data(8, classes=10))


def test_gates_save_and_load_safely(tmp_path):
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(2, 1, name="stem")(inputs)
    y = keras.layers.Conv2D(2, 1, name="branch")(x)
    shortcut, residual = ResidualGate(name="gate")([x, y])
    merged = keras.layers.Add()([shortcut, residual])
    outputs = BypassGate(name="bypass")([x, merged])
    model = keras.Model(inputs, outputs)
    model.get_layer("gate").keep.assign(0.0)
    model.get_layer("bypass").keep.assign(1.0)
    images = np.random.default_rng(2).normal(size=(2, 4, 4, 2)).astype("float32")
    stem = keras.Model(inputs, x).predict(images, verbose=0)
    np.testing.assert_allclose(model.predict(images, verbose=0), stem)  # the branch is gated off
    model.save(tmp_path / "gated.keras")
    loaded = keras.models.load_model(tmp_path / "gated.keras", safe_mode=True)
    assert isinstance(loaded.get_layer("gate"), ResidualGate) and float(loaded.get_layer("gate").keep.numpy()) == 0.0
    np.testing.assert_allclose(loaded.predict(images, verbose=0), stem)


def test_plot_writes_pngs_and_rejects_bad_input(tmp_path):
    model = ku.DenseNetCIFAR(depth=10, growth_rate=4, bottleneck=False, compression=1.0, input_shape=(8, 8, 3))
    path = analysis.plot(analysis.feature_reuse(model), tmp_path / "reuse.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"path: expected a \.png file"):
        analysis.plot(analysis.feature_reuse(model), tmp_path / "reuse.jpg")
    with pytest.raises(ValueError, match="results: expected the result"):
        analysis.plot({"analysis": "other"}, tmp_path / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reuse.png"]
