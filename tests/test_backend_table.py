"""benchmarks/backend_table.py and benchmarks/gpu.sh: the plan of the per-backend
table, and a dry run (tiny sizes) that writes the JSON and Markdown report.
No timing is asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import backend_table  # noqa: E402

pytestmark = pytest.mark.slow  # every test here runs models end to end (seconds to minutes)


def test_cpu_plan_covers_every_row_backend_and_jit_setting():
    calls = backend_table.plan("cpu")
    seen = {(c["row"], c["configuration"]): c["kwargs"] for c in calls}
    assert len(seen) == len(calls) == 2 * len(backend_table.ROWS)
    for (row, configuration), kwargs in seen.items():
        jit = configuration == "jit"
        assert kwargs["backend"] == (["tensorflow", "torch"] if jit else ["tensorflow", "jax", "torch"])
        assert kwargs["jit_compile"] is (True if jit else None)
        assert not kwargs["mixed_precision"] and kwargs["rounds"] == 2
        if row.startswith("densenet_bc250"):
            assert (kwargs["batch_size"], kwargs["input_size"], kwargs["compare"]) == (32, 32, None)
            assert kwargs["memory_efficient"] is ("memory_efficient" in row)
        else:
            assert (kwargs["batch_size"], kwargs["input_size"], kwargs["compare"]) == (8, 224, "timm")


def test_gpu_plan_is_amp_and_xla_with_train_rows_first():
    calls = backend_table.plan("gpu")
    assert all(c["kwargs"]["mixed_precision"] and c["kwargs"]["rounds"] == 1 for c in calls)
    trains = [c["row"].endswith("-train") for c in calls]
    assert trains == sorted(trains, reverse=True)
    xla = [c for c in calls if c["configuration"] == "amp+xla"]
    assert all(c["kwargs"]["jit_compile"] is True and c["kwargs"]["backend"] == ["tensorflow", "jax"] for c in xla)
    assert {c["kwargs"]["batch_size"] for c in calls} >= {64, 128}


@pytest.mark.torch
def test_gpu_script_dry_run_writes_the_report(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path / "report"), "--dry-run",
         "--only", "resnet50-infer", "--backends", "tensorflow", "torch"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "backends.json").read_text())
    assert report["device"] == "gpu" and report["dry_run"] and report["skipped"] == []
    lines = {(line["configuration"], line["backend"]): line for line in report["table"]}
    assert set(lines) == {("amp+xla", "tensorflow"), ("amp", "torch")}
    assert lines["amp+xla", "tensorflow"]["jit_compile"] is True and lines["amp", "torch"]["jit_compile"] is False
    for line in lines.values():
        # The eager PyTorch row is compared with the timm run of the same row.
        assert line["reference"]["name"] == "timm:resnet50"
        assert line["reference"]["ratio"] == pytest.approx(
            line["images_per_sec"] / line["reference"]["images_per_sec"])
    markdown = (tmp_path / "report" / "backends.md").read_text()
    assert "| resnet50-infer | amp+xla | tensorflow | yes |" in markdown
    assert "| resnet50-infer | amp | torch | no |" in markdown


def test_gpu_script_refuses_without_a_gpu(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no CUDA device visible to torch" in result.stderr
    assert not (tmp_path / "r").exists()


def test_a_failed_row_is_reported_and_the_run_goes_on(tmp_path, monkeypatch):
    """A worker killed for memory (exit -9) fails its row only: listed under
    ``failed`` (JSON and Markdown), the next rows measured, exit status 1."""
    calls = []

    def benchmark(**kwargs):
        calls.append(kwargs)
        if not kwargs["memory_efficient"]:
            raise RuntimeError("the ours benchmark of densenet_bc250_k24 on torch failed (exit -9):\n")
        return {"backends": {"torch": {"jit_compile": False, "images_per_sec": 2.5, "peak_memory_mb": 900.0}}}

    monkeypatch.setattr(backend_table.bench, "benchmark", benchmark)
    status = backend_table.main(["--output", str(tmp_path), "--only", "densenet_bc250",
                                 "--backends", "torch", "--configurations", "default"])
    assert status == 1 and len(calls) == 2
    report = json.loads((tmp_path / "backends.json").read_text())
    assert report["failed"] == [{"row": "densenet_bc250-train / default",
                                 "error": "the ours benchmark of densenet_bc250_k24 on torch failed (exit -9):"}]
    assert [line["row"] for line in report["table"]] == ["densenet_bc250-memory_efficient-train"]
    markdown = (tmp_path / "backends.md").read_text()
    assert "Failed: densenet_bc250-train / default: the ours benchmark" in markdown
    assert "| densenet_bc250-memory_efficient-train | default | torch | no | 2.50 | 900 | - | - |" in markdown
