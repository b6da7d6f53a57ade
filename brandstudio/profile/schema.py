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
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..deliveries import DELIVERY_CODECS, DeliverySpec, resolve_delivery
from ..rates import FrameRate
from ..registry import (
    ATTENTION_KERNELS,
    INTERPOLATION_METHODS,
    LABEL_REGIONS,
    LUT_INTERPOLATIONS,
    MATCH_METHODS,
    MEMORY_PLANS,
    NSFW_CLASSES,
    QUANTIZATION_KINDS,
    REFRAME_MODES,
    SIGNING_ALGORITHMS,
    SPEED_PRESETS,
    UPSCALE_METHODS,
)
from ..textmatch import compile_pattern, fold

__all__ = [
    "ASPECT_RATIOS",
    "AudioSection",
    "BalancedSection",
    "BrandProfileSpec",
    "BrandSection",
    "CaptionsSection",
    "ColourSection",
    "FastSection",
    "LabelSection",
    "LogoSection",
    "LoraSpec",
    "ModelSection",
    "MusicTrack",
    "OutputSection",
    "PromptSection",
    "ProvenanceSection",
    "QCSection",
    "ReviewSection",
    "SafeArea",
    "SafetyRule",
    "SafetyTerm",
    "SafetySection",
    "SceneSpec",
    "StyleSection",
    "UpscaleSection",
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
    region: LABEL_REGIONS.field_type() = Field("none", description="labelling rules to apply")


class BalancedSection(_Section):
    """``[model.balanced]``: the cache hook of the ``balanced`` preset, applied to each expert
    separately (see :mod:`brandstudio.generation.presets`)."""

    cache: Literal["mag", "first-block", "taylorseer", "none"] = Field(
        "mag", description="MagCache (calibrated per expert), FirstBlockCache, TaylorSeer or none"
    )
    threshold: float | None = Field(
        None, gt=0, le=1, description="MagCache / FirstBlockCache threshold; default: diffusers' (0.06 / 0.05)"
    )
    retention: float = Field(0.2, ge=0, le=1, description="MagCache: fraction of each expert's steps never skipped")
    max_skip_steps: int = Field(3, ge=1, le=20, description="MagCache: most consecutive skipped steps")
    interval: int = Field(4, ge=1, le=20, description="TaylorSeer: steps between full computations")
    warmup: int = Field(2, ge=0, le=50, description="TaylorSeer: full steps at the start of each expert")

    @field_validator("cache", mode="before")
    @classmethod
    def _refused(cls, v):
        if isinstance(v, str) and v.lower() in ("faster", "faster-cache", "fastercache", "faster_cache"):
            raise ValueError(
                "FasterCache does not work with Wan (it needs both CFG halves in one batch; Wan runs them "
                "separately): use cache = 'mag' or 'first-block'"
            )
        return v


class FastSection(_Section):
    """``[model.fast]``: the step-distilled LoRA of the ``fast`` preset (e.g. lightx2v's), loaded
    into both experts at per-expert weights; the user supplies the file."""

    lora: str = Field(description="a .safetensors step-distilled LoRA inside the profile")
    weight_high: float = Field(1.0, ge=-4, le=4, description="scale in the high-noise expert (0 skips it)")
    weight_low: float = Field(1.0, ge=-4, le=4, description="scale in the low-noise expert (0 skips it)")
    steps: int = Field(4, ge=1, le=50, description="steps the LoRA was distilled for")
    flow_shift: float | None = Field(None, gt=0, le=100, description="default: the quality preset's shift")
    fuse: bool = Field(True, description="fuse the LoRAs into both experts' weights (faster steps)")
    base_model: str | None = Field(None, description="the model family it was trained for, e.g. 'wan2.2-t2v-a14b'")


class ModelSection(_Section):
    """``[model]``: which Wan2.2 checkpoint and how to sample it."""

    id: str = Field("tiny", description="'tiny' (offline toy model), a hub id or a local diffusers directory")
    revision: str | None = None
    preset: SPEED_PRESETS.field_type() = Field("quality", description="speed preset: quality, balanced or fast")
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
    memory: MEMORY_PLANS.field_type() = Field(
        "auto", description="memory plan; auto: the fastest that fits the free GPU memory"
    )
    vae_tiling: bool = Field(False, description="decode the VAE in tiles (less memory)")
    quantization: QUANTIZATION_KINDS.field_type() = Field(
        "none", description="torchao weight quantization of the experts"
    )
    attention: ATTENTION_KERNELS.field_type() = Field(
        "auto", description="attention kernel; auto: as the preset says"
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="compile_repeated_blocks; auto: as the preset says, on CUDA only"
    )
    balanced: BalancedSection = BalancedSection()
    fast: FastSection | None = None

    @model_validator(mode="after")
    def _fast_needs_lora(self) -> ModelSection:
        if self.preset == "fast" and self.fast is None:
            raise ValueError(
                "preset 'fast' needs a step-distilled LoRA: add [model.fast] lora = "
                "\"loras/lightx2v.safetensors\" (the file inside the profile), or use preset 'quality' or 'balanced'"
            )
        return self

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
    """``[style]``: LoRA adapters, and the brand's reference stills they and the LUT learn from."""

    loras: tuple[LoraSpec, ...] = ()
    references: str | None = Field(
        None, description="folder of the brand's reference stills, inside the profile (lut fit, lora train)"
    )

    @field_validator("references")
    @classmethod
    def _inside(cls, v):
        if v is not None and (v.startswith(("/", "\\")) or ".." in v.replace("\\", "/").split("/")):
            raise ValueError(f"`references` must be a folder inside the profile, got {v!r}")
        return v

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
    interpolation: LUT_INTERPOLATIONS.field_type() = "tetrahedral"
    palette: tuple[str, ...] = Field((), description="brand swatches as hex '#RRGGBB'")
    delta_e_tolerance: float = Field(12.0, gt=0, le=100, description="p95 ΔE2000 to the nearest swatch")
    reference: str | None = Field(
        None, description="brand reference still (.png/.jpg/.webp) inside the profile, for colour matching"
    )
    match: MATCH_METHODS.field_type() = Field(
        "off", description="match every frame's colours to `reference` (or the first frame) before the LUT"
    )
    match_strength: float = Field(1.0, ge=0, le=1)
    take_match: Literal["reinhard", "chroma", "off"] = Field(
        "reinhard",
        description="a long take (one scene in several chained generations): each segment's colour "
        "pulled back to the first segment's (chroma: colour only, lightness kept)",
    )

    @field_validator("palette", mode="before")
    @classmethod
    def _palette(cls, v):
        return tuple(_hex(c) for c in v)


class PromptSection(_Section):
    """``[prompt]``: the brand's look, composed into every prompt."""

    style: str = ""
    negative: str = ""


class SafetyRule(_Section):
    """``[[safety.rules]]``: a regular expression with an id and an action.

    Patterns run on RE2 (linear time, whatever the text); one that needs look-arounds or
    back-references runs on the ``regex`` module under a time limit, and is refused here if it
    backtracks catastrophically on adversarial probes.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    pattern: str = Field(min_length=1, max_length=2000)
    action: Literal["block", "warn"] = "block"
    message: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v):
        compile_pattern(v)  # ValueError (syntax, or a backtracking bomb) names the pattern and the fix
        return v


TermMatch = Literal["word", "anywhere"]


class SafetyTerm(_Section):
    """A blocked term or competitor name with its own match mode: ``{ term = "Dunkin", match = "word" }``."""

    term: str = Field(min_length=1, max_length=200)
    match: TermMatch | None = Field(None, description="'word' (whole words) or 'anywhere' (inside words, hashtags)")

    @field_validator("term")
    @classmethod
    def _has_letters(cls, v):
        return _check_term(v)


def _check_term(term: str) -> str:
    if not any(unicodedata.category(c)[0] in "LN" for c in fold(term).text):
        raise ValueError(f"safety term {term!r} has no letters or digits, so it could never match")
    return term


class SafetySection(_Section):
    """``[safety]``: what may never appear in a prompt or caption."""

    blocked_terms: tuple[str | SafetyTerm, ...] = ()
    competitors: tuple[str | SafetyTerm, ...] = ()
    competitor_action: Literal["block", "warn"] = "block"
    term_match: TermMatch = Field("word", description="where a blocked term given as a string matches")
    competitor_match: TermMatch = Field(
        "anywhere", description="where a competitor name given as a string matches (inside words and hashtags)"
    )
    rules: tuple[SafetyRule, ...] = ()
    nsfw: Literal["block", "blur", "warn", "off"] = Field(
        "block", description="NSFW policy on the delivered frames (brandstudio.safety.frames)"
    )
    nsfw_labels: tuple[str, ...] = Field(
        (), description="detector classes that count as NSFW on top of the default exposed-body classes"
    )
    nsfw_threshold: float = Field(0.5, gt=0, le=1, description="minimum detector score that counts")
    nsfw_interval: float = Field(0.5, gt=0, le=10, description="seconds between checked frames")

    @field_validator("blocked_terms", "competitors")
    @classmethod
    def _terms(cls, v):
        for entry in v:
            if isinstance(entry, str):
                _check_term(entry)
        return v

    @field_validator("nsfw_labels")
    @classmethod
    def _nsfw_labels(cls, v):
        unknown = [x for x in v if x not in NSFW_CLASSES]
        if unknown:
            raise ValueError(f"unknown detector classes {unknown}; use some of {list(NSFW_CLASSES)}")
        return v


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


class MusicTrack(_Section):
    """One ``[audio] tracks`` entry written as a table: ``{file = "music/x.m4a", mood = "calm", bpm = 92}``."""

    file: str = Field(description="an audio file inside the profile")
    mood: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="what the track is for, e.g. calm, upbeat"
    )
    bpm: float | None = Field(None, gt=20, lt=320, description="tempo; sets the beat gap the cut points look for")


class AudioSection(_Section):
    """``[audio]``: the music bed, and how a voice-over is mixed over it.

    ``tracks`` are plain paths or :class:`MusicTrack` tables. Which one a render gets
    (:mod:`brandstudio.audio.tracks`): the tracks of the requested mood (the render's
    ``music_mood``, else its template's, else ``default_mood``; all tracks when there is
    none), then by ``select``: ``"seed"`` (the render's seed), ``"rotate"`` (the next one
    each render) or ``"mood"`` (like ``"seed"``, but a render must name a mood).
    """

    tracks: tuple[str | MusicTrack, ...] = Field(
        min_length=1, description="audio files inside the profile, or {file, mood, bpm} tables"
    )
    select: Literal["seed", "rotate", "mood"] = Field("seed", description="how a track is chosen")
    default_mood: str | None = Field(None, description="the mood of a render that asks for none")
    loudness: float = Field(-14.0, ge=-40, le=-5, description="integrated loudness target, LUFS")
    true_peak: float = Field(-1.0, ge=-12, le=0, description="true-peak ceiling, dBTP")
    fade_in: float = Field(0.3, ge=0, le=10)
    fade_out: float = Field(1.0, ge=0, le=10)
    sample_rate: int = Field(48000, ge=8000, le=192000)
    duck_db: float = Field(12.0, ge=0, le=40, description="how far the music drops under a voice-over, dB")
    duck_attack: float = Field(0.08, ge=0.005, le=2, description="seconds the music takes to drop (ahead of the voice)")
    duck_release: float = Field(0.4, ge=0.01, le=5, description="seconds the music takes to come back after the voice")

    @property
    def track_list(self) -> tuple[MusicTrack, ...]:
        """Every track as a :class:`MusicTrack` (plain paths have no mood or tempo)."""
        return tuple(t if isinstance(t, MusicTrack) else MusicTrack(file=t) for t in self.tracks)

    @property
    def moods(self) -> tuple[str, ...]:
        """The moods the tracks are tagged with, sorted."""
        return tuple(sorted({t.mood for t in self.track_list if t.mood}))

    @model_validator(mode="after")
    def _moods(self) -> AudioSection:
        if self.default_mood is not None and self.default_mood not in self.moods:
            raise ValueError(
                f"`default_mood` {self.default_mood!r} is not the mood of any track "
                f"(moods: {', '.join(self.moods) or 'none: give tracks a mood'})"
            )
        return self


class LabelSection(_Section):
    """``[label]``: the AI-content label (text per language; shown where the region asks)."""

    text: str | None = Field(None, description="override the region's default wording")
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-left"
    size: float = Field(0.028, gt=0, le=0.2)
    show: Literal["region", "clip", "opening"] = Field(
        "region", description="frames that carry the visible label: the region's rule (cn: opening), all, or the opening"
    )
    opening_seconds: float = Field(2.0, ge=2.0, le=60, description="length of the opening label, seconds")
    producer: str | None = Field(
        None, description="cn: AIGC ContentProducer (provider code); default the brand's client or name"
    )


class OutputSection(_Section):
    """``[output]``: what is delivered."""

    aspects: tuple[str, ...] = ASPECT_RATIOS
    resolution: int = Field(720, ge=64, le=4320, description="the delivered clip's shorter side, px (even)")
    fps: FrameRate = Field(16.0, description='the delivery frame rate: 25, 29.97 or "30000/1001"')
    interpolation: INTERPOLATION_METHODS.field_type() = Field(
        "flow", description="how frames between the model's are made when the delivery rate is higher: "
        "repeat (the nearest earlier frame), flow (motion-compensated, no weights), rife (weights needed)"
    )
    interpolation_weights: str | None = Field(
        None, description="RIFE 4.x flownet weights inside the profile (.safetensors, or .pkl/.pth read with "
        "weights_only=True), for interpolation = \"rife\"; default: $BRANDSTUDIO_RIFE_WEIGHTS"
    )
    duration: float = Field(5.0, gt=0, le=120, description="seconds")
    codec: DELIVERY_CODECS.field_type() = Field("h264", description="h264 (MP4) or prores-hq (QuickTime, 10-bit 4:2:2)")
    crf: int = Field(18, ge=0, le=51)
    max_bitrate: int | None = Field(None, ge=100, le=500_000, description="video bitrate cap, kbit/s (VBV)")
    audio_bitrate: str = Field("192k", pattern=r"^\d+k$")
    reframe: REFRAME_MODES.field_type() = Field(
        "centre", description="where the aspect crop sits: the centre, the most salient region, or the faces"
    )
    source_aspect: str | None = Field(
        None, description="generate every clip at this aspect and reframe it to each delivery aspect "
        "(one generation, all aspect ratios, through the scene cache); default: generate at each aspect"
    )

    @field_validator("aspects")
    @classmethod
    def _aspects(cls, v):
        for a in v:
            parse_aspect(a)
        return v

    @field_validator("source_aspect")
    @classmethod
    def _source_aspect(cls, v):
        if v is not None:
            parse_aspect(v)
        return v

    @field_validator("resolution")
    @classmethod
    def _even(cls, v):
        if v % 2:
            raise ValueError(f"`resolution` must be even (H.264 yuv420p), got {v}")
        return v


class UpscaleSection(_Section):
    """``[upscale]``: how frames reach the delivery size (see :mod:`brandstudio.post.upscale`)."""

    method: UPSCALE_METHODS.field_type() = "lanczos"
    weights: str | None = Field(
        None,
        description="Real-ESRGAN weights (.safetensors, or .pth read with weights_only=True) inside the "
        "profile; default: $BRANDSTUDIO_SR_WEIGHTS",
    )
    tile: int = Field(256, ge=0, le=4096, description="tile size in input px for the model (0: whole frames)")
    tile_pad: int = Field(16, ge=0, le=256, description="overlap around each tile, input px")


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
    * style and prompt (:mod:`brandstudio.qc.style`), measured with the CLIP model
      ``clip_model`` (a folder inside the profile, or a hub id already in the Hugging Face
      cache; unset: ``$BRANDSTUDIO_CLIP_MODEL``, the machine's default; neither: both checks are
      skipped). Here *higher is better*: a value at or over ``*_warn`` passes, one under it
      warns, one under ``*_fail`` fails. ``style_*`` is a cosine similarity (-1..1) of CLIP
      image embeddings: each sampled frame to the closest still of ``[style] references``,
      averaged over the frames. With CLIP ViT-B/32, photographs of one subject or shoot
      measure about 0.8-0.9, and unrelated photographs about 0.4-0.55; ``style_warn`` 0.70
      flags a clip that looks like none of the references, ``style_fail`` 0.55 one as far from
      them as an unrelated photograph. ``prompt_*`` is CLIPScore, 100 × max(cosine, 0) of a
      frame's and the final prompt's embeddings (torchmetrics' scale), averaged over the
      frames: text-to-video models score about 26-31 with ViT-B/32 on MSR-VTT, unrelated
      image/text pairs about 15-20; ``prompt_warn`` 22 and ``prompt_fail`` 18. These defaults
      are for ViT-B/32: another CLIP has other ranges, so calibrate them on approved clips.
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
    clip_model: str | None = Field(
        None,
        min_length=1,
        max_length=400,
        description="CLIP model for the style and prompt checks: a folder inside the profile, or a hub id "
        "already in the Hugging Face cache (never downloaded); default: $BRANDSTUDIO_CLIP_MODEL",
    )
    style_warn: float = Field(0.70, ge=-1, le=1, description="cosine to the references to warn under")
    style_fail: float = Field(0.55, ge=-1, le=1, description="cosine to the references to fail under")
    prompt_warn: float = Field(22.0, ge=0, le=100, description="CLIPScore to the prompt to warn under")
    prompt_fail: float = Field(18.0, ge=0, le=100, description="CLIPScore to the prompt to fail under")

    @field_validator("clip_model")
    @classmethod
    def _clip_model_inside(cls, v):
        if v is None:
            return v
        parts = v.replace("\\", "/").split("/")
        absolute = v.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", v)
        if "\x00" in v or v.strip() != v or absolute or ".." in parts:
            raise ValueError(
                f"`clip_model` must be a folder inside the profile or a hub id like "
                f"'openai/clip-vit-base-patch32', got {v!r} (a model elsewhere on this machine: "
                "set $BRANDSTUDIO_CLIP_MODEL instead)"
            )
        return v

    @model_validator(mode="after")
    def _order(self) -> QCSection:
        if self.style_fail > self.style_warn:
            raise ValueError(
                f"`style_fail` ({self.style_fail:g}) must not exceed `style_warn` ({self.style_warn:g}): "
                "higher similarity is better"
            )
        if self.prompt_fail > self.prompt_warn:
            raise ValueError(
                f"`prompt_fail` ({self.prompt_fail:g}) must not exceed `prompt_warn` ({self.prompt_warn:g}): "
                "a higher CLIPScore is better"
            )
        if self.flicker_warn > self.flicker_fail:
            raise ValueError(
                f"`flicker_warn` ({self.flicker_warn:g}) must not exceed `flicker_fail` ({self.flicker_fail:g})"
            )
        if self.delta_e_warn is not None and self.delta_e_warn > self.delta_e_fail:
            raise ValueError(
                f"`delta_e_warn` ({self.delta_e_warn:g}) must not exceed `delta_e_fail` ({self.delta_e_fail:g})"
            )
        return self


class ProvenanceSection(_Section):
    """``[provenance]``: C2PA content credentials on the delivered MP4 (brandstudio.provenance).

    The signer is a PEM certificate chain (leaf first) and its PEM private key.
    ``$BRANDSTUDIO_C2PA_CERT`` / ``$BRANDSTUDIO_C2PA_KEY`` (file paths) take precedence over
    ``cert`` / ``key`` here: keep private keys out of versioned profiles.
    """

    signing: Literal["auto", "required", "off"] = Field(
        "auto", description="auto: sign when a signer is configured; required: refuse to render without one"
    )
    cert: str | None = Field(None, description="PEM certificate chain inside the profile (leaf first)")
    key: str | None = Field(None, description="PEM private key inside the profile (prefer $BRANDSTUDIO_C2PA_KEY)")
    alg: SIGNING_ALGORITHMS.field_type() = "es256"
    tsa_url: str | None = Field(
        None, pattern=r"^https?://", description="RFC 3161 timestamp authority (needs network); none by default"
    )


class ReviewSection(_Section):
    """``[review]``: client sign-off in the review app (``brandstudio serve``).

    With ``required = true`` a clip leaves the app only once approved: its download links and the
    API's file URLs answer 403 until the job's latest review is an approval. The clip page still
    plays it (the reviewers must see it to approve it). Renders outside the app are not affected.
    """

    required: bool = Field(False, description="only approved clips can be downloaded from the review app")


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
    upscale: UpscaleSection = UpscaleSection()
    scenes: tuple[SceneSpec, ...] = ()
    deliveries: tuple[DeliverySpec, ...] = ()
    qc: QCSection = QCSection()
    provenance: ProvenanceSection = ProvenanceSection()
    review: ReviewSection = ReviewSection()

    @field_validator("deliveries")
    @classmethod
    def _deliveries(cls, v: tuple[DeliverySpec, ...]) -> tuple[DeliverySpec, ...]:
        seen: set[str] = set()
        for i, entry in enumerate(v):
            if entry.name in seen:
                raise ValueError(f"deliveries[{i}]: a second delivery named {entry.name!r}; give each its own name")
            seen.add(entry.name)
            try:
                resolve_delivery(entry)  # a preset's fields with the entry's: complete and in range
            except ValueError as exc:
                errors = getattr(exc, "errors", None)
                detail = "; ".join(f"`{'.'.join(map(str, e['loc']))}`: {e['msg']}" for e in errors()) if errors else str(exc)
                raise ValueError(f"delivery {entry.name!r} (deliveries[{i}]): {detail}") from None
        return v

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
