"""The papers' training settings, one :class:`Recipe` per paper setting.

``keras-ultradeep train MODEL --recipe NAME`` (``train(..., recipe=NAME)``)
starts from a recipe; every value can be overridden (``--epochs``,
``--batch-size``, ``--learning-rate``, ``--milestones``, ``--weight-decay``,
``--momentum``, ``--nesterov``, ``--optimizer``, ``--dropout``,
``--augmentation``, ``--label-smoothing``, ...).

Schedules are in epochs (``milestones``) except the CIFAR ResNet paper's,
which is in iterations (``steps``/``milestone_steps``: 64k iterations, /10 at
32k and 48k). Both become a ``PiecewiseConstantDecay`` over optimizer steps.
When the run length is overridden and the milestones are not, the milestones
scale with it (a 10-epoch DenseNet run drops the rate at epochs 5 and 7.5).

Weight decay is the papers' coupled L2 penalty on every trainable parameter
(see :mod:`.optimizers`), not Keras' decoupled ``weight_decay``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math

from keras_ultradeep import checks

__all__ = [
    "OVERRIDABLE",
    "OVERRIDES",
    "RECIPES",
    "Override",
    "Recipe",
    "get_recipe",
    "list_recipes",
    "resolve",
    "run_epochs",
    "schedule_boundaries",
]

AUGMENTATIONS = ("none", "flip", "crop_flip", "crop_flip_reflect", "imagenet")
NORMALIZATIONS = ("unit", "mean", "mean_std", "symmetric")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One paper's training setting (see the module docstring)."""

    name: str
    description: str
    source: str
    models: tuple = ()  # the registry models the paper trained this way
    dataset: str | None = None  # the paper's dataset (a TFDS name)
    train_split: str = "train"
    epochs: int | None = None
    steps: int | None = None  # iterations, for the papers that count them
    batch_size: int = 128
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0  # coupled L2: g + wd * w
    schedule: str = "step"  # step | cosine | exponential | constant
    milestones: tuple = ()  # epochs (step schedule)
    milestone_steps: tuple = ()  # iterations (step schedule of a steps recipe)
    lr_factor: float = 0.1  # multiplier at each milestone / per exponential decay
    decay_epochs: float | None = None  # exponential schedule period
    rmsprop_epsilon: float | None = None
    clipnorm: float | None = None
    label_smoothing: float = 0.0
    dropout: float | None = None  # the model's dropout_rate; None: the model's default
    augmentation: str = "none"
    normalization: str = "unit"
    input_size: int | None = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)


_CIFAR_AUG = "4-pixel zero padding, random 32x32 crop, horizontal flip"

_DENSENET_CIFAR = Recipe(
    "densenet_cifar",
    "DenseNet on CIFAR with standard augmentation (C10+/C100+)",
    "Huang et al. 2017, Densely Connected Convolutional Networks, sec. 4.2: SGD, Nesterov "
    "momentum 0.9 without dampening, batch 64, 300 epochs, lr 0.1 /10 at 50% and 75% of "
    f"training, weight decay 1e-4; {_CIFAR_AUG}; mean/std normalization",
    models=(
        "densenet40_k12", "densenet100_k12", "densenet100_k24", "densenet_bc100_k12", "densenet_bc250_k24",
        "densenet_bc190_k40",
    ),
    dataset="cifar10",
    epochs=300,
    batch_size=64,
    nesterov=True,
    weight_decay=1e-4,
    milestones=(150, 225),
    augmentation="crop_flip",
    normalization="mean_std",
    dropout=0.0,
)

