"""Recipes, the papers' coupled weight decay, Torch's SGD and the step schedules."""

import math

import keras
import numpy as np
import pytest

from keras_ultradeep import cli
from keras_ultradeep.training import fit, optimizers, recipes

TINY = {"depth": 10, "growth_rate": 4}


# ------------------------------------------------------------------ the table


@pytest.mark.parametrize("name", recipes.list_recipes())
def test_every_recipe_resolves_with_a_source(name):
    recipe = recipes.get_recipe(name)
    assert recipe.source and recipe.description
    config = recipes.resolve(name, epochs=5 if name == "default" else None)
    assert config["recipe"] == name
    assert (config["epochs"] is None) != (config["steps"] is None)
    boundaries = recipes.schedule_boundaries(config, steps_per_epoch=100)
    assert boundaries == sorted(boundaries)
    assert len(boundaries) == len(recipe.milestones) + len(recipe.milestone_steps)


def test_paper_values():
    densenet = recipes.get_recipe("densenet_cifar")
    assert (densenet.optimizer, densenet.nesterov, densenet.momentum) == ("sgd", True, 0.9)
    assert (densenet.learning_rate, densenet.batch_size, densenet.epochs) == (0.1, 64, 300)
    assert densenet.milestones == (150, 225) and densenet.weight_decay == 1e-4
    assert recipes.get_recipe("densenet_cifar_noaug").dropout == 0.2
    assert recipes.get_recipe("densenet_cifar_noaug").augmentation == "none"
    wrn = recipes.get_recipe("wrn_cifar")
    assert (wrn.milestones, wrn.lr_factor, wrn.weight_decay, wrn.dropout) == ((60, 120, 160), 0.2, 5e-4, 0.3)
    assert recipes.get_recipe("resnext_cifar").milestones == (150, 225)
    assert recipes.get_recipe("stochastic_depth_cifar").milestones == (250, 375)
    fractal = recipes.get_recipe("fractalnet_cifar")
    assert (fractal.epochs, fractal.learning_rate, fractal.batch_size) == (400, 0.02, 100)
    inception = recipes.get_recipe("inception_v3")
    assert (inception.optimizer, inception.label_smoothing) == ("rmsprop", 0.1)
    imagenet = recipes.get_recipe("imagenet_resnet")
    assert (imagenet.epochs, imagenet.milestones, imagenet.batch_size) == (90, (30, 60), 256)


def test_cifar_resnet_counts_iterations():
    config = recipes.resolve("resnet_cifar")
    assert config["steps"] == 64_000 and config["epochs"] is None
    steps_per_epoch = math.ceil(50_000 / 128)  # 391
    assert recipes.run_epochs(config, steps_per_epoch) == 164  # 64,124 steps
    assert recipes.schedule_boundaries(config, steps_per_epoch) == [32_000, 48_000]
    # A shorter run keeps the schedule's shape: /10 at 50% and 75% of it.
    short = recipes.resolve("resnet_cifar", steps=400)
    assert recipes.schedule_boundaries(short, 10) == [200, 300]
    by_epochs = recipes.resolve("resnet_cifar", epochs=8)
    assert recipes.schedule_boundaries(by_epochs, 10) == [40, 60]


