"""``brandstudio export``: a brand's clips out of the review app, as the app hands them out.

Imports :mod:`brandstudio.app` inside the command: it needs the ``app`` extra."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import BrandStudioError
from .app import app, err, fail, out
from .display import safe
from .serve import app_extra_missing, database_url


@app.command("export")
def export_command(
    brand: str = typer.Argument(..., help="the brand's id"),
    to: Path = typer.Option(..., "--to", help="the folder to copy the clips into (one sub-folder per job)"),
    job: list[int] = typer.Option(None, "--job", help="only this job (repeatable); default: every done job"),
    data_dir: Path = typer.Option(Path("studio-data"), "--data-dir", help="the app's data directory"),
    database: str = typer.Option(None, "--database", envvar="BRANDSTUDIO_DATABASE_URL", help="the app's database URL"),
) -> None:  # fmt: skip
    """Copy a brand's finished clips out of the review app, checked against their recorded SHA-256.

    A brand whose profile sets ``[review] required = true`` hands out approved clips only: the
    others are listed as skipped, with the reason, and the exit status is 1 when a job asked for
    by ``--job`` was skipped.
    """
    try:
        from ..app import check_schema, make_engine, sessions
        from ..app.handout import export_jobs
    except ImportError as exc:
        app_extra_missing("brandstudio export", exc)
    url = database_url(database, data_dir, create=False)
    try:
        check_schema(url)
        engine = make_engine(url)
        try:
            report = export_jobs(sessions(engine), data_dir, brand, to, jobs=job or None)
        finally:
            engine.dispose()
    except BrandStudioError as exc:
        fail(exc)
    for done in report.exported:
        out.print(f"job {done.job}: " + ", ".join(safe(f) for f in done.files))
    for skipped in report.skipped:
        err.print(f"[yellow]skipped[/] job {skipped.job}: {safe(skipped.reason)}")
    out.print(f"{len(report.exported)} job(s) exported to {safe(to)}, {len(report.skipped)} skipped")
    if job and report.skipped:
        raise typer.Exit(1)
