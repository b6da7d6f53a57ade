"""The worker: takes jobs off the app's queue and renders them, one at a time, through the same
path as a campaign (:func:`brandstudio.batch.execute_job`).

Each turn of the loop puts the jobs of dead workers back (:func:`~.queue.requeue_expired`), claims
the oldest queued job, and renders it with the studio of its brand (one
:class:`~brandstudio.studio.BrandStudio` per brand, kept loaded between jobs: the model stays in
memory). The files go to ``<data dir>/renders/<brand>/<job id>/``. While it renders, the worker
holds the job's lease: a heartbeat from the progress callback at most once a second (with the
progress, which the web pages stream), and one from a timer every third of the lease for the
steps that report nothing for long.

:class:`QueueWorker` holds what every worker of the queue shares (the loop, the lease, how the
end of a job is reported); :class:`Worker` renders in this process, and
:class:`~brandstudio.app.ray_worker.RayWorker` on a Ray cluster, one brand's jobs at a time.

How a job ends:

- rendered: :func:`~.queue.finish` with the files (location, sha256, size) and the
  :class:`~brandstudio.request.RenderResult` as JSON;
- a :class:`~brandstudio.errors.BrandStudioError` (bad input, a safety block, QC refusing the
  footage): failed at once with its message;
- a crash (anything else: out of memory, a bug): back to the queue while it has attempts left;
- the lease lost (the worker stalled, another one has the job): what it wrote is deleted;
- the worker stopped (``stop_event`` set, SIGTERM, Ctrl-C): the job is released to the queue,
  unfinished, its attempt not counted, and what it wrote is deleted.

**The database going away** (a restart, a network cut, SQLite's file unreachable) does not stop
the worker: a heartbeat that cannot reach it is skipped (the render goes on), reporting the end
of a job (:func:`~.queue.finish`, :func:`~.queue.fail`) is tried again with a growing pause (up
to :data:`DB_RETRY_MAX_S`) until the database answers or the worker is stopped, and the loop
waits the same way between turns. A lease that ran out meanwhile is still the worker's unless
another worker took the job back; if one did, the report is refused
(:class:`~brandstudio.errors.LeaseLost`) and the files are removed, so a job is never stored
twice nor half. A finish whose commit was applied but whose answer was lost is recognised when
it is tried again (the job is already done by this worker): its files are kept.

Example (the loop in a thread, as ``brandstudio serve`` runs it)::

    stop = threading.Event()
    threading.Thread(target=run_worker, args=(url, Path("studio-data"), stop), daemon=True).start()
    ...
    stop.set()
"""

from __future__ import annotations

import abc
import logging
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from ..batch import Job as BatchJob
from ..batch import JobDefaults, JobOutcome, Studio, execute_job, make_job
from ..deliveries import DeliverySpec, find_delivery
from ..errors import BrandStudioError, LeaseLost
from ..progress import Progress
from ..studio import BrandStudio
from .db import Brand, Job, make_engine, sessions
from .migrate import check_schema
from .queue import DEFAULT_LEASE_S, claim, fail, finish, heartbeat, release, requeue_expired, worker_name

__all__ = [
    "DB_DOWN",
    "RENDERS",
    "Heartbeats",
    "Lease",
    "QueueWorker",
    "StudioFactory",
    "Worker",
    "WorkerStopped",
    "batch_job",
    "first_line",
    "job_dir",
    "run_worker",
]

log = logging.getLogger("brandstudio.app.worker")

#: the folder under the data directory that holds every job's files
RENDERS = "renders"
#: the least time between two progress heartbeats
PROGRESS_EVERY_S = 1.0
#: the errors of a database that cannot be reached (or, on SQLite, is locked past the busy timeout)
DB_DOWN = (OperationalError, InterfaceError)
#: the first and the longest pause before trying an unreachable database again
DB_RETRY_FIRST_S, DB_RETRY_MAX_S = 0.2, 10.0

#: makes the studio of a brand, given its row and the brand's render folder
StudioFactory = Callable[[Brand, Path], Studio]


class WorkerStopped(BaseException):  # noqa: N818 - not an error: raised through the render to stop it
    """Raised from the progress callback when the worker is asked to stop mid-render (a
    BaseException: :func:`~brandstudio.batch.execute_job` lets it through)."""


