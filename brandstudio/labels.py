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

Example:
    >>> from brandstudio.labels import aigc_metadata
    >>> sorted(aigc_metadata(producer="Qinglan Tea Co.", produce_id="qinglan-tea-0a1b2c"))
    ['ContentProducer', 'ContentPropagator', 'Label', 'ProduceID', 'PropagateID', 'ReservedCode1']
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .post.overlay import Label, label_text

__all__ = [
    "CN_MIN_OPENING_SECONDS",
    "CN_MIN_TEXT_HEIGHT",
    "DIGITAL_SOURCE_TYPE",
    "LabelPlan",
    "RegionLabel",
    "aigc_metadata",
    "apply_label",
    "label_plan",
    "machine_marks",
    "produce_id",
]

#: IPTC digital source type of footage made by a trained generative model
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
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
    from PIL import Image, ImageDraw, ImageFont

    ref = 200
    f = ImageFont.truetype(str(font), ref, index=0)
    x0, y0, x1, y1 = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=f)
    ink = max(1, y1 - y0)
    return min_height * ref / ink * 1.02  # 2 %: rounding of the pixel size


@dataclass(frozen=True, eq=False)
class RegionLabel:
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

    def apply_inplace_at(self, frames: np.ndarray, start: int) -> None:
        """Draw the label into ``frames`` themselves (uint8, writable; the post stream's own chunk)."""
        stop = self._stop(len(frames), start)
        if stop:
            self._label_for(frames.shape[2], frames.shape[1]).apply_inplace_at(frames[:stop])

    def apply(self, frames: np.ndarray) -> np.ndarray:
        return self.apply_at(frames, 0)


def apply_label(frames: np.ndarray, plan: LabelPlan, font: str | Path, margins, fps: float) -> np.ndarray:
    """Draw the visible label on the frames the plan names (a whole clip); returns new frames."""
    return RegionLabel(plan, font, margins, fps).apply(frames)


def produce_id(profile_id: str, fingerprint: str, *parts) -> str:
    """A content id that is the same for the same profile and request: ``<profile>-<24 hex>``.

    Example:
        >>> produce_id("qinglan-tea", "ab" * 32, "product-hero", 3)[:12]
        'qinglan-tea-'
    """
    key = json.dumps([fingerprint, *parts], sort_keys=True, default=str, ensure_ascii=False)
    return f"{profile_id}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def aigc_metadata(*, producer: str, produce_id: str) -> dict[str, str]:
    """GB 45438-2025's implicit label: the ``AIGC`` metadata object of a generated file."""
    return {
        "Label": "1",
        "ContentProducer": producer,
        "ProduceID": produce_id,
        "ReservedCode1": "",
        "ContentPropagator": "",
        "PropagateID": "",
    }


def machine_marks(spec, plan: LabelPlan, *, content_id: str) -> tuple[dict, dict[str, str]]:
    """The machine-readable marks: fields for brandstudio's ``comment`` JSON, and extra MP4 tags.

    Every region gets ``ai_generated``, ``digital_source_type`` and the visible-label rule in
    the comment; ``cn`` also gets the ``AIGC`` tag (JSON, UTF-8).
    """
    comment = {
        "ai_generated": True,
        "digital_source_type": DIGITAL_SOURCE_TYPE,
        "region": plan.region,
        "label_shown": plan.show if plan.text else "none",
        "content_id": content_id,
    }
    tags: dict[str, str] = {}
    if plan.region == "cn":
        producer = spec.label.producer or spec.brand.client or spec.brand.name
        tags["AIGC"] = json.dumps(aigc_metadata(producer=producer, produce_id=content_id), ensure_ascii=False)
    return comment, tags
