"""Alembic's environment for the review app's migrations: run by :mod:`brandstudio.app.migrate`
(``upgrade(url)``), which passes the database URL in ``config.attributes["url"]``; there is no
alembic.ini. The models (``Base.metadata``) are the target that autogenerate compares against.

On SQLite, migrations run with foreign keys off: a batch migration (SQLite cannot ALTER most
things) copies a table and drops the old one, and with foreign keys on that drop would cascade
into the rows that point at it. They are checked (``PRAGMA foreign_key_check``) before the
migration commits.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from brandstudio.app.db import Base, make_engine
from brandstudio.errors import AppError

config = context.config


def run_offline() -> None:
    """``alembic upgrade --sql``: the SQL, written out rather than run."""
    context.configure(url=str(config.attributes["url"]), target_metadata=Base.metadata, literal_binds=True,
                      render_as_batch=True)  # fmt: skip
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(config.attributes["url"])
    try:
        with engine.connect() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:  # outside any transaction, or SQLite ignores it
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        # one transaction for the whole upgrade, SQLite included (SQLAlchemy emits its BEGIN)
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=sqlite,
                          transactional_ddl=True)  # fmt: skip
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all()):
                raise AppError(
                    f"a migration left rows pointing at rows that do not exist: {broken[:5]}",
                    fix="fix the migration (nothing was changed: it was rolled back)",
                )  # fmt: skip
    finally:
        if sqlite:
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_offline()
else:
    run_online()
