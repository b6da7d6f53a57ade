"""AI-content labelling per region: the visible notice and the machine-readable marks.

Every clip is marked as AI-generated for machines, whatever the region: the MP4 ``comment``
tag (brandstudio's JSON) carries ``"ai_generated": true`` and the IPTC digital source type
``trainedAlgorithmicMedia``, and when a C2PA signer is configured the content credential
says the same (:mod:`brandstudio.provenance`). What changes per ``[brand] region``:

``eu`` (AI Act art. 50: AI-generated video is disclosed to viewers and marked in a
machine-readable form)
    visible notice on **every frame** (a viewer joining mid-clip still sees it) in the
    label corner, at ``[label] size``; machine-readable: the MP4 tags above plus the C2PA
    ``digitalSourceType`` when signed.

``cn`` (CAC *Measures for Labelling AI-Generated Synthetic Content* and the mandatory
standard GB 45438-2025, both in force since 2025-09-01)
    explicit label: a prominent text label on the **opening** of the video, shown for at
    least 2 s (``[label] opening_seconds``, default 2, never less), with the text at least
    5 % of the frame's shorter side tall (a smaller ``[label] size`` is raised to that; the
    ink height of the actual text in the actual font is measured, not guessed). The measures
    let the label also appear later; ``[label] show = "clip"`` keeps it on every frame.
    Implicit label: an ``AIGC`` tag in the file metadata holding the JSON object GB 45438
    defines: ``Label`` (``"1"``: the content is AI-generated), ``ContentProducer`` (the
    generating service provider: ``[label] producer``, else the brand's ``client``, else its
    name; use the provider code from TC260's coding rules where you have one), ``ProduceID``
    (a unique content id: derived from the profile fingerprint and the request, so the same
    request gives the same id), ``ReservedCode1`` (left empty: the integrity of the file is
    carried by the C2PA signature), ``ContentPropagator`` and ``PropagateID`` (empty: a
    distribution platform fills them when it republishes the clip).

``us``
    visible notice on every frame (the voluntary industry practice), machine-readable tags.

``none``
    nothing visible; the machine-readable marks (and the C2PA credential) still say AI.

``[label] show`` overrides the frames: ``"region"`` (the rule above), ``"clip"`` (every
frame) or ``"opening"`` (the first ``opening_seconds``); it never adds a label where the
region has none.

The visible notice is drawn by :class:`RegionLabel` (the last output effect, so nothing blurs or
covers it) with :class:`Label` (white text on a rounded dark box in a corner of the safe area);
the machine-readable marks are :mod:`brandstudio.post.marks`'.

Example:
    >>> label_text("eu", "en"), label_text("cn", "zh"), label_text("none", "en")
    ('AI-generated content', '人工智能生成', None)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from brandstudio.errors import PostError
from brandstudio.post.captions import missing_glyphs

from ..registry import LABEL_REGIONS
from .effect import Effect
from .overlay import CORNERS, Corner, Margins, Overlay, as_margins, corner_xy

__all__ = ["CN_MIN_OPENING_SECONDS", "CN_MIN_TEXT_HEIGHT", "LABEL_TEXTS", "Label", "LabelPlan", "RegionLabel", "apply_label", "label_plan", "label_text"]


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
for _region, _texts in LABEL_TEXTS.items():
    LABEL_REGIONS.register(_region, _texts)
LABEL_REGIONS.register("none", {})  # no visible label; the machine-readable marks still say AI



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
class Label(Overlay):
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

        if not self.text.strip():
            raise ValueError("`text` of a label must not be empty")
        if self.position not in CORNERS:
            raise ValueError(f"`position` must be one of {', '.join(CORNERS)}, got {self.position!r}")
        object.__setattr__(self, "margins", as_margins(self.margins))
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
        x, y = corner_xy(self.position, w, h, width, height, self.margins)
        return np.asarray(img), x, y



#: GB 45438-2025: the opening label shows for at least this long (seconds)
CN_MIN_OPENING_SECONDS = 2.0



#: GB 45438-2025: label text at least this fraction of the frame's shorter side tall
CN_MIN_TEXT_HEIGHT = 0.05



@dataclass(frozen=True)
class LabelPlan:
    """Where and how the visible label goes, per the region's rule.

    Attributes:
        region: ``"eu"``, ``"cn"``, ``"us"`` or ``"none"``.
        text: the label text (``None``: nothing visible).
        show: ``"clip"`` (every frame), ``"opening"`` or ``"none"``.
        opening_seconds: how long the opening label stays (``show == "opening"``).
        size: the label's font size as a fraction of the shorter side.
        min_text_height: the text's minimum ink height, fraction of the shorter side (0: none).
        position: a corner of the safe area.
    """

    region: str
    text: str | None
    show: str
    opening_seconds: float
    size: float
    min_text_height: float
    position: str

    def labelled_frames(self, n_frames: int, fps: float) -> int:
        """How many leading frames carry the label.

        Example:
            >>> LabelPlan("cn", "AI", "opening", 2.0, 0.05, 0.05, "top-left").labelled_frames(80, 16)
            32
        """
        if self.text is None or self.show == "none":
            return 0
        if self.show == "clip":
            return n_frames
        return min(n_frames, math.ceil(self.opening_seconds * fps - 1e-9))

    def as_dict(self) -> dict:
        return asdict(self)



def label_plan(spec) -> LabelPlan:
    """The :class:`LabelPlan` for a :class:`~brandstudio.profile.schema.BrandProfileSpec`."""
    region = spec.brand.region
    default = label_text(region, spec.brand.language)
    lab = spec.label
    if default is None:
        return LabelPlan(region, None, "none", 0.0, lab.size, 0.0, lab.position)
    text = lab.text or default
    show = lab.show if lab.show != "region" else ("opening" if region == "cn" else "clip")
    min_h = CN_MIN_TEXT_HEIGHT if region == "cn" else 0.0
    opening = max(lab.opening_seconds, CN_MIN_OPENING_SECONDS) if region == "cn" else lab.opening_seconds
    return LabelPlan(region, text, show, opening, lab.size, min_h, lab.position)



def _size_for_height(text: str, font: str | Path, min_height: float) -> float:
    """The font size (fraction of the shorter side) at which ``text``'s ink is ``min_height`` tall."""

    ref = 200
    f = ImageFont.truetype(str(font), ref, index=0)
    x0, y0, x1, y1 = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=f)
    ink = max(1, y1 - y0)
    return min_height * ref / ink * 1.02  # 2 %: rounding of the pixel size



