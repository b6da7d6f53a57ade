"""The brand QC report: measure a clip against its brand profile and say pass / warn / fail.

What is measured (pure functions on :data:`~brandstudio.frames.Frames`):

* :func:`dominant_colours`: the ``k`` colours that cover most of a frame, with their pixel
  share, from PIL's median-cut (or fast-octree) quantiser on a ~128 px copy of the frame.
* :func:`palette_delta_e`: per frame, the pixel-share-weighted mean ΔE2000 (colour-science,
  ``method="CIE 2000"``) of its dominant colours to the nearest brand swatch. The
  ``palette`` check takes the 95th percentile of that over the sampled frames: "95 % of
  the clip is within X of the brand palette".
* :func:`flicker`: mean absolute difference of consecutive frames, in 8-bit levels, per
  transition (measured on the ~128 px analysis frames, so brightness pumping counts fully
  and sensor grain little). The ``flicker`` check takes the mean over all transitions.
* loudness (pyloudnorm, BS.1770) and true peak of the audio against ``[audio]``; the
  render's safety verdicts; whether the frame is one of the profile's aspect ratios.

The ``[qc]`` section of ``brand.toml`` (:class:`~brandstudio.profile.schema.QCSection`)
holds the thresholds. A check that cannot be made (no audio, no palette, no verdicts for a
clip made elsewhere) is ``skip`` and is not counted: the **score** is checks passed over
checks tested, and the overall status is the worst of the tested checks.

:func:`run_qc` measures frames already in memory (a render does this after encoding);
:func:`qc_file` reads any MP4 with moviepy. :meth:`QCReport.to_json` and
:meth:`QCReport.to_html` (one self-contained page: inline CSS, base64 JPEG thumbnails,
matplotlib plots as inline PNG) write the report.

Example:
    >>> import numpy as np
    >>> from brandstudio.qc import dominant_colours, flicker
    >>> frame = np.zeros((64, 64, 3), np.uint8); frame[:, :16] = (242, 230, 216)
    >>> colours, weights = dominant_colours(frame, 5)
    >>> colours.tolist(), weights.round(2).tolist()
    ([[0, 0, 0], [242, 230, 216]], [0.75, 0.25])
    >>> flicker(np.stack([frame, frame, 255 - frame])).round(1).tolist()
    [0.0, 242.2]
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import re
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BrandStudioError, QCError
from .frames import check_frames

__all__ = [
    "ANALYSIS_SIZE",
    "QUANTIZERS",
    "Check",
    "QCCollector",
    "QCReport",
    "dominant_colours",
    "flicker",
    "palette_delta_e",
    "qc_file",
    "run_qc",
    "srgb_to_lab",
]

#: longer side (px) of the copies that colour and flicker are measured on
ANALYSIS_SIZE = 128
#: longer side (px) of the report's thumbnails
THUMB_SIZE = 240
#: thumbnails shown in the HTML report
N_THUMBS = 6
#: PIL quantisers by name (``method=`` of :func:`dominant_colours`)
QUANTIZERS = {"median-cut": 0, "fast-octree": 2}  # PIL.Image.Quantize.MEDIANCUT / FASTOCTREE

STATUSES = ("pass", "warn", "fail", "skip")
_RANK = {"pass": 0, "warn": 1, "fail": 2}


# -- measurements -----------------------------------------------------------------------


def _resize(frame: np.ndarray, longer: int) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    if max(h, w) <= longer:
        return frame
    s = longer / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX))


def dominant_colours(
    frame: np.ndarray, k: int = 5, *, method: str = "median-cut"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` dominant colours of one ``(H, W, 3)`` uint8 frame and their pixel shares.

    The frame is box-downscaled to ~128 px and quantised with PIL (``method``:
    ``"median-cut"`` or ``"fast-octree"``, no dithering). Returns ``(colours, weights)``:
    uint8 ``(m, 3)`` sRGB and float ``(m,)`` summing to 1, most common first; ``m <= k``
    (fewer when the frame has fewer distinct colours).
    """
    from PIL import Image

    if method not in QUANTIZERS:
        raise ValueError(f"`method` must be one of {sorted(QUANTIZERS)}, got {method!r}")
    if not 1 <= int(k) <= 256:
        raise ValueError(f"`k` must be in 1..256, got {k}")
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"`frame` must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    small = np.ascontiguousarray(_resize(frame, ANALYSIS_SIZE))
    q = Image.fromarray(small).quantize(
        colors=int(k), method=Image.Quantize(QUANTIZERS[method]), dither=Image.Dither.NONE
    )
    counts = q.getcolors(maxcolors=256) or []
    pal = np.asarray(q.getpalette()[: 3 * 256], dtype=np.uint8).reshape(-1, 3)
    counts = sorted(counts, key=lambda c: (-c[0], c[1]))
    colours = np.array([pal[i] for _, i in counts], dtype=np.uint8).reshape(-1, 3)
    weights = np.array([n for n, _ in counts], dtype=np.float64)
    return colours, weights / weights.sum()


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 (or [0, 1] float) sRGB ``(..., 3)`` -> CIE L*a*b* (D65), via colour-science."""
    import colour

    rgb = np.asarray(rgb)
    rgb = rgb / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)
    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(rgb))


def _hex_to_rgb(palette: Sequence[str]) -> np.ndarray:
    return np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in palette], dtype=np.uint8)


def _nearest_delta_e(colours: np.ndarray, palette_lab: np.ndarray) -> np.ndarray:
    import colour

    lab = srgb_to_lab(colours)
    de = colour.delta_E(lab[:, None, :], palette_lab[None, :, :], method="CIE 2000")
    return np.asarray(de, dtype=np.float64).reshape(len(colours), len(palette_lab)).min(axis=1)


def palette_delta_e(
    frames: np.ndarray, palette: Sequence[str], k: int = 5, *, method: str = "median-cut"
) -> np.ndarray:
    """Per frame: the pixel-share-weighted mean ΔE2000 of its ``k`` dominant colours to the
    nearest swatch of ``palette`` (hex strings). Returns float ``(T,)``; 0 means every
    dominant colour is a brand swatch.
    """
    frames = check_frames(frames)
    if not palette:
        raise ValueError("`palette` is empty: there is nothing to measure against")
    palette_lab = srgb_to_lab(_hex_to_rgb(palette))
    out = np.empty(len(frames))
    for i, frame in enumerate(frames):
        colours, weights = dominant_colours(frame, k, method=method)
        out[i] = float(np.dot(weights, _nearest_delta_e(colours, palette_lab)))
    return out


def flicker(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference (8-bit levels, over pixels and channels) between each frame and
    the one before it: float ``(T - 1,)``. A still clip gives 0, alternating black and white 255.
    """
    frames = check_frames(frames)
    if len(frames) < 2:
        return np.zeros(0)
    out = np.empty(len(frames) - 1)
    for i in range(1, len(frames)):
        out[i - 1] = np.abs(frames[i].astype(np.int16) - frames[i - 1].astype(np.int16)).mean()
    return out


