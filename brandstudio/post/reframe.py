"""Crop frames to a delivery aspect ratio, keeping the subject in frame.

One generation serves every aspect ratio (16:9, 9:16, 1:1, 4:5): the crop is the largest
window of the target ratio, placed by ``mode``:

* ``"centre"`` — the middle of the frame (or an edge, by ``anchor``);
* ``"saliency"`` — around the most salient region (spectral residual saliency,
  :mod:`brandstudio.post.subject`);
* ``"face"`` — around the faces (NudeNet's face classes; saliency where no face is found).

For a subject mode, a few frames per shot (``samples``) are analysed and the *median* of their
subject centres places one window for the whole shot: the crop never jitters, and a wrong
detection in one frame cannot move it. The subject is put at the centre of the caption/logo
*safe area* of the target ratio (``safe_area``: margins as fractions, from
``[captions.safe_area]``), not at the crop's centre, so captions and the logo do not cover
it, and the window is clamped inside the frame. ``shots`` (start frames of the shots after the
first) gives each shot its own window.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.reframe import Reframe, delivery_size
    >>> Reframe("9:16").apply(np.zeros((2, 720, 1280, 3), np.uint8)).shape
    (2, 720, 404, 3)
    >>> delivery_size("9:16", 720), delivery_size("4:5", 720), delivery_size("16:9", 720)
    ((720, 1280), (720, 900), (1280, 720))
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from brandstudio.frames import check_frames
from brandstudio.profile.schema import parse_aspect
from brandstudio.registry import REFRAME_MODES

from .effect import Effect
from .subject import SUBJECT_FINDERS

__all__ = ["ANCHORS", "MODES", "Reframe", "crop_box", "delivery_size"]

#: where the crop window sits when the frame is wider/taller than the aspect
ANCHORS = ("center", "left", "right", "top", "bottom")
#: how the crop window is placed (``"center"`` is accepted for ``"centre"``)
MODES = ("centre", "saliency", "face")
for _mode in (*MODES, "center"):  # brand.toml also takes the US spelling
    REFRAME_MODES.register(_mode, _mode)


def _even(x: float) -> int:
    return max(2, int(x) // 2 * 2)


def delivery_size(aspect: str, short_side: int) -> tuple[int, int]:
    """``(width, height)`` of a clip in ``aspect`` whose shorter side is ``short_side``.

    Both are even (H.264 with yuv420p needs it); the long side is rounded to the nearest
    even number.
    """
    if short_side <= 0 or short_side % 2:
        raise ValueError(f"`short_side` must be a positive even number, got {short_side}")
    aw, ah = parse_aspect(aspect)
    if aw >= ah:
        long_side = round(short_side * aw / ah / 2) * 2
        return long_side, short_side
    long_side = round(short_side * ah / aw / 2) * 2
    return short_side, long_side


def crop_box(width: int, height: int, aspect: str, anchor: str = "center") -> tuple[int, int, int, int]:
    """``(left, top, crop_width, crop_height)`` of the largest ``aspect`` crop (even sizes)."""
    if anchor not in ANCHORS:
        raise ValueError(f"unknown anchor {anchor!r}; use one of {', '.join(ANCHORS)}")
    aw, ah = parse_aspect(aspect)
    if width * ah >= height * aw:  # too wide: keep the height
        ch = _even(height)
        cw = min(_even(ch * aw / ah), _even(width))
    else:  # too tall: keep the width
        cw = _even(width)
        ch = min(_even(cw * ah / aw), _even(height))
    left = {"left": 0, "right": width - cw}.get(anchor, (width - cw) // 2)
    top = {"top": 0, "bottom": height - ch}.get(anchor, (height - ch) // 2)
    return left, top, cw, ch


@dataclass(frozen=True)
class Reframe(Effect):
    """Crop every frame to ``aspect`` (``"16:9"``, ``"9:16"``, ``"1:1"``, ``"4:5"``).

    The crop is the largest window of that aspect ratio, with even dimensions. ``mode``
    ``"centre"`` places it by ``anchor`` (``"center"``, or an edge: ``"left"``/``"right"`` for
    landscape sources, ``"top"``/``"bottom"`` for portrait ones); ``"saliency"`` and ``"face"``
    place it on the subject (see the module docstring), one window per shot. Scale afterwards
    with :class:`brandstudio.post.upscale.Upscale` to :func:`delivery_size`.

    Example:
        >>> import numpy as np
        >>> frames = np.full((3, 72, 128, 3), 50, np.uint8)
        >>> frames[:, 20:40, 100:120] = 255                 # a bright subject near the right edge
        >>> out = Reframe("9:16", mode="saliency").apply(frames)
        >>> out.shape, int(out[0, 30].argmax(axis=0)[0]) > 0   # the subject is inside the crop
        ((3, 72, 40, 3), True)
    """

    aspect: str
    anchor: Literal["center", "left", "right", "top", "bottom"] = "center"
    mode: str = "centre"
    safe_area: object | None = None  # anything with top/bottom/left/right fractions (SafeArea)
    samples: int = 8
    shots: tuple[int, ...] = ()
    plan: tuple[tuple[int, int, int, int, int, int], ...] | None = None  # from planned()
    plan_size: tuple[int, int, int] | None = None  # (T, H, W) of the planned clip

    def __post_init__(self) -> None:
        parse_aspect(self.aspect)
        if self.anchor not in ANCHORS:
            raise ValueError(f"unknown anchor {self.anchor!r}; use one of {', '.join(ANCHORS)}")
        if self.mode == "center":
            object.__setattr__(self, "mode", "centre")
        if self.mode not in MODES:
            raise ValueError(f"unknown reframe mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.samples < 1:
            raise ValueError(f"`samples` must be >= 1, got {self.samples}")

    def windows(self, frames: np.ndarray) -> list[tuple[int, int, int, int, int, int]]:
        """``(first, end, left, top, crop_width, crop_height)`` for each shot."""
        frames = check_frames(frames)
        t, h, w, _ = frames.shape
        left0, top0, cw, ch = crop_box(w, h, self.aspect, self.anchor)
        bounds = [0, *sorted({int(b) for b in self.shots if 0 < int(b) < t}), t]
        out = []
        for first, end in zip(bounds[:-1], bounds[1:], strict=True):
            left, top = left0, top0
            if self.mode != "centre" and (cw < w or ch < h):
                centre = self._subject(frames[first:end])
                if centre is not None:
                    left, top = self._place(centre, w, h, cw, ch)
            out.append((first, end, left, top, cw, ch))
        return out

    def planned(self, frames: np.ndarray) -> Reframe:
        """A copy whose windows are fixed from the whole clip ``frames``, for streaming.

        The post stage streams chunks of frames (:mod:`brandstudio.post.stream`); a subject
        window must come from the whole shot, so it is planned once on the generated clip and
        each chunk is cut by its frames' positions (:meth:`apply_at`).
        """
        frames = check_frames(frames)
        return replace(self, plan=tuple(self.windows(frames)), plan_size=frames.shape[:3])

    def _subject(self, shot: np.ndarray) -> tuple[float, float] | None:

        find = SUBJECT_FINDERS[self.mode]
        picks = np.unique(np.linspace(0, len(shot) - 1, min(self.samples, len(shot))).round().astype(int))
        found = [c for c in (find(shot[i]) for i in picks) if c is not None]
        if not found:
            return None
        xs, ys = zip(*found, strict=True)
        return float(np.median(xs)), float(np.median(ys))

    def _place(self, centre: tuple[float, float], w: int, h: int, cw: int, ch: int) -> tuple[int, int]:
        """Window origin that puts ``centre`` at the middle of the safe area, clamped inside the frame."""
        sa = self.safe_area
        fx = 0.5 if sa is None else (sa.left + 1 - sa.right) / 2
        fy = 0.5 if sa is None else (sa.top + 1 - sa.bottom) / 2
        left = int(round(centre[0] - fx * cw))
        top = int(round(centre[1] - fy * ch))
        return min(max(left, 0), w - cw), min(max(top, 0), h - ch)

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Crop the whole clip ``frames`` (planned on it unless :meth:`planned` fixed the windows)."""
        return self.apply_at(frames, 0)

    def apply_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        """Crop ``frames``, which are frames ``start, start + 1, ...`` of the planned clip."""
        frames = check_frames(frames)
        stop = start + frames.shape[0]
        if self.plan is not None:
            t, h, w = self.plan_size
            if start < 0 or stop > t or frames.shape[1:3] != (h, w):
                raise ValueError(
                    f"frames {start}..{stop - 1} of {frames.shape[2]}x{frames.shape[1]} are not part of "
                    f"the planned clip ({t} frames of {w}x{h})"
                )
            wins = self.plan
        elif start == 0:
            wins = self.windows(frames)
        elif self.mode == "centre":  # a centre window does not depend on the frames
            wins = [(start, stop, *self.windows(frames)[0][2:])]
        else:
            raise ValueError(
                "a chunk after the first needs a planned Reframe: use Reframe(...).planned(clip)"
            )
        _, _, _, _, cw, ch = wins[0]
        out = np.empty((frames.shape[0], ch, cw, 3), np.uint8)
        for first, end, left, top, cw, ch in wins:
            a, b = max(first, start), min(end, stop)
            if a < b:
                out[a - start : b - start] = frames[a - start : b - start, top : top + ch, left : left + cw]
        return out
