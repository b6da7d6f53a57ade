"""The one frame layout used between stages, and conversions to and from it.

A clip travels between stages as ``Frames``: a numpy ``uint8`` array of shape
``(T, H, W, 3)`` (time, height, width, RGB), C-contiguous, sRGB-encoded.
Stages are pure functions ``Frames -> Frames``; only loaders and ``encode.py`` touch disk.

The one sRGB <-> CIELAB (D65) conversion lives here too (:func:`srgb_to_lab`,
:func:`lab_to_srgb`), for colour matching, saliency and the QC palette distance. It is a
float32 numpy one (sRGB decoded by a table, 3x3 matrix, cube root; encoded through a 16-bit
table), within 0.05 of colour-science's ``XYZ_to_Lab(sRGB_to_XYZ(...))`` and about 10x faster
on frames.

Example:
    >>> import numpy as np
    >>> from brandstudio.frames import check_frames, to_float, to_uint8
    >>> clip = np.zeros((4, 16, 32, 3), dtype=np.uint8)
    >>> check_frames(clip).shape
    (4, 16, 32, 3)
    >>> to_uint8(to_float(clip) + 0.5)[0, 0, 0].tolist()
    [128, 128, 128]
"""

from __future__ import annotations

import numpy as np

Frames = np.ndarray  # uint8, (T, H, W, 3)

__all__ = [
    "Frames",
    "apply_colour_matrix",
    "check_frames",
    "from_unit_float",
    "lab_to_srgb",
    "srgb_to_lab",
    "to_float",
    "to_uint8",
]


def check_frames(frames: np.ndarray, *, name: str = "frames") -> np.ndarray:
    """Return ``frames`` if it is in the frame layout, else raise ``ValueError`` saying why."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"`{name}` must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"`{name}` must be uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"`{name}` must have shape (T, H, W, 3), got {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError(f"`{name}` holds no frames")
    return np.ascontiguousarray(frames)


def to_float(frames: np.ndarray) -> np.ndarray:
    """uint8 frames -> float32 in [0, 1]."""
    return frames.astype(np.float32) * np.float32(1.0 / 255.0)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float frames in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(frames, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def from_unit_float(video: np.ndarray) -> np.ndarray:
    """A pipeline's float output ``(T, H, W, 3)`` or ``(1, T, H, W, 3)`` in [0, 1] -> Frames."""
    video = np.asarray(video)
    if video.ndim == 5:
        if video.shape[0] != 1:
            raise ValueError(f"expected one video, got a batch of {video.shape[0]}")
        video = video[0]
    return check_frames(to_uint8(video))


# -- sRGB <-> CIELAB (D65), float32 ---------------------------------------------------------

_M_RGB_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    np.float32,
)
_M_XYZ_RGB = np.linalg.inv(_M_RGB_XYZ.astype(np.float64)).astype(np.float32)
_WHITE = np.array([0.95047, 1.0, 1.08883], np.float32)  # D65, 2°
_EPS = (6 / 29) ** 3
_K = 1 / (3 * (6 / 29) ** 2)


def _decode(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


_DECODE8 = _decode(np.arange(256) / 255.0).astype(np.float32)  # uint8 -> linear
_ENC_BITS = 16
_lin = np.arange(2**_ENC_BITS) / (2**_ENC_BITS - 1)
_ENCODE16 = np.clip(
    np.rint(255 * np.where(_lin <= 0.0031308, 12.92 * _lin, 1.055 * _lin ** (1 / 2.4) - 0.055)), 0, 255
).astype(np.uint8)  # linear (16-bit) -> uint8 sRGB
del _lin


def apply_colour_matrix(x: np.ndarray, matrix: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """``x @ matrix.T (+ offset)`` for ``(..., 3)`` float32 ``x``, channel by channel (numpy's
    matmul with an inner size of 3 is slow and erratic: 10x slower on a 2-D ``(n, 3)`` array).

    Example:
        >>> apply_colour_matrix(np.ones((2, 3), np.float32), np.eye(3) * 2, offset=[0, 0, 1]).tolist()
        [[2.0, 2.0, 3.0], [2.0, 2.0, 3.0]]
    """
    m = np.asarray(matrix, np.float32)
    out = np.empty(x.shape, np.float32)
    for j in range(3):
        c = x[..., 0] * m[j, 0]
        c += x[..., 1] * m[j, 1]
        c += x[..., 2] * m[j, 2]
        if offset is not None:
            c += np.float32(offset[j])
        out[..., j] = c
    return out


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB ``(..., 3)`` -> float32 CIELAB (D65) ``(..., 3)``.

    Example:
        >>> srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0]], np.uint8)).round(2).tolist()
        [[100.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1:] != (3,):
        raise ValueError(f"`rgb` must be uint8 sRGB (..., 3), got {rgb.dtype} {rgb.shape}")
    lin = _DECODE8[rgb]
    xyz = apply_colour_matrix(lin, _M_RGB_XYZ / _WHITE[:, None])
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz * np.float32(_K) + np.float32(4 / 29))
    out = np.empty_like(f)
    out[..., 0] = 116 * f[..., 1] - 16
    out[..., 1] = 500 * (f[..., 0] - f[..., 1])
    out[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return out


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """float CIELAB (D65) ``(..., 3)`` -> uint8 sRGB, out-of-gamut colours clipped.

    Example:
        >>> lab_to_srgb(srgb_to_lab(np.array([12, 128, 250], np.uint8))).tolist()
        [12, 128, 250]
    """
    lab = np.asarray(lab, np.float32)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > np.float32(6 / 29), f * f * f, (f - np.float32(4 / 29)) / np.float32(_K))
    lin = apply_colour_matrix(xyz, _M_XYZ_RGB * _WHITE[None, :])
    idx = np.clip(lin * np.float32(2**_ENC_BITS - 1) + np.float32(0.5), 0, 2**_ENC_BITS - 1).astype(np.int32)
    return _ENCODE16[idx]