# -- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One guideline measured: its value, thresholds, verdict and a sentence saying why."""

    name: str
    status: str  # "pass" | "warn" | "fail" | "skip"
    value: float | None
    unit: str
    warn: float | None
    fail: float | None
    explanation: str


@dataclass(frozen=True)
class QCReport:
    """What the QC stage measured and decided, for one clip. JSON and HTML renderings.

    ``status`` is the worst status of the tested checks, ``score`` is ``"passed/tested"``
    (skipped checks are not tested). ``delta_e``/``sample_indices`` are per sampled frame,
    ``flicker`` per transition, ``dominant`` the sampled frames' dominant colours as
    ``(hex, share)`` pairs. ``thumbnails`` (JPEG bytes) go into the HTML, not the JSON.
    """

    status: str
    score: str
    passed: int
    tested: int
    checks: tuple[Check, ...]
    profile_id: str
    profile_fingerprint: str
    clip: str | None = None
    model: str | None = None
    seed: int | None = None
    frames: int = 0
    fps: float | None = None
    width: int = 0
    height: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)
    safety: tuple[Mapping[str, str], ...] = ()
    loudness: float | None = None
    true_peak: float | None = None
    palette: tuple[str, ...] = ()
    sample_indices: tuple[int, ...] = ()
    delta_e: tuple[float, ...] = ()
    flicker: tuple[float, ...] = ()
    dominant: tuple[tuple[tuple[str, float], ...], ...] = ()
    thresholds: Mapping[str, float] = field(default_factory=dict)
    created: str = ""
    thumbnails: tuple[bytes, ...] = field(default=(), repr=False, compare=False)

    def check(self, name: str) -> Check:
        """The check called ``name`` (``"palette"``, ``"flicker"``, ``"loudness"``, ...)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    def summary(self) -> dict[str, Any]:
        """Status, score and each check's status and value (what a ``RenderResult`` keeps)."""
        return {
            "status": self.status,
            "score": self.score,
            "checks": {c.name: {"status": c.status, "value": c.value} for c in self.checks},
        }

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("thumbnails")
        return d

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> QCReport:
        d = json.loads(text)
        d["checks"] = tuple(Check(**c) for c in d["checks"])
        d["safety"] = tuple(d["safety"])
        d["dominant"] = tuple(tuple((h, w) for h, w in frame) for frame in d["dominant"])
        for key in ("palette", "sample_indices", "delta_e", "flicker"):
            d[key] = tuple(d[key])
        return cls(**d)

    def to_html(self) -> str:
        """One self-contained HTML page (inline CSS, images as data: URIs)."""
        return _html(self)

    def __str__(self) -> str:
        lines = [f"QC {self.status.upper()} {self.score}  {self.clip or ''}".rstrip()]
        for c in self.checks:
            v = "-" if c.value is None else f"{c.value:g} {c.unit}".strip()
            lines.append(f"  {c.status:<4}  {c.name:<10} {v:<16} {c.explanation}")
        return "\n".join(lines)


