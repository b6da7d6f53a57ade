"""Fixtures for the post-stage tests: the fonts shipped with the demo profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

PROFILES = Path(__file__).resolve().parents[2] / "brand_profiles"


def _font_covering(text: str) -> Path | None:
    from fontTools.ttLib import TTFont

    for path in sorted(PROFILES.glob("*/fonts/*")):
        if path.suffix.lower() not in (".ttf", ".otf", ".ttc"):
            continue
        with TTFont(str(path), fontNumber=0, lazy=True) as font:
            cmap = font.getBestCmap() or {}
        if all(ord(c) in cmap for c in text):
            return path
    return None


@pytest.fixture(scope="session")
def latin_font() -> Path:
    """A shipped font that covers Latin text (aurora-coffee's)."""
    path = _font_covering("Morning ritual, Café!")
    assert path is not None, "aurora-coffee ships a Latin font under fonts/"
    return path


@pytest.fixture(scope="session")
def cjk_font() -> Path:
    """A shipped font that covers Chinese text (qinglan-tea's)."""
    path = _font_covering("清晨的第一杯青岚茶，人工智能生成。")
    assert path is not None, "qinglan-tea ships a CJK font under fonts/"
    return path