def job_dir(data_dir: Path, brand_id: str, job_id: int) -> Path:
    """Where a job's files go: ``<data dir>/renders/<brand>/<job id>/``."""
    return Path(data_dir).resolve() / RENDERS / brand_id / str(int(job_id))


def default_studio(brand: Brand, output_dir: Path) -> Studio:
    """The studio of a brand: its profile folder, loaded (the model on first render)."""
    return BrandStudio(brand.profile_path, output_dir=output_dir)


def batch_job(job: Job, out: Path, deliveries: Iterable[DeliverySpec] = ()) -> BatchJob:
    """The batch job that renders the app's ``job`` into ``out``; its deliveries are looked up in
    the profile's ``[[deliveries]]`` (``deliveries``) and the presets. A
    :class:`~brandstudio.errors.RequestError` for a delivery neither knows.

    Example:
        >>> job = Job(id=12, brand_id="aurora-coffee", template="product-hero", variables={"product": "Night Roast"},
        ...           deliveries=[], aspect="9:16", seed=None, duration=None, resolution=None)
        >>> bj = batch_job(job, Path("renders/aurora-coffee/12"))
        >>> bj.source, bj.template, bj.aspect, bj.output.parent.as_posix()
        ('app job 12', 'product-hero', '9:16', 'renders/aurora-coffee/12')
    """
    entries = tuple(deliveries)
    settings = {
        "aspect": job.aspect,
        "seed": job.seed,
        "duration": job.duration,
        "resolution": job.resolution,
    }
    return make_job(f"app job {job.id}", {k: v for k, v in settings.items() if v is not None},
                    template=job.template, output_dir=out,
                    deliveries=[find_delivery(name, entries) for name in job.deliveries],
                    defaults=JobDefaults(variables=dict(job.variables)))  # fmt: skip


