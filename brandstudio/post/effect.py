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

__all__ = ["Effect", "as_effect"]


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

    def prepare(self, shape: tuple[int, ...]) -> None:  # noqa: B027 - a hook: most effects need no preparation
        """Called once with the whole source's shape before the first chunk (nothing by default)."""


@dataclass(frozen=True, eq=False)
class _DuckEffect(Effect):
    """A caller's own effect object that has ``apply`` and/or ``apply_at`` but not this base."""

    wrapped: object

    def apply(self, frames: np.ndarray) -> np.ndarray:
        return self.apply_at(frames, 0)

    def apply_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        at = getattr(self.wrapped, "apply_at", None)
        return at(frames, start) if at is not None else self.wrapped.apply(frames)

    def apply_inplace_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        inplace = getattr(self.wrapped, "apply_inplace_at", None)
        if inplace is None:
            return self.apply_at(frames, start)
        result = inplace(frames, start)
        return frames if result is None else result

    def prepare(self, shape: tuple[int, ...]) -> None:
        prepare = getattr(self.wrapped, "prepare", None)
        if prepare is not None:
            prepare(shape)


def as_effect(obj: object) -> Effect:
    """``obj`` as an :class:`Effect`: itself, or (a caller's own object with ``apply`` or
    ``apply_at``) wrapped so the stream can call it like the built-in effects."""
    if isinstance(obj, Effect):
        return obj
    if not (callable(getattr(obj, "apply", None)) or callable(getattr(obj, "apply_at", None))):
        raise TypeError(f"an effect needs `apply(frames)` or `apply_at(frames, start)`, got {type(obj).__name__}")
    return _DuckEffect(obj)
