"""Regenerates the parts of README.md that the registry knows: the model table
(between ``<!-- models:start -->`` and ``<!-- models:end -->``) and the package
layout (between ``<!-- layout:start -->`` and ``<!-- layout:end -->``)::

    python docs/scripts/readme.py           # rewrites README.md
    python docs/scripts/readme.py --check   # exits 1 when README.md is stale

tests/test_zoo.py runs the check, so a new family cannot be left out.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PACKAGE = ROOT / "keras_ultradeep"

# What each top-level part of the package is for (models/ and layers/ list their files).
PARTS = {
    "checks.py": "argument checks, one wording per rule (the ground floor: imports nothing of ours)",
    "files.py": "the one atomic-write helper",
    "registry.py": "register / list_models / create_model; builder names resolve to registry names",
    "contract.py": "the keras.applications contract: validation, input shapes, head, weights",
    "weights/": "the table of <model>.<tag>, verified downloads (huggingface_hub), cached conversions",
    "convert/": "timm/torchvision checkpoint mappings, one module per family",
    "models/": "one file per family, and the blocks and weight copying they share",
    "layers/": "custom layers",
    "features.py": "stage outputs as a dict (feature extraction)",
    "stats.py": "multiply-accumulates and parameter counts of a model",
    "zoo.py": "the model zoo table (zoo.json) that `keras-ultradeep list` serves",
    "training/": "recipes, datasets, settings, the run folder, callbacks, build, and the fit loop with resume",
    "tuner.py": "KerasTuner search spaces",
    "export.py": "SavedModel export with a reload check",
    "predict.py": "classifying image files (a trained .keras file or a pretrained tag)",
    "saving.py": "what a saved model.keras needs to load anywhere (registration, class names)",
    "bench.py": "throughput / peak memory / build time against keras.applications or timm",
    "cli/": "the command line, one module per command group",
    "analysis/": "the papers' analyses: lesion study, path lengths, feature reuse, fractal columns",
}


def _wrapped(names, indent, width=100):
    lines, line = [], indent
    for name in names:
        if len(line) + len(name) + 2 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += name + ", "
    lines.append(line.rstrip(", "))
    return lines


def models_table():
    """One row per models module: its registry families and names."""
    sys.path.insert(0, str(ROOT))
    from keras_ultradeep import registry

    modules = {}
    for name in registry.list_models():
        entry = registry.model_entry(name)
        module = entry.builder.__module__.rsplit(".", 1)[-1]
        families, names = modules.setdefault(module, ({}, []))
        families.setdefault(entry.family, f"{entry.default_size}x{entry.default_size}")
        names.append(name)
    lines = ["| module | families (default input) | registry names |", "|---|---|---|"]
    for module in sorted(modules):
        families, names = modules[module]
        fams = ", ".join(f"{family} ({size})" for family, size in families.items())
        lines.append(f"| `models/{module}.py` | {fams} | {', '.join(names)} |")
    return "\n".join(lines)


def layout():
    """The package tree, with every file of models/ and layers/."""
    lines = ["```", "keras_ultradeep/"]
    listed = set()
    for part, what in PARTS.items():
        path = PACKAGE / part
        if not path.exists():
            continue
        listed.add(part)
        lines.append(f"  {part:<13} {what}")
        if part in ("models/", "layers/"):
            files = [f.name for f in sorted(path.glob("*.py")) if f.name != "__init__.py"]
            lines += _wrapped(files, " " * 16)
    rest = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in PACKAGE.iterdir()
        if not p.name.startswith(("_", ".")) and (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    )
    for part in rest:
        if part not in listed:
            lines.append(f"  {part}")
    lines += ["weights/        manifest.json, timm_tags.json (generated from timm) and the maintainer scripts", "```"]
    return "\n".join(lines)


def render(text):
    for marker, body in (("models", models_table()), ("layout", layout())):
        pattern = re.compile(rf"(<!-- {marker}:start -->\n)(?:.*?\n)?(<!-- {marker}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md: no <!-- {marker}:start --> ... <!-- {marker}:end --> markers")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when README.md is stale")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        if new != text:
            print("README.md is stale: run `python docs/scripts/readme.py`")
            return 1
        return 0
    if new != text:
        sys.path.insert(0, str(ROOT))
        from keras_ultradeep import files

        files.write_text(README, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
