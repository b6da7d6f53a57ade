"""The base of every post effect: a small frozen dataclass with ``apply(frames) -> frames``.

moviepy v2's ``Effect`` is the model: an effect is an immutable value (its settings), and
applying it never changes it. The post stage streams a clip through its effects a chunk at a
time (:mod:`brandstudio.post.stream`), so an effect may also say *where* in the clip a chunk
is, and may draw into a chunk the stream owns instead of copying it:

- :meth:`Effect.apply` — a pure function of a block of frames ``(T, H, W, 3)`` uint8.
- :meth:`Effect.apply_at` — ``frames[k]`` is frame ``start + k`` of the clip: timed effects
  (captions, the opening label, a reframe that follows a subject) override it.
- :meth:`Effect.apply_inplace_at` — draw into ``frames`` (writable, owned by the caller):
  overlays override it to skip a copy of every chunk.
- :meth:`Effect.prepare` — told the whole source's shape once before the first chunk (the
  grade bakes its table then, exactly when a whole-clip grade would).

Example:
    >>> import numpy as np
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Invert(Effect):
    ...     def apply(self, frames):
    ...         return 255 - frames
    >>> Invert().apply_at(np.zeros((1, 2, 2, 3), np.uint8), start=5)[0, 0, 0].tolist()
    [255, 255, 255]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

__all__ = ["Effect"]


@dataclass(frozen=True, eq=False)
class Effect(ABC):
    """A post effect (subclass it as a ``@dataclass(frozen=True)``)."""

    @abstractmethod
    def apply(self, frames: np.ndarray) -> np.ndarray:
        """The effect on a block of frames; returns new frames (the input is not changed)."""

    def apply_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        """The effect on frames ``start, start + 1, ...`` of the clip (position-blind by default)."""
        return self.apply(frames)

    def apply_inplace_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        """The effect on frames the caller owns and will not read again; returns the result,
        which is ``frames`` itself when the effect can draw in place (overlays override this)."""
        return self.apply_at(frames, start)

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Called once with the whole source's shape before the first chunk (nothing by default)."""
