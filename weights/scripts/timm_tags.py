"""Regenerates ``weights/timm_tags.json``: every timm tag of a registered architecture.

    python weights/scripts/timm_tags.py          # rewrites weights/timm_tags.json
    python weights/scripts/timm_tags.py --check  # exits 1 if the file is stale

Reads the installed timm's registry (``timm.list_pretrained``,
``get_pretrained_cfg``; no network), keeps the tags whose architecture
keras_ultradeep registers under the same name, except those that
``manifest.json``'s ``timm.excluded`` leaves out with a reason, and adds timm's
ImageNet top-1 from ``weights/timm_results.json``. A test compares the
committed file with :func:`generate` whenever timm is importable.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent
OUTPUT = DATA / "timm_tags.json"
# timm's default cfg fields that a tag row keeps (timm's spelling).
_FIELDS = ("license", "origin_url", "num_classes", "crop_pct", "test_crop_pct", "crop_mode", "interpolation")


def _import_timm():
    # torchvision's PyPI wheel fails to register its operators beside the CPU
    # build of torch; timm needs none of them (the same stub as tests/conftest.py).
    for module in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(module, types.ModuleType(module))
    import timm

    return timm


def _channels_last(size):
    return None if size is None else [int(size[1]), int(size[2]), int(size[0])]


def generate(registered=None):
    """The tag table as a JSON-ready dict."""
    timm = _import_timm()
    from timm.models import get_arch_pretrained_cfgs, get_pretrained_cfg

    if registered is None:
        import keras_ultradeep

        registered = keras_ultradeep.list_models()
    manifest = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
    excluded = manifest["timm"]["excluded"]
    top1 = json.loads((DATA / "timm_results.json").read_text(encoding="utf-8"))["top1"]
    pretrained = set(timm.list_pretrained())
    rows = []
    for arch in sorted(set(registered) & {name.split(".")[0] for name in pretrained}):
        default = get_pretrained_cfg(arch).tag
        for name, cfg in get_arch_pretrained_cfgs(arch).items():
            if name not in pretrained or name in excluded:
                continue
            tag, cfg = cfg.tag, cfg.to_dict()
            row = {"arch": arch, "tag": tag, "default": tag == default}
            row["hf_hub_id"] = cfg.get("hf_hub_id") or f"timm/{name}"
            row["filename"] = cfg.get("hf_hub_filename") or "model.safetensors"
            row.update({field: cfg.get(field) for field in _FIELDS})
            row["input_size"] = _channels_last(cfg["input_size"])
            row["test_input_size"] = _channels_last(cfg.get("test_input_size"))
            row["mean"] = [float(v) for v in cfg["mean"]]
            row["std"] = [float(v) for v in cfg["std"]]
            row["top1"] = top1.get(name)
            rows.append(row)
    return {"timm_version": timm.__version__, "tags": rows}


def render(table):
    return json.dumps(table, indent=1) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if timm_tags.json is stale")
    args = parser.parse_args(argv)
    text = render(generate())
    if args.check:
        stale = OUTPUT.read_text(encoding="utf-8") != text
        print(f"{OUTPUT}: {'stale' if stale else 'up to date'}")
        return 1 if stale else 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(json.loads(text)['tags'])} tags)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
