"""Rendering jobs: one job (:func:`execute_job`), and executors that render a list of them.

An executor has a ``profile_id`` and a ``run(jobs, started, on_progress)`` method that yields
``(index, JobOutcome)`` as outcomes become known, in any order. :class:`LocalExecutor` renders
in this process with one studio; :mod:`brandstudio.distributed` has one for a Ray cluster.
Either way :func:`execute_job` is the one place a job is rendered.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import BrandStudioError, CampaignError
from ..files import sha256_file
from ..progress import Progress, ProgressCallback
from ..request import RenderResult
from .jobs import Job
from .publish import clip_files, publish

__all__ = ["Executor", "JobOutcome", "LocalExecutor", "Studio", "execute_job"]

#: keyword arguments of ``Studio.render`` that a template variable cannot be named
RESERVED_VARIABLES = ("on_stage", "on_progress")


class Studio(Protocol):
    """What a batch needs of a :class:`~brandstudio.studio.BrandStudio` (passed in, not imported:
    the studio sits above this package)."""

    profile: Any  # a BrandProfile: ``.id`` names the audit log
    output_dir: Path

    def render(self, request: str, /, **kwargs: Any) -> RenderResult: ...


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """What rendering one job gave: the result and the clip's hash, or the error. Small and
    picklable: this is all that travels back from a cluster worker (no frames, no video)."""

    job: Job
    seconds: float
    result: RenderResult | None = None
    sha256: str | None = None  # the first file's (the clip's, or the first delivery's)
    size: int | None = None
    files: tuple[dict[str, Any], ...] = ()  # every file the job delivered: location, sha256, size
    error_type: str | None = None
    message: str | None = None
    expected: bool = True  # a BrandStudioError (bad input) rather than a crash
    worker: str | None = None


class Executor(Protocol):
    """Renders jobs and yields ``(index, outcome)`` for each, as soon as it is known."""

    profile_id: str

    def run(
        self,
        jobs: Sequence[Job],
        started: Callable[[int, Job], None],
        on_progress: Callable[[int, Job, Progress], None],
    ) -> Iterator[tuple[int, JobOutcome]]: ...


def execute_job(
    studio: Studio, job: Job, on_progress: ProgressCallback | None = None, *, worker: str | None = None
) -> JobOutcome:
    """Render one job, publish it to shared storage if it has a URL, hash it; never raises.

    The one place a job is rendered, for every executor (the Ray actors call it too).
    """
    t0 = time.perf_counter()
    try:
        result = _render_job(studio, job, on_progress)
        files = tuple(
            {"output": location, "sha256": sha256_file(f), "size": f.stat().st_size}
            for f, location in zip(job.files, job.locations, strict=True)
        )
        if job.url:
            publish(job)
    except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the rest
        known = isinstance(exc, BrandStudioError)
        for out in job.files:  # nothing of a failed job stays behind (no delivery of a half-made set)
            for f in clip_files(out):
                f.unlink(missing_ok=True)
        return JobOutcome(
            job, round(time.perf_counter() - t0, 4), error_type=type(exc).__name__,
            message=str(exc) if known else f"{type(exc).__name__}: {exc}", expected=known, worker=worker,
        )  # fmt: skip
    return JobOutcome(
        job, round(time.perf_counter() - t0, 4), result=result, sha256=files[0]["sha256"], size=files[0]["size"],
        files=files, worker=worker,
    )  # fmt: skip


class LocalExecutor:
    """Renders jobs one after the other in this process, with one studio (one loaded model)."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.profile_id = studio.profile.id

    def run(
        self,
        jobs: Sequence[Job],
        started: Callable[[int, Job], None],
        on_progress: Callable[[int, Job, Progress], None],
    ) -> Iterator[tuple[int, JobOutcome]]:
        for i, job in enumerate(jobs, start=1):
            started(i, job)
            yield i, execute_job(self.studio, job, lambda p, i=i, job=job: on_progress(i, job, p))


def _render_job(studio: Studio, job: Job, on_progress: ProgressCallback | None) -> RenderResult:
    if job.problem:
        raise CampaignError(job.problem, field=job.source)
    for name in RESERVED_VARIABLES:
        if name in job.variables:
            raise CampaignError(f"{job.source}: {name!r} cannot be a template variable name")
    kwargs: dict[str, Any] = {
        "aspect": job.aspect,
        "seed": job.seed,
        "output": job.output,
        "duration": job.duration,
        "resolution": job.resolution,
        "deliveries": job.deliveries,
    }
    return studio.render(job.template, **kwargs, **job.variables, on_progress=on_progress)
