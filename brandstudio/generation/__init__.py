"""Generation: a brand profile and a brief in, footage out (Wan2.2 through diffusers, the scene
cache, multi-shot clips cut together at the model's frame rate).

The front door, plain values in and out::

    generator = load_generator(profile, device="auto")           # once, kept for the next clips
    check(brief, profile)                                         # before any work
    spec = clip_spec(profile, generator, prompt=..., negative=..., seed=..., aspect=..., duration=...)
    clip = generate_clip(generator, spec, profile=profile, cache=cache, on_progress=...)
    clip = generate_shots(generator, plan, profile=profile, template=..., template_path=...,
                          aspect=..., cache=cache)                # a multi-shot template
    clip = generate_long_take(generator, spec, total=frames, profile=profile, cache=cache)  # longer than one generation
    clip.frames, clip.cache, clip.cache_key, clip.record, clip.warnings, clip.shot_starts, clip.segment_starts

Inside, one module per concept: :mod:`~brandstudio.generation.base` (the contract),
:mod:`~brandstudio.generation.wan` (the diffusers generator), :mod:`~brandstudio.generation.tiny`
(the offline toy models), :mod:`~brandstudio.generation.presets` and
:mod:`~brandstudio.generation.memory` (the pure rules of speed presets and memory plans),
:mod:`~brandstudio.generation.runtime` (applying them, with ``attention``, ``caching``,
``offload``, ``quantize``, ``parallel``, ``adapters`` and ``experts``),
:mod:`~brandstudio.generation.cache` (the scene cache), :mod:`~brandstudio.generation.shots` and
:mod:`~brandstudio.generation.cut` (multi-shot clips), :mod:`~brandstudio.generation.long_take`
(one scene longer than a generation, chained). Importing this package loads no torch.

Example:
    >>> from brandstudio.generation import Clip, generate_clip
    >>> sorted(Clip.__dataclass_fields__)
    ['cache', 'cache_key', 'frames', 'record', 'segment_starts', 'shot_starts', 'warnings']
"""

from __future__ import annotations

from .base import GenerationSpec, Generator, LoraAdapter
from .cache import SceneCache
from .checks import check
from .clip import Clip, clip_spec, frames_for, generate_clip, load_generator, prewarm
from .long_take import generate_long_take
from .shots import generate_shots

__all__ = [
    "Clip",
    "GenerationSpec",
    "Generator",
    "LoraAdapter",
    "SceneCache",
    "check",
    "clip_spec",
    "frames_for",
    "generate_clip",
    "generate_long_take",
    "generate_shots",
    "load_generator",
    "prewarm",
]
