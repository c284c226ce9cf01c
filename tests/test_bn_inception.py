"""BN-Inception (Inception v2 of the BatchNorm paper): parameter counts, the
module table, structure, odd input sizes, features and knob errors.

The contract itself (shapes, pooling, saving) is checked for every registered
model in test_contract.py.
"""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep.models.inception import BN_INCEPTION_MODULES, BNInception



@pytest.fixture(scope="module")
def model():
    return BNInception()  # 224x224: the table's sizes; built, never run


def test_parameter_counts(trainable, model):
    # Cadene's port of the Caffe model has 11,295,240 (conv biases); without the biases
    # that BatchNorm makes redundant, 11,285,224 (ARCHITECTURE_FACTS part 2, section 2).
    assert trainable(model) == 11_285_224
    assert model.count_params() == 11_285_224 + 20_032  # BN moving mean and variance
    assert trainable(BNInception(use_bias=True, input_shape=(32, 32, 3))) == 11_295_240


def test_module_outputs_follow_the_table(model):
    expected = {
        "conv2_block1_out": (56, 192),
        "conv3_block1_concat": (28, 256),  # 3a
        "conv3_block2_concat": (28, 320),  # 3b
        "conv4_block1_concat": (14, 576),  # 3c, stride 2
        "conv4_block2_concat": (14, 576),  # 4a
        "conv4_block3_concat": (14, 576),  # 4b
        "conv4_block4_concat": (14, 608),  # 4c: the filters give 608 (the paper's table says 576)
        "conv4_block5_concat": (14, 608),  # 4d
        "conv5_block1_concat": (7, 1056),  # 4e, stride 2
        "conv5_block2_concat": (7, 1024),  # 5a
        "conv5_block3_concat": (7, 1024),  # 5b
    }
    shapes = {name: model.get_layer(name).output.shape for name in expected}
    got = {name: (shape[1], shape[-1]) for name, shape in shapes.items()}
    assert got == expected
    assert sum(len(modules) for modules in BN_INCEPTION_MODULES.values()) == 10


def test_structure(model):
    # Reduction modules: no 1x1, stride on the 3x3 and the second double 3x3 (padded 1, both
    # sides), max-pool passed through without projection.
    assert model.get_layer("conv4_block1_3x3_conv").strides == (2, 2)
    assert model.get_layer("conv4_block1_3x3_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("conv4_block1_double_3x3_2_conv").strides == (2, 2)
    assert model.get_layer("conv4_block1_double_3x3_1_conv").strides == (1, 1)
    names = {layer.name for layer in model.layers}
    assert "conv4_block1_1x1_conv" not in names and "conv4_block1_pool_proj_conv" not in names
    assert isinstance(model.get_layer("conv4_block1_pool"), keras.layers.MaxPooling2D)
    # Average pools count their zero padding (Caffe); 5b max-pools.
    assert model.get_layer("conv3_block1_pool_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("conv3_block1_pool").padding == "valid"
    assert isinstance(model.get_layer("conv5_block3_pool"), keras.layers.MaxPooling2D)
    # Every conv is conv (no bias) - BN (epsilon 1e-5) - ReLU; no dropout.
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(convs) == len(norms) and not any(conv.use_bias for conv in convs)
    assert {layer.epsilon for layer in norms} == {1e-5}
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)


@pytest.mark.slow
def test_odd_input_sizes_run(rng):
    # The stride-2 modules keep ceil(n / 2) in all branches, also on odd maps.
    fmap = BNInception(include_top=False, input_shape=(None, None, 3))
    for side in (33, 47):
        x = rng.uniform(0, 1, (1, side, side, 3)).astype("float32")
        y = keras.ops.convert_to_numpy(fmap(x, training=False))
        assert y.shape[-1] == 1024 and np.isfinite(y).all()


@pytest.mark.slow
def test_feature_extractor_stages():
    extractor = ku.feature_extractor(BNInception(include_top=False, input_shape=(64, 64, 3)))
    shapes = {key: tuple(t.shape) for key, t in extractor.output.items()}
    assert shapes == {
        "stage1_s4": (None, 16, 16, 192),
        "stage2_s8": (None, 8, 8, 320),
        "stage3_s16": (None, 4, 4, 608),
        "stage4_s32": (None, 2, 2, 1024),
    }


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(use_bias=1), TypeError, "use_bias: expected True or False"),
        (dict(batch_norm_epsilon=0), ValueError, "batch_norm_epsilon: expected a positive number"),
        (dict(input_shape=(16, 16, 3)), ValueError, "at least 32"),
    ],
)
def test_bad_knobs(kwargs, error, message):
    with pytest.raises(error, match=message):
        BNInception(**kwargs)
