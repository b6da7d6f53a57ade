"""Progress: one callback that every stage reports through.

A render calls ``on_progress(Progress(stage, step, total))`` as it goes: once when a stage
starts (``step=0``), after each denoising step of each expert (``stage="generation"``, with
``detail`` naming the expert), after each chunk of frames the encoder takes
(``stage="encode"``), and so on. The CLI turns these into a rich progress bar with an ETA,
:func:`tqdm_progress` into a tqdm bar (a widget in a notebook), campaigns into job events.

Example:
    >>> seen = []
    >>> report = seen.append
    >>> report(Progress("generation", 3, 8, "high-noise expert"))
    >>> seen[0].fraction, str(seen[0])
    (0.375, 'generation 3/8 (high-noise expert)')
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["STAGES", "Progress", "ProgressCallback", "StageTimer", "combine", "stage_reporter", "tqdm_progress"]

#: the stages of a render, in order (what ``Progress.stage`` can be)
STAGES = (
    "prompt",
    "safety",
    "generation",
    "frame_safety",
    "music",
    "post",
    "encode",
    "qc",
    "provenance",  # publishes the clip (signed or not): the last step
)


@dataclass(frozen=True)
class Progress:
    """One progress event: ``step`` of ``total`` done in ``stage`` (``total`` 0 when unknown)."""

    stage: str
    step: int = 0
    total: int = 0
    detail: str = ""

    @property
    def fraction(self) -> float | None:
        """``step / total``, or None when the total is unknown."""
        return self.step / self.total if self.total else None

    def __str__(self) -> str:
        count = f" {self.step}/{self.total}" if self.total else ""
        return f"{self.stage}{count}" + (f" ({self.detail})" if self.detail else "")


ProgressCallback = Callable[[Progress], None]


def stage_reporter(on_progress: ProgressCallback | None, stage: str) -> Callable[[int, int, str], None]:
    """A ``report(step, total, detail="")`` function for one stage, which does nothing when
    ``on_progress`` is None (so a stage reports without checking)."""
    if on_progress is None:
        return lambda step, total, detail="": None
    return lambda step, total, detail="": on_progress(Progress(stage, step, total, detail))


def combine(on_progress: ProgressCallback | None, on_stage: Callable[[str], None] | None) -> ProgressCallback | None:
    """One callback from the two a caller may pass: every event to ``on_progress``, and each
    stage's start (step 0 of an unknown total) to ``on_stage`` as its name."""
    if on_stage is None:
        return on_progress

    def both(event: Progress) -> None:
        if event.step == 0 and event.total == 0:
            on_stage(event.stage)
        if on_progress is not None:
            on_progress(event)

    return both


def tqdm_progress(**tqdm_kwargs) -> ProgressCallback:
    """A progress callback that drives a tqdm bar: a widget in Jupyter (``tqdm.auto``, when
    ipywidgets is installed), text elsewhere. The bar restarts for each stage that counts steps.

    Example:
        >>> clip = studio.render("product-hero", product="Night Roast", on_progress=tqdm_progress())  # doctest: +SKIP
    """
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm  # a widget in Jupyter, text elsewhere
    else:
        from tqdm import tqdm  # tqdm.auto would warn "IProgress not found" in Jupyter without ipywidgets

    bar = None

    def update(event: Progress) -> None:
        nonlocal bar
        if bar is None or bar.desc != event.stage or (event.total and bar.total != event.total):
            if bar is not None:
                bar.close()
            bar = tqdm(total=event.total or None, desc=event.stage, leave=False, **tqdm_kwargs)
        if event.detail:
            bar.set_postfix_str(event.detail, refresh=False)
        bar.n = event.step
        bar.refresh()
        if event.stage == STAGES[-1] and (not event.total or event.step >= event.total):
            bar.close()  # the last stage reports its start only: nothing follows it
            bar = None

    return update


class StageTimer:
    """Times a render's stages and reports each one's start through ``on_progress``.

    Example:
        >>> timer = StageTimer()
        >>> with timer.stage("prompt"):
        ...     pass
        >>> list(timer.timings)
        ['prompt']
    """

    def __init__(self, on_progress: ProgressCallback | None = None) -> None:
        self.timings: dict[str, float] = {}
        self.on_progress = on_progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Report ``name`` as started, and record its seconds when the block ends."""
        if self.on_progress is not None:
            self.on_progress(Progress(name))
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 4)
