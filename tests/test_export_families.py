"""A model of every registered family exports to SavedModel, TFLite and ONNX and
computes the same function there (grouped convolutions and every custom layer
included).

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


@pytest.mark.parametrize("format", export.SUPPORTED_FORMATS)
@pytest.mark.parametrize("family", sorted(SMALL))
@pytest.mark.slow
def test_family_exports_and_agrees(family, format, saved, tmp_path):
    suffix = {"saved_model": "", "tflite": ".tflite", "onnx": ".onnx"}[format]
    output = tmp_path / f"{family}{suffix}"
    difference = export.export_model(saved(family), output, format=format)
    assert output.exists()
    assert 0.0 <= difference <= export.VERIFY_TOLERANCE, (family, format, difference)
    assert keras.models.load_model(saved(family), safe_mode=True).output_shape[-1] == 10
