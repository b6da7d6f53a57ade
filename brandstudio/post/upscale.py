"""Resize frames to the delivery size.

Resamplers live in a string-keyed registry, :data:`UPSCALERS`; each takes one ``(H, W, 3)``
uint8 frame and a ``(width, height)`` and returns the resized frame.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.upscale import Upscale, UPSCALERS
    >>> sorted(UPSCALERS)
    ['bicubic', 'lanczos']
    >>> Upscale(64, 36).apply(np.zeros((3, 18, 32, 3), np.uint8)).shape
    (3, 36, 64, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from brandstudio.frames import check_frames

__all__ = ["UPSCALERS", "Upscale"]


def _pil(resample: int) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
    def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(Image.fromarray(frame).resize(size, resample=resample))

    return resize


#: resampling methods by name
UPSCALERS: dict[str, Callable[[np.ndarray, tuple[int, int]], np.ndarray]] = {
    "lanczos": _pil(Image.Resampling.LANCZOS),
    "bicubic": _pil(Image.Resampling.BICUBIC),
}


@dataclass(frozen=True)
class Upscale:
    """Resize every frame to ``width`` x ``height`` with ``method`` (a key of :data:`UPSCALERS`).

    It also downsizes; frames already at the size are returned unchanged (copied).
    """

    width: int
    height: int
    method: str = "lanczos"

    def __post_init__(self) -> None:
        if self.method not in UPSCALERS:
            raise ValueError(
                f"unknown upscale method {self.method!r}; use one of {', '.join(sorted(UPSCALERS))}"
            )
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")

    def apply(self, frames: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        size = (int(self.width), int(self.height))
        if frames.shape[1:3] == (size[1], size[0]):
            return frames.copy()
        resize = UPSCALERS[self.method]
        out = np.empty((frames.shape[0], size[1], size[0], 3), dtype=np.uint8)
        for i, frame in enumerate(frames):
            out[i] = resize(frame, size)
        return out
