"""Measuring a clip against its brand profile: every check graded, in one :class:`QCReport`.

:func:`report` takes frames in memory (or a :class:`~brandstudio.qc.QCCollector` that saw them
stream past) and the clip's soundtrack, and measures, in order:

1. **palette**: the 95th percentile over the sampled frames of each frame's weighted ΔE2000
   to the nearest brand swatch ("95 % of the clip is within X of the brand palette");
2. **flicker**: the mean over all transitions of ``|frame - previous|`` (8-bit levels);
   **frames**: whether there is footage at all: black, blank (one colour) or frozen fails
   (:mod:`~brandstudio.qc.frames`);
3. **loudness** and **true_peak** (pyloudnorm, BS.1770) against ``[audio]``;
4. **safety**: the render's safety verdicts;
5. **aspect**: whether the frame is one of the profile's aspect ratios;
6. **style** and **prompt**, with a CLIP model (:mod:`~brandstudio.qc.style`): the sampled
   frames' similarity to the profile's ``[style] references`` stills and their CLIPScore
   against the final prompt (skipped, with the reason, when no CLIP model is configured);
7. the verdict and score.

The ``[qc]`` section of ``brand.toml`` (:class:`~brandstudio.profile.schema.QCSection`)
holds the thresholds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from brandstudio.audio.music import MIN_LOUDNESS_SECONDS, integrated_loudness, true_peak_db
from brandstudio.errors import QCError
from brandstudio.frames import check_frames, srgb_to_lab
from brandstudio.profile import BrandProfile, load_profile, parse_aspect
from brandstudio.progress import ProgressCallback, stage_reporter

from .frames import THRESHOLDS as FRAMES_THRESHOLDS
from .frames import frames_check
from .metrics import dominant_colours, flicker, footage_stats, hex_to_rgb, nearest_delta_e
from .results import Check, QCReport, grade, overall, skipped
from .sampler import QCCollector
from .style import clip_checks

__all__ = ["CHECK_STEPS", "measure", "report", "resolve_profile"]

#: the measuring steps :func:`report` reports progress for (``stage="qc"``), in order
CHECK_STEPS = ("palette", "flicker", "frames", "loudness", "safety", "aspect", "style", "prompt")


def resolve_profile(profile: BrandProfile | str | Path) -> BrandProfile:
    """``profile`` itself, or the profile loaded from the directory ``profile``."""
    return profile if isinstance(profile, BrandProfile) else load_profile(profile)


def report(
    frames: np.ndarray | QCCollector,
    profile: BrandProfile | str | Path,
    *,
    fps: float | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    clip: str | Path | None = None,
    model: str | None = None,
    seed: int | None = None,
    timings: Mapping[str, float] | None = None,
    safety: Iterable[Mapping[str, str]] | None = None,
    prompt: str | Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
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
        prompt: the final prompt the clip was generated from (a multi-shot clip: each shot's),
            for the CLIP prompt check; ``None`` skips it.
        on_progress: called with ``Progress(stage="qc", step, total, check)`` as each check
            is measured (see :data:`CHECK_STEPS`).
    """
    started = time.perf_counter()
    if isinstance(frames, QCCollector):
        sampled = frames
    else:
        try:
            frames = check_frames(frames)
        except ValueError as exc:
            raise QCError(f"cannot run QC: {exc}") from None
        sampled = QCCollector(len(frames))
        for f in frames:
            sampled.add(f)
    return measure(sampled, resolve_profile(profile), started=started, fps=fps, audio=audio,
                   sample_rate=sample_rate, clip=clip, model=model, seed=seed, timings=timings,
                   safety=safety, prompt=prompt, on_progress=on_progress)  # fmt: skip


