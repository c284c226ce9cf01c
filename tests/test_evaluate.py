"""``evaluate``: 10-crop against a hand-computed average, top-1/top-5 on a trained run."""

import json

import keras
import numpy as np
import pytest

from keras_ultradeep import cli
from keras_ultradeep.training import evaluate, fit


def _tiny_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)  # position-sensitive, so every crop and flip matters
    outputs = keras.layers.Dense(7, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.slow
def test_ten_crop_is_the_average_of_corners_centre_and_flips():
    model = _tiny_model()
    images = np.random.default_rng(0).normal(size=(3, 9, 9, 2)).astype("float32")
    by_hand = []
    for top, left in [(0, 0), (0, 3), (3, 0), (3, 3), (1, 1)]:  # corners, then the centre
        crop = images[:, top : top + 6, left : left + 6]
        by_hand.append(model.predict(crop, verbose=0))
        by_hand.append(model.predict(crop[:, :, ::-1], verbose=0))
    expected = np.mean(by_hand, axis=0)
    got = evaluate.multi_crop_predict(model, images, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    # Every view counts: dropping one changes the average.
    assert not np.allclose(got, np.mean(by_hand[:-1], axis=0), atol=1e-6)
    centre = evaluate.multi_crop_predict(model, images, 1)
    np.testing.assert_allclose(centre, model.predict(images[:, 1:7, 1:7], verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="crops: expected one of 1, 10, got 5"):
        evaluate.multi_crop_predict(model, images, 5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    output = tmp_path_factory.mktemp("eval") / "run"
    record = fit.train(
        "densenet40_k12", dataset="digits", recipe="densenet_cifar", epochs=2, batch_size=64,
        output=output, model_kwargs={"depth": 10, "growth_rate": 4}, verbose=0,
        tensorboard=False, plot=False,
    )
    return output, record


@pytest.mark.slow
def test_one_crop_reproduces_the_validation_accuracy(trained):
    output, record = trained
    result = evaluate.evaluate(output / "model.keras", dataset="digits")
    assert result["examples"] == 360 and result["normalization"] == "mean_std"
    assert result["top1"] == pytest.approx(record["val_accuracy"], abs=1e-6)
    assert result["top5"] == pytest.approx(record["history"][-1]["val_top5_accuracy"], abs=1e-6)
    assert result["top1"] <= result["top5"] <= 1.0


@pytest.mark.slow
def test_ten_crops_from_the_command_line(trained, capsys):
    output, _ = trained
    status = cli.main(["evaluate", str(output / "model.keras"), "--dataset", "digits", "--crops", "10",
                       "--max-examples", "50", "--json"])
    out = capsys.readouterr().out
    assert status == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["crops"], result["examples"], result["resize"]) == (10, 50, 16)
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert "top-1" in out and "10 crops" in out


def test_bad_evaluate_arguments(trained, tmp_path, capsys):
    output, _ = trained
    assert cli.main(["evaluate", str(tmp_path / "none.keras"), "--dataset", "digits"]) == 2
    assert "MODEL_FILE: no such file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="dataset: unknown dataset 'digitz'"):
        evaluate.evaluate(output / "model.keras", dataset="digitz")


@pytest.mark.slow
def test_tfds_datasets_mocked(tmp_path):
    """The TFDS path: fixed-size CIFAR (padded crops) and variable-size Imagenette (resized)."""
    import tensorflow_datasets as tfds

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=4)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
    path = tmp_path / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    with tfds.testing.mock_data(num_examples=12):
        cifar = evaluate.evaluate(path, dataset="cifar10", crops=10, batch_size=5, normalization="mean_std")
        assert (cifar["split"], cifar["examples"], cifar["resize"]) == ("test", 12, 40)
        assert 0.0 <= cifar["top1"] <= cifar["top5"] <= 1.0
        one = evaluate.evaluate(path, dataset="imagenette", crops=1, max_examples=4)
        assert (one["split"], one["examples"], one["resize"]) == ("validation", 4, 37)