def test_milestones_scale_with_an_overridden_length_unless_given():
    config = recipes.resolve("densenet_cifar", epochs=10)
    assert recipes.schedule_boundaries(config, 7) == [35, 52]  # epochs 5 and 7.5
    config = recipes.resolve("densenet_cifar", epochs=10, milestones=[2, 4])
    assert recipes.schedule_boundaries(config, 7) == [14, 28]
    assert recipes.schedule_boundaries(recipes.resolve("wrn_cifar"), 391) == [60 * 391, 120 * 391, 160 * 391]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"momentum": 1.5}, "momentum: expected a number in \\[0, 1\\), got 1.5"),
        ({"learning_rate": 0.0}, "learning_rate: expected a positive number"),
        ({"optimizer": "lamb"}, "optimizer: expected one of 'sgd', 'rmsprop', 'adam'"),
        ({"augmentation": "mixup"}, "augmentation: expected one of"),
        ({"milestones": [5, 3]}, "milestones: expected increasing epochs"),
        ({"epochs": 10, "milestones": [12]}, "milestones: expected epochs below 10"),
        ({"epochs": 10, "steps": 100}, "epochs: give either epochs or steps"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(ValueError, match=message):
        recipes.resolve("densenet_cifar", **overrides)
    unknown = "recipe: unknown recipe 'densenet_cifr'. Did you mean 'densenet_cifar'"
    with pytest.raises(ValueError, match=unknown):
        recipes.resolve("densenet_cifr")


def test_step_schedule_is_piecewise_constant_in_steps():
    schedule = optimizers.make_schedule("step", 0.1, total_steps=100, boundaries=[50, 75], factor=0.1)
    assert isinstance(schedule, keras.optimizers.schedules.PiecewiseConstantDecay)
    rates = [float(schedule(step)) for step in (0, 49, 50, 74, 75, 99)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


# --------------------------------------------------- coupled weight decay, Torch SGD


def _one_variable_step(optimizer, w0, grads):
    variable = keras.Variable(np.array(w0, "float32"))
    optimizer.build([variable])
    for grad in grads:
        optimizer.apply([keras.ops.convert_to_tensor(np.array(grad, "float32"))], [variable])
    return variable.numpy()


def test_sgd_coupled_weight_decay_matches_a_hand_computed_step():
    lr, mu, wd = 0.1, 0.9, 0.01
    w = np.array([1.0, -2.0, 0.5])
    g1, g2 = np.array([0.3, 0.1, -0.2]), np.array([-0.1, 0.4, 0.2])
    # Torch's optim.sgd: d = g + wd*w (before the momentum); v = mu*v + d; w -= lr*v
    d1 = g1 + wd * w
    v1 = d1
    w1 = w - lr * v1
    d2 = g2 + wd * w1
    v2 = mu * v1 + d2
    w2 = w1 - lr * v2
    got = _one_variable_step(optimizers.SGD(lr, momentum=mu, coupled_weight_decay=wd), w, [g1, g2])
    np.testing.assert_allclose(got, w2, rtol=1e-6)
    # One step: exactly w - lr * (g + wd*w).
    got = _one_variable_step(optimizers.SGD(lr, momentum=mu, coupled_weight_decay=wd), w, [g1])
    np.testing.assert_allclose(got, w - lr * (g1 + wd * w), rtol=1e-6)
    # Nesterov: w -= lr * (d + mu * v).
    n1 = w - lr * (d1 + mu * v1)
    got = _one_variable_step(optimizers.SGD(lr, momentum=mu, nesterov=True, coupled_weight_decay=wd), w, [g1])
    np.testing.assert_allclose(got, n1, rtol=1e-6)
    # Not Keras' decoupled decay: with zero gradient and momentum, decoupled SGD would
    # move w by lr*wd*w too, but a second step differs (momentum carries wd*w).
    got = _one_variable_step(optimizers.SGD(lr, momentum=mu, coupled_weight_decay=wd), w, [0 * g1, 0 * g1])
    z1 = w - lr * wd * w
    z2 = z1 - lr * (mu * wd * w + wd * z1)
    np.testing.assert_allclose(got, z2, rtol=1e-6)


def test_torch_sgd_keeps_the_gradients_in_the_velocity_across_a_rate_change():
    """After a step of the schedule Torch's update uses the new rate on the whole velocity."""
    schedule = optimizers.make_schedule("step", 0.1, total_steps=4, boundaries=[1], factor=0.1)
    w, g = np.array([1.0]), np.array([1.0])
    got = _one_variable_step(optimizers.SGD(schedule, momentum=0.9), w, [g, g])
    v2 = 0.9 * g + g
    np.testing.assert_allclose(got, w - 0.1 * g - 0.01 * v2, rtol=1e-6)


def test_rmsprop_and_adam_add_the_decay_to_the_gradient():
    w, g, wd = np.array([1.0, -1.0]), np.array([0.2, 0.3]), 0.05
    pairs = ((optimizers.RMSprop, keras.optimizers.RMSprop), (optimizers.Adam, keras.optimizers.Adam))
    for ours, keras_class in pairs:
        got = _one_variable_step(ours(0.01, coupled_weight_decay=wd), w, [g])
        want = _one_variable_step(keras_class(0.01), w, [g + wd * w])
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_optimizers_round_trip_through_the_config():
    optimizer = optimizers.SGD(0.1, momentum=0.8, nesterov=True, coupled_weight_decay=5e-4)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, optimizers.SGD)
    assert (again.momentum, again.nesterov, again.coupled_weight_decay) == (0.8, True, 5e-4)


# ------------------------------------------------------------- training with recipes


@pytest.mark.slow
def test_recipe_run_on_digits(tmp_path):
    """A paper recipe end to end on the bundled digits, with its overrides recorded."""
    record = fit.train(
        "densenet40_k12",
        recipe="densenet_cifar",
        dataset="digits",
        epochs=3,
        batch_size=32,
        output=tmp_path / "run",
        model_kwargs=TINY,
        verbose=0,
    )
    assert record["complete"] and record["recipe"] == "densenet_cifar"
    assert (record["optimizer"], record["nesterov"], record["weight_decay"]) == ("sgd", True, 1e-4)
    assert record["augmentation"] == "crop_flip" and record["normalization"] == "mean_std"
    steps = record["steps_per_epoch"]
    assert record["schedule_boundaries"] == [round(1.5 * steps), round(2.25 * steps)]
    assert record["model_kwargs_applied"]["dropout_rate"] == 0.0
    assert "val_top5_accuracy" in record["history"][-1]
    assert record["best_val_accuracy"] > 0.3  # well above chance after 3 short epochs
    model = keras.models.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    assert isinstance(model.optimizer, optimizers.SGD)


@pytest.mark.slow
def test_label_smoothing_recipe_uses_categorical_crossentropy(tmp_path, monkeypatch):
    from keras_ultradeep.training import build

    seen = {}
    original = build.compile_model

    def spy(model, *args, **kwargs):
        seen["loss"] = original(model, *args, **kwargs).loss
        return model

    monkeypatch.setattr(build, "compile_model", spy)
    record = fit.train(
        "densenet40_k12", recipe="inception_v3", dataset="digits", epochs=1, batch_size=64,
        input_size=8, output=tmp_path / "run", model_kwargs=TINY, verbose=0, augmentation="flip",
    )
    assert isinstance(seen["loss"], keras.losses.CategoricalCrossentropy)
    assert seen["loss"].get_config()["label_smoothing"] == 0.1
    assert record["optimizer"] == "rmsprop" and record["schedule"] == "exponential"
    assert record["complete"]


def test_cli_overrides_reach_the_recipe(monkeypatch, tmp_path):
    calls = {}
    monkeypatch.setattr(fit, "train", lambda *a, **k: calls.update(k))
    status = cli.main([
        "train", "resnet20_cifar", "--recipe", "wrn_cifar", "--dataset", "digits", "--epochs", "3",
        "--output", str(tmp_path / "x"), "--milestones", "1,2", "--weight-decay", "1e-3",
        "--no-nesterov", "--momentum", "0.8", "--optimizer", "sgd", "--dropout", "0.1",
        "--augmentation", "flip", "--label-smoothing", "0.2", "--lr-factor", "0.5",
        "--jit-compile", "--mixed-precision", "mixed_bfloat16", "--distribute", "mirrored",
    ])
    assert status == 0
    assert calls["recipe"] == "wrn_cifar" and calls["milestones"] == [1.0, 2.0]
    assert (calls["weight_decay"], calls["nesterov"], calls["momentum"]) == (1e-3, False, 0.8)
    assert (calls["dropout"], calls["augmentation"], calls["label_smoothing"]) == (0.1, "flip", 0.2)
    runtime = (calls["jit_compile"], calls["mixed_precision"], calls["distribute"])
    assert runtime == (True, "mixed_bfloat16", "mirrored")
    assert calls["batch_size"] is None  # the recipe's


def test_dropout_for_a_model_without_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="dropout: resnet20_cifar has no dropout_rate argument"):
        fit.train("resnet20_cifar", recipe="resnet_cifar", dataset="digits", epochs=1,
                  output=tmp_path / "run", dropout=0.2, verbose=0)
    assert not (tmp_path / "run").exists()
