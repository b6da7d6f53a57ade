"""The review app's worker on a Ray cluster: the app's queued jobs rendered by the actors that
campaigns use (:class:`~brandstudio.distributed.RayExecutor`: one per GPU, each keeping the
brand's model loaded), with the same promises as :class:`~brandstudio.app.worker.Worker`: a
job is never rendered twice at once nor lost, and ends once, with its files or without any.

Each turn of :meth:`RayWorker.run`:

1. puts the jobs of dead workers back (:func:`~.queue.requeue_expired`);
2. claims the oldest queued job, then more queued jobs of the same brand, as many in all as the
   executor has actors: one brand a turn, since an actor holds one brand's profile and model;
3. opens that brand's executor unless it is open already (the actors start and load the
   model). It stays open while jobs of that brand keep coming; a job of another brand closes it
   first, which frees its GPUs for the new brand's actors;
4. hands the jobs to the actors (:meth:`~brandstudio.distributed.RayExecutor.run`) and reports
   each one as its outcome arrives, as :class:`~.worker.Worker` does: the files (finish), a
   :class:`~brandstudio.errors.BrandStudioError` (failed at once), a crash or a dead actor
   (``WorkerDied``: back to the queue while it has attempts left; the executor is opened afresh
   next turn).

While the batch runs, one thread extends every held lease each third of the lease, with the
job's progress: ``rendering (on <actor>)``, which the web pages show (an actor reports nothing
else until the job ends). A job whose lease is lost (another worker took it back) has its actor
killed, which Ray restarts, and its files removed. Stopping (``stop_event``, SIGTERM, Ctrl-C)
kills the actors, as a render on an actor cannot be interrupted otherwise, releases every
unfinished job to the queue (its attempt not counted) and removes its files.

A profile that does not load or an actor that cannot start fails the job it was opened for, as
a studio that does not load does in :class:`~.worker.Worker`; a cluster that has no room for
the actors (no GPUs, fewer than ``workers``) or cannot be reached stops the worker with that
error (:data:`CLUSTER_FIELDS`), its job released. :func:`run_ray_worker` checks that before it
claims anything.

**Shared storage.** The actors write each job's files themselves, into
``<data dir>/renders/<brand>/<job id>/`` (:func:`~.worker.job_dir`). On a cluster of several
nodes the data directory must be shared storage mounted at the same path on every node and on
the web app's machine (which serves the files), and so must the brands' profile folders.

Example (``brandstudio worker --ray auto --data-dir /mnt/studio --database postgresql+psycopg://...``)::

    Session = sessions(make_engine("postgresql+psycopg://studio@db/studio"))
    with RayWorker(Session, Path("/mnt/studio"), address="auto") as worker:  # one actor per GPU
        worker.run()  # until SIGTERM / Ctrl-C
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ..batch import Job as BatchJob
from ..distributed.ray_backend import RayExecutor, join_cluster, worker_slots
from ..errors import BrandStudioError, CampaignError
from ..progress import Progress
from .db import Brand, Job, make_engine, sessions
from .migrate import check_schema
from .queue import claim, requeue_expired
from .worker import Heartbeats, Lease, QueueWorker, batch_job, job_dir

__all__ = ["CLUSTER_FIELDS", "RayWorker", "run_ray_worker", "start_ray_worker"]

log = logging.getLogger("brandstudio.app.ray_worker")

#: how often a batch in flight looks at ``stop_event`` (the actors are killed when it is set)
STOP_POLL_S = 0.2
#: the fields of :class:`~brandstudio.distributed.RayExecutor`'s errors that are about the
#: cluster, not a brand (Ray missing, unreachable, no room for the actors): they stop the worker
CLUSTER_FIELDS = ("campaign.backend", "ray.address", "ray.workers", "ray.gpus_per_worker")


@dataclasses.dataclass
class _Held:
    """A claimed job on its way through a turn: the app's job, its folder, its lease."""

    job: Job
    out: Path
    lease: Lease


