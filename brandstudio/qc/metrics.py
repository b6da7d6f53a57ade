"""What QC measures on frames: dominant colours, their ΔE2000 to the brand palette, flicker.

Pure functions on uint8 frames (one ``(H, W, 3)`` frame, or :data:`~brandstudio.frames.Frames`):

* :func:`dominant_colours`: the ``k`` colours that cover most of a frame, with their pixel
  share, from PIL's median-cut (or fast-octree) quantiser on a ~128 px copy of the frame.
* :func:`palette_delta_e`: per frame, the pixel-share-weighted mean ΔE2000 (colour-science,
  ``method="CIE 2000"``) of its dominant colours to the nearest brand swatch.
* :func:`flicker`: mean absolute difference of consecutive frames, in 8-bit levels, per
  transition. QC measures it on the ~128 px analysis frames, so brightness pumping counts
  fully and sensor grain little.
* :func:`footage_stats`: what says whether there is footage at all: each frame's median luma
  (black), the spread of its colours (blank: one colour), and how much each pixel changes
  over the clip (frozen). Robust statistics (medians, percentiles), so a logo, captions or a
  label drawn over black, one-colour or frozen footage do not hide it.

Example:
    >>> import numpy as np
    >>> from brandstudio.qc import dominant_colours, flicker
    >>> frame = np.zeros((64, 64, 3), np.uint8); frame[:, :16] = (242, 230, 216)
    >>> colours, weights = dominant_colours(frame, 5)
    >>> colours.tolist(), weights.round(2).tolist()
    ([[0, 0, 0], [242, 230, 216]], [0.75, 0.25])
    >>> flicker(np.stack([frame, frame, 255 - frame])).round(1).tolist()
    [0.0, 242.2]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from brandstudio.frames import check_frames, srgb_to_lab

__all__ = [
    "ANALYSIS_SIZE",
    "QUANTIZERS",
    "dominant_colours",
    "downscale",
    "flicker",
    "footage_stats",
    "hex_to_rgb",
    "nearest_delta_e",
    "palette_delta_e",
]

#: longer side (px) of the copies that colour and flicker are measured on
ANALYSIS_SIZE = 128
#: PIL quantisers by name (``method=`` of :func:`dominant_colours`)
QUANTIZERS = {"median-cut": Image.Quantize.MEDIANCUT, "fast-octree": Image.Quantize.FASTOCTREE}


def downscale(frame: np.ndarray, longer: int) -> np.ndarray:
    """``frame`` box-downscaled so that its longer side is ``longer`` px (unchanged if smaller)."""
    h, w = frame.shape[:2]
    if max(h, w) <= longer:
        return frame
    s = longer / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX))


def dominant_colours(
    frame: np.ndarray, k: int = 5, *, method: str = "median-cut"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` dominant colours of one ``(H, W, 3)`` uint8 frame and their pixel shares.

    The frame is box-downscaled to ~128 px and quantised with PIL (``method``:
    ``"median-cut"`` or ``"fast-octree"``, no dithering). Returns ``(colours, weights)``:
    uint8 ``(m, 3)`` sRGB and float ``(m,)`` summing to 1, most common first; ``m <= k``
    (fewer when the frame has fewer distinct colours).
    """
    if method not in QUANTIZERS:
        raise ValueError(f"`method` must be one of {sorted(QUANTIZERS)}, got {method!r}")
    if not 1 <= int(k) <= 256:
        raise ValueError(f"`k` must be in 1..256, got {k}")
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"`frame` must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    small = np.ascontiguousarray(downscale(frame, ANALYSIS_SIZE))
    q = Image.fromarray(small).quantize(colors=int(k), method=QUANTIZERS[method], dither=Image.Dither.NONE)
    counts = q.getcolors(maxcolors=256) or []
    pal = np.asarray(q.getpalette()[: 3 * 256], dtype=np.uint8).reshape(-1, 3)
    counts = sorted(counts, key=lambda c: (-c[0], c[1]))
    colours = np.array([pal[i] for _, i in counts], dtype=np.uint8).reshape(-1, 3)
    weights = np.array([n for n, _ in counts], dtype=np.float64)
    return colours, weights / weights.sum()


def hex_to_rgb(palette: Sequence[str]) -> np.ndarray:
    """``["#RRGGBB", ...]`` -> uint8 ``(n, 3)`` sRGB."""
    return np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in palette], dtype=np.uint8)


