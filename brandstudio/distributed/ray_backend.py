"""The Ray backend for campaigns: one actor per GPU, each holding a loaded pipeline.

::

    driver (campaign run)                         Ray cluster
    ─────────────────────                         ───────────
    plan jobs, lock, manifest, audit log   ──►    RenderWorker × N   (one per GPU: num_gpus=1)
          ▲                                         BrandStudio(profile) loaded once
          └──── JobOutcome (path, sha256, size,      render job → MP4 on shared storage
                RenderResult, error) ◄────────────  (a shared path, or an fsspec URL)

Why Ray Core actors and not Ray Data ``map_batches``: a campaign is a few hundred jobs of
minutes each, not a stream of millions of rows; what matters is that every GPU keeps its
model loaded, that a job's outcome reaches the manifest the moment it is known (so a killed
run resumes exactly), and that one worker dying fails one job, not the batch. A pool of
long-lived actors fed one job at a time with ``ray.wait`` does all three with less machinery.

Only small values cross Ray: the job (its inputs and output path) goes out, a
:class:`~brandstudio.batch.JobOutcome` (a :class:`~brandstudio.request.RenderResult`, the
clip's sha256 and size, or the error) comes back. Frames and video never travel through the
object store: workers write clips straight to the output folder, which must be shared storage
on a multi-node cluster (an NFS path mounted everywhere at the same place, or an fsspec URL
such as ``s3://bucket/spring``).

The profile directory must also be readable at the same path on every node (a shared mount or
the same checkout). Each worker loads it and checks its fingerprint against the driver's, so a
node with a stale copy refuses to render instead of rendering off-brand clips.

Starting a cluster (see the README, "Campaigns on a Ray cluster")::

    # everywhere (Ray 2.60+ clusters use token authentication; the token is ~/.ray/auth_token,
    # or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH; `ray get-auth-token --generate` makes one)
    export RAY_AUTH_MODE=token
    # on the head node
    ray start --head --port=6379
    # on each GPU node
    ray start --address=HEAD_IP:6379
    # from any node: one actor per GPU
    brandstudio campaign run spring.toml --ray auto

From Python, ``brandstudio.campaign.run("spring.toml", backend="ray")`` builds the executor from
the campaign file's ``[ray]`` table; any list of jobs can use it directly.

Example:
    >>> from brandstudio.batch import run_jobs
    >>> with RayExecutor("brand_profiles/aurora-coffee", address="auto") as executor:  # doctest: +SKIP
    ...     summary = run_jobs(executor, jobs, name="spring", output_dir=out,
    ...                        manifest=out / "manifest.jsonl", audit_dir=out / "audit")
    >>> summary.exit_code                                                               # doctest: +SKIP
    0
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..batch import Job, JobOutcome, execute_job
from ..errors import BrandStudioError, CampaignError
from ..profile.loader import load_profile
from ..progress import Progress
from ..studio import BrandStudio

__all__ = ["RayExecutor", "RenderWorker", "join_cluster", "worker_slots"]

# what a worker must see of the driver's environment: offline flags, caches, the model home
_ENV_PREFIXES = ("BRANDSTUDIO_", "HF_", "TRANSFORMERS_", "DIFFUSERS_")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise CampaignError(
            "the Ray backend needs the `ray` package, which is not installed",
            field="campaign.backend",
            value="ray",
            fix='pip install "brandstudio[ray]" (or render with backend = "local")',
        ) from None
    return ray


def join_cluster(address: str) -> tuple[Any, bool]:
    """The ``ray`` module, connected to the cluster at ``address`` (see :class:`RayExecutor`),
    and whether this call connected it: False when this process already was (that cluster is
    used as it is), True when the caller must leave it with ``ray.shutdown()``.

    Example:
        >>> ray, joined = join_cluster("auto")          # doctest: +SKIP
        >>> ray.cluster_resources()["GPU"], joined      # doctest: +SKIP
        (8.0, True)
    """
    ray = _import_ray()
    if ray.is_initialized():
        return ray, False
    _connect(ray, address)
    return ray, True


def worker_slots(
    resources: dict, *, workers: int | None, gpus_per_worker: float, cpus_per_worker: float
) -> int:
    """How many render actors to start on a cluster with ``resources`` (``ray.cluster_resources()``):
    ``workers``, or one per GPU (per CPU slot with ``gpus_per_worker=0``); a
    :class:`~brandstudio.errors.CampaignError` naming the ``[ray]`` field when they do not fit.

    Example:
        >>> worker_slots({"CPU": 16, "GPU": 2}, workers=None, gpus_per_worker=1, cpus_per_worker=1)
        2
        >>> worker_slots({"CPU": 16, "GPU": 2}, workers=1, gpus_per_worker=1, cpus_per_worker=1)
        1
    """
    gpus, cpus = gpus_per_worker, cpus_per_worker
    if gpus > 0:
        slots = int(resources.get("GPU", 0) // gpus)
        if slots == 0:
            raise CampaignError(
                f"the Ray cluster has no GPUs (resources: {_fmt(resources)}), and each worker needs {gpus:g}",
                field="ray.gpus_per_worker",
                value=gpus,
                fix="add GPU nodes to the cluster, or set [ray] gpus_per_worker = 0 to render on CPU workers",
            )
    else:
        slots = max(1, int(resources.get("CPU", 1) // max(cpus, 1)))
    n = workers or slots
    if n > slots:
        raise CampaignError(
            f"{n} workers asked for, but the cluster has room for {slots} "
            f"({_fmt(resources)}; {gpus:g} GPU and {cpus:g} CPU each)",
            field="ray.workers",
            value=n,
            fix=f"ask for at most {slots} workers, or add nodes",
        )
    return n


class RenderWorker:
    """A Ray actor: one loaded :class:`~brandstudio.studio.BrandStudio`, rendering one job at a time.

    The model is loaded in the constructor, once per worker, before the first job arrives.
    """

    def __init__(self, profile_dir: str, fingerprint: str, device: str, threads: int | None) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.error: BaseException | None = None
        try:
            self._load(profile_dir, fingerprint, device, threads)
        except Exception as exc:  # noqa: BLE001 - kept whole and handed to the driver by ready()
            self.error = exc

    def _load(self, profile_dir: str, fingerprint: str, device: str, threads: int | None) -> None:
        if threads:
            import torch  # heavy: imported only where a worker limits its threads

            torch.set_num_threads(threads)
        self.studio = BrandStudio(profile_dir, device=device)
        if self.studio.profile.fingerprint != fingerprint:
            raise CampaignError(
                f"the profile at {profile_dir} on {socket.gethostname()} is not the one the campaign "
                f"was started with (fingerprint {self.studio.profile.fingerprint[:12]}, "
                f"expected {fingerprint[:12]}; a different copy, or a different brandstudio version)",
                file=profile_dir,
                fix="give every node the same profile (a shared mount or the same git commit) and "
                "the same brandstudio version",
            )
        _ = self.studio.generator  # load the pipeline now, once per worker
        try:
            import ray

            gpus = ray.get_gpu_ids()
            if gpus:
                self.name += f":gpu{','.join(map(str, gpus))}"
        except Exception:  # noqa: BLE001 - naming only
            pass
        self.staging = Path(tempfile.mkdtemp(prefix="brandstudio-staging-"))

    def ready(self) -> tuple[str, BaseException | None]:
        """(worker name, the error that stopped it loading, or None)."""
        return self.name, self.error

    def render(self, job: Job) -> JobOutcome:
        if job.url:  # render next to this worker, then publish to shared storage
            job = job.staged_in(self.staging)
        return execute_job(self.studio, job, worker=self.name)


class RayExecutor:
    """Runs jobs on a Ray cluster (a context manager; see the module docs).

    Args:
        profile: the profile directory (the same path on every node).
        address: ``"auto"`` (default: the cluster this machine belongs to), ``"ray://head:10001"``,
            ``"head:6379"``, or ``"local"`` to start Ray on this machine. Ignored when Ray is
            already initialised in this process (then that cluster is used as it is).
        workers: render actors (default: one per GPU, or per CPU slot with ``gpus_per_worker=0``).
        gpus_per_worker: GPUs each actor reserves (0: CPU workers).
        cpus_per_worker: CPUs each actor reserves (and the torch threads it uses).
        device: passed to each worker's studio.

    Errors name the campaign file's ``[ray]`` fields (``ray.workers``, ...), which hold these values.
    """

    def __init__(
        self,
        profile: str | Path,
        *,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float = 1.0,
        cpus_per_worker: float = 1.0,
        device: str = "auto",
    ) -> None:
        self.address = address or "auto"
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.device = device
        self.profile_dir = str(Path(profile).resolve())
        # fail here, before any cluster starts; kept: the driver builds the jobs from it (deliveries)
        self.profile = load_profile(self.profile_dir)
        self.profile_id, self.fingerprint = self.profile.id, self.profile.fingerprint
        self._ray = None
        self._started_ray = False
        self.actors: list[Any] = []
        self.names: list[str] = []
        self.rendering: dict[int, Any] = {}  # the actor rendering each job of run() (by index)

    # -- the cluster -----------------------------------------------------------------------

    def __enter__(self) -> RayExecutor:
        return self.open()

    def open(self) -> RayExecutor:
        """Join the cluster and start the actors, each loading the model (what ``with`` does);
        :meth:`close` undoes it."""
        env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
        self._ray, self._started_ray = join_cluster(self.address)
        try:
            self._start_actors(self._ray, env)
        except BaseException:
            self.close()
            raise
        return self

    def _start_actors(self, ray, env: dict[str, str]) -> None:
        gpus, cpus = self.gpus_per_worker, self.cpus_per_worker
        n = worker_slots(
            ray.cluster_resources(), workers=self.workers, gpus_per_worker=gpus, cpus_per_worker=cpus
        )
        threads = max(1, int(cpus)) if cpus else None
        actor = ray.remote(RenderWorker).options(
            num_gpus=gpus,
            num_cpus=cpus,
            max_restarts=1,
            max_task_retries=0,
            runtime_env={"env_vars": env} if env else None,
        )
        self.actors = [
            actor.remote(self.profile_dir, self.fingerprint, self.device, threads) for _ in range(n)
        ]
        try:
            ready = ray.get([a.ready.remote() for a in self.actors])
        except Exception as exc:  # noqa: BLE001 - e.g. brandstudio is not installed on a node
            ready = [("?", _cause(exc))]
        for _, error in ready:
            if isinstance(error, BrandStudioError):
                raise error
            if error is not None:
                detail = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
                raise CampaignError(
                    f"a Ray worker could not start: {detail}",
                    field="ray",
                    fix="check that every node has brandstudio installed and the profile at "
                    f"{self.profile_dir}; see the worker logs (ray logs) for details",
                )
        self.names = [name for name, _ in ready]

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill the actors (their GPUs are free again; a job they render ends ``WorkerDied``), and
        leave the cluster if entering joined it. Safe from another thread while :meth:`run` waits,
        and more than once."""
        ray = self._ray
        if ray is None:
            return
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def stop_job(self, index: int) -> None:
        """Kill the actor rendering job ``index`` of :meth:`run` (the job ends ``WorkerDied``; Ray
        restarts the actor once, as after a crash): for a job that must not go on, such as one
        whose lease another worker took. Safe from another thread; nothing if it is not rendering."""
        actor = self.rendering.get(index)
        if actor is not None:
            try:
                self._ray.kill(actor, no_restart=False)
            except Exception:  # noqa: BLE001 - already gone
                pass

    # -- the jobs --------------------------------------------------------------------------

    def run(
        self,
        jobs: Sequence[Job],
        started: Callable[[int, Job], None],
        on_progress: Callable[[int, Job, Progress], None],
    ) -> Iterator[tuple[int, JobOutcome]]:
        """Feed jobs to idle workers; yield each ``(index, outcome)`` as soon as it is known.

        A job's progress is reported once, when a worker takes it (the render's own progress
        stays on the worker: only the outcome travels back).
        """
        ray = self._ray
        queue = deque(enumerate(jobs, start=1))
        idle = list(zip(self.actors, self.names, strict=True))
        running: dict[Any, tuple[Any, str, int, Job, float]] = {}
        deaths: dict[str, int] = {}
        while queue or running:
            while idle and queue:
                (actor, name), (i, job) = idle.pop(0), queue.popleft()
                started(i, job)
                running[actor.render.remote(job)] = (actor, name, i, job, time.perf_counter())
                self.rendering[i] = actor  # before on_progress, which may stop_job(i)
                on_progress(i, job, Progress("rendering", detail=f"on {name}"))
            if not running:  # every worker died: the rest fail, each with the reason
                for i, job in queue:
                    started(i, job)
                    yield i, _failed(job, 0.0, "WorkerDied", "no Ray worker is left to render it")
                return
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, name, i, job, t0 = running.pop(ref)
            self.rendering.pop(i, None)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                deaths[name] = deaths.get(name, 0) + 1
                seconds = round(time.perf_counter() - t0, 4)
                yield (
                    i,
                    _failed(job, seconds, "WorkerDied", f"the Ray worker {name} died: {_cause(exc)}", name),
                )
                if deaths[name] <= 1:  # Ray restarts it once (max_restarts=1), model and all
                    idle.append((actor, name))
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. the result could not be deserialised
                seconds = round(time.perf_counter() - t0, 4)
                yield i, _failed(job, seconds, type(exc).__name__, str(_cause(exc)), name)
            else:
                yield i, outcome
            idle.append((actor, name))


