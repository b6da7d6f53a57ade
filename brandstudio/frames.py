"""The one frame layout used between stages, and conversions to and from it.

A clip travels between stages as ``Frames``: a numpy ``uint8`` array of shape
``(T, H, W, 3)`` (time, height, width, RGB), C-contiguous, sRGB-encoded.
Stages are pure functions ``Frames -> Frames``; only loaders and ``encode.py`` touch disk.

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

__all__ = ["Frames", "check_frames", "from_unit_float", "to_float", "to_uint8"]


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
