"""The job queue on a real database: concurrent workers never share a job, a lost lease gives
the job to another worker and refuses the old one, attempts run out with a reason."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from brandstudio.app.db import Brand, Job, make_engine, sessions
from brandstudio.app.queue import (
    Requeued,
    _next_queued,
    claim,
    fail,
    finish,
    heartbeat,
    release,
    requeue_expired,
    submit,
    worker_name,
)
from brandstudio.errors import AppError, LeaseLost
from brandstudio.progress import Progress

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submit_jobs(Session, brand: str, n: int = 1, **kw) -> list[int]:  # noqa: N803
    with Session() as session:
        ids = [submit(session, brand=brand, template="product-hero", variables={"product": f"夜烘 {i}"}, **kw).id
               for i in range(n)]  # fmt: skip
        session.commit()
    return ids


def job(Session, job_id: int) -> Job:  # noqa: N803
    with Session() as session:
        return session.get(Job, job_id)


def test_twenty_jobs_four_workers_each_job_claimed_exactly_once(db_url, Session, brand):  # noqa: N803
    ids = submit_jobs(Session, brand, 20)
    claims: dict[str, list[int]] = {}
    start = threading.Barrier(4)
    errors = []

    def work(name: str) -> None:
        engine = make_engine(db_url)  # a connection of its own, as a worker process has
        own = sessions(engine)
        mine = claims.setdefault(name, [])
        try:
            start.wait()
            while (got := claim(own, name, lease_seconds=60)) is not None:
                assert (got.status, got.worker, got.attempts) == ("running", name, 1)
                mine.append(got.id)
                time.sleep(
                    0.01
                )  # "rendering": the others claim meanwhile (a naive claim gives ~30 claims here)
                finish(own, got.id, name, result={"worker": name}, outputs=[f"renders/{got.id}.mp4"])
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread's name
            errors.append((name, exc))
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(f"worker-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    claimed = [i for got in claims.values() for i in got]
    assert sorted(claimed) == ids  # every job once: none missed, none twice
    assert sum(1 for got in claims.values() if got) >= 2  # the workers did run side by side
    with Session() as session:
        rows = session.execute(select(Job.id, Job.status, Job.attempts, Job.worker, Job.result)).all()
    assert all(status == "done" and attempts == 1 for _, status, attempts, _, _ in rows)
    assert all(
        result == {"worker": worker} and job_id in claims[worker] for job_id, _, _, worker, result in rows
    )


def test_jobs_are_claimed_oldest_first_and_only_of_the_brands_asked_for(Session, brand):  # noqa: N803
    with Session() as session:
        session.add(Brand(id="qinglan-tea", name="青岚茶", profile_path="brand_profiles/qinglan-tea"))
        session.commit()
    first, second = submit_jobs(Session, brand, 2)
    (tea,) = submit_jobs(Session, "qinglan-tea")
    assert claim(Session, "w", brands=["qinglan-tea"]).id == tea
    assert claim(Session, "w", brands=["qinglan-tea"]) is None
    assert [claim(Session, "w").id, claim(Session, "w").id] == [first, second]
    assert claim(Session, "w") is None


def test_an_expired_lease_goes_to_another_worker_and_the_old_one_is_refused(Session, brand):  # noqa: N803
    (job_id,) = submit_jobs(Session, brand)
    old, new = worker_name(), worker_name()
    got = claim(Session, old, lease_seconds=30, now=T0)
    assert (got.id, got.lease_expires_at, got.started_at) == (job_id, at(30), T0)
    assert requeue_expired(Session, now=at(29)) == Requeued()  # still within the lease
    assert requeue_expired(Session, now=at(31)) == Requeued(requeued=(job_id,))
    requeued = job(Session, job_id)
    assert (requeued.status, requeued.worker, requeued.lease_expires_at, requeued.attempts) == (
        "queued",
        None,
        None,
        1,
    )
    assert (
        requeued.error["type"] == "WorkerLost"
        and f"worker {old} stopped reporting" in requeued.error["message"]
    )

    got = claim(Session, new, lease_seconds=30, now=at(32))
    assert (got.id, got.worker, got.attempts) == (job_id, new, 2)
    with pytest.raises(LeaseLost, match=f"it no longer holds it \\(it is now held by worker {new}") as err:
        finish(Session, job_id, old, result={"by": "old"}, outputs=["old.mp4"])
    assert err.value.fix.startswith("stop working on the job")
    with pytest.raises(LeaseLost):
        heartbeat(Session, job_id, old, now=at(33))
    finish(Session, job_id, new, result={"by": "new"}, outputs=["new.mp4"], now=at(40))
    done = job(Session, job_id)
    assert (done.status, done.worker, done.result, done.outputs, done.error) == (
        "done",
        new,
        {"by": "new"},
        ["new.mp4"],
        None,
    )
    assert (done.finished_at, done.lease_expires_at) == (at(40), None)


def test_a_heartbeat_keeps_the_job_and_records_progress(Session, brand):  # noqa: N803
    (job_id,) = submit_jobs(Session, brand)
    claim(Session, "w", lease_seconds=30, now=T0)
    assert heartbeat(
        Session, job_id, "w", 30, progress=Progress("generation", 3, 8, "high-noise expert"), now=at(20)
    ) == at(50)
    assert requeue_expired(Session, now=at(45)) == Requeued()
    running = job(Session, job_id)
    assert (running.status, running.worker, running.lease_expires_at) == ("running", "w", at(50))
    assert running.progress == {"stage": "generation", "step": 3, "total": 8, "detail": "high-noise expert"}
    # a lease that ran out but was not taken back yet: nobody else has the job, the worker keeps it
    assert heartbeat(Session, job_id, "w", 30, now=at(60)) == at(90)
    assert requeue_expired(Session, now=at(61)) == Requeued()


def test_after_max_attempts_a_lost_job_fails_and_says_why(Session, brand):  # noqa: N803
    (job_id,) = submit_jobs(Session, brand, max_attempts=2)
    claim(Session, "gpu-1", lease_seconds=10, now=T0)
    assert requeue_expired(Session, now=at(11)) == Requeued(requeued=(job_id,))
    claim(Session, "gpu-2", lease_seconds=10, now=at(12))
    assert requeue_expired(Session, now=at(23)) == Requeued(failed=(job_id,))
    failed = job(Session, job_id)
    assert (failed.status, failed.attempts, failed.finished_at, failed.lease_expires_at) == (
        "failed",
        2,
        at(23),
        None,
    )
    assert failed.error["type"] == "WorkerLost" and failed.error["expected"] is False
    assert failed.error["message"] == (
        f"job {job_id} was given to a worker 2 times and each time the worker stopped before it finished; the "
        f"last time, worker gpu-2 stopped reporting on job {job_id}: its lease ran out at 2030-01-01 09:00:22 UTC "
        "(attempt 2 of 2)"
    )
    assert "workers' logs" in failed.error["fix"]
    assert claim(Session, "gpu-3", now=at(24)) is None
    assert requeue_expired(Session, now=at(100)) == Requeued()


def test_a_worker_that_does_not_hold_the_job_is_refused_and_changes_nothing(Session, brand):  # noqa: N803
    (job_id,) = submit_jobs(Session, brand)
    claim(Session, "owner", lease_seconds=30, now=T0)
    for attempt in (
        lambda: finish(Session, job_id, "intruder", result={}, outputs=["x.mp4"]),
        lambda: heartbeat(Session, job_id, "intruder", 600, progress=Progress("encode", 1, 1)),
        lambda: fail(Session, job_id, "intruder", error_type="Boom", message="no"),
        lambda: release(Session, job_id, "intruder"),
    ):
        with pytest.raises(LeaseLost, match=f"worker intruder cannot .* job {job_id}: it no longer holds it "
                                            "\\(it is now held by worker owner"):  # fmt: skip
            attempt()
    untouched = job(Session, job_id)
    assert (untouched.status, untouched.worker, untouched.lease_expires_at, untouched.progress, untouched.result) == (
        "running", "owner", at(30), None, None)  # fmt: skip
    finish(Session, job_id, "owner", result={"ok": True}, outputs=["a.mp4"])
    with pytest.raises(LeaseLost, match="\\(it is done;"):
        finish(
            Session, job_id, "owner", result={"ok": True}, outputs=["a.mp4"]
        )  # twice: the second is refused
    with pytest.raises(AppError, match="there is no job 999"):
        heartbeat(Session, 999, "owner")


def test_a_failed_render_fails_the_job_or_retries_it_while_attempts_are_left(Session, brand):  # noqa: N803
    bad_input, crash = submit_jobs(Session, brand, 2, max_attempts=2)
    claim(Session, "w", now=T0)
    assert (
        fail(
            Session,
            bad_input,
            "w",
            error_type="TemplateError",
            message="unknown variable 'flavour'",
            now=at(5),
        )
        == "failed"
    )
    failed = job(Session, bad_input)
    assert (failed.status, failed.finished_at, failed.worker) == ("failed", at(5), "w")
    assert failed.error == {
        "type": "TemplateError",
        "message": "unknown variable 'flavour'",
        "expected": True,
    }

    claim(Session, "w", now=T0)
    assert fail(Session, crash, "w", error_type="OutOfMemoryError", message="CUDA out of memory", expected=False,
                retry=True) == "queued"  # fmt: skip
    again = job(Session, crash)
    assert (again.status, again.worker, again.finished_at, again.attempts) == ("queued", None, None, 1)
    claim(Session, "w2", now=at(10))
    assert fail(Session, crash, "w2", error_type="OutOfMemoryError", message="CUDA out of memory", expected=False,
                retry=True, now=at(20)) == "failed"  # fmt: skip
    last = job(Session, crash)
    assert (last.status, last.worker, last.finished_at, last.attempts) == ("failed", "w2", at(20), 2)


def test_a_released_job_goes_back_without_using_an_attempt(Session, brand):  # noqa: N803
    (job_id,) = submit_jobs(Session, brand)
    claim(Session, "w", now=T0)
    release(Session, job_id, "w")
    back = job(Session, job_id)
    assert (back.status, back.worker, back.attempts, back.lease_expires_at, back.started_at) == (
        "queued",
        None,
        0,
        None,
        None,
    )
    assert claim(Session, "w2").attempts == 1


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"brand": "no-such-brand"}, "brand"),
        ({"template": " "}, "template"),
        ({"variables": {"product": ["a", "list"]}}, "variables.product"),
        ({"variables": {"stars": float("nan")}}, "variables.stars"),
        ({"deliveries": "reels"}, "deliveries"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_submit_refuses_what_cannot_be_a_job(Session, brand, values, field):  # noqa: N803
    with Session() as session:
        with pytest.raises(AppError) as err:
            submit(session, **{"brand": brand, "template": "product-hero", **values})
        assert err.value.field == field
        session.rollback()
        assert session.scalar(select(Job)) is None


def test_a_submitted_job_is_queued_with_its_request(Session, brand):  # noqa: N803
    with Session() as session:
        submitted = submit(session, brand=brand, template="product-hero", variables={"product": "夜烘", "stars": 5},
                           aspect="9:16", deliveries=["reels", "master"], seed=7, duration=5.0, max_attempts=4)  # fmt: skip
        session.commit()
    stored = job(Session, submitted.id)
    assert (stored.status, stored.attempts, stored.max_attempts, stored.worker, stored.progress) == (
        "queued",
        0,
        4,
        None,
        None,
    )
    assert (stored.variables, stored.aspect, stored.deliveries, stored.seed, stored.duration) == (
        {"product": "夜烘", "stars": 5}, "9:16", ["reels", "master"], 7, 5.0)  # fmt: skip


def test_claims_lock_rows_on_postgresql_and_rely_on_the_write_lock_on_sqlite():
    on_postgres = str(_next_queued(None).compile(dialect=postgresql.dialect()))
    on_sqlite = str(_next_queued(["aurora-coffee"]).compile(dialect=sqlite.dialect()))
    assert on_postgres.endswith("FOR UPDATE SKIP LOCKED")
    assert "FOR UPDATE" not in on_sqlite and "jobs.brand_id IN" in on_sqlite