# -- connecting ---------------------------------------------------------------------------

# what Ray says when a cluster refuses a client's token: the C++ client's log lines
# ("Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing or incorrect"),
# ray.exceptions.AuthenticationError ("Token authentication is enabled but no authentication
# token was found"), and the GCS server's own log ("Missing authorization header in request!")
# (not Ray's "Token authentication is enabled for this Ray cluster" notice, which a client that
# found a token prints whether or not a cluster is running)
_AUTH_REFUSED = re.compile(
    r"Unauthenticated|InvalidAuthToken|no authentication token|authentication token (?:was found|is missing|is invalid)"
    r"|token is missing or incorrect|authori[sz]ation header",
    re.IGNORECASE,
)

AUTH_FIX = (
    "the cluster uses token authentication (Ray 2.60+ turns it on at `ray start --head`): "
    "export RAY_AUTH_MODE=token where you run brandstudio, with the cluster's token in "
    "~/.ray/auth_token (or RAY_AUTH_TOKEN_PATH=FILE, or RAY_AUTH_TOKEN=TOKEN); "
    "`ray get-auth-token` on the head node prints it"
)


def _connect(ray, address: str) -> None:
    """``ray.init`` with a clear error: a refused token is named as such (Ray itself reports only
    "Failed to connect", and logs the reason from C++ to the terminal, twenty times)."""
    logs = _gcs_logs()
    seen = {p: _size(p) for p in logs}
    with _native_stderr() as captured, _own_sigterm_handler():
        try:
            ray.init(
                address=None if address == "local" else address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="WARNING",
            )
            return
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            error = exc
    server_said = "".join(_appended(p, seen.get(p, 0)) for p in _gcs_logs())
    raise connection_error(address, error, client_log=captured.text, server_log=server_said) from None


