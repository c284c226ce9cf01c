"""The ``keras-ultradeep`` command line: each command end to end, and its errors."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import reference_counts

import keras_ultradeep as ku
from keras_ultradeep import cli
from keras_ultradeep.convert import densenet as densenet_names

TINY_ARGS = ["--model-arg", "depth=10", "--model-arg", "growth_rate=4"]


def _run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _in_fresh_process(body):
    """Runs ``body`` (with ``cli`` imported and stdout captured in ``out``) in a new
    Python; returns its printed lines, the last one the heavy modules it imported."""
    code = (
        "import sys, contextlib, io\n"
        "from keras_ultradeep import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"{body}"
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()


def test_help_does_not_import_tensorflow():
    (imported,) = _in_fresh_process(
        "    try: cli.main(['train', '--help'])\n"
        "    except SystemExit as e: assert e.code == 0\n"
        "assert '--batch-size' in out.getvalue()\n"
    )
    assert imported == "[]"


def test_python_dash_m_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "keras_ultradeep", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == f"keras-ultradeep {ku.__version__}"
    result = subprocess.run([sys.executable, "-m", "keras_ultradeep"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "COMMAND" in result.stderr


def test_list_table(capsys):
    status, out, _ = _run(capsys, "list", "densenet_bc*")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "PARAMS", "TRAINABLE", "INPUT", "MIN", "WEIGHTS"]
    table = {row.split()[0]: row.split() for row in rows}
    assert sorted(table) == ["densenet_bc100_k12", "densenet_bc190_k40", "densenet_bc250_k24"]
    name, total, trainable, size, minimum, weights = table["densenet_bc100_k12"]
    assert int(trainable.replace(",", "")) == reference_counts.TRAINABLE["densenet_bc100_k12"]
    assert int(total.replace(",", "")) > int(trainable.replace(",", ""))  # BN statistics
    assert (size, minimum, weights) == ("32x32", "8", "-")


def test_list_serves_the_table_without_building_or_importing_keras():
    counts, imported = _in_fresh_process(
        "    assert cli.main(['list']) == 0\n"
        "rows = {row.split()[0]: row.split() for row in out.getvalue().splitlines()[1:]}\n"
        "print(len(rows), rows['alexnet'][1], rows['densenet121'][1])\n"
    )
    # Every registered model, counted at its default input (AlexNet's head is
    # sized by it: 60,965,224 at 227x227, not 24,265,064 at the minimum).
    assert counts.split() == [str(len(ku.list_models())), "60,965,224", "8,062,504"]
    assert imported == "[]"


def test_list_weights_shows_every_tag(capsys):
    status, out, _ = _run(capsys, "list", "--weights", "--no-params")
    assert status == 0
    rows = {row.split()[0]: row.split() for row in out.splitlines()[1:]}
    assert sorted(rows) == ku.list_models(pretrained=True)
    assert rows["densenet121.tv_in1k"][1:] == ["apache-2.0", "74.75@224", "224x224", "timm"]
    assert rows["resnet50.fb_swsl_ig1b_ft_in1k"][1] == "cc-by-nc-4.0"
    status, out, _ = _run(capsys, "list", "dpn68b", "--weights")
    assert [row.split()[0] for row in out.splitlines()[1:]] == ["dpn68b.mx_in1k", "dpn68b.ra_in1k"]


@pytest.mark.slow
def test_summary(capsys):
    status, out, _ = _run(capsys, "summary", "densenet_bc100_k12", "--input-size", "16")
    assert status == 0
    assert "predictions (Dense)" in out and "conv1_conv (Conv2D)" in out  # the layers
    trainable = reference_counts.TRAINABLE["densenet_bc100_k12"]
    assert f"{trainable:,} trainable" in out.splitlines()[-1]


@pytest.mark.slow
def test_train_and_export(tmp_path, capsys):
    run = tmp_path / "run"
    status, out, err = _run(
        capsys, "train", "densenet40_k12", "--dataset", "digits", "--epochs", "1",
        "--batch-size", "128", "--output", str(run), "--learning-rate", "0.01", *TINY_ARGS,
    )
    assert status == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and metrics["learning_rate"] == 0.01
    assert metrics["model_kwargs"] == {"depth": 10, "growth_rate": 4}
    assert "val_accuracy" in out  # the summary line after training

    exported = tmp_path / "saved_model"
    status, out, err = _run(capsys, "export", str(run / "model.keras"), "--output", str(exported))
    assert status == 0, err
    assert "Verified: max abs difference" in out
    assert (exported / "saved_model.pb").is_file()

    # A second export to the same path is refused unless --overwrite.
    status, _, err = _run(capsys, "export", str(run / "model.keras"), "--output", str(exported))
    assert status == 2 and "--output:" in err and "--overwrite" in err
    status, _, err = _run(
        capsys, "export", str(run / "model.keras"), "--output", str(exported), "--overwrite"
    )
    assert status == 0, err


@pytest.mark.slow
def test_convert(tmp_path, capsys):
    """A checkpoint in timm's names (written here from a Keras model) converts to weights."""
    from safetensors.numpy import save_file

    source = ku.create_model("densenet121", weights=None, include_top=False, input_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    torch_names = {"kernel": "weight", "gamma": "weight", "beta": "bias",
                   "moving_mean": "running_mean", "moving_variance": "running_var"}
    state = {}
    for layer in source.layers:
        for variable in layer.weights:
            value = rng.normal(0, 1, variable.shape).astype("float32")
            if variable.name == "moving_variance":
                value = np.abs(value) + 0.5
            variable.assign(value)
            if variable.name == "kernel":
                value = np.ascontiguousarray(value.transpose(3, 2, 0, 1))
            state[f"{densenet_names.torch_module(layer.name)}.{torch_names[variable.name]}"] = value
    checkpoint = tmp_path / "model.safetensors"
    save_file(state, str(checkpoint))
    output = tmp_path / "densenet121.weights.h5"

    status, out, err = _run(
        capsys, "convert", "densenet121", str(checkpoint), str(output),
        "--model-arg", "include_top=False", "--model-arg", "input_shape=(32, 32, 3)",
    )
    assert status == 0, err
    assert out.strip() == f"Wrote {output}"
    converted = ku.create_model(
        "densenet121", weights=str(output), include_top=False, input_shape=(32, 32, 3)
    )
    for a, b in zip(source.weights, converted.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    status, _, err = _run(capsys, "convert", "densenet169", str(checkpoint), str(tmp_path / "x.weights.h5"),
                          "--model-arg", "include_top=False")
    assert status == 2 and "missing from the checkpoint" in err
    assert not (tmp_path / "x.weights.h5").exists()


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["summary", "densenet12"], 2, "MODEL: unknown model 'densenet12'"),
        (["train", "densenet40_k12", "--dataset", "digits", "--epochs", "0", "--batch-size", "8",
          "--output", "{tmp}/run"], 2, "--epochs: expected a positive integer, got 0"),
        (["train", "densenet40_k12", "--dataset", "cifar_10", "--epochs", "1", "--batch-size", "8",
          "--output", "{tmp}/run"], 2, "--dataset: unknown dataset 'cifar_10'. Did you mean 'cifar10'"),
        (["train", "densenet40_k12", "--dataset", "digits", "--epochs", "1", "--batch-size", "8",
          "--output", "{tmp}/run", "--model-arg", "compression=1.5"], 2, "compression"),
        (["train", "densenet40_k12", "--dataset", "digits", "--epochs", "1", "--batch-size", "8",
          "--output", "{tmp}/run", "--model-arg", "depth=10", "--model-arg", "depth=16"], 2,
         "--model-arg: 'depth' is given twice"),
        (["export", "{tmp}/missing.keras", "--output", "{tmp}/out"], 2, "MODEL_FILE: no such file"),
        (["export", "{tmp}/missing.keras", "--output", "{tmp}/out", "--format", "coreml"], 2,
         "--format: expected one of 'saved_model', 'tflite', 'onnx'"),
        (["export", "{tmp}/missing.keras", "--output", "{tmp}/out.tflite", "--format", "onnx"], 2,
         "--output: a onnx export is a file ending in '.onnx'"),
        (["convert", "densenet121", "{tmp}/missing.safetensors", "{tmp}/out.weights.h5"], 2,
         "CHECKPOINT: no such file"),
        (["list", "nosuchnet*"], 1, "PATTERN: no registered model matches 'nosuchnet*'"),
    ],
)
@pytest.mark.slow
def test_errors_name_the_argument(argv, status, message, tmp_path, capsys):
    argv = [part.replace("{tmp}", str(tmp_path)) for part in argv]
    got, out, err = _run(capsys, *argv)
    assert got == status
    assert message in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_bad_model_arg_syntax(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["summary", "densenet121", "--model-arg", "no_equals_sign"])
    assert exit_info.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_summary_model_arg_reaches_the_builder(capsys):
    status, out, _ = _run(capsys, "summary", "densenet40_k12", *TINY_ARGS, "--input-size", "8")
    assert status == 0
    model = ku.create_model("densenet40_k12", weights=None, depth=10, growth_rate=4, input_shape=(8, 8, 3))
    assert f"{model.count_params():,} total" in out
    keras.backend.clear_session()


def test_train_flags_are_generated_from_the_recipe_overrides():
    from keras_ultradeep.training.recipes import OVERRIDES

    args = vars(cli.build_parser().parse_args(["train", "densenet40_k12", "--output", "x"]))
    assert {o.name for o in OVERRIDES} <= set(args)
    assert all(args[o.name] is None for o in OVERRIDES)  # None: the recipe's value
    args = cli.build_parser().parse_args(
        ["train", "m", "--output", "x", "--no-nesterov", "--milestones", "2,4", "--train-split", "a"]
    )
    assert (args.nesterov, args.milestones, args.train_split) == (False, [2.0, 4.0], "a")
