"""``brandstudio serve`` (the review app) and ``brandstudio worker`` (a render worker for it).

Both import :mod:`brandstudio.app` inside the command: it needs the ``app`` extra, and the rest
of the command line must start without it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import typer

from ..errors import BrandStudioError
from .app import app, err, fail, out
from .display import safe

PASSWORD_ENV = "BRANDSTUDIO_ADMIN_PASSWORD"


def _url(database: str | None, data_dir: Path) -> str:
    if database:
        return database
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'brandstudio.db').resolve()}"


@app.command("serve")
def serve(
    data_dir: Path = typer.Option(Path("studio-data"), "--data-dir", help="where the database (SQLite) and renders live"),
    database: str = typer.Option(None, "--database", envvar="BRANDSTUDIO_DATABASE_URL",
                                 help="a database URL instead of SQLite under --data-dir (postgresql+psycopg://...)"),
    profiles: Path = typer.Option(Path("brand_profiles"), "--profiles", help="brand profiles to add as brands"),
    admin_email: str = typer.Option(None, "--admin-email",
                                    help=f"create this agency admin (password from ${PASSWORD_ENV}) if missing"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="render queued jobs in this process too"),
    insecure_cookies: bool = typer.Option(False, "--insecure-cookies",
                                          help="session cookies without the Secure flag (plain http other than 127.0.0.1)"),
) -> None:  # fmt: skip
    """Run the review app: migrate the database, add the brands, listen (127.0.0.1:8000)."""
    try:
        import uvicorn

        from ..app import upgrade
        from ..app.admin import create_user
        from ..app.web import create_app
        from ..app.worker import run_worker
    except ImportError as exc:
        err.print(f'[bold red]error:[/] the review app needs its extra: pip install "brandstudio[app]" ({safe(exc)})')
        raise typer.Exit(2) from None
    except BrandStudioError as exc:
        fail(exc)
    url = _url(database, data_dir)
    try:
        upgrade(url)
        web = create_app(url, data_dir, profiles if profiles.is_dir() else None,
                         secure_cookies=not (insecure_cookies or host in ("127.0.0.1", "localhost", "::1")))  # fmt: skip
        if admin_email:
            password = os.environ.get(PASSWORD_ENV)
            if not password:
                err.print(f"[bold red]error:[/] set the admin's password in ${PASSWORD_ENV} "
                          f"(export {PASSWORD_ENV}='...' ; at least 10 characters), then run serve again")  # fmt: skip
                raise typer.Exit(2)
            try:
                create_user(web.state.Session, admin_email, password, is_admin=True)
                out.print(f"admin {safe(admin_email)} created")
            except BrandStudioError as exc:
                if "already a user" not in exc.message:
                    raise
    except BrandStudioError as exc:
        fail(exc)
    stop = threading.Event()
    thread = None
    if worker:
        thread = threading.Thread(target=run_worker, args=(url, data_dir, stop), name="worker", daemon=True)
        thread.start()
    out.print(f"brandstudio review app on http://{safe(host)}:{port}/ (data: {safe(data_dir)})")
    try:
        uvicorn.run(web, host=host, port=port, log_level="info")
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)


@app.command("worker")
def worker_command(
    data_dir: Path = typer.Option(Path("studio-data"), "--data-dir", help="the app's data directory"),
    database: str = typer.Option(None, "--database", envvar="BRANDSTUDIO_DATABASE_URL", help="the app's database URL"),
    poll: float = typer.Option(2.0, "--poll", help="seconds between looks at an empty queue"),
    brand: list[str] = typer.Option(None, "--brand", help="only this brand's jobs (repeatable)"),
) -> None:  # fmt: skip
    """Render the review app's queued jobs until stopped (SIGTERM or Ctrl-C gives the job back)."""
    try:
        from ..app.worker import run_worker
    except ImportError as exc:
        err.print(f'[bold red]error:[/] the worker needs the app extra: pip install "brandstudio[app]" ({safe(exc)})')
        raise typer.Exit(2) from None
    except BrandStudioError as exc:
        fail(exc)
    try:
        run_worker(_url(database, data_dir), data_dir, threading.Event(), poll, brands=brand or None)
    except BrandStudioError as exc:
        fail(exc)
