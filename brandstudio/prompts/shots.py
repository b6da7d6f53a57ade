"""Multi-shot templates: the ``[[shots]]`` format, its checks and the shot plan.

A marketing spot is longer than one generation of the model (5 s for Wan2.2 A14B). A template
may list shots; each is generated on its own (through the scene cache), then the shots are cut
together (:mod:`brandstudio.generation.shots`, :mod:`brandstudio.generation.cut`) and captions,
logo, label and music run across the whole clip::

    description = "Brand story in three shots"
    negative = "text, watermark"            # optional, for every shot

    [variables.product]
    type = "str"
    description = "Product name"

    [[shots]]
    prompt = "sunrise over {{ place }}"     # Jinja, the template's declared variables
    duration = 2.0                          # seconds on screen (crossfades included)

    [[shots]]
    scene = "pour-over"                     # or one of the profile's [[scenes]]
    duration = 2.0
    transition = "crossfade"                # "cut" (default) | "crossfade"
    crossfade = 0.5                         # seconds of crossfade *into* this shot

    [[shots]]
    prompt = "{{ product }} on the counter, steam rising"
    negative = "hands"                      # optional, added to the template's and the brand's
    duration = 1.5
    continue = true                         # start from the previous shot's last frame

    [[captions]]                            # timed against the whole clip: 2 + 2 + 1.5 - 0.5 = 5 s
    start = 3.6
    end = 5.0
    text = "{{ product }}"

Rules (checked when the template loads, each failure a
:class:`~brandstudio.errors.TemplateError` naming the file, ``shots[i].field``, the value and
the fix): every shot has a ``prompt`` or a ``scene`` (a scene shot has no ``negative``), a
positive ``duration``; a crossfade is shorter than both shots it joins and two crossfades leave
each shot at least one frame of its own; the first shot neither continues nor crossfades; a
continuing shot joins with a cut (it starts where the previous one ends). The clip lasts the
sum of the shot durations minus the crossfades; a top-level ``duration``, if given, must say
the same. When the profile is known each shot must also fit in one generation
(``[model] max_frames``).

Timing: a request's ``duration`` scales every shot and crossfade alike (the edit's rhythm is
kept, like the caption cues); without one the clip lasts as long as the template says, not the
profile's ``output.duration``. Shots are timed in frames of the model's frame rate
(``round(seconds x fps)``), so the clip is exactly ``sum(frames) - sum(crossfade frames)`` frames.

Seeds: shot 0 uses the clip seed, shot ``i > 0`` uses :func:`shot_seed` (the first 8 hex digits
of SHA-256 of ``"brandstudio/shot/<clip seed>/<i>"``, mod 2**31): the same request always gives
the same shots, and a one-shot template makes the same footage as a plain template with the
same prompt and seed. A ``scene`` shot uses the scene's own seed unless the request gives one
(then :func:`shot_seed` of it), exactly like a scene template.

Continuity: a shot with ``continue = true`` starts from the previous shot's last frame on a
model with image input; how, and what a text-only model does instead, is in
:mod:`brandstudio.generation.shots`.

Example:
    >>> shot_seed(1234, 0), shot_seed(1234, 1) == shot_seed(1234, 1), shot_seed(1234, 1) != 1234
    (1234, True, True)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import RequestError, TemplateError

__all__ = [
    "PlannedShot",
    "RenderedShot",
    "ShotPlan",
    "ShotSpec",
    "check_shots",
    "plan_shots",
    "shot_seed",
]

TRANSITIONS = ("cut", "crossfade")


class ShotSpec(BaseModel):
    """One ``[[shots]]`` table of a template, as written (the checks are in :func:`check_shots`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    prompt: str = ""
    scene: str | None = None
    negative: str = ""
    duration: float | None = None
    transition: str = "cut"
    crossfade: float | None = None
    continue_: bool = Field(False, alias="continue")


@dataclass(frozen=True)
class RenderedShot:
    """A shot with the template's variables filled in (``prompt``/``scene``/``negative`` rendered)."""

    prompt: str
    scene: str | None
    negative: str
    duration: float
    transition: str
    crossfade: float
    continues: bool


def check_shots(name: str, path: Path, shots: Sequence[ShotSpec], *, top_prompt: str, top_scene: str | None,
                duration: float | None) -> float:
    """Check a template's ``[[shots]]``; return the clip's length in seconds.

    ``duration`` is the template's top-level ``duration`` if it was written, else ``None``.

    Example:
        >>> from pathlib import Path
        >>> s = [ShotSpec(prompt="a", duration=2), ShotSpec(prompt="b", duration=2,
        ...      transition="crossfade", crossfade=0.5)]
        >>> check_shots("t", Path("t.toml"), s, top_prompt="", top_scene=None, duration=None)
        3.5
    """

    def bad(message: str, field: str, value: Any, fix: str) -> TemplateError:
        return TemplateError(f"template {name!r}: {message}", file=str(path), field=field, value=value, fix=fix)

    if top_prompt.strip() or top_scene is not None:
        field = "prompt" if top_prompt.strip() else "scene"
        raise bad(
            f"a template with [[shots]] takes each shot's `prompt` (or `scene`), not a top-level `{field}`",
            field, top_prompt or top_scene, f"move the top-level `{field}` into the first [[shots]] table",
        )
    total = 0.0
    for i, s in enumerate(shots):
        f = f"shots[{i}]"
        has_prompt, has_scene = bool(s.prompt.strip()), s.scene is not None and bool(s.scene.strip())
        if not has_prompt and not has_scene:
            raise bad(f"shot {i} has neither a `prompt` nor a `scene`", f"{f}.prompt", s.prompt,
                      f'give [[shots]] number {i + 1} a prompt = "..." or a scene = "<profile scene id>"')
        if has_prompt and has_scene:
            raise bad(f"shot {i} has both a `prompt` and a `scene`", f"{f}.scene", s.scene,
                      "keep one: a scene shot takes its prompt from the profile's [[scenes]]")
        if has_scene and s.negative.strip():
            raise bad(f"shot {i} names a scene and a `negative` (it would change the scene's pixels)",
                      f"{f}.negative", s.negative, "remove `negative` from the scene shot")
        d = s.duration
        if d is None or not math.isfinite(d) or d <= 0:
            raise bad(f"shot {i} needs a `duration` in seconds > 0, got {d!r}", f"{f}.duration", d,
                      "give each shot its length on screen, e.g. duration = 2.0")
        if s.transition not in TRANSITIONS:
            raise bad(f"shot {i} has an unknown `transition` {s.transition!r}", f"{f}.transition",
                      s.transition, 'use transition = "cut" or "crossfade"')
        c = s.crossfade
        if s.transition == "crossfade":
            if i == 0:
                raise bad("the first shot cannot crossfade: there is no shot before it", f"{f}.transition",
                          s.transition, 'remove `transition`/`crossfade` from the first shot')
            if c is None or not math.isfinite(c) or c <= 0:
                raise bad(f"shot {i} crossfades but its `crossfade` is {c!r}", f"{f}.crossfade", c,
                          "give the crossfade's length in seconds, e.g. crossfade = 0.5")
            prev = shots[i - 1].duration
            if c >= d or c >= prev:
                raise bad(
                    f"the {c:g} s crossfade into shot {i} is not shorter than both shots it joins "
                    f"({prev:g} s and {d:g} s)", f"{f}.crossfade", c,
                    f"use a crossfade shorter than {min(prev, d):g} s, or lengthen the shots",
                )
            before = shots[i - 1].crossfade if shots[i - 1].transition == "crossfade" else 0.0
            if (before or 0.0) + c >= prev:
                raise bad(
                    f"shot {i - 1} ({prev:g} s) is all crossfade: {before:g} s in and {c:g} s out",
                    f"{f}.crossfade", c, f"shorten the crossfades or lengthen shot {i - 1}",
                )
        elif c is not None:
            raise bad(f"shot {i} has a `crossfade` but its transition is {s.transition!r}",
                      f"{f}.crossfade", c, 'set transition = "crossfade", or remove `crossfade`')
        if s.continue_:
            if i == 0:
                raise bad("the first shot cannot continue: there is no previous shot", f"{f}.continue",
                          True, "remove `continue` from the first shot")
            if s.transition == "crossfade":
                raise bad(f"shot {i} continues from the previous shot's last frame, so it joins it "
                          "seamlessly and cannot crossfade", f"{f}.transition", s.transition,
                          'use transition = "cut" (the default) for a continuing shot, or drop `continue`')
        total += d - (c if s.transition == "crossfade" else 0.0)
    total = round(total, 6)
    if duration is not None and abs(duration - total) > 1e-6:
        raise bad(
            f"`duration` is {duration:g} s but the shots last {total:g} s "
            "(the sum of their durations minus the crossfades)",
            "duration", duration, f"remove the top-level `duration` or set it to {total:g}",
        )
    return total


def shot_seed(clip_seed: int, index: int) -> int:
    """The seed of shot ``index`` of a clip: the clip seed for shot 0, else derived from both.

    ``int(sha256(f"brandstudio/shot/{clip_seed}/{index}").hexdigest()[:8], 16) % 2**31``.

    Example:
        >>> shot_seed(7, 0), shot_seed(7, 1), shot_seed(7, 2)
        (7, 1767687054, 1251457627)
    """
    if index == 0:
        return int(clip_seed)
    digest = hashlib.sha256(f"brandstudio/shot/{int(clip_seed)}/{int(index)}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31)


@dataclass(frozen=True)
class PlannedShot:
    """One shot, ready to generate.

    Attributes:
        index: its position in the template.
        prompt: the final prompt (shot text or scene prompt, brand style and LoRA triggers).
        negative: the final negative prompt.
        seed: the shot's seed (see :func:`shot_seed`).
        scene: the profile scene it shows, or ``None``.
        start: when it starts in the clip, in seconds (the start of its crossfade, if any).
        frames: how many of its frames the clip shows (crossfades included), at the model fps.
        crossfade_frames: frames of crossfade into it (0: a cut).
        continues: whether it asks to start from the previous shot's last frame.
    """

    index: int
    prompt: str
    negative: str
    seed: int
    scene: str | None
    start: float
    frames: int
    crossfade_frames: int
    continues: bool

    @property
    def transition(self) -> str:
        return "crossfade" if self.crossfade_frames else "cut"


@dataclass(frozen=True)
class ShotPlan:
    """The shots of one clip at the model's frame rate.

    Example:
        >>> p = ShotPlan((PlannedShot(0, "a", "", 1, None, 0.0, 8, 0, False),
        ...               PlannedShot(1, "b", "", 2, None, 0.375, 8, 2, False)), fps=16)
        >>> p.frames, p.duration
        (14, 0.875)
    """

    shots: tuple[PlannedShot, ...]
    fps: int

    @property
    def frames(self) -> int:
        """Frames of the cut clip: all shots' frames minus the crossfade overlaps."""
        return sum(s.frames for s in self.shots) - sum(s.crossfade_frames for s in self.shots)

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def crossfades(self) -> list[int]:
        return [s.crossfade_frames for s in self.shots]


def plan_shots(
    shots: Sequence[RenderedShot],
    *,
    template: str,
    path: Path | str,
    nominal: float,
    fps: int,
    clip_seed: int,
    seed_given: bool,
    duration: float | None,
    compose: Callable[[str], str],
    negative: Callable[[str], str],
    scene: Callable[[str], Any],
) -> ShotPlan:
    """Turn rendered shots into a :class:`ShotPlan`: final prompts, seeds, frames.

    Args:
        shots: the template's rendered shots.
        template, path: the template's name and file (for error messages).
        nominal: the template's length in seconds (:func:`check_shots`).
        fps: the model's frame rate.
        clip_seed: the clip's seed; ``seed_given`` says whether the request named it.
        duration: the requested clip length (scales every shot), or ``None``.
        compose: shot text -> final prompt (brand style, triggers).
        negative: shot negative -> final negative (template's and brand's added).
        scene: scene id -> the profile's scene (``.prompt``, ``.seed``); raises if unknown.

    Raises:
        TemplateError / RequestError: a shot or crossfade is shorter than one frame at ``fps``
            (after scaling to ``duration``).
    """
    scale = duration / nominal if duration else 1.0
    planned: list[PlannedShot] = []
    start_frame = 0
    prev_end = 0.0  # seconds (unscaled) on the cut's timeline
    frame = lambda t: round(t * scale * fps)  # noqa: E731 - a time on the timeline, in frames
    for i, s in enumerate(shots):
        # shot boundaries are rounded on the timeline, not each length on its own, so the cut lasts
        # exactly round(duration * fps) frames (47 + 1 lost to rounding made a 3 s clip 2.94 s)
        overlap = s.crossfade if s.transition == "crossfade" and planned else 0.0
        start, end = prev_end - overlap, prev_end - overlap + s.duration
        n = frame(end) - frame(start)
        k = frame(prev_end) - frame(start) if s.transition == "crossfade" else 0
        prev_end = end
        prev_n = planned[-1].frames if planned else 0
        prev_k = planned[-1].crossfade_frames if planned else 0
        if n < 1:
            msg = f"shot {i} ({s.duration * scale:g} s) is shorter than one frame at {fps} fps"
        elif s.transition == "crossfade" and (k < 1 or k >= n or k + prev_k >= prev_n):
            msg = (f"the {s.crossfade * scale:g} s crossfade into shot {i} comes to {k} frames at {fps} fps, "
                   f"which does not fit shots of {prev_n} and {n} frames")
        else:
            msg = ""
        if msg:
            if duration:
                raise RequestError(
                    f"at {duration:g} s, template {template!r} is too short for its shots: {msg}",
                    field="duration", value=duration,
                    fix=f"ask for a longer clip (the template is {nominal:g} s), or leave `duration` unset",
                )
            raise TemplateError(
                f"template {template!r}: {msg}", file=str(path), field=f"shots[{i}].duration",
                value=s.duration, fix=f"make shots and crossfades at least a few frames long (1/{fps} s each)",
            )
        start_frame -= k
        if s.scene is not None:
            sc = scene(s.scene)
            prompt, seed = compose(sc.prompt), (shot_seed(clip_seed, i) if seed_given else int(sc.seed))
        else:
            prompt, seed = compose(s.prompt), shot_seed(clip_seed, i)
        planned.append(PlannedShot(
            index=i, prompt=prompt, negative=negative(s.negative), seed=seed, scene=s.scene,
            start=round(start_frame / fps, 6), frames=n, crossfade_frames=k, continues=s.continues,
        ))
        start_frame += n
    return ShotPlan(tuple(planned), fps)

