"""``keras-ultradeep analyze``: the JSON schema of each analysis, the plot, and bad inputs."""

from __future__ import annotations

import json

import pytest

import keras_ultradeep as ku
from keras_ultradeep import cli

pytestmark = pytest.mark.slow  # every test here runs models end to end (seconds to minutes)

pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn (the dev extra installs it)")

DIGITS = dict(input_shape=(8, 8, 1), classes=10)


def _run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analyze")
    models = {
        "resnet": ku.ResNetCIFAR(depth=8, **DIGITS),
        "plain": ku.PlainCIFAR(depth=8, **DIGITS),
        "densenet": ku.DenseNetCIFAR(depth=10, growth_rate=4, bottleneck=False, compression=1.0, **DIGITS),
        "fractal": ku.fractalnet.FractalNet(columns=2, blocks=2, filters=(8, 8), **DIGITS),
    }
    paths = {}
    for key, model in models.items():
        paths[key] = folder / f"{key}.keras"
        model.save(paths[key])
    return paths


def _json(out):
    return json.loads(out.strip().splitlines()[-1])


def test_analyze_lesion_json_and_plot(capsys, saved, tmp_path):
    figure = tmp_path / "lesion.png"
    status, out, _ = _run(
        capsys, "analyze", "lesion", saved["resnet"], "--dataset", "digits", "--draws", "2",
        "--max-examples", "64", "--json", "--plot", figure,
    )
    assert status == 0
    result = _json(out)
    assert set(result) == {
        "analysis", "kind", "model", "examples", "classes", "baseline", "blocks", "single", "random",
        "model_file", "dataset",
    }
    assert (result["analysis"], result["kind"], result["examples"], result["classes"]) == ("lesion", "residual", 64, 10)
    assert len(result["blocks"]) == 3 and [e["index"] for e in result["single"]] == [0, 1, 2]
    assert set(result["single"][0]) == {"index", "block", "accuracy"}
    assert [e["removed"] for e in result["random"]] == [1, 2, 3]
    assert set(result["random"][0]) == {"removed", "accuracies", "mean", "std"}
    assert all(0 <= e["accuracy"] <= 1 for e in result["single"])
    assert figure.read_bytes()[:4] == b"\x89PNG"

    # A plain network: --kind auto falls back to its chain of layers.
    status, out, _ = _run(capsys, "analyze", "lesion", saved["plain"], "--dataset", "digits", "--draws", "1",
                          "--max-removed", "1", "--max-examples", "32", "--json")
    assert status == 0 and _json(out)["kind"] == "plain" and len(_json(out)["single"]) == 4


def test_analyze_paths_reuse_columns_json(capsys, saved):
    status, out, _ = _run(capsys, "analyze", "paths", saved["resnet"], "--dataset", "digits", "--samples", "1",
                          "--batch-size", "16", "--json")
    assert status == 0
    result = _json(out)
    assert result["path_counts"] == [1, 3, 3, 1] and len(result["gradient_magnitude"]) == 4
    assert {"effective_range", "effective_length", "total_gradient", "gradient_fractions", "path_range"} <= set(result)

    status, out, _ = _run(capsys, "analyze", "reuse", saved["densenet"], "--json")
    assert status == 0
    result = _json(out)
    assert len(result["blocks"]) == 3 and set(result["blocks"][0]) == {"sources", "targets", "weights"}
    assert result["dataset"] is None

    status, out, _ = _run(capsys, "analyze", "columns", saved["fractal"], "--dataset", "digits",
                          "--max-examples", "32", "--json")
    assert status == 0
    result = _json(out)
    assert [c["column"] for c in result["columns"]] == [0, 1] and 0 <= result["whole"] <= 1
    assert "column 1 (4 convs)" in out


def test_analyze_bad_inputs(capsys, saved, tmp_path):
    figure = tmp_path / "out.jpg"
    cases = [
        (("lesion", tmp_path / "missing.keras", "--dataset", "digits"), "MODEL_FILE: no such file"),
        (("lesion", saved["resnet"], "--dataset", "digits", "--plot", figure), "--plot: expected a .png file"),
        (("lesion", saved["resnet"]), "--dataset: the lesion analysis needs a dataset"),
        (("lesion", saved["plain"], "--dataset", "digits", "--kind", "residual"), "has no residual blocks"),
        (("paths", saved["plain"], "--dataset", "digits"), "has no residual blocks"),
        (("reuse", saved["resnet"]), "has no dense blocks"),
        (("columns", saved["resnet"], "--dataset", "digits"), "has no FractalNet units"),
        (("lesion", saved["resnet"], "--dataset", "digits", "--draws", "0"), "--draws: expected a positive integer"),
    ]
    for argv, message in cases:
        status, _, err = _run(capsys, "analyze", *argv)
        assert status == 2, argv
        assert message in err, (argv, err)
    assert not figure.exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["analyze", "speed", str(saved["resnet"])])
    assert exit_info.value.code == 2 and "invalid choice: 'speed'" in capsys.readouterr().err