def _grade(name: str, value: float, warn: float, fail: float, unit: str, what: str) -> Check:
    if value > fail:
        status, why = "fail", f"{what} {value:.1f}{unit} is over the fail threshold {fail:g}{unit}"
    elif value > warn:
        status, why = "warn", f"{what} {value:.1f}{unit} is over the warn threshold {warn:g}{unit}"
    else:
        status, why = "pass", f"{what} {value:.1f}{unit} is within {warn:g}{unit}"
    return Check(name, status, round(float(value), 3), unit.strip(), warn, fail, why)


def _skip(name: str, unit: str, why: str, value: float | None = None) -> Check:
    return Check(name, "skip", value, unit, None, None, why)


def _profile(profile):
    from .profile.loader import BrandProfile, load_profile

    return profile if isinstance(profile, BrandProfile) else load_profile(profile)


class _Collector:
    """Downscales frames as they stream in: every frame to the analysis size (for colour and
    flicker) and every ``stride``-th one to thumbnail size, so a long file never sits in memory."""

    def __init__(self, expected: int) -> None:
        self.small: list[np.ndarray] = []
        self.thumbs: dict[int, np.ndarray] = {}
        self.stride = max(1, expected // (4 * N_THUMBS))
        self.shape: tuple[int, int] | None = None

    def add(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise QCError(f"frames must be RGB (H, W, 3), got a frame of shape {frame.shape}")
        i = len(self.small)
        if self.shape is None:
            self.shape = frame.shape[:2]
        elif frame.shape[:2] != self.shape:
            raise QCError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, frame 0 was "
                          f"{self.shape[1]}x{self.shape[0]}")  # fmt: skip
        self.small.append(_resize(frame, ANALYSIS_SIZE))
        if i % self.stride == 0:
            self.thumbs[i] = _resize(frame, THUMB_SIZE)


class QCCollector:
    """A stream observer that keeps what QC measures, so QC never needs the whole delivered clip.

    Give it to a streamed post stage (:func:`brandstudio.post.stream.run_stream`) as an
    observer, ``collector(start, frames)`` with the chunks in order, then pass it to
    :func:`run_qc` in place of the frames. It keeps an analysis-size copy (~128 px) of every
    frame (for the palette samples and the frame-to-frame flicker) and a thumbnail of a few.

    Example:
        >>> import numpy as np
        >>> col = QCCollector(expected=4)
        >>> col(0, np.zeros((2, 72, 128, 3), np.uint8)); col(2, np.full((2, 72, 128, 3), 9, np.uint8))
        >>> col.frames, flicker(np.stack(col.analysis_frames)).tolist()
        (4, [0.0, 9.0, 0.0])
    """

    def __init__(self, expected: int = 0) -> None:
        self._col = _Collector(expected)

    def __call__(self, start: int, frames: np.ndarray) -> None:
        if start != len(self._col.small):
            raise QCError(
                f"QC frames must arrive in order: expected frame {len(self._col.small)}, got {start}"
            )
        for frame in frames:
            self._col.add(frame)

    @property
    def frames(self) -> int:
        """Frames seen so far."""
        return len(self._col.small)

    @property
    def analysis_frames(self) -> list[np.ndarray]:
        """The analysis-size copies, one per frame seen."""
        return list(self._col.small)


def run_qc(
    frames: np.ndarray | QCCollector,
    profile,
    *,
    fps: float | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    clip: str | Path | None = None,
    model: str | None = None,
    seed: int | None = None,
    timings: Mapping[str, float] | None = None,
    safety: Iterable[Mapping[str, str]] | None = None,
) -> QCReport:
    """Measure ``frames`` (uint8 ``(T, H, W, 3)``, or a :class:`QCCollector` that saw a streamed
    clip) against ``profile`` and grade every check.

    Args:
        profile: a :class:`~brandstudio.profile.loader.BrandProfile` or a profile directory.
        fps: the clip's frame rate (for the report and the plots' time axis).
        audio: float ``(n, 2)`` or ``(n,)`` samples in [-1, 1] at ``sample_rate`` (the music
            bed of a render, or a file's soundtrack); ``None`` skips the loudness checks.
        clip, model, seed, timings: recorded in the report as given.
        safety: the render's safety verdicts (``SafetyVerdict.as_dict()``); ``None`` (a clip
            made elsewhere) skips the safety check.
    """
    t0 = time.perf_counter()
    if isinstance(frames, QCCollector):
        col = frames._col
    else:
        try:
            frames = check_frames(frames)
        except ValueError as exc:
            raise QCError(f"cannot run QC: {exc}") from None
        col = _Collector(len(frames))
        for f in frames:
            col.add(f)
    return _report(col, _profile(profile), t0, fps=fps, audio=audio, sample_rate=sample_rate, clip=clip,
                   model=model, seed=seed, timings=timings, safety=safety)  # fmt: skip


def _report(
    col: _Collector, prof, t0: float, *, fps, audio, sample_rate, clip, model, seed, timings, safety
) -> QCReport:
    spec = prof.spec
    qc = spec.qc
    T = len(col.small)
    if T == 0:
        raise QCError(f"{clip or 'the clip'} holds no video frames", file=str(clip) if clip else None)
    H, W = col.shape
    small = np.stack(col.small)
    checks: list[Check] = []

    # 1. palette: weighted ΔE2000 of dominant colours to the nearest swatch, p95 over sampled frames
    n = min(qc.sample_frames, T)
    idx = np.unique(np.linspace(0, T - 1, n).round().astype(int))
    de_warn, de_fail = spec.delta_e_warn, qc.delta_e_fail
    dominant: list[tuple[tuple[str, float], ...]] = []
    for i in idx:
        colours, weights = dominant_colours(small[i], qc.dominant_colours)
        hexes = ["#{:02X}{:02X}{:02X}".format(*c) for c in colours.tolist()]
        dominant.append(tuple((h, round(float(w), 4)) for h, w in zip(hexes, weights, strict=True)))
    per_frame = np.zeros(0)
    if spec.colour.palette:
        palette_lab = srgb_to_lab(_hex_to_rgb(spec.colour.palette))
        per_frame = np.array(
            [
                float(
                    np.dot(
                        [w for _, w in dom], _nearest_delta_e(_hex_to_rgb([h for h, _ in dom]), palette_lab)
                    )
                )
                for dom in dominant
            ]
        )
        p95 = float(np.percentile(per_frame, 95))
        checks.append(_grade("palette", p95, de_warn, de_fail, "",
                             "p95 ΔE2000 of the dominant colours to the nearest brand swatch"))  # fmt: skip
    else:
        checks.append(_skip("palette", "", "the profile has no colour.palette to compare with"))

    # 2. flicker: mean |frame - previous| over all transitions
    fl = flicker(small)
    if len(fl):
        checks.append(_grade("flicker", float(fl.mean()), qc.flicker_warn, qc.flicker_fail, "",
                             "mean absolute change between consecutive frames (8-bit levels)"))  # fmt: skip
    else:
        checks.append(_skip("flicker", "", "a single frame has no transitions"))

    # 3. loudness and true peak of the audio against [audio]
    loudness = peak = None
    if audio is not None:
        loudness, peak, why = _measure_audio(audio, sample_rate)
        loudness = None if loudness is None else float(loudness)
        peak = None if peak is None else float(peak)
    finite = loudness is not None and math.isfinite(loudness)
    if spec.audio is None:
        checks.append(_skip("loudness", "LUFS", "the profile sets no [audio] loudness target",
                             round(loudness, 2) if finite else None))  # fmt: skip
    elif audio is None:
        checks.append(_skip("loudness", "LUFS", "the clip has no audio"))
        checks.append(_skip("true_peak", "dBTP", "the clip has no audio"))
    elif loudness is None:
        checks.append(_skip("loudness", "LUFS", why))
        checks.append(_skip("true_peak", "dBTP", why))
    else:
        target, tol = spec.audio.loudness, qc.loudness_tolerance
        off = abs(loudness - target) if finite else math.inf
        status = "pass" if off <= tol else "warn" if off <= 2 * tol else "fail"
        verdict = {"pass": "within", "warn": "more than", "fail": "more than twice"}[status]
        why = (f"integrated loudness {loudness:.1f} LUFS is {verdict} {tol:g} LU from the target {target:g} LUFS"
               if finite else "the soundtrack is silent")  # fmt: skip
        checks.append(Check("loudness", status, round(off, 2) if finite else None, "LU off target",
                            tol, 2 * tol, why))  # fmt: skip
        ceiling = spec.audio.true_peak
        if math.isfinite(peak):  # 0.1 dB of grace: the AAC encoder's rounding of a limited track
            status = "pass" if peak <= ceiling + 0.1 else "warn" if peak <= ceiling + 1.0 else "fail"
            checks.append(Check("true_peak", status, round(peak, 2), "dBTP", ceiling + 0.1, ceiling + 1.0,
                                f"true peak {peak:.1f} dBTP against the ceiling {ceiling:g} dBTP"))  # fmt: skip
        else:
            checks.append(_skip("true_peak", "dBTP", "the soundtrack is silent"))

    # 4. safety verdicts of the render (prompt and captions)
    verdicts = tuple(dict(v) for v in safety) if safety is not None else ()
    if safety is None:
        checks.append(_skip("safety", "", "no safety verdicts: the clip was not rendered here"))
    else:
        blocked = [v for v in verdicts if v.get("action") == "block"]
        warned = [v for v in verdicts if v.get("action") in ("warn", "blur")]  # blur: NSFW regions pixelated
        if blocked:
            checks.append(Check("safety", "fail", float(len(blocked)), "rules", None, None,
                                "blocked by " + ", ".join(sorted({v["rule"] for v in blocked}))))  # fmt: skip
        elif warned:
            checks.append(Check("safety", "warn", float(len(warned)), "rules", None, None,
                                "review: " + "; ".join(f"{v['rule']} in {v['where']}" for v in warned)))  # fmt: skip
        else:
            checks.append(Check("safety", "pass", 0.0, "rules", None, None,
                                "no safety rule matched the prompt, captions or frames"))  # fmt: skip

    # 5. format: the frame is one of the profile's aspect ratios
    from .profile.schema import parse_aspect

    ratio = W / H
    match = [
        a for a in spec.output.aspects if abs(ratio / (parse_aspect(a)[0] / parse_aspect(a)[1]) - 1) < 0.01
    ]
    if match:
        checks.append(Check("aspect", "pass", round(ratio, 4), "W/H", None, None,
                            f"{W}x{H} is {match[0]}, enabled in output.aspects"))  # fmt: skip
    else:
        checks.append(Check("aspect", "warn", round(ratio, 4), "W/H", None, None,
                            f"{W}x{H} is none of the profile's aspect ratios {list(spec.output.aspects)}"))  # fmt: skip

    # 6. verdict and score
    tested = [c for c in checks if c.status != "skip"]
    passed = sum(c.status == "pass" for c in tested)
    status = max((c.status for c in tested), key=_RANK.__getitem__, default="pass")
    thumbs = _thumbnails(col)
    timings = {**(timings or {}), "qc_analysis": round(time.perf_counter() - t0, 4)}
    return QCReport(
        status=status,
        score=f"{passed}/{len(tested)}",
        passed=passed,
        tested=len(tested),
        checks=tuple(checks),
        profile_id=prof.id,
        profile_fingerprint=prof.fingerprint,
        clip=str(clip) if clip is not None else None,
        model=model,
        seed=seed,
        frames=T,
        fps=float(fps) if fps else None,
        width=W,
        height=H,
        timings=timings,
        safety=verdicts,
        loudness=round(loudness, 3) if loudness is not None and math.isfinite(loudness) else None,
        true_peak=round(peak, 3) if peak is not None and math.isfinite(peak) else None,
        palette=tuple(spec.colour.palette),
        sample_indices=tuple(int(i) for i in idx),
        delta_e=tuple(round(float(v), 3) for v in per_frame),
        flicker=tuple(round(float(v), 3) for v in fl),
        dominant=tuple(dominant),
        thresholds={
            "delta_e_warn": de_warn,
            "delta_e_fail": de_fail,
            "flicker_warn": qc.flicker_warn,
            "flicker_fail": qc.flicker_fail,
        },  # fmt: skip
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        thumbnails=thumbs,
    )


def _measure_audio(audio, sample_rate) -> tuple[float | None, float | None, str]:
    from .audio.music import MIN_LOUDNESS_SECONDS, integrated_loudness, true_peak_db

    if not sample_rate:
        raise QCError("`sample_rate` is required with `audio`", field="sample_rate", value=sample_rate)
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] not in (1, 2) or not np.isfinite(audio).all():
        raise QCError(
            f"`audio` must be finite (n, 2) or (n,) samples, got shape {audio.shape}", field="audio"
        )
    if audio.shape[0] <= MIN_LOUDNESS_SECONDS * sample_rate:
        return (
            None,
            None,
            f"the audio is shorter than {MIN_LOUDNESS_SECONDS} s, too short for integrated loudness",
        )
    return integrated_loudness(audio, sample_rate), true_peak_db(audio, sample_rate), ""


