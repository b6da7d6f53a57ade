"""A clip's files: where a render puts them, moving them to shared storage, and cleaning up.

A render writes ``<name>.mp4`` and its sidecars (captions, RenderResult, QC report) through
hidden ``.<name>.*.part.*`` temp files renamed into place (:mod:`brandstudio.files`). When a
job's output is an fsspec URL (``s3://bucket/spring/x.mp4``, ``file:///shared/x.mp4``), the
clip is rendered to a local staging path and :func:`publish` uploads it, the MP4 last, so that
the MP4's presence at its URL means the clip is complete.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from pathlib import Path

from ..encode import remove_partials
from .jobs import Job

__all__ = [
    "SIDECARS",
    "clean_temp_files",
    "clip_files",
    "is_url",
    "publish",
    "published_size",
    "remove_outputs",
]

#: the files a render writes beside ``<name>.mp4``
SIDECARS = (".srt", ".vtt", ".json", ".qc.json", ".qc.html")


def is_url(location: str | Path) -> bool:
    """``True`` for an fsspec URL (``s3://...``, ``file:///...``), ``False`` for a plain path."""
    return isinstance(location, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location) is not None


def clip_files(out: Path) -> list[Path]:
    """The files a render writes for ``out``: the MP4, captions, RenderResult, QC report."""
    return [out, *(out.with_name(out.stem + s) for s in SIDECARS)]


def publish(job: Job) -> None:
    """Move a rendered clip and its sidecars from ``job.output`` to ``job.url`` (shared storage);
    with deliveries, every delivered file and its sidecars, to the same folder.

    Each file is uploaded under a temporary name and moved into place, sidecars first and the
    clips last, so a clip's presence at its URL means it is complete; the local staging files are
    deleted afterwards. On object stores (S3, GCS) an upload is already all-or-nothing.
    """
    import fsspec  # optional backends (s3fs, gcsfs) load with it

    fs, dest = fsspec.core.url_to_fs(job.url)
    parent = dest.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    clips = [f for f in job.files if f.exists()]
    sidecars = [f for out in job.files for f in clip_files(out)[1:] if f.exists()]
    for f in sidecars + clips:
        tmp = f"{parent}/.{f.name}.part.{uuid.uuid4().hex[:8]}"
        fs.put_file(str(f), tmp)
        fs.mv(tmp, f"{parent}/{f.name}")
    for f in sidecars + clips:
        f.unlink(missing_ok=True)


def published_size(url: str) -> int | None:
    """The size of the file at ``url``, or None when it is not there (or cannot be read)."""
    import fsspec  # optional backends (s3fs, gcsfs) load with it

    fs, path = fsspec.core.url_to_fs(url)
    try:
        return fs.size(path) if fs.exists(path) else None
    except OSError:
        return None


def remove_outputs(job: Job) -> None:
    """Whatever an interrupted job may have left at its output paths (local and shared storage)."""
    for out in job.files:
        for f in clip_files(out):
            f.unlink(missing_ok=True)
    if job.url:
        import fsspec  # optional backends (s3fs, gcsfs) load with it

        fs, dest = fsspec.core.url_to_fs(job.url)
        parent = dest.rsplit("/", 1)[0]
        for location in job.locations:
            for url in _published_files(location):
                path = fsspec.core.url_to_fs(url)[1]
                if fs.exists(path):
                    fs.rm(path)
            for stray in fs.glob(f"{parent}/.{Path(location).stem}.*.part.*"):
                fs.rm(stray)


def clean_temp_files(dirs: Iterable[Path], owned: Iterable[Job] = ()) -> list[Path]:
    """Delete the partial files that killed renders left in ``dirs``.

    The ``owned`` jobs' partials go whatever their age (the caller holds the run lock of their
    output folder); any other partial only when no live writer holds it and it is stale
    (:func:`brandstudio.encode.remove_partials` states the rule).
    """
    stems = {f.stem for j in owned for f in j.files}
    removed: list[Path] = []
    for d in set(dirs):
        removed += remove_partials(d, owned_stems=stems)
    return removed


def _published_files(url: str) -> list[str]:
    """The URLs of a published clip (``.mp4`` or ``.mov``) and its sidecars (see :func:`publish`)."""
    stem = url.rsplit(".", 1)[0]
    return [url, *(stem + s for s in SIDECARS)]
