"""Getting a pretrained file onto the disk, verified, and caching its conversion.

* keras.applications' files: downloaded by URL, md5-checked as Keras does.
* timm's tags: ``huggingface_hub.hf_hub_download("timm/<arch>.<tag>",
  "model.safetensors")``, so ``HF_ENDPOINT``, ``HF_HUB_CACHE``,
  ``HF_HUB_OFFLINE``, tokens and mirrors behave as they do for timm.
  huggingface_hub checks only a download's size; every file is hashed here
  (sha256) against the manifest's pin, else the Hub's LFS sha256 while online,
  else the hash recorded on first use.
* torchvision's files: by URL, their torch-hub name prefix of the sha256 checked.

A converted checkpoint is cached as
``$KERAS_HOME/keras_ultradeep/<arch>.<tag>/<sha256[:16]>-c<version>[-notop].weights.h5``
with a JSON stamp beside it, under a file lock, so that processes resolving the
same tag at once download and convert it once. Ground floor: imports nothing
of ours but ``files``.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

import filelock

from keras_ultradeep import files
from keras_ultradeep.weights.table import pin

__all__ = [
    "cache_dir",
    "file_hash",
    "download",
    "keras_file",
    "source_file",
    "converted_file",
    "load_weights_file",
    "WeightsVerificationError",
]

_CHUNK = 1 << 20


class WeightsVerificationError(ValueError):
    """A downloaded file is not the published one (its sha256 differs)."""


def cache_dir(subdir="models"):
    """``$KERAS_HOME/<subdir>`` (``~/.keras`` by default), as Keras uses it."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / subdir


def file_hash(path, algorithm="sha256"):
    """The hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _split_hash(expected):
    algorithm, _, digest = expected.partition(":")
    if algorithm not in ("sha256", "md5") or not digest:
        raise ValueError(f"manifest hash must be 'sha256:<hex>' or 'md5:<hex>', got {expected!r}")
    return algorithm, digest.lower()


def download(url, dest, expected_hash, *, timeout=60):
    """Downloads ``url`` to ``dest`` if it is not there, verifying its hash.

    ``expected_hash`` is ``"sha256:<hex>"``, ``"md5:<hex>"`` or
    ``"sha256-prefix:<hex>"`` (torch hub's file names carry the first digits).
    The file is hashed on the way and moved into place only when it matches,
    so a failed or interrupted download leaves nothing at ``dest``. A file
    already at ``dest`` is verified and never overwritten.
    """
    dest = Path(dest)
    prefix = expected_hash.startswith("sha256-prefix:")
    algorithm, digest = ("sha256", expected_hash.split(":", 1)[1].lower()) if prefix else _split_hash(expected_hash)

    def matches(actual):
        return actual.startswith(digest) if prefix else actual == digest

    if dest.exists():
        actual = file_hash(dest, algorithm)
        if not matches(actual):
            raise WeightsVerificationError(
                f"weights file {str(dest)!r} does not match its published {algorithm} "
                f"(expected {digest}, got {actual}): the file is truncated, corrupted "
                "or not the published checkpoint. It was left as it is; delete it to "
                "download it again."
            )
        return dest
    hasher = hashlib.new(algorithm)
    with files.atomic_path(dest) as temp:
        with open(temp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                hasher.update(chunk)
                out.write(chunk)
        if not matches(hasher.hexdigest()):
            raise WeightsVerificationError(
                f"download of {url} does not match its published {algorithm} "
                f"(expected {digest}, got {hasher.hexdigest()}); nothing was saved."
            )
    return dest


def keras_file(row, include_top):
    """keras.applications' weights file of ``row``, downloaded and verified."""
    spec = row.files["top" if include_top else "notop"]
    return download(spec["url"], cache_dir() / spec["file_name"], spec["hash"])


# ------------------------------------------------------------------ sources


def _prefetch_hint(row):
    spec = row.files["checkpoint"]
    if row.hub_repo:
        fetch = f"`hf download {row.hub_repo} {spec['filename']}` (huggingface_hub's CLI)"
    else:
        fetch = f"{spec['url']} into {cache_dir()}"
    return (
        f"Pre-fetch it where there is a network with {fetch} and copy the cache "
        "(HF_HUB_CACHE, KERAS_HOME), or pass a local file: weights='path/to/checkpoint'"
    )


def _record_path(repo, filename):
    return cache_dir("keras_ultradeep") / "sources" / repo / f"{filename}.sha256"


def _hub_sha256(repo, filename):
    """The Hub's LFS sha256 of a file (its ETag), or ``None`` offline."""
    import huggingface_hub
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return None
    try:
        meta = huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo, filename))
    except Exception:  # offline, a mirror without the endpoint: fall back to the record
        return None
    etag = (meta.etag or "").strip('"').lower()
    return etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None


def _remove_download(path):
    """Removes a cached download: the snapshot link and the blob it points to."""
    path = Path(path)
    blob = path.resolve()
    for victim in {path, blob}:
        if victim.exists() or victim.is_symlink():
            victim.unlink()


