"""What the review app may hand out: a job's files leave the app (a download link, an API file
URL, ``brandstudio export``) only when the job is done and, for a brand whose profile says
``[review] required = true``, its latest review is an approval.

This module owns that rule and the export; the web side and the command line ask it.

Example:
    >>> report = export_jobs(Session, data_dir, "qinglan-tea", Path("handoff/"))      # doctest: +SKIP
    >>> [(e.job, e.files) for e in report.exported], [(s.job, s.reason) for s in report.skipped]  # doctest: +SKIP
    ([(12, ['handoff/12/product-hero.mp4'])], [(13, 'not approved ([review] required)')])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..errors import AppError, BrandStudioError
from ..files import sha256_file, write_bytes_atomic
from ..profile import load_profile
from .db import Brand, Job
from .worker import RENDERS

__all__ = ["ExportReport", "Exported", "Skipped", "approved", "export_jobs", "review_required"]

SessionFactory = Callable[[], Session]


def approved(job: Job) -> bool:
    """Whether the job's latest verdict is an approval (a later "changes requested" undoes one)."""
    if not job.reviews:
        return False
    return max(job.reviews, key=lambda r: (r.created_at, r.id)).verdict == "approved"


def review_required(profile_path: str | Path) -> bool:
    """The brand profile's ``[review] required``."""
    return load_profile(profile_path).spec.review.required


@dataclasses.dataclass(frozen=True)
class Exported:
    job: int
    files: list[str]


@dataclasses.dataclass(frozen=True)
class Skipped:
    job: int
    reason: str


@dataclasses.dataclass(frozen=True)
class ExportReport:
    exported: list[Exported]
    skipped: list[Skipped]


def export_jobs(
    session_factory: SessionFactory,
    data_dir: Path,
    brand_id: str,
    target: Path,
    *,
    jobs: Sequence[int] | None = None,
) -> ExportReport:
    """Copy the files of ``brand_id``'s done jobs (``jobs``: only these) into ``target/<job id>/``,
    each checked against the SHA-256 the worker recorded and written atomically (a hidden
    temporary file renamed into place). A job that may not be handed out (not done, not approved
    where the brand requires it, a file missing or changed) is skipped with the reason; a job
    already exported with the same bytes is left as it is."""
    data_dir, target = Path(data_dir).resolve(), Path(target)
    with session_factory() as session:
        brand = session.get(Brand, brand_id)
        if brand is None:
            known = ", ".join(session.scalars(select(Brand.id).order_by(Brand.id))) or "none"
            raise AppError(f"no brand {brand_id!r} in the app (brands: {known})", field="brand", value=brand_id)
        query = select(Job).where(Job.brand_id == brand_id).options(selectinload(Job.reviews)).order_by(Job.id)
        if jobs is not None:
            query = query.where(Job.id.in_(list(jobs)))
        rows = session.scalars(query).all()
    if jobs is not None and (missing := sorted(set(jobs) - {j.id for j in rows})):
        raise AppError(f"brand {brand_id} has no job {', '.join(map(str, missing))}", field="job", value=missing[0])
    try:
        required = review_required(brand.profile_path)
    except BrandStudioError as exc:
        raise AppError(f"the profile of brand {brand_id} does not load: {exc.message}",
                       file=brand.profile_path) from None  # fmt: skip
    exported, skipped = [], []
    for job in rows:
        reason = _why_not(job, required)
        if reason is None:
            try:
                exported.append(Exported(job.id, _copy_files(job, data_dir / RENDERS, target / str(job.id))))
                continue
            except _Unfit as exc:
                reason = str(exc)
        skipped.append(Skipped(job.id, reason))
    return ExportReport(exported, skipped)


def _why_not(job: Job, required: bool) -> str | None:
    if job.status != "done":
        return f"{job.status}, not done"
    if required and not approved(job):
        return "not approved ([review] required = true in the brand's profile)"
    return None


class _Unfit(Exception):
    """A done job's file cannot be handed out (gone, outside the renders folder, changed)."""


def _copy_files(job: Job, renders: Path, folder: Path) -> list[str]:
    records = (job.result or {}).get("files") or []
    sources = []
    for index, output in enumerate(job.outputs or []):
        path = Path(output).resolve()
        if not path.is_relative_to(renders) or not path.is_file():
            raise _Unfit(f"its file {index} is gone from the app's renders folder")
        expected = records[index].get("sha256") if index < len(records) else None
        if expected is None or sha256_file(path) != expected:
            raise _Unfit(f"its file {index} does not match the SHA-256 the worker recorded")
        sources.append((path, expected))
    written = []
    for path, digest in sources:
        dest = folder / path.name
        if not (dest.is_file() and sha256_file(dest) == digest):
            write_bytes_atomic(dest, _blocks(path))
        written.append(str(dest))
    return written


def _blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(1 << 20), b"")
