"""The job queue: a render asked for in the app is a row of ``jobs``; workers claim rows, hold
them under a lease, and report back. This module owns every change of a job's state::

    submit ──> queued ──claim──> running ──finish──> done
                 ▲                  │ └────fail────> failed
                 │   lease ran out  │                  ▲
                 └──requeue_expired─┴── (attempts used up)

**Claiming is safe with any number of workers**: :func:`claim` picks the oldest queued job
(``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL: workers skip each other's rows instead of
waiting) and takes it with a conditional ``UPDATE ... WHERE id = ? AND status = 'queued'``
whose row count says whether this worker got it; on SQLite the transaction is ``BEGIN
IMMEDIATE`` (:mod:`~brandstudio.app.db`), so claims are serialised and none can see a job another
has just taken. No job is ever held by two workers.

**A worker that dies releases its job**: it holds the job until ``lease_expires_at`` and
extends the lease while it works (:func:`heartbeat`, which may also record progress). When the
lease runs out, :func:`requeue_expired` puts the job back in the queue, or fails it with a
message that says why once it has been tried ``max_attempts`` times. A worker that lost its
lease is refused from then on: its :func:`heartbeat`, :func:`finish`, :func:`fail` and
:func:`release` raise :class:`~brandstudio.errors.LeaseLost`, so that it stops and drops what
it made. Every one of those is one conditional ``UPDATE`` (``WHERE status = 'running' AND
worker = ?``): checking and changing cannot be split by another worker.

Worker ids must be unique per process (:func:`worker_name`: host, pid and a random part).
Sessions come from :func:`~brandstudio.app.db.sessions` on an engine from
:func:`~brandstudio.app.db.make_engine`: on SQLite, a plain engine's deferred transactions
would fail with "database is locked" when workers race for a job.

Example:
    >>> Session = sessions(make_engine(data_dir=Path("/tmp/studio")))          # doctest: +SKIP
    >>> with Session() as session:                                              # doctest: +SKIP
    ...     job = submit(session, brand="aurora-coffee", template="product-hero",
    ...                  variables={"product": "夜烘 Night Roast"}, aspect="9:16")
    ...     session.commit()
    >>> me = worker_name()                                                      # doctest: +SKIP
    >>> job = claim(Session, me, lease_seconds=60)                              # doctest: +SKIP
    >>> heartbeat(Session, job.id, me, progress=Progress("generation", 3, 8))   # doctest: +SKIP
    >>> finish(Session, job.id, me, result={"seed": 7}, outputs=["renders/12.mp4"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, case, literal, select, update
from sqlalchemy.orm import Session

from ..errors import AppError, LeaseLost
from ..progress import Progress
from .db import Brand, Job, utcnow

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_MAX_ATTEMPTS",
    "Requeued",
    "claim",
    "fail",
    "finish",
    "heartbeat",
    "release",
    "requeue_expired",
    "submit",
    "worker_name",
]

#: how long a claimed job stays a worker's without a heartbeat
DEFAULT_LEASE_S = 60.0
#: how many times a job is handed to a worker before a lost lease fails it
DEFAULT_MAX_ATTEMPTS = 3
#: the error type of a job whose worker stopped reporting
WORKER_LOST = "WorkerLost"

SessionFactory = Callable[[], Session]


@dataclasses.dataclass(frozen=True)
class Requeued:
    """What :func:`requeue_expired` did: the ids of the jobs it put back, and of those it failed."""

    requeued: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()


def worker_name() -> str:
    """A worker id unique to this process: ``host:pid:random``.

    Example:
        >>> name = worker_name()
        >>> name.count(":"), name != worker_name()
        (2, True)
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def submit(
    session: Session,
    *,
    brand: str,
    template: str,
    variables: Mapping[str, Any] | None = None,
    aspect: str | None = None,
    deliveries: Sequence[str] = (),
    seed: int | None = None,
    duration: float | None = None,
    resolution: int | None = None,
    created_by: int | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job:
    """Queue a render for ``brand``: the job is added to ``session`` and flushed (it has its id),
    not committed, so that the caller commits it together with what goes with it (an audit
    event). Values are checked for shape here (plain JSON scalars for variables, names for
    deliveries); whether the template takes them is the render's to say, as for a campaign.

    Example:
        >>> job = submit(session, brand="aurora-coffee", template="product-hero",   # doctest: +SKIP
        ...              variables={"product": "Night Roast"}, deliveries=["reels"])
        >>> job.status, job.attempts                                                # doctest: +SKIP
        ('queued', 0)
    """
    if session.get(Brand, brand) is None:
        raise AppError(f"no brand {brand!r} in the app", field="brand", value=brand,
                       fix="add the brand (its profile) first, or pick one of the app's brands")  # fmt: skip
    if not isinstance(template, str) or not template.strip():
        raise AppError("a job needs a template name", field="template", value=template)
    variables = dict(variables or {})
    for name, value in variables.items():
        if not isinstance(name, str) or not (value is None or isinstance(value, (str, int, float, bool))):
            raise AppError(
                f"template variable {name!r} must be text, a number or true/false, got {type(value).__name__}",
                field=f"variables.{name}", value=value,
            )  # fmt: skip
        if isinstance(value, float) and not math.isfinite(value):
            raise AppError(f"template variable {name!r} is {value}", field=f"variables.{name}", value=value)
    if isinstance(deliveries, str) or not all(isinstance(d, str) for d in deliveries):
        raise AppError("deliveries must be a list of delivery names", field="deliveries", value=deliveries)
    if seed is not None and not (isinstance(seed, int) and 0 <= seed < 2**63):
        raise AppError(f"seed must be a whole number in [0, 2**63), got {seed!r}", field="seed", value=seed)
    if not (isinstance(max_attempts, int) and max_attempts >= 1):
        raise AppError(f"max_attempts must be at least 1, got {max_attempts!r}", field="max_attempts")
    job = Job(
        brand_id=brand, template=template, variables=variables, aspect=aspect, deliveries=list(deliveries),
        seed=seed, duration=duration, resolution=resolution, created_by=created_by, max_attempts=max_attempts,
    )  # fmt: skip
    session.add(job)
    session.flush()
    return job


def claim(
    session_factory: SessionFactory,
    worker_id: str,
    lease_seconds: float = DEFAULT_LEASE_S,
    *,
    brands: Collection[str] | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Take the oldest queued job (of ``brands``, if given) for ``worker_id`` until ``now +
    lease_seconds``, or None when there is none. The job comes back running, with its attempt
    counted, detached from any session.

    Example:
        >>> job = claim(Session, "gpu-1:4242:5f1c", lease_seconds=60)               # doctest: +SKIP
        >>> job.status, job.worker, job.attempts                                      # doctest: +SKIP
        ('running', 'gpu-1:4242:5f1c', 1)
    """
    _check_lease(lease_seconds)
    now = now or utcnow()
    with session_factory() as session:
        while True:
            job_id = session.scalar(_next_queued(brands))
            if job_id is None:
                return None
            taken = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued")
                .values(status="running", worker=worker_id, attempts=Job.attempts + 1, started_at=now,
                        lease_expires_at=now + timedelta(seconds=lease_seconds), progress=None)
                .execution_options(synchronize_session=False)
            ).rowcount  # fmt: skip
            if taken == 1:
                job = session.get(Job, job_id, populate_existing=True)
                session.expunge(job)
                session.commit()
                return job
            session.rollback()  # another worker took it between the two statements: look again


def heartbeat(
    session_factory: SessionFactory,
    job_id: int,
    worker_id: str,
    lease_seconds: float = DEFAULT_LEASE_S,
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> datetime:
    """Extend ``worker_id``'s lease on a job to ``now + lease_seconds`` and, if given, record its
    ``progress``; the new expiry. :class:`~brandstudio.errors.LeaseLost` if the worker no longer
    holds the job (it must stop). A worker calls it well within its lease (every third of it),
    and from its progress callback at most every second or so. A lease that ran out but was not
    taken back yet is extended: no other worker has the job.
    """
    _check_lease(lease_seconds)
    now = now or utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    values: dict[str, Any] = {"lease_expires_at": expires}
    if progress is not None:
        values["progress"] = dataclasses.asdict(progress)
    _update_owned(session_factory, job_id, worker_id, values, "extend the lease of")
    return expires


def finish(
    session_factory: SessionFactory,
    job_id: int,
    worker_id: str,
    *,
    result: Mapping[str, Any],
    outputs: Sequence[str],
    now: datetime | None = None,
) -> None:
    """Mark the job done with its ``result`` (the render's record, JSON) and ``outputs`` (where its
    files are); :class:`~brandstudio.errors.LeaseLost` if ``worker_id`` no longer holds it, in
    which case its files are not the job's and the worker removes them."""
    now = now or utcnow()
    values = {"status": "done", "result": _json_object(dict(result), "result"), "outputs": [str(o) for o in outputs],
              "error": None, "finished_at": now, "lease_expires_at": None}  # fmt: skip
    _update_owned(session_factory, job_id, worker_id, values, "finish")


def fail(
    session_factory: SessionFactory,
    job_id: int,
    worker_id: str,
    *,
    error_type: str,
    message: str,
    expected: bool = True,
    retry: bool = False,
    now: datetime | None = None,
) -> str:
    """Record that the render failed: ``error_type`` and ``message`` (for the people looking at
    the job), ``expected`` (a :class:`~brandstudio.errors.BrandStudioError`, i.e. bad input, rather
    than a crash). The job is failed, or with ``retry`` back in the queue while it has attempts
    left (a crash that may pass: out of memory). Gives the job's new status;
    :class:`~brandstudio.errors.LeaseLost` if ``worker_id`` no longer holds it."""
    now = now or utcnow()
    again = Job.attempts < Job.max_attempts if retry else None
    error = {"type": error_type, "message": message, "expected": expected}
    values: dict[str, Any] = {"error": error, "lease_expires_at": None, "progress": None}
    if again is None:
        values |= {"status": "failed", "finished_at": now}
    else:
        values |= {"status": case((again, "queued"), else_="failed"),
                   "finished_at": case((again, None), else_=literal(now, Job.finished_at.type)),
                   "worker": case((again, None), else_=Job.worker)}  # fmt: skip
    return _update_owned(session_factory, job_id, worker_id, values, "fail")


def release(session_factory: SessionFactory, job_id: int, worker_id: str) -> None:
    """Give a job back to the queue unfinished (a worker shutting down), its attempt not counted;
    :class:`~brandstudio.errors.LeaseLost` if ``worker_id`` no longer holds it."""
    values = {"status": "queued", "worker": None, "lease_expires_at": None, "progress": None,
              "started_at": None, "attempts": Job.attempts - 1}  # fmt: skip
    _update_owned(session_factory, job_id, worker_id, values, "release")


def requeue_expired(session_factory: SessionFactory, now: datetime | None = None) -> Requeued:
    """Put every running job whose lease ran out before ``now`` back in the queue, or fail it
    with a message that says why once it has been tried ``max_attempts`` times. Any process
    may call it, as often as it likes (the web process does, and each worker before it claims):
    a job whose worker extended its lease in the meantime is left alone.

    Example:
        >>> requeue_expired(Session)                                                  # doctest: +SKIP
        Requeued(requeued=(12,), failed=())
    """
    now = now or utcnow()
    requeued, failed = [], []
    with session_factory() as session:
        expired = session.execute(
            select(Job.id, Job.worker, Job.attempts, Job.max_attempts, Job.lease_expires_at)
            .where(Job.status == "running", Job.lease_expires_at < now)
            .order_by(Job.id)
            .with_for_update(skip_locked=True)
        ).all()
        for job_id, worker, attempts, max_attempts, expired_at in expired:
            lost = (f"worker {worker} stopped reporting on job {job_id}: its lease ran out at "
                    f"{expired_at:%Y-%m-%d %H:%M:%S} UTC (attempt {attempts} of {max_attempts})")  # fmt: skip
            if attempts >= max_attempts:
                values = {"status": "failed", "finished_at": now, "error": {
                    "type": WORKER_LOST, "expected": False,
                    "message": f"job {job_id} was given to a worker {attempts} times and each time the worker "
                               f"stopped before it finished; the last time, {lost}",
                    "fix": "look in the workers' logs for what stopped them on this job (out of memory? "
                           "killed?), then submit it again",
                }}  # fmt: skip
            else:
                values = {"status": "queued", "worker": None, "started_at": None, "progress": None,
                          "error": {"type": WORKER_LOST, "expected": False, "message": f"{lost}; back in the queue"}}  # fmt: skip
            changed = session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.status == "running",
                    Job.worker == worker,
                    Job.lease_expires_at < now,
                )
                .values(lease_expires_at=None, **values)
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed == 1:
                (failed if values["status"] == "failed" else requeued).append(job_id)
        session.commit()
    return Requeued(tuple(requeued), tuple(failed))


def _next_queued(brands: Collection[str] | None) -> Select[tuple[int]]:
    """The oldest queued job's id; on PostgreSQL its row locked, skipping rows other workers
    have locked (SQLite has no row locks: its ``BEGIN IMMEDIATE`` serialises the claims)."""
    stmt = select(Job.id).where(Job.status == "queued")
    if brands is not None:
        stmt = stmt.where(Job.brand_id.in_(list(brands)))
    return stmt.order_by(Job.id).limit(1).with_for_update(skip_locked=True)


def _owned(job_id: int, worker_id: str) -> ColumnElement[bool]:
    return (Job.id == job_id) & (Job.status == "running") & (Job.worker == worker_id)


def _update_owned(
    session_factory: SessionFactory, job_id: int, worker_id: str, values: Mapping[str, Any], what: str
) -> str:
    """One conditional UPDATE of a job ``worker_id`` holds, and the job's status after it (read in
    the same transaction); or :class:`LeaseLost` saying why not."""
    with session_factory() as session:
        changed = session.execute(
            update(Job)
            .where(_owned(job_id, worker_id))
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed == 1:
            status = session.scalar(select(Job.status).where(Job.id == job_id))
            session.commit()
            return status
        session.rollback()
        job = session.get(Job, job_id)
        if job is None:
            raise AppError(f"there is no job {job_id}", field="job", value=job_id)
        if job.status == "running":
            state = f"it is now held by worker {job.worker}"
        elif job.status == "queued":
            state = "it went back to the queue"
        else:
            state = f"it is {job.status}"
        raise LeaseLost(
            f"worker {worker_id} cannot {what} job {job_id}: it no longer holds it ({state}; "
            f"its lease ran out or was taken back)",
            field="job", value=job_id,
            fix="stop working on the job and remove what was made for it: the queue gave it to another "
                "worker; heartbeat more often than the lease runs out",
        )  # fmt: skip


def _json_object(value: dict[str, Any], field: str) -> dict[str, Any]:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AppError(f"the job's {field} is not plain JSON: {exc}", field=field) from None
    return value


def _check_lease(lease_seconds: float) -> None:
    if not lease_seconds > 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
