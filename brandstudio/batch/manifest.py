"""The manifest: one JSON line per job event, appended and fsynced; the last line per job wins.

A job is *done* when its last record says so **and** its clip is where the record says, with
the recorded content. A run killed mid-job leaves a ``started`` record (the job is
*interrupted*); a run killed mid-write leaves a torn last line, which is ignored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..files import sha256_file
from .jobs import Job
from .publish import published_size

__all__ = ["JobPlan", "JsonLinesWriter", "is_done", "plan_jobs", "read_manifest", "utc_now"]


def read_manifest(path: str | Path) -> dict[str, dict]:
    """The last record per job id. A torn last line (a run killed mid-write) is ignored."""
    path = Path(path)
    last: dict[str, dict] = {}
    if not path.is_file():
        return last
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "job" in rec:
                last[rec["job"]] = rec
    return last


class JsonLinesWriter:
    """JSON lines, appended (never rewritten): one ``json.dumps`` + flush + fsync per record."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, record: dict) -> None:
        self.fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def utc_now() -> str:
    """The time stamp of a record: ISO 8601, UTC, milliseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def is_done(rec: dict | None, job: Job) -> bool:
    """Recorded done, and the clip is where the record says with the recorded content.

    A local clip is hashed again (sha256). A clip on shared storage (fsspec URL) is checked by
    existence and size, not downloaded: re-reading hundreds of clips from a bucket to plan a run
    would cost more than the run; the sha256 stays in the manifest for anyone who wants to verify.
    """
    if not rec or rec.get("status") != "done":
        return False
    if job.url:
        size = published_size(job.url)
        return size is not None and size == rec.get("size")
    if not job.output.is_file():
        return False
    return rec.get("sha256") == sha256_file(job.output)


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
            return self.record.get("error", {}).get("message")
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