def _thumbnails(col: _Collector) -> tuple[bytes, ...]:
    from PIL import Image

    keys = sorted(col.thumbs)
    pick = sorted({keys[round(j)] for j in np.linspace(0, len(keys) - 1, min(N_THUMBS, len(keys)))})
    out = []
    for i in pick:
        buf = io.BytesIO()
        Image.fromarray(col.thumbs[i]).save(buf, format="JPEG", quality=82)
        out.append(buf.getvalue())
    return tuple(out)


# -- reading a file ---------------------------------------------------------------------


def qc_file(path: str | Path, profile, *, sample_rate: int = 48000) -> QCReport:
    """Run QC on any video file (generated here or not), read with moviepy.

    The frames stream through (downscaled as they arrive; a display rotation, as phone footage
    has, is applied); the soundtrack, if any, is decoded at ``sample_rate`` in its own channel
    layout (mono is measured as mono) for the loudness checks. Model, seed and the rendering
    profile's fingerprint are read from the MP4's ``comment`` tag when brandstudio wrote it.

    Raises :class:`~brandstudio.errors.QCError` if the file is missing, empty, not a video
    (no video stream), or damaged (frames that do not decode, as in a truncated download):
    a damaged clip gets no report, since its checks would measure repeated frames.
    """
    from .errors import EncodeError
    from .media import display_rotation, probe

    t0 = time.perf_counter()
    path = Path(path)
    prof = _profile(profile)
    if not path.is_file():
        raise QCError(f"no such clip: {path}", file=str(path), fix="pass the path of an existing video file")
    again = "export or download the clip again"
    if path.stat().st_size == 0:
        raise QCError(f"{path.name} is empty (0 bytes)", file=str(path), fix=again)
    try:
        info = probe(path)
    except EncodeError:
        raise QCError(
            f"could not read {path.name} as a video: it is not a media file ffmpeg can read (or it is damaged)",
            file=str(path),
            fix="pass a video file ffmpeg can decode (MP4, MOV, WebM, ...)",
        ) from None
    if not info.get("width"):
        raise QCError(
            f"{path.name} has no video stream" + (" (it holds only audio)" if info.get("has_audio") else ""),
            file=str(path),
            fix="pass a video file",
        )
    try:
        from moviepy import VideoFileClip
    except ImportError:  # pragma: no cover - a core dependency
        from .errors import missing_extra

        raise missing_extra("moviepy", "video") from None
    # moviepy 2.2 reads the older `rotate` tag but not ffmpeg 7+'s display matrix: tell it the
    # size ffmpeg's (rotated) frames come out at, or it squeezes them back into the stored size
    turned = display_rotation(path) in (90, 270)
    size = (info["height"], info["width"]) if turned else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clip = VideoFileClip(str(path), audio=False, target_resolution=size)
    except Exception as exc:  # noqa: BLE001 - moviepy/ffmpeg raise many types for unreadable files
        raise QCError(
            f"could not read {path.name} as a video: {_ffmpeg_reason(exc)}",
            file=str(path),
            fix="pass a video file ffmpeg can decode (MP4, MOV, WebM, ...)",
        ) from None
    try:
        fps = float(clip.fps)
        # moviepy takes the file's duration (the longer of video and audio) for the video's: stop at
        # the video stream's own end, so a soundtrack that runs on is not taken for lost frames
        expected = int(round((clip.duration or 0) * fps))
        own = info.get("frames") or round((info.get("video_duration") or 0) * fps)
        expected = min(expected, own) if own else expected
        col = _Collector(expected)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for frame in clip.iter_frames(dtype="uint8"):
                col.add(frame[..., :3])
                if own and len(col.small) >= expected:
                    break  # before moviepy reads past the end
    except Exception as exc:  # noqa: BLE001
        raise QCError(
            f"could not decode {path.name}: {type(exc).__name__}: {str(exc).strip()[:300]}", file=str(path)
        ) from None
    finally:
        clip.close()
    # moviepy repeats the last good frame for each one that does not decode, with a warning
    lost = sum("last valid frame" in str(w.message) for w in caught)
    if lost:
        raise QCError(
            f"{path.name} is damaged or truncated: {lost} of its {max(expected, len(col.small))} frames do not decode",
            file=str(path),
            fix=again,
        )
    audio = None
    if info.get("has_audio"):
        from .errors import AssetError
        from .audio.music import load_audio

        try:
            audio = load_audio(path, sample_rate, keep_mono=True)
        except AssetError as exc:
            raise QCError(
                f"could not decode the soundtrack of {path.name}: {exc.message}", file=str(path), fix=again
            ) from None
    tags = _brandstudio_tags(path)
    return _report(col, prof, t0, fps=fps, audio=audio, sample_rate=sample_rate if audio is not None else None,
                   clip=path, model=tags.get("model"), seed=tags.get("seed"), timings=None, safety=None)  # fmt: skip


