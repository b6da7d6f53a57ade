"""The post stage's front door: the brand's effects, in order, planned for one clip.

:func:`plan` makes a :class:`~brandstudio.post.stream.PostChain` (nothing is computed: the
encoder streams the frames through it chunk by chunk); :func:`check` runs before any work;
:func:`with_label` appends the AI label last, after the frame safety check.

Order, and why::

    colour match ─► reframe ─► grade ─► upscale ─► retime ─► captions ─► logo ─► (NSFW blur) ─► AI label
    (source frames, at the model's rate)           (delivered frames, at the delivery rate)

The reframe crops before the grade (a per-pixel map, so the order changes no pixel): a 9:16
delivery from a landscape generation grades a third of the pixels. The label is the last
effect, so nothing blurs or covers it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..errors import PostError
from ..profile import BrandProfile
from .captions import Captions, CaptionStyle
from .effect import Effect
from .fonts import missing_glyphs
from .grade import Grade, read_lut
from .interpolate import Retime, make_interpolator, timeline
from .label import RegionLabel, label_plan, label_text
from .logo import Logo, load_logo
from .match import ColourMatch, load_reference
from .reframe import Reframe, delivery_size
from .stream import PostChain
from .subtitles import Cue
from .take_match import TakeMatch
from .upscale import Upscale

__all__ = ["bake_ahead", "check", "clip_label", "delivery_size", "grade_of", "plan", "plan_retime", "with_label"]

#: graded LUTs kept per process, so a studio's 48 MiB baked table is read (or baked) once, not per clip
_GRADES: OrderedDict[tuple, Grade] = OrderedDict()
_GRADES_KEPT = 4


def clip_label(profile: BrandProfile) -> str | None:
    """The visible AI label's text for the profile's region and language (None: no label)."""
    spec = profile.spec
    default = label_text(spec.brand.region, spec.brand.language)
    if default is None:
        return None
    return spec.label.text or default


def check(brief, profile: BrandProfile) -> None:
    """Before any work: the caption font has a glyph for every character of the captions and the label."""
    label = clip_label(profile)
    texts = brief.captions + ([label] if label else [])
    missing = sorted(set(missing_glyphs(profile.path("captions.font"), "".join(texts))))
    if missing:
        raise PostError(
            f"the caption font has no glyph for {''.join(missing)!r} (it would render as boxes)",
            profile=profile.id,
            file=profile.assets["captions.font"].rel,
            field="captions.font",
            value="".join(missing),
            fix="use a font that covers these characters, or change the caption text",
        )
    if brief.interpolation == "rife" and "output.interpolation_weights" not in profile.assets:
        raise PostError(
            "interpolation rife needs RIFE weights, and the profile names none",
            profile=profile.id,
            field="output.interpolation_weights",
            value=brief.interpolation,
            fix="set output.interpolation_weights to a RIFE 4.6 flownet file inside the profile (or "
            'output.interpolation = "rife" with BRANDSTUDIO_RIFE_WEIGHTS exported), or use interpolation flow',
        )


def grade_of(profile: BrandProfile, device: str = "auto") -> Grade | None:
    """The :class:`~brandstudio.post.grade.Grade` of the profile's LUT (None without one), kept
    across renders; made anew only when the LUT file changed (``read_lut`` then parses it again)."""
    colour = profile.spec.colour
    if not colour.lut:
        return None
    lut = read_lut(profile.path("colour.lut"))
    key = (id(lut), colour.strength, colour.interpolation, device)
    grade = _GRADES.get(key)
    if grade is None or grade.lut is not lut:
        grade = Grade(lut, strength=colour.strength, method=colour.interpolation, device=device)
        _GRADES[key] = grade
        while len(_GRADES) > _GRADES_KEPT:
            _GRADES.popitem(last=False)
    _GRADES.move_to_end(key)
    return grade


def bake_ahead(profile: BrandProfile, shape: tuple[int, ...], device: str = "auto") -> None:
    """Read or bake the grade's table on a background thread (call it before generating frames of ``shape``)."""
    grade = grade_of(profile, device)
    if grade is not None:
        grade.bake_ahead(shape)


