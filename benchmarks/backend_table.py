"""The per-backend table of docs/benchmarks.md: our models on every Keras
backend, with and without XLA / torch.compile, against timm.

Each row is one ``keras_ultradeep.bench.benchmark`` call: ours on every
backend of the configuration (one worker process each) and timm's model,
alternating round after round, so that every ratio is measured side by side.
Rows: DenseNet-121, ResNet-50 and ResNeXt-50 (32x4d), train and infer, and
DenseNet-BC-250 training naive and memory-efficient (peak memory against
throughput; no timm model, so its ratio is memory-efficient / naive).

    python benchmarks/backend_table.py --device cpu --output report      # this project's CPU table
    benchmarks/gpu.sh report                                             # the same on a CUDA GPU
    python benchmarks/backend_table.py --dry-run --output /tmp/r         # tiny sizes: the plumbing

``--device gpu`` uses a GPU's batch sizes, mixed precision (AMP for timm) and
XLA; ``--dry-run`` runs every configuration at 32x32, batch 2, one step
(``--only`` and ``--backends`` narrow it). Writes ``backends.json`` and
``backends.md`` into ``--output``. A row whose worker fails (one that runs
out of memory is killed: exit -9) is listed under ``failed`` and the run goes
on; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_ultradeep import bench  # noqa: E402
from keras_ultradeep.files import write_text  # noqa: E402

# (row name, model, mode, {device: (batch size, input size)}, memory_efficient)
ROWS = (
    ("densenet121-train", "densenet121", "train", {"cpu": (8, 224), "gpu": (64, 224)}, False),
    ("densenet121-infer", "densenet121", "infer", {"cpu": (8, 224), "gpu": (128, 224)}, False),
    ("resnet50-train", "resnet50", "train", {"cpu": (8, 224), "gpu": (128, 224)}, False),
    ("resnet50-infer", "resnet50", "infer", {"cpu": (8, 224), "gpu": (256, 224)}, False),
    ("resnext50-train", "resnext50_32x4d", "train", {"cpu": (8, 224), "gpu": (64, 224)}, False),
    ("resnext50-infer", "resnext50_32x4d", "infer", {"cpu": (8, 224), "gpu": (128, 224)}, False),
    ("densenet_bc250-train", "densenet_bc250_k24", "train", {"cpu": (32, 32), "gpu": (128, 32)}, False),
    ("densenet_bc250-memory_efficient-train", "densenet_bc250_k24", "train",
     {"cpu": (32, 32), "gpu": (128, 32)}, True),
)
# device -> (configuration label, jit_compile, backends it applies to, runs the
# reference). jit_compile None is each backend's default (XLA on JAX only);
# True is XLA on TensorFlow (JAX is XLA either way) and torch.compile on
# PyTorch. A configuration without the reference is compared with the row's
# first one (measured in the same row, just before).
CONFIGURATIONS = {
    "cpu": (
        ("default", None, ("tensorflow", "jax", "torch"), True),
        ("jit", True, ("tensorflow", "torch"), True),
    ),
    # AMP + XLA; PyTorch eager (torch.compile's minutes of compilation do not fit the 8 minutes).
    "gpu": (
        ("amp+xla", True, ("tensorflow", "jax"), True),
        ("amp", None, ("torch",), False),
    ),
}
# Rows first on a GPU (its run stops starting rows when --budget-minutes is spent).
GPU_ORDER = ("-train", "-infer")


def plan(device, *, dry_run=False, only=None, backends=None, configurations=None, overrides=None):
    """The benchmark calls, as keyword arguments of ``bench.benchmark`` plus a label."""
    calls = []
    rows = ROWS if device == "cpu" else sorted(ROWS, key=lambda r: not r[0].endswith(GPU_ORDER[0]))
    for row, model, mode, sizes, memory_efficient in rows:
        if only and not any(name in row for name in only):
            continue
        batch, side = (2, 32) if dry_run else sizes[device]
        for label, jit, applies, with_reference in CONFIGURATIONS[device]:
            if configurations and label not in configurations:
                continue
            chosen = [b for b in applies if backends is None or b in backends]
            if not chosen:
                continue
            reference = "timm" if model != "densenet_bc250_k24" and with_reference else None
            calls.append({
                "row": row, "configuration": label,
                "kwargs": dict(
                    model_name=model, mode=mode, batch_size=batch, input_size=side, jit_compile=jit,
                    memory_efficient=memory_efficient, backend=chosen,
                    mixed_precision=device == "gpu",
                    compare=reference,
                    steps=1 if dry_run else (5 if device == "cpu" else 10),
                    warmup=1 if dry_run else 2,
                    rounds=2 if device == "cpu" and not dry_run else 1,
                    model_kwargs={"depth": 10, "growth_rate": 4} if dry_run and model == "densenet_bc250_k24"
                    else None,
                ),
            })
    for call in calls:
        call["kwargs"].update(overrides or {})
    return calls


def _rows(report):
    """One line per (row, configuration, backend): figures and ratios."""
    references, naive = {}, {}
    for entry in report["results"]:
        result = entry["result"]
        if "compare" in result:
            references.setdefault(entry["row"], result["compare"])
        for backend, figures in result["backends"].items():
            if entry["row"].startswith("densenet_bc250-train"):
                naive[(entry["configuration"], backend)] = figures
    lines = []
    for entry in report["results"]:
        reference = references.get(entry["row"])
        for backend, figures in entry["result"]["backends"].items():
            line = {"row": entry["row"], "configuration": entry["configuration"], "backend": backend,
                    "jit_compile": figures["jit_compile"], "images_per_sec": figures["images_per_sec"],
                    "peak_memory_mb": figures["peak_memory_mb"], "reference": None}
            if reference:
                line["reference"] = {"name": reference["name"], "images_per_sec": reference["images_per_sec"],
                                     "peak_memory_mb": reference["peak_memory_mb"],
                                     "ratio": figures["images_per_sec"] / reference["images_per_sec"]}
            base = naive.get((entry["configuration"], backend))
            if "memory_efficient" in entry["row"] and base:
                line["naive"] = {"throughput_ratio": figures["images_per_sec"] / base["images_per_sec"],
                                 "peak_memory_lower": base["peak_memory_mb"] / figures["peak_memory_mb"]}
            lines.append(line)
    return lines


def _markdown(report):
    out = [
        f"Device: {report['device']} ({report['machine']}); started {report['started']}; "
        f"{report['seconds']:.0f} s in all; rows skipped for time: {', '.join(report['skipped']) or 'none'}.",
        *[f"Failed: {failure['row']}: {failure['error']}" for failure in report.get("failed", ())],
        "",
        "| row | configuration | backend | XLA / compile | images/s | peak MB | vs reference | reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for line in _rows(report):
        reference = line["reference"]
        if reference:
            versus = f"{reference['ratio']:.2f}x"
            named = f"{reference['name']} {reference['images_per_sec']:.2f} img/s, {reference['peak_memory_mb']:,.0f} MB"
        elif "naive" in line:
            versus = (f"{line['naive']['throughput_ratio']:.2f}x throughput, "
                      f"{line['naive']['peak_memory_lower']:.2f}x lower peak")
            named = "the naive DenseNet-BC-250, same backend"
        else:
            versus, named = "-", "-"
        out.append(
            f"| {line['row']} | {line['configuration']} | {line['backend']} | "
            f"{'yes' if line['jit_compile'] else 'no'} | {line['images_per_sec']:.2f} | "
            f"{line['peak_memory_mb']:,.0f} | {versus} | {named} |"
        )
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--output", required=True, help="folder for backends.json and backends.md")
    parser.add_argument("--dry-run", action="store_true", help="32x32, batch 2, one step: the plumbing only")
    parser.add_argument("--only", nargs="+", help="rows whose name contains one of these")
    parser.add_argument("--backends", nargs="+", choices=bench.BACKENDS)
    parser.add_argument("--configurations", nargs="+", help="configuration labels to run (default: all)")
    for option in ("steps", "warmup", "rounds"):
        parser.add_argument(f"--{option}", type=int, help=f"override the plan's {option}")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="start no row after this long (the GPU script: 7.5); skipped rows are listed")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("steps", "warmup", "rounds") if getattr(args, k) is not None}
    calls = plan(args.device, dry_run=args.dry_run, only=args.only, backends=args.backends,
                 configurations=args.configurations, overrides=overrides)
    if not calls:
        parser.error("--only/--backends: no row and backend left to measure")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    report = {"device": args.device, "machine": platform.processor() or platform.machine(),
              "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dry_run": args.dry_run,
              "results": [], "skipped": [], "failed": [], "seconds": 0.0}
    start = time.perf_counter()
    for call in calls:
        label = f"{call['row']} / {call['configuration']}"
        if args.budget_minutes is not None and time.perf_counter() - start > 60 * args.budget_minutes:
            report["skipped"].append(label)
            continue
        print(f"{label} on {', '.join(call['kwargs']['backend'])}", flush=True)
        try:
            result = bench.benchmark(**call["kwargs"])
        except RuntimeError as error:  # a worker that failed (out of memory: exit -9): noted, and on
            reason = str(error).splitlines()[0]
            print(f"{label}: {reason}", file=sys.stderr, flush=True)
            report["failed"].append({"row": label, "error": reason})
        else:
            report["results"].append({"row": call["row"], "configuration": call["configuration"],
                                      "result": result})
        report["seconds"] = time.perf_counter() - start
        report["table"] = _rows(report)
        # Written after every row: a run cut short keeps what it measured.
        write_text(output / "backends.json", json.dumps(report, indent=1))
        write_text(output / "backends.md", _markdown(report))
    write_text(output / "backends.json", json.dumps(report, indent=1))
    write_text(output / "backends.md", _markdown(report))
    print(f"Wrote {output / 'backends.json'} and {output / 'backends.md'}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
