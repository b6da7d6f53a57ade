"""Overlays: the brand logo and the AI-content label.

Both are drawn inside a corner of the safe area (margins as fractions of the frame; see
``[captions.safe_area]`` in the profile) and alpha-composited in float with straight
(non-premultiplied) RGBA sources: ``out = src * a + dst * (1 - a)``. The logo is resized
in premultiplied float so transparent pixels never bleed their (arbitrary) colour into
the edge.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.overlay import Logo, label_text
    >>> mark = np.zeros((10, 20, 4), np.uint8); mark[..., 0] = 255; mark[..., 3] = 255
    >>> out = Logo(mark, position="top-left", scale=0.5, opacity=1.0, margins=(0, 0, 0, 0)).apply(
    ...     np.zeros((1, 40, 40, 3), np.uint8))
    >>> out[0, 2, 2].tolist(), out[0, 30, 30].tolist()
    ([255, 0, 0], [0, 0, 0])
    >>> label_text("eu", "en"), label_text("cn", "zh"), label_text("none", "en")
    ('AI-generated content', '人工智能生成', None)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from brandstudio.errors import AssetError, PostError
from brandstudio.frames import check_frames
from brandstudio.profile.assets import ASSET_CHECKS

__all__ = ["CORNERS", "LABEL_TEXTS", "Label", "Logo", "composite", "label_text", "load_logo"]

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
Margins = tuple[float, float, float, float]  # top, bottom, left, right (fractions)


def composite(frames: np.ndarray, rgba: np.ndarray, x: int, y: int, opacity: float = 1.0) -> np.ndarray:
    """Alpha-composite a straight-alpha RGBA uint8 image onto every frame, in place.

    ``(x, y)`` is where the image's top-left corner goes; parts outside the frame are
    clipped. Returns ``frames``.
    """
    _, H, W, _ = frames.shape
    h, w = rgba.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1 or opacity <= 0:
        return frames
    part = rgba[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
    alpha = part[..., 3:4] * np.float32(opacity / 255.0)
    premult = part[..., :3] * alpha + np.float32(0.5)  # + 0.5: round on the cast below
    inv = np.float32(1.0) - alpha
    for i in range(frames.shape[0]):
        region = frames[i, y0:y1, x0:x1]
        region[...] = np.minimum(premult + region * inv, 255.0).astype(np.uint8)
    return frames


def _rendered(overlay, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """``overlay.render(width, height)``, kept on the (frozen) overlay: a streamed clip applies it per chunk."""
    cache = overlay.__dict__.setdefault("_rendered", {})
    if (width, height) not in cache:
        cache[(width, height)] = overlay.render(width, height)
    return cache[(width, height)]


def _margins(margins) -> Margins:
    """Accept ``(top, bottom, left, right)`` or anything with those attributes (a ``SafeArea``)."""
    if hasattr(margins, "top"):
        margins = (margins.top, margins.bottom, margins.left, margins.right)
    m = tuple(float(v) for v in margins)
    if len(m) != 4 or any(not 0 <= v < 0.5 for v in m):
        raise ValueError(
            f"`margins` must be 4 fractions (top, bottom, left, right) in [0, 0.5), got {margins}"
        )
    return m  # type: ignore[return-value]


def _corner_xy(position: str, w: int, h: int, W: int, H: int, margins: Margins) -> tuple[int, int]:
    if position not in CORNERS:
        raise ValueError(f"`position` must be one of {', '.join(CORNERS)}, got {position!r}")
    top, bottom, left, right = margins
    vert, horiz = position.split("-")
    x = round(left * W) if horiz == "left" else W - round(right * W) - w
    y = round(top * H) if vert == "top" else H - round(bottom * H) - h
    return x, y


# --------------------------------------------------------------------------- logo


def load_logo(path: str | Path) -> np.ndarray:
    """Read a logo image (PNG with alpha, or any format Pillow reads) as RGBA uint8 ``(h, w, 4)``.

    Raises :class:`~brandstudio.errors.AssetError` if the file is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise AssetError(
            f"logo file not found: {path.name}", file=str(path), fix="check the logo path in brand.toml"
        )
    try:
        with Image.open(path) as img:
            img.load()
            rgba = np.asarray(img.convert("RGBA"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise AssetError(
            f"could not read the logo {path.name}: {exc}",
            file=str(path),
            fix="export the logo again as a PNG with an alpha channel",
        ) from None
    if rgba.shape[0] < 2 or rgba.shape[1] < 2:
        raise AssetError(
            f"the logo {path.name} is too small ({rgba.shape[1]}x{rgba.shape[0]})", file=str(path)
        )
    return np.ascontiguousarray(rgba)


def _resize_rgba(rgba: np.ndarray, width: int, height: int) -> np.ndarray:
    """LANCZOS resize in premultiplied float (no dark/coloured fringes at the edges)."""
    from PIL import Image

    a = rgba[..., 3].astype(np.float32) / 255.0
    channels = [rgba[..., c].astype(np.float32) * a for c in range(3)] + [a * 255.0]
    size = (width, height)
    res = [np.asarray(Image.fromarray(ch).resize(size, Image.Resampling.LANCZOS)) for ch in channels]
    alpha = np.clip(res[3], 0, 255)
    safe = np.maximum(alpha / 255.0, 1e-6)
    rgb = [np.where(alpha > 0.5, np.clip(ch / safe, 0, 255), 0) for ch in res[:3]]
    return np.clip(np.rint(np.stack(rgb + [alpha], axis=-1)), 0, 255).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class Logo:
    """Composite a logo into a corner of the safe area.

    Args:
        rgba: from :func:`load_logo`.
        position: ``"top-left"``, ``"top-right"``, ``"bottom-left"`` or ``"bottom-right"``.
        scale: logo width as a fraction of the frame's shorter side.
        opacity: 0..1, multiplies the logo's alpha.
        margins: the safe area, ``(top, bottom, left, right)`` fractions or a ``SafeArea``.
    """

    rgba: np.ndarray
    position: Corner = "top-right"
    scale: float = 0.18
    opacity: float = 0.9
    margins: Margins | object = (0.05, 0.05, 0.05, 0.05)

    def __post_init__(self) -> None:
        rgba = np.asarray(self.rgba)
        if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise ValueError(f"`rgba` must be a uint8 (h, w, 4) array, got {rgba.dtype} {rgba.shape}")
        if not 0 < self.scale <= 1:
            raise ValueError(f"`scale` must be in (0, 1], got {self.scale}")
        if not 0 <= self.opacity <= 1:
            raise ValueError(f"`opacity` must be in [0, 1], got {self.opacity}")
        if self.position not in CORNERS:
            raise ValueError(f"`position` must be one of {', '.join(CORNERS)}, got {self.position!r}")
        object.__setattr__(self, "margins", _margins(self.margins))

    def render(self, width: int, height: int) -> tuple[np.ndarray, int, int]:
        """The resized logo and its top-left corner in a ``width`` x ``height`` frame."""
        w = max(2, round(self.scale * min(width, height)))
        h = max(2, round(w * self.rgba.shape[0] / self.rgba.shape[1]))
        img = _resize_rgba(self.rgba, w, h)
        x, y = _corner_xy(self.position, w, h, width, height, self.margins)
        return img, x, y

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Draw the logo on a copy of ``frames``."""
        out = check_frames(frames).copy()
        self.apply_inplace_at(out, 0)
        return out

    def apply_inplace_at(self, frames: np.ndarray, start: int = 0) -> None:
        """Draw the logo into ``frames`` (uint8, writable; the post stream's own chunk)."""
        img, x, y = _rendered(self, frames.shape[2], frames.shape[1])
        composite(frames, img, x, y, self.opacity)


# --------------------------------------------------------------------------- AI label

#: default label wording per region, then per language ("*" = any other language)
LABEL_TEXTS: dict[str, dict[str, str]] = {
    # EU AI Act art. 50: deployers disclose AI-generated content
    "eu": {
        "*": "AI-generated content",
        "zh": "AI生成内容",
        "de": "KI-generierter Inhalt",
        "fr": "Contenu généré par IA",
        "es": "Contenido generado por IA",
        "it": "Contenuto generato dall'IA",
        "nl": "Door AI gegenereerde inhoud",
        "pl": "Treść wygenerowana przez AI",
        "pt": "Conteúdo gerado por IA",
    },
    # CAC measures for labelling AI-generated synthetic content (2025): explicit label
    "cn": {"*": "AI-generated", "zh": "人工智能生成"},
    "us": {"*": "AI-generated", "zh": "AI生成"},
}


def label_text(region: str, language: str) -> str | None:
    """The AI-content label for ``region`` (``"eu"``, ``"cn"``, ``"us"``, ``"none"``) in ``language``.

    ``None`` means no label is required. ``language`` is a BCP-47 tag; only its primary
    subtag is used (``"zh-CN"`` -> ``"zh"``).
    """
    if region == "none":
        return None
    if region not in LABEL_TEXTS:
        raise ValueError(f"unknown region {region!r}; use one of {', '.join([*LABEL_TEXTS, 'none'])}")
    texts = LABEL_TEXTS[region]
    return texts.get(language.split("-")[0].lower(), texts["*"])


@dataclass(frozen=True, eq=False)
class Label:
    """Draw a small, readable text label (white on a rounded, semi-opaque dark box) in a corner.

    Args:
        text: the label, e.g. from :func:`label_text`.
        font_path: a font that covers ``text`` (usually the captions font).
        position: a corner of the safe area.
        size: font size as a fraction of the shorter side (at least 10 px).
        margins: the safe area, ``(top, bottom, left, right)`` fractions or a ``SafeArea``.
        box_opacity: opacity of the dark box behind the text.

    A character the font lacks raises :class:`~brandstudio.errors.PostError`.
    """

    text: str
    font_path: str | Path
    position: Corner = "top-left"
    size: float = 0.028
    margins: Margins | object = (0.05, 0.05, 0.05, 0.05)
    box_opacity: float = 0.6

    def __post_init__(self) -> None:
        from brandstudio.post.captions import missing_glyphs

        if not self.text.strip():
            raise ValueError("`text` of a label must not be empty")
        if self.position not in CORNERS:
            raise ValueError(f"`position` must be one of {', '.join(CORNERS)}, got {self.position!r}")
        object.__setattr__(self, "margins", _margins(self.margins))
        missing = missing_glyphs(self.font_path, self.text)
        if missing:
            raise PostError(
                f"the label font {Path(self.font_path).name} has no glyph for {', '.join(map(repr, missing))}",
                file=str(self.font_path),
                field="label.text",
                fix="use a font that covers the label language, or set label.text",
            )

    def render(self, width: int, height: int) -> tuple[np.ndarray, int, int]:
        """The label image (RGBA) and its top-left corner in a ``width`` x ``height`` frame."""
        from PIL import Image, ImageDraw, ImageFont

        px = max(10, round(self.size * min(width, height)))
        font = ImageFont.truetype(str(self.font_path), px, index=0)
        probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        x0, y0, x1, y1 = probe.textbbox((0, 0), self.text, font=font)
        pad = max(3, round(px * 0.4))
        w, h = (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad
        img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        draw.rounded_rectangle(
            (0, 0, w - 1, h - 1), radius=max(2, pad * 0.8), fill=(0, 0, 0, round(255 * self.box_opacity))
        )
        draw.text((pad - x0, pad - y0), self.text, font=font, fill=(255, 255, 255, 255))
        x, y = _corner_xy(self.position, w, h, width, height, self.margins)
        return np.asarray(img), x, y

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Draw the label on a copy of ``frames``."""
        out = check_frames(frames).copy()
        self.apply_inplace_at(out, 0)
        return out

    def apply_inplace_at(self, frames: np.ndarray, start: int = 0) -> None:
        """Draw the label into ``frames`` (uint8, writable; the post stream's own chunk)."""
        img, x, y = _rendered(self, frames.shape[2], frames.shape[1])
        composite(frames, img, x, y)


ASSET_CHECKS.register("logo", load_logo)
