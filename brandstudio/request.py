"""RenderRequest (what to render) and RenderResult (what came out). Both are frozen values.

Example:
    >>> from brandstudio import RenderRequest
    >>> req = RenderRequest(template="product-hero", variables={"product": "Night Roast"}, aspect="9:16")
    >>> req.with_aspect("1:1").aspect, req.aspect
    ('1:1', '9:16')
    >>> req.with_variables(product="Day Roast").variables["product"]
    'Day Roast'
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import RequestError
from .files import first_error
from .profile.schema import parse_aspect
from .rates import FrameRate
from .registry import INTERPOLATION_METHODS

__all__ = ["RenderRequest", "RenderResult"]


class RenderRequest(BaseModel):
    """One clip to render.

    Args:
        template: a template name (``brandstudio templates list``).
        variables: the template's variables.
        aspect: ``"16:9"``, ``"9:16"``, ``"1:1"`` or ``"4:5"``; default: the profile's first.
        seed: the generation seed; default: derived from the template and variables, so the
            same request always gives the same clip.
        output: where to write the MP4; default: ``<output_dir>/<profile>/<name>.mp4``.
        duration: seconds; default: the profile's ``output.duration``.
        resolution: the delivered shorter side in px; default: the profile's ``output.resolution``.
        fps: the delivery frame rate (``25``, ``29.97``, ``"30000/1001"``); default: the
            profile's ``output.fps``. Frames between the model's are made by ``interpolation``.
        slowmo: play the generated motion this many times slower (2: half speed); the clip still
            lasts ``duration``, so the model generates ``duration / slowmo`` seconds.
        interpolation: ``"repeat"``, ``"flow"`` or ``"rife"`` (see :mod:`brandstudio.post.interpolate`);
            default: the profile's ``output.interpolation``.
        music_mood: the music's mood (one of the profile's ``[audio]`` track moods); default:
            the template's ``music_mood``, else the profile's ``audio.default_mood``.
        voiceover: an audio file spoken over the music (which ducks under it).
        preset: the speed preset, ``"quality"``, ``"balanced"`` or ``"fast"``; default: the
            profile's ``[model] preset`` (see :mod:`brandstudio.generation.presets`).
        memory: the memory plan, ``"auto"``, ``"resident"``, ``"swap"`` or ``"group-offload"``;
            default: the profile's ``[model] memory``. It never changes the pixels.
        deliveries: names of the profile's ``[[deliveries]]`` or of delivery presets
            (:data:`~brandstudio.deliveries.DELIVERY_PRESETS`): the one generation is encoded
            once per delivery, each at its aspect, size, rate and loudness.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    template: str = Field(min_length=1)
    variables: Mapping[str, Any] = Field(default_factory=dict)
    aspect: str | None = None
    seed: int | None = Field(None, ge=0, lt=2**63)
    output: Path | None = None
    duration: float | None = Field(None, gt=0, le=120)
    resolution: int | None = Field(None, ge=64, le=4320)
    fps: FrameRate | None = None
    slowmo: float = Field(1.0, ge=1.0, le=16.0)
    interpolation: INTERPOLATION_METHODS.field_type() | None = None
    music_mood: str | None = Field(None, min_length=1, max_length=32)
    voiceover: Path | None = None
    preset: Literal["quality", "balanced", "fast"] | None = None
    memory: Literal["auto", "resident", "swap", "group-offload"] | None = None
    deliveries: tuple[str, ...] = ()

    @field_validator("aspect")
    @classmethod
    def _aspect(cls, v):
        if v is not None:
            parse_aspect(v)
        return v

    @field_validator("output")
    @classmethod
    def _mp4(cls, v):
        if v is not None:
            if v.is_dir():
                raise ValueError(f"`output` {str(v)!r} is an existing folder; name a file in it, e.g. {str(v / 'clip.mp4')!r}")
            if v.suffix.lower() not in (".mp4", ".m4v"):
                raise ValueError(
                    f"`output` must name an .mp4 (or .m4v) file (the clip is H.264 + AAC in MP4), got {str(v)!r}"
                )
        return v

    @field_validator("resolution")
    @classmethod
    def _even(cls, v):
        if v is not None and v % 2:
            raise ValueError(f"`resolution` must be even (H.264 yuv420p), got {v}")
        return v

    @classmethod
    def from_arguments(cls, **fields: Any) -> RenderRequest:
        """A request from ``BrandStudio.render()``'s keyword arguments: a bad value is a
        :class:`~brandstudio.errors.RequestError` naming its field, not a pydantic error."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            name, msg, value = first_error(exc)
            plain = "pass plain str/int/float/bool values"
            raise RequestError(
                f"invalid `{name}`: {msg}", field=name, value=value,
                fix=plain if name.startswith("variables.") else "see help(BrandStudio.render) for accepted values",
            ) from None  # fmt: skip

    def with_variables(self, **values: Any) -> RenderRequest:
        """A copy with these variables set (others kept)."""
        return self.model_copy(update={"variables": {**self.variables, **values}})

    def with_aspect(self, aspect: str) -> RenderRequest:
        parse_aspect(aspect)
        return self.model_copy(update={"aspect": aspect})

    def with_preset(self, preset: str, memory: str | None = None) -> RenderRequest:
        """A copy with this speed preset (and memory plan, when given): ``req.with_preset("fast")``."""
        update = {"preset": preset} if memory is None else {"preset": preset, "memory": memory}
        return type(self).model_validate({**dict(self), **update})

    def with_memory(self, memory: str) -> RenderRequest:
        """A copy with this memory plan: ``req.with_memory("swap")``."""
        return type(self).model_validate({**dict(self), "memory": memory})


class RenderResult(BaseModel):
    """A finished clip and everything needed to trace and reproduce it.

    In Jupyter the result displays as an inline video player.
    """

    model_config = ConfigDict(frozen=True)

    path: Path
    subtitles: Path | None
    duration: float
    fps: float
    width: int
    height: int
    aspect: str
    template: str
    variables: Mapping[str, Any]
    prompt: str
    negative_prompt: str
    seed: int
    model_id: str
    profile_id: str
    profile_fingerprint: str
    generation: Mapping[str, Any] = Field(default_factory=dict)
    timings: Mapping[str, float] = Field(default_factory=dict)
    safety: tuple[Mapping[str, str], ...] = ()
    label: str | None = None
    provenance: Mapping[str, Any] | None = None  # C2PA: {"signed": True, "manifest", "signer", ...} or {"signed": False, "reason"}
    cache: str = "off"  # the scene cache: "hit", "miss" (generated and stored) or "off"
    cache_key: str | None = None  # the scene's key in the cache (None when off; per shot in `generation` for multi-shot)
    warnings: tuple[str, ...] = ()  # what the render did differently from what was asked (e.g. a shot not continued)
    qc: Mapping[str, Any] | None = None  # QC status, score and per-check status/value (brandstudio.qc)
    qc_report: Path | None = None  # the HTML QC report beside the clip (.qc.json holds the data)
    music: Mapping[str, Any] | None = None  # the track used (file, mood, how chosen) and the voice-over
    deliveries: tuple[Mapping[str, Any], ...] = ()  # each delivery's file, size, rate, loudness and QC (this result is the first's)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False)

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.path.read_bytes()).decode("ascii")
        cap = html.escape(
            f"{self.profile_id} · {self.template} · {self.aspect} · seed {self.seed} · "
            f"{self.duration:.2f}s @ {self.fps} fps · {self.width}×{self.height}"
        )
        max_w = 360 if self.height > self.width else 640
        return (
            f'<figure style="margin:0"><video controls loop style="max-width:{max_w}px" '
            f'src="data:video/mp4;base64,{data}"></video><figcaption>{cap}</figcaption></figure>'
        )

    def __str__(self) -> str:
        return f"{self.path} ({self.width}x{self.height}, {self.duration:.2f}s @ {self.fps} fps, seed {self.seed})"
