"""Cheap checks of a clip's generation before any work: nothing loaded, nothing generated.

The studio runs every stage's ``check`` on the brief first, so that a request that cannot be
made fails in milliseconds, with the field to fix, instead of after the model has loaded.

Example:
    >>> check(brief, profile)                                 # doctest: +SKIP
"""

from __future__ import annotations

from brandstudio.errors import error_context
from brandstudio.generation.base import frames_to_generate
from brandstudio.generation.clip import check_clip_frames, frames_for, preset_settings
from brandstudio.generation.memory import check_memory_plan
from brandstudio.generation.shots import check_shot_lengths

__all__ = ["check"]


def check(brief, profile) -> None:
    """Raise before any work when the generation ``brief`` asks for cannot be made.

    ``brief`` has ``.preset`` and ``.memory`` (None: the profile's ``[model]`` ones),
    ``.duration`` and ``.shots`` (a :class:`~brandstudio.prompts.shots.ShotPlan` or None), and for
    the messages of a multi-shot clip ``.template`` and ``.template_path``. Checked: the speed
    preset is one of :data:`~brandstudio.registry.SPEED_PRESETS` (and ``fast`` has its
    ``[model.fast] lora``), the memory plan one of :data:`~brandstudio.registry.MEMORY_PLANS`,
    and the clip, or each shot, fits in one generation (``[model] max_frames``). What depends on
    the loaded model (a LoRA's base model, a continuing shot's extra frame on an image model) is
    checked when it is loaded or generated.

    Raises:
        RequestError: an unknown preset or memory plan, ``fast`` without a distilled LoRA, or a
            clip longer than one generation.
        TemplateError: a shot longer than one generation.
    """
    m = profile.spec.model
    with error_context(profile=profile.id):
        preset_settings(profile, None, brief.preset)  # the family is unknown before loading: names only
        check_memory_plan(brief.memory or m.memory)
        if brief.shots is None:
            check_clip_frames(profile, frames_to_generate(frames_for(brief.duration, m.fps)), brief.duration)
        else:
            check_shot_lengths(
                brief.shots, template=getattr(brief, "template", None), path=getattr(brief, "template_path", ""),
                model_id=m.id, max_frames=m.max_frames, scene_frames=frames_for(profile.spec.output.duration, m.fps),
            )  # fmt: skip