@dataclass(frozen=True, eq=False)
class RegionLabel(Effect):
    """The visible label as a post effect: drawn on the frames the plan names.

    ``apply_at(frames, start)`` draws on the block of frames ``start, start + 1, ...`` of the
    delivered clip (so it works on a stream of chunks); ``apply(frames)`` on a whole clip.

    Args:
        plan: from :func:`label_plan` (a plan without text draws nothing).
        font: a font that covers the text (the captions font).
        margins: the safe area (``SafeArea`` or ``(top, bottom, left, right)``).
        fps: the delivered frame rate (for the opening's length).
    """

    plan: LabelPlan
    font: str | Path
    margins: object = (0.05, 0.05, 0.05, 0.05)
    fps: float = 16.0

    def _label(self, width: int, height: int) -> Label:
        size = self.plan.size
        if self.plan.min_text_height:
            size = max(size, _size_for_height(self.plan.text, self.font, self.plan.min_text_height))
        return Label(
            self.plan.text, self.font, position=self.plan.position, size=min(size, 0.2), margins=self.margins
        )

    def _label_for(self, width: int, height: int) -> Label:
        """The :class:`Label` for this frame size, made once (its rendered image is kept with it)."""
        labels = self.__dict__.setdefault("_labels", {})
        if (width, height) not in labels:
            labels[(width, height)] = self._label(width, height)
        return labels[(width, height)]

    def _stop(self, n: int, start: int) -> int:
        """How many of the frames ``start .. start + n - 1`` carry the label (they lead the block)."""
        if self.plan.text is None or self.plan.show == "none":
            return 0
        return max(0, min(n, self.plan.labelled_frames(start + n, self.fps) - start))

    def apply_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        """Label the block ``frames`` (frames ``start, ...`` of the clip); a new array, or
        ``frames`` itself when none of them carries the label."""
        if self._stop(len(frames), start) == 0:
            return frames
        out = np.array(frames, dtype=np.uint8, copy=True)
        self.apply_inplace_at(out, start)
        return out

    def apply_inplace_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        """Draw the label into ``frames`` themselves (uint8, writable; the post stream's own chunk)."""
        stop = self._stop(len(frames), start)
        if stop:
            self._label_for(frames.shape[2], frames.shape[1]).apply_inplace_at(frames[:stop])
        return frames

    def apply(self, frames: np.ndarray) -> np.ndarray:
        return self.apply_at(frames, 0)



def apply_label(frames: np.ndarray, plan: LabelPlan, font: str | Path, margins, fps: float) -> np.ndarray:
    """Draw the visible label on the frames the plan names (a whole clip); returns new frames."""
    return RegionLabel(plan, font, margins, fps).apply(frames)
