"""A disk cache for baked grades, so the 256³ bake is paid once per LUT, not once per render.

:meth:`brandstudio.post.grade.Grade.baked` turns a LUT plus its strength and interpolation
method into a ``(256**3, 3)`` uint8 table (48 MiB) that grades any 8-bit pixel with one
lookup, indexed ``r | g << 8 | b << 16``. Baking costs about as much as grading 18 frames of
720p directly (0.6-0.8 s on two CPU cores); stored on disk, every later render (in this
process or another) maps the table in tens of milliseconds.

Entries live in ``$BRANDSTUDIO_LUT_CACHE``, else ``$BRANDSTUDIO_HOME/luts``
(``~/.cache/brandstudio/luts``), one file per key::

    <key>.bslut = b"BSLUT001" + sha256(payload) (32 bytes) + payload (256**3 * 3 bytes)

* the key (:func:`bake_key`) is a SHA-256 of the table format version, the LUT's content
  (table, domain, shaper: the same bytes whatever file they came from), the strength and
  the method, so a changed LUT file, strength or method never reads a stale table;
* writes are atomic (a temporary file in the same folder, then ``os.replace``), so a reader
  never sees half a table, and two processes baking the same LUT at once both succeed;
* reads memory-map the file (the pages are the OS page cache's, shared between processes)
  and check the size (before anything is mapped) and the payload's SHA-256; a damaged entry
  (wrong size or header, bad checksum, a folder or FIFO at its path) is deleted with a warning
  and reported as a miss (the caller bakes again);
* at most :data:`MAX_ENTRIES` tables are kept (the least recently used are removed first);
  deleting the folder at any time is safe.

Example:
    >>> import numpy as np, tempfile
    >>> from brandstudio.post.lut_cache import LutCache
    >>> cache = LutCache(tempfile.mkdtemp())
    >>> table = np.zeros((256**3, 3), np.uint8)
    >>> cache.put("ab" * 32, table)
    True
    >>> bool((cache.get("ab" * 32) == table).all()), cache.get("cd" * 32) is None
    (True, True)
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import stat
import time
import warnings
from pathlib import Path

import numpy as np

from brandstudio.files import brandstudio_home, write_bytes_atomic

__all__ = ["MAX_ENTRIES", "TABLE_VERSION", "LutCache", "bake_key", "default_lut_cache_dir"]

#: bumped whenever the baked table's meaning changes (rounding, layout, kernels)
TABLE_VERSION = 2
#: tables kept on disk (48 MiB each); the least recently used go first
MAX_ENTRIES = 16

_MAGIC = b"BSLUT001"
_ENTRIES = 256**3
_PAYLOAD = _ENTRIES * 3
_HEADER = len(_MAGIC) + 32


def _open_regular(path: Path):
    """``path`` opened for binary reading; OSError unless it is a regular file. The open never
    blocks (a FIFO at the path would block a plain ``open`` until something writes to it)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path.name} is not a regular file")
    return open(fd, "rb")


def default_lut_cache_dir() -> Path:
    """``$BRANDSTUDIO_LUT_CACHE``, else ``$BRANDSTUDIO_HOME/luts`` (``~/.cache/brandstudio/luts``)."""
    env = os.environ.get("BRANDSTUDIO_LUT_CACHE")
    if env:
        return Path(env).expanduser()

    return brandstudio_home() / "luts"


def bake_key(lut, strength: float, method: str) -> str:
    """The cache key of ``lut`` baked at ``strength`` with ``method``: 64 hex digits.

    Example:
        >>> from brandstudio.post.grade import LUT
        >>> bake_key(LUT.identity(3), 1.0, "tetrahedral") == bake_key(LUT.identity(3), 1.0, "tetrahedral")
        True
        >>> bake_key(LUT.identity(3), 1.0, "tetrahedral") == bake_key(LUT.identity(3), 0.5, "tetrahedral")
        False
    """
    h = hashlib.sha256(f"brandstudio-bake-v{TABLE_VERSION}|{float(strength)!r}|{method}".encode())
    stage = lut
    while stage is not None:
        h.update(f"|{stage.table.shape}|".encode())
        h.update(np.ascontiguousarray(stage.table, np.float32).tobytes())
        h.update(np.ascontiguousarray(stage.domain, np.float32).tobytes())
        stage = stage.shaper
    return h.hexdigest()


