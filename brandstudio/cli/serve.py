"""``brandstudio serve`` (the review app) and ``brandstudio worker`` (a render worker for it).

Both import :mod:`brandstudio.app` inside the command: it needs the ``app`` extra, and the rest
of the command line must start without it."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import NoReturn

import typer

from ..errors import BrandStudioError, CampaignError
from .app import app, err, fail, out
from .display import safe

PASSWORD_ENV = "BRANDSTUDIO_ADMIN_PASSWORD"

#: the Ray executor's errors name a campaign file's fields: here, the options that set them, and
#: the fix in the options' words (None: the executor's fix says it already)
RAY_OPTIONS = {
    "campaign.backend": ("--ray", 'pip install "brandstudio[ray]" on this machine, or run the worker without --ray'),
    "ray.address": ("--ray", None),
    "ray.workers": ("--ray-workers", None),
    "ray.gpus_per_worker": ("--gpus-per-worker", "add GPU nodes to the cluster, or pass --gpus-per-worker 0 "
                                                 "to render on CPU actors"),
}  # fmt: skip


def _ray_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--ray", metavar="ADDRESS",
                        help="render on a Ray cluster, one actor per GPU, one brand's jobs at a time: 'auto' (the "
                             "cluster this machine is in), HEAD:6379, ray://HEAD:10001, or 'local' to start Ray here; "
                             "with several nodes --data-dir must be shared storage at the same path on each")  # fmt: skip


def _ray_workers_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--ray-workers", min=1, help="Ray actors (default: one per GPU); needs --ray")


def _gpus_option() -> typer.models.OptionInfo:
    return typer.Option(None, "--gpus-per-worker", min=0.0,
                        help="GPUs each Ray actor reserves (default 1; 0: CPU actors); needs --ray")  # fmt: skip


def _ray_settings(address: str | None, workers: int | None, gpus_per_worker: float | None) -> dict | None:
    """The Ray worker's options from the command line, or None for a worker in this process."""
    if address is None:
        if workers is not None or gpus_per_worker is not None:
            err.print(
                "[bold red]error:[/] --ray-workers and --gpus-per-worker are for a Ray worker: add --ray ADDRESS"
            )
            raise typer.Exit(2)
        return None
    settings: dict = {"address": address, "workers": workers}
    if gpus_per_worker is not None:
        settings["gpus_per_worker"] = gpus_per_worker
    return settings


def _in_option_words(exc: BrandStudioError) -> BrandStudioError:
    """The Ray executor's error with the option that sets its value (``ray.workers`` is
    ``--ray-workers`` here); any other error as it is."""
    if not isinstance(exc, CampaignError) or exc.field not in RAY_OPTIONS:
        return exc
    option, fix = RAY_OPTIONS[exc.field]
    return CampaignError(exc.message, field=option, value=exc.value, fix=fix or exc.fix)


def app_extra_missing(what: str, exc: ImportError) -> NoReturn:
    """Exit 2 saying that ``what`` needs the ``app`` extra, and how to install it."""
    err.print(f'[bold red]error:[/] {what} needs the app extra: pip install "brandstudio[app]" ({safe(exc)})')
    raise typer.Exit(2) from None


def database_url(database: str | None, data_dir: Path, *, create: bool = True) -> str:
    """``--database``, else the SQLite file under ``--data-dir`` (its folder made unless
    ``create=False``: then a missing database is an error saying where it was looked for)."""
    if database:
        return database
    path = (data_dir / "brandstudio.db").resolve()
    if not create and not path.is_file():
        err.print(f"[bold red]error:[/] no review app database at {safe(path)}: pass the --data-dir that "
                  "`brandstudio serve` uses, or --database URL")  # fmt: skip
        raise typer.Exit(2)
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


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
    ray: str = _ray_option(),
    ray_workers: int = _ray_workers_option(),
    gpus_per_worker: float = _gpus_option(),
    insecure_cookies: bool = typer.Option(False, "--insecure-cookies",
                                          help="session cookies without the Secure flag (plain http other than 127.0.0.1)"),
) -> None:  # fmt: skip
    """Run the review app: migrate the database, add the brands, listen (127.0.0.1:8000).

    Its worker thread renders here, or with --ray on a Ray cluster's GPUs."""
    ray_settings = _ray_settings(ray, ray_workers, gpus_per_worker)
    if ray_settings is not None and not worker:
        err.print(
            "[bold red]error:[/] --ray sets up the worker thread, which --no-worker turns off: drop one"
        )
        raise typer.Exit(2)
    try:
        import uvicorn

        from ..app import upgrade
        from ..app.admin import create_user
        from ..app.ray_worker import start_ray_worker
        from ..app.web import create_app
        from ..app.worker import run_worker
    except ImportError as exc:
        app_extra_missing("the review app", exc)
    except BrandStudioError as exc:
        fail(exc)
    url = database_url(database, data_dir)
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
    if ray_settings is not None:
        try:  # joins the cluster here: its errors before the app listens
            thread = start_ray_worker(url, data_dir, stop, **ray_settings)
        except BrandStudioError as exc:
            fail(_in_option_words(exc))
    elif worker:
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
    ray: str = _ray_option(),
    ray_workers: int = _ray_workers_option(),
    gpus_per_worker: float = _gpus_option(),
) -> None:  # fmt: skip
    """Render the review app's queued jobs until stopped (SIGTERM or Ctrl-C gives the jobs back).

    Here, one job at a time; or with --ray on a Ray cluster: a batch of one brand's jobs at a
    time, one per actor (GPU), each actor keeping the brand's model loaded."""
    ray_settings = _ray_settings(ray, ray_workers, gpus_per_worker)
    try:
        from ..app.ray_worker import run_ray_worker
        from ..app.worker import run_worker
    except ImportError as exc:
        app_extra_missing("the worker", exc)
    except BrandStudioError as exc:
        fail(exc)
    work = run_worker if ray_settings is None else run_ray_worker
    try:
        work(
            database_url(database, data_dir),
            data_dir,
            threading.Event(),
            poll,
            brands=brand or None,
            **(ray_settings or {}),
        )
    except BrandStudioError as exc:
        fail(_in_option_words(exc))