_IMAGENET_RESNET = Recipe(
    "imagenet_resnet",
    "ResNets on ImageNet (fb.resnet.torch schedule)",
    "He et al. 2016, sec. 3.4: SGD, momentum 0.9, weight decay 1e-4, batch 256, lr 0.1 /10 "
    "when the error plateaus; fb.resnet.torch (the DenseNet paper's schedule): 90 epochs, /10 "
    "at 30 and 60, Nesterov; random-resized crop 224 + flip (fb.resnet.torch also jitters "
    "colour and lighting: not done here); eval resize 256 + centre crop 224",
    models=("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    dataset="imagenet2012",
    epochs=90,
    batch_size=256,
    nesterov=True,
    weight_decay=1e-4,
    milestones=(30, 60),
    augmentation="imagenet",
    normalization="mean_std",
    input_size=224,
)

RECIPES = {
    r.name: r
    for r in [
        Recipe(
            "default",
            "this project's short-run recipe: Adam, cosine decay to zero, no augmentation",
            "keras_ultradeep (not a paper): converges in a few epochs on small data",
            optimizer="adam",
            learning_rate=3e-3,
            schedule="cosine",
        ),
        _DENSENET_CIFAR,
        dataclasses.replace(
            _DENSENET_CIFAR,
            name="densenet_cifar_noaug",
            description="DenseNet on CIFAR without augmentation (C10/C100): dropout 0.2",
            source="Huang et al. 2017, sec. 4.2: as densenet_cifar, and 'for the three datasets without "
            "data augmentation ... we add a dropout layer after each convolutional layer (except the "
            "first one) and set the dropout rate to 0.2'",
            models=("densenet40_k12", "densenet100_k12", "densenet_bc100_k12"),
            augmentation="none",
            dropout=0.2,
        ),
        Recipe(
            "densenet_svhn",
            "DenseNet on SVHN (train+extra, no augmentation, dropout 0.2, 40 epochs)",
            "Huang et al. 2017, sec. 4.1-4.2: all training images (train+extra) without "
            "augmentation, pixel values divided by 255, 40 epochs, lr /10 at 50% and 75%, dropout 0.2",
            models=("densenet40_k12", "densenet_bc100_k12"),
            dataset="svhn_cropped",
            train_split="train+extra",
            epochs=40,
            batch_size=64,
            nesterov=True,
            weight_decay=1e-4,
            milestones=(20, 30),
            augmentation="none",
            normalization="unit",
            dropout=0.2,
        ),
        Recipe(
            "wrn_cifar",
            "Wide ResNets on CIFAR",
            "Zagoruyko & Komodakis 2016, Wide Residual Networks, sec. 3-4: SGD, Nesterov momentum "
            "0.9, dampening 0, batch 128, lr 0.1 x0.2 at epochs 60, 120, 160 of 200, weight decay "
            "5e-4, dropout 0.3 between the convolutions of a block; random crops of the image "
            "padded by 4 pixels with reflections, horizontal flips; mean/std normalization",
            models=("wrn28_10", "wrn16_8", "wrn40_4", "wrn16_4", "wrn52_1"),
            dataset="cifar10",
            epochs=200,
            batch_size=128,
            nesterov=True,
            weight_decay=5e-4,
            milestones=(60, 120, 160),
            lr_factor=0.2,
            augmentation="crop_flip_reflect",
            normalization="mean_std",
            dropout=0.3,
        ),
        Recipe(
            "resnext_cifar",
            "ResNeXt on CIFAR",
            "Xie et al. 2017, Aggregated Residual Transformations, sec. 5.3: batch 128, lr 0.1 /10 "
            f"at epochs 150 and 225 of 300, weight decay 5e-4, momentum 0.9; {_CIFAR_AUG}. Nesterov "
            "as in fb.resnet.torch, which the released code builds on; mean/std normalization",
            models=("resnext29_8x64d", "resnext29_16x64d"),
            dataset="cifar10",
            epochs=300,
            batch_size=128,
            nesterov=True,
            weight_decay=5e-4,
            milestones=(150, 225),
            augmentation="crop_flip",
            normalization="mean_std",
        ),
        Recipe(
            "resnet_cifar",
            "CIFAR ResNets (20 to 1202 layers), in iterations",
            "He et al. 2016, Deep Residual Learning, sec. 4.2: SGD, momentum 0.9, weight decay "
            "1e-4, batch 128, lr 0.1 /10 at 32k and 48k iterations, stop at 64k; "
            f"{_CIFAR_AUG}; mean subtraction (per channel here; the paper's is per pixel)",
            models=("resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar",
                    "resnet110_cifar", "resnet1202_cifar"),
            dataset="cifar10",
            steps=64_000,
            batch_size=128,
            weight_decay=1e-4,
            milestone_steps=(32_000, 48_000),
            augmentation="crop_flip",
            normalization="mean",
        ),
        Recipe(
            "stochastic_depth_cifar",
            "ResNet-110 with stochastic depth (p_L = 0.5, linear decay)",
            "Huang et al. 2016, Deep Networks with Stochastic Depth, sec. 4: SGD, Nesterov "
            "momentum 0.9, dampening 0, weight decay 1e-4, batch 128, 500 epochs, lr 0.1 /10 at "
            f"epochs 250 and 375; {_CIFAR_AUG}; mean/std normalization",
            models=("resnet110_cifar", "resnet1202_cifar"),
            dataset="cifar10",
            epochs=500,
            batch_size=128,
            nesterov=True,
            weight_decay=1e-4,
            milestones=(250, 375),
            augmentation="crop_flip",
            normalization="mean_std",
            model_kwargs={"survival_prob": 0.5, "survival_rule": "linear"},
        ),
        Recipe(
            "fractalnet_cifar",
            "FractalNet on CIFAR (C10+)",
            "Larsson et al. 2017, FractalNet, sec. 4: SGD, momentum 0.9, batch 100, 400 epochs, "
            "lr 0.02 /10 each time the remaining epochs halve (200, 300, 350, 375); "
            f"{_CIFAR_AUG}. The paper states no weight decay: 0 here",
            models=("fractalnet20", "fractalnet40"),
            dataset="cifar10",
            epochs=400,
            batch_size=100,
            learning_rate=0.02,
            milestones=(200, 300, 350, 375),
            augmentation="crop_flip",
            normalization="mean_std",
        ),
        Recipe(
            "inception_v3",
            "Inception v3 on ImageNet: RMSProp, label smoothing 0.1",
            "Szegedy et al. 2016, Rethinking the Inception Architecture, sec. 7-8: RMSProp decay "
            "0.9, epsilon 1.0, lr 0.045 x0.94 every two epochs, gradient clipping 2.0, batch 32 "
            "(on each of 50 replicas), 100 epochs, label smoothing 0.1, 299x299. Momentum 0.9 and "
            "weight decay 4e-5 from TF-slim's released training setup (the paper gives neither)",
            models=("inception_v3",),
            dataset="imagenet2012",
            epochs=100,
            batch_size=32,
            optimizer="rmsprop",
            learning_rate=0.045,
            momentum=0.9,
            weight_decay=4e-5,
            schedule="exponential",
            lr_factor=0.94,
            decay_epochs=2,
            rmsprop_epsilon=1.0,
            clipnorm=2.0,
            label_smoothing=0.1,
            augmentation="imagenet",
            normalization="symmetric",
            input_size=299,
        ),
        _IMAGENET_RESNET,
        dataclasses.replace(
            _IMAGENET_RESNET,
            name="imagenet_densenet",
            description="DenseNets on ImageNet",
            source="Huang et al. 2017, sec. 4.2: SGD, Nesterov momentum 0.9, batch 256, 90 epochs, lr 0.1 "
            "/10 at epochs 30 and 60, weight decay 1e-4; the fb.resnet.torch augmentation",
            models=("densenet121", "densenet169", "densenet201", "densenet161", "densenet264"),
        ),
    ]
}

OPTIMIZERS = ("sgd", "rmsprop", "adam")
SCHEDULES = ("step", "cosine", "exponential", "constant")


@dataclasses.dataclass(frozen=True)
class Override:
    """A recipe value that ``train(**overrides)`` and the command line may override.

    ``kind`` is how the command line reads it: ``int``, ``float``, ``str``,
    ``bool`` (``--x`` / ``--no-x``) or ``epochs`` (comma-separated epochs).
    """

    name: str
    kind: str
    help: str = ""
    choices: tuple = ()


# The one list of overridable settings: ``resolve`` accepts these, the command
# line generates its ``train`` flags from them, and ``train``'s docstring
# points here.
OVERRIDES = (
    Override("epochs", "int", "the run's length in epochs (default: the recipe's)"),
    Override("steps", "int", "the run's length in iterations, rounded up to epochs"),
    Override("batch_size", "int", "the global batch size (default: the recipe's)"),
    Override("learning_rate", "float", "the initial learning rate"),
    Override("optimizer", "str", choices=OPTIMIZERS),
    Override("momentum", "float"),
    Override("nesterov", "bool"),
    Override("weight_decay", "float", "coupled L2 weight decay (gradient + wd * w)"),
    Override("schedule", "str", choices=SCHEDULES),
    Override("milestones", "epochs", "step schedule epochs"),
    Override("lr_factor", "float", "the learning-rate multiplier at each milestone"),
    Override("label_smoothing", "float"),
    Override("dropout", "float", "the model's dropout_rate"),
    Override("augmentation", "str", choices=AUGMENTATIONS),
    Override("normalization", "str", choices=NORMALIZATIONS),
    Override("clipnorm", "float", "global gradient-norm clipping"),
    Override("train_split", "str", "the TFDS split to train on (e.g. train+extra)"),
)
OVERRIDABLE = tuple(override.name for override in OVERRIDES)


def list_recipes():
    return sorted(RECIPES)


def get_recipe(name):
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        close = difflib.get_close_matches(str(name), list(RECIPES), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"recipe: unknown recipe {name!r}.{hint} Known: {', '.join(list_recipes())}")
    return RECIPES[name]


def resolve(recipe=None, **overrides):
    """The run's training settings: the recipe's values with ``overrides`` (``None`` ignored).

    Returns a JSON-friendly dict (stored in ``metrics.json``). ``epochs`` is
    ``None`` for a recipe counted in ``steps``; :func:`schedule_boundaries`
    and the trainer turn steps into epochs once the dataset size is known.
    """
    recipe = get_recipe("default" if recipe is None else recipe)
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise TypeError(f"{unknown[0]}: not a recipe setting; expected one of {', '.join(OVERRIDABLE)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    config = {
        "recipe": recipe.name,
        **{key: getattr(recipe, key) for key in OVERRIDABLE if key != "steps"},
        "steps": recipe.steps,
        "milestone_steps": list(recipe.milestone_steps),
        "decay_epochs": recipe.decay_epochs,
        "rmsprop_epsilon": recipe.rmsprop_epsilon,
        "recipe_model_kwargs": dict(recipe.model_kwargs),
        "input_size": recipe.input_size,
    }
    config["milestones"] = [float(m) for m in recipe.milestones]
    length_given = "epochs" in given or "steps" in given
    if "epochs" in given and "steps" in given:
        raise ValueError("epochs: give either epochs or steps, not both")
    config.update(given)

    if "steps" in given:
        config["epochs"] = None
    if "epochs" in given:
        config["steps"] = None
    if config["epochs"] is None and config["steps"] is None:
        raise ValueError(f"epochs: recipe {recipe.name!r} has no length; give epochs")
    for key in ("epochs", "steps"):
        if config[key] is not None:
            checks.positive_int(config[key], key)
    checks.positive_int(config["batch_size"], "batch_size")
    checks.one_of(config["optimizer"], "optimizer", OPTIMIZERS)
    checks.one_of(config["schedule"], "schedule", SCHEDULES)
    config["learning_rate"] = checks.positive_number(config["learning_rate"], "learning_rate")
    config["momentum"] = checks.number_in(config["momentum"], "momentum", 0, 1, high_open=True)
    config["weight_decay"] = checks.non_negative_number(config["weight_decay"], "weight_decay")
    config["lr_factor"] = checks.positive_number(config["lr_factor"], "lr_factor")
    config["label_smoothing"] = checks.number_in(
        config["label_smoothing"], "label_smoothing", 0, 1, high_open=True
    )
    if config["dropout"] is not None:
        config["dropout"] = checks.number_in(config["dropout"], "dropout", 0, 1, high_open=True)
    if config["clipnorm"] is not None:
        config["clipnorm"] = checks.positive_number(config["clipnorm"], "clipnorm")
    checks.boolean(config["nesterov"], "nesterov")
    checks.one_of(config["augmentation"], "augmentation", AUGMENTATIONS)
    checks.one_of(config["normalization"], "normalization", NORMALIZATIONS)
    checks.string(config["train_split"], "train_split")

    milestones = config["milestones"]
    if not isinstance(milestones, (list, tuple)):
        raise TypeError(f"milestones: expected a list of epochs, got {milestones!r}")
    milestones = [checks.positive_number(m, "milestones") for m in milestones]
    if milestones != sorted(milestones):
        raise ValueError(f"milestones: expected increasing epochs, got {milestones!r}")
    config["milestones"] = milestones
    if "milestones" in given:
        config["milestone_steps"] = []  # explicit epochs replace the paper's iterations
        config["milestone_scale"] = 1.0
    elif length_given:
        # The paper's schedule, stretched or shrunk to the new length.
        if recipe.epochs is not None and config["epochs"] is not None:
            config["milestone_scale"] = config["epochs"] / recipe.epochs
        elif recipe.steps is not None and config["steps"] is not None:
            config["milestone_scale"] = config["steps"] / recipe.steps
        else:  # epochs for a steps recipe or the other way: scale as fractions of the run
            config["milestone_scale"] = None
    else:
        config["milestone_scale"] = 1.0
    if config["epochs"] is not None and any(m >= config["epochs"] for m in milestones) and (
        "milestones" in given
    ):
        raise ValueError(f"milestones: expected epochs below {config['epochs']}, got {milestones!r}")
    return config


def run_epochs(config, steps_per_epoch):
    """The number of epochs: ``epochs``, or ``steps`` rounded up to whole epochs."""
    if config["epochs"] is not None:
        return config["epochs"]
    return max(1, math.ceil(config["steps"] / steps_per_epoch))


def schedule_boundaries(config, steps_per_epoch):
    """The step schedule's boundaries, in optimizer steps."""
    epochs = run_epochs(config, steps_per_epoch)
    total = epochs * steps_per_epoch
    scale = config["milestone_scale"]
    if config["milestone_steps"]:
        marks = list(config["milestone_steps"])
        if scale is None:  # a steps recipe run for a number of epochs
            paper_steps = get_recipe(config["recipe"]).steps
            boundaries = [round(m / paper_steps * total) for m in marks]
        else:
            boundaries = [round(m * scale) for m in marks]
    else:
        marks = config["milestones"]
        if scale is None:
            paper_epochs = get_recipe(config["recipe"]).epochs
            boundaries = [round(m / paper_epochs * total) for m in marks]
        else:
            boundaries = [round(m * scale * steps_per_epoch) for m in marks]
    return [b for b in boundaries if 0 < b < total]
