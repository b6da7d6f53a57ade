"""The review app's database: the tables (SQLAlchemy 2.0 typed models) and the engine.

This module owns the schema and how a connection is made; it holds no rules. Who may do what
is :mod:`~brandstudio.app.access`, how a job moves through its states is
:mod:`~brandstudio.app.queue`, and the schema is created and changed only by the migrations
(:mod:`~brandstudio.app.migrate`), never by ``create_all``.

Tables::

    users          an agency admin or a member of some brands; argon2 password hash
    brands         one per brand profile: the profile's id, its name, where its folder is
    memberships    a user's role on one brand: "editor" or "reviewer" (one per user and brand)
    jobs           one render asked for in the app, from queued to done or failed
    reviews        a verdict on a job's clip: "approved" or "changes_requested", with a comment
    audit_events   who did what, when, to what (approvals, rejections, role changes, ...)
    api_tokens     bearer tokens for /api, stored as SHA-256 hashes
    brief_uploads  a confirmed CSV of briefs: its plan id (unique: a plan queues its jobs once)

Text columns are Unicode (a Chinese brand name, caption variable or comment round-trips on
SQLite and PostgreSQL alike); JSON columns are JSONB on PostgreSQL and are written without
``\\u`` escapes. Times are timezone-aware UTC datetimes in Python, whatever the database.

**SQLite** (the default: ``sqlite:///<data dir>/brandstudio.db``) runs in WAL mode (readers do
not block the writer), with foreign keys on and a busy timeout, so that the web process and
its workers share one file. Every transaction starts with ``BEGIN IMMEDIATE``: it takes the
write lock up front (waiting up to the busy timeout) instead of failing with "database is
locked" when a transaction that has read tries to write after another one committed. A
read-only session may ask for a plain ``BEGIN`` with ``sessions(engine, read_only=True)``.
**PostgreSQL**: ``postgresql+psycopg://user:password@host/db`` (``pip install "brandstudio[app]"``).

Example:
    >>> engine = make_engine(data_dir=Path("/tmp/studio"))                       # doctest: +SKIP
    >>> upgrade(engine.url)     # brandstudio.app.migrate: the tables, at head   # doctest: +SKIP
    >>> Session = sessions(engine)                                               # doctest: +SKIP
    >>> with Session() as session:                                               # doctest: +SKIP
    ...     session.add(Brand(id="aurora-coffee", name="极光咖啡", profile_path="brand_profiles/aurora-coffee"))
    ...     session.commit()
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Unicode,
    UnicodeText,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.types import TypeDecorator

from ..errors import AppError

__all__ = [
    "DB_FILE",
    "ApiToken",
    "BriefUpload",
    "JOB_STATUSES",
    "ROLES",
    "SQLITE_BUSY_TIMEOUT_S",
    "VERDICTS",
    "AuditEvent",
    "Base",
    "Brand",
    "Job",
    "Membership",
    "Review",
    "User",
    "UTCDateTime",
    "default_url",
    "make_engine",
    "sessions",
    "utcnow",
]

#: the SQLite file under a data directory
DB_FILE = "brandstudio.db"
#: how long an SQLite connection waits for another one's write lock before giving up
SQLITE_BUSY_TIMEOUT_S = 30.0
#: a user's role on a brand (an agency admin is ``User.is_admin``, not a membership)
ROLES = ("editor", "reviewer")
#: a job's states: queued -> running -> done | failed (running -> queued when its lease runs out)
JOB_STATUSES = ("queued", "running", "done", "failed")
#: what a review says of a clip
VERDICTS = ("approved", "changes_requested")

#: constraint names are stable across databases, so that a migration can name what it drops
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, as a timezone-aware UTC datetime (what every time column holds)."""
    return datetime.now(timezone.utc)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database: ``timestamptz`` on PostgreSQL; on SQLite,
    which has no time zones, the UTC wall time (so that text order is time order) read back as UTC.
    A naive datetime is refused rather than guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"naive datetime {value!r}: times are timezone-aware UTC (brandstudio.app.db.utcnow)"
            )
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


#: JSON everywhere, JSONB on PostgreSQL (comparable, indexable); Python None is SQL NULL
JSONValue = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    """The app's tables (``Base.metadata``: what the migrations build and are checked against)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONValue,
        list[Any]: JSONValue,
        str: Unicode(255),
    }


class User(Base):
    """A person who signs in: an agency admin (``is_admin``: every brand, every action) or a
    member of some brands (:class:`Membership`). ``email`` is stored lower-cased."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(Unicode(320), unique=True)
    display_name: Mapped[str] = mapped_column(Unicode(200))
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, brandstudio.app.passwords
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: named by every signed session cookie of the user: bumping it signs them out everywhere
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, email={self.email!r}, is_admin={self.is_admin!r})"


