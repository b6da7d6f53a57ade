"""Sampling a clip for QC as its frames stream past, so QC never needs the whole clip in memory.

:class:`QCCollector` keeps an analysis-size copy (~128 px) of every frame (for the palette
samples and the frame-to-frame flicker) and a thumbnail of a few (for the HTML report). A
render hands it to the streamed post stage as an observer; :func:`brandstudio.qc.check_file`
fills it from a decoded file; :func:`brandstudio.qc.report` measures it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from brandstudio.errors import QCError

from .metrics import ANALYSIS_SIZE, downscale

__all__ = ["N_THUMBS", "THUMB_SIZE", "QCCollector"]

#: longer side (px) of the report's thumbnails
THUMB_SIZE = 240
#: thumbnails shown in the HTML report
N_THUMBS = 6


class QCCollector:
    """A stream observer that keeps what QC measures, so QC never needs the whole delivered clip.

    Give it to a streamed post stage (:func:`brandstudio.post.stream.run_stream`) as an
    observer, ``collector(start, frames)`` with the chunks in order, then pass it to
    :func:`brandstudio.qc.report` in place of the frames. ``expected`` (the clip's frame count,
    if known) spreads the thumbnails over the whole clip.

    Example:
        >>> import numpy as np
        >>> from brandstudio.qc import QCCollector, flicker
        >>> col = QCCollector(expected=4)
        >>> col(0, np.zeros((2, 72, 128, 3), np.uint8)); col(2, np.full((2, 72, 128, 3), 9, np.uint8))
        >>> col.frames, flicker(np.stack(col.analysis_frames)).tolist()
        (4, [0.0, 9.0, 0.0])
    """

    def __init__(self, expected: int = 0) -> None:
        self._small: list[np.ndarray] = []
        self._thumbs: dict[int, np.ndarray] = {}
        self._stride = max(1, expected // (4 * N_THUMBS))
        self._shape: tuple[int, int] | None = None

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
