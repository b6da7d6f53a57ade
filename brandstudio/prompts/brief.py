"""The brief: a render request resolved against the profile and its template.

Step 1 of a render (:mod:`brandstudio.studio`). The request says what the user asked for
(a template, its variables, maybe an aspect ratio or a seed); the brief says everything the
later stages need, decided once: the aspect ratio, length, sizes and frame rate, the final
prompt and negative prompt with the brand's style and LoRA triggers, the captions' timing,
the seed, the shot plan of a multi-shot template, the music mood. Every stage's ``check``
reads it before any work, and no stage decides any of it again.

Example:
    >>> from brandstudio import RenderRequest, load_profile                                   # doctest: +SKIP
    >>> profile = load_profile("brand_profiles/aurora-coffee")                                # doctest: +SKIP
    >>> b = make_brief(RenderRequest(template="product-hero", variables={"product": "Night Roast"}),
    ...                profile, TemplateLibrary.for_profile(profile.root))                      # doctest: +SKIP
    >>> b.aspect, b.duration, b.prompt[:40]                                                    # doctest: +SKIP
    ('9:16', 5.0, 'Night Roast coffee bag on a warm oak cou')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RequestError, TemplateError
from ..profile import BrandProfile
from ..request import RenderRequest
from .compose import brand_negative, brand_prompt
from .shots import ShotPlan, plan_shots
from .templates import RenderedTemplate, TemplateLibrary

__all__ = ["Brief", "derived_seed", "make_brief", "profile_scene"]

Cue = tuple[float, float, str]  # (start s, end s, text)


@dataclass(frozen=True)
class Brief:
    """What one clip will be: a :class:`~brandstudio.request.RenderRequest` with every default
    filled from the profile and the template rendered (plain values only)."""

    template: str
    template_path: Path
    variables: Mapping[str, Any]  # the template's variables, defaults filled
    aspect: str
    duration: float  # seconds delivered (a multi-shot clip: the length of its cut)
    resolution: int  # the delivery's shorter side, px
    fps: float  # delivery frame rate (an exact rate's float: 30000/1001, not 29.97)
    slowmo: float  # the generated motion played this many times slower
    interpolation: str  # how the frames between the model's are made (post.interpolate)
    seed: int
    seed_given: bool  # the request named the seed (else it was derived from the prompts)
    prompt: str  # what the model sees (a multi-shot clip: each distinct shot prompt, " | "-joined)
    negative: str
    cues: tuple[Cue, ...]  # captions, timed on the delivered clip
    shots: ShotPlan | None  # a multi-shot template's plan, else None
    music_mood: str | None
    voiceover: Path | None
    preset: str | None  # speed preset / memory plan overrides of [model] for this clip
    memory: str | None
    output: Path | None
    request: RenderRequest
    burn_captions: bool = True  # draw the captions into the picture (else only the .srt/.vtt sidecars)

    @property
    def generated_duration(self) -> float:
        """Seconds the model generates: the delivered ``duration`` at ``slowmo`` speed."""
        return self.duration / self.slowmo

    @property
    def captions(self) -> list[str]:
        """The caption texts, in order."""
        return [c[2] for c in self.cues]

    def texts(self) -> list[tuple[str, str]]:
        """``(where, text)`` of every text a safety rule reads: the prompt (each shot's), each
        caption, and each string variable of the template (a variable the template does not
        print can still name a file, a tag or the clip's record)."""
        prompts = (
            [("prompt", self.prompt)]
            if self.shots is None
            else [(f"shots[{s.index}].prompt", s.prompt) for s in self.shots.shots]
        )
        captions = [(f"caption[{i}]", c[2]) for i, c in enumerate(self.cues)]
        variables = [(f"variables.{k}", v) for k, v in self.variables.items() if isinstance(v, str)]
        return prompts + captions + variables


def make_brief(request: RenderRequest, profile: BrandProfile, templates: TemplateLibrary) -> Brief:
    """Resolve ``request`` against ``profile``: the :class:`Brief` every later stage reads.

    Raises :class:`~brandstudio.errors.RequestError` for an aspect ratio the profile does not
    enable, :class:`~brandstudio.errors.TemplateError` for template problems (unknown template
    or scene, bad variables, shots shorter than a frame).
    """
    spec = profile.spec
    aspect = _aspect(request.aspect, profile)
    duration = request.duration or spec.output.duration
    template = templates.get(request.template)
    rendered = template.render(request.variables)
    scene = profile_scene(profile, rendered.scene, request.template) if rendered.scene is not None else None
    prompt = brand_prompt(spec, scene.prompt if scene else rendered.prompt)
    negative = brand_negative(spec, rendered.negative)
    cues = rendered.scaled_cues(duration)
    seed = request.seed if request.seed is not None else derived_seed(request.template, prompt, negative, rendered.shots)
    seed = scene.seed if scene and request.seed is None else seed
    shots = _shot_plan(rendered, request, profile, template.path, seed) if rendered.shots else None
    if shots is not None and request.slowmo != 1:
        raise RequestError(
            f"`slowmo` {request.slowmo:g} with the multi-shot template {request.template!r}: each shot's "
            "length is planned on the cut", field="slowmo", value=request.slowmo,
            fix="use slowmo with a single-shot template, or give the shots the pace you want",
        )  # fmt: skip
    if shots is not None:  # a multi-shot clip lasts as long as its cut; cues run across it
        duration, cues = shots.duration, rendered.scaled_cues(shots.duration)
        prompt = " | ".join(dict.fromkeys(s.prompt for s in shots.shots))  # each distinct one, in order
        negative = " | ".join(dict.fromkeys(s.negative for s in shots.shots))
    return Brief(
        template=request.template,
        template_path=Path(template.path),
        variables=dict(rendered.variables),
        aspect=aspect,
        duration=duration,
        resolution=request.resolution or spec.output.resolution,
        fps=request.fps or spec.output.fps,
        slowmo=request.slowmo,
        interpolation=request.interpolation or spec.output.interpolation,
        seed=seed,
        seed_given=request.seed is not None,
        prompt=prompt,
        negative=negative,
        cues=tuple(cues),
        shots=shots,
        music_mood=request.music_mood or rendered.music_mood,
        voiceover=Path(request.voiceover) if request.voiceover else None,
        preset=request.preset,
        memory=request.memory,
        output=Path(request.output) if request.output else None,
        request=request,
    )


def _aspect(requested: str | None, profile: BrandProfile) -> str:
    """The clip's aspect ratio: the request's, which the profile must enable, else the profile's first."""
    aspects = profile.spec.output.aspects
    aspect = requested or aspects[0]
    if aspect not in aspects:
        raise RequestError(
            f"aspect ratio {aspect!r} is not enabled for this profile",
            profile=profile.id,
            file="brand.toml",
            field="output.aspects",
            value=aspect,
            fix=f"use one of {list(aspects)} or add it to output.aspects",
        )
    return aspect


def profile_scene(profile: BrandProfile, scene_id: str, template: str):
    """The profile's ``[[scenes]]`` entry a scene template names."""
    for scene in profile.spec.scenes:
        if scene.id == scene_id:
            return scene
    ids = [s.id for s in profile.spec.scenes]
    raise TemplateError(
        f"template {template!r} names the scene {scene_id!r}, which this profile does not have",
        profile=profile.id,
        file="brand.toml",
        field="scenes",
        value=scene_id,
        fix=f"use one of the profile's scenes: {', '.join(ids) or '(none: add [[scenes]] to brand.toml)'}",
    )


def _shot_plan(
    rendered: RenderedTemplate, request: RenderRequest, profile: BrandProfile, path: Path, seed: int
) -> ShotPlan:
    """A multi-shot template's :class:`~brandstudio.prompts.shots.ShotPlan` (prompts, seeds, frames)."""
    spec = profile.spec
    return plan_shots(
        rendered.shots, template=request.template, path=path, nominal=rendered.duration,
        fps=spec.model.fps, clip_seed=seed, seed_given=request.seed is not None, duration=request.duration,
        compose=lambda body: brand_prompt(spec, body),
        negative=lambda shot_neg: brand_negative(spec, ", ".join(x for x in (rendered.negative, shot_neg) if x)),
        scene=lambda scene_id: profile_scene(profile, scene_id, request.template),
    )  # fmt: skip


def derived_seed(template: str, prompt: str, negative: str, shots=()) -> int:
    """The seed a request without one gets: from what the footage is made of (the template and
    its final prompts), not from caption-only variables, so a new tagline reuses the footage
    (and its scene-cache entry) instead of generating a different one."""
    shot_prompts = [(s.prompt, s.scene, s.negative) for s in shots or ()]
    key = json.dumps([template, prompt, negative, shot_prompts], default=str, ensure_ascii=False)
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % (2**31)