class RayWorker(QueueWorker):
    """A worker whose jobs render on a Ray cluster (see the module docstring); a context manager
    (:meth:`connect`, :meth:`close`).

    Args:
        address: the cluster, as campaigns take it: ``"auto"``, ``"head:6379"``,
            ``"ray://head:10001"``, or ``"local"`` to start Ray here. Ignored when this process is
            already connected to a cluster.
        workers: actors (default: one per GPU, or per CPU slot with ``gpus_per_worker=0``).
        gpus_per_worker, cpus_per_worker, device: for each actor, as
            :class:`~brandstudio.distributed.RayExecutor` takes them.
        options: :class:`~.worker.QueueWorker`'s (``worker_id``, ``lease_seconds``, ``brands``,
            ``stop_event``).
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        data_dir: Path,
        *,
        address: str = "auto",
        workers: int | None = None,
        gpus_per_worker: float = 1.0,
        cpus_per_worker: float = 1.0,
        device: str = "auto",
        **options: Any,
    ) -> None:
        super().__init__(session_factory, data_dir, **options)
        self.address, self.workers, self.device = address, workers, device
        self.gpus_per_worker, self.cpus_per_worker = gpus_per_worker, cpus_per_worker
        self.actor_count: int | None = None  # how many actors an executor starts, once connected
        self.executor: RayExecutor | None = None
        self.executor_brand: str | None = None
        self._ray: Any = None
        self._joined = False

    def __enter__(self) -> RayWorker:
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def connect(self) -> None:
        """Join the cluster and check it has room for the actors (a
        :class:`~brandstudio.errors.CampaignError` naming the ``ray.*`` field if not); nothing once
        connected."""
        if self._ray is not None:
            return
        ray, joined = join_cluster(self.address)
        try:
            self.actor_count = worker_slots(ray.cluster_resources(), workers=self.workers,
                                            gpus_per_worker=self.gpus_per_worker,
                                            cpus_per_worker=self.cpus_per_worker)  # fmt: skip
        except BaseException:
            if joined:
                ray.shutdown()
            raise
        self._ray, self._joined = ray, joined

    def close(self) -> None:
        """Close the brand's executor (its GPUs are free again) and leave the cluster if
        :meth:`connect` joined it."""
        self._close_executor()
        if self._joined:
            self._ray.shutdown()
        self._ray, self._joined = None, False

    def run_once(self, most: int | None = None) -> int:
        """One turn (see the module docstring): claim one brand's jobs, at most one per actor (and
        ``most``), render them on the actors and report each; how many were claimed (0: none queued)."""
        self.connect()
        requeue_expired(self.session_factory)
        first = claim(self.session_factory, self.worker_id, self.lease_seconds, brands=self.brands)
        if first is None:
            return 0
        held: dict[int, _Held] = {}
        claimed = 1
        try:
            with Heartbeats(self.lease_seconds) as beats:
                self._hold(first, held, beats)
                executor = self._executor_for(first, held, beats)
                if executor is not None:
                    room = len(executor.actors) if most is None else min(len(executor.actors), most)
                    claimed += self._claim_more(first.brand_id, room - 1, held, beats)
                    self._render(executor, held, beats)
        finally:
            if held:  # unfinished: the worker is stopping (stop_event, SIGTERM, Ctrl-C) or failed
                if self.executor is not None and self.executor.rendering:
                    self._close_executor()  # first: its actors could still write these jobs' files
                for h in held.values():
                    self._give_back(h.job.id, h.out)
        return claimed

    def _turn(self, most: int | None) -> int:
        return self.run_once(most)

    # -- a turn's steps ---------------------------------------------------------------------

    def _hold(self, job: Job, held: dict[int, _Held], beats: Heartbeats) -> None:
        out = job_dir(self.data_dir, job.brand_id, job.id)
        shutil.rmtree(out, ignore_errors=True)  # what an earlier attempt left
        lease = Lease(self.session_factory, job.id, self.worker_id, self.lease_seconds)
        held[job.id] = _Held(job, out, lease)
        beats.hold(lease)
        log.info("job %s (%s, %s): to render on Ray into %s", job.id, job.brand_id, job.template, out)

    def _let_go(self, h: _Held, held: dict[int, _Held], beats: Heartbeats) -> None:
        """The job's end is being reported: no more heartbeats, no release on a stop."""
        held.pop(h.job.id, None)
        beats.drop(h.lease)

    def _claim_more(self, brand_id: str, count: int, held: dict[int, _Held], beats: Heartbeats) -> int:
        for got in range(count):
            job = claim(self.session_factory, self.worker_id, self.lease_seconds, brands=[brand_id])
            if job is None:
                return got
            self._hold(job, held, beats)
        return count

    def _executor_for(self, job: Job, held: dict[int, _Held], beats: Heartbeats) -> RayExecutor | None:
        """The open executor of the job's brand, opened now if needed; None when it cannot be
        (the job is failed with the reason)."""
        if self.executor is not None and self.executor_brand != job.brand_id:
            log.info("ray worker %s: jobs of %s now; closing the actors of %s", self.worker_id, job.brand_id,
                     self.executor_brand)  # fmt: skip
            self._close_executor()
        if self.executor is None:
            try:
                with self.session_factory() as session:
                    profile = session.get(Brand, job.brand_id).profile_path
                executor = RayExecutor(profile, address=self.address, workers=self.actor_count,
                                       gpus_per_worker=self.gpus_per_worker, cpus_per_worker=self.cpus_per_worker,
                                       device=self.device).open()  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - the brand's profile or model: the job's error
                if isinstance(exc, CampaignError) and exc.field in CLUSTER_FIELDS:
                    raise  # the cluster's: the job is released, the worker stops with it
                h = held[job.id]
                self._let_go(h, held, beats)
                self._fail(job.id, h.out, exc)
                return None
            log.info("ray worker %s: %d actors for %s: %s", self.worker_id, len(executor.actors), job.brand_id,
                     ", ".join(executor.names))  # fmt: skip
            self.executor, self.executor_brand = executor, job.brand_id
        return self.executor

    def _render(self, executor: RayExecutor, held: dict[int, _Held], beats: Heartbeats) -> None:
        """Render the held jobs on the actors, reporting each as it ends."""
        if self.stop_event.is_set():  # asked while the actors started: the jobs go back unrendered
            return
        batch: list[tuple[_Held, BatchJob]] = []
        for h in list(held.values()):
            try:
                batch.append((h, batch_job(h.job, h.out, executor.profile.spec.deliveries)))
            except Exception as exc:  # noqa: BLE001 - an unknown delivery: that job's error
                self._let_go(h, held, beats)
                self._fail(h.job.id, h.out, exc)
        if not batch:
            return

        def on_progress(index: int, _job: BatchJob, progress: Progress) -> None:  # the job is on an actor
            lease = batch[index - 1][0].lease
            log.info("job %s: %s", lease.job_id, progress)
            lease.progress = progress
            lease.beat(progress)  # at once: the job's page shows the actor

            def stop_render() -> None:  # another worker has the job: ours must not write its files
                log.warning("job %s: lease lost mid-render, its actor is stopped", lease.job_id)
                executor.stop_job(index)

            lease.when_lost(stop_render)

        died = False
        batch_over = threading.Event()
        watch = threading.Thread(
            target=self._close_on_stop, args=(executor, batch_over), name="ray-stop", daemon=True
        )
        watch.start()
        try:
            for index, outcome in executor.run([job for _, job in batch], _dispatched, on_progress):
                h = batch[index - 1][0]
                if outcome.error_type == "WorkerDied" and h.lease.lost is None:
                    if self.stop_event.is_set():
                        continue  # killed by the stop: released below, with its files
                    died = True
                self._let_go(h, held, beats)
                self._settle(h.job.id, h.out, h.lease, outcome)
        finally:
            batch_over.set()
            watch.join()
        if died or self.stop_event.is_set():
            self._close_executor()  # a dead actor would take jobs again: fresh actors next turn

    def _close_on_stop(self, executor: RayExecutor, batch_over: threading.Event) -> None:
        """Kill the actors as soon as the worker is asked to stop: their renders end ``WorkerDied``."""
        while not batch_over.wait(STOP_POLL_S):
            if self.stop_event.is_set():
                log.info("ray worker %s: stopping; its actors are killed, its jobs go back", self.worker_id)
                executor.close()
                return

    def _close_executor(self) -> None:
        if self.executor is not None:
            self.executor.close()
        self.executor, self.executor_brand = None, None


