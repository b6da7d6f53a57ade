"""Sidecar subtitles: caption cues as SubRip (.srt) and WebVTT (.vtt), written atomically.

Example:
    >>> cues = [Cue(0.0, 1.5, "Good morning"), Cue(1.5, 3.25, "早上好")]
    >>> print(srt_text(cues))
    1
    00:00:00,000 --> 00:00:01,500
    Good morning
    <BLANKLINE>
    2
    00:00:01,500 --> 00:00:03,250
    早上好
    <BLANKLINE>
    >>> vtt_text(cues).splitlines()[:3]
    ['WEBVTT', '', '00:00:00.000 --> 00:00:01.500']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brandstudio.files import write_text_atomic

__all__ = ["Cue", "srt_text", "vtt_text", "write_srt", "write_vtt"]


@dataclass(frozen=True)
class Cue:
    """One caption: ``text`` shown for ``start <= t < end`` (seconds)."""

    start: float
    end: float
    text: str

    def __post_init__(self) -> None:
        if not (self.start >= 0 and self.end > self.start):
            raise ValueError(f"a cue needs 0 <= start < end, got start={self.start}, end={self.end}")
        if not self.text.strip():
            raise ValueError("a cue needs some text, got an empty string")



def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"



def _cue_lines(text: str) -> str:
    """A cue's text without blank lines (a blank line ends a cue in both formats)."""
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())



def srt_text(cues: Sequence[Cue]) -> str:
    """The SubRip (``.srt``) text of ``cues`` (times ``HH:MM:SS,mmm``).

    SubRip has no escapes: an arrow ``-->`` in a caption (which players take for a timing
    line) is written as ``→``.

    Example:
        >>> print(srt_text([Cue(0.0, 1.5, "A --> B")]))
        1
        00:00:00,000 --> 00:00:01,500
        A → B
        <BLANKLINE>
    """
    blocks = [
        f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{_cue_lines(c.text).replace('-->', '→')}\n"
        for i, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)



def vtt_text(cues: Sequence[Cue]) -> str:
    """The WebVTT (``.vtt``) text of ``cues`` (times ``HH:MM:SS.mmm``).

    ``&``, ``<`` and ``>`` are written as character references, as WebVTT requires, so a
    caption such as ``We <3 mornings`` shows as written instead of being read as a tag.

    Example:
        >>> print(vtt_text([Cue(0.0, 1.5, "We <3 R&D")]))
        WEBVTT
        <BLANKLINE>
        00:00:00.000 --> 00:00:01.500
        We &lt;3 R&amp;D
        <BLANKLINE>
    """

    def escape(text: str) -> str:
        return _cue_lines(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    blocks = [f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{escape(c.text)}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)



def write_srt(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write ``cues`` as an ``.srt`` file, atomically (temp file + ``os.replace``)."""

    return write_text_atomic(path, srt_text(cues))



def write_vtt(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write ``cues`` as a ``.vtt`` file, atomically (temp file + ``os.replace``)."""

    return write_text_atomic(path, vtt_text(cues))
