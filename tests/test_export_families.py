"""A model of every registered family exports to SavedModel, and every family
with one of our layers (and a stock control) to TFLite and ONNX, and computes
the same function there (grouped convolutions and every custom layer included).

Each family is represented by its small model in ``families.SMALL``.
``export_model`` runs the export in its runtime and compares it with the
Keras model (max abs diff <= 1e-5); here the logits are compared (no softmax), so the check is not flattened by
probabilities near 0 or 1.
"""

import keras
import pytest
from families import SMALL

import keras_ultradeep as ku
from keras_ultradeep import export, registry


def test_every_registered_family_has_an_export_case():
    families = {registry.model_entry(name).family for name in ku.list_models()}
    assert sorted(families - set(SMALL)) == []


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family -> its small model saved as .keras (built on first use)."""
    folder = tmp_path_factory.mktemp("families")
    files = {}

    def get(family):
        if family not in files:
            build, side = SMALL[family]
            model = build(weights=None, input_shape=(side, side, 3), classes=10, classifier_activation=None)
            files[family] = folder / f"{family}.keras"
            model.save(files[family])
        return files[family]

    return get


# Families whose small model holds only stock Keras layers: their TFLite and ONNX
# conversions exercise the converters rather than this package, so one of them
# (densenet_cifar) stands for all; each still exports to SavedModel here, and the
# SavedModel case checks that the family has none of our layers.
STOCK = {
    "bn_inception", "densenet", "densenet_cifar", "drn", "drn_a", "inception_v3", "inception_v4", "nin",
    "overfeat", "plain_cifar", "resnet_v2", "resnet_v2_cifar",
}
STOCK_CONTROL = "densenet_cifar"
CASES = [
    (family, format)
    for family in sorted(SMALL)
    for format in export.SUPPORTED_FORMATS
    if format == "saved_model" or family not in STOCK or family == STOCK_CONTROL
]


def _ours(model):
    return sorted({type(layer).__name__ for layer in model._flatten_layers() if type(layer).__module__.startswith("keras_ultradeep")})


@pytest.mark.parametrize("family, format", CASES)
@pytest.mark.slow
def test_family_exports_and_agrees(family, format, saved, tmp_path):
    suffix = {"saved_model": "", "tflite": ".tflite", "onnx": ".onnx"}[format]
    output = tmp_path / f"{family}{suffix}"
    difference = export.export_model(saved(family), output, format=format)
    assert output.exists()
    assert 0.0 <= difference <= export.VERIFY_TOLERANCE, (family, format, difference)
    model = keras.models.load_model(saved(family), safe_mode=True)
    assert model.output_shape[-1] == 10
    if format == "saved_model":
        assert bool(_ours(model)) == (family not in STOCK), (family, _ours(model))
