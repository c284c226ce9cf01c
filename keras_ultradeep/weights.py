"""Pretrained weights: the manifest, hash-checked atomic downloads, loading.

The manifest (``weights/manifest.json`` in the repository, shipped as
``keras_ultradeep/_weights/manifest.json``) has one entry per checkpoint: the
model, its tag, where the file comes from, its hash, licence, preprocessing and
published accuracy. Two kinds of source exist:

* ``keras-h5``: a Keras weights file (e.g. the keras.applications DenseNet
  files). It is downloaded, verified and loaded as it is.
* ``safetensors`` / ``pth``: a timm or torchvision checkpoint. It is
  downloaded and verified, converted once with :mod:`keras_ultradeep.convert`,
  and the converted Keras file is cached beside it with its own sha256.

Nothing here touches the network or the disk at import time.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import urllib.request
from pathlib import Path

__all__ = [
    "WeightsEntry",
    "manifest",
    "pretrained_tags",
    "find_entry",
    "cache_dir",
    "download",
    "file_hash",
    "fetch",
    "load_weights_file",
]

KERAS_WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One checkpoint of the manifest."""

    model: str
    tag: str
    source: str
    format: str
    files: dict
    classes: int
    licence: str
    preprocessing: dict
    accuracy: dict
    aliases: tuple = ()
    architecture: dict = dataclasses.field(default_factory=dict)
    script: str | None = None
    notes: str | None = None

    @property
    def tags(self):
        return (self.tag,) + tuple(self.aliases)


def _manifest_path():
    try:
        from importlib import resources

        path = resources.files("keras_ultradeep._weights") / "manifest.json"
        if path.is_file():
            return Path(str(path))
    except ModuleNotFoundError:
        pass
    # Running from a source checkout that is not installed.
    return Path(__file__).resolve().parent.parent / "weights" / "manifest.json"


@functools.lru_cache(maxsize=None)
def manifest():
    """All manifest entries, read once on first use."""
    with open(_manifest_path(), encoding="utf-8") as f:
        raw = json.load(f)
    entries = []
    for item in raw["weights"]:
        item = dict(item)
        item["aliases"] = tuple(item.get("aliases", ()))
        entries.append(WeightsEntry(**item))
    return tuple(entries)


def pretrained_tags(model_name):
    """Every weights tag (aliases included) that ``model_name`` has."""
    tags = []
    for entry in manifest():
        if entry.model == model_name:
            tags.extend(entry.tags)
    return tuple(tags)


def find_entry(model_name, tag):
    """The manifest entry of ``model_name`` under ``tag``, or ``None``."""
    for entry in manifest():
        if entry.model == model_name and tag in entry.tags:
            return entry
    return None


def cache_dir(subdir="models"):
    """``$KERAS_HOME/<subdir>`` (``~/.keras`` by default), as Keras uses it."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / subdir


def _split_hash(expected):
    algorithm, _, digest = expected.partition(":")
    if algorithm not in ("sha256", "md5") or not digest:
        raise ValueError(f"manifest hash must be 'sha256:<hex>' or 'md5:<hex>', got {expected!r}")
    return algorithm, digest.lower()


def file_hash(path, algorithm="sha256"):
    """The hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path, expected, what):
    algorithm, digest = _split_hash(expected)
    actual = file_hash(path, algorithm)
    if actual != digest:
        raise ValueError(
            f"{what} {str(path)!r} does not match its published {algorithm} "
            f"(expected {digest}, got {actual}): the file is truncated, corrupted "
            "or not the published checkpoint. It was left as it is; delete it to "
            "download it again."
        )


def download(url, dest, expected_hash, *, timeout=60):
    """Downloads ``url`` to ``dest`` if it is not there, verifying its hash.

    The file is streamed into a temporary file in the destination folder,
    hashed on the way and moved into place only when the hash matches, so a
    failed or interrupted download never leaves a partial file at ``dest``. A
    file already at ``dest`` is verified and never overwritten.
    """
    dest = Path(dest)
    algorithm, digest = _split_hash(expected_hash)
    if dest.exists():
        _verify(dest, expected_hash, "weights file")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.new(algorithm)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != digest:
            raise ValueError(
                f"download of {url} does not match its published {algorithm} "
                f"(expected {digest}, got {hasher.hexdigest()}); nothing was saved."
            )
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return dest


def _save_weights_atomically(model, dest):
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".convert-", dir=dest.parent)
    try:
        tmp = Path(tmp_dir) / dest.name
        model.save_weights(tmp)
        os.replace(tmp, dest)
    finally:
        for leftover in Path(tmp_dir).iterdir():
            leftover.unlink()
        os.rmdir(tmp_dir)
    return dest


def fetch(entry, model, include_top):
    """A local Keras weights file for ``entry`` that fits ``model``.

    Keras files are downloaded as published. Converted checkpoints are
    downloaded, converted into ``model`` and cached as
    ``$KERAS_HOME/keras_ultradeep/<model>.<tag>[_notop].weights.h5`` with a
    ``.sha256`` beside it that later loads verify.
    """
    if entry.format == "keras-h5":
        spec = entry.files["top" if include_top else "notop"]
        return download(spec["url"], cache_dir() / spec["file_name"], spec["hash"])

    suffix = "" if include_top else "_notop"
    converted = cache_dir("keras_ultradeep") / f"{entry.model}.{entry.tag}{suffix}.weights.h5"
    stamp = converted.with_name(converted.name + ".sha256")
    if converted.exists() and stamp.exists():
        _verify(converted, "sha256:" + stamp.read_text().strip(), "converted weights file")
        return converted
    spec = entry.files["checkpoint"]
    checkpoint = download(spec["url"], cache_dir() / spec["file_name"], spec["hash"])

    from keras_ultradeep import convert, registry  # lazy: only converted weights need them

    family = registry.model_entry(entry.model).family
    convert.convert_into(model, convert.load_state_dict(checkpoint), family)
    _save_weights_atomically(model, converted)
    stamp.write_text(file_hash(converted) + "\n")
    return converted


def load_weights_file(model, path):
    """``model.load_weights(path)`` with a clear error for a bad file.

    A truncated, corrupted or foreign file raises ``ValueError`` naming the
    file and the model; the file itself is never modified.
    """
    try:
        model.load_weights(str(path))
    except Exception as error:  # h5py raises OSError, Keras ValueError/KeyError
        raise ValueError(
            f"weights: could not load {str(path)!r} into model {model.name!r}: the file "
            f"is truncated, corrupted or holds another architecture's weights ({error})"
        ) from error
