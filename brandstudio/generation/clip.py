"""One clip from a brand profile: the generator for its ``[model]``, the spec of a clip, the frames
through the scene cache, and prewarming the profile's scenes.

These are the profile-facing steps of generation; each takes and returns plain values (a
profile, a generator, a :class:`~brandstudio.generation.base.GenerationSpec`, a
:class:`Clip`), so the studio states its stage order without knowing how a clip is made.

Example:
    >>> from brandstudio import load_profile                                    # doctest: +SKIP
    >>> profile = load_profile("brand_profiles/aurora-coffee")                  # doctest: +SKIP
    >>> gen = load_generator(profile, device="cpu")                             # doctest: +SKIP
    >>> spec = clip_spec(profile, gen, prompt="espresso pour", negative="", seed=1,
    ...                  aspect="16:9", duration=2.0)                           # doctest: +SKIP
    >>> clip = generate_clip(gen, spec, profile=profile, cache=None)            # doctest: +SKIP
    >>> clip.frames.shape, clip.cache                                           # doctest: +SKIP
    ((33, 144, 256, 3), 'off')
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brandstudio.errors import RequestError, error_context
from brandstudio.generation.base import GenerationSpec, Generator, LoraAdapter, frames_to_generate
from brandstudio.generation.cache import SceneCache, scene_key
from brandstudio.generation.conditioning import image_digest
from brandstudio.generation.presets import PresetSettings, resolve_preset
from brandstudio.generation.wan import WanGenerator
from brandstudio.profile.schema import parse_aspect
from brandstudio.progress import ProgressCallback
from brandstudio.prompts.compose import brand_negative, brand_prompt

__all__ = [
    "Clip",
    "cached_frames",
    "check_clip_frames",
    "clip_spec",
    "frames_for",
    "generate_clip",
    "load_generator",
    "preset_settings",
    "prewarm",
    "speed_record",
]


@dataclass(frozen=True)
class Clip:
    """Generated footage and what made it.

    Attributes:
        frames: ``uint8`` ``(T, H, W, 3)`` at the model's frame rate.
        cache: ``"hit"`` (from the scene cache; for several shots: every one), ``"miss"``
            (generated and stored) or ``"off"`` (no cache, or a generator that cannot be cached).
        cache_key: the scene-cache key of a one-shot clip (None when off, and for several shots:
            each shot's is in ``record["shots"]``).
        record: what ``RenderResult.generation`` holds: the spec's fields (or the multi-shot
            record, with ``"shots"``) and the speed record (:func:`speed_record`).
        warnings: what the caller should report (e.g. a continuation a text-only model cannot make).
        shot_starts: the first frame of each shot in ``frames`` (a multi-shot clip; else empty),
            so that a subject-aware reframe picks one window per shot.
        segment_starts: the first frame of each generation of a long take (one scene made in
            several chained generations, :mod:`brandstudio.generation.long_take`; else empty), so
            that the post stage can pull each segment's colour back to the first's.
    """

    frames: np.ndarray = field(repr=False)
    cache: str
    cache_key: str | None
    record: dict[str, Any] = field(repr=False)
    warnings: tuple[str, ...] = ()
    shot_starts: tuple[int, ...] = ()
    segment_starts: tuple[int, ...] = ()


def load_generator(profile, *, device: str = "auto") -> Generator:
    """A :class:`~brandstudio.generation.wan.WanGenerator` for the profile's ``[model]``, with its
    ``[[style.loras]]`` loaded into the experts at their per-expert weights.

    Loading takes seconds (the tiny model) to minutes (A14B): keep the generator for the next clips.
    """
    m = profile.spec.model
    loras = [
        LoraAdapter(
            name=lo.name,
            path=profile.path(f"style.loras[{i}].file"),
            weight_high=lo.weight_high,
            weight_low=lo.weight_low,
            base_model=lo.base_model,
        )
        for i, lo in enumerate(profile.spec.style.loras)
    ]
    return WanGenerator(
        m.id,
        loras=loras,
        revision=m.revision,
        device=device,
        dtype=m.dtype,
        boundary_ratio=m.boundary_ratio,
        memory=m.memory,
        vae_tiling=m.vae_tiling,
        quantization=m.quantization,
    )


def preset_settings(profile, generator, preset: str | None = None) -> PresetSettings:
    """The speed preset ``preset`` (default: the profile's ``[model] preset``) resolved for the
    generator's model family: :func:`~brandstudio.generation.presets.resolve_preset`."""
    fast = profile.assets.get("model.fast.lora")
    with error_context(profile=profile.id):
        return resolve_preset(
            preset, getattr(generator, "model_family", "unknown"), profile.spec.model,
            fast_lora_path=fast.path if fast else None, fast_lora_sha256=fast.sha256 if fast else None,
        )  # fmt: skip


def frames_for(duration: float, fps: int) -> int:
    """Frames of a ``duration`` s clip at ``fps`` (at least one; a float error never adds one).

    Example:
        >>> frames_for(2.0, 16), frames_for(0.3, 16)
        (32, 5)
    """
    return max(1, math.ceil(duration * fps - 1e-9))


def clip_spec(
    profile,
    generator,
    *,
    prompt: str,
    negative: str,
    seed: int,
    aspect: str,
    duration: float,
    preset: str | None = None,
) -> GenerationSpec:
    """The :class:`~brandstudio.generation.base.GenerationSpec` of one clip: the profile's
    generation size (portrait for a portrait ``aspect``, or ``[output] source_aspect``'s), the
    frames for ``duration`` at the model fps (``4k + 1``) and the preset's sampler numbers.

    Raises:
        RequestError: the clip needs more frames than the model makes in one shot.
    """
    m = profile.spec.model
    speed = preset_settings(profile, generator, preset)  # steps, guidance, shift of the speed preset
    w, h = parse_aspect(profile.spec.output.source_aspect or aspect)  # one generation, all aspects
    width, height = (m.width, m.height) if w >= h else (m.height, m.width)
    num_frames = frames_to_generate(frames_for(duration, m.fps))
    check_clip_frames(profile, num_frames, duration)
    return GenerationSpec(
        prompt=prompt,
        negative_prompt=negative,
        seed=seed,
        width=width,
        height=height,
        num_frames=num_frames,
        steps=speed.steps,
        guidance_high=speed.guidance_high,
        guidance_low=speed.guidance_low,
        flow_shift=speed.flow_shift,
    )


def check_clip_frames(profile, num_frames: int, duration: float) -> None:
    """Raise a :class:`~brandstudio.errors.RequestError` when a ``duration`` s clip of
    ``num_frames`` frames is longer than one generation (``[model] max_frames``)."""
    m = profile.spec.model
    if num_frames > m.max_frames:
        raise RequestError(
            f"a {duration:g} s clip needs {num_frames} frames at {m.fps} fps, more than the "
            f"{m.max_frames} the model makes in one shot",
            profile=profile.id,
            file="brand.toml",
            field="output.duration",
            value=duration,
            fix=f"ask for at most {(m.max_frames - 1) / m.fps:g} s, or raise model.max_frames",
        )


def speed_record(settings: PresetSettings, generator, status: str) -> dict[str, Any]:
    """For ``RenderResult.generation``: the effective preset, and what the generator ran with
    (memory plan, attention kernel, ...; None on a cache hit, when nothing ran)."""
    record = settings.record()
    runtime = getattr(generator, "runtime", None)
    ran = runtime.record() if runtime is not None and status != "hit" else {}
    record["memory_plan"] = ran.get("memory")
    record["attention"] = ran.get("attention")
    record["runtime"] = ran or None
    return record


def cached_frames(
    generator,
    spec: GenerationSpec,
    *,
    settings: PresetSettings,
    memory: str,
    cache: SceneCache | None,
    image: np.ndarray | None = None,
    on_progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, str, str | None]:
    """``(frames, "hit" | "miss" | "off", cache key or None)``: ``spec`` from the scene cache, or
    from the generator switched to ``settings`` and memory plan ``memory`` (when it can be).

    The key is the generator's ``cache_identity()``, the spec and the preset's pixel-changing
    fields; a start ``image`` (multi-shot continuity) adds its pixels' SHA-256.
    """

    def make() -> np.ndarray:
        configure = getattr(generator, "configure", None)
        if configure is not None:
            configure(settings, memory=memory)
        extra: dict[str, Any] = {}
        if image is not None:
            extra["image"] = image
        if on_progress is not None and _reports_progress(generator):
            extra["on_progress"] = on_progress
        return generator.generate(spec, **extra)

    identity = getattr(generator, "cache_identity", None)
    if cache is None or identity is None:
        return make(), "off", None
    fields = {**identity(), **dataclasses.asdict(spec), "preset": settings.key_fields()}
    if image is not None:
        fields["condition_image"] = image_digest(image)
    key = scene_key(fields)
    frames, hit = cache.get_or_create(key, make, fields=fields)
    return frames, "hit" if hit else "miss", key


def generate_clip(
    generator,
    spec: GenerationSpec,
    *,
    profile,
    cache: SceneCache | None,
    preset: str | None = None,
    memory: str | None = None,
    image: np.ndarray | None = None,
    on_progress: ProgressCallback | None = None,
) -> Clip:
    """Generate ``spec`` through the scene cache with the speed preset ``preset`` and memory plan
    ``memory`` (default: the profile's ``[model]`` ones). ``image``: a start frame (multi-shot
    continuity). ``on_progress`` sees each denoising step and the decode (not on a cache hit).
    """
    settings = preset_settings(profile, generator, preset)
    frames, status, key = cached_frames(
        generator, spec, settings=settings, memory=memory or profile.spec.model.memory, cache=cache,
        image=image, on_progress=on_progress,
    )  # fmt: skip
    record = {**dataclasses.asdict(spec), **speed_record(settings, generator, status)}
    return Clip(frames, status, key, record)


def prewarm(
    generator,
    profile,
    *,
    cache: SceneCache | None,
    check_prompt: Callable[[str], object],
    aspect: str | None = None,
    duration: float | None = None,
) -> list[dict]:
    """Render the profile's ``[[scenes]]`` into the scene cache (generation only: no post, no file).

    Each scene is generated exactly as a scene template would ask for it (its prompt with the
    brand style and LoRA triggers, the brand's negative prompt, its seed), at its own ``aspect``
    (or ``aspect``) and the profile's duration (or ``duration``), with the profile's preset and
    memory plan. ``check_prompt(prompt)`` is the caller's safety check of each final prompt
    (raising to stop). Returns one ``{"scene", "cache", "key", "seconds"}`` per scene; ``cache``
    is ``"hit"`` when it was there.
    """
    spec = profile.spec
    negative = brand_negative(spec)
    report = []
    for scene in spec.scenes:
        t0 = time.perf_counter()
        prompt = brand_prompt(spec, scene.prompt)  # as a scene template would ask for it
        check_prompt(prompt)
        gen_spec = clip_spec(
            profile, generator, prompt=prompt, negative=negative, seed=scene.seed,
            aspect=aspect or scene.aspect, duration=duration or spec.output.duration,
        )  # fmt: skip
        clip = generate_clip(generator, gen_spec, profile=profile, cache=cache)
        report.append(
            {"scene": scene.id, "cache": clip.cache, "key": clip.cache_key, "seconds": round(time.perf_counter() - t0, 3)}
        )
    return report


def _reports_progress(generator) -> bool:
    """Whether ``generator.generate`` takes ``on_progress`` (a caller's own generator, passed as
    ``BrandStudio(generator=...)``, need not: its clips then report no denoising steps)."""
    try:
        params = inspect.signature(generator.generate).parameters
    except (TypeError, ValueError):  # a builtin or C-implemented callable: no signature to read
        return False
    return "on_progress" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