def measure(
    sampled: QCCollector,
    profile: BrandProfile,
    *,
    started: float,
    fps: float | None,
    audio: np.ndarray | None,
    sample_rate: int | None,
    clip: str | Path | None,
    model: str | None,
    seed: int | None,
    timings: Mapping[str, float] | None,
    safety: Iterable[Mapping[str, str]] | None,
    prompt: str | Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
) -> QCReport:
    """The report on the frames ``sampled`` holds (what :func:`report` and
    :func:`~brandstudio.qc.check_file` share); ``started`` is the ``time.perf_counter()`` the
    QC analysis began at (its ``qc_analysis`` timing)."""
    spec = profile.spec
    T = sampled.frames
    if T == 0:
        raise QCError(f"{clip or 'the clip'} holds no video frames", file=str(clip) if clip else None)
    H, W = sampled.shape
    small = np.stack(sampled.analysis_frames)
    progress = stage_reporter(on_progress, "qc")
    total = len(CHECK_STEPS)
    progress(0, total)

    # 1. palette: weighted ΔE2000 of dominant colours to the nearest swatch, p95 over sampled frames
    idx = np.unique(np.linspace(0, T - 1, min(spec.qc.sample_frames, T)).round().astype(int))
    dominant = _dominant(small[idx], spec.qc.dominant_colours)
    per_frame, palette = _palette_check(dominant, spec)
    checks = [palette]
    progress(1, total, "palette")

    # 2. flicker: mean |frame - previous| over all transitions
    fl = flicker(small)
    checks.append(_flicker_check(fl, spec.qc))
    progress(2, total, "flicker")

    # 2b. frames: there is footage (not black, one colour or frozen), overlays or not
    footage = footage_stats(small)
    checks.append(frames_check(footage))
    progress(3, total, "frames")

    # 3. loudness and true peak of the audio against [audio]
    loudness, peak, audio_checks = _audio_checks(audio, sample_rate, spec)
    checks += audio_checks
    progress(4, total, "loudness")

    # 4. safety verdicts of the render (prompt and captions)
    verdicts = tuple(dict(v) for v in safety) if safety is not None else ()
    checks.append(_safety_check(verdicts if safety is not None else None))
    progress(5, total, "safety")

    # 5. format: the frame is one of the profile's aspect ratios
    checks.append(_aspect_check(W, H, spec.output.aspects))
    progress(6, total, "aspect")

    # 6. style and prompt: CLIP similarity to the brand's reference stills, CLIPScore against the prompt
    by_clip = clip_checks(sampled.clip_frames, profile, prompt)
    checks += by_clip.checks
    progress(7, total, "style")
    progress(8, total, "prompt")

    # 7. verdict and score
    status, passed, tested = overall(checks)
    thumbs = sampled.thumbnails()
    timings = {**(timings or {}), "qc_analysis": round(time.perf_counter() - started, 4)}
    return QCReport(
        status=status,
        score=f"{passed}/{tested}",
        passed=passed,
        tested=tested,
        checks=tuple(checks),
        profile_id=profile.id,
        profile_fingerprint=profile.fingerprint,
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
        footage={k: round(v, 3) if math.isfinite(v) else None for k, v in footage.items()},
        dominant=dominant,
        thresholds={
            "delta_e_warn": spec.delta_e_warn,
            "delta_e_fail": spec.qc.delta_e_fail,
            "flicker_warn": spec.qc.flicker_warn,
            "flicker_fail": spec.qc.flicker_fail,
            **FRAMES_THRESHOLDS,
            **by_clip.thresholds,
        },
        clip_model=by_clip.model,
        clip_indices=by_clip.indices,
        style_similarity=by_clip.style,
        prompt_score=by_clip.prompt,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        thumbnails=thumbs,
    )


def _dominant(frames: np.ndarray, k: int) -> tuple[tuple[tuple[str, float], ...], ...]:
    """Each frame's ``k`` dominant colours as ``("#RRGGBB", share)`` pairs."""
    out = []
    for frame in frames:
        colours, weights = dominant_colours(frame, k)
        hexes = ["#{:02X}{:02X}{:02X}".format(*c) for c in colours.tolist()]
        out.append(tuple((h, round(float(w), 4)) for h, w in zip(hexes, weights, strict=True)))
    return tuple(out)


def _palette_check(dominant: Sequence[Sequence[tuple[str, float]]], spec) -> tuple[np.ndarray, Check]:
    """Per sampled frame, the share-weighted ΔE2000 of its dominant colours to the nearest swatch;
    and the palette check on their 95th percentile."""
    if not spec.colour.palette:
        return np.zeros(0), skipped("palette", "", "the profile has no colour.palette to compare with")
    palette_lab = srgb_to_lab(hex_to_rgb(spec.colour.palette))
    per_frame = np.array(
        [
            float(np.dot([w for _, w in dom], nearest_delta_e(hex_to_rgb([h for h, _ in dom]), palette_lab)))
            for dom in dominant
        ]
    )
    p95 = float(np.percentile(per_frame, 95))
    return per_frame, grade("palette", p95, spec.delta_e_warn, spec.qc.delta_e_fail, "",
                            "p95 ΔE2000 of the dominant colours to the nearest brand swatch")  # fmt: skip


