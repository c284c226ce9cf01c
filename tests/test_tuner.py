"""Keras Tuner search spaces over the papers' knobs, and the tune command."""

import csv

import keras
import keras_tuner
import numpy as np
import pytest

from keras_ultradeep import cli, tuner

TINY = {
    "densenet": {"growth_rate": [4, 8], "depth": [10], "compression": [0.5], "learning_rate": [0.1]},
    "resnext": {"cardinality": [2], "bottleneck_width": [2, 4], "depth": [11], "learning_rate": [0.1]},
    "wide_resnet": {"widening_factor": [1], "depth": [10], "dropout_rate": [0.0, 0.3], "learning_rate": [0.1]},
}
NAMES = {
    "densenet": {"growth_rate", "depth", "compression", "learning_rate"},
    "resnext": {"cardinality", "bottleneck_width", "depth", "learning_rate"},
    "wide_resnet": {"widening_factor", "depth", "dropout_rate", "learning_rate"},
}


@pytest.mark.parametrize("family", sorted(tuner.HYPERMODELS))
def test_space_names_and_a_built_model(family):
    hypermodel = tuner.HYPERMODELS[family]((8, 8, 3), 5, space=TINY[family])
    assert isinstance(hypermodel, keras_tuner.HyperModel)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert set(hp.values) == NAMES[family]
    assert model.input_shape == (None, 8, 8, 3) and model.output_shape == (None, 5)
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.nesterov
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.1)


@pytest.mark.parametrize("family", sorted(tuner.HYPERMODELS))
def test_default_space_holds_only_valid_values(family):
    hypermodel = tuner.HYPERMODELS[family]((32, 32, 3), 10)
    hp = keras_tuner.HyperParameters()
    hypermodel._hyperparameters(hp)
    assert set(hp.values) == NAMES[family]
    for key, choices in hypermodel.choices.items():
        if choices is None:  # learning_rate: a log-scale range
            assert hp._hps[key][0].sampling == "log"
            continue
        assert all(hypermodel._valid(key, value)[0] for value in choices), key
    if family == "densenet":
        assert all((depth - 4) % 6 == 0 for depth in hypermodel.choices["depth"])  # DenseNet-BC
        plain = tuner.HyperDenseNet((32, 32, 3), 10, bottleneck=False)
        assert all((depth - 4) % 3 == 0 for depth in plain.choices["depth"])
    if family == "resnext":
        assert all((depth - 2) % 9 == 0 for depth in hypermodel.choices["depth"])
    if family == "wide_resnet":
        assert all((depth - 4) % 6 == 0 for depth in hypermodel.choices["depth"])


@pytest.mark.parametrize(
    "family, space, message",
    [
        ("densenet", {"depth": [40, 41]}, r"depth: 41 is not allowed \(depth must be 6n \+ 4"),
        ("densenet", {"compression": [0.0]}, r"compression: 0.0 is not allowed"),
        ("resnext", {"depth": [30]}, r"depth: 30 is not allowed \(depth must be 9n \+ 2"),
        ("resnext", {"cardinality": [0]}, r"cardinality: 0 is not allowed"),
        ("wide_resnet", {"dropout_rate": [1.0]}, r"dropout_rate: 1.0 is not allowed"),
        ("wide_resnet", {"depth": []}, r"depth: expected a non-empty list"),
        ("wide_resnet", {"growth_rate": [12]}, r"space: unknown hyperparameter 'growth_rate'"),
        ("densenet", {"learning_rate": [-1.0]}, r"learning_rate: -1.0 is not allowed"),
    ],
)
def test_invalid_spaces_are_refused(family, space, message):
    with pytest.raises(ValueError, match=message):
        tuner.HYPERMODELS[family]((32, 32, 3), 10, space=space)


def test_bad_input_shape_and_classes():
    with pytest.raises(ValueError, match="input_shape: expected"):
        tuner.HyperDenseNet((32, 32), 10)
    with pytest.raises(ValueError, match="classes: expected a positive integer"):
        tuner.HyperResNeXt((32, 32, 3), 0)


def test_tune_refuses_bad_arguments_before_any_work(tmp_path):
    output = tmp_path / "search"
    cases = [
        (dict(family="vgg"), "family: expected one of 'densenet', 'resnext', 'wide_resnet'"),
        (dict(tuner="grid"), "tuner: expected one of 'random', 'bayesian', 'hyperband'"),
        (dict(max_trials=0), "max_trials: expected a positive integer"),
        (dict(space={"depth": [11]}), r"depth: 11 is not allowed"),
        (dict(dataset="no_such_dataset_xyz"), "dataset"),
    ]
    for overrides, message in cases:
        arguments = dict(
            family="densenet", dataset="digits", tuner="random", max_trials=2, epochs=1, output=output
        )
        arguments.update(overrides)
        family = arguments.pop("family")
        with pytest.raises(ValueError, match=message):
            tuner.tune(family, **arguments)
    assert not output.exists()


@pytest.mark.slow
def test_two_trial_search_on_digits_from_the_command_line(tmp_path, capsys):
    output = tmp_path / "search"
    argv = ["tune", "densenet", "--dataset", "digits", "--tuner", "random", "--max-trials", "2"]
    argv += ["--epochs", "2", "--output", str(output), "--batch-size", "64"]
    for key, values in TINY["densenet"].items():
        argv += ["--space", f"{key}={','.join(map(str, values))}"]
    assert cli.main(argv) == 0
    assert "best model" in capsys.readouterr().out

    with open(output / tuner.RESULTS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert sorted(int(row["growth_rate"]) for row in rows) == [4, 8]  # the two points of the space
    scores = [float(row["val_accuracy"]) for row in rows]
    assert scores == sorted(scores, reverse=True) and 0.0 <= scores[-1] <= scores[0] <= 1.0

    best = keras.models.load_model(output / tuner.BEST_MODEL_FILE, safe_mode=True)
    assert best.input_shape == (None, 8, 8, 1) and best.output_shape == (None, 10)
    assert best.count_params() == int(rows[0]["parameters"])
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 1)).astype("float32")
    import tensorflow as tf

    loaded = tf.saved_model.load(str(output / tuner.BEST_EXPORT))  # alive while it serves
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, keras.ops.convert_to_numpy(best(x)), atol=1e-5)


@pytest.mark.slow
def test_hyperband_stops_at_max_trials(tmp_path):
    rows = tuner.tune(
        "wide_resnet",
        dataset="digits",
        tuner="hyperband",
        max_trials=2,
        epochs=2,
        output=tmp_path / "hyperband",
        space=TINY["wide_resnet"],
    )
    assert len(rows) == 2
    assert {row["dropout_rate"] for row in rows} <= {0.0, 0.3}


def test_cli_space_is_parsed_and_refused_when_malformed(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tune", "densenet", "--dataset", "digits", "--max-trials", "1", "--epochs", "1",
                  "--output", "x", "--space", "growth_rate"])
    assert "expected NAME=V1,V2" in capsys.readouterr().err