class Lease:
    """A worker's hold on one job: its heartbeats (from the render's progress and from
    :class:`Heartbeats`), its latest progress, and the :class:`LeaseLost` that ended it, if one did."""

    def __init__(
        self, session_factory: Callable[[], Session], job_id: int, worker_id: str, lease_s: float
    ) -> None:
        self.session_factory, self.job_id = session_factory, job_id
        self.worker_id, self.lease_s = worker_id, lease_s
        self.lost: LeaseLost | None = None
        self.progress: Progress | None = None
        self.last = float("-inf")  # the first progress is reported at once
        self._lock = threading.Lock()
        self._on_lost: Callable[[], None] | None = None

    def beat(self, progress: Progress | None = None) -> None:
        with self._lock:
            if self.lost is not None:
                return
            try:
                heartbeat(self.session_factory, self.job_id, self.worker_id, self.lease_s, progress=progress)
            except LeaseLost as exc:
                self.lost = exc
                if self._on_lost is not None:
                    self._on_lost()
            except DB_DOWN as exc:  # the render goes on; the next beat tries again
                log.warning("job %s: heartbeat skipped, the database does not answer: %s", self.job_id,
                            first_line(exc))  # fmt: skip
            self.last = time.monotonic()

    def when_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a heartbeat finds the lease lost (at once if one has): a render
        that cannot be stopped from its progress callback (on a Ray actor) is stopped by it."""
        with self._lock:
            if self.lost is not None:
                callback()
            else:
                self._on_lost = callback


class Heartbeats:
    """One thread that extends every lease it holds each third of the lease time, with the job's
    latest progress: for the steps that report nothing for long, and for renders that report
    nothing at all (on a Ray actor). A context manager; leases are added and dropped as jobs
    start and end."""

    def __init__(self, lease_s: float, leases: Iterable[Lease] = ()) -> None:
        self.lease_s = lease_s
        self._leases = {lease.job_id: lease for lease in leases}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="heartbeats", daemon=True)

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._leases[lease.job_id] = lease

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(lease.job_id, None)

    def _keep(self) -> None:
        while not self._done.wait(self.lease_s / 3):
            with self._lock:
                held = list(self._leases.values())
            for lease in held:
                lease.beat(lease.progress)


class QueueWorker(abc.ABC):
    """What every worker of the app's queue shares: who it is and how long its leases run, the
    loop (which rides out a database that does not answer), and how it reports the end of a job
    (see the module docstring). Subclasses say how a turn claims and renders jobs (:meth:`_turn`).

    ``brands`` limits the jobs it claims to those brands; ``stop_event`` stops it between jobs
    and during one.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        data_dir: Path,
        *,
        worker_id: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_S,
        brands: Collection[str] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.data_dir = Path(data_dir).resolve()
        self.worker_id = worker_id or worker_name()
        self.lease_seconds = lease_seconds
        self.brands = brands
        self.stop_event = stop_event or threading.Event()

    def run(self, poll_seconds: float = 2.0, *, max_jobs: int | None = None) -> int:
        """Work until ``stop_event`` is set (or ``max_jobs`` are done); the number of jobs worked."""
        worked = 0
        pause = DB_RETRY_FIRST_S
        while not self.stop_event.is_set() and (max_jobs is None or worked < max_jobs):
            try:
                got = self._turn(None if max_jobs is None else max_jobs - worked)
            except DB_DOWN as exc:
                log.warning("worker %s: the database does not answer (%s); trying again in %.1f s",
                            self.worker_id, first_line(exc), pause)  # fmt: skip
                self.stop_event.wait(pause)
                pause = min(pause * 2, DB_RETRY_MAX_S)
                continue
            pause = DB_RETRY_FIRST_S
            if got:
                worked += got
            else:
                self.stop_event.wait(poll_seconds)
        return worked

    @abc.abstractmethod
    def _turn(self, most: int | None) -> int:
        """Claim jobs (``most`` at most, None: no limit) and work them; how many were claimed."""

    def _settle(self, job_id: int, out: Path, lease: Lease, outcome: JobOutcome) -> None:
        """Report how the render of a job ended: its files, its error, or (the lease lost) nothing,
        its files removed."""
        if lease.lost is not None or outcome.error_type == "LeaseLost":
            log.warning("job %s: lease lost, its files removed", job_id)
            shutil.rmtree(out, ignore_errors=True)
        elif outcome.error_type is None:
            result = {"render": outcome.result.model_dump(mode="json"), "files": list(outcome.files),
                      "seconds": outcome.seconds, "worker": outcome.worker or self.worker_id}  # fmt: skip
            self._report(lambda: finish(self.session_factory, job_id, self.worker_id, result=result,
                                        outputs=[f["output"] for f in outcome.files]), out, keep=True,
                         job_id=job_id)  # fmt: skip
        else:
            self._report(lambda: fail(self.session_factory, job_id, self.worker_id, error_type=outcome.error_type,
                                      message=outcome.message or "", expected=outcome.expected,
                                      retry=not outcome.expected), out, job_id=job_id)  # fmt: skip

    def _fail(self, job_id: int, out: Path, exc: Exception) -> None:
        """Report a job that could not start rendering (its profile does not load, a delivery is
        unknown): a BrandStudioError fails it at once, anything else sends it back to the queue."""
        known = isinstance(exc, BrandStudioError)
        error_type, message = type(exc).__name__, str(exc) if known else f"{type(exc).__name__}: {exc}"
        self._report(lambda: fail(self.session_factory, job_id, self.worker_id, error_type=error_type,
                                  message=message, expected=known, retry=not known), out, job_id=job_id)  # fmt: skip

    def _give_back(self, job_id: int, out: Path) -> None:
        """Release an unfinished job to the queue (the worker is stopping; its attempt not counted)
        and remove what was written for it."""
        log.info("job %s: worker stopping, the job goes back to the queue", job_id)
        try:
            release(self.session_factory, job_id, self.worker_id)
        except LeaseLost:
            pass
        except DB_DOWN as exc:  # its lease runs out and the queue takes it back
            log.warning("job %s: not released, the database does not answer: %s", job_id, first_line(exc))
        shutil.rmtree(out, ignore_errors=True)

    def _report(
        self, report: Callable[[], Any], out: Path, *, keep: bool = False, job_id: int | None = None
    ) -> None:
        """Tell the queue how a job ended, trying again while the database does not answer (see
        the module docstring); the files in ``out`` are kept only with a finish that was stored."""
        pause, tried_before = DB_RETRY_FIRST_S, False
        while True:
            try:
                report()
                break
            except LeaseLost as exc:
                if keep and tried_before and self._finished_by_me(job_id):
                    break  # the last try was stored, only its answer was lost
                log.warning("%s", exc.message)
                keep = False
                break
            except DB_DOWN as exc:
                if self.stop_event.is_set():  # the job stays running; its lease runs out and the queue
                    log.warning("job %s: not reported, the worker is stopping", job_id)  # takes it back
                    keep = False
                    break
                log.warning("job %s: cannot report the end, the database does not answer (%s); again in %.1f s",
                            job_id, first_line(exc), pause)  # fmt: skip
                tried_before = True
                self.stop_event.wait(pause)
                pause = min(pause * 2, DB_RETRY_MAX_S)
        if not keep:
            shutil.rmtree(out, ignore_errors=True)

    def _finished_by_me(self, job_id: int | None) -> bool:
        if job_id is None:
            return False
        with self.session_factory() as session:
            row = session.execute(select(Job.status, Job.worker).where(Job.id == job_id)).first()
        return row is not None and tuple(row) == ("done", self.worker_id)


