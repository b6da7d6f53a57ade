"""The brand profile schema: one pydantic model per ``brand.toml`` section.

Models are frozen and forbid unknown keys, so a typo in ``brand.toml`` is an error rather
than a silently ignored setting. Asset fields hold paths *relative to the profile
directory*; :func:`brandstudio.profile.loader.load_profile` resolves, checks and hashes them.

``brandstudio profile schema`` prints :func:`profile_json_schema` as JSON Schema.

Example:
    >>> from brandstudio.profile.schema import ColourSection
    >>> ColourSection(lut="luts/warm.cube", strength=0.8, palette=["#3b2a20"]).palette
    ('#3B2A20',)
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ASPECT_RATIOS",
    "AudioSection",
    "BrandProfileSpec",
    "BrandSection",
    "CaptionsSection",
    "ColourSection",
    "LabelSection",
    "LogoSection",
    "LoraSpec",
    "ModelSection",
    "OutputSection",
    "PromptSection",
    "QCSection",
    "SafeArea",
    "SafetyRule",
    "SafetySection",
    "SceneSpec",
    "StyleSection",
    "parse_aspect",
    "profile_json_schema",
]

#: aspect ratios a clip can be delivered in, as "W:H".
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:5")

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


def parse_aspect(aspect: str) -> tuple[int, int]:
    """``"9:16"`` -> ``(9, 16)``; raises ``ValueError`` for anything not in ``ASPECT_RATIOS``."""
    if aspect not in ASPECT_RATIOS:
        raise ValueError(f"unsupported aspect ratio {aspect!r}; use one of {', '.join(ASPECT_RATIOS)}")
    w, h = aspect.split(":")
    return int(w), int(h)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _hex(value: str) -> str:
    if not isinstance(value, str) or not _HEX.match(value):
        raise ValueError(f"colour must be a hex string like '#1F4E5F', got {value!r}")
    return value.upper()


class BrandSection(_Section):
    """``[brand]``: who the profile belongs to."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="slug, e.g. 'aurora-coffee'")
    name: str = Field(min_length=1)
    client: str = ""
    version: str = "1.0.0"
    language: str = Field(
        "en", pattern=r"^[a-z]{2}(-[A-Za-z]{2,4})?$", description="BCP-47 language, e.g. 'en', 'zh'"
    )
    region: Literal["eu", "cn", "us", "none"] = Field("none", description="labelling rules to apply")