class Brand(Base):
    """A brand the app renders for: ``id`` is its profile's id (``aurora-coffee``), ``profile_path``
    the folder holding its brand.toml."""

    __tablename__ = "brands"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Unicode(200))
    profile_path: Mapped[str] = mapped_column(Unicode(1024))

    memberships: Mapped[list[Membership]] = relationship(back_populates="brand", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"Brand(id={self.id!r}, name={self.name!r})"


class Membership(Base):
    """A user's one role on one brand: ``"editor"`` (render, review, approve) or ``"reviewer"``
    (the client: view and approve)."""

    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint(_one_of("role", ROLES), name="role"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    brand_id: Mapped[str] = mapped_column(
        ForeignKey("brands.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))

    user: Mapped[User] = relationship(back_populates="memberships")
    brand: Mapped[Brand] = relationship(back_populates="memberships")


class Job(Base):
    """One render asked for in the app: the request (template, variables, aspect, deliveries,
    seed, duration, resolution), where it is (``status``, ``attempts``, the ``worker`` holding it
    until ``lease_expires_at``, ``progress``) and what came of it (``result``, ``outputs``,
    ``error``). Only :mod:`brandstudio.app.queue` changes its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_one_of("status", JOB_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("max_attempts >= 1", name="max_attempts"),
        Index("ix_jobs_status_id", "status", "id"),  # claim: the oldest queued job
        Index("ix_jobs_brand_id_created_at", "brand_id", "created_at"),  # a brand's jobs, newest first
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id", ondelete="RESTRICT"))
    template: Mapped[str] = mapped_column(Unicode(200))
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    aspect: Mapped[str | None] = mapped_column(String(16))
    deliveries: Mapped[list[Any]] = mapped_column(default=list)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    duration: Mapped[float | None] = mapped_column(Float)
    resolution: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker: Mapped[str | None] = mapped_column(Unicode(200))
    lease_expires_at: Mapped[datetime | None]
    progress: Mapped[dict[str, Any] | None]  # {"stage", "step", "total", "detail"}
    result: Mapped[dict[str, Any] | None]
    outputs: Mapped[list[Any]] = mapped_column(default=list)  # the delivered files' locations
    error: Mapped[dict[str, Any] | None]  # {"type", "message", "expected"}
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    brand: Mapped[Brand] = relationship()
    creator: Mapped[User | None] = relationship()
    reviews: Mapped[list[Review]] = relationship(back_populates="job", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, brand={self.brand_id!r}, template={self.template!r}, status={self.status!r})"


class Review(Base):
    """A verdict on a job's clip by a user allowed to approve on its brand."""

    __tablename__ = "reviews"
    __table_args__ = (CheckConstraint(_one_of("verdict", VERDICTS), name="verdict"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    verdict: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(UnicodeText, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="reviews")
    user: Mapped[User | None] = relationship()


class AuditEvent(Base):
    """One line of the app's audit log: ``user`` did ``action`` to ``target`` (``"job:12"``,
    ``"user:3"``) on ``brand`` at ``time``. ``user_id`` is None for what the system did itself.
    Rows are only ever added."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_brand_id_time", "brand_id", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    brand_id: Mapped[str | None] = mapped_column(ForeignKey("brands.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(Unicode(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    user: Mapped[User | None] = relationship()


class ApiToken(Base):
    """A bearer token for the app's ``/api``: only its SHA-256 is stored (the token is shown once,
    when it is made: :func:`brandstudio.app.admin.create_api_token`); it acts as its user."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Unicode(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship()


class BriefUpload(Base):
    """A CSV of briefs whose plan was confirmed: the plan's id is the primary key, so two
    confirmations of one plan (a double click, two tabs, a replayed form) cannot both queue its
    jobs, whatever the database's isolation level: the second insert fails on the key."""

    __tablename__ = "brief_uploads"

    plan_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    template: Mapped[str] = mapped_column(Unicode(200))
    file: Mapped[str] = mapped_column(Unicode(200))
    sha256: Mapped[str] = mapped_column(String(64))
    jobs: Mapped[list[Any]] = mapped_column(default=list)  # the ids of the jobs it queued
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def default_url(data_dir: Path) -> URL:
    """The SQLite database under ``data_dir``: ``sqlite:///<data_dir>/brandstudio.db``."""
    return URL.create("sqlite+pysqlite", database=str(Path(data_dir).resolve() / DB_FILE))


def make_engine(url: str | URL | None = None, *, data_dir: Path | None = None, echo: bool = False) -> Engine:
    """An engine for ``url``, or for the SQLite file under ``data_dir`` (made if missing).

    SQLite gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` transactions (see the
    module docstring); any other database is used as SQLAlchemy connects to it.

    Example:
        >>> make_engine(data_dir=Path("/tmp/studio")).url.database                 # doctest: +SKIP
        '/tmp/studio/brandstudio.db'
        >>> make_engine("postgresql+psycopg://studio:secret@db/studio")            # doctest: +SKIP
    """
    if url is None:
        if data_dir is None:
            raise AppError("no database: give a URL or a data directory", fix="pass url= or data_dir=")
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        url = default_url(data_dir)
    url = make_url(url)
    serializer = {"json_serializer": _json_dumps}
    if url.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True, **serializer)
    if url.database in (None, "", ":memory:"):
        raise AppError(
            f"the app needs an SQLite file, not an in-memory database ({url})",
            field="url", value=str(url), fix="use sqlite:///path/to/brandstudio.db",
        )  # fmt: skip
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        **serializer,
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def sessions(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """The session factory the app and its workers use. Objects stay readable after commit
    (``expire_on_commit=False``): a claimed job is handed to a worker after its session closes.
    ``read_only`` sessions on SQLite begin with a plain ``BEGIN`` (no write lock taken)."""
    bind = engine.execution_options(sqlite_begin="DEFERRED") if read_only else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the sqlite3 module, emits BEGIN (_sqlite_begin): the module's own
    # transaction handling begins only before DML, so a read then a write would not be atomic
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
        raise ValueError(f"sqlite_begin must be DEFERRED, IMMEDIATE or EXCLUSIVE, got {mode!r}")
    connection.exec_driver_sql(f"BEGIN {mode}")
