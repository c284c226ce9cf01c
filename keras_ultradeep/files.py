"""Files that appear only complete: the package's one atomic-write helper.

Ground floor (imports nothing of ours). Everything the package writes to a
user's disk — converted weights, downloads, run folders, exports, tuner
results — goes through :func:`atomic_path`: the writer fills a temporary path
in a private folder beside the destination (same file system, so the final
rename is atomic, and the temporary keeps the destination's file name, which
Keras needs for ``.keras`` / ``.weights.h5``), and only a writer that returns
without error has its result moved into place. A failed or interrupted write
leaves the destination as it was and removes its temporary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "write_text", "write_bytes", "link_or_copy", "TEMP_PREFIX"]

# Temporary folders start with this, so that a reader of the folder (a resume
# scan, say) can skip them.
TEMP_PREFIX = ".partial-"


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path, *, overwrite=True):
    """Yields a temporary path to write ``path``'s new content to.

    When the ``with`` block ends without error, the temporary (a file or a
    folder, such as a SavedModel) replaces ``path``; an existing folder at
    ``path`` is removed only after the new one is complete. With
    ``overwrite=False`` an existing ``path`` raises ``FileExistsError`` before
    anything is written.
    """
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{str(path)!r} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=path.parent))
    try:
        temp = work / path.name
        yield temp
        if not (temp.exists() or temp.is_symlink()):
            raise FileNotFoundError(f"the writer of {str(path)!r} wrote nothing")
        if path.is_dir() and not path.is_symlink():
            # os.replace cannot put a folder over a non-empty folder: move the
            # old one aside first, into the folder that is removed below.
            os.replace(path, work / ".replaced")
        os.replace(temp, path)
    finally:
        _remove(work)


def write_bytes(path, data):
    """Writes ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def link_or_copy(source, path):
    """``path`` becomes the same content as ``source`` (a hard link, else a copy), atomically."""
    with atomic_path(path) as temp:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
    return Path(path)