def _ffmpeg_reason(exc: Exception) -> str:
    """The useful last lines of a moviepy/ffmpeg error (without log prefixes), or the error itself."""
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", ln).strip() for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Error passing", "output:", "Error opening"))]
    return "; ".join(lines[-2:])[:300] or type(exc).__name__


def _brandstudio_tags(path: Path) -> dict:
    """The provenance JSON brandstudio writes into the MP4 ``comment`` tag ({} if absent)."""
    from .media import probe

    try:
        comment = probe(path).get("metadata", {}).get("comment", "")
        tags = json.loads(comment) if comment.startswith("{") else {}
    except (BrandStudioError, ValueError):
        return {}
    return tags if isinstance(tags, dict) else {}


# -- HTML -------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;
color:#1d1d1f;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.badge{display:inline-block;padding:3px 10px;border-radius:12px;color:#fff;font-weight:600;text-transform:uppercase}
.pass{background:#2e7d32}.warn{background:#ed6c02}.fail{background:#c62828}.skip{background:#9e9e9e}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;
vertical-align:top}th{color:#555;font-weight:600}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12px;word-break:break-all}.thumbs{display:flex;gap:8px;flex-wrap:wrap}.thumbs figure{margin:0}
.thumbs img{height:160px;border-radius:4px}.thumbs figcaption{font-size:12px;color:#666}img.plot{max-width:100%}
"""


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _series_plot(x, y, warn, fail, title, xlabel, ylabel) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.4))
    ax = fig.add_subplot()
    ax.plot(x, y, marker="o" if len(y) <= 40 else None, ms=3, lw=1.5, color="#1f4e79")
    if warn is not None:
        ax.axhline(warn, color="#ed6c02", ls="--", lw=1, label=f"warn {warn:g}")
    if fail is not None:
        ax.axhline(fail, color="#c62828", ls="--", lw=1, label=f"fail {fail:g}")
    top = max([*(y or [0]), fail or 0, warn or 0]) * 1.1 or 1
    ax.set_ylim(0, top)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="upper right", frameon=False)
    ax.grid(alpha=0.25)
    return _png(fig)


def _swatch_plot(r: QCReport) -> str:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows = [("brand palette", [(h, 1 / max(1, len(r.palette))) for h in r.palette])]
    rows += [(f"frame {i}", list(dom)) for i, dom in zip(r.sample_indices, r.dominant, strict=True)]
    fig = Figure(figsize=(7.5, 0.28 * len(rows) + 0.6))
    ax = fig.add_subplot()
    for y, (_, cells) in enumerate(rows):
        x = 0.0
        for hexc, w in cells:
            ax.add_patch(Rectangle((x, -y - 0.4 if y == 0 else -y - 0.35), w, 0.8 if y == 0 else 0.7,
                                   color=hexc, ec="white", lw=0.5))  # fmt: skip
            x += w
    ax.set_xlim(0, 1)
    ax.set_ylim(-len(rows) + 0.4, 0.6)
    ax.set_yticks([-y for y in range(len(rows))], [name for name, _ in rows], fontsize=7)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "25%", "50%", "75%", "100%"], fontsize=7)
    ax.set_title("brand palette (top) and each sampled frame's dominant colours by pixel share",
                 fontsize=10, loc="left")  # fmt: skip
    for s in ax.spines.values():
        s.set_visible(False)
    return _png(fig)


def _html(r: QCReport) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td><span class='badge {c.status}'>{c.status}</span></td><td>{e(c.name)}</td>"
        f"<td>{'' if c.value is None else e(f'{c.value:g} {c.unit}'.strip())}</td>"
        f"<td>{'' if c.warn is None else f'{c.warn:g}'} / {'' if c.fail is None else f'{c.fail:g}'}</td>"
        f"<td>{e(c.explanation)}</td></tr>"
        for c in r.checks
    )
    meta = [
        ("clip", r.clip or "(in memory)"),
        ("profile", r.profile_id),
        ("profile fingerprint", r.profile_fingerprint),
        ("model", r.model or "unknown"),
        ("seed", "unknown" if r.seed is None else str(r.seed)),
        ("frames", f"{r.frames} × {r.width}×{r.height}" + (f" @ {r.fps:g} fps" if r.fps else "")),
        (
            "loudness",
            "-" if r.loudness is None else f"{r.loudness:.1f} LUFS, true peak {r.true_peak:.1f} dBTP",
        ),
        ("timings", ", ".join(f"{k} {v:.2f} s" for k, v in r.timings.items()) or "-"),
        ("created", r.created),
    ]
    meta_rows = "".join(f"<tr><th>{e(k)}</th><td class='mono'>{e(str(v))}</td></tr>" for k, v in meta)
    safety = "".join(
        f"<tr><td>{e(v.get('action', ''))}</td><td>{e(v.get('rule', ''))}</td><td>{e(v.get('where', ''))}</td>"
        f"<td>{e(v.get('matched', ''))}</td><td>{e(v.get('message', ''))}</td></tr>"
        for v in r.safety
    )
    safety_html = (
        "<table><tr><th>action</th><th>rule</th><th>where</th><th>matched</th><th>message</th></tr>"
        f"{safety}</table>"
        if safety
        else "<p>none recorded</p>"
    )
    n_th = len(r.thumbnails)
    thumbs = "".join(
        f"<figure><img alt='frame' src='data:image/jpeg;base64,{base64.b64encode(b).decode('ascii')}'>"
        f"<figcaption>{j + 1} of {n_th}</figcaption></figure>"
        for j, b in enumerate(r.thumbnails)
    )
    t = r.thresholds
    plots = []
    if r.delta_e:
        x = [i / r.fps for i in r.sample_indices] if r.fps else list(r.sample_indices)
        plots.append(_series_plot(x, list(r.delta_e), t.get("delta_e_warn"), t.get("delta_e_fail"),
                                  "palette distance per sampled frame (weighted ΔE2000 to nearest swatch)",
                                  "time (s)" if r.fps else "frame", "ΔE2000"))  # fmt: skip
    if r.flicker:
        x = [(i + 1) / r.fps for i in range(len(r.flicker))] if r.fps else list(range(1, len(r.flicker) + 1))
        plots.append(_series_plot(x, list(r.flicker), t.get("flicker_warn"), t.get("flicker_fail"),
                                  "flicker per transition (mean |frame − previous|)",
                                  "time (s)" if r.fps else "frame", "8-bit levels"))  # fmt: skip
    if r.dominant:
        plots.append(_swatch_plot(r))
    plot_html = "".join(f"<img class='plot' alt='plot' src='{p}'>" for p in plots)
    title = f"QC {r.status} · {r.profile_id} · {Path(r.clip).name if r.clip else 'clip'}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>Brand QC: {e(Path(r.clip).name if r.clip else "clip")}</h1>
<p><span class="badge {r.status}">{r.status}</span> &nbsp; score <b>{r.score}</b> guidelines passed
(of those tested) for <b>{e(r.profile_id)}</b></p>
<h2>Checks</h2>
<table><tr><th>status</th><th>check</th><th>value</th><th>warn / fail at</th><th>why</th></tr>{rows}</table>
<h2>Frames</h2><div class="thumbs">{thumbs or "<p>no thumbnails</p>"}</div>
<h2>Plots</h2>{plot_html}
<h2>Safety verdicts</h2>
{safety_html}
<h2>Provenance</h2><table>{meta_rows}</table>
</body></html>
"""
