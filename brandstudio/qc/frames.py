"""The **frames** check: is there footage at all? Black, blank (one colour) and frozen clips fail.

A model that goes wrong does not always fail loudly: a LoRA full of NaN renders black frames
(NaN becomes 0 in uint8), a collapsed model one flat colour, a broken decode one frame
repeated. Palette, flicker and loudness can all pass on such a clip (black has no flicker; a
grade can lift black into the palette). This check measures what makes footage footage
(:func:`~brandstudio.qc.metrics.footage_stats`, on the ~128 px analysis frames) and fails a
clip that is

* **black**: nine frames in ten have a median luma under :data:`BLACK_LUMA`;
* **blank**: nine frames in ten are one colour over at least 80 % of their pixels (colour
  spread under :data:`BLANK_SPREAD`);
* **frozen**: the median pixel changes less than :data:`FROZEN_MOTION` over the whole clip.

Why these thresholds: the demo renders (the tiny model's noise-like footage under the brand
LUT, a logo, captions and the AI label) measure a luma of ~140, a spread of 45-65 levels and
a motion of 9-13 levels; the same renders with a NaN LoRA measure a luma of 5 (aurora's LUT)
or 19 (qinglan's LUT lifts black), a spread of 0 and a motion of 0. Real footage sits far
from the limits too: a night scene's median luma is well above video black (16), a product
shot on a seamless background still has more than 4 levels of gradient and grain over 80 %
of its pixels, and locked-off footage still moves its pixels by more than half a level over
a clip (grain, light, compression). A render whose frames fail is not delivered
(:func:`refuse_unusable`).

Example:
    >>> import numpy as np
    >>> frames_check({"luma": 3.0, "spread": 0.0, "motion": 0.0}).status
    'fail'
    >>> frames_check({"luma": 140.0, "spread": 60.0, "motion": 12.0}).explanation
    'footage: median luma 140, colour spread 60, motion 12 (8-bit levels): not black, blank or frozen'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from brandstudio.errors import QCError

from .results import Check, QCReport

__all__ = [
    "BLACK_LUMA",
    "BLANK_SPREAD",
    "FROZEN_MOTION",
    "frames_check",
    "frames_problems",
    "refuse_unusable",
]

#: a clip is black when nine frames in ten have a median luma under this (video black is 16 of 255)
BLACK_LUMA = 16.0
#: a clip is blank when nine frames in ten spread their colours less than this (8-bit levels)
BLANK_SPREAD = 4.0
#: a clip is frozen when its median pixel's standard deviation over the clip is under this
FROZEN_MOTION = 0.5

THRESHOLDS = {
    "frames_black_luma": BLACK_LUMA,
    "frames_blank_spread": BLANK_SPREAD,
    "frames_frozen_motion": FROZEN_MOTION,
}


def frames_problems(stats: Mapping[str, float]) -> list[str]:
    """What is wrong with the footage ``stats`` describe: ``"black: ..."``, ``"blank: ..."``,
    ``"frozen: ..."`` (empty for real footage)."""
    problems = []
    if stats["luma"] < BLACK_LUMA:
        problems.append(
            f"black: median luma {stats['luma']:.1f} is under {BLACK_LUMA:g} in nine frames in ten"
        )
    if stats["spread"] < BLANK_SPREAD:
        problems.append(
            f"blank: one colour over 80 % of nine frames in ten (colour spread {stats['spread']:.1f} < {BLANK_SPREAD:g})"
        )
    motion = stats["motion"]
    if not math.isnan(motion) and motion < FROZEN_MOTION:
        problems.append(
            f"frozen: the picture does not move (median pixel change {motion:.2f} < {FROZEN_MOTION:g})"
        )
    return problems


def frames_check(stats: Mapping[str, float]) -> Check:
    """The ``frames`` check on :func:`~brandstudio.qc.metrics.footage_stats`: fail when the
    footage is black, blank or frozen, naming which; pass otherwise."""
    problems = frames_problems(stats)
    if problems:
        why = "; ".join(problems) + " (as a model that produced NaN, or a broken LoRA, renders)"
        return Check("frames", "fail", float(len(problems)), "problems", None, None, why)
    motion = stats["motion"]
    moving = "single frame" if math.isnan(motion) else f"motion {motion:.0f}"
    return Check("frames", "pass", 0.0, "problems", None, None,
                 f"footage: median luma {stats['luma']:.0f}, colour spread {stats['spread']:.0f}, {moving} "
                 "(8-bit levels): not black, blank or frozen")  # fmt: skip


def refuse_unusable(report: QCReport, clip_files: Iterable[Path]) -> None:
    """Refuse to deliver a clip whose ``frames`` check failed: remove ``clip_files`` (the MP4
    and its captions; the QC report stays, to show why) and raise
    :class:`~brandstudio.errors.QCError` naming the check and the fix. Nothing happens when the
    check passed or was not made."""
    try:
        check = report.check("frames")
    except KeyError:
        return
    if check.status != "fail":
        return
    for path in clip_files:
        Path(path).unlink(missing_ok=True)
    where = Path(report.clip).with_suffix(".qc.html") if report.clip else None
    raise QCError(
        f"QC frames check failed, so the clip was not delivered: {check.explanation}"
        + (f". The QC report is kept: {where}" if where else ""),
        file=str(where) if where else None,
        field="qc.frames",
        fix="the model made no usable footage: run `brandstudio profile validate` on the profile (it "
        "checks every LoRA's weights), render without the LoRAs or with lower weight_high/weight_low "
        "to find the cause, or try another seed or prompt",
    )
