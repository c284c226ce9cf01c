"""Writes the tag tables of ``docs/weights.md`` from the weights table.

    python docs/scripts/weights_table.py          # rewrites the generated part
    python docs/scripts/weights_table.py --check  # exits 1 if it is stale

The part between ``<!-- tags:start -->`` and ``<!-- tags:end -->`` is
generated from ``weights/timm_tags.json`` and ``weights/manifest.json`` (through
``keras_ultradeep.weights``); a test checks that it is current.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "weights.md"
START, END = "<!-- tags:start -->", "<!-- tags:end -->"


def _top1(row):
    return ", ".join(f"{value:.2f} @ {side}" for side, value in row.top1.items()) or "–"


def render():
    """The generated Markdown: one row per ``<arch>.<tag>``, grouped by architecture."""
    from keras_ultradeep import weights

    rows = weights.rows()
    default = {arch: weights.resolve(arch, "imagenet", warn=False).tag for arch in {r.arch for r in rows}}
    lines = [
        f"{len(rows)} pretrained checkpoints for {len({r.arch for r in rows})} registered models "
        f"({sum(r.source == 'timm' for r in rows)} timm tags, "
        f"{sum(r.source == 'keras-applications' for r in rows)} keras.applications files, "
        f"{sum(r.source == 'torchvision' for r in rows)} torchvision files). **bold** = what "
        '`weights="imagenet"` loads; *NC* = non-commercial licence (loads only when named, with a warning). '
        "Top-1: ImageNet-1k validation, timm's results (keras.io's and torchvision's for their files), "
        "at the input side given. Input: train (→ test) size, interpolation, crop; normalization "
        "(`in` ImageNet mean/std, `0.5` mean = std = 0.5, `dpn` MXNet's, `caffe` BGR mean subtraction).",
        "",
        "| model | tag | source | licence | top-1 | input | normalization |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (r.arch, r.tag)):
        config = row.data_config()
        norm = next(
            (mode for mode, preset in weights.PREPROCESSING.items()
             if tuple(round(v, 4) for v in preset["mean"]) == tuple(round(v, 4) for v in config["mean"])
             and preset["channel_order"] == config["channel_order"]),
            "custom",
        )
        norm = {"torch": "in", "tf": "0.5"}.get(norm, norm)
        size = f"{config['input_size'][0]}"
        if config["test_input_size"] != config["input_size"]:
            size += f"→{config['test_input_size'][0]}"
        tag = f"**{row.tag}**" if default[row.arch] == row.tag else row.tag
        licence = row.licence.split(" ")[0] + (" *NC*" if row.non_commercial else "")
        lines.append(
            f"| `{row.arch}` | {tag} | {row.source} | {licence} | {_top1(row)} "
            f"| {size}, {config['interpolation']}, {config['crop_pct']:g} | {norm} |"
        )
    excluded = weights.excluded()
    if excluded:
        lines += ["", "Left out: " + "; ".join(f"`{name}` ({why})" for name, why in sorted(excluded.items())) + "."]
    return "\n".join(lines) + "\n"


def updated(text):
    head, _, rest = text.partition(START + "\n")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{render()}{END}{tail}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = PAGE.read_text(encoding="utf-8")
    new = updated(text)
    if args.check:
        print(f"{PAGE}: {'stale' if new != text else 'up to date'}")
        return int(new != text)
    PAGE.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
