"""The scene cache: generated footage stored under a hash of everything that changes its pixels.

A scene is the raw output of the video model (:data:`~brandstudio.frames.Frames`, before the
post stage), so one cached scene serves every delivery size, caption, logo and grade made from
it. The key is :func:`scene_key` of the fields that change the pixels: the generator's
``cache_identity()`` (model id and revision, dtype, scheduler, expert boundary, LoRA file hashes
and weights), the :class:`~brandstudio.generation.base.GenerationSpec` (final prompt and negative
prompt, seed, size, frames, steps, guidance, flow shift) and the profile's speed preset.

Storage: one file per key, ``<root>/<key[:2]>/<key>.scene``::

    b"BSSCENE\\0"  uint32 version  uint32 header length   (16 bytes, little endian)
    header JSON    {"shape", "dtype", "blake2b", "created", "fields"}
    pixels         raw uint8 frames, C order

Reading is one sequential read into a buffer and ``np.frombuffer``: no pickle, no ``np.load``.
Before anything is allocated, the header's declared sizes are checked against the file's real
size (a poisoned header declaring a huge shape costs nothing), and the BLAKE2b digest of the
pixels is checked on every read. A damaged entry of any kind (garbage, truncated, a bad or
oversized header, wrong dtype, a folder or FIFO at its path) is deleted with a logged warning
and counted instead of being served, so the caller regenerates it; a cache that cannot be
written (full disk, read-only) costs the next render its hit, never this render.

Where it lives:

- ``SceneCache()``: ``$BRANDSTUDIO_SCENE_CACHE``, else ``$BRANDSTUDIO_HOME/scenes``
  (``~/.cache/brandstudio/scenes``).
- ``SceneCache("/data/scenes")``: a local directory. Writes go to a temporary file in the same
  directory and are renamed into place (atomic); a per-key ``filelock.FileLock`` makes two
  processes that compute the same key produce one entry: the second waits, then finds it.
  Last use is the entry file's mtime.
- ``SceneCache("s3://team-bucket/scenes")`` (any fsspec URL: ``gs://``, ``memory://``, ...):
  a shared store. Writes go to a temporary object that is then moved into place; per-key
  locks are local file locks (under ``$BRANDSTUDIO_HOME/locks``), so processes on one machine
  never compute a key twice, and processes on different machines at worst both compute it
  and write the same bytes. Last use is a small ``<key>.used`` object next to the entry.

Counters (hits, misses, corrupt entries dropped, puts) persist in ``stats.json`` at the
root, updated under a lock; on an fsspec store that lock is per machine, so counters updated
at the same instant from two machines may lose an increment (entries are never affected).

Example:
    >>> import numpy as np, tempfile
    >>> cache = SceneCache(tempfile.mkdtemp())
    >>> key = scene_key({"prompt": "pour-over coffee", "seed": 11})
    >>> frames = np.zeros((5, 16, 32, 3), dtype=np.uint8)
    >>> cache.get(key) is None
    True
    >>> cache.put(key, frames, fields={"prompt": "pour-over coffee"})
    >>> np.array_equal(cache.get(key), frames)
    True
    >>> cache.stats()["hits"], cache.stats()["misses"]
    (1, 1)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from brandstudio.files import brandstudio_home, write_bytes_atomic
from brandstudio.frames import check_frames

__all__ = ["CacheEntry", "SceneCache", "default_cache_location", "parse_size", "scene_key"]

MAGIC = b"BSSCENE\0"
VERSION = 1
_PREFIX = struct.Struct("<8sII")  # magic, version, header length
_MAX_HEADER = 1 << 20
_KEY = re.compile(r"^[0-9a-f]{16,128}$")
_SUFFIX = ".scene"
_USED = ".used"
_STATS = "stats.json"
_COUNTERS = ("hits", "misses", "corrupt", "puts")
_STALE_TMP_S = 3600.0

log = logging.getLogger(__name__)


def _dimension(value: Any) -> int:
    """One dimension of a stored shape: a non-negative int as JSON wrote it (not 3.5, "3" or 1e400)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"a dimension must be a whole number, got {value!r}")
    return value


