"""Job events: what a run tells its caller as it goes, and a plain-text display of them.

A run calls ``on_event(JobEvent(...))`` when a job starts, as its render progresses (with the
render's :class:`~brandstudio.progress.Progress`), and when it is done or failed. The CLI turns
these into a rich progress bar; :class:`PlainDisplay` prints one line per finished job (CI logs).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Literal, TextIO

from ..progress import Progress
from .jobs import Job

__all__ = ["EventCallback", "JobEvent", "PlainDisplay", "with_plain_display"]


@dataclasses.dataclass(frozen=True)
class JobEvent:
    """Passed to ``on_event``: ``status`` is ``"started"``, ``"stage"`` (``progress`` says how far
    the render is, ``stage`` names its stage), ``"done"`` or ``"failed"``; ``index`` counts from 1
    to ``total`` over the jobs this run renders."""

    job: Job
    status: Literal["started", "stage", "done", "failed"]
    index: int
    total: int
    stage: str | None = None
    seconds: float | None = None
    error: str | None = None
    progress: Progress | None = None


EventCallback = Callable[[JobEvent], None]


class PlainDisplay:
    """One plain line per finished job, for CI logs (stderr by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, ev: JobEvent) -> None:
        if ev.status == "done":
            line = f"[{ev.index}/{ev.total}] done    {ev.job.id} {ev.job.output.name} ({ev.seconds:.1f}s)"
        elif ev.status == "failed":
            first = (ev.error or "").splitlines()[0] if ev.error else ""
            line = f"[{ev.index}/{ev.total}] FAILED  {ev.job.id} {ev.job.source}: {first}"
        else:
            return
        print(line, file=self.stream, flush=True)


def with_plain_display(on_event: EventCallback | None, *, quiet: bool) -> EventCallback | None:
    """``on_event``, and unless ``quiet`` a :class:`PlainDisplay` as well."""
    if quiet:
        return on_event
    display = PlainDisplay()
    if on_event is None:
        return display

    def both(ev: JobEvent) -> None:
        display(ev)
        on_event(ev)

    return both
