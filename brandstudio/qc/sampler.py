"""Sampling a clip for QC as its frames stream past, so QC never needs the whole clip in memory.

:class:`QCCollector` keeps an analysis-size copy (~128 px) of every frame (for the palette
samples and the frame-to-frame flicker), a thumbnail of a few (for the HTML report) and
:data:`CLIP_FRAMES` evenly spaced frames at :data:`CLIP_SIZE` (for the CLIP style and prompt
checks, :mod:`brandstudio.qc.style`). A render hands it to the streamed post stage as an
observer; :func:`brandstudio.qc.check_file` fills it from a decoded file;
:func:`brandstudio.qc.report` measures it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from brandstudio.errors import QCError

from .metrics import ANALYSIS_SIZE, downscale

__all__ = ["CLIP_FRAMES", "CLIP_SIZE", "N_THUMBS", "THUMB_SIZE", "QCCollector", "clip_size"]

#: longer side (px) of the report's thumbnails
THUMB_SIZE = 240
#: thumbnails shown in the HTML report
N_THUMBS = 6
#: frames kept for the CLIP checks, evenly spaced over the clip
CLIP_FRAMES = 8
#: shorter side (px) the CLIP frames are kept at: what every CLIP takes (224 px; 336 px for ViT-L/14-336)
CLIP_SIZE = 336


def clip_size(frame: np.ndarray) -> np.ndarray:
    """``frame`` downscaled (bicubic, antialiased) so that its shorter side is :data:`CLIP_SIZE`
    px (unchanged if smaller): what the CLIP checks keep of a frame and of a reference still."""
    h, w = frame.shape[:2]
    if min(h, w) <= CLIP_SIZE:
        return frame
    s = CLIP_SIZE / min(h, w)
    size = (max(CLIP_SIZE, round(w * s)), max(CLIP_SIZE, round(h * s)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BICUBIC))


class QCCollector:
    """A stream observer that keeps what QC measures, so QC never needs the whole delivered clip.

    Give it to a streamed post stage (:func:`brandstudio.post.stream.run_stream`) as an
    observer, ``collector(start, frames)`` with the chunks in order, then pass it to
    :func:`brandstudio.qc.report` in place of the frames. ``expected`` (the clip's frame count,
    if known) spreads the thumbnails and the ``clip_frames`` CLIP frames over the whole clip;
    without it the CLIP frames are every ``2**k``-th frame, ``k`` growing as the clip does.

    Example:
        >>> import numpy as np
        >>> from brandstudio.qc import QCCollector, flicker
        >>> col = QCCollector(expected=4)
        >>> col(0, np.zeros((2, 72, 128, 3), np.uint8)); col(2, np.full((2, 72, 128, 3), 9, np.uint8))
        >>> col.frames, flicker(np.stack(col.analysis_frames)).tolist()
        (4, [0.0, 9.0, 0.0])
    """

    def __init__(self, expected: int = 0, clip_frames: int = CLIP_FRAMES) -> None:
        self._small: list[np.ndarray] = []
        self._thumbs: dict[int, np.ndarray] = {}
        self._stride = max(1, expected // (4 * N_THUMBS))
        self._shape: tuple[int, int] | None = None
        self._clip: dict[int, np.ndarray] = {}
        self._clip_n = max(1, int(clip_frames))
        self._clip_stride = 1  # without `expected`: kept every `stride`-th frame, doubled as the clip grows
        self._clip_at = (
            {int(i) for i in np.linspace(0, expected - 1, min(self._clip_n, expected)).round()}
            if expected > 0
            else None
        )

    def __call__(self, start: int, frames: np.ndarray) -> None:
        """Take the chunk of ``frames`` that starts at frame ``start`` (chunks come in order)."""
        if start != len(self._small):
            raise QCError(f"QC frames must arrive in order: expected frame {len(self._small)}, got {start}")
        for frame in frames:
            self.add(frame)

    def add(self, frame: np.ndarray) -> None:
        """Take the next ``(H, W, 3)`` frame: keep its analysis-size copy, and a thumbnail of
        every few."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise QCError(f"frames must be RGB (H, W, 3), got a frame of shape {frame.shape}")
        i = len(self._small)
        if self._shape is None:
            self._shape = frame.shape[:2]
        elif frame.shape[:2] != self._shape:
            raise QCError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, frame 0 was "
                          f"{self._shape[1]}x{self._shape[0]}")  # fmt: skip
        self._small.append(downscale(frame, ANALYSIS_SIZE))
        if i % self._stride == 0:
            self._thumbs[i] = downscale(frame, THUMB_SIZE)
        self._keep_for_clip(i, frame)

    def _keep_for_clip(self, i: int, frame: np.ndarray) -> None:
        if self._clip_at is not None:
            if i in self._clip_at:
                self._clip[i] = clip_size(frame)
            return
        if i % self._clip_stride:
            return
        self._clip[i] = clip_size(frame)
        if len(self._clip) > 2 * self._clip_n:  # thin to every other one kept, and keep half as many
            self._clip_stride *= 2
            self._clip = {k: v for k, v in self._clip.items() if k % self._clip_stride == 0}

    @property
    def frames(self) -> int:
        """Frames seen so far."""
        return len(self._small)

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(height, width)`` of the frames seen (None before the first)."""
        return self._shape

    @property
    def analysis_frames(self) -> list[np.ndarray]:
        """The analysis-size copies, one per frame seen."""
        return list(self._small)

    @property
    def clip_frames(self) -> list[tuple[int, np.ndarray]]:
        """Up to ``clip_frames`` ``(index, frame)`` pairs spread evenly over the frames seen, each
        frame's shorter side at most :data:`CLIP_SIZE` px (for :mod:`brandstudio.qc.style`)."""
        keys = sorted(self._clip)
        if len(keys) > self._clip_n:
            keys = sorted({keys[round(j)] for j in np.linspace(0, len(keys) - 1, self._clip_n)})
        return [(i, self._clip[i]) for i in keys]

    def thumbnails(self, n: int = N_THUMBS) -> tuple[bytes, ...]:
        """Up to ``n`` thumbnails spread evenly over the frames seen, as JPEG bytes."""
        keys = sorted(self._thumbs)
        if not keys:
            return ()
        pick = sorted({keys[round(j)] for j in np.linspace(0, len(keys) - 1, min(n, len(keys)))})
        out = []
        for i in pick:
            buf = io.BytesIO()
            Image.fromarray(self._thumbs[i]).save(buf, format="JPEG", quality=82)
            out.append(buf.getvalue())
        return tuple(out)
