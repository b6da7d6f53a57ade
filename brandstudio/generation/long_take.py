"""Long takes: one scene longer than one generation, made as a chain of segments.

A model makes at most ``[model] max_frames`` frames at a time (Wan2.2: 81, about 5 s). A longer
single scene (20-60 s) is generated in segments, each continuing from the take so far on a
model with image input (Wan2.2 TI2V-5B, I2V-A14B; ``tiny-ti2v`` offline):

1. **plan** (:func:`plan_take`): segment 0 makes ``max_frames`` frames; every later segment starts
   from the take's frame ``overlap + 1`` frames before its current end, so that its first frame
   (the model re-creates the start image there) is dropped and its next ``overlap`` frames fall
   on frames the take already has. Each segment adds ``max_frames - 1 - overlap`` new frames;
   the last one is generated only as long as it needs to be.
2. **generate** each segment through the scene cache (:func:`~brandstudio.generation.clip.cached_frames`:
   the start image's pixels are part of its key, so a take whose first segment changed makes
   every later one again), with its own seed (``seed + index``) so the segments' noise differs.
3. **join** (:func:`join_segments`): across each overlap the take fades linearly from the old
   segment to the new one, so the handover is a blend of two renderings of the same moment
   rather than a jump.

Every segment drifts a little in exposure and colour from the one it continues (the drift of
extended Wan takes, ComfyUI-WanVideoWrapper issues 373 and 1351): the post stage pulls each
segment back to the first segment's statistics (:class:`~brandstudio.post.take_match.TakeMatch`),
using :attr:`~brandstudio.generation.clip.Clip.segment_starts`.

Example:
    >>> plan = plan_take(200, max_frames=81, overlap=8)
    >>> plan.segments, plan.starts, plan.lengths
    (3, (0, 72, 144), (81, 81, 57))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brandstudio.errors import GenerationError, RequestError
from brandstudio.generation.base import frames_to_generate
from brandstudio.generation.cache import SceneCache
from brandstudio.generation.clip import Clip, cached_frames, preset_settings, speed_record
from brandstudio.generation.conditioning import image_digest
from brandstudio.generation.shots import summarize
from brandstudio.progress import Progress, ProgressCallback

__all__ = ["DEFAULT_OVERLAP", "TakePlan", "default_overlap", "generate_long_take", "join_segments", "plan_take", "render_take"]

DEFAULT_OVERLAP = 8
"""Frames blended across each join (half a second at 16 fps): long enough to hide the handover,
short enough that little of each generation is spent twice. Shorter generations get at most a
quarter of their frames (:func:`default_overlap`)."""


@dataclass(frozen=True)
class TakePlan:
    """Where each segment of a long take goes.

    Attributes:
        total: frames the take shows.
        overlap: frames each join blends.
        starts: the take frame each segment's first frame stands for (segment 0: 0; a later one:
            the frame it is conditioned on, which it re-creates and which is dropped).
        lengths: frames each segment is generated with (``4k + 1``).
    """

    total: int
    overlap: int
    starts: tuple[int, ...]
    lengths: tuple[int, ...]

    @property
    def segments(self) -> int:
        return len(self.starts)

    @property
    def segment_starts(self) -> tuple[int, ...]:
        """The first take frame each segment contributes to (a later one: the start of its overlap)."""
        return (0, *(s + 1 for s in self.starts[1:]))


def default_overlap(max_frames: int) -> int:
    """:data:`DEFAULT_OVERLAP`, or a quarter of a shorter generation (at least 2 frames).

    Example:
        >>> default_overlap(81), default_overlap(17)
        (8, 4)
    """
    return max(2, min(DEFAULT_OVERLAP, (max_frames - 1) // 4))


def plan_take(total: int, *, max_frames: int, overlap: int | None = None) -> TakePlan:
    """The segments of a ``total``-frame take from generations of at most ``max_frames`` frames,
    joined over ``overlap`` frames (default: :func:`default_overlap`).

    Raises:
        RequestError: ``overlap`` leaves a segment nothing new to add (``max_frames - 1 - overlap < 1``).
    """
    overlap = default_overlap(max_frames) if overlap is None else overlap
    if overlap < 0 or max_frames - 1 - overlap < 4:
        raise RequestError(
            f"a long take's overlap of {overlap} frames leaves too little of each {max_frames}-frame "
            "generation to move the take on",
            field="overlap", value=overlap, fix=f"use an overlap between 0 and {max(0, max_frames - 5)} frames",
        )  # fmt: skip
    starts, lengths = [0], [min(max_frames, frames_to_generate(total))]
    end = min(lengths[0], total)
    while end < total:
        start = end - 1 - overlap  # the frame the next segment starts from (re-created, dropped)
        lengths.append(min(max_frames, frames_to_generate(total - start)))
        starts.append(start)
        end = start + lengths[-1]
    return TakePlan(total, overlap, tuple(starts), tuple(lengths))


def join_segments(segments: Sequence[np.ndarray], plan: TakePlan) -> np.ndarray:
    """The take from its generated segments: each later segment's first frame dropped, its next
    ``plan.overlap`` frames faded in over the take's last ones, the rest appended."""
    take = np.empty((plan.total, *segments[0].shape[1:]), np.uint8)
    end = 0
    for seg, start in zip(segments, plan.starts, strict=True):
        end = _join(take, end, seg, start)
    _check_length(end, plan.total)
    return take


