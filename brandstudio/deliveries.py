"""Deliveries: the named targets one render is encoded to (aspect, size, rate, loudness, codec).

An agency delivers one spot many ways: 9:16 for Reels and TikTok, square for feeds, 16:9 for
YouTube, 1080p25 at −23 LUFS for broadcast (EBU R128), and a high-quality master for its editors.
A :class:`Delivery` says everything one of those files must be; :data:`DELIVERY_PRESETS` holds
the shipped ones by name, and a profile's ``[[deliveries]]`` names a preset and overrides what
differs (:func:`resolve_delivery`). The codecs a delivery may ask for are :data:`DELIVERY_CODECS`.

Example:
    >>> d = resolve_delivery({"name": "tv", "preset": "broadcast-1080p25"})
    >>> (d.aspect, d.resolution, d.fps, d.loudness, d.true_peak, d.codec, d.captions)
    ('16:9', 1080, 25.0, -23.0, -1.0, 'h264', 'sidecar')
    >>> resolve_delivery({"name": "reels", "preset": "social-vertical", "loudness": -16}).loudness
    -16.0
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import RequestError
from .rates import FrameRate
from .registry import Registry

__all__ = [
    "DELIVERY_CODECS",
    "DELIVERY_PRESETS",
    "Codec",
    "Delivery",
    "DeliverySpec",
    "delivery_file",
    "find_delivery",
    "resolve_delivery",
]

_ASPECT = re.compile(r"^[1-9][0-9]?:[1-9][0-9]?$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class Codec:
    """How ffmpeg writes one codec: the encoder, the container, the pixel format and its options."""

    encoder: str
    container: str  # the file suffix, without the dot
    pixel_format: str
    options: tuple[tuple[str, str], ...] = ()
    audio_encoder: str = "aac"


DELIVERY_CODECS: Registry[Codec] = Registry("delivery codec", "[[deliveries]] codec")
DELIVERY_CODECS.register("h264", Codec("libx264", "mp4", "yuv420p"))  # x264 picks High for 8-bit 4:2:0 itself
# the editors' master: ProRes 422 HQ, 10-bit 4:2:2, uncompressed audio in a QuickTime file
DELIVERY_CODECS.register(
    "prores-hq",
    Codec("prores_ks", "mov", "yuv422p10le", (("profile:v", "3"), ("vendor", "apl0")), "pcm_s24le"),
)


class Delivery(BaseModel):
    """One file a render delivers, fully resolved.

    Attributes:
        name: a slug naming the file (``<clip>.<name>.<container>``) and the entry in ``RenderResult.deliveries``.
        aspect: ``"9:16"``, ``"1:1"``, ``"16:9"``, ``"4:5"``.
        resolution: the shorter side in pixels (even).
        fps: the frame rate (exact NTSC rates: 29.97 is 30000/1001); ``None``: the render's.
        loudness, true_peak: the soundtrack's integrated loudness (LUFS) and true-peak ceiling (dBTP).
        codec: a name of :data:`DELIVERY_CODECS`.
        max_bitrate: the video bitrate cap in kbit/s (``None``: quality-targeted only).
        captions: ``"burn"`` (drawn into the picture), ``"sidecar"`` (.srt/.vtt beside a clean
            picture) or ``"none"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    aspect: str
    resolution: int = Field(ge=64, le=4320)
    fps: FrameRate | None = None
    loudness: float = Field(ge=-40, le=-5)
    true_peak: float = Field(-1.0, ge=-12, le=0)
    codec: DELIVERY_CODECS.field_type() = "h264"
    max_bitrate: int | None = Field(None, ge=100, le=500_000)
    captions: Literal["burn", "sidecar", "none"] = "burn"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"a delivery name is a lower-case slug (letters, digits, '-'; at most 40), got {v!r}"
            )
        return v

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v: str) -> str:
        if not _ASPECT.match(v):
            raise ValueError(f'an aspect ratio is written W:H, e.g. "9:16", got {v!r}')
        return v

    @field_validator("resolution")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"`resolution` must be even (4:2:0 and 4:2:2 halve the width), got {v}")
        return v


