"""The review app's worker on a local Ray cluster (two logical GPUs: one actor each, as on a
two-GPU node) rendering with the real offline tiny model, on SQLite and (with
``BRANDSTUDIO_TEST_POSTGRES_URL``) PostgreSQL: a batch of one brand's jobs on two actors, each
job done exactly once with its files; bad input and a broken profile fail with their message
while the others finish; a stop mid-batch and a lost lease leave no files behind; the CLI's
errors for a cluster without room name its options.

Clips are as small as the tiny model allows (0.25 s, 64 px high). Each rendering test starts
its own actors (the model loads in each): marked slow, about 50 s for the three on two cores.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path

import pytest
from helpers import probe
from sqlalchemy import update
from typer.testing import CliRunner

from brandstudio.app.db import Brand, Job
from brandstudio.app.queue import requeue_expired, submit
from brandstudio.app.ray_worker import RayWorker, start_ray_worker
from brandstudio.app.worker import job_dir
from brandstudio.cli import app
from brandstudio.errors import CampaignError

TINY = {"aspect": "16:9", "duration": 0.25, "resolution": 64}
LEASE_S = 6.0  # heartbeats every 2 s; a job whose heartbeats stopped is taken back within seconds


def add_brand(Session, brand_id: str, profile: Path) -> None:  # noqa: N803
    with Session() as session:
        session.add(Brand(id=brand_id, name=brand_id.replace("-", " ").title(), profile_path=str(profile)))
        session.commit()


@pytest.fixture
def brand_profile(Session, make_profile) -> None:  # noqa: N803
    """The demo brand aurora-coffee, from a copy of its profile."""
    add_brand(Session, "aurora-coffee", make_profile("aurora-coffee"))


def queue_job(Session, product: str, brand: str = "aurora-coffee") -> int:  # noqa: N803
    """A tiny product-hero clip of ``product`` queued for ``brand``; its id."""
    with Session() as session:
        job = submit(session, brand=brand, template="product-hero", variables={"product": product}, **TINY)
        session.commit()
        return job.id


def get_job(Session, jid: int) -> Job:  # noqa: N803
    with Session() as session:
        return session.get(Job, jid)


def wait_for(condition, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def rendering(Session, jid: int) -> bool:  # noqa: N803
    """The job is on an actor: its heartbeat carries 'rendering (on <actor>)'."""
    job = get_job(Session, jid)
    return job.status == "running" and (job.progress or {}).get("stage") == "rendering"


def ending(job: Job) -> tuple:
    """How a job ended: status, attempts, error type, whether the error was expected (bad input)."""
    error = job.error or {}
    return job.status, job.attempts, error.get("type"), error.get("expected")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_batch_renders_on_two_actors_each_job_once_and_bad_jobs_fail_with_their_message(
    ray_cluster, Session, brand_profile, make_profile, tmp_path
):  # noqa: N803
    data = tmp_path / "data"
    broken = make_profile(name="broken", edit=lambda t: t.replace('nsfw = "block"', 'nsfw = "maybe"'))
    add_brand(Session, "broken", broken)
    broken_job = queue_job(Session, "Night Roast", brand="broken")  # oldest: its brand's executor cannot open
    good = [queue_job(Session, p) for p in ("Night Roast", "Day Roast", "Decaf", "Cold Brew")]
    bad_input = queue_job(Session, "夜烘")  # the brand's caption font has no CJK glyphs: a PostError

    # the web process's part: take back the jobs of a worker whose heartbeats stopped (none must be)
    watching, taken_back = threading.Event(), []

    def web_requeues() -> None:
        while not watching.wait(0.5):
            taken_back.extend(requeue_expired(Session).requeued)

    watcher = threading.Thread(target=web_requeues, daemon=True)
    watcher.start()
    stop = threading.Event()
    deadline = threading.Timer(600, stop.set)  # a hung worker fails the test instead of the run
    deadline.start()
    worker = RayWorker(
        Session, data, address="auto", lease_seconds=LEASE_S, stop_event=stop, worker_id="ray-1"
    )
    t0 = time.perf_counter()
    try:
        with worker:
            assert worker.actor_count == 2
            assert worker.run(poll_seconds=0.1, max_jobs=6) == 6
            assert worker.executor is not None and worker.executor_brand == "aurora-coffee"  # kept open
            actors = set(worker.executor.names)
        assert worker.executor is None
    finally:
        deadline.cancel()
        watching.set()
        watcher.join()
    print(f"6 jobs on 2 Ray actors: {time.perf_counter() - t0:.1f}s")
    assert not stop.is_set(), "the worker did not finish its jobs in time"
    assert taken_back == [], "a lease ran out while its job rendered: the heartbeats stopped"

    job = get_job(Session, broken_job)
    assert ending(job) == ("failed", 1, "ProfileError", True)  # failed at once: bad input, not a crash
    assert "safety.nsfw" in job.error["message"] and "maybe" in job.error["message"]
    job = get_job(Session, bad_input)
    assert ending(job) == ("failed", 1, "PostError", True)
    assert "no glyph" in job.error["message"]
    for jid in (broken_job, bad_input):
        assert not job_dir(data, get_job(Session, jid).brand_id, jid).exists()

    assert len(actors) == 2 and all(":gpu" in name for name in actors)
    rendered_by = set()
    for jid in good:
        job = get_job(Session, jid)
        assert ending(job) == ("done", 1, None, None) and job.worker == "ray-1", job.error
        actor = job.result["worker"]
        assert actor in actors
        rendered_by.add(actor)
        assert job.progress["detail"] == f"on {actor}"  # the heartbeat told the web page which actor
        folder = job_dir(data, "aurora-coffee", jid)
        files = job.result["files"]
        assert [f["output"] for f in files] == job.outputs and len(files) == 1
        clip = Path(files[0]["output"])
        assert clip.parent == folder and sorted(folder.rglob("*.mp4")) == [clip]
        assert clip.stat().st_size == files[0]["size"] and sha256(clip) == files[0]["sha256"]
        render = job.result["render"]
        info = probe(clip)
        assert info["video_codec"] == "h264"
        assert (info["width"], info["height"]) == (render["width"], render["height"]) and info["height"] == 64
        assert info["frames"] == round(render["duration"] * render["fps"]) > 0
        assert render["variables"]["product"] == job.variables["product"]
    assert rendered_by == actors  # both actors rendered
    assert len({get_job(Session, jid).result["files"][0]["sha256"] for jid in good}) == 4


@pytest.mark.slow
def test_a_stop_mid_batch_releases_the_jobs_and_frees_the_gpus(ray_cluster, Session, brand_profile, tmp_path):  # noqa: N803
    data = tmp_path / "data"
    # not in the scene cache (the first test's products are): generated, seconds on the actors
    jobs = [queue_job(Session, p) for p in ("Stopped Roast", "Stopped Blend")]
    stop = threading.Event()
    worker = RayWorker(Session, data, address="auto", lease_seconds=LEASE_S, stop_event=stop)
    thread = threading.Thread(target=lambda: worker.run(poll_seconds=0.1), daemon=True)
    thread.start()
    try:
        wait_for(lambda: all(rendering(Session, jid) for jid in jobs), "both jobs on an actor")
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        stop.set()
        worker.close()
    for jid in jobs:
        job = get_job(Session, jid)
        assert (job.status, job.attempts, job.worker, job.progress) == ("queued", 0, None, None)
        assert job.result is None and not job_dir(data, "aurora-coffee", jid).exists()
    assert worker.executor is None
    wait_for(
        lambda: ray_cluster.available_resources().get("GPU", 0) == 2, "the actors' GPUs freed", timeout=30
    )


@pytest.mark.slow
def test_a_lost_lease_stops_the_actor_and_removes_the_files(
    ray_cluster, Session, brand_profile, tmp_path, caplog
):  # noqa: N803
    data = tmp_path / "data"
    jid = queue_job(Session, "Lost Lease Blend")  # not in the scene cache: generated, seconds on the actor
    # heartbeats every 0.5 s: the loss is seen well before the render could end
    worker = RayWorker(Session, data, address="auto", workers=1, lease_seconds=1.5)
    caplog.set_level(logging.INFO, logger="brandstudio.app")
    worked = []
    thread = threading.Thread(target=lambda: worked.append(worker.run_once()), daemon=True)
    thread.start()
    try:
        wait_for(lambda: rendering(Session, jid), "the job on an actor")
        with Session() as session:  # as if its lease had run out and another worker had claimed it
            session.execute(update(Job).where(Job.id == jid).values(worker="thief"))
            session.commit()
        thread.join(timeout=120)
        assert not thread.is_alive() and worked == [1]
    finally:
        worker.close()
    job = get_job(Session, jid)
    assert (job.status, job.worker, job.result) == ("running", "thief", None)  # the thief's now
    assert job.attempts == 1
    assert not job_dir(data, "aurora-coffee", jid).exists()
    assert f"job {jid}: lease lost mid-render, its actor is stopped" in caplog.text
    assert f"job {jid}: lease lost, its files removed" in caplog.text


def test_serves_worker_thread_joins_the_cluster_before_it_starts_and_stops_on_its_event(
    ray_cluster, db_url, tmp_path
):
    stop = threading.Event()
    with pytest.raises(CampaignError, match="no GPUs") as e:  # raised here, in the caller's thread
        start_ray_worker(db_url, tmp_path, stop, gpus_per_worker=4)
    assert e.value.field == "ray.gpus_per_worker"
    assert not any(t.name == "ray-worker" for t in threading.enumerate())
    thread = start_ray_worker(db_url, tmp_path, stop, poll_seconds=0.1)  # an empty queue: no actors yet
    assert thread.is_alive()
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert ray_cluster.is_initialized()  # the cluster it found joined is left as it was


def test_worker_cli_names_its_options_when_the_cluster_has_no_room(ray_cluster, db_url):
    runner = CliRunner()
    res = runner.invoke(app, ["worker", "--database", db_url, "--ray", "auto", "--gpus-per-worker", "4"])
    assert res.exit_code == 2, res.output
    assert "no GPUs" in res.output and "--gpus-per-worker 0" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["worker", "--database", db_url, "--ray", "auto", "--ray-workers", "3"])
    assert res.exit_code == 2, res.output
    assert "3 workers asked for, but the cluster has room for 2" in res.output
    assert "--ray-workers" in res.output and "Traceback" not in res.output


def test_serve_refuses_a_cluster_without_room_before_it_listens(ray_cluster, tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    monkeypatch.delenv("BRANDSTUDIO_ADMIN_PASSWORD", raising=False)
    res = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "data"), "--profiles", str(tmp_path / "none"),
                                   "--ray", "auto", "--gpus-per-worker", "4"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "no GPUs" in res.output and "--gpus-per-worker" in res.output and "Traceback" not in res.output
