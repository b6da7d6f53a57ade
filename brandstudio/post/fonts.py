"""Glyph coverage: which characters of a text a font cannot draw (they would render as boxes).

Checked before anything is generated (the post stage's ``check``) for every caption and the AI
label, and again by the effects that draw text.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fontTools.ttLib import TTFont

from brandstudio.errors import AssetError
from brandstudio.files import check_user_file

__all__ = ["font_file", "missing_glyphs"]


@functools.lru_cache(maxsize=32)
def _cmap(font_path: str, mtime: float) -> frozenset[int]:

    try:
        with TTFont(font_path, fontNumber=0, lazy=True) as font:
            cmap = font.getBestCmap()
    except Exception as exc:  # noqa: BLE001 - fontTools raises many kinds on a corrupt file
        raise AssetError(
            f"could not read the font {Path(font_path).name}: {type(exc).__name__}: {exc}",
            file=font_path,
            fix="use a valid .ttf, .otf or .ttc font file",
        ) from None
    if not cmap:
        raise AssetError(
            f"the font {Path(font_path).name} has no Unicode character map",
            file=font_path,
            fix="use a Unicode .ttf/.otf font",
        )
    return frozenset(cmap)



def font_file(font_path: str | Path) -> str:
    """``font_path`` as a string, once checked to be a readable regular file (FreeType and
    fontTools open it by path: a FIFO there would block them, a folder would give a traceback)."""
    check_user_file(
        font_path,
        error=AssetError,
        what="the font",
        missing_fix="check the captions font path in brand.toml",
    )
    return str(font_path)



def missing_glyphs(font_path: str | Path, text: str) -> list[str]:
    """The characters of ``text`` that the font has no glyph for (whitespace ignored), in order.

    Raises :class:`~brandstudio.errors.AssetError` if the font is missing or unreadable.

    Example:
        >>> import glob
        >>> font = (glob.glob("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf") or [None])[0]
        >>> missing_glyphs(font, "Café 咖啡") if font else ['咖', '啡']
        ['咖', '啡']
    """
    path = font_file(font_path)
    cmap = _cmap(path, Path(path).stat().st_mtime)
    seen: list[str] = []
    for ch in text:
        if ch.isspace() or ord(ch) in cmap or ch in seen:
            continue
        # zero-width joiners / variation selectors are not drawn
        if ord(ch) in (0x200B, 0x200C, 0x200D, 0xFEFF) or 0xFE00 <= ord(ch) <= 0xFE0F:
            continue
        seen.append(ch)
    return seen