def connection_error(
    address: str, exc: BaseException, *, client_log: str = "", server_log: str = ""
) -> CampaignError:
    """The error for a failed ``ray.init``: authentication when Ray's exception, the client's own
    log or the local cluster's GCS log (lines written during this attempt) says so; else "cannot
    connect", with how to start a cluster."""
    said = str(exc).strip()
    refused = type(exc).__name__ == "AuthenticationError" or any(
        _AUTH_REFUSED.search(text) for text in (said, client_log, server_log)
    )
    if not refused:
        return CampaignError(
            f"cannot connect to the Ray cluster at {address!r}: {said}",
            field="ray.address",
            value=address,
            fix="start one (`ray start --head`), pass its address (--ray HEAD:6379), "
            "or use --ray local to start Ray on this machine",
        )
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is None or mode.lower() != "token":
        why = (
            "the cluster requires a token, and this client sends none "
            f"(RAY_AUTH_MODE is {'unset' if mode is None else repr(mode)})"
        )
    elif re.search(r"no authentication token", said, re.IGNORECASE):
        why = "RAY_AUTH_MODE is token, but no token was found here"
    else:
        why = "the cluster refused this client's token (not the cluster's)"
    first = re.split(r"(?<=[.!])\s", said, maxsplit=1)[0] if said else type(exc).__name__
    return CampaignError(
        f"cannot connect to the Ray cluster at {address!r}: token authentication failed: {why} (Ray: {first})",
        field="ray.address",
        value=address,
        fix=AUTH_FIX,
    )