class ModelSection(_Section):
    """``[model]``: which Wan2.2 checkpoint and how to sample it."""

    id: str = Field("tiny", description="'tiny' (offline toy model), a hub id or a local diffusers directory")
    revision: str | None = None
    preset: Literal["quality", "balanced", "fast"] = "quality"
    steps: int = Field(40, ge=1, le=200)
    guidance_high: float = Field(4.0, ge=0, le=30, description="CFG scale of the high-noise expert")
    guidance_low: float = Field(3.0, ge=0, le=30, description="CFG scale of the low-noise expert")
    flow_shift: float = Field(12.0, gt=0, le=100)
    boundary_ratio: float | None = Field(
        None, gt=0, lt=1, description="expert switch point; default: the checkpoint's"
    )
    width: int = Field(832, ge=16, le=4096, description="landscape generation width (portrait swaps it)")
    height: int = Field(480, ge=16, le=4096, description="landscape generation height (portrait swaps it)")
    fps: int = Field(16, ge=1, le=60, description="frame rate the model generates at")
    max_frames: int = Field(81, ge=5, le=241, description="frames per generated shot (4k+1)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    @model_validator(mode="after")
    def _shapes(self) -> ModelSection:
        for name in ("width", "height"):
            if getattr(self, name) % 16:
                raise ValueError(f"`{name}` must be divisible by 16, got {getattr(self, name)}")
        if (self.max_frames - 1) % 4:
            raise ValueError(f"`max_frames` must be 4k+1 (e.g. 33, 81), got {self.max_frames}")
        return self


class LoraSpec(_Section):
    """``[[style.loras]]``: a style adapter loaded into both experts."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    file: str = Field(description="a .safetensors file inside the profile")
    weight_high: float = Field(1.0, ge=-4, le=4, description="scale in the high-noise expert (transformer)")
    weight_low: float = Field(1.0, ge=-4, le=4, description="scale in the low-noise expert (transformer_2)")
    trigger_words: tuple[str, ...] = ()
    base_model: str = Field(
        description="the model family it was trained for, e.g. 'wan2.2-t2v-a14b' or 'tiny-wan2.2'"
    )


class StyleSection(_Section):
    """``[style]``: LoRA adapters."""

    loras: tuple[LoraSpec, ...] = ()

    @field_validator("loras")
    @classmethod
    def _unique(cls, v):
        names = [lora.name for lora in v]
        if len(set(names)) != len(names):
            raise ValueError(f"LoRA names must be unique, got {names}")
        return v


class ColourSection(_Section):
    """``[colour]``: the grade and the palette the clip is checked against."""

    lut: str | None = Field(None, description=".cube LUT inside the profile")
    strength: float = Field(1.0, ge=0, le=1)
    interpolation: Literal["tetrahedral", "trilinear"] = "tetrahedral"
    palette: tuple[str, ...] = Field((), description="brand swatches as hex '#RRGGBB'")
    delta_e_tolerance: float = Field(12.0, gt=0, le=100, description="p95 ΔE2000 to the nearest swatch")

    @field_validator("palette", mode="before")
    @classmethod
    def _palette(cls, v):
        return tuple(_hex(c) for c in v)


class PromptSection(_Section):
    """``[prompt]``: the brand's look, composed into every prompt."""

    style: str = ""
    negative: str = ""


class SafetyRule(_Section):
    """``[[safety.rules]]``: a regular expression with an id and an action."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    pattern: str
    action: Literal["block", "warn"] = "block"
    message: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v):
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v


class SafetySection(_Section):
    """``[safety]``: what may never appear in a prompt or caption."""

    blocked_terms: tuple[str, ...] = ()
    competitors: tuple[str, ...] = ()
    competitor_action: Literal["block", "warn"] = "block"
    rules: tuple[SafetyRule, ...] = ()
    nsfw: Literal["block", "blur", "warn", "off"] = "block"


class SafeArea(_Section):
    """Margins as fractions of the frame that platform UI may cover."""

    top: float = Field(0.05, ge=0, lt=0.5)
    bottom: float = Field(0.05, ge=0, lt=0.5)
    left: float = Field(0.05, ge=0, lt=0.5)
    right: float = Field(0.05, ge=0, lt=0.5)


def _default_safe_areas() -> dict[str, SafeArea]:
    return {
        "16:9": SafeArea(top=0.06, bottom=0.08, left=0.06, right=0.06),
        "9:16": SafeArea(top=0.12, bottom=0.22, left=0.06, right=0.12),
        "1:1": SafeArea(top=0.06, bottom=0.10, left=0.06, right=0.06),
        "4:5": SafeArea(top=0.08, bottom=0.14, left=0.06, right=0.06),
    }


class CaptionsSection(_Section):
    """``[captions]``: burned-in captions in the brand font."""

    font: str = Field(description="a .ttf/.otf font inside the profile")
    size: float = Field(
        0.055, gt=0, le=0.3, description="font size as a fraction of the frame's shorter side"
    )
    colour: str = "#FFFFFF"
    stroke_colour: str = "#000000"
    stroke_width: float = Field(0.08, ge=0, le=0.5, description="stroke as a fraction of the font size")
    position: Literal["bottom", "top", "center"] = "bottom"
    max_lines: int = Field(2, ge=1, le=6)
    safe_area: dict[str, SafeArea] = Field(default_factory=_default_safe_areas)

    _c = field_validator("colour", "stroke_colour")(classmethod(lambda cls, v: _hex(v)))

    @field_validator("safe_area")
    @classmethod
    def _aspects(cls, v):
        bad = [k for k in v if k not in ASPECT_RATIOS]
        if bad:
            raise ValueError(f"safe_area keys must be aspect ratios {ASPECT_RATIOS}, got {bad}")
        return {**_default_safe_areas(), **v}


class LogoSection(_Section):
    """``[logo]``: the brand mark composited on every frame."""

    file: str = Field(description="a PNG (with alpha) inside the profile")
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-right"
    scale: float = Field(0.18, gt=0, le=1, description="logo width as a fraction of the frame's shorter side")
    opacity: float = Field(0.9, ge=0, le=1)


class AudioSection(_Section):
    """``[audio]``: the music bed."""

    tracks: tuple[str, ...] = Field(min_length=1, description="audio files inside the profile")
    loudness: float = Field(-14.0, ge=-40, le=-5, description="integrated loudness target, LUFS")
    true_peak: float = Field(-1.0, ge=-12, le=0, description="true-peak ceiling, dBTP")
    fade_in: float = Field(0.3, ge=0, le=10)
    fade_out: float = Field(1.0, ge=0, le=10)
    sample_rate: int = Field(48000, ge=8000, le=192000)


class LabelSection(_Section):
    """``[label]``: the AI-content label (text per language; shown where the region asks)."""

    text: str | None = Field(None, description="override the region's default wording")
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-left"
    size: float = Field(0.028, gt=0, le=0.2)


class OutputSection(_Section):
    """``[output]``: what is delivered."""

    aspects: tuple[str, ...] = ASPECT_RATIOS
    resolution: int = Field(720, ge=64, le=4320, description="the delivered clip's shorter side, px (even)")
    fps: int = Field(16, ge=1, le=60)
    duration: float = Field(5.0, gt=0, le=120, description="seconds")
    codec: Literal["h264"] = "h264"
    crf: int = Field(18, ge=0, le=51)
    audio_bitrate: str = Field("192k", pattern=r"^\d+k$")

    @field_validator("aspects")
    @classmethod
    def _aspects(cls, v):
        for a in v:
            parse_aspect(a)
        return v

    @field_validator("resolution")
    @classmethod
    def _even(cls, v):
        if v % 2:
            raise ValueError(f"`resolution` must be even (H.264 yuv420p), got {v}")
        return v


class QCSection(_Section):
    """``[qc]``: thresholds that turn the QC report's measurements into pass / warn / fail.

    A value at or under its ``*_warn`` threshold passes, one over ``*_warn`` warns and one
    over ``*_fail`` fails. Every key is optional, so a profile without ``[qc]`` gets these
    defaults:

    * palette: ``delta_e_warn`` defaults to ``colour.delta_e_tolerance`` (the profile's
      existing palette tolerance) and ``delta_e_fail`` to 25 ΔE2000, about where a colour
      reads as a different hue rather than a shade of a brand swatch.
    * flicker: mean absolute difference of consecutive frames in 8-bit levels, measured on
      ~128 px analysis frames. Steady footage with camera motion measures about 1-8;
      ``flicker_warn`` 12 flags pumping exposure or jittery generation, ``flicker_fail`` 30
      flags strobing (alternating black/white frames measure 255).
    * loudness: within ``loudness_tolerance`` LU of ``audio.loudness`` passes, within twice
      that warns, further fails (1 LU is EBU R128's tolerance for live programmes).
    """

    delta_e_warn: float | None = Field(
        None, gt=0, le=100, description="p95 ΔE2000 to warn at; default: colour.delta_e_tolerance"
    )
    delta_e_fail: float = Field(25.0, gt=0, le=100, description="p95 ΔE2000 to fail at")
    flicker_warn: float = Field(12.0, gt=0, le=255, description="mean |frame - previous frame|, 8-bit levels")
    flicker_fail: float = Field(30.0, gt=0, le=255, description="mean |frame - previous frame|, 8-bit levels")
    loudness_tolerance: float = Field(
        1.0, gt=0, le=20, description="LU from audio.loudness that still passes (twice this warns)"
    )
    dominant_colours: int = Field(5, ge=1, le=32, description="dominant colours measured per frame")
    sample_frames: int = Field(16, ge=1, le=1000, description="frames analysed for colour (evenly spaced)")

    @model_validator(mode="after")
    def _order(self) -> QCSection:
        if self.flicker_warn > self.flicker_fail:
            raise ValueError(
                f"`flicker_warn` ({self.flicker_warn:g}) must not exceed `flicker_fail` ({self.flicker_fail:g})"
            )
        if self.delta_e_warn is not None and self.delta_e_warn > self.delta_e_fail:
            raise ValueError(
                f"`delta_e_warn` ({self.delta_e_warn:g}) must not exceed `delta_e_fail` ({self.delta_e_fail:g})"
            )
        return self


class SceneSpec(_Section):
    """``[[scenes]]``: a common scene, pre-rendered into the scene cache."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    prompt: str
    seed: int = Field(0, ge=0, lt=2**63)
    aspect: str = "16:9"


class BrandProfileSpec(_Section):
    """The whole ``brand.toml``."""

    brand: BrandSection
    model: ModelSection = ModelSection()
    style: StyleSection = StyleSection()
    colour: ColourSection = ColourSection()
    prompt: PromptSection = PromptSection()
    safety: SafetySection = SafetySection()
    captions: CaptionsSection
    logo: LogoSection | None = None
    audio: AudioSection | None = None
    label: LabelSection = LabelSection()
    output: OutputSection = OutputSection()
    scenes: tuple[SceneSpec, ...] = ()
    qc: QCSection = QCSection()

    @model_validator(mode="after")
    def _qc_thresholds(self) -> BrandProfileSpec:
        if self.qc.delta_e_warn is None and self.colour.delta_e_tolerance > self.qc.delta_e_fail:
            raise ValueError(
                f"`qc.delta_e_fail` ({self.qc.delta_e_fail:g}) is below the palette warn threshold "
                f"`colour.delta_e_tolerance` ({self.colour.delta_e_tolerance:g}); raise qc.delta_e_fail "
                "or set qc.delta_e_warn"
            )
        return self

    @property
    def delta_e_warn(self) -> float:
        """The palette warn threshold: ``qc.delta_e_warn``, else ``colour.delta_e_tolerance``."""
        return self.qc.delta_e_warn if self.qc.delta_e_warn is not None else self.colour.delta_e_tolerance


def profile_json_schema() -> dict:
    """The JSON Schema of ``brand.toml``."""
    return BrandProfileSpec.model_json_schema()