DELIVERY_PRESETS: Registry[Mapping[str, Any]] = Registry("delivery preset", "[[deliveries]] preset")
"""The shipped targets, each the fields of a :class:`Delivery` but its name."""

_PRESET_COLUMNS = ("aspect", "resolution", "fps", "loudness", "true_peak", "codec", "max_bitrate", "captions")
for _name, *_values in (
    # Reels, TikTok, Shorts: 1080x1920 at 30 fps, H.264 + AAC; the apps play near -14 LUFS
    ("social-vertical", "9:16", 1080, 30, -14.0, -1.0, "h264", 20_000, "burn"),
    ("social-square", "1:1", 1080, 30, -14.0, -1.0, "h264", 20_000, "burn"),
    # YouTube's recommended upload for 1080p SDR at 24-30 fps is 8 Mbit/s; it normalises to about -14 LUFS
    ("youtube", "16:9", 1080, 30, -14.0, -1.0, "h264", 8_000, "sidecar"),
    # EBU R128: -23 LUFS integrated, true peak at most -1 dBTP; a clean picture, subtitles as files
    ("broadcast-1080p25", "16:9", 1080, 25, -23.0, -1.0, "h264", 50_000, "sidecar"),
    # for editors: ProRes 422 HQ at the render's own rate, broadcast loudness, no burnt-in text
    ("mezzanine", "16:9", 1080, None, -23.0, -1.0, "prores-hq", None, "sidecar"),
):
    DELIVERY_PRESETS.register(_name, dict(zip(_PRESET_COLUMNS, _values, strict=True)))


class DeliverySpec(BaseModel):
    """A ``[[deliveries]]`` entry: a ``name``, optionally a ``preset``, and any field of
    :class:`Delivery` to set or override. Without a preset every field without a default is needed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    preset: DELIVERY_PRESETS.field_type() | None = None
    aspect: str | None = None
    resolution: int | None = None
    fps: FrameRate | None = None
    loudness: float | None = None
    true_peak: float | None = None
    codec: DELIVERY_CODECS.field_type() | None = None
    max_bitrate: int | None = None
    captions: Literal["burn", "sidecar", "none"] | None = None


def resolve_delivery(entry: Mapping[str, Any] | DeliverySpec) -> Delivery:
    """The :class:`Delivery` a ``[[deliveries]]`` entry asks for: its preset's fields, then its own.

    Raises:
        ValueError: an unknown preset, a field out of range, or (without a preset) a field missing;
            the message names the delivery and the field.
    """
    spec = entry if isinstance(entry, DeliverySpec) else DeliverySpec.model_validate(dict(entry))
    fields = dict(DELIVERY_PRESETS[spec.preset]) if spec.preset else {}
    fields.update(spec.model_dump(exclude={"preset"}, exclude_none=True))
    return Delivery.model_validate(fields)


def find_delivery(name: str, entries: Iterable[DeliverySpec] = ()) -> Delivery:
    """The delivery ``name`` names: a profile's ``[[deliveries]]`` entry (``entries``), else a preset.

    Raises:
        RequestError: no entry and no preset has that name; the message lists the known ones.
    """
    entries = tuple(entries)
    for entry in entries:
        if entry.name == name:
            return resolve_delivery(entry)
    if name in DELIVERY_PRESETS:
        return resolve_delivery({"name": name, "preset": name})
    known = [e.name for e in entries] + list(DELIVERY_PRESETS)
    raise RequestError(f"unknown delivery {name!r}; use one of: {', '.join(known)}", field="deliveries", value=name,
                       fix="name one of the profile's [[deliveries]] or a delivery preset")  # fmt: skip


def delivery_file(out: Path, delivery: Delivery) -> Path:
    """Where ``delivery`` of the clip bound for ``out`` is written: ``<stem>.<name>.<container>``.

    Example:
        >>> delivery_file(Path("spot.mp4"), find_delivery("mezzanine")).name
        'spot.mezzanine.mov'
    """
    return out.with_name(f"{out.stem}.{delivery.name}.{DELIVERY_CODECS[delivery.codec].container}")