@contextlib.contextmanager
def _own_sigterm_handler() -> Iterator[None]:
    """Keep this process's SIGTERM handler across ``ray.init``, which replaces it with
    ``sys.exit(15)`` in the main thread: the CLI's handler (exit 143, unwinding like Ctrl-C) stays.
    A process that had none (Python's default: die at once) keeps Ray's, which at least unwinds."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if callable(previous):
            signal.signal(signal.SIGTERM, previous)


class _Captured:
    text = ""


@contextlib.contextmanager
def _native_stderr() -> Iterator[_Captured]:
    """Catch what is written to file descriptor 2 (Ray's C++ client logs there, past Python)
    while connecting; it is read for the cause of a failure and not shown."""
    captured = _Captured()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read(1 << 20).decode("utf-8", "replace")


def _gcs_logs() -> list[Path]:
    """The GCS server logs of the Ray cluster started on this machine (its session_latest), if any."""
    try:
        import ray._common.utils as ray_utils  # heavy (ray): only when connecting

        root = Path(ray_utils.get_default_ray_temp_dir())
    except Exception:  # noqa: BLE001 - a private helper of Ray: fall back to its default
        root = Path(tempfile.gettempdir()) / "ray"
    try:
        return sorted((root / "session_latest" / "logs").glob("gcs_server*.out"))
    except OSError:
        return []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _appended(path: Path, offset: int) -> str:
    """What was written to ``path`` after ``offset`` (at most 1 MB of it)."""
    try:
        with path.open("rb") as f:
            f.seek(offset if offset <= _size(path) else 0)
            return f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return ""


def _failed(job: Job, seconds: float, kind: str, message: str, worker: str | None = None) -> JobOutcome:
    return JobOutcome(job, seconds, error_type=kind, message=message, expected=False, worker=worker)


def _cause(exc: BaseException) -> BaseException | str:
    """The original exception inside a Ray error wrapper, when there is one."""
    inner = getattr(exc, "cause", None) or getattr(exc, "as_instanceof_cause", lambda: None)()
    if isinstance(inner, BaseException) and inner is not exc:
        return inner
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _fmt(resources: dict) -> str:
    keys = ("CPU", "GPU")
    return ", ".join(f"{k}={resources.get(k, 0):g}" for k in keys)
