"""The manifest: one JSON line per job event, appended and fsynced; the last line per job wins.

A job is *done* when its last record says so **and** its clip is where the record says, with
the recorded content. A run killed mid-job leaves a ``started`` record (the job is
*interrupted*); a run killed mid-write leaves a torn last line, which is ignored.

A manifest is read as bytes and decoded line by line, so that one torn or damaged line (cut in
the middle of a multi-byte UTF-8 character, overwritten with zeros by a crash, not JSON, not a
record) costs only that line's record, never the whole file: its job is planned from the
records before it (at worst ``pending`` again, and rendered once more).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..files import sha256_file
from .jobs import Job
from .publish import published_size

__all__ = ["JobPlan", "JsonLinesWriter", "is_done", "parse_record", "plan_jobs", "read_manifest", "utc_now"]

log = logging.getLogger(__name__)


def parse_record(line: bytes) -> dict | None:
    """One manifest line as a record, or None when it is not one (torn, undecodable, not JSON,
    not an object with a text ``job`` id).

    Example:
        >>> parse_record(b'{"job": "a1", "status": "done"}\\n')
        {'job': 'a1', 'status': 'done'}
        >>> parse_record('{"job": "a1", "source": "\u65e5'.encode()[:-1]) is None   # cut mid-character
        True
    """
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("job"), str):
        return None
    if not isinstance(rec.get("status", ""), str) or not isinstance(rec.get("error", {}), dict):
        return None  # readers rely on these types: a record that breaks them is damaged
    return rec


def read_manifest(path: str | Path) -> dict[str, dict]:
    """The last record per job id. A line that is not a record (a torn last line left by a run
    killed mid-write, bytes that are not UTF-8, anything that is not a JSON record) is skipped
    with a warning; a manifest that cannot be read at all counts as empty."""
    path = Path(path)
    last: dict[str, dict] = {}
    if not path.is_file():
        return last
    skipped = 0
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = parse_record(line)
                if rec is None:
                    skipped += 1
                    continue
                last[rec["job"]] = rec
    except OSError as exc:
        log.warning("cannot read %s (%s): every job is planned as if it had never run", path, exc)
        return {}
    if skipped:
        # expected after a kill (the README promises it), and the line stays: info, not a warning each run
        log.info("%s: %d damaged line(s) ignored (a run killed mid-write?)", path, skipped)
    return last


class JsonLinesWriter:
    """JSON lines, appended (never rewritten): one ``json.dumps`` + flush + fsync per record.

    A file whose last line was torn (no newline at its end: a run killed mid-write) gets a
    newline first, so the first new record starts a line of its own instead of being glued to
    the damaged one and lost with it.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        if not _ends_with_newline(path):
            self.fh.write("\n")

    def write(self, record: dict) -> None:
        self.fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def _ends_with_newline(path: Path) -> bool:
    """True for an empty file or one whose last byte is a newline."""
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def utc_now() -> str:
    """The time stamp of a record: ISO 8601, UTC, milliseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def is_done(rec: dict | None, job: Job) -> bool:
    """Recorded done, and every file of the job is where the record says with the recorded content.

    A local clip is hashed again (sha256). A clip on shared storage (fsspec URL) is checked by
    existence and size, not downloaded: re-reading hundreds of clips from a bucket to plan a run
    would cost more than the run; the sha256 stays in the manifest for anyone who wants to verify.
    A job with deliveries is done only when each delivered file is (its record lists them).
    """
    if not rec or rec.get("status") != "done":
        return False
    files = rec.get("files")
    if not isinstance(files, list):  # a record from before deliveries: the one clip
        files = [{"output": job.location, "sha256": rec.get("sha256"), "size": rec.get("size")}]
    recorded = {f.get("output"): f for f in files if isinstance(f, dict)}
    for path, location in zip(job.files, job.locations, strict=True):
        want = recorded.get(location)
        if want is None:
            return False
        if job.url:
            if published_size(location) != want.get("size"):
                return False
        elif not path.is_file() or sha256_file(path) != want.get("sha256"):
            return False
    return True


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """A job and what the manifest says about it.

    ``status``: ``"done"`` (recorded done and the MP4 on disk has the recorded sha256),
    ``"pending"`` (never run, or its output went missing or changed), ``"failed"`` (failed
    before; ``error`` says why) or ``"interrupted"`` (a run was killed while rendering it).
    """

    job: Job
    status: Literal["done", "pending", "failed", "interrupted"]
    record: dict | None = None

    @property
    def error(self) -> str | None:
        if self.status == "failed" and self.record:
            error = self.record.get("error")
            return str(error.get("message", "")) if isinstance(error, dict) else None
        return self.job.problem


def plan_jobs(jobs: Sequence[Job], manifest: Path) -> list[JobPlan]:
    """Every job with its status according to ``manifest``. Reads only."""
    records = read_manifest(manifest)
    out = []
    for job in jobs:
        rec = records.get(job.id)
        if is_done(rec, job):
            out.append(JobPlan(job, "done", rec))
        elif rec and rec.get("status") == "failed":
            out.append(JobPlan(job, "failed", rec))
        elif rec and rec.get("status") == "started":
            out.append(JobPlan(job, "interrupted", rec))
        else:
            out.append(JobPlan(job, "pending", rec))
    return out
