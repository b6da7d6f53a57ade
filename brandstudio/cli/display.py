r"""What the CLI puts on the terminal: user text made safe, and progress (rich): a render's
stages, steps and ETA; a campaign's jobs.

The only place that draws with rich; the library reports through callbacks
(:mod:`brandstudio.progress`, :class:`brandstudio.batch.JobEvent`).

Every piece of user or profile text (brand names, template names and variables, CSV cells,
paths, error messages that quote values) goes through :func:`plain` (printed as it is) or
:func:`safe` (inside rich markup) before it reaches the terminal: a brand named
``[bold red]x[/]`` prints literally instead of restyling the line (or raising rich's
MarkupError for ``[/]``), and escape sequences or bidi overrides in a CSV cell can neither clear
the screen nor hide text.

Example:
    >>> plain("\x1b[2JEvil\u202e name\r")
    'Evil name'
    >>> print(safe("[bold red]x[/]"))
    \[bold red]x\[/]
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as ProgressBar
from rich.segment import Segment

from ..batch import JobEvent

# ESC sequences as terminals read them (ECMA-48): CSI (ESC [ ... final byte: colours, cursor
# moves, "clear screen"), OSC / DCS / PM / APC strings up to BEL or ST (window titles,
# hyperlinks, clipboard writes), and two-byte escapes (ESC c resets the terminal)
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, DCS, SOS, PM, APC ... BEL or ST
    r"|\x1b[ -~]?"  # two-byte escapes (and a lone ESC)
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # the 8-bit CSI
)
# control characters left after that: C0 except tab and newline, DEL, C1; and the bidi controls
# (U+202E RIGHT-TO-LEFT OVERRIDE and friends) that reorder what is shown, hiding or faking text
_CONTROLS = [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_DROP = dict.fromkeys(_CONTROLS + _BIDI)


def plain(value: object) -> str:
    r"""``value`` as text a terminal only shows: escape sequences, control characters (but tab
    and newline) and bidi overrides removed. For text printed without markup (``markup=False``,
    ``print``); inside rich markup use :func:`safe`.

    Example:
        >>> plain("Aurora\x1b]0;pwned\x07 Coffee\x1b[31m")
        'Aurora Coffee'
    """
    return _ESCAPE_SEQUENCE.sub("", str(value)).translate(_DROP)


def json_text(text: str) -> str:
    r"""JSON text with the characters :func:`plain` drops written as ``\uXXXX`` escapes: the
    same data for a program reading it, nothing a terminal acts on (``json.dumps`` escapes C0
    controls, but with ``ensure_ascii=False`` passes C1 controls and bidi overrides through).

    Example:
        >>> print(json_text('{"brand": "Evil\u202e"}'))
        {"brand": "Evil\u202e"}
    """
    return text.translate({c: f"\\u{c:04x}" for c in _DROP})


class SafeConsole(Console):
    """A rich Console that writes no escape sequence it did not make itself: the text of every
    segment (not rich's own control segments: cursor moves of a progress bar) goes through
    :func:`plain` before rich styles it. A second guard behind :func:`plain` / :func:`safe`, for
    text that reaches a console some other way (a table cell, a renderable); markup still needs
    :func:`safe` where the text is put into it."""

    def _render_buffer(self, buffer):  # rich's one place where segments become terminal output
        return super()._render_buffer(s if s.control else Segment(plain(s.text), s.style) for s in buffer)


def safe(value: object) -> str:
    """``value`` ready to put inside rich markup: :func:`plain`, then its ``[`` escaped, so
    ``[bold]`` or ``[/]`` in a brand name, a variable or a CSV cell prints as it is written."""
    return escape(plain(value))


class RenderProgress:
    """A render's progress on the terminal: one bar per stage with its step, total and ETA
    (each denoising step of each expert, each encoded chunk), under the clip's name; nothing
    when the output is not a terminal.

    Used as the ``on_progress`` callback of :meth:`brandstudio.BrandStudio.render`.
    """

    def __init__(self, console: Console, title: str) -> None:
        self.title = safe(title)
        self.bar = ProgressBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = None
        self.stage: str | None = None

    def __enter__(self) -> RenderProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event) -> None:
        if event.stage != self.stage or self.task is None:  # a new stage: a new bar, its own ETA
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.stage = event.stage
            self.task = self.bar.add_task(
                f"{self.title}: {safe(event.stage)}", total=event.total or None, detail=""
            )
        self.bar.update(
            self.task, completed=event.step, total=event.total or None, detail=safe(event.detail or "")
        )


class CampaignProgress:
    """The progress bar of ``campaign run``: the current job and how far its render is,
    done/total and the ETA, with a line per finished job. A context manager and an
    ``on_event`` callback (:class:`~brandstudio.batch.JobEvent`). Job text is escaped: brand
    names and CSV values may contain rich markup such as ``[b]``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = ProgressBar(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = None

    def __enter__(self) -> CampaignProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, ev: JobEvent) -> None:
        if self.task is None:
            self.task = self.bar.add_task("starting", total=ev.total)
        what = safe(f"{ev.job.id} {ev.job.describe()}")
        if ev.status == "started":
            self.bar.update(self.task, description=f"{what} · loading")
        elif ev.status == "stage":
            self.bar.update(self.task, description=f"{what} · {safe(ev.progress or ev.stage)}")
        elif ev.status == "done":
            self.console.print(
                f"[green]done[/]    {safe(ev.job.id + ' ' + ev.job.output.name)}", highlight=False
            )
            self.bar.update(self.task, advance=1)
        elif ev.status == "failed":
            first = (ev.error or "").partition("\n")[0]
            self.console.print(
                f"[red]failed[/]  {safe(f'{ev.job.id} {ev.job.source}: {first}')}", highlight=False
            )
            self.bar.update(self.task, advance=1)