class Worker(QueueWorker):
    """A worker that renders here, one job at a time (see the module docstring).

    ``studio_factory`` makes a brand's studio (tests pass one with a stand-in generator);
    ``options`` are :class:`QueueWorker`'s (``worker_id``, ``lease_seconds``, ``brands``,
    ``stop_event``; a stop is seen between jobs and, through the progress callback, during one).
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        data_dir: Path,
        *,
        studio_factory: StudioFactory | None = None,
        **options: Any,
    ) -> None:
        super().__init__(session_factory, data_dir, **options)
        self.studio_factory = studio_factory or default_studio
        self.studios: dict[str, Studio] = {}

    def run_once(self) -> bool:
        """Claim one job and work it; False when the queue had none."""
        requeue_expired(self.session_factory)
        job = claim(self.session_factory, self.worker_id, self.lease_seconds, brands=self.brands)
        if job is None:
            return False
        self.work(job)
        return True

    def _turn(self, most: int | None) -> int:
        return int(self.run_once())

    def work(self, job: Job) -> None:
        """Render a claimed job and report how it ended (never raises but to stop the worker)."""
        out = job_dir(self.data_dir, job.brand_id, job.id)
        shutil.rmtree(out, ignore_errors=True)  # what an earlier attempt left
        log.info("job %s (%s, %s): rendering into %s", job.id, job.brand_id, job.template, out)
        try:
            lease = Lease(self.session_factory, job.id, self.worker_id, self.lease_seconds)
            with Heartbeats(self.lease_seconds, [lease]):
                try:
                    studio = self._studio(job.brand_id)
                    render = batch_job(job, out, studio.profile.spec.deliveries)
                except Exception as exc:  # noqa: BLE001 - the profile does not load, a studio crash: the job's
                    self._fail(job.id, out, exc)
                    return
                outcome = execute_job(studio, render, self._on_progress(lease), worker=self.worker_id)
            self._settle(job.id, out, lease, outcome)
        except (WorkerStopped, KeyboardInterrupt, SystemExit) as stop:
            self._give_back(job.id, out)
            if not isinstance(stop, WorkerStopped):
                raise
            self.stop_event.set()

    def _on_progress(self, lease: Lease) -> Callable[[Progress], None]:
        def on_progress(progress: Progress) -> None:
            if self.stop_event.is_set():
                raise WorkerStopped()
            lease.progress = progress
            if time.monotonic() - lease.last >= PROGRESS_EVERY_S:
                lease.beat(progress)
            if lease.lost is not None:
                raise lease.lost

        return on_progress

    def _studio(self, brand_id: str) -> Studio:
        studio = self.studios.get(brand_id)
        if studio is None:
            with self.session_factory() as session:
                brand = session.get(Brand, brand_id)
            studio = self.studios[brand_id] = self.studio_factory(brand, self.data_dir / RENDERS / brand_id)
        return studio


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (a driver's error can run to many), or its type."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def run_worker(
    url: str,
    data_dir: Path,
    stop_event: threading.Event | None = None,
    poll_seconds: float = 2.0,
    **options: Any,
) -> int:
    """Work the queue of the database at ``url`` until ``stop_event`` is set; the number of jobs
    worked. ``options`` go to :class:`Worker` (``studio_factory``, ``worker_id``,
    ``lease_seconds``, ``brands``) or to :meth:`Worker.run` (``max_jobs``)."""
    check_schema(url)
    engine = make_engine(url)
    max_jobs = options.pop("max_jobs", None)
    try:
        worker = Worker(sessions(engine), data_dir, stop_event=stop_event, **options)
        log.info("worker %s: working the queue of %s", worker.worker_id, engine.url.render_as_string())
        return worker.run(poll_seconds, max_jobs=max_jobs)
    finally:
        engine.dispose()
