"""The models on a real database: Chinese text round-trips, times are UTC, the constraints hold."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError, StatementError

from brandstudio.app.db import AuditEvent, Brand, Job, Membership, Review, User, make_engine, sessions, utcnow
from brandstudio.app.passwords import hash_password
from brandstudio.errors import AppError

CJK = "极光咖啡·夜烘「限定」🍵"


def _user(email: str = "mei@aurora.example", name: str = "李梅") -> User:
    return User(email=email, display_name=name, password_hash="$argon2id$not-a-real-hash")


def test_chinese_text_round_trips_through_every_kind_of_column(Session, brand, db_url):
    with Session() as session:
        user = _user(name=CJK)
        job = Job(
            brand_id=brand, template="产品-hero", variables={"产品": CJK, "stars": 5}, deliveries=["reels"]
        )
        session.add_all([user, job])
        session.flush()
        session.add_all([
            Review(job=job, user=user, verdict="changes_requested", comment=f"字幕请改为「{CJK}」"),
            AuditEvent(user=user, brand_id=brand, action="review", target=f"job:{job.id}", details={"备注": CJK}),
        ])  # fmt: skip
        session.commit()
    with Session() as session:  # a new session: read back from the database, not the identity map
        assert session.get(Brand, brand).name == "极光咖啡 Aurora Coffee"
        assert session.scalar(select(User.display_name)) == CJK
        job = session.scalar(select(Job))
        assert (job.template, job.variables, job.deliveries) == (
            "产品-hero",
            {"产品": CJK, "stars": 5},
            ["reels"],
        )
        assert job.reviews[0].comment == f"字幕请改为「{CJK}」"
        assert session.scalar(select(AuditEvent.details)) == {"备注": CJK}
    if db_url.startswith("sqlite"):  # stored as readable text, not \u escapes
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            assert (
                conn.execute("SELECT variables FROM jobs").fetchone()[0] == f'{{"产品": "{CJK}", "stars": 5}}'
            )


def test_times_are_utc_and_naive_times_are_refused(Session, brand):
    before = utcnow()
    beijing = timezone(timedelta(hours=8))
    with Session() as session:
        job = Job(brand_id=brand, template="t", lease_expires_at=datetime(2030, 1, 1, 20, 0, tzinfo=beijing))
        session.add(job)
        session.commit()
        job_id = job.id
    with Session() as session:
        job = session.get(Job, job_id)
        assert job.lease_expires_at == datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
        assert job.lease_expires_at.tzinfo == timezone.utc and job.created_at.tzinfo == timezone.utc
        assert before <= job.created_at <= utcnow()
        job.started_at = datetime(2030, 1, 1, 12, 0)  # naive: which zone?
        with pytest.raises(StatementError, match="naive datetime"):
            session.commit()


def test_one_membership_per_user_and_brand_and_only_known_roles(Session, brand):
    with Session() as session:
        user = _user()
        session.add(user)
        session.flush()
        session.add(Membership(user_id=user.id, brand_id=brand, role="reviewer"))
        session.commit()
        user_id = user.id
    with Session() as session, pytest.raises(IntegrityError):
        session.add(Membership(user_id=user_id, brand_id=brand, role="editor"))
        session.commit()
    with Session() as session, pytest.raises(IntegrityError, match="ck_memberships_role"):
        other = _user("li@agency.example")
        session.add(other)
        session.flush()
        session.add(Membership(user_id=other.id, brand_id=brand, role="owner"))
        session.commit()


@pytest.mark.parametrize(
    "row",
    [
        lambda b: _user("mei@aurora.example"),  # a second user with the same e-mail
        lambda b: Job(brand_id="no-such-brand", template="t"),  # foreign key
        lambda b: Job(brand_id=b, template="t", status="paused"),  # status check
        lambda b: Job(brand_id=b, template="t", max_attempts=0),
    ],
    ids=["email-unique", "brand-fk", "status", "max-attempts"],
)
def test_the_database_refuses_rows_that_break_its_rules(Session, brand, row):
    with Session() as session:
        session.add(_user("mei@aurora.example"))
        session.commit()
    with Session() as session, pytest.raises(IntegrityError):
        session.add(row(brand))
        session.commit()


def test_deleting_a_user_keeps_their_jobs_and_the_audit_log(Session, brand):
    with Session() as session:
        user = User(
            email="li@agency.example", display_name="Li", password_hash=hash_password("correct horse battery")
        )
        session.add(user)
        session.flush()
        session.add_all([Job(brand_id=brand, template="t", created_by=user.id),
                         AuditEvent(user_id=user.id, brand_id=brand, action="render", target="job:1")])  # fmt: skip
        session.commit()
        session.delete(user)
        session.commit()
    with Session() as session:
        assert session.scalar(select(Job.created_by)) is None
        assert session.scalar(select(AuditEvent.action)) == "render"


def test_an_engine_needs_a_url_or_a_data_directory(tmp_path):
    with pytest.raises(AppError, match="no database"):
        make_engine()
    engine = make_engine(data_dir=tmp_path / "studio")
    assert engine.url.database == str(tmp_path / "studio" / "brandstudio.db")
    engine.dispose()


def test_sqlite_sessions_take_the_write_lock_up_front_unless_read_only(sqlite_engine):
    engine = sqlite_engine
    begun = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, *a: begun.append(sql) if "BEGIN" in sql else None,
    )
    for factory in (sessions(engine), sessions(engine, read_only=True)):
        with factory() as session:
            session.scalar(select(Job.id))
    assert begun == ["BEGIN IMMEDIATE", "BEGIN DEFERRED"]
