"""Cut shots together: hard cuts and crossfades, on :data:`~brandstudio.frames.Frames`.

A multi-shot template's shots are generated one by one (see :mod:`brandstudio.generation.shots`)
and joined here into one clip *at the model's frame rate, before the post stage*. Cutting
there rather than after the retime to the delivery rate means:

- the post stage (grade, reframe, upscale: the expensive part) runs once over the final edit,
  not twice over every crossfade's overlapping frames;
- captions, logo, label and the music bed run across the whole clip, cuts included;
- the retime to the delivery rate picks the nearest source frame and never blends, so a hard
  cut stays a hard cut and a crossfade keeps the blends made here.

Conventions, for ``clips`` = shots already trimmed to the frames they show:

- ``crossfades[i]`` is the number of frames of the crossfade *into* shot ``i`` (0: a hard
  cut; ``crossfades[0]`` must be 0). A crossfade of ``k`` frames overlaps the last ``k``
  frames of shot ``i - 1`` with the first ``k`` frames of shot ``i``, so the clip is
  ``sum(len(clip)) - sum(crossfades)`` frames long.
- Overlap frame ``j`` (``0 <= j < k``) is ``A * (1 - a) + B * a`` with ``a = (j + 1) / (k + 1)``,
  rounded to the nearest 8-bit level (exact integer arithmetic): every overlap frame is a
  blend, neither endpoint repeats a pure frame, and for odd ``k`` the middle frame is the
  50/50 mix.
- At a hard cut into shot ``i`` starting at clip frame ``n + 1``, frame ``n`` is shot ``i - 1``'s
  last frame and frame ``n + 1`` is shot ``i``'s first, unchanged.

Why numpy and not moviepy: moviepy 2 can express this (a ``CompositeVideoClip`` of the shots at
their start times with ``CrossFadeIn`` on the incoming one, or ``concatenate_videoclips(...,
padding=-k / fps, method="compose")``), and both were measured against this module
(``python bench/cut.py``; bench/RESULTS.md, "Cutting shots"). moviepy addresses frames by float
time, so frame boundaries carry rounding error: at 24, 25 and 30 fps its blend weights come out a
level off, and with ``concatenate_videoclips`` at 25 fps the first frame *after* a crossfade is
still blended (249 for a fade to a constant 250, 1 for a fade to 0); it also truncates instead of
rounding. It composites every frame through a float mask in Python and was 9-47x slower on the
2-core bench machine (18 vs 857 frames/s at 1280x720). The slice-and-blend here copies each frame
once, blends only the overlap in integers, and is exact by construction, which the tests check
pixel by pixel.

Example:
    >>> import numpy as np
    >>> from brandstudio.generation.cut import cut_together
    >>> a = np.full((4, 2, 2, 3), 0, np.uint8)
    >>> b = np.full((4, 2, 2, 3), 200, np.uint8)
    >>> clip = cut_together([a, b], [0, 3])       # a 3-frame crossfade into b
    >>> clip.shape[0]                             # 4 + 4 - 3
    5
    >>> [int(v) for v in clip[:, 0, 0, 0]]        # 0, then 1/4, 2/4, 3/4 of the way, then b
    [0, 50, 100, 150, 200]
    >>> [int(v) for v in cut_together([a, b], [0, 0])[3:5, 0, 0, 0]]   # a hard cut
    [0, 200]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brandstudio.frames import check_frames

__all__ = ["crossfade", "cut_together"]


def crossfade(tail: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Blend ``tail`` (the end of shot A) into ``head`` (the start of shot B), frame by frame.

    Both are ``uint8`` ``(k, H, W, 3)``; frame ``j`` of the result is
    ``round(tail[j] * (k + 1 - (j + 1)) / (k + 1) + head[j] * (j + 1) / (k + 1))``, computed in
    integers (round half up), so it is exact and reproducible.

    Example:
        >>> import numpy as np
        >>> t = np.zeros((1, 1, 1, 3), np.uint8); h = np.full((1, 1, 1, 3), 255, np.uint8)
        >>> crossfade(t, h)[0, 0, 0].tolist()       # k = 1: the midpoint, 127.5 rounds up
        [128, 128, 128]
    """
    if tail.shape != head.shape:
        raise ValueError(f"a crossfade needs two runs of the same shape, got {tail.shape} and {head.shape}")
    k = tail.shape[0]
    steps = k + 1
    m = np.arange(1, steps, dtype=np.uint32).reshape(k, 1, 1, 1)  # weight of `head`, in 1/steps
    blended = (tail.astype(np.uint32) * (steps - m) + head.astype(np.uint32) * m + steps // 2) // steps
    return blended.astype(np.uint8)


def cut_together(clips: Sequence[np.ndarray], crossfades: Sequence[int]) -> np.ndarray:
    """Join ``clips`` (each ``uint8`` ``(T, H, W, 3)``, one size) into one clip.

    ``crossfades[i]`` frames of crossfade into clip ``i`` (0 = hard cut). Each crossfade must be
    shorter than both clips it joins, and two crossfades may not overlap inside one clip.

    Raises:
        ValueError: the clips or crossfades do not fit together (the caller, which knows the
            template, validates them first and reports a TemplateError).

    Example:
        >>> import numpy as np
        >>> shots = [np.full((3, 2, 2, 3), v, np.uint8) for v in (10, 20, 30)]
        >>> [int(v) for v in cut_together(shots, [0, 0, 0])[:, 0, 0, 0]]
        [10, 10, 10, 20, 20, 20, 30, 30, 30]
    """
    if len(clips) == 0:
        raise ValueError("no clips to cut together")
    if len(crossfades) != len(clips):
        raise ValueError(f"{len(clips)} clips need {len(clips)} crossfade lengths, got {len(crossfades)}")
    if crossfades[0] != 0:
        raise ValueError(f"the first clip has nothing to crossfade from, got {crossfades[0]} frames")
    clips = [check_frames(c, name=f"clips[{i}]") for i, c in enumerate(clips)]
    size = clips[0].shape[1:]
    for i, c in enumerate(clips):
        if c.shape[1:] != size:
            raise ValueError(f"clips[{i}] is {c.shape[1:]}, clips[0] is {size}: all shots must have one size")
    for i, k in enumerate(crossfades):
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"crossfades[{i}] must be an integer >= 0, got {k!r}")
    for i in range(1, len(clips)):
        # frames of clip i-1 left after its own crossfade-in, and of clip i after its crossfade-out
        room_prev = len(clips[i - 1]) - crossfades[i - 1]
        room_next = len(clips[i]) - (crossfades[i + 1] if i + 1 < len(clips) else 0)
        if crossfades[i] >= room_prev or crossfades[i] >= room_next:
            raise ValueError(
                f"a {crossfades[i]}-frame crossfade into clips[{i}] is too long for clips of "
                f"{len(clips[i - 1])} and {len(clips[i])} frames"
            )

    total = sum(len(c) for c in clips) - sum(int(k) for k in crossfades)
    out = np.empty((total, *size), dtype=np.uint8)
    pos = 0
    for i, clip in enumerate(clips):
        k_in = int(crossfades[i])
        if k_in:  # the overlap: already holds the previous clip's tail at out[pos - k_in : pos]
            out[pos - k_in : pos] = crossfade(out[pos - k_in : pos], clip[:k_in])
        body = clip[k_in:]
        out[pos : pos + len(body)] = body
        pos += len(body)  # the next clip's crossfade blends over this clip's tail in place
    assert pos == total
    return out
