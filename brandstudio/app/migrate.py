"""The review app's schema migrations (Alembic), run from Python: no alembic.ini to ship or find.

This module owns getting a database to the schema this version of brandstudio needs. The
revisions live in ``brandstudio/app/migrations/versions/`` (shipped in the wheel with the
package); :func:`upgrade` applies those a database lacks, in one transaction, on SQLite or
PostgreSQL alike. The app and its workers call :func:`check_schema` at start-up and refuse to run
against a database that is behind (or ahead: a newer brandstudio migrated it).

A new revision, after changing the models in :mod:`~brandstudio.app.db`::

    from alembic import command
    from brandstudio.app.migrate import alembic_config, upgrade
    upgrade("sqlite:////tmp/scratch.db")  # a scratch database at the current head
    command.revision(alembic_config("sqlite:////tmp/scratch.db"), message="what changed",
                     autogenerate=True, rev_id="0004")
    # then read the new file in migrations/versions/ and fix what autogenerate got wrong

Example:
    >>> upgrade("sqlite:////tmp/studio/brandstudio.db")                     # doctest: +SKIP
    '0001'
    >>> current("sqlite:////tmp/studio/brandstudio.db") == head()           # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url

from ..errors import AppError
from .db import make_engine

__all__ = ["MIGRATIONS", "alembic_config", "check_schema", "current", "head", "upgrade"]

#: the Alembic script directory (env.py, versions/)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL) -> Config:
    """An Alembic ``Config`` for the app's migrations on the database at ``url`` (for Alembic's
    ``command`` functions: ``upgrade``, ``downgrade``, ``revision``, ``history``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url  # not a main option: a URL's % would be read as interpolation
    return config


def upgrade(url: str | URL, revision: str = "head") -> str | None:
    """Bring the database at ``url`` to ``revision`` (the newest by default), creating the tables
    in an empty database; the revision it is at afterwards. Running it again changes nothing."""
    command.upgrade(alembic_config(url), revision)
    return current(url)


def current(url: str | URL) -> str | None:
    """The revision the database at ``url`` is at; None if it has never been migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    """The newest revision this version of brandstudio ships."""
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise AppError(f"the app's migrations have {len(heads)} heads ({heads}); they must form one line",
                       file=str(MIGRATIONS / "versions"), fix="merge the branches with `alembic merge`")  # fmt: skip
    return heads[0]


def check_schema(url: str | URL) -> None:
    """Nothing if the database at ``url`` is at :func:`head`; otherwise an
    :class:`~brandstudio.errors.AppError` that says which way it is off and what to do."""
    at, newest = current(url), head()
    if at == newest:
        return
    shown = make_url(url).render_as_string(hide_password=True)
    if at is None:
        problem, fix = "has no brandstudio tables yet", "run brandstudio.app.migrate.upgrade(url) once"
    elif at in {s.revision for s in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()}:
        problem, fix = (
            f"is at revision {at}, older than {newest}",
            "upgrade it: brandstudio.app.migrate.upgrade(url)",
        )
    else:
        problem, fix = f"is at revision {at}, which this brandstudio does not know (a newer one migrated it)", \
            "run the brandstudio version that migrated it, or upgrade brandstudio"  # fmt: skip
    raise AppError(f"the app's database {problem}", field="url", value=shown, fix=fix)
