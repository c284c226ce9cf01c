"""The bench command: figures from worker processes, references, JSON, errors.

Only that the figures exist and are sane is asserted here; no timing is.
"""

import json

import pytest

from keras_ultradeep import bench, cli

TINY = ["--model-arg", "depth=10", "--model-arg", "growth_rate=4"]


def _run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow
def test_train_json(capsys):
    status, out, err = _run(
        capsys, "bench", "densenet40_k12", *TINY, "--mode", "train", "--batch-size", "4",
        "--steps", "2", "--warmup", "1", "--json",
    )
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["model"] == "densenet40_k12" and result["mode"] == "train"
    assert result["input_size"] == 32 and result["model_kwargs"] == {"depth": 10, "growth_rate": 4}
    assert result["images_per_sec"] > 0 and result["build_seconds"] > 0
    assert result["peak_memory_mb"] > 100  # TensorFlow alone takes more
    assert "compare" not in result
    assert "keras_ultradeep densenet40_k12" in out


@pytest.mark.slow
def test_memory_efficient_flag(capsys):
    status, out, err = _run(
        capsys, "bench", "densenet_bc100_k12", "--model-arg", "depth=16", "--model-arg", "growth_rate=4",
        "--memory-efficient", "--mode", "train", "--batch-size", "4", "--steps", "1", "--warmup", "1",
        "--input-size", "8", "--json",
    )
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["model_kwargs"] == {"depth": 16, "growth_rate": 4, "memory_efficient": True}
    assert result["images_per_sec"] > 0 and result["peak_memory_mb"] > 100
    assert "memory-efficient" in out


@pytest.mark.slow
def test_build_mode_has_no_throughput():
    result = bench.benchmark("densenet40_k12", mode="build", model_kwargs={"depth": 10}, steps=1)
    assert result["images_per_sec"] is None and result["build_seconds"] > 0


@pytest.mark.slow
def test_compare_keras(capsys):
    status, out, err = _run(
        capsys, "bench", "densenet121", "--mode", "infer", "--batch-size", "2", "--steps", "1",
        "--warmup", "1", "--input-size", "32", "--compare", "keras", "--json",
    )
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    reference = result["compare"]
    assert reference["name"] == "keras:DenseNet121"
    assert reference["images_per_sec"] > 0 and reference["peak_memory_mb"] > 100
    ratio = reference["ratio"]["images_per_sec"]
    assert ratio == pytest.approx(result["images_per_sec"] / reference["images_per_sec"])
    assert "ratio (ours / reference)" in out


@pytest.mark.torch
@pytest.mark.slow
def test_compare_timm():
    result = bench.benchmark("resnet18", mode="train", batch_size=2, steps=1, warmup=1, input_size=32,
                             compare="timm")
    assert result["compare"]["name"] == "timm:resnet18"
    assert result["compare"]["images_per_sec"] > 0


@pytest.mark.torch
@pytest.mark.slow
def test_backends_each_in_its_worker(capsys):
    """One worker process per backend; each reports its own backend and what "auto" became."""
    status, out, err = _run(
        capsys, "bench", "densenet40_k12", *TINY, "--input-size", "8", "--mode", "infer", "--batch-size", "2",
        "--steps", "1", "--warmup", "1", "--backend", "jax,torch", "--backend", "tensorflow", "--json",
    )
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert list(result["backends"]) == ["jax", "torch", "tensorflow"]
    assert result["backend"] == "jax" and result["images_per_sec"] == result["backends"]["jax"]["images_per_sec"]
    # Keras' defaults: XLA on JAX, eager PyTorch, no XLA on a CPU-only TensorFlow.
    assert [figures["jit_compile"] for figures in result["backends"].values()] == [True, False, False]
    assert all(figures["images_per_sec"] > 0 for figures in result["backends"].values())
    assert "keras_ultradeep densenet40_k12 (jax, XLA)" in out and "(torch)" in out


@pytest.mark.slow
def test_jit_compile_flag_reaches_the_worker(capsys):
    status, out, err = _run(
        capsys, "bench", "densenet40_k12", *TINY, "--input-size", "8", "--mode", "infer", "--batch-size", "2",
        "--steps", "1", "--warmup", "0", "--jit-compile", "--backend", "tensorflow", "--json",
    )
    assert status == 0, err
    assert json.loads(out.strip().splitlines()[-1])["backends"]["tensorflow"]["jit_compile"] is True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["densenet40_k12", "--compare", "keras"], "--compare: keras.applications has no densenet40_k12"),
        (["resnet50_keras", "--compare", "timm"], "--compare: resnet50_keras is not one of timm's models"),
        (["densenet121", "--batch-size", "0"], "--batch-size: expected a positive integer, got 0"),
        (["densenet121", "--input-size", "4"], "--input-size: densenet121 needs at least 32, got 4"),
        # A builder's name is the registry name it stands for.
        (["DenseNet121", "--input-size", "4"], "--input-size: densenet121 needs at least 32, got 4"),
        (["ResNet50", "--compare", "timm"], "--compare: resnet50_keras is not one of timm's models"),
        (["densenet121", "--warmup", "-1"], "--warmup: expected an integer >= 0"),
        (["densenet12"], "MODEL: unknown model 'densenet12'"),
        (["resnet18", "--memory-efficient"], "--memory-efficient: resnet18 has no memory-efficient form"),
        (["resnet18", "--backend", "mxnet"], "--backend: expected one of 'tensorflow', 'jax', 'torch', got 'mxnet'"),
        (["resnet18", "--backend", "jax,jax"], "--backend: ['jax', 'jax'] names a backend twice"),
    ],
)
def test_errors(capsys, argv, message):
    status, _, err = _run(capsys, "bench", *argv)
    assert status == 2
    assert message in err, err
