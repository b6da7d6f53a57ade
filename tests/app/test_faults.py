"""Faults the review app's queue must survive, on SQLite and (with ``BRANDSTUDIO_TEST_POSTGRES_URL``)
PostgreSQL: a worker process SIGKILLed mid-render, the database going away while jobs run, and
twenty jobs submitted at once by two users through the API for two workers. Every job ends
exactly once: done with its files (attempts counted), never lost, never doubled, never half-stored.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from brandstudio.app.db import AuditEvent, Brand, Job, make_engine, sessions
from brandstudio.app.queue import submit
from brandstudio.app.worker import Worker, job_dir
from brandstudio.studio import BrandStudio

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
LEASE_S = 1.5

sys.path.insert(0, str(Path(__file__).parent))  # tests/app is not on pytest's pythonpath
import test_web  # noqa: E402

site = test_web.site  # the web side's fixture: two brands, their users, the app


class Slow:
    """Flat footage after ``seconds`` (the lease timer keeps the job meanwhile); ``started`` is
    set when it begins."""

    model_id = "slow"

    def __init__(self, seconds: float, on_start=None) -> None:
        self.seconds, self.on_start = seconds, on_start
        self.started = threading.Event()
        self.calls = 0

    def generate(self, spec):
        from fixed_generators import FlatGenerator

        self.calls += 1
        self.started.set()
        if self.on_start is not None:
            self.on_start(self.calls)
        time.sleep(self.seconds)
        return FlatGenerator().generate(spec)


@pytest.fixture
def brand_profile(Session, make_profile):  # noqa: N803
    prof = make_profile("aurora-coffee", edit=lambda t: t.replace('nsfw = "block"', 'nsfw = "off"'))
    with Session() as session:
        session.add(Brand(id="aurora-coffee", name="Aurora Coffee", profile_path=str(prof)))
        session.commit()
    return prof


def queue_job(Session, product: str = "Night Roast", created_by: int | None = None) -> int:  # noqa: N803
    with Session() as session:
        jid = submit(session, brand="aurora-coffee", template="product-hero", variables={"product": product},
                     aspect="16:9", duration=0.5, resolution=64, created_by=created_by).id  # fmt: skip
        session.commit()
    return jid


def make_worker(Session, data, generator, **options) -> Worker:  # noqa: N803
    return Worker(Session, data, studio_factory=lambda b, o: BrandStudio(b.profile_path, output_dir=o,
                  generator=generator, cache=False), **options)  # fmt: skip


def assert_done_once(Session, data: Path, jid: int, attempts: int) -> Job:  # noqa: N803
    """Done, with ``attempts``, one result, and exactly its outputs in its folder."""
    with Session() as session:
        job = session.get(Job, jid)
        assert (job.status, job.attempts) == ("done", attempts), (job.status, job.attempts, job.error)
        assert job.result is not None and job.outputs and job.lease_expires_at is None
    folder = job_dir(data, "aurora-coffee", jid)
    delivered = sorted(Path(o).resolve() for o in job.outputs)
    assert all(p.is_file() and p.parent == folder for p in delivered)
    mp4s = sorted(p.resolve() for p in folder.rglob("*.mp4"))
    assert mp4s == [p for p in delivered if p.suffix == ".mp4"], "a file of another attempt is left, or one is missing"
    hashes = {f["sha256"] for f in job.result["files"]}
    assert len(hashes) == len(job.result["files"]) == len(job.outputs)
    return job


# -- a. a worker process killed mid-render ------------------------------------------------------

WORKER_SCRIPT = """
import sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from pathlib import Path
from brandstudio.app.worker import run_worker
from brandstudio.studio import BrandStudio
from fixed_generators import FlatGenerator

class Slow:
    model_id = "slow"
    def generate(self, spec):
        Path({marker!r}).write_text("generating")
        time.sleep(120)
        return FlatGenerator().generate(spec)

run_worker({url!r}, Path({data!r}), poll_seconds=0.2, lease_seconds={lease!r}, worker_id="doomed", max_jobs=1,
           studio_factory=lambda b, o: BrandStudio(b.profile_path, output_dir=o, generator=Slow(), cache=False))
