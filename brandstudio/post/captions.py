"""Burned-in captions in the brand font (the ``.srt``/``.vtt`` sidecars: :mod:`.subtitles`).

Each cue is laid out once (word-wrapped by measured pixel width inside the safe area,
shrunk if it needs more than ``max_lines``), rendered once to a small RGBA image with
Pillow, and alpha-composited onto the frames whose timestamp ``t = i / fps`` lies in
``[start, end)``.

Wrapping rules:

* Latin and other spaced scripts break at spaces; a word wider than the safe area is
  split between characters rather than overflowing.
* CJK text may break between any two CJK characters, but closing punctuation (``，。！？、）」``
  ...) never starts a line and opening punctuation (``（「《`` ...) never ends one (kinsoku).
* An explicit ``"\\n"`` in the cue text forces a line break.

A glyph the font lacks is an error (:class:`~brandstudio.errors.PostError` naming the
characters and the font file), never a tofu box.

Example:
    >>> wrap_text("Good morning, coffee lovers", 70, measure=lambda s: 5 * len(s))
    ['Good morning,', 'coffee lovers']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from brandstudio.errors import PostError
from brandstudio.frames import check_frames

from .effect import Effect
from .fonts import font_file, missing_glyphs
from .overlay import composite
from .subtitles import Cue

if TYPE_CHECKING:  # pragma: no cover
    from brandstudio.profile.schema import CaptionsSection

__all__ = [
    "CaptionStyle",
    "Captions",
    "render_cue",
    "wrap_text",
]

#: characters that must not start a line (CJK and Latin closing punctuation)
_NO_LINE_START = set("，。！？、；：）」』】》〉〕｝］”’…—～·ー%‰℃,.!?;:)]}»")
#: characters that must not end a line (opening punctuation)
_NO_LINE_END = set("（「『【《〈〔｛［“‘([{«")

_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x31FF),  # Bopomofo, Katakana ext.
    (0x3400, 0x4DBF),  # CJK ext. A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half/full-width forms
    (0x20000, 0x2FA1F),  # CJK ext. B..F, compatibility supplement
)


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


# --------------------------------------------------------------------------- cues


# --------------------------------------------------------------------------- fonts


# --------------------------------------------------------------------------- layout


def _tokens(paragraph: str) -> list[tuple[str, bool]]:
    """Split one paragraph into unbreakable tokens: ``(text, space_before)``."""
    tokens: list[tuple[str, bool]] = []
    space = False
    glue_next = False  # the previous token ended with opening punctuation
    for word in paragraph.split(" "):
        if not word:
            space = True
            continue
        current = ""
        for ch in word:
            if ch in _NO_LINE_START and (tokens or current):
                if current:
                    current += ch
                else:
                    text, sp = tokens.pop()
                    current = text + ch
                    space = sp
                continue
            if glue_next or not current:
                current += ch
            elif _is_cjk(ch) or _is_cjk(current[-1]):
                tokens.append((current, space))
                space = False
                current = ch
            else:
                current += ch
            glue_next = ch in _NO_LINE_END
        if current:
            tokens.append((current, space))
        space = True
    return tokens


def wrap_text(text: str, max_width: float, measure) -> list[str]:
    """Greedy line breaking of ``text`` so that ``measure(line) <= max_width``.

    ``measure`` returns a line's width in pixels. Breaks at spaces, between CJK characters
    (never before closing punctuation), inside an over-long word as a last resort, and at
    ``"\\n"``.

    Example:
        >>> wrap_text("the quick brown fox", 9, len)
        ['the quick', 'brown fox']
        >>> wrap_text("早上好，今天喝咖啡。", 3, len)
        ['早上', '好，今', '天喝咖', '啡。']
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for token, space_before in _tokens(paragraph):
            candidate = (line + (" " if space_before and line else "") + token) if line else token
            if measure(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = token
            while measure(line) > max_width and len(line) > 1:  # an over-long word: split it
                cut = len(line) - 1
                while cut > 1 and measure(line[:cut]) > max_width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        if line:
            lines.append(line)
    return lines


def _hex_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    if len(value) != 6:
        raise ValueError(f"colour must be a hex string like '#1F4E5F', got {value!r}")
    return tuple(int(value[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


@dataclass(frozen=True)
class CaptionStyle:
    """How captions look and where they go.

    Args:
        font: path to a .ttf/.otf/.ttc font (the first face of a collection is used).
        size: font size as a fraction of the frame's shorter side.
        colour / stroke_colour: hex ``"#RRGGBB"``.
        stroke_width: outline width as a fraction of the font size.
        position: ``"bottom"``, ``"top"`` or ``"center"`` of the safe area.
        max_lines: the most lines a cue may take; the font shrinks until the cue fits.
        margin_top / margin_bottom / margin_left / margin_right: the safe area, as
            fractions of the frame height (top/bottom) or width (left/right).
        line_spacing: line pitch as a multiple of the font's ascent + descent.
    """

    font: str | Path
    size: float = 0.055
    colour: str = "#FFFFFF"
    stroke_colour: str = "#000000"
    stroke_width: float = 0.08
    position: Literal["bottom", "top", "center"] = "bottom"
    max_lines: int = 2
    margin_top: float = 0.05
    margin_bottom: float = 0.05
    margin_left: float = 0.05
    margin_right: float = 0.05
    line_spacing: float = 1.15

    def __post_init__(self) -> None:
        if self.position not in ("bottom", "top", "center"):
            raise ValueError(f"`position` must be 'bottom', 'top' or 'center', got {self.position!r}")
        if not 0 < self.size <= 0.5:
            raise ValueError(f"`size` must be in (0, 0.5], got {self.size}")
        if self.max_lines < 1:
            raise ValueError(f"`max_lines` must be at least 1, got {self.max_lines}")
        _hex_rgb(self.colour)
        _hex_rgb(self.stroke_colour)
        if self.margin_top + self.margin_bottom >= 1 or self.margin_left + self.margin_right >= 1:
            raise ValueError("the safe-area margins leave no room for captions")

    @classmethod
    def from_section(cls, section: CaptionsSection, font_path: str | Path, aspect: str) -> CaptionStyle:
        """Build from a profile's ``[captions]`` section, the resolved font path and the clip's aspect."""
        safe = section.safe_area[aspect]
        return cls(
            font=font_path,
            size=section.size,
            colour=section.colour,
            stroke_colour=section.stroke_colour,
            stroke_width=section.stroke_width,
            position=section.position,
            max_lines=section.max_lines,
            margin_top=safe.top,
            margin_bottom=safe.bottom,
            margin_left=safe.left,
            margin_right=safe.right,
        )

    def safe_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` pixel bounds of the safe area in a ``width`` x ``height`` frame."""
        return (
            round(self.margin_left * width),
            round(self.margin_top * height),
            width - round(self.margin_right * width),
            height - round(self.margin_bottom * height),
        )


def render_cue(text: str, style: CaptionStyle, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """Lay out and render one cue: ``(rgba, x, y)``, the RGBA image and where its top-left goes.

    Raises :class:`PostError` if the text cannot fit in ``max_lines`` inside the safe area
    even at half the font size.
    """

    font_path = font_file(style.font)
    left, top, right, bottom = style.safe_box(width, height)
    box_w, box_h = right - left, bottom - top
    base_px = max(6, round(style.size * min(width, height)))
    scratch = ImageDraw.Draw(Image.new("L", (1, 1)))
    px = base_px
    while True:
        font = ImageFont.truetype(font_path, px, index=0)
        stroke = round(style.stroke_width * px)

        def measure(line: str, font=font, stroke=stroke) -> float:
            x0, _, x1, _ = scratch.textbbox((0, 0), line, font=font, stroke_width=stroke)
            return x1 - x0

        lines = wrap_text(text, box_w, measure)
        ascent, descent = font.getmetrics()
        pitch = round((ascent + descent) * style.line_spacing)
        block_h = pitch * (len(lines) - 1) + ascent + descent + 2 * stroke
        if len(lines) <= style.max_lines and block_h <= box_h:
            break
        if px <= max(6, base_px // 2):
            raise PostError(
                f"the caption {text!r} does not fit in {style.max_lines} line(s) inside the safe area "
                f"even at half the font size",
                file=font_path,
                fix="shorten the cue, split it into two cues, or raise captions.max_lines",
            )
        px = max(max(6, base_px // 2), int(px * 0.9))

    block_w = int(max(measure(line) for line in lines)) + 2 * stroke + 2
    img = Image.new("RGBA", (block_w, block_h + 2), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        draw.text(
            (block_w / 2, stroke + k * pitch),
            line,
            font=font,
            fill=_hex_rgb(style.colour) + (255,),
            stroke_width=stroke,
            stroke_fill=_hex_rgb(style.stroke_colour) + (255,),
            anchor="ma",
        )
    rgba = np.asarray(img)
    x = left + (box_w - block_w) // 2
    if style.position == "bottom":
        y = bottom - rgba.shape[0]
    elif style.position == "top":
        y = top
    else:
        y = top + (box_h - rgba.shape[0]) // 2
    return rgba, x, y


@dataclass(frozen=True, eq=False)
class Captions(Effect):
    """Burn ``cues`` into frames at ``fps`` in ``style``.

    Every glyph is checked against the font when the effect is made; a missing one raises
    :class:`~brandstudio.errors.PostError` naming the characters and the font file.

    Example:
        >>> import glob, numpy as np
        >>> font = glob.glob("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
        >>> if font:
        ...     cap = Captions([Cue(0.0, 0.5, "Hello")], CaptionStyle(font[0], size=0.2), fps=4)
        ...     out = cap.apply(np.zeros((4, 64, 96, 3), np.uint8))
        ...     changed = [bool(f.any()) for f in out]
        ... else:
        ...     changed = [True, True, False, False]
        >>> changed
        [True, True, False, False]
    """

    cues: tuple[Cue, ...]
    style: CaptionStyle
    fps: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "cues", tuple(self.cues))
        if not self.fps > 0:
            raise ValueError(f"`fps` must be positive, got {self.fps}")
        missing = missing_glyphs(self.style.font, "".join(c.text for c in self.cues))
        if missing:
            font = Path(self.style.font)
            raise PostError(
                f"the caption font {font.name} has no glyph for {', '.join(repr(c) for c in missing)} "
                f"(U+{', U+'.join(f'{ord(c):04X}' for c in missing)})",
                file=str(font),
                field="captions.font",
                fix="use a font that covers the caption language (e.g. a CJK font for Chinese), "
                "or change the caption text",
            )

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Burn the cues into a whole clip (frame ``i`` is at ``i / fps`` seconds); returns new frames."""
        return self.apply_at(frames, 0)

    def apply_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        """Burn the cues into a chunk of a clip: ``frames[k]`` is frame ``start + k`` (at ``(start + k) / fps`` s).

        Returns a new array, or ``frames`` itself when no cue is on screen in them (nothing
        to draw, nothing copied). Each cue is laid out and rendered once per frame size and
        reused by later chunks.
        """
        frames = check_frames(frames)
        if not self._on_screen(len(frames), start):
            return frames
        out = frames.copy()
        self.apply_inplace_at(out, start)
        return out

    def apply_inplace_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        """Burn the cues into ``frames`` themselves (uint8, writable; the post stream's own chunk)."""
        T, H, W, _ = frames.shape
        cache = self.__dict__.setdefault("_rendered", {})
        for i, first, last in self._on_screen(T, start):
            if (i, W, H) not in cache:
                cache[(i, W, H)] = render_cue(self.cues[i].text, self.style, W, H)
            rgba, x, y = cache[(i, W, H)]
            composite(frames[first : last + 1], rgba, x, y)
        return frames

    def _on_screen(self, n: int, start: int) -> list[tuple[int, int, int]]:
        """``(cue index, first, last)`` for each cue shown in frames ``start .. start + n - 1``
        (``first``/``last`` relative to ``start``)."""
        t = (int(start) + np.arange(n, dtype=np.float64)) / float(self.fps)
        spans = []
        for i, cue in enumerate(self.cues):
            active = np.flatnonzero((t >= cue.start) & (t < cue.end))
            if active.size:
                spans.append((i, int(active[0]), int(active[-1])))
        return spans
