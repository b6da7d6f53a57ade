"""Crop frames to a delivery aspect ratio.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.reframe import Reframe, delivery_size
    >>> Reframe("9:16").apply(np.zeros((2, 720, 1280, 3), np.uint8)).shape
    (2, 720, 404, 3)
    >>> delivery_size("9:16", 720), delivery_size("4:5", 720), delivery_size("16:9", 720)
    ((720, 1280), (720, 900), (1280, 720))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from brandstudio.frames import check_frames
from brandstudio.profile.schema import parse_aspect

__all__ = ["ANCHORS", "Reframe", "crop_box", "delivery_size"]

#: where the crop window sits when the frame is wider/taller than the aspect
ANCHORS = ("center", "left", "right", "top", "bottom")


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
class Reframe:
    """Crop every frame to ``aspect`` (``"16:9"``, ``"9:16"``, ``"1:1"``, ``"4:5"``).

    The crop is the largest window of that aspect ratio, with even dimensions, placed by
    ``anchor`` (``"center"``, or an edge: ``"left"``/``"right"`` for landscape sources,
    ``"top"``/``"bottom"`` for portrait ones). Scale afterwards with
    :class:`brandstudio.post.upscale.Upscale` to :func:`delivery_size`.
    """

    aspect: str
    anchor: Literal["center", "left", "right", "top", "bottom"] = "center"

    def __post_init__(self) -> None:
        parse_aspect(self.aspect)
        if self.anchor not in ANCHORS:
            raise ValueError(f"unknown anchor {self.anchor!r}; use one of {', '.join(ANCHORS)}")

    def apply(self, frames: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        _, h, w, _ = frames.shape
        left, top, cw, ch = crop_box(w, h, self.aspect, self.anchor)
        return np.ascontiguousarray(frames[:, top : top + ch, left : left + cw])
