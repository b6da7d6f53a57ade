"""Running jobs resumably, with an executor passed in: lock, recover, render, record.

This process alone writes the manifest and the audit log, whatever the executor: workers only
render and report back. A job's outcome is recorded the moment it is known, so a run that is
killed resumes exactly: finished clips are never rendered twice, interrupted ones are cleaned
up and rendered again.

Example:
    >>> from brandstudio.batch import LocalExecutor, jobs_from_requests, run_jobs   # doctest: +SKIP
    >>> jobs = jobs_from_requests([{"template": "product-hero",                      # doctest: +SKIP
    ...                             "variables": {"product": "Night Roast"}}], Path("renders"))
    >>> summary = run_jobs(LocalExecutor(studio), jobs, name="batch",                # doctest: +SKIP
    ...                    output_dir=Path("renders"), manifest=Path("renders/batch.jsonl"),
    ...                    audit_dir=Path("renders/audit"))
    >>> summary.exit_code                                                            # doctest: +SKIP
    0
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..errors import CampaignError
from ..progress import Progress
from ..request import RenderRequest, RenderResult
from .audit import audit_record, who
from .events import EventCallback, JobEvent, with_plain_display
from .execute import Executor, JobOutcome, LocalExecutor, Studio
from .jobs import Job, jobs_from_requests
from .manifest import JobPlan, JsonLinesWriter, is_done, plan_jobs, read_manifest, utc_now
from .publish import clean_temp_files, remove_outputs
from .summary import CampaignSummary, JobFailure

__all__ = ["LOCK_FILE", "render_many_resumable", "run_jobs"]

#: held in the output folder for the whole of a run
LOCK_FILE = ".campaign.lock"


def run_jobs(
    executor: Executor,
    jobs: Sequence[Job],
    *,
    name: str,
    output_dir: Path,
    manifest: Path,
    audit_dir: Path | None,
    retry_failed: bool = True,
    on_event: EventCallback | None = None,
) -> CampaignSummary:
    """Render the ``jobs`` that are not done yet with ``executor``; one failure never stops the rest.

    Holds ``<output_dir>/.campaign.lock`` for the whole run, so two runs of one batch cannot
    interleave; a second one fails at once with :class:`~brandstudio.errors.CampaignError`.
    No jobs at all is a :class:`~brandstudio.errors.CampaignError` too: an empty batch that
    "succeeds" would hide a brief that lost its rows.

    Args:
        executor: renders the jobs (:class:`~brandstudio.batch.execute.LocalExecutor`, or the
            Ray executor of :mod:`brandstudio.distributed`).
        jobs: every job of the batch, done or not.
        name: the batch's name, recorded in the manifest and the audit log.
        output_dir: the folder of the lock (and of the clips, for a local batch).
        manifest: the JSON-lines manifest, read to resume and appended to.
        audit_dir: where ``<profile-id>.jsonl`` audit logs go, or None for none.
        retry_failed: render jobs that failed in an earlier run again (default) or skip them.
        on_event: called with a :class:`~brandstudio.batch.events.JobEvent` when a job starts,
            as its render progresses, and when it is done or failed.
    """
    if not jobs:
        raise CampaignError(
            f"batch {name!r} has no jobs to render",
            file=str(manifest),
            fix="give it at least one job (a campaign's CSV needs a data row under its header)",
        )
    t_start = time.perf_counter()
    emit = on_event or (lambda ev: None)
    audit_path = audit_dir / f"{executor.profile_id}.jsonl" if audit_dir is not None else None

    # 1. hold the lock, open the manifest and the audit log (append only)
    with _exclusive(name, output_dir), contextlib.ExitStack() as opened:
        mf = JsonLinesWriter(manifest)
        opened.callback(mf.close)
        audited = read_manifest(audit_path) if audit_path is not None else {}
        audit = JsonLinesWriter(audit_path) if audit_path is not None else None
        if audit is not None:
            opened.callback(audit.close)

        # 2. clean up after a killed run: temp files, and whatever an interrupted job left
        clean_temp_files([output_dir, *(j.output.parent for j in jobs)], owned=jobs)
        plans = [_recover(p, audited, mf, name) for p in plan_jobs(jobs, manifest)]

        # 3. what is left to render
        skipped = [p.job for p in plans if p.status == "done"]
        todo = [p.job for p in plans if p.status != "done" and (retry_failed or p.status != "failed")]
        kept_failures = [
            JobFailure(p.job, _error_type(p.record), p.error or "")
            for p in plans
            if p.status == "failed" and not retry_failed
        ]

        # 4. render (one model per worker) and record each outcome as soon as it is known
        user, host = who()
        rendered: list[Job] = []
        failures: list[JobFailure] = []
        results: dict[str, RenderResult] = {}

        def started(i: int, job: Job) -> None:
            mf.write(_record(name, job, "started", inputs=job.inputs))
            emit(JobEvent(job, "started", i, len(todo)))

        def progressed(i: int, job: Job, progress: Progress) -> None:
            emit(JobEvent(job, "stage", i, len(todo), stage=progress.stage, progress=progress))

        for i, o in executor.run(todo, started, progressed):
            if o.result is None:
                mf.write(_failed_record(name, o))
                failures.append(JobFailure(o.job, o.error_type or "Error", o.message or ""))
                emit(JobEvent(o.job, "failed", i, len(todo), seconds=o.seconds, error=o.message))
                continue
            if audit is not None:
                audit.write(audit_record(name, o, user, host))
            mf.write(_done_record(name, o))
            rendered.append(o.job)
            results[o.job.id] = o.result
            emit(JobEvent(o.job, "done", i, len(todo), seconds=o.seconds))

    return CampaignSummary(
        name=name,
        total=len(jobs),
        rendered=tuple(rendered),
        skipped=tuple(skipped),
        failed=tuple(kept_failures + failures),
        manifest=manifest,
        audit=audit_path,
        seconds=round(time.perf_counter() - t_start, 3),
        results=results,
    )


def render_many_resumable(
    studio: Studio, requests: Iterable[RenderRequest | Mapping], *, manifest: Path, quiet: bool = True
) -> list[RenderResult]:
    """:meth:`BrandStudio.render_many` with a manifest: resumable; failures raised together at the end.

    ``quiet=False`` prints one line per finished clip on stderr.
    """
    jobs = jobs_from_requests(requests, studio.output_dir / studio.profile.id, studio.profile.spec.deliveries)
    if not jobs:  # like render_many without a manifest: nothing asked, nothing made
        return []
    summary = run_jobs(
        LocalExecutor(studio),
        jobs,
        name=manifest.stem,
        output_dir=manifest.parent,
        manifest=manifest,
        audit_dir=manifest.parent / "audit",
        on_event=with_plain_display(None, quiet=quiet),
    )
    if summary.failed:
        err = CampaignError(
            f"{len(summary.failed)} of {summary.total} renders failed:\n"
            + "\n".join(
                f"  {f.job.source}: {f.error_type}: {f.message.splitlines()[0]}" for f in summary.failed
            ),
            profile=studio.profile.id,
            file=str(manifest),
            fix="fix those requests and call render_many again; finished clips are not rendered twice",
        )
        err.summary = summary
        raise err
    return [
        summary.results.get(j.id)
        or RenderResult.model_validate_json(j.files[0].with_suffix(".json").read_text(encoding="utf-8"))
        for j in jobs
    ]


@contextlib.contextmanager
def _exclusive(name: str, output_dir: Path) -> Iterator[None]:
    """Hold ``<output_dir>/.campaign.lock``; fail at once when another run holds it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(output_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise CampaignError(
            f"another run of campaign {name!r} is in progress (it holds {output_dir / LOCK_FILE})",
            value=str(output_dir),
            fix="wait for it to finish; a killed run releases the lock automatically",
        ) from None
    try:
        yield
    finally:
        lock.release()


def _recover(p: JobPlan, audited: Mapping[str, dict], mf: JsonLinesWriter, name: str) -> JobPlan:
    """An interrupted job is recorded done when its clip was finished and audited just before
    the kill; otherwise whatever it left at its output paths is removed, and it renders again."""
    if p.status != "interrupted":
        return p
    a = audited.get(p.job.id)
    if a and str(a.get("time", "")) >= str(p.record.get("time", "~")) and is_done({**a, "status": "done"}, p.job):
        keys = ("sha256", "size", "files", "seed", "model", "profile", "profile_fingerprint")
        rec = _record(name, p.job, "done", recovered=True, **{k: a.get(k) for k in keys})
        mf.write(rec)
        return JobPlan(p.job, "done", rec)
    remove_outputs(p.job)
    return p


def _error_type(record: Mapping) -> str:
    """The error type a failed record names (``"Error"`` when the record does not say)."""
    error = record.get("error")
    return str(error.get("type") or "Error") if isinstance(error, dict) else "Error"


def _record(name: str, job: Job, status: str, **fields: Any) -> dict:
    """A manifest line: which job, its status now, and what goes with that status."""
    return {
        "job": job.id, "campaign": name, "source": job.source, "output": job.location,
        "status": status, "time": utc_now(), **fields,
    }  # fmt: skip


def _failed_record(name: str, o: JobOutcome) -> dict:
    worker = {"worker": o.worker} if o.worker else {}
    error = {"type": o.error_type, "message": o.message, "expected": o.expected}
    return _record(name, o.job, "failed", seconds=o.seconds, **worker, error=error)


def _done_record(name: str, o: JobOutcome) -> dict:
    r, worker = o.result, ({"worker": o.worker} if o.worker else {})
    return _record(
        name, o.job, "done", seconds=o.seconds, sha256=o.sha256, size=o.size, seed=r.seed,
        model=r.model_id, profile=r.profile_id, profile_fingerprint=r.profile_fingerprint,
        timings=dict(r.timings), cache=r.cache, files=list(o.files), **worker,
    )  # fmt: skip
