"""Drawing on frames: alpha compositing, and placing an image in a corner of the safe area.

Shared by the overlay effects (:mod:`.logo`, :mod:`.label`, :mod:`.captions`). Overlays are
drawn inside the safe area (margins as fractions of the frame; see ``[captions.safe_area]`` in
the profile) and alpha-composited in float with straight (non-premultiplied) RGBA sources:
``out = src * a + dst * (1 - a)``.

Example:
    >>> import numpy as np
    >>> frames = np.zeros((1, 4, 4, 3), np.uint8)
    >>> dot = np.full((1, 1, 4), 255, np.uint8)
    >>> composite(frames, dot, 1, 2)[0, 2, 1].tolist()
    [255, 255, 255]
    >>> corner_xy("bottom-right", 10, 10, 100, 100, (0.05, 0.05, 0.05, 0.05))
    (85, 85)
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

import numpy as np

from brandstudio.frames import check_frames

from .effect import Effect

__all__ = ["CORNERS", "Corner", "Margins", "Overlay", "as_margins", "composite", "corner_xy", "rendered_for"]

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
Margins = tuple[float, float, float, float]  # top, bottom, left, right (fractions)


def composite(frames: np.ndarray, rgba: np.ndarray, x: int, y: int, opacity: float = 1.0) -> np.ndarray:
    """Alpha-composite a straight-alpha RGBA uint8 image onto every frame, in place.

    ``(x, y)`` is where the image's top-left corner goes; parts outside the frame are
    clipped. Returns ``frames``.
    """
    _, H, W, _ = frames.shape
    h, w = rgba.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1 or opacity <= 0:
        return frames
    part = rgba[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
    alpha = part[..., 3:4] * np.float32(opacity / 255.0)
    premult = part[..., :3] * alpha + np.float32(0.5)  # + 0.5: round on the cast below
    inv = np.float32(1.0) - alpha
    for i in range(frames.shape[0]):
        region = frames[i, y0:y1, x0:x1]
        region[...] = np.minimum(premult + region * inv, 255.0).astype(np.uint8)
    return frames


def rendered_for(overlay, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """``overlay.render(width, height)``, kept on the (frozen) overlay: a streamed clip applies it
    per chunk, and the image only changes with the frame size."""
    cache = overlay.__dict__.setdefault("_rendered", {})
    if (width, height) not in cache:
        cache[(width, height)] = overlay.render(width, height)
    return cache[(width, height)]


def as_margins(margins) -> Margins:
    """Accept ``(top, bottom, left, right)`` or anything with those attributes (a ``SafeArea``)."""
    if hasattr(margins, "top"):
        margins = (margins.top, margins.bottom, margins.left, margins.right)
    m = tuple(float(v) for v in margins)
    if len(m) != 4 or any(not 0 <= v < 0.5 for v in m):
        raise ValueError(
            f"`margins` must be 4 fractions (top, bottom, left, right) in [0, 0.5), got {margins}"
        )
    return m  # type: ignore[return-value]


def corner_xy(position: str, w: int, h: int, W: int, H: int, margins: Margins) -> tuple[int, int]:
    if position not in CORNERS:
        raise ValueError(f"`position` must be one of {', '.join(CORNERS)}, got {position!r}")
    top, bottom, left, right = margins
    vert, horiz = position.split("-")
    x = round(left * W) if horiz == "left" else W - round(right * W) - w
    y = round(top * H) if vert == "top" else H - round(bottom * H) - h
    return x, y


# --------------------------------------------------------------------------- logo


# --------------------------------------------------------------------------- AI label


class Overlay(Effect):
    """An effect that draws one RGBA image at one place on every frame (the logo, the label).

    Subclasses say what to draw with ``render(width, height) -> (rgba, x, y)``; it is rendered
    once per frame size and composited into each chunk the stream owns (no copy of the chunk).
    """

    @abstractmethod
    def render(self, width: int, height: int) -> tuple[np.ndarray, int, int]:
        """The RGBA image to draw and its top-left corner in a ``width`` x ``height`` frame."""

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Draw the overlay on a copy of ``frames``."""
        out = check_frames(frames).copy()
        return self.apply_inplace_at(out, 0)

    def apply_inplace_at(self, frames: np.ndarray, start: int = 0) -> np.ndarray:
        """Draw the overlay into ``frames`` (uint8, writable; the post stream's own chunk)."""
        img, x, y = rendered_for(self, frames.shape[2], frames.shape[1])
        return composite(frames, img, x, y, getattr(self, "opacity", 1.0))
