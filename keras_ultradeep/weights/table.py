"""The weights table: every pretrained ``<arch>.<tag>`` and what is known about it.

Two files, both shipped as ``keras_ultradeep._weights`` (``weights/`` in the
repository), make the table:

* ``timm_tags.json``, generated from timm's registry by
  ``weights/scripts/timm_tags.py``: one row per timm tag of an architecture
  that keras_ultradeep registers under timm's name (Hub repository, licence,
  data config, top-1);
* ``manifest.json``, kept by hand: keras.applications' files (tag
  ``imagenet``), torchvision's GoogLeNet and AlexNet, and the decisions about
  timm's tags (pins, the builder options a tag sets, excluded tags).

Ground floor: reads JSON, imports nothing of ours.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import warnings
from pathlib import Path

__all__ = [
    "Weights",
    "KERAS_WEIGHT_SUFFIXES",
    "CHECKPOINT_SUFFIXES",
    "PREPROCESSING",
    "rows",
    "index",
    "tags",
    "find",
    "resolve",
    "unknown_weights_error",
    "list_pretrained",
    "excluded",
    "pin",
]

KERAS_WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_NON_COMMERCIAL = "cc-by-nc"
_IMAGENET = "imagenet"

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# keras.applications' preprocess_input modes (and DPN's MXNet one) as data
# configs on the [0, 1] pixel scale, timm's convention: x01 = pixels / 255,
# then (x01 - mean) / std, channels in ``channel_order``.
PREPROCESSING = {
    "torch": {"mean": _IMAGENET_MEAN, "std": _IMAGENET_STD, "channel_order": "RGB"},
    "tf": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "channel_order": "RGB"},
    # Caffe: BGR, the ImageNet mean subtracted from 0..255 pixels, no scaling.
    "caffe": {
        "mean": (123.68 / 255, 116.779 / 255, 103.939 / 255),
        "std": (1 / 255, 1 / 255, 1 / 255),
        "channel_order": "BGR",
    },
    # MXNet DPN: (pixels - (124, 117, 104)) * 0.0167.
    "dpn": {
        "mean": (124 / 255, 117 / 255, 104 / 255),
        "std": (1 / (0.0167 * 255),) * 3,
        "channel_order": "RGB",
    },
}


@dataclasses.dataclass(frozen=True)
class Weights:
    """One pretrained checkpoint: ``<arch>.<tag>``."""

    arch: str
    tag: str
    source: str  # "timm", "torchvision" or "keras-applications"
    format: str  # "safetensors", "pth" or "keras-h5"
    licence: str
    classes: int
    top1: dict  # {"224": 80.4, ...}: ImageNet-1k val top-1 by input side
    data: dict  # the data config (see data_config)
    files: dict  # keras-h5: {"top": spec, "notop": spec}; else {"checkpoint": spec}
    architecture: dict = dataclasses.field(default_factory=dict)
    default: bool = False  # timm's default tag of the architecture
    notes: str | None = None

    @property
    def name(self):
        return f"{self.arch}.{self.tag}"

    @property
    def non_commercial(self):
        return self.licence.lower().startswith(_NON_COMMERCIAL)

    @property
    def hub_repo(self):
        """``timm/<arch>.<tag>`` for a timm tag, else ``None``."""
        return self.files["checkpoint"].get("hf_hub_id") if "checkpoint" in self.files else None

    def data_config(self):
        """timm's data config, channels-last: a new dict each call."""
        return {key: (tuple(v) if isinstance(v, list) else v) for key, v in self.data.items()}


def _data_dir():
    try:
        from importlib import resources

        folder = resources.files("keras_ultradeep._weights")
        if (folder / "manifest.json").is_file():
            return Path(str(folder))
    except ModuleNotFoundError:
        pass
    # A source checkout that is not installed.
    return Path(__file__).resolve().parent.parent.parent / "weights"


@functools.lru_cache(maxsize=None)
def _read(name):
    with open(_data_dir() / name, encoding="utf-8") as f:
        return json.load(f)


def _size(value):
    return None if value is None else tuple(int(v) for v in value)


def _manifest_row(item):
    p = item["preprocessing"]
    preset = PREPROCESSING[p["mode"]]
    size = _size(p["input_size"])
    data = {
        "input_size": size,
        "test_input_size": size,
        "interpolation": p["interpolation"],
        "crop_pct": float(p["crop_pct"]),
        "crop_mode": "center",
        "mean": tuple(preset["mean"]),
        "std": tuple(preset["std"]),
        "channel_order": preset["channel_order"],
    }
    return Weights(
        arch=item["model"],
        tag=item["tag"],
        source=item["source"],
        format=item["format"],
        licence=item["licence"],
        classes=int(item["classes"]),
        top1={str(size[0]): float(item["accuracy"]["top1"])},
        data=data,
        files=item["files"],
        architecture=dict(item.get("architecture", {})),
        default=item["tag"] == _IMAGENET,
        notes=item.get("notes"),
    )