def nearest_delta_e(colours: np.ndarray, palette_lab: np.ndarray) -> np.ndarray:
    """ΔE2000 of each uint8 sRGB colour ``(n, 3)`` to its nearest swatch of ``palette_lab``
    (CIELAB ``(m, 3)``): float ``(n,)``."""
    import colour  # colour-science: a slow import, needed only when a palette is measured

    lab = srgb_to_lab(colours).astype(np.float64)
    palette_lab = np.asarray(palette_lab, dtype=np.float64)
    de = colour.delta_E(lab[:, None, :], palette_lab[None, :, :], method="CIE 2000")
    return np.asarray(de, dtype=np.float64).reshape(len(colours), len(palette_lab)).min(axis=1)


def palette_delta_e(
    frames: np.ndarray, palette: Sequence[str], k: int = 5, *, method: str = "median-cut"
) -> np.ndarray:
    """Per frame: the pixel-share-weighted mean ΔE2000 of its ``k`` dominant colours to the
    nearest swatch of ``palette`` (hex strings). Returns float ``(T,)``; 0 means every
    dominant colour is a brand swatch.
    """
    frames = check_frames(frames)
    if not palette:
        raise ValueError("`palette` is empty: there is nothing to measure against")
    palette_lab = srgb_to_lab(hex_to_rgb(palette))
    out = np.empty(len(frames))
    for i, frame in enumerate(frames):
        colours, weights = dominant_colours(frame, k, method=method)
        out[i] = float(np.dot(weights, nearest_delta_e(colours, palette_lab)))
    return out


def flicker(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference (8-bit levels, over pixels and channels) between each frame and
    the one before it: float ``(T - 1,)``. A still clip gives 0, alternating black and white 255.
    """
    frames = check_frames(frames)
    if len(frames) < 2:
        return np.zeros(0)
    out = np.empty(len(frames) - 1)
    for i in range(1, len(frames)):
        out[i - 1] = np.abs(frames[i].astype(np.int16) - frames[i - 1].astype(np.int16)).mean()
    return out


#: Rec. 709 luma weights (sRGB primaries)
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def footage_stats(frames: np.ndarray) -> dict[str, float]:
    """Whether ``frames`` (uint8 ``(T, H, W, 3)``, best the ~128 px analysis copies) hold footage.

    Returns (8-bit levels):

    * ``luma``: the 90th percentile over frames of each frame's *median* luma. Low when nine
      frames in ten are black: the median ignores whatever covers less than half the frame
      (a logo, captions, the AI label), the percentile a fade or a flash.
    * ``spread``: the 90th percentile over frames of each frame's colour spread, the largest
      over R, G, B of (90th - 10th percentile of the pixels). Near 0 when at least 80 % of
      nine frames in ten is one colour, overlays or not.
    * ``motion``: the median over pixels of each pixel's standard deviation over the clip
      (luma). Near 0 when the picture does not move: static overlays and captions that
      change cover too few pixels to move the median, and frames repeated by a frame-rate
      change do not lower it (a per-transition measure would read them as still).
      ``nan`` for a single frame.

    Example:
        >>> black = np.zeros((4, 36, 64, 3), np.uint8); black[:, 2:8, 2:20] = 255  # a "logo"
        >>> {k: round(v, 1) for k, v in footage_stats(black).items()}
        {'luma': 0.0, 'spread': 0.0, 'motion': 0.0}
        >>> noise = np.random.default_rng(0).integers(0, 256, (4, 36, 64, 3), dtype=np.uint8)
        >>> {k: v > 20 for k, v in footage_stats(noise).items()}
        {'luma': True, 'spread': True, 'motion': True}
    """
    frames = check_frames(frames)
    t = len(frames)
    pixels = frames.reshape(t, -1, 3)
    luma = pixels.astype(np.float32) @ _LUMA  # (T, pixels)
    low, high = np.percentile(pixels, [10, 90], axis=1)  # (T, 3) each
    spread = (high - low).max(axis=1)
    motion = float(np.median(luma.std(axis=0))) if t > 1 else float("nan")
    return {
        "luma": float(np.percentile(np.median(luma, axis=1), 90)),
        "spread": float(np.percentile(spread, 90)),
        "motion": motion,
    }
