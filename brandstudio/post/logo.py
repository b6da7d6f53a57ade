"""The brand logo, composited into a corner of the safe area.

The logo is resized in premultiplied float so transparent pixels never bleed their
(arbitrary) colour into the edge, then alpha-composited (:func:`brandstudio.post.overlay.composite`).

Example:
    >>> import numpy as np
    >>> mark = np.zeros((10, 20, 4), np.uint8); mark[..., 0] = 255; mark[..., 3] = 255
    >>> out = Logo(mark, position="top-left", scale=0.5, opacity=1.0, margins=(0, 0, 0, 0)).apply(
    ...     np.zeros((1, 40, 40, 3), np.uint8))
    >>> out[0, 2, 2].tolist(), out[0, 30, 30].tolist()
    ([255, 0, 0], [0, 0, 0])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from brandstudio.errors import AssetError
from brandstudio.profile.assets import ASSET_CHECKS, read_image

from .overlay import CORNERS, Corner, Margins, Overlay, as_margins, corner_xy

__all__ = ["Logo", "load_logo"]


def load_logo(path: str | Path) -> np.ndarray:
    """Read a logo image (PNG with alpha, or any format Pillow reads) as RGBA uint8 ``(h, w, 4)``.

    Raises :class:`~brandstudio.errors.AssetError` if the file is missing or not an image.
    """

    path = Path(path)
    # a FIFO, folder or unreadable file, a decompression bomb: AssetError, before decoding
    with read_image(path, what="the logo", fix="export the logo again as a PNG with an alpha channel") as img:
        rgba = np.asarray(img.convert("RGBA"))
    if rgba.shape[0] < 2 or rgba.shape[1] < 2:
        raise AssetError(
            f"the logo {path.name} is too small ({rgba.shape[1]}x{rgba.shape[0]})", file=str(path)
        )
    return np.ascontiguousarray(rgba)



def _resize_rgba(rgba: np.ndarray, width: int, height: int) -> np.ndarray:
    """LANCZOS resize in premultiplied float (no dark/coloured fringes at the edges)."""

    a = rgba[..., 3].astype(np.float32) / 255.0
    channels = [rgba[..., c].astype(np.float32) * a for c in range(3)] + [a * 255.0]
    size = (width, height)
    res = [np.asarray(Image.fromarray(ch).resize(size, Image.Resampling.LANCZOS)) for ch in channels]
    alpha = np.clip(res[3], 0, 255)
    safe = np.maximum(alpha / 255.0, 1e-6)
    rgb = [np.where(alpha > 0.5, np.clip(ch / safe, 0, 255), 0) for ch in res[:3]]
    return np.clip(np.rint(np.stack(rgb + [alpha], axis=-1)), 0, 255).astype(np.uint8)



@dataclass(frozen=True, eq=False)
class Logo(Overlay):
    """Composite a logo into a corner of the safe area.

    Args:
        rgba: from :func:`load_logo`.
        position: ``"top-left"``, ``"top-right"``, ``"bottom-left"`` or ``"bottom-right"``.
        scale: logo width as a fraction of the frame's shorter side.
        opacity: 0..1, multiplies the logo's alpha.
        margins: the safe area, ``(top, bottom, left, right)`` fractions or a ``SafeArea``.
    """

    rgba: np.ndarray
    position: Corner = "top-right"
    scale: float = 0.18
    opacity: float = 0.9
    margins: Margins | object = (0.05, 0.05, 0.05, 0.05)

    def __post_init__(self) -> None:
        rgba = np.asarray(self.rgba)
        if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise ValueError(f"`rgba` must be a uint8 (h, w, 4) array, got {rgba.dtype} {rgba.shape}")
        if not 0 < self.scale <= 1:
            raise ValueError(f"`scale` must be in (0, 1], got {self.scale}")
        if not 0 <= self.opacity <= 1:
            raise ValueError(f"`opacity` must be in [0, 1], got {self.opacity}")
        if self.position not in CORNERS:
            raise ValueError(f"`position` must be one of {', '.join(CORNERS)}, got {self.position!r}")
        object.__setattr__(self, "margins", as_margins(self.margins))

    def render(self, width: int, height: int) -> tuple[np.ndarray, int, int]:
        """The resized logo and its top-left corner in a ``width`` x ``height`` frame."""
        w = max(2, round(self.scale * min(width, height)))
        h = max(2, round(w * self.rgba.shape[0] / self.rgba.shape[1]))
        img = _resize_rgba(self.rgba, w, h)
        x, y = corner_xy(self.position, w, h, width, height, self.margins)
        return img, x, y



ASSET_CHECKS.register("logo", load_logo)
