"""The shipped migrations build exactly the models' schema, from Python, with no alembic.ini."""

from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect

from brandstudio.app.db import Base, make_engine
from brandstudio.app.migrate import MIGRATIONS, alembic_config, check_schema, current, head, upgrade
from brandstudio.errors import AppError

TABLES = {"users", "brands", "memberships", "jobs", "reviews", "audit_events", "api_tokens", "brief_uploads", "alembic_version"}


def _diffs(engine, metadata: MetaData) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def test_an_empty_database_upgraded_has_the_models_schema(db_url, engine):
    assert current(db_url) == head() == "0003"
    assert set(inspect(engine).get_table_names()) == TABLES
    assert _diffs(engine, Base.metadata) == []
    # the comparison would see a difference: a model with one more column than the database
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["jobs"].append_column(Column("priority", Integer, nullable=False))
    assert [d[0] for d in _diffs(engine, changed)] == ["add_column"]


def test_upgrade_twice_changes_nothing_and_downgrade_removes_the_tables(db_url, engine):
    assert upgrade(db_url) == "0003"
    assert _diffs(engine, Base.metadata) == []
    command.downgrade(alembic_config(db_url), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    assert current(db_url) is None
    assert upgrade(db_url) == "0003"


def test_the_schema_check_refuses_a_database_not_at_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(AppError, match="has no brandstudio tables yet") as err:
        check_schema(url)
    assert "upgrade" in err.value.fix
    upgrade(url)
    check_schema(url)
    # a database migrated by a newer brandstudio
    with sqlite3.connect(tmp_path / "new.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(AppError, match="9999, which this brandstudio does not know"):
        check_schema(url)


def test_the_migrations_ship_inside_the_package():
    assert MIGRATIONS.parent.name == "app" and MIGRATIONS.parent.parent.name == "brandstudio"
    assert (MIGRATIONS / "env.py").is_file() and (MIGRATIONS / "script.py.mako").is_file()
    assert sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py")) == ["0001_initial.py", "0002_api_tokens.py", "0003_brief_uploads.py"]


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(sqlite_engine):
    with sqlite_engine.connect() as conn:
        pragma = {
            p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
            for p in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}


def test_an_in_memory_sqlite_database_is_refused():
    with pytest.raises(AppError, match="not an in-memory database"):
        make_engine("sqlite://")
