"""Progress on the terminal (rich): a render's stages, steps and ETA; a campaign's jobs.

The only place that draws with rich; the library reports through callbacks
(:mod:`brandstudio.progress`, :class:`brandstudio.batch.JobEvent`)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as ProgressBar

from ..batch import JobEvent


class RenderProgress:
    """A render's progress on the terminal: one bar per stage with its step, total and ETA
    (each denoising step of each expert, each encoded chunk), under the clip's name; nothing
    when the output is not a terminal.

    Used as the ``on_progress`` callback of :meth:`brandstudio.BrandStudio.render`.
    """

    def __init__(self, console: Console, title: str) -> None:
        self.title = escape(title)
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
            self.task = self.bar.add_task(f"{self.title}: {event.stage}", total=event.total or None, detail="")
        self.bar.update(
            self.task, completed=event.step, total=event.total or None, detail=escape(event.detail or "")
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
        what = escape(f"{ev.job.id} {ev.job.describe()}")
        if ev.status == "started":
            self.bar.update(self.task, description=f"{what} · loading")
        elif ev.status == "stage":
            self.bar.update(self.task, description=f"{what} · {escape(str(ev.progress or ev.stage))}")
        elif ev.status == "done":
            self.console.print(f"[green]done[/]    {escape(ev.job.id + ' ' + ev.job.output.name)}", highlight=False)
            self.bar.update(self.task, advance=1)
        elif ev.status == "failed":
            first = (ev.error or "").partition("\n")[0]
            self.console.print(f"[red]failed[/]  {escape(f'{ev.job.id} {ev.job.source}: {first}')}", highlight=False)
            self.bar.update(self.task, advance=1)


