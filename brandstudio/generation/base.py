"""The generation contract: what a video model is asked for and what it gives back.

A :class:`Generator` turns a :class:`GenerationSpec` (the final prompt, seed, size and
sampler settings) into :data:`~brandstudio.frames.Frames`. LoRA adapters are described by
:class:`LoraAdapter` and handed to the generator when it is built, so one loaded pipeline
serves many calls with the same look.

This module is light on purpose (no torch, no diffusers), so the profile loader and the CLI
can import it without paying for the model stack.

Example:
    >>> from brandstudio.generation.base import GenerationSpec
    >>> spec = GenerationSpec(prompt="a cup of coffee at dawn", negative_prompt="blurry",
    ...                       seed=7, width=256, height=144, num_frames=33, steps=4,
    ...                       guidance_high=4.0, guidance_low=3.0, flow_shift=12.0)
    >>> spec.num_frames % 4
    1
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from brandstudio.progress import ProgressCallback

__all__ = ["TEXT_MAX_TOKENS", "GenerationSpec", "Generator", "LoraAdapter", "frames_to_generate"]

#: the most tokens the UMT5 text encoder reads of a prompt: the pipeline's ``max_sequence_length``
#: (diffusers' ``WanPipeline`` default, Wan2.2's own ``text_len``); diffusers silently drops the rest
TEXT_MAX_TOKENS = 512


@dataclass(frozen=True)
class GenerationSpec:
    """Everything one call of a video model needs. Immutable; use ``dataclasses.replace`` for a copy.

    Attributes:
        prompt: the final positive prompt (template + brand style, already safety-checked).
        negative_prompt: the negative prompt ("" for none).
        seed: the seed of the initial noise; the same spec gives the same frames.
        width: frame width in pixels, divisible by 16.
        height: frame height in pixels, divisible by 16.
        num_frames: number of frames, of the form ``4k + 1`` (5, 33, 81, 121, ...).
        steps: number of denoising steps.
        guidance_high: classifier-free guidance of the high-noise expert (``transformer``).
        guidance_low: classifier-free guidance of the low-noise expert (``transformer_2``).
        flow_shift: the flow-matching sigma shift of the scheduler (12 for Wan2.2 T2V-A14B).

    Example:
        >>> import dataclasses
        >>> spec = GenerationSpec("tea leaves in mist", "", 1, 64, 48, 5, 2, 4.0, 3.0, 12.0)
        >>> dataclasses.replace(spec, seed=2).seed
        2
    """

    prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    num_frames: int
    steps: int
    guidance_high: float
    guidance_low: float
    flow_shift: float


@dataclass(frozen=True)
class LoraAdapter:
    """A LoRA adapter named by a brand profile, with one weight per Wan2.2 expert.

    Attributes:
        name: the adapter name (unique within one generator).
        path: the resolved ``.safetensors`` file, inside the profile directory.
        weight_high: strength in the high-noise expert (``transformer``); 0 skips that expert.
        weight_low: strength in the low-noise expert (``transformer_2``); 0 skips that expert.
        base_model: the model family the adapter was trained for, e.g. ``"tiny-wan2.2"`` or
            ``"wan2.2-t2v-a14b"``; it must match the family of the loaded model.

    Example:
        >>> import pathlib
        >>> LoraAdapter("aurora-film", pathlib.Path("loras/aurora-film.safetensors"),
        ...             weight_high=0.8, weight_low=1.0, base_model="tiny-wan2.2").weight_low
        1.0
    """

    name: str
    path: pathlib.Path
    weight_high: float
    weight_low: float
    base_model: str


@runtime_checkable
class Generator(Protocol):
    """Anything that renders a :class:`GenerationSpec` into frames.

    ``generate`` returns :data:`~brandstudio.frames.Frames`: ``uint8`` of shape
    ``(num_frames, height, width, 3)``. It must be deterministic: the same spec on the same
    generator gives bit-identical frames (the scene cache relies on it).

    Optional: ``cache_identity() -> dict``, the JSON-able fields of the generator that change
    the pixels (model id and revision, dtype, scheduler, LoRA file hashes and weights, ...).
    The scene cache key is made of it, the spec and the profile's speed preset
    (:func:`brandstudio.generation.cache.scene_key`); a generator without it is never cached.

    Optional: ``image_input`` (``"none"``, ``"optional"`` or ``"required"``; missing means
    ``"none"``) and ``generate(spec, image=frame)`` with a ``uint8`` ``(height, width, 3)`` start
    image, for multi-shot continuity (:mod:`brandstudio.generation.shots`). The image is only passed
    when the generator says it takes one.

    ``on_progress``: a :data:`~brandstudio.progress.ProgressCallback` for each denoising step
    (``Progress("generation", step, steps + 1, "high-noise expert" | "low-noise expert")``) and
    the decode (the last step, ``"decode"``). Callers pass it only when they have one, so a
    generator that reports nothing may leave the parameter out.
    """

    model_id: str

    def generate(
        self, spec: GenerationSpec, image: np.ndarray | None = None, on_progress: ProgressCallback | None = None
    ) -> np.ndarray: ...


def frames_to_generate(needed: int) -> int:
    """The fewest frames of the form ``4k + 1`` (what a Wan model makes) that hold ``needed`` frames.

    Example:
        >>> frames_to_generate(1), frames_to_generate(30), frames_to_generate(33)
        (1, 33, 33)
    """
    return 4 * math.ceil((needed - 1) / 4) + 1