def _flicker_check(per_transition: np.ndarray, qc) -> Check:
    if not len(per_transition):
        return skipped("flicker", "", "a single frame has no transitions")
    return grade("flicker", float(per_transition.mean()), qc.flicker_warn, qc.flicker_fail, "",
                 "mean absolute change between consecutive frames (8-bit levels)")  # fmt: skip


def _audio_checks(audio, sample_rate, spec) -> tuple[float | None, float | None, list[Check]]:
    """``(loudness, true peak, checks)``: the soundtrack's integrated loudness (LUFS) and true
    peak (dBTP), and the loudness and true-peak checks against ``[audio]``."""
    loudness = peak = None
    why = "the clip has no audio"
    if audio is not None:
        loudness, peak, why = _measure_audio(audio, sample_rate)
        loudness = None if loudness is None else float(loudness)
        peak = None if peak is None else float(peak)
    finite = loudness is not None and math.isfinite(loudness)
    if spec.audio is None:
        return loudness, peak, [skipped("loudness", "LUFS", "the profile sets no [audio] loudness target",
                                        round(loudness, 2) if finite else None)]  # fmt: skip
    if loudness is None:  # no audio, or too short to measure
        return loudness, peak, [skipped("loudness", "LUFS", why), skipped("true_peak", "dBTP", why)]
    target, tol = spec.audio.loudness, spec.qc.loudness_tolerance
    off = abs(loudness - target) if finite else math.inf
    status = "pass" if off <= tol else "warn" if off <= 2 * tol else "fail"
    verdict = {"pass": "within", "warn": "more than", "fail": "more than twice"}[status]
    why = (f"integrated loudness {loudness:.1f} LUFS is {verdict} {tol:g} LU from the target {target:g} LUFS"
           if finite else "the soundtrack is silent")  # fmt: skip
    value = round(off, 2) if finite else None
    checks = [Check("loudness", status, value, "LU off target", tol, 2 * tol, why)]
    ceiling = spec.audio.true_peak
    if math.isfinite(peak):  # 0.1 dB of grace: the AAC encoder's rounding of a limited track
        status = "pass" if peak <= ceiling + 0.1 else "warn" if peak <= ceiling + 1.0 else "fail"
        checks.append(Check("true_peak", status, round(peak, 2), "dBTP", ceiling + 0.1, ceiling + 1.0,
                            f"true peak {peak:.1f} dBTP against the ceiling {ceiling:g} dBTP"))  # fmt: skip
    else:
        checks.append(skipped("true_peak", "dBTP", "the soundtrack is silent"))
    return loudness, peak, checks


def _measure_audio(audio, sample_rate) -> tuple[float | None, float | None, str]:
    """``(integrated loudness, true peak, "")``, or ``(None, None, why)`` for audio too short to
    measure."""
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
        too_short = f"the audio is shorter than {MIN_LOUDNESS_SECONDS} s, too short for integrated loudness"
        return None, None, too_short
    return integrated_loudness(audio, sample_rate), true_peak_db(audio, sample_rate), ""


def _safety_check(verdicts: Sequence[Mapping[str, str]] | None) -> Check:
    """The render's safety verdicts (prompt, captions, frames); None: the clip was made elsewhere."""
    if verdicts is None:
        return skipped("safety", "", "no safety verdicts: the clip was not rendered here")
    blocked = [v for v in verdicts if v.get("action") == "block"]
    warned = [v for v in verdicts if v.get("action") in ("warn", "blur")]  # blur: NSFW regions pixelated
    if blocked:
        return Check("safety", "fail", float(len(blocked)), "rules", None, None,
                     "blocked by " + ", ".join(sorted({v["rule"] for v in blocked})))  # fmt: skip
    if warned:
        return Check("safety", "warn", float(len(warned)), "rules", None, None,
                     "review: " + "; ".join(f"{v['rule']} in {v['where']}" for v in warned))  # fmt: skip
    return Check(
        "safety", "pass", 0.0, "rules", None, None, "no safety rule matched the prompt, captions or frames"
    )


def _aspect_check(width: int, height: int, aspects: Sequence[str]) -> Check:
    ratio = width / height
    match = [a for a in aspects if abs(ratio / (parse_aspect(a)[0] / parse_aspect(a)[1]) - 1) < 0.01]
    if match:
        return Check("aspect", "pass", round(ratio, 4), "W/H", None, None,
                     f"{width}x{height} is {match[0]}, enabled in output.aspects")  # fmt: skip
    return Check("aspect", "warn", round(ratio, 4), "W/H", None, None,
                 f"{width}x{height} is none of the profile's aspect ratios {list(aspects)}")  # fmt: skip
