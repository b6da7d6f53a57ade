"""Pulling a long take's segments back to its first: the colour drift of chained generations undone.

A long take (:mod:`brandstudio.generation.long_take`) is several generations, each continuing
from the last; each drifts a little in exposure and colour from the one before, and over 30 s
the drift adds up (the take ends visibly brighter, or greyer, than it began). :class:`TakeMatch`
measures each segment's colour statistics as a whole (mean and spread of L*, a*, b* over all of
its frames, sampled) and maps each segment onto the first segment's with Reinhard's transfer in
CIELAB (:mod:`brandstudio.post.match`), like ``ColourMatch`` but per *segment*, not per frame:
the light changes *within* a segment (a cloud passing, a lamp turned on) are the scene and stay.

The transfer is a keyframe at each segment's middle frame, interpolated linearly between them
(constant before the first middle and after the last), so no join ever shows a step, and the
first segment is left exactly as generated.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base = rng.integers(60, 200, (1, 16, 16, 3)).astype(np.float32)
    >>> take = np.concatenate([base.repeat(8, 0), (base * 0.7).repeat(8, 0)]).astype(np.uint8)
    >>> fixed = TakeMatch.planned(take, (0, 8)).apply_at(take, 0)
    >>> bool(abs(fixed[12].mean() - take[0].mean()) < 2 < abs(take[12].mean() - take[0].mean()))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brandstudio.frames import check_frames, lab_to_srgb, srgb_to_lab

from .effect import Effect
from .match import MAX_GAIN, SAMPLES

__all__ = ["TAKE_MATCH_METHODS", "TakeMatch"]

#: the CIELAB axes each method moves: all three, or the two colour axes only (lightness kept)
TAKE_MATCH_METHODS = {"reinhard": slice(0, 3), "chroma": slice(1, 3)}


@dataclass(frozen=True, eq=False)
class TakeMatch(Effect):
    """Each segment of a take mapped onto the first segment's colour statistics.

    Build it with :meth:`planned` from the take's frames and its segments' first frames.

    Args:
        centres: the keyframe of each segment (its middle frame) in the take.
        scales, offsets: per keyframe, the CIELAB transfer ``lab * scale + offset`` (``(n, 3)``;
            the first is the identity).
    """

    centres: tuple[float, ...]
    scales: np.ndarray
    offsets: np.ndarray

    @classmethod
    def planned(cls, frames: np.ndarray, segment_starts: Sequence[int], method: str = "reinhard") -> TakeMatch:
        """Measure each segment of ``frames`` (``segment_starts``: each one's first frame) and plan
        the transfer of each onto the first segment."""
        if method not in TAKE_MATCH_METHODS:
            raise ValueError(f"unknown take match method {method!r}; use one of {', '.join(TAKE_MATCH_METHODS)}")
        frames = check_frames(frames)
        axes = TAKE_MATCH_METHODS[method]
        bounds = [*segment_starts, len(frames)]
        stats = [_segment_stats(frames[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
        (ref_mean, ref_std), scales, offsets = stats[0], [], []
        for mean, std in stats:
            scale, offset = np.ones(3), np.zeros(3)
            scale[axes] = np.clip(ref_std[axes] / np.maximum(std[axes], 1e-6), 1.0 / MAX_GAIN, MAX_GAIN)
            offset[axes] = ref_mean[axes] - mean[axes] * scale[axes]
            scales.append(scale)
            offsets.append(offset)
        centres = tuple((a + b - 1) / 2 for a, b in zip(bounds, bounds[1:], strict=False))
        return cls(centres, np.array(scales, np.float32), np.array(offsets, np.float32))

    def apply(self, frames: np.ndarray) -> np.ndarray:
        return self.apply_at(frames, 0)

    def apply_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        """Frames ``start, start + 1, ...`` of the take, each with its interpolated transfer."""
        frames = check_frames(frames)
        out = np.empty_like(frames)
        positions = np.arange(start, start + len(frames), dtype=np.float64)
        scales = np.stack([np.interp(positions, self.centres, self.scales[:, c]) for c in range(3)], axis=1)
        offsets = np.stack([np.interp(positions, self.centres, self.offsets[:, c]) for c in range(3)], axis=1)
        for k, frame in enumerate(frames):
            if np.allclose(scales[k], 1.0) and np.allclose(offsets[k], 0.0):
                out[k] = frame  # the first segment, before the first join: untouched
                continue
            lab = srgb_to_lab(frame)
            lab *= scales[k].astype(np.float32)
            lab += offsets[k].astype(np.float32)
            out[k] = lab_to_srgb(lab)
        return out


def _segment_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of L*, a*, b* over a segment's frames (pixels sampled evenly)."""
    per_frame = max(1, SAMPLES // max(1, len(frames)))
    samples = []
    for frame in frames:
        flat = frame.reshape(-1, 3)
        samples.append(flat[:: max(1, flat.shape[0] // per_frame)])
    lab = srgb_to_lab(np.concatenate(samples)).astype(np.float64)
    return lab.mean(axis=0), lab.std(axis=0)
