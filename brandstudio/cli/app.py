"""The Typer app, its command groups, the consoles, and what every command shares: one
clear error message and exit status 2 for a BrandStudioError, SIGTERM unwinding like Ctrl-C."""

from __future__ import annotations

import signal
import threading

import typer

from ..errors import BrandStudioError
from ..logs import quiet_import_notices
from .display import SafeConsole, plain, safe

app = typer.Typer(
    help="Brand-consistent marketing video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
profile_app = typer.Typer(help="Validate, inspect and document brand profiles.", no_args_is_help=True)
templates_app = typer.Typer(help="Prompt templates.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")
app.add_typer(templates_app, name="templates")
campaign_app = typer.Typer(help="Campaigns: many clips from one brief file, resumable.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
cache_app = typer.Typer(
    help="The scene cache: generated footage, reused across renders.", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")
lut_app = typer.Typer(help="Colour LUTs learned from the brand's stills.", no_args_is_help=True)
app.add_typer(lut_app, name="lut")
lora_app = typer.Typer(help="Brand LoRAs trained on the brand's stills and clips.", no_args_is_help=True)
app.add_typer(lora_app, name="lora")

# consoles that drop escape sequences from whatever text they are given (see SafeConsole); user
# text is also passed through plain() / safe() where it is printed, for rich markup
out = SafeConsole()
err = SafeConsole(stderr=True)


@app.callback()
def _cli_setup(ctx: typer.Context) -> None:
    """Brand-consistent marketing video."""

    quiet_import_notices()  # QUIET_LOGGERS: done at `import brandstudio`; again after a user's reset
    _exit_cleanly_on_sigterm(ctx)


def _exit_cleanly_on_sigterm(ctx: typer.Context) -> None:
    """A ``kill`` (SIGTERM, as job runners and ``timeout`` send) unwinds like Ctrl-C does: the
    encoder's ffmpeg is stopped and the hidden partial files are removed, and the command exits
    with status 143. Without this, Python dies at once and leaves both behind."""

    if threading.current_thread() is not threading.main_thread():
        return

    def terminate(signum, frame) -> None:
        raise SystemExit(128 + signum)  # a BaseException: every `finally` / cleanup runs

    previous = signal.signal(signal.SIGTERM, terminate)
    ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


def fail(exc: BrandStudioError) -> None:
    err.print(f"[bold red]error:[/] {type(exc).__name__}", highlight=False)
    err.print(plain(exc), markup=False, highlight=False)
    raise typer.Exit(2)


def parse_vars(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        if "=" not in pair:
            err.print(
                f"[bold red]error:[/] --var expects NAME=VALUE, got {safe(repr(pair))}", highlight=False
            )
            raise typer.Exit(2)
        k, v = pair.split("=", 1)
        values[k.strip()] = v
    return values