def scene_key(fields: Mapping[str, Any]) -> str:
    """The key of a scene: SHA-256 of ``fields`` as canonical JSON (sorted keys, no spaces).

    Paths and other non-JSON values are written as ``str``; NaN/inf are refused.

    Example:
        >>> scene_key({"seed": 1, "prompt": "tea"}) == scene_key({"prompt": "tea", "seed": 1})
        True
        >>> len(scene_key({"seed": 1}))
        64
    """
    text = json.dumps(
        dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_location() -> Path:
    """``$BRANDSTUDIO_SCENE_CACHE``, else ``brandstudio_home() / "scenes"``."""
    env = os.environ.get("BRANDSTUDIO_SCENE_CACHE")
    if env:
        return Path(env).expanduser()
    return brandstudio_home() / "scenes"


_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def parse_size(text: str | int) -> int:
    """Bytes from ``"500MB"``, ``"2GB"``, ``"1.5G"``, ``"2GiB"``, ``"1024"``.

    Decimal units (KB, MB, GB, TB = powers of 1000); ``KiB``/``MiB``/``GiB``/``TiB`` are powers of 1024.

    Example:
        >>> parse_size("2GB"), parse_size("500MB"), parse_size("1GiB")
        (2000000000, 500000000, 1073741824)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"a size must be >= 0, got {text}")
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?)(B?)\s*", str(text).upper())
    if not m or (m.group(3) and not m.group(2)):
        raise ValueError(f"a size must look like 500MB, 2GB or 1GiB, got {text!r}")
    number, unit, binary = float(m.group(1)), m.group(2), bool(m.group(3))
    factor = 1024 ** "KMGT".index(unit) * 1024 if binary else _UNITS[unit]
    return int(number * factor)


@dataclass(frozen=True)
class CacheEntry:
    """One stored scene, as listed by :meth:`SceneCache.ls`.

    Attributes:
        key: the scene key.
        bytes: size of the entry on the store.
        created: when it was written (Unix time).
        last_used: when it was last written or read (Unix time).
        shape: the frames' shape ``(T, H, W, 3)``.
        fields: the key's source fields (prompt, seed, model, ...), as stored in the header.
    """

    key: str
    bytes: int
    created: float
    last_used: float
    shape: tuple[int, ...]
    fields: Mapping[str, Any]

    @property
    def prompt(self) -> str:
        """The scene's prompt, or ``""``."""
        return str(self.fields.get("prompt", ""))


class _CorruptEntry(Exception):
    pass


# ---------------------------------------------------------------------------------- stores


class _LocalStore:
    """A local directory: temp file + ``os.replace``; ``filelock`` locks; mtime = last use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self.url = str(self.root)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def open_read(self, rel: str):
        """The entry, opened for reading; OSError when it is not a regular file (a FIFO would
        block the open forever, a device would never end), without blocking on it."""
        fd = os.open(self.root / rel, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{self.root / rel} is not a regular file")
        return open(fd, "rb", buffering=0)

    def write_atomic(self, rel: str, chunks: list) -> None:
        write_bytes_atomic(self.root / rel, chunks)

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, rel: str) -> None:
        path = self.root / rel
        if path.is_dir() and not path.is_symlink():  # something made a folder where an entry goes
            shutil.rmtree(path, ignore_errors=True)
            return
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def size(self, rel: str) -> int | None:
        try:
            return (self.root / rel).stat().st_size
        except FileNotFoundError:
            return None

    def touch(self, rel: str, when: float) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.root / rel, (when, when))

    def last_used(self, rel: str) -> float | None:
        try:
            return (self.root / rel).stat().st_mtime
        except FileNotFoundError:
            return None

    def entries(self) -> Iterator[tuple[str, int]]:
        """(relative path, bytes) of every entry file; removes stale temp files on the way."""
        if not self.root.is_dir():
            return
        now = time.time()
        for sub in sorted(self.root.iterdir()):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for p in sorted(sub.iterdir()):
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                if p.name.endswith(".tmp") and p.name.startswith("."):
                    if now - st.st_mtime > _STALE_TMP_S:  # left by a killed writer
                        with contextlib.suppress(OSError):
                            p.unlink()
                    continue
                if p.name.endswith(_SUFFIX):
                    yield f"{sub.name}/{p.name}", st.st_size

    def lock(self, name: str):
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{name}.lock"))


class _FsspecStore:
    """Any fsspec filesystem: write a temp object, then move it; ``<key>.used`` = last use."""

    def __init__(self, url: str) -> None:
        import fsspec  # optional: remote stores only

        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def open_read(self, rel: str):
        return self.fs.open(self.path(rel), "rb")

    def write_atomic(self, rel: str, chunks: list) -> None:
        final = self.path(rel)
        parent, name = final.rsplit("/", 1)
        tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
        with contextlib.suppress(Exception):
            self.fs.makedirs(parent, exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            self.fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self.fs.cat_file(self.path(rel))
        except FileNotFoundError:
            return None

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(rel))

    def size(self, rel: str) -> int | None:
        try:
            return int(self.fs.info(self.path(rel))["size"])
        except FileNotFoundError:
            return None

    def touch(self, rel: str, when: float) -> None:
        self.write_atomic(rel + _USED, [repr(when).encode()])

    def last_used(self, rel: str) -> float | None:
        data = self.read_bytes(rel + _USED)
        try:
            return float(data) if data else None
        except ValueError:
            return None

    def entries(self) -> Iterator[tuple[str, int]]:
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        root = self.root.strip("/")
        for path, info in sorted(found.items()):
            path = path.strip("/")
            if not path.startswith(root + "/"):
                continue
            rel = path[len(root) + 1 :]
            name = rel.rsplit("/", 1)[-1]
            if rel.count("/") == 1 and name.endswith(_SUFFIX) and not name.startswith("."):
                yield rel, int(info.get("size") or 0)

    def lock(self, name: str):
        tag = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        locks = brandstudio_home() / "locks" / f"scenes-{tag}"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{name}.lock"))


# ---------------------------------------------------------------------------------- the cache


class SceneCache:
    """Generated scenes, content-addressed, safe to share between processes.

    Args:
        location: a local directory, an fsspec URL (``s3://bucket/scenes``, ``memory://x``,
            ``file:///data/scenes``), or ``None`` for :func:`default_cache_location`.

    Example:
        >>> import numpy as np, tempfile
        >>> cache = SceneCache(tempfile.mkdtemp())
        >>> key = scene_key({"prompt": "steam over a cup", "seed": 3})
        >>> frames, hit = cache.get_or_create(key, lambda: np.ones((5, 16, 16, 3), np.uint8))
        >>> hit
        False
        >>> frames, hit = cache.get_or_create(key, lambda: 1 / 0)   # a hit: fn is not called
        >>> hit, frames.shape
        (True, (5, 16, 16, 3))
    """

    def __init__(self, location: str | Path | None = None) -> None:
        if location is None:
            location = default_cache_location()
        text = str(location)
        if isinstance(location, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", text):
            self._store: _LocalStore | _FsspecStore = _FsspecStore(text)
        else:
            self._store = _LocalStore(Path(location))
        self.location = self._store.url

    def __repr__(self) -> str:
        return f"SceneCache({self.location!r})"

    @classmethod
    def from_option(cls, cache: SceneCache | str | Path | bool | None) -> SceneCache | None:
        """The cache a ``cache=`` argument names: ``None``/``True`` the default location, a
        directory or fsspec URL, a ``SceneCache`` itself, or ``False`` for none (returns None)."""
        if cache is False:
            return None
        if isinstance(cache, SceneCache):
            return cache
        return cls(None if cache is True else cache)

    # -- entries ------------------------------------------------------------------------------

    @staticmethod
    def _rel(key: str) -> str:
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(f"a scene key must be a lowercase hex digest (see scene_key), got {key!r}")
        return f"{key[:2]}/{key}{_SUFFIX}"

    def _read_header(self, f, size: int | None = None) -> tuple[dict, int]:
        """The header of an open entry and where its pixels start; :class:`_CorruptEntry` for
        anything that is not a well-formed header. With ``size`` (the entry's bytes on the
        store), the sizes the header declares are checked against it before anything is
        allocated: a poisoned header cannot make a read ask for gigabytes."""
        prefix = f.read(_PREFIX.size)
        if len(prefix) != _PREFIX.size:
            raise _CorruptEntry("truncated prefix")
        magic, version, n = _PREFIX.unpack(prefix)
        if magic != MAGIC or version != VERSION or not 0 < n <= _MAX_HEADER:
            raise _CorruptEntry("bad magic, version or header length")
        if size is not None and _PREFIX.size + n > size:
            raise _CorruptEntry(f"header length {n} runs past the end of the {size}-byte file")
        raw = f.read(n)
        if len(raw) != n:
            raise _CorruptEntry("truncated header")
        try:
            header = json.loads(raw)
            shape = tuple(_dimension(s) for s in header["shape"])
            if header["dtype"] != "uint8" or len(shape) != 4 or shape[-1] != 3 or min(shape) <= 0:
                raise ValueError(f"shape {shape}, dtype {header['dtype']!r}")
            header["shape"] = shape
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise _CorruptEntry(f"bad header: {type(exc).__name__}: {str(exc)[:200]}") from None
        start = _PREFIX.size + n
        if size is not None and start + math.prod(shape) != size:
            raise _CorruptEntry(
                f"the header declares {math.prod(shape)} bytes of pixels {shape}, the file holds {size - start}"
            )
        return header, start

    def _read(self, key: str) -> np.ndarray | None:
        """The frames, or None when absent; a damaged entry is removed (with a warning), counted
        and reported absent, so the caller regenerates it."""
        rel = self._rel(key)
        size = self._store.size(rel)
        if size is None:
            return None
        try:
            f = self._store.open_read(rel)
        except FileNotFoundError:  # pruned since
            return None
        except OSError as exc:  # a folder, a FIFO, no permission: not an entry this cache can serve
            self._drop(rel, f"cannot open it: {exc}")
            return None
        try:
            with f:
                header, start = self._read_header(f, size)
                n = size - start  # == the declared pixel bytes, checked against the file's size
                buf = bytearray(n)
                got = f.readinto(buf)
                while got is not None and got < n:  # readinto may return short counts
                    more = f.readinto(memoryview(buf)[got:])
                    if not more:
                        break
                    got += more
                if got != n or f.read(1):
                    raise _CorruptEntry("truncated or oversized pixel data")
            if hashlib.blake2b(buf, digest_size=32).hexdigest() != header.get("blake2b"):
                raise _CorruptEntry("digest mismatch")
        except FileNotFoundError:  # pruned between open and read
            return None
        except (_CorruptEntry, OSError, MemoryError) as exc:
            self._drop(rel, str(exc) or type(exc).__name__)
            return None
        self._store.touch(rel, time.time())
        return np.frombuffer(buf, dtype=np.uint8).reshape(header["shape"])

    def _drop(self, rel: str, why: str) -> None:
        """Remove a damaged entry (best effort: a read-only shared cache keeps it), count it, say so."""
        log.warning("scene cache: dropping the damaged entry %s (%s); the scene is generated again",
                    self._store.path(rel), why)  # fmt: skip
        try:
            self._store.remove(rel)
        except OSError as exc:
            log.warning("scene cache: could not remove %s: %s", self._store.path(rel), exc)
        self._bump(corrupt=1)

    def get(self, key: str) -> np.ndarray | None:
        """The cached frames for ``key`` (a hit), or ``None`` (a miss).

        The digest is checked first: a corrupt or truncated entry is deleted and counted in
        ``stats()["corrupt"]``, and ``None`` is returned, so the caller regenerates it.
        """
        frames = self._read(key)
        if frames is None:
            self._bump(misses=1)
        else:
            self._bump(hits=1)
        return frames

    def __contains__(self, key: str) -> bool:
        return self._store.size(self._rel(key)) is not None

    def put(self, key: str, frames: np.ndarray, *, fields: Mapping[str, Any] | None = None) -> None:
        """Store ``frames`` (uint8 ``(T, H, W, 3)``) under ``key``, atomically.

        ``fields`` (the key's source fields) are kept in the header for ``ls``; they are not
        checked against the key.
        """
        rel = self._rel(key)
        frames = check_frames(frames)
        header = {
            "shape": list(frames.shape),
            "dtype": "uint8",
            "blake2b": hashlib.blake2b(memoryview(frames).cast("B"), digest_size=32).hexdigest(),
            "created": time.time(),
            "fields": json.loads(json.dumps(dict(fields or {}), default=str, ensure_ascii=False)),
        }
        raw = json.dumps(header, ensure_ascii=False, sort_keys=True).encode("utf-8")
        self._store.write_atomic(
            rel, [_PREFIX.pack(MAGIC, VERSION, len(raw)), raw, memoryview(frames).cast("B")]
        )
        if isinstance(self._store, _FsspecStore):
            self._store.touch(rel, header["created"])
        self._bump(puts=1)

    def get_or_create(
        self, key: str, fn: Callable[[], np.ndarray], *, fields: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, bool]:
        """``(frames, hit)``: the cached frames, or ``fn()``'s, stored before they are returned.

        Under a per-key lock: a second process asking for the same key while the first is
        computing it waits, then reads the first one's entry instead of computing it again.
        If ``fn`` raises, nothing is stored.
        """
        frames = self._read(key)
        if frames is not None:
            self._bump(hits=1)
            return frames, True
        with self._store.lock(key):
            frames = self._read(key)  # another process may have made it while we waited
            if frames is not None:
                self._bump(hits=1)
                return frames, True
            frames = fn()
            try:
                self.put(key, frames, fields=fields)
            except OSError as exc:  # a full disk or a read-only cache costs the next render, not this one
                log.warning("scene cache: could not store %s in %s: %s", key[:12], self.location, exc)
        self._bump(misses=1)
        return frames, False

    def remove(self, key: str) -> bool:
        """Delete one entry; True if it existed."""
        rel = self._rel(key)
        existed = self._store.size(rel) is not None
        with self._store.lock(key):
            self._store.remove(rel)
            if isinstance(self._store, _FsspecStore):
                self._store.remove(rel + _USED)
        return existed

    # -- listing and housekeeping -------------------------------------------------------------

    def ls(self) -> list[CacheEntry]:
        """Every entry, most recently used first (unreadable entries are skipped)."""
        out = []
        for rel, size in self._store.entries():
            key = rel.rsplit("/", 1)[-1][: -len(_SUFFIX)]
            if not _KEY.match(key):
                continue
            try:
                with self._store.open_read(rel) as f:
                    header, _ = self._read_header(f, size)
                created = float(header.get("created") or 0.0)
            except (OSError, _CorruptEntry, TypeError, ValueError):
                continue  # ls only looks; a read of the entry drops it
            fields = header.get("fields") if isinstance(header.get("fields"), dict) else {}
            used = self._store.last_used(rel) or created
            out.append(CacheEntry(key, size, created, used, header["shape"], fields))
        out.sort(key=lambda e: e.last_used, reverse=True)
        return out

    def stats(self) -> dict[str, Any]:
        """``{"location", "entries", "bytes", "hits", "misses", "corrupt", "puts"}``."""
        sizes = [size for _, size in self._store.entries()]
        return {"location": self.location, "entries": len(sizes), "bytes": sum(sizes), **self._counters()}

    def prune(self, max_bytes: int | str) -> list[CacheEntry]:
        """Evict least-recently-used entries until the cache holds at most ``max_bytes``.

        ``max_bytes`` may be a size string (``"2GB"``). Returns the evicted entries.
        """
        limit = parse_size(max_bytes)
        entries = sorted(self.ls(), key=lambda e: e.last_used)
        total = sum(e.bytes for e in entries)
        evicted = []
        for e in entries:
            if total <= limit:
                break
            self.remove(e.key)
            total -= e.bytes
            evicted.append(e)
        return evicted

    # -- counters -----------------------------------------------------------------------------

    def _counters(self) -> dict[str, int]:
        try:
            data = self._store.read_bytes(_STATS)
            loaded = json.loads(data) if data else {}
        except (OSError, ValueError, RecursionError):
            loaded = {}
        if not isinstance(loaded, dict):
            loaded = {}
        counters = {}
        for k in _COUNTERS:  # a damaged stats file restarts its counters, it never breaks a read
            value = loaded.get(k)
            counters[k] = value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
        return counters

    def _bump(self, **deltas: int) -> None:
        try:
            with self._store.lock("stats"):
                counters = self._counters()
                for k, v in deltas.items():
                    counters[k] += v
                self._store.write_atomic(_STATS, [json.dumps(counters, sort_keys=True).encode()])
        except OSError:  # counters are best effort (e.g. a read-only shared cache)
            pass
