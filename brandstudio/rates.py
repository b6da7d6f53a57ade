"""Frame rates as exact fractions: ``25``, ``"30000/1001"``, and the NTSC rates written as decimals.

Broadcast rates are not decimals: 29.97 fps is ``30000/1001`` (29.970029...), and a clip timed
at 29.97 drifts by a frame every 33 seconds against it. brand.toml, the CLI and ``render()``
accept either spelling; everything downstream (the retime's timeline, ffmpeg's ``-framerate``)
reads the exact fraction.

Example:
    >>> frame_rate(29.97), frame_rate("30000/1001"), frame_rate("29.97"), frame_rate(23.976)
    (Fraction(30000, 1001), Fraction(30000, 1001), Fraction(30000, 1001), Fraction(24000, 1001))
    >>> frame_rate(12.5)
    Fraction(25, 2)
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator, Field

__all__ = ["MAX_FPS", "FrameRate", "frame_rate"]

MAX_FPS = 120
"""The highest delivery rate accepted (slow motion is asked for with ``slowmo``, not a rate)."""

#: the NTSC rates (n * 1000/1001), which a decimal like 29.97 or 23.976 stands for
_NTSC = tuple(Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120))


def frame_rate(value: float | int | str | Fraction) -> Fraction:
    """``value`` as an exact frame rate; ValueError (naming the value) when it is not one."""
    try:
        if isinstance(value, Fraction):
            rate = value
        elif isinstance(value, str) and "/" in value:
            rate = Fraction(value.strip())
        elif isinstance(value, bool):
            raise TypeError
        else:  # a number, or a number written as text ("29.97" on a command line)
            number = float(value)
            ntsc = [r for r in _NTSC if abs(float(r) - number) < 0.002]
            rate = ntsc[0] if ntsc else Fraction(number).limit_denominator(1001)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        raise ValueError(f'not a frame rate: {value!r} (write e.g. 25, 29.97 or "30000/1001")') from None
    if not 0 < rate <= MAX_FPS:
        raise ValueError(f"a frame rate must be above 0 and at most {MAX_FPS} fps, got {value!r}")
    return rate


def _as_float(value):
    return float(frame_rate(value)) if value is not None else None


FrameRate = Annotated[float, BeforeValidator(_as_float), Field(description='fps: 25, 29.97 or "30000/1001"')]
"""A pydantic field type: any spelling :func:`frame_rate` reads, stored as the exact rate's float
(``float(Fraction(30000, 1001))``, which :func:`frame_rate` and ffmpeg's argument read back exactly)."""
