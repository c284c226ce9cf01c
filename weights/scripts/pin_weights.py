"""Pins the sha256 and size of every timm tag's file in ``weights/manifest.json`` (needs the internet).

    python weights/scripts/pin_weights.py                 # every tag without a pin
    python weights/scripts/pin_weights.py --all           # re-read every pin (a changed one is reported)
    python weights/scripts/pin_weights.py 'resnet50.*'    # matching tags only

Asks the Hub (``HfApi.get_paths_info``: one request per repository, a few KB)
for the LFS sha256 and size of ``model.safetensors`` and writes them into the
manifest's ``timm.pins``; review the diff before committing. Nothing in the
tests needs this script or the internet.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pattern", nargs="?", default="*", help="a wildcard over <arch>.<tag>")
    parser.add_argument("--all", action="store_true", help="re-read pins that exist")
    args = parser.parse_args(argv)

    from huggingface_hub import HfApi

    from keras_ultradeep import weights

    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    pins = manifest["timm"].setdefault("pins", {})
    api, changed = HfApi(), 0
    for row in weights.rows():
        if row.source != "timm" or not fnmatch.fnmatchcase(row.name, args.pattern):
            continue
        spec = row.files["checkpoint"]
        key = f"{spec['hf_hub_id']}/{spec['filename']}"
        if key in pins and not args.all:
            continue
        (info,) = api.get_paths_info(spec["hf_hub_id"], [spec["filename"]])
        pin = {"sha256": info.lfs.sha256, "size": info.lfs.size}
        if pins.get(key) not in (None, pin):
            print(f"CHANGED {key}: {pins[key]} -> {pin}")
        if pins.get(key) != pin:
            pins[key], changed = pin, changed + 1
        print(f"{key}: {pin['sha256']} ({pin['size']:,} bytes)")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"{changed} pins written to {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
