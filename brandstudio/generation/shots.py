"""Multi-shot generation: each shot of a :class:`~brandstudio.prompts.shots.ShotPlan` through the
scene cache, in order, then cut together at the model's frame rate (:mod:`brandstudio.generation.cut`).

The plan (prompts, seeds, frames, crossfades) is made on the prompt side
(:func:`~brandstudio.prompts.shots.plan_shots`); this module asks the model for it.

Lengths: a shot is generated at the fewest ``4k + 1`` frames that hold the frames it shows. A
``scene`` shot is generated at the length ``brandstudio cache prewarm`` uses (the profile's
``output.duration``) and trimmed, so a prewarmed scene is a cache hit in any template. Every
shot must fit in one generation (``[model] max_frames``); that is checked before anything is
generated.

Continuity: a shot with ``continue = true`` starts from the previous shot's last frame on a
model with image input (Wan2.2 TI2V-5B, I2V-A14B; ``tiny-ti2v`` offline). Such a model
re-creates the conditioning image as its first frame, which is dropped (the shot is generated
one frame longer), so motion continues without a held frame. The SHA-256 of the conditioning
frame's pixels is part of the shot's scene-cache key. On a text-only model the shot is
generated without conditioning and the render records ``"conditioning": "none: model has no
image input"`` for it plus a warning in ``RenderResult.warnings``: templates are shared across
profiles, and a profile on a text-to-video model should still get its spot (with a cut where
a TI2V profile gets a continuation) rather than fail a campaign; a caller that needs the
continuation checks ``result.warnings``. A model that *only* takes images (I2V-A14B) cannot
make a first shot and is refused before anything is generated.

Example:
    >>> summarize([{"cache": "hit"}, {"cache": "miss"}]), summarize([{"cache": "hit"}])
    ('miss', 'hit')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brandstudio.errors import GenerationError, TemplateError
from brandstudio.generation.base import frames_to_generate
from brandstudio.generation.cache import SceneCache
from brandstudio.generation.clip import (
    Clip,
    cached_frames,
    clip_spec,
    frames_for,
    preset_settings,
    speed_record,
)
from brandstudio.generation.conditioning import image_digest
from brandstudio.generation.cut import cut_together
from brandstudio.progress import ProgressCallback
from brandstudio.prompts.shots import PlannedShot, ShotPlan

__all__ = ["NO_IMAGE_INPUT", "check_shot_lengths", "generate_shots", "render_shots", "summarize"]

NO_IMAGE_INPUT = "none: model has no image input"
"""What a continuing shot records as its conditioning on a text-only model."""


def check_shot_lengths(
    plan: ShotPlan,
    *,
    template: str,
    path: Path | str,
    model_id: str,
    max_frames: int,
    scene_frames: int,
    conditioned: Sequence[bool] | None = None,
) -> list[int]:
    """The frames to generate for each shot (see the module docstring), checked against ``max_frames``.

    ``conditioned[i]``: shot ``i`` starts from the previous shot's last frame (one frame more);
    None: none does.

    Raises:
        TemplateError: a shot needs more frames than one generation makes.
    """
    conditioned = conditioned or [False] * len(plan.shots)
    lengths = []
    for s, cond in zip(plan.shots, conditioned, strict=True):
        needed = s.frames + (1 if cond else 0)  # a conditioned shot re-creates the image first: dropped
        if s.scene is not None and not cond and needed <= scene_frames <= max_frames:
            needed = scene_frames  # the scene as prewarmed, trimmed: a cache hit across templates
        generated = frames_to_generate(needed)
        if generated > max_frames:
            fps = plan.fps
            raise TemplateError(
                f"shot {s.index} of template {template!r} needs {generated} frames at {fps} fps, more than "
                f"the {max_frames} `{model_id}` makes in one generation",
                file=str(path), field=f"shots[{s.index}].duration", value=round(s.frames / fps, 6),
                fix=f"split it into shots of at most {(max_frames - 1 - int(cond)) / fps:g} s, "
                "or raise [model] max_frames",
            )  # fmt: skip
        lengths.append(needed)
    return lengths


def render_shots(
    plan: ShotPlan,
    *,
    template: str,
    path: Path | str,
    image_input: str,
    model_id: str,
    max_frames: int,
    scene_frames: int,
    make_spec: Callable[[PlannedShot, int], Any],
    generate: Callable[[Any, np.ndarray | None], tuple[np.ndarray, str, str | None]],
) -> tuple[list[np.ndarray], list[dict], list[str]]:
    """Generate every shot (each through the scene cache); return what the cut needs.

    Args:
        plan: the shots.
        template, path: the template (for error messages).
        image_input: the generator's ``"none"``, ``"optional"`` or ``"required"``.
        model_id: the model (for messages).
        max_frames: the most frames one generation may have (``[model] max_frames``).
        scene_frames: frames a prewarmed scene has (the profile's ``output.duration``).
        make_spec: ``(shot, frames to generate) -> GenerationSpec``.
        generate: ``(spec, conditioning image or None) -> (frames, cache status, cache key)``.

    Returns:
        ``(clips, records, warnings)``: each shot's frames as the clip shows them, one record per
        shot for ``RenderResult.generation["shots"]``, and the warnings to report.

    Raises:
        TemplateError: a shot needs more frames than one generation makes.
        GenerationError: the model takes images only and a shot has none.
    """
    # 1. what each shot asks of the model, all checked before anything is generated
    conditioned = [s.continues and image_input != "none" for s in plan.shots]
    if image_input == "required":
        first = next(s for s, c in zip(plan.shots, conditioned, strict=True) if not c)
        raise GenerationError(
            f"`{model_id}` generates from an image only (image-to-video), so shot {first.index} of "
            f"template {template!r} has nothing to start from",
            field="model.id", value=model_id,
            fix="use a text-to-video or text+image model for multi-shot templates "
            "(e.g. Wan-AI/Wan2.2-TI2V-5B-Diffusers, or tiny-ti2v offline)",
        )  # fmt: skip
    lengths = check_shot_lengths(
        plan, template=template, path=path, model_id=model_id, max_frames=max_frames,
        scene_frames=scene_frames, conditioned=conditioned,
    )  # fmt: skip
    specs = [make_spec(s, needed) for s, needed in zip(plan.shots, lengths, strict=True)]

    # 2. generate in order: a continuing shot starts from the last frame the previous one shows
    clips: list[np.ndarray] = []
    records: list[dict] = []
    warnings: list[str] = []
    for s, cond, spec in zip(plan.shots, conditioned, specs, strict=True):
        image = np.ascontiguousarray(clips[-1][-1]) if cond else None
        frames, status, key = generate(spec, image)
        offset = 1 if cond else 0
        shown = frames[offset : offset + s.frames]
        if len(shown) != s.frames:
            raise GenerationError(
                f"shot {s.index}: the model returned {len(frames)} frames, {offset + s.frames} were needed",
                fix="report this with the model id",
            )
        if cond:
            conditioning, digest = f"last frame of shot {s.index - 1}", image_digest(image)
        elif s.continues:
            conditioning, digest = NO_IMAGE_INPUT, None
            warnings.append(
                f"shot {s.index} of template {template!r} asks to continue from shot {s.index - 1}, but "
                f"`{model_id}` has no image input: it was generated from its prompt alone (a cut)"
            )
        else:
            conditioning, digest = "none", None
        clips.append(shown)
        records.append({
            "index": s.index,
            "prompt": s.prompt,
            "negative_prompt": s.negative,
            "seed": s.seed,
            "scene": s.scene,
            "start": s.start,
            "duration": round(s.frames / plan.fps, 6),
            "frames": s.frames,
            "generated_frames": int(frames.shape[0]),
            "transition": s.transition,
            "crossfade": round(s.crossfade_frames / plan.fps, 6),
            "crossfade_frames": s.crossfade_frames,
            "continue": s.continues,
            "conditioning": conditioning,
            "condition_sha256": digest,
            "cache": status,
            "cache_key": key,
            "spec": dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else dict(spec),
        })  # fmt: skip
    return clips, records, warnings


def summarize(records: Sequence[Mapping[str, Any]]) -> str:
    """The clip's cache status from its shots': ``"off"``, ``"hit"`` (every shot) or ``"miss"``.

    Example:
        >>> summarize([{"cache": "hit"}, {"cache": "miss"}]), summarize([{"cache": "hit"}])
        ('miss', 'hit')
    """
    statuses = {r["cache"] for r in records}
    if statuses == {"off"}:
        return "off"
    return "hit" if statuses == {"hit"} else "miss"


def generate_shots(
    generator,
    plan: ShotPlan,
    *,
    profile,
    template: str,
    template_path: Path | str,
    aspect: str,
    cache: SceneCache | None,
    preset: str | None = None,
    memory: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> Clip:
    """Generate a :class:`~brandstudio.prompts.shots.ShotPlan`'s shots and cut them together.

    Returns a :class:`~brandstudio.generation.clip.Clip` of the cut at the model fps, whose
    ``record`` holds ``fps``, ``frames``, ``duration`` and one record per shot (``"shots"``) with
    the speed record, whose ``warnings`` name the continuations the model could not make, and
    whose ``shot_starts`` are the shots' first frames in the cut.
    ``on_progress`` sees each shot's steps (each shot counts from 1 again).
    """
    m, out = profile.spec.model, profile.spec.output
    settings = preset_settings(profile, generator, preset)
    plan_memory = memory or m.memory

    def generate(spec, image):
        return cached_frames(
            generator, spec, settings=settings, memory=plan_memory, cache=cache, image=image,
            on_progress=on_progress,
        )  # fmt: skip

    clips, records, warnings = render_shots(
        plan, template=template, path=template_path,
        image_input=getattr(generator, "image_input", "none"), model_id=generator.model_id,
        max_frames=m.max_frames, scene_frames=frames_for(out.duration, m.fps),
        make_spec=lambda s, n: clip_spec(profile, generator, prompt=s.prompt, negative=s.negative, seed=s.seed,
                                         aspect=aspect, duration=n / m.fps, preset=preset),
        generate=generate,
    )  # fmt: skip
    frames = cut_together(clips, plan.crossfades)
    status = summarize(records)
    record = {
        "fps": plan.fps, "frames": plan.frames, "duration": plan.duration, "shots": records,
        **speed_record(settings, generator, status),
    }  # fmt: skip
    starts = tuple(round(s.start * plan.fps) for s in plan.shots)  # `start` is in seconds, frames exactly
    return Clip(frames, status, None, record, tuple(warnings), shot_starts=starts)