def _timm_row(item, decisions):
    name = f"{item['arch']}.{item['tag']}"
    size = _size(item["input_size"])
    data = {
        "input_size": size,
        "test_input_size": _size(item["test_input_size"]) or size,
        "interpolation": item["interpolation"],
        "crop_pct": float(item["crop_pct"]),
        "crop_mode": item["crop_mode"] or "center",
        "mean": tuple(item["mean"]),
        "std": tuple(item["std"]),
        "channel_order": "RGB",
    }
    spec = {"hf_hub_id": item["hf_hub_id"], "filename": item["filename"]}
    spec.update(decisions.get("pins", {}).get(f"{item['hf_hub_id']}/{item['filename']}", {}))
    return Weights(
        arch=item["arch"],
        tag=item["tag"],
        source="timm",
        format="safetensors",
        licence=item["license"] or "unknown",
        classes=int(item["num_classes"]),
        top1=dict(item["top1"] or {}),
        data=data,
        files={"checkpoint": spec},
        architecture=dict(decisions.get("architecture", {}).get(item["arch"], {})),
        default=bool(item["default"]),
        notes=f"timm {name} (timm's results)",
    )


@functools.lru_cache(maxsize=None)
def rows():
    """Every pretrained checkpoint, keras.applications' and torchvision's first."""
    manifest = _read("manifest.json")
    decisions = manifest.get("timm", {})
    table = [_manifest_row(item) for item in manifest["weights"]]
    table += [_timm_row(item, decisions) for item in _read("timm_tags.json")["tags"]]
    return tuple(table)


@functools.lru_cache(maxsize=None)
def index():
    """``{arch: {tag: row}}``, built once."""
    by_arch = {}
    for row in rows():
        by_arch.setdefault(row.arch, {})[row.tag] = row
    return by_arch


def tags(arch):
    """The tags of ``arch`` (``()`` when it has none)."""
    return tuple(index().get(arch, {}))


def find(arch, tag):
    """The row ``<arch>.<tag>``, or ``None``."""
    return index().get(arch, {}).get(tag)


def excluded():
    """``{"<arch>.<tag>": reason}``: timm tags of registered architectures left out."""
    return dict(_read("manifest.json").get("timm", {}).get("excluded", {}))


def pin(row):
    """The sha256 the manifest pins for ``row``'s checkpoint, or ``None``."""
    return row.files.get("checkpoint", {}).get("sha256")


def _imagenet(arch):
    """``weights="imagenet"``: keras.applications' file where the architecture
    has one, else timm's default tag, never a non-commercial one silently."""
    by_tag = index().get(arch, {})
    if _IMAGENET in by_tag:
        return by_tag[_IMAGENET]
    candidates = sorted(by_tag.values(), key=lambda row: not row.default)
    return next((row for row in candidates if not row.non_commercial), None)


def resolve(arch, weights, *, warn=True):
    """The row ``weights`` names for a model registered as ``arch``, or ``None``.

    ``weights`` is ``"imagenet"``, a tag (``"ra_in1k"``), ``"<arch>.<tag>"``
    or ``"timm/<arch>.<tag>"``; a qualified name may name another architecture
    (the caller checks that it fits). A non-commercial tag warns with its
    licence.
    """
    name = weights.removeprefix("timm/")
    head, dot, tail = name.partition(".")
    if dot and head in index():
        arch, name = head, tail
    row = _imagenet(arch) if name == _IMAGENET else find(arch, name)
    if warn and row is not None and row.non_commercial:
        warnings.warn(
            f"weights: {row.name} is licensed {row.licence} (non-commercial use only)",
            UserWarning,
            stacklevel=3,
        )
    return row


def unknown_weights_error(arch, weights):
    """The ``ValueError`` for a ``weights`` string that is neither a tag of
    ``arch`` nor an existing file: it lists the tags that exist."""
    available = sorted(tags(arch))
    listed = ", ".join(repr(t) for t in available) if available else f"none for {arch!r}"
    hint = "; 'imagenet' picks the default" if _imagenet(arch) is not None and _IMAGENET not in available else ""
    return ValueError(
        "weights: expected None (random initialization), a pretrained tag "
        f"(available: {listed}{hint}) or the path to an existing weights or checkpoint "
        f"file; got {weights!r}"
    )


def list_pretrained(pattern="*"):
    """Every ``<arch>.<tag>`` matching ``pattern`` (fnmatch), sorted."""
    return sorted(row.name for row in rows() if fnmatch.fnmatchcase(row.name, pattern))