"""


def test_a_worker_process_killed_mid_render_is_requeued_and_finished_exactly_once(
    db_url, Session, brand_profile, tmp_path  # noqa: N803
):
    data, marker = tmp_path / "data", tmp_path / "generating"
    jid = queue_job(Session)
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT.format(root=str(ROOT), tests=str(TESTS), marker=str(marker), url=db_url,
                                           data=str(data), lease=LEASE_S), encoding="utf-8")  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the worker process never started generating"
            time.sleep(0.05)
        time.sleep(LEASE_S)  # a few heartbeats from its lease timer
        with Session() as session:
            job = session.get(Job, jid)
            assert (job.status, job.worker, job.attempts) == ("running", "doomed", 1)
            assert job.lease_expires_at > job.started_at  # extended while it slept
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    # the dead worker's job is its until the lease runs out: a second worker finds nothing to take
    rescuer = make_worker(Session, data, Slow(0.0), lease_seconds=LEASE_S, worker_id="rescuer")
    if not rescuer.run_once():  # (on a slow machine the lease may have run out already)
        time.sleep(LEASE_S + 0.2)
        assert rescuer.run_once() is True  # requeued (WorkerLost) then claimed again, rendered
    job = assert_done_once(Session, data, jid, attempts=2)
    assert job.worker == "rescuer" and job.result["worker"] == "rescuer"
    assert rescuer.run_once() is False  # nothing left: not doubled
    with Session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 1


# -- b. the database goes away while jobs run ---------------------------------------------------


class Outage:
    """The database unreachable for ``seconds``: every pooled connection closed (as a server restart
    does) and every new connection refused (SQLite: ``unable to open database file``; PostgreSQL:
    a real ``pg_ctl restart`` when the throwaway server of .ci/postgres.sh is running)."""

    def __init__(self, engine, db_url: str, seconds: float) -> None:
        self.engine, self.seconds, self.real = engine, seconds, db_url.startswith("postgresql")
        self.down = threading.Event()
        self.refused = 0
        self.done = threading.Event()

        @event.listens_for(engine, "do_connect")
        def _connect(dialect, conn_rec, cargs, cparams):
            if self.down.is_set():
                self.refused += 1
                raise (sqlite3.OperationalError if dialect.name == "sqlite" else _pg_error())("unable to connect: the database is down (test)")

    def start(self, _calls: int = 1) -> None:
        if self.down.is_set() or self.done.is_set():
            return
        self.down.set()
        self.engine.dispose()  # the pool's connections are gone, as after a server restart
        if self.real and os.environ.get("BRANDSTUDIO_PG_DIR"):
            threading.Thread(target=_restart_postgres, daemon=True).start()

        def back() -> None:
            time.sleep(self.seconds)
            self.down.clear()
            self.done.set()

        threading.Thread(target=back, daemon=True).start()


def _pg_error():
    import psycopg

    return psycopg.OperationalError


def _restart_postgres() -> None:
    pg_dir = os.environ["BRANDSTUDIO_PG_DIR"]
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")) or [Path(shutil.which("pg_ctl") or "pg_ctl")]
    # -l: the restarted server logs to the file, as .ci/postgres.sh started it; without it the server
    # would hold this process's stdout open and pg_ctl's output would never reach its end
    cmd = [str(bins[-1]), "-D", f"{pg_dir}/data", "-l", f"{pg_dir}/server.log", "-m", "fast", "-w", "-t", "60", "restart"]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=90)


@pytest.mark.parametrize("when", ["mid-render", "at the finish"])
def test_the_database_going_away_while_jobs_run_leaves_the_worker_running_and_nothing_half_stored(
    db_url, brand_profile, tmp_path, when, caplog  # noqa: N803
):
    caplog.set_level("WARNING", logger="brandstudio.app.worker")
    data = tmp_path / "data"
    engine = make_engine(db_url)  # the worker's own engine: the outage is its connections'
    Session = sessions(engine)  # noqa: N806
    outage = Outage(engine, db_url, seconds=2.5)
    # mid-render: down while the generator sleeps (heartbeats fail); at the finish: down just as
    # the footage comes back, so the post stages' progress and finish() meet a dead database
    generator = Slow(1.0 if when == "mid-render" else 0.0, on_start=outage.start)
    jobs = [queue_job(Session, product) for product in ("Night Roast", "Day Roast", "Cold Brew")]
    stop = threading.Event()
    worker = make_worker(Session, data, generator, lease_seconds=LEASE_S, worker_id="survivor", stop_event=stop)
    thread = threading.Thread(target=worker.run, kwargs={"poll_seconds": 0.1}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert thread.is_alive(), "the worker died with the database"
            if outage.done.is_set() and _statuses(db_url, jobs) == ["done"] * len(jobs):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"jobs not done after the outage: {_statuses(db_url, jobs)}")
    finally:
        stop.set()
        thread.join(timeout=60)
        engine.dispose()
    assert outage.refused > 0 or outage.real, "the outage was never felt"
    felt = "heartbeat skipped" if when == "mid-render" else "cannot report the end"
    assert felt in caplog.text, caplog.text
    check = make_engine(db_url)
    try:
        for jid in jobs:
            assert_done_once(sessions(check), data, jid, attempts=1)  # one worker: never lost to another
    finally:
        check.dispose()


def _statuses(db_url: str, jobs: list[int]) -> list[str]:
    engine = make_engine(db_url)
    try:
        with sessions(engine)() as session:
            return [session.get(Job, j).status for j in jobs]
    finally:
        engine.dispose()


# -- c. twenty jobs from two users at once, two workers -------------------------------------------


def test_twenty_jobs_from_two_users_at_once_two_workers_each_done_once_and_attributed(
    db_url, make_profile, tmp_path  # noqa: N803
):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from brandstudio.app.admin import create_api_token, create_user
    from brandstudio.app.web import create_app

    make_profile("aurora-coffee", edit=lambda t: t.replace('nsfw = "block"', 'nsfw = "off"'))
    data = tmp_path / "data"
    app = create_app(db_url, data, tmp_path / "profiles", secret_key="k", secure_cookies=False)
    Session = app.state.Session  # noqa: N806
    users = {name: create_user(Session, f"{name}@agency.example", "correct horse battery", roles={"aurora-coffee": "editor"})
             for name in ("li", "mei")}  # fmt: skip
    submitted: dict[str, list[int]] = {name: [] for name in users}
    barrier = threading.Barrier(len(users))
    errors: list[str] = []

    def submit_ten(name: str) -> None:
        c = TestClient(app, base_url="http://127.0.0.1")
        c.headers["Authorization"] = f"Bearer {create_api_token(Session, users[name], 'load')}"
        barrier.wait()
        for i in range(10):
            res = c.post("/api/brands/aurora-coffee/jobs", json={"template": "product-hero", "aspect": "16:9",
                         "variables": {"product": f"{name} {i}"}, "duration": 0.5, "resolution": 64})  # fmt: skip
            if res.status_code != 201:
                errors.append(res.text)
            else:
                submitted[name].append(res.json()["id"])

    stop = threading.Event()
    generator = Slow(0.0)
    workers = [make_worker(Session, data, generator, lease_seconds=30, worker_id=f"w{i}", stop_event=stop)
               for i in range(2)]  # fmt: skip
    threads = [threading.Thread(target=w.run, kwargs={"poll_seconds": 0.1}, daemon=True) for w in workers]
    submitters = [threading.Thread(target=submit_ten, args=(name,)) for name in users]
    for t in threads + submitters:
        t.start()
    for t in submitters:
        t.join(timeout=120)
    assert not errors, errors
    every = sorted(submitted["li"] + submitted["mei"])
    assert len(every) == len(set(every)) == 20
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with Session() as session:
                left = session.scalar(select(func.count()).select_from(Job).where(Job.status != "done"))
            if left == 0:
                break
            assert all(t.is_alive() for t in threads)
            time.sleep(0.3)
        else:
            pytest.fail(f"{left} jobs not done")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    with Session() as session:
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        assert [j.id for j in jobs] == every
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "job.submit")).all()
        by_target = {e.target: e.user_id for e in events}
    for name, ids in submitted.items():
        for jid in ids:
            job = assert_done_once(Session, data, jid, attempts=1)
            assert job.created_by == users[name] and job.variables["product"].startswith(name)
            assert by_target[f"job:{jid}"] == users[name]
    assert len(events) == 20
    assert {j.worker for j in jobs} <= {"w0", "w1"}
    assert generator.calls == 20  # rendered once each
    app.state.engine.dispose()


# -- d. the web side while the database does not answer ----------------------------------------


def test_pages_and_the_api_answer_503_while_the_database_is_down_and_recover_after(site, db_url):
    """Every pooled connection gone and new ones refused: a page, an API call and a form post are
    503 with Retry-After (no 500, no traceback), nothing is stored; all answer again once it is back."""
    engine = site["app"].state.engine
    editor, token_client = test_web.signed_in(site, "editor"), test_web.api(site, "editor")
    form_url = f"/brands/{test_web.A}/templates/product-hero"
    csrf = test_web.csrf_of(editor.get(form_url).text)
    outage = Outage(engine, db_url, seconds=0)
    outage.down.set()
    engine.dispose()
    try:
        page = editor.get(f"/brands/{test_web.A}/jobs")
        assert page.status_code == 503 and page.headers["retry-after"] == "5"
        assert "the database does not answer" in page.text and "Traceback" not in page.text
        posted = editor.post(form_url, data={"csrf": csrf, "var.product": "Longjing"})
        assert posted.status_code == 503
        res = token_client.post(f"/api/brands/{test_web.A}/jobs", json={"template": "product-hero",
                                                                        "variables": {"product": "Longjing"}})  # fmt: skip
        assert res.status_code == 503 and "the database does not answer" in res.json()["detail"]
        assert outage.refused >= 3
    finally:
        outage.down.clear()
    assert editor.get(f"/brands/{test_web.A}/jobs").status_code == 200
    with site["Session"]() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.brand_id == test_web.A)) == 0
    res = token_client.post(f"/api/brands/{test_web.A}/jobs", json={"template": "product-hero",
                                                                    "variables": {"product": "Longjing"}})  # fmt: skip
    assert res.status_code == 201