class LutCache:
    """Baked grade tables on local disk (see the module docstring for the format).

    Args:
        directory: where the tables live; ``None`` for :func:`default_lut_cache_dir`.
        max_entries: how many tables to keep.
    """

    def __init__(self, directory: str | Path | None = None, max_entries: int = MAX_ENTRIES) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_lut_cache_dir()
        self.max_entries = max_entries

    def __repr__(self) -> str:
        return f"LutCache({str(self.directory)!r})"

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"`key` must be 64 lowercase hex digits, got {key!r}")
        return self.directory / f"{key}.bslut"

    def get(self, key: str) -> np.ndarray | None:
        """The ``(256**3, 3)`` uint8 table stored under ``key`` (read-only), or ``None`` (missing or damaged).

        The file is memory-mapped, not read into fresh memory: the pages come from the OS page
        cache (shared with every process grading with the same table) and only the checksum
        pass touches them all.
        """

        path = self._path(key)
        try:
            fh = _open_regular(path)
        except FileNotFoundError:
            return None
        except OSError as exc:  # a folder, a FIFO, a device, no permission where an entry goes
            self._drop(path, f"it cannot be read as a table ({exc})")
            return None
        try:
            with fh:
                size = os.fstat(fh.fileno()).st_size
                if size != _HEADER + _PAYLOAD:
                    header = b""
                    view = None
                else:
                    view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                    header = view[:_HEADER]
        except (OSError, ValueError):
            return None
        if view is None or header[: len(_MAGIC)] != _MAGIC:
            if view is not None:
                view.close()
            self._drop(path, "it has the wrong size or header")
            return None
        payload = np.frombuffer(view, np.uint8, count=_PAYLOAD, offset=_HEADER)
        if hashlib.sha256(payload).digest() != header[len(_MAGIC) :]:
            del payload
            view.close()
            self._drop(path, "its checksum does not match")
            return None
        try:
            os.utime(path)  # least-recently-used order for pruning
        except OSError:
            pass
        return payload.reshape(_ENTRIES, 3)

    def put(self, key: str, table: np.ndarray) -> bool:
        """Store ``table`` atomically under ``key``; ``False`` (with a warning) if the folder is unwritable."""
        path = self._path(key)
        table = np.ascontiguousarray(table, np.uint8)
        if table.shape != (_ENTRIES, 3):
            raise ValueError(f"`table` must have shape (256**3, 3), got {table.shape}")
        try:
            write_bytes_atomic(path, (_MAGIC, hashlib.sha256(table).digest(), memoryview(table).cast("B")))
        except OSError as exc:
            warnings.warn(f"could not store the baked LUT table in {self.directory}: {exc}", stacklevel=2)
            return False
        self._prune()
        return True

    def _drop(self, path: Path, why: str) -> None:
        """Warn and remove a damaged entry (best effort: an unwritable folder keeps it, it is
        ignored again next time)."""
        warnings.warn(
            f"ignoring the cached LUT table {path.name}: {why} (it will be baked again)", stacklevel=3
        )
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            pass

    def _prune(self) -> None:
        try:
            entries = sorted(self.directory.glob("*.bslut"), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return
        for old in entries[self.max_entries :]:
            try:
                old.unlink(missing_ok=True)
            except OSError:  # pruning is housekeeping: it never fails a render
                pass
        # a temporary file of a write that never finished (a process killed mid-bake), after an hour
        for tmp in self.directory.glob(".*.tmp"):
            try:
                if time.time() - tmp.stat().st_mtime > 3600:
                    tmp.unlink(missing_ok=True)
            except OSError:
                pass
