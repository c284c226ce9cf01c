"""CSPDenseNet: parameter counts re-derived from the definition, the cross
stage partial structure (split, dense layers on one part, partial and fusion
transitions), the fusion variants, stage features and knob errors.

No reference implementation exists (ARCHITECTURE_FACTS part 2, section 5), so
the counts are derived here independently from the module's stated design.
The contract itself is checked for every registered model in test_contract.py.
"""

import pytest

import keras_ultradeep as ku
from keras_ultradeep.models.cspdensenet import CSPDenseNet

SMALL = (64, 64, 3)



def _derived_count(blocks, *, k=32, stem=64, theta=0.5, gamma=0.5, fusion="csp", classes=1000):
    """Trainable parameters written out from the docstring's definition."""
    total = 7 * 7 * 3 * stem + 2 * stem  # stem conv + BN
    width = stem
    for i, n in enumerate(blocks):
        last = i == len(blocks) - 1
        dense = round(width * gamma)
        cross = width - dense
        for j in range(n):  # BN-ReLU-1x1(4k)-BN-ReLU-3x3(k)
            fan_in = dense + j * k
            total += 2 * fan_in + fan_in * 4 * k + 2 * 4 * k + 9 * 4 * k * k
        grown = dense + n * k
        out = width + n * k if last else int((width + n * k) * theta)
        if fusion == "first":
            total += 2 * (cross + grown) + (cross + grown) * out
        elif fusion == "last":
            total += 2 * grown + grown * (out - cross)
        else:
            partial = int(grown * theta)
            total += 2 * grown + grown * partial + 2 * (cross + partial) + (cross + partial) * out
        width = out
    return total + 2 * width + width * classes + classes  # final BN, classifier


@pytest.fixture(scope="module")
def csp121():
    return ku.create_model("cspdensenet121", input_shape=SMALL)


@pytest.mark.slow
def test_parameter_counts(trainable, csp121):
    assert trainable(csp121) == _derived_count((6, 12, 24, 16)) == 8_102_664
    assert csp121.count_params() == 8_174_440  # + BatchNorm moving statistics
    densenet201 = _derived_count((6, 12, 48, 32))
    assert densenet201 == 21_283_784
    model = ku.create_model("cspdensenet201", include_top=False, input_shape=(32, 32, 3))
    assert trainable(model) == densenet201 - (1920 * 1000 + 1000)
    for fusion, expected in (("first", 7_972_840), ("last", 7_276_584)):
        small = CSPDenseNet((6, 12, 24, 16), fusion=fusion, input_shape=(32, 32, 3))
        assert trainable(small) == _derived_count((6, 12, 24, 16), fusion=fusion) == expected


def test_cross_stage_partial_structure(csp121):
    split = csp121.get_layer("conv2_split")
    assert [tuple(t.shape) for t in split.output] == [(None, 16, 16, 32), (None, 16, 16, 32)]
    # Only x0'' feeds the dense layers; x0' goes first into the fusion.
    assert csp121.get_layer("conv2_block1_0_bn").input is split.output[1]
    assert csp121.get_layer("conv2_block1_concat").input[0] is split.output[1]
    fused = csp121.get_layer("conv2_block7_concat")
    assert fused.input[0] is split.output[0]
    assert fused.input[1] is csp121.get_layer("conv2_partial_conv").output
    # Partial transition: theta of the dense output (32 + 6 * 32 = 224 -> 112), no pool;
    # fusion transition to DenseNet-121's width (128), then the pool.
    assert csp121.get_layer("conv2_partial_conv").filters == 112
    assert csp121.get_layer("pool2_conv").filters == 128
    assert csp121.get_layer("pool2_pool").output.shape[1:] == (8, 8, 128)
    assert csp121.get_layer("pool5_conv").filters == 1024  # the last stage: no pool
    with pytest.raises(ValueError):
        csp121.get_layer("pool5_pool")
    assert [layer.name for layer in csp121.layers[-4:]] == ["bn", "relu", "avg_pool", "predictions"]
    assert not any(type(layer).__name__ == "Lambda" for layer in csp121.layers)


def test_fusion_variants():
    first = CSPDenseNet((2, 2), fusion="first", include_top=False, input_shape=SMALL)
    concat = first.get_layer("conv2_block3_concat")
    assert concat.input[1] is first.get_layer("conv2_block2_concat").output
    assert not any("partial" in layer.name for layer in first.layers)
    last = CSPDenseNet((2, 2), fusion="last", include_top=False, input_shape=SMALL)
    # The transition on the dense part alone, then concat with x0', then the pool.
    assert last.get_layer("conv2_partial_conv").filters == int((64 + 64) * 0.5) - 32
    assert last.get_layer("pool2_pool").input is last.get_layer("conv2_block3_concat").output


def test_stage_features_and_names(csp121):
    extractor = ku.feature_extractor(csp121)
    assert {key: tuple(t.shape) for key, t in extractor.output.items()} == {
        "stage1_s4": (None, 16, 16, 144),
        "stage2_s8": (None, 8, 8, 288),
        "stage3_s16": (None, 4, 4, 576),
        "stage4_s32": (None, 2, 2, 1024),
    }
    assert csp121.name == "cspdensenet121"
    assert CSPDenseNet((1, 1), include_top=False, input_shape=SMALL).name == "cspdensenet"
    assert {n for n in ku.list_models() if n.startswith("cspdense")} == {"cspdensenet121", "cspdensenet201"}
    with pytest.raises(TypeError, match="blocks: cspdensenet121 fixes it"):
        ku.create_model("cspdensenet121", blocks=(1, 1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(blocks=()), "blocks: expected a non-empty sequence"),
        (dict(blocks=(6, 0)), "blocks: expected a non-empty sequence"),
        (dict(growth_rate=0), "growth_rate: expected a positive integer"),
        (dict(compression=0), "compression: expected a number in"),
        (dict(part_ratio=1.0), "part_ratio: expected a number in"),
        (dict(part_ratio=0.001), "part_ratio: stage 1's 64 input maps"),
        (dict(fusion="middle"), "fusion: expected one of"),
        (dict(fusion="last", compression=0.1), "compression: with fusion='last'"),
        (dict(dropout_rate=1.0), "dropout_rate: expected a number in"),
        (dict(batch_norm_epsilon=-1.0), "batch_norm_epsilon: expected a positive number"),
    ],
)
def test_bad_knobs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CSPDenseNet(**{"blocks": (6, 12, 24, 16), **kwargs})