def _remove_incomplete(repo):
    from huggingface_hub import constants

    blobs = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "blobs"
    for partial in blobs.glob("*.incomplete") if blobs.is_dir() else ():
        partial.unlink()


def _hub_file(row):
    import huggingface_hub
    from huggingface_hub import errors

    spec = row.files["checkpoint"]
    repo, filename = spec["hf_hub_id"], spec["filename"]
    try:
        path = huggingface_hub.hf_hub_download(repo, filename)
    except errors.LocalEntryNotFoundError as error:  # offline, or the Hub unreachable
        _remove_incomplete(repo)
        raise OSError(
            f"weights: {repo}/{filename} for {row.name} is not in the Hugging Face cache and "
            f"cannot be downloaded ({error}). " + _prefetch_hint(row)
        ) from error
    except (errors.RepositoryNotFoundError, errors.EntryNotFoundError, errors.RevisionNotFoundError) as error:
        _remove_incomplete(repo)
        raise ValueError(
            f"weights: {row.name}: the Hub has no {repo}/{filename} ({type(error).__name__}); "
            "the endpoint (HF_ENDPOINT) may be a mirror without it. " + _prefetch_hint(row)
        ) from error
    except Exception as error:  # offline, connection refused, truncated body
        _remove_incomplete(repo)
        raise OSError(
            f"weights: could not get {repo}/{filename} for {row.name} "
            f"({type(error).__name__}: {error}). " + _prefetch_hint(row)
        ) from error

    expected, why = spec.get("sha256"), "the manifest's pin"
    if expected is None:
        expected, why = _hub_sha256(repo, filename), "the Hub's LFS sha256"
    record = _record_path(repo, filename)
    if expected is None and record.is_file():
        expected, why = record.read_text().strip(), "the hash recorded on first use"
    actual = file_hash(path)
    if expected is not None and actual != expected:
        _remove_download(path)
        raise WeightsVerificationError(
            f"weights: {repo}/{filename} does not match {why}: expected sha256 {expected}, "
            f"got {actual}. The download was removed; nothing was converted."
        )
    if not record.is_file() or record.read_text().strip() != actual:
        files.write_text(record, actual + "\n")
    return Path(path), actual


def _url_file(row):
    spec = row.files["checkpoint"]
    expected = f"sha256:{spec['sha256']}" if "sha256" in spec else f"sha256-prefix:{spec['hash_prefix']}"
    dest = cache_dir() / spec["file_name"]
    try:
        path = download(spec["url"], dest, expected)
    except WeightsVerificationError:
        raise
    except OSError as error:
        raise OSError(
            f"weights: could not download {spec['url']} for {row.name} ({error}). "
            + _prefetch_hint(row)
        ) from error
    return path, file_hash(path)


def source_file(row):
    """``(path, sha256)`` of ``row``'s checkpoint, downloaded if needed and verified."""
    return _hub_file(row) if row.hub_repo else _url_file(row)


# --------------------------------------------------------------- conversions


def _stamp_of(path):
    stamp = path.with_name(path.name.removesuffix(".weights.h5") + ".json")
    try:
        return stamp, json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return stamp, None


def _valid(path, expect, pinned):
    stamp, record = _stamp_of(path)
    if record is None or not path.is_file():
        return False
    if any(record.get(key) != value for key, value in expect.items()):
        return False
    if pinned is not None and record.get("source_sha256") != pinned:
        return False
    return record.get("weights_sha256") == file_hash(path)


def converted_file(row, *, include_top, fingerprint, converter_version, convert):
    """The cached Keras conversion of ``row``'s checkpoint, made if needed.

    ``convert(source, dest)`` writes the ``.weights.h5`` for the model at
    hand; it runs at most once per source file, converter version and model
    layout (``fingerprint``), under a lock shared by every process.
    """
    folder = cache_dir("keras_ultradeep") / row.name
    suffix = "" if include_top else "-notop"
    expect = {"converter_version": converter_version, "layer_fingerprint": fingerprint, "tag": row.name}
    folder.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(folder / f".lock{suffix}")):
        pattern = f"*-c{converter_version}{suffix}.weights.h5"
        for path in sorted(folder.glob(pattern)):
            if _valid(path, expect, pin(row)):
                return path
        source, sha256 = source_file(row)
        path = folder / f"{sha256[:16]}-c{converter_version}{suffix}.weights.h5"
        with files.atomic_path(path) as temp:
            convert(source, temp)
        stamp, _ = _stamp_of(path)
        record = {
            **expect,
            "source": row.hub_repo or row.files["checkpoint"]["url"],
            "filename": row.files["checkpoint"].get("filename") or row.files["checkpoint"]["file_name"],
            "source_sha256": sha256,
            "include_top": include_top,
            "weights_sha256": file_hash(path),
        }
        files.write_text(stamp, json.dumps(record, indent=1) + "\n")
        return path


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