def plan(
    frames: np.ndarray,
    brief,
    profile: BrandProfile,
    *,
    model_fps: float,
    shot_starts: Sequence[int] = (),
    segment_starts: Sequence[int] = (),
    device: str = "auto",
) -> PostChain:
    """The post stage's effects for the generated ``frames``, as a :class:`PostChain`.

    ``frames`` are only read for their count, the colour-match reference (frame 0 unless the
    profile names a still), a long take's segment statistics and the reframe's subject windows.
    ``shot_starts``: the first frame of each shot of a multi-shot clip, so that a subject-aware
    reframe picks one window per shot. ``segment_starts``: the first frame of each generation
    of a long take, each pulled back to the first one's colour (``[colour] take_match``).
    """
    spec = profile.spec
    width, height = delivery_size(brief.aspect, brief.resolution)
    safe = spec.captions.safe_area[brief.aspect]
    source: list[Effect] = []
    if len(segment_starts) > 1 and spec.colour.take_match != "off":  # a long take's drift, segment by segment
        source.append(TakeMatch.planned(frames, segment_starts, spec.colour.take_match))
    if spec.colour.match != "off":  # drifting colour pulled back to the still or frame 0
        ref = load_reference(profile.path("colour.reference")) if spec.colour.reference else frames[0]
        source.append(ColourMatch(spec.colour.match, ref, spec.colour.match_strength))
    source.append(Reframe(brief.aspect, mode=spec.output.reframe, safe_area=safe, shots=tuple(shot_starts)).planned(frames))
    grade = grade_of(profile, device)
    if grade is not None:
        source.append(grade)
    up = spec.upscale
    weights = profile.path("upscale.weights") if up.method == "realesrgan" else None
    source.append(Upscale(width, height, up.method, weights, tile=up.tile, tile_pad=up.tile_pad, device=device))
    retime = plan_retime(len(frames), brief, profile, model_fps, shot_starts, device)
    delivered: list[Effect] = []
    if brief.cues and brief.burn_captions:
        style = CaptionStyle.from_section(spec.captions, profile.path("captions.font"), brief.aspect)
        delivered.append(Captions(tuple(Cue(*cue) for cue in brief.cues), style, brief.fps))
    if spec.logo:
        lg = spec.logo
        rgba = load_logo(profile.path("logo.file"))
        delivered.append(Logo(rgba, position=lg.position, scale=lg.scale, opacity=lg.opacity, margins=safe))
    if isinstance(retime, Retime):
        return PostChain(tuple(source), None, tuple(delivered), retime)
    return PostChain(tuple(source), retime, tuple(delivered))


def plan_retime(n_source: int, brief, profile: BrandProfile, model_fps: float, shot_starts: Sequence[int] = (),
                device: str = "auto") -> Retime | np.ndarray:  # fmt: skip
    """From the model's frame rate to the delivery rate (at ``brief.slowmo`` speed), trimmed to the
    duration: a :class:`~brandstudio.post.interpolate.Retime` that makes the in-between frames by
    ``brief.interpolation``, or the frame map alone where every delivered frame is a generated one
    (the same rate, or ``repeat``). Hard cuts are never mixed across; crossfades mix linearly."""
    n_out = max(1, round(brief.duration * brief.fps))
    crossfades = brief.shots.crossfades if brief.shots is not None else ()
    cuts = [start for start, k in zip(shot_starts, crossfades, strict=False) if start > 0 and k == 0]
    blends = [(start - 1, start + k) for start, k in zip(shot_starts, crossfades, strict=False) if k > 0]
    planned = timeline(n_source, model_fps, brief.fps, n_out, slowmo=brief.slowmo, cuts=cuts, crossfades=blends)
    if brief.interpolation == "repeat" or not planned.alpha.any():
        return planned.left
    weights = profile.path("output.interpolation_weights") if brief.interpolation == "rife" else None
    return Retime(planned, make_interpolator(brief.interpolation, weights, device))


def with_label(chain: PostChain, brief, profile: BrandProfile, *, blur: Effect | None = None) -> PostChain:
    """``chain`` with the NSFW blur (when the frame check asked for one) and the region's visible
    AI label (cn: the opening) as its last effects."""
    label = RegionLabel(
        label_plan(profile.spec), profile.path("captions.font"), profile.spec.captions.safe_area[brief.aspect], brief.fps
    )
    return chain.with_output_effects(blur, label)
