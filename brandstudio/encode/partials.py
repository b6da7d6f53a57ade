"""Hidden partial files: held while they are written, removed by the next run once stale.

Every file a render delivers is written under a hidden temporary name beside it and renamed
into place when complete (:mod:`brandstudio.files`, :mod:`.mp4`, :mod:`brandstudio.provenance`).
A run killed with ``kill -9`` cannot remove them, so the next run into the same folder does,
with :func:`remove_partials`. It must never remove a file that a run still in progress (another
process, another clip of a campaign, a Ray worker) is writing, so the rule is:

1. Only names brandstudio makes are touched (:data:`PARTIAL_NAMES`):
   ``.<stem>.XXXXXXXX.part.<ext>`` (``files.temp_path``: the encoder's ``.part.mp4`` and
   ``.part.f32``, sidecars' ``.part.srt/.vtt/.json/.html``), ``.<stem>.XXXXXXXX.tmp``
   (``files.write_bytes_atomic``), ``.<stem>.XXXXXXXX.signed.mp4`` (C2PA signing) and the
   unsigned staging copy ``.<stem>.unsigned.<12 hex>.mp4``; ``XXXXXXXX`` being
   ``tempfile.mkstemp``'s eight random characters.
2. A file that is *held* is never removed. The encoder holds an exclusive ``flock`` on its
   ``.part.mp4`` and ``.part.f32`` for their whole life (:func:`claim_temp`); the kernel drops
   the lock when the process dies, ``kill -9`` included. So an encoder partial that is not held
   belongs to a dead writer and is removed at once.
3. Any other partial (written by code that holds no lock, for at most a few seconds) is removed
   when it is older than :data:`PARTIAL_GRACE_S` (10 minutes since its last write), or at once
   when the caller owns its output (``owned_stems``: a campaign run, which holds the output
   folder's ``.campaign.lock``, owns its jobs' clips).

Without ``fcntl`` (Windows) nothing can be held: encoder partials then follow rule 3 too.

Example:
    >>> import os, tempfile, time
    >>> folder = tempfile.mkdtemp()
    >>> old = os.path.join(folder, ".clip.a1b2c3d4.part.srt")
    >>> open(old, "w").close(); os.utime(old, (0, 0))            # a sidecar temp from 1970
    >>> [p.name for p in remove_partials(folder)]
    ['.clip.a1b2c3d4.part.srt']
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from ..files import temp_path

try:  # POSIX: advisory locks that the kernel releases when the holder dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PARTIAL_GRACE_S", "PARTIAL_NAMES", "claim_temp", "partial_stem", "remove_partials"]

log = logging.getLogger(__name__)

#: how old (seconds since its last write) an unheld partial must be before another run removes it
PARTIAL_GRACE_S = 600.0

_RANDOM = r"[a-z0-9_]{8}"  # tempfile.mkstemp's names: eight of a-z, 0-9 and _
#: the hidden names brandstudio writes beside an output (group ``stem``: the output's stem)
PARTIAL_NAMES = (
    re.compile(rf"^\.(?P<stem>.+)\.{_RANDOM}\.part\.(?P<ext>mp4|mov|f32|srt|vtt|json|html)$"),
    re.compile(rf"^\.(?P<stem>.+)\.{_RANDOM}\.(?P<ext>tmp|signed\.mp4|signed\.mov)$"),
    re.compile(r"^\.(?P<stem>.+)\.(?P<ext>unsigned)\.[0-9a-f]{12}\.(?:mp4|mov)$"),  # complete, not held: rule 3
)
#: the partials the encoder holds locked while it writes them (rule 2)
_HELD_KINDS = ("mp4", "mov", "f32")


def partial_stem(name: str) -> tuple[str, str] | None:
    """``(output stem, kind)`` of a brandstudio partial's file name, or None for any other name.

    Example:
        >>> partial_stem(".spring-hero.k3j_x9a0.part.mp4")
        ('spring-hero', 'mp4')
        >>> partial_stem("..spring-hero.unsigned.0123456789ab.k3j_x9a0.part.mp4")   # the staging copy's
        ('spring-hero', 'mp4')
        >>> partial_stem(".spring-hero.qc.k3j_x9a0.part.json"), partial_stem(".spring-hero.unsigned.0123456789ab.mp4")
        (('spring-hero', 'json'), ('spring-hero', 'unsigned'))
        >>> partial_stem("spring-hero.mp4"), partial_stem(".notes.part.txt")
        (None, None)
    """
    for pattern in PARTIAL_NAMES:
        m = pattern.match(name)
        if m:
            stem = m.group("stem")
            # the encoder's temp for a staging copy, and the QC report's: the same clip
            staged = re.fullmatch(r"\.(.+)\.unsigned\.[0-9a-f]{12}", stem)
            stem = staged.group(1) if staged else stem.removesuffix(".qc")
            return stem, m.group("ext")
    return None


def claim_temp(path: Path, suffix: str) -> tuple[Path, int | None]:
    """A new hidden temp file beside ``path`` (:func:`brandstudio.files.temp_path`), held with
    an exclusive lock until the returned descriptor is closed (None where locks do not exist).

    Another run's :func:`remove_partials` may remove the file between its creation and the lock;
    the lock is then on a file that no longer has a name, which is checked, and another one is
    made, so a held file is always the one at the returned path.
    """
    while True:
        tmp = temp_path(path, suffix)
        if fcntl is None:
            return tmp, None
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:  # removed before we could open it: take another name
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            now = os.stat(tmp)
            if st.st_nlink > 0 and (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                return tmp, fd
        except FileNotFoundError:
            pass
        except OSError:  # a file system without locks (some NFS mounts): unheld, cleaned by age
            os.close(fd)
            return tmp, None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed while we waited for the lock: take another name


def _lock_state(path: Path) -> tuple[str, int | None]:
    """``("held", None)``: a live writer holds it; ``("free", fd)``: nobody does, and ``fd``
    now holds it (the caller closes it); ``("unknown", None)``: locks cannot tell.

    Opening never blocks (a FIFO with a partial's name is not waited on)."""
    if fcntl is None:
        return "unknown", None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return "unknown", None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return "held", None
    except OSError:  # a file system without locks
        os.close(fd)
        return "unknown", None
    return "free", fd


def remove_partials(folder: str | Path, *, owned_stems: Iterable[str] = (), now: float | None = None) -> list[Path]:
    """Remove the stale brandstudio partials directly in ``folder`` (rules: the module docstring).

    Args:
        folder: an output folder (not searched recursively; a missing folder has none).
        owned_stems: stems of outputs the caller owns (it holds the folder's run lock): their
            unheld partials are removed whatever their age.
        now: the time to measure ages from (default: now).

    Returns the paths removed. Never raises for a file it cannot remove (it stays, and is logged).
    """
    folder, owned = Path(folder), set(owned_stems)
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        found = partial_stem(entry.name)
        if found is None:
            continue
        stem, kind = found
        path = Path(entry.path)
        state, fd = _lock_state(path)
        try:
            if state == "held":
                continue
            dead_writer = state == "free" and kind in _HELD_KINDS  # rule 2: a live encoder would hold it
            try:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > PARTIAL_GRACE_S
            except OSError:
                continue
            if dead_writer or stem in owned or stale:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    log.warning("cannot remove the partial file %s left by a killed run: %s", path, exc)
                    continue
                removed.append(path)
        finally:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
    if removed:
        log.info("removed %d partial file(s) left by a killed run in %s", len(removed), folder)
    return removed
