"""The review app's tests run on a real SQLite file in ``tmp_path``, migrated by the shipped
migrations (never ``create_all``). With ``BRANDSTUDIO_TEST_POSTGRES_URL`` set
(``postgresql+psycopg://user@host/db``: a scratch database, emptied by every test) each database
test runs on PostgreSQL as well."""

from __future__ import annotations

import os

import pytest

for _module in ("sqlalchemy", "alembic", "argon2"):
    pytest.importorskip(_module, reason='the review app needs its extra: pip install "brandstudio[app]"')

from sqlalchemy import text  # noqa: E402

from brandstudio.app.db import Brand, make_engine, sessions  # noqa: E402
from brandstudio.app.migrate import upgrade  # noqa: E402

POSTGRES_URL = os.environ.get("BRANDSTUDIO_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """A database at the newest revision: an SQLite file, or the scratch PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        url = POSTGRES_URL
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    return url


@pytest.fixture
def sqlite_engine(tmp_path):
    """An engine on an SQLite file at the newest revision, for what only SQLite has (its
    pragmas, its BEGIN modes): not parametrized, so it is never a skip on PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'sqlite-only.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def Session(engine):
    return sessions(engine)


@pytest.fixture
def brand(Session) -> str:
    """The id of a brand in the database (with a Chinese name)."""
    with Session() as session:
        session.add(
            Brand(
                id="aurora-coffee", name="极光咖啡 Aurora Coffee", profile_path="brand_profiles/aurora-coffee"
            )
        )
        session.commit()
    return "aurora-coffee"