def _dispatched(index: int, job: BatchJob) -> None:
    """The executor's ``started``: nothing to do here (its progress says which actor took the job)."""


def run_ray_worker(
    url: str,
    data_dir: Path,
    stop_event: threading.Event | None = None,
    poll_seconds: float = 2.0,
    **options: Any,
) -> int:
    """Work the queue of the database at ``url`` on a Ray cluster until ``stop_event`` is set;
    the number of jobs worked. ``options`` go to :class:`RayWorker` (``address``, ``workers``,
    ``gpus_per_worker``, ``cpus_per_worker``, ``device``, ``worker_id``, ``lease_seconds``,
    ``brands``) or to :meth:`RayWorker.run` (``max_jobs``). The cluster's errors (Ray not
    installed, unreachable, no GPUs) are raised before any job is claimed.

    Example:
        >>> run_ray_worker("sqlite:///studio-data/brandstudio.db", Path("studio-data"),   # doctest: +SKIP
        ...                address="local", workers=2)
    """
    max_jobs = options.pop("max_jobs", None)
    worker, engine = _joined_worker(url, data_dir, stop_event, options)
    return _work(worker, engine, poll_seconds, max_jobs)


def start_ray_worker(
    url: str, data_dir: Path, stop_event: threading.Event, poll_seconds: float = 2.0, **options: Any
) -> threading.Thread:
    """:func:`run_ray_worker` in a thread, as ``brandstudio serve --ray`` runs it, started once the
    worker has joined the cluster: the cluster's errors are raised here, in the caller's thread.
    Set ``stop_event`` and join the thread to stop it."""
    worker, engine = _joined_worker(url, data_dir, stop_event, options)

    def work() -> None:
        try:
            _work(worker, engine, poll_seconds, None)
        except BrandStudioError as exc:  # the cluster went away: said in the server's log
            log.error("ray worker %s stopped: %s", worker.worker_id, exc)

    thread = threading.Thread(target=work, name="ray-worker", daemon=True)
    thread.start()
    return thread


def _joined_worker(
    url: str, data_dir: Path, stop_event: threading.Event | None, options: dict[str, Any]
) -> tuple[RayWorker, Engine]:
    check_schema(url)
    engine = make_engine(url)
    worker = RayWorker(sessions(engine), data_dir, stop_event=stop_event, **options)
    try:
        worker.connect()
    except BaseException:
        engine.dispose()
        raise
    log.info("ray worker %s: working the queue of %s with %d actors a brand", worker.worker_id,
             engine.url.render_as_string(), worker.actor_count)  # fmt: skip
    return worker, engine


def _work(worker: RayWorker, engine: Engine, poll_seconds: float, max_jobs: int | None) -> int:
    try:
        with worker:
            return worker.run(poll_seconds, max_jobs=max_jobs)
    finally:
        engine.dispose()