def _join(take: np.ndarray, end: int, segment: np.ndarray, start: int) -> int:
    """Join ``segment`` (its frame 0 stands for take frame ``start``) onto ``take[:end]`` in place;
    return the new end. The first segment is copied as it is."""
    if end == 0:
        n = min(len(segment), len(take))
        take[:n] = segment[:n]
        return n
    shared = end - start - 1  # frames of the overlap
    weights = (np.arange(1, shared + 1, dtype=np.float32) / (shared + 1))[:, None, None, None]
    old, new = take[start + 1 : end].astype(np.float32), segment[1 : 1 + shared].astype(np.float32)
    take[start + 1 : end] = np.clip(np.rint(old + weights * (new - old)), 0, 255).astype(np.uint8)
    fresh = segment[1 + shared : 1 + shared + len(take) - end]
    take[end : end + len(fresh)] = fresh
    return end + len(fresh)


def _check_length(end: int, total: int) -> None:
    if end != total:
        raise GenerationError(
            f"the long take's segments made {end} frames, {total} were needed",
            fix="report this with the model id (a segment came back shorter than asked)",
        )


def render_take(
    plan: TakePlan,
    spec,
    *,
    image_input: str,
    model_id: str,
    generate: Callable[[Any, np.ndarray | None], tuple[np.ndarray, str, str | None]],
    on_segment: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """Generate the plan's segments in order, each from the take so far, and join them.

    ``spec``: the take's :class:`~brandstudio.generation.base.GenerationSpec` (its prompt, seed and
    sampler; each segment gets its own length and ``seed + index``). ``generate(spec, image)``
    returns ``(frames, cache status, cache key)``. Returns the take and one record per segment.

    Raises:
        GenerationError: the model has no image input (a take cannot continue), or a segment came
            back with the wrong number of frames.
    """
    # 1. only a model that starts from an image can continue a take
    if plan.segments > 1 and image_input != "optional":
        what = "has no image input" if image_input == "none" else "cannot start from text"
        raise GenerationError(
            f"a {plan.total}-frame take needs {plan.segments} generations chained by their last frames, "
            f"and `{model_id}` {what}",
            field="model.id", value=model_id,
            fix="ask for at most one generation's length, or use a text+image model for long takes "
            "(Wan-AI/Wan2.2-TI2V-5B-Diffusers, or tiny-ti2v offline)",
        )  # fmt: skip

    # 2. each segment from the take so far (its start frame as shown: blends included), joined as it comes
    take: np.ndarray | None = None
    end = 0
    records: list[dict] = []
    for i, (start, length) in enumerate(zip(plan.starts, plan.lengths, strict=True)):
        if on_segment is not None:
            on_segment(i, plan.segments)
        image = np.ascontiguousarray(take[start]) if take is not None else None
        seg_spec = dataclasses.replace(spec, num_frames=length, seed=(spec.seed + i) % 2**63)
        frames, status, key = generate(seg_spec, image)
        if len(frames) != length:
            raise GenerationError(f"segment {i} of the take: the model returned {len(frames)} frames, {length} were asked",
                                  fix="report this with the model id")  # fmt: skip
        if take is None:
            take = np.empty((plan.total, *frames.shape[1:]), np.uint8)
        end = _join(take, end, frames, start)
        records.append({
            "index": i, "seed": seg_spec.seed, "start": start, "generated_frames": length,
            "conditioning": f"take frame {start}" if i else "none",
            "condition_sha256": image_digest(image) if image is not None else None,
            "cache": status, "cache_key": key,
        })  # fmt: skip
    _check_length(end, plan.total)
    return take, records


def generate_long_take(
    generator,
    spec,
    *,
    total: int,
    profile,
    cache: SceneCache | None,
    preset: str | None = None,
    memory: str | None = None,
    overlap: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Clip:
    """A ``total``-frame take of ``spec``'s scene, generated in segments of at most ``[model]
    max_frames`` frames (see the module docstring).

    Returns a :class:`~brandstudio.generation.clip.Clip` whose ``record`` holds the spec, the
    plan (``"take"``: overlap and one record per segment) and the speed record, and whose
    ``segment_starts`` tell the post stage where each segment begins.
    """
    settings = preset_settings(profile, generator, preset)
    plan = plan_take(total, max_frames=profile.spec.model.max_frames, overlap=overlap)
    segment = [0]  # which segment the denoising steps reported now belong to

    def report(p: Progress) -> None:  # "segment 3/20, expert high" on every step
        named = f"segment {segment[0] + 1}/{plan.segments}" + (f", {p.detail}" if p.detail else "")
        on_progress(dataclasses.replace(p, detail=named))

    def generate(seg_spec, image):
        return cached_frames(generator, seg_spec, settings=settings, memory=memory or profile.spec.model.memory,
                             cache=cache, image=image, on_progress=report if on_progress else None)  # fmt: skip

    frames, records = render_take(plan, spec, image_input=getattr(generator, "image_input", "none"),
                                  model_id=generator.model_id, generate=generate,
                                  on_segment=lambda i, n: segment.__setitem__(0, i))  # fmt: skip
    status = summarize(records)
    record = {
        **dataclasses.asdict(spec), "num_frames": total,
        "take": {"overlap": plan.overlap, "segments": records, "segment_starts": list(plan.segment_starts)},
        **speed_record(settings, generator, status),
    }  # fmt: skip
    return Clip(frames, status, None, record, segment_starts=plan.segment_starts)
