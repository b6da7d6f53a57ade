"""The brand QC report: measure a clip against its brand profile and say pass / warn / fail.

The front door of the QC stage::

    report(frames, profile, *, fps, audio, sample_rate, clip, model, seed, timings, safety,
           on_progress) -> QCReport        # frames in memory, or a QCCollector that saw them stream
    write(report, clip_path) -> (json, html)   # <clip>.qc.json and <clip>.qc.html, atomically
    check_file(path, profile, *, sample_rate=48000) -> QCReport   # any video file
    refuse_unusable(report, clip_files)        # a clip whose frames check failed is not delivered
    check(brief, profile)                      # before any work: the CLIP model loads, its references read

What is measured (:mod:`~brandstudio.qc.metrics`, pure functions on frames): the dominant
colours of the sampled frames and their ΔE2000 to the brand palette (``palette``), the
frame-to-frame change (``flicker``), whether there is footage at all (``frames``: black,
one colour or frozen fails, :mod:`~brandstudio.qc.frames`), the soundtrack's loudness and
true peak against ``[audio]``, the render's safety verdicts, whether the frame is one of the profile's
aspect ratios, and, with a CLIP model (``[qc] clip_model`` or ``$BRANDSTUDIO_CLIP_MODEL``), the
frames' **style** (similarity to the ``[style] references`` stills) and **prompt** adherence
(CLIPScore against the final prompt), :mod:`~brandstudio.qc.style`. The ``[qc]`` section of ``brand.toml`` holds the thresholds. A check that
cannot be made is ``skip`` and not counted: the **score** is checks passed over checks
tested, and the overall status is the worst of the tested checks.

Modules: :mod:`~brandstudio.qc.metrics` (measurements), :mod:`~brandstudio.qc.sampler`
(:class:`QCCollector`), :mod:`~brandstudio.qc.measure` (:func:`report`),
:mod:`~brandstudio.qc.clip` (:func:`check_file`), :mod:`~brandstudio.qc.results`
(:class:`Check`, :class:`QCReport`, :func:`write`), :mod:`~brandstudio.qc.html_report` (the page),
:mod:`~brandstudio.qc.style` (the CLIP model: :func:`clip_checks`, :func:`check`).

Example:
    >>> import numpy as np
    >>> from brandstudio import qc
    >>> frame = np.zeros((64, 64, 3), np.uint8); frame[:, :16] = (242, 230, 216)
    >>> colours, weights = qc.dominant_colours(frame, 5)
    >>> colours.tolist(), weights.round(2).tolist()
    ([[0, 0, 0], [242, 230, 216]], [0.75, 0.25])
    >>> qc.flicker(np.stack([frame, frame, 255 - frame])).round(1).tolist()
    [0.0, 242.2]
"""

from __future__ import annotations

from .clip import check_file
from .frames import frames_check, refuse_unusable
from .measure import report
from .metrics import ANALYSIS_SIZE, QUANTIZERS, dominant_colours, flicker, footage_stats, palette_delta_e
from .results import STATUSES, Check, QCReport, write
from .sampler import QCCollector
from .style import CLIP_MODEL_ENV, NO_CLIP_MODEL, check, clip_checks

__all__ = [
    "ANALYSIS_SIZE",
    "CLIP_MODEL_ENV",
    "NO_CLIP_MODEL",
    "QUANTIZERS",
    "STATUSES",
    "Check",
    "QCCollector",
    "QCReport",
    "check",
    "check_file",
    "clip_checks",
    "dominant_colours",
    "flicker",
    "footage_stats",
    "frames_check",
    "palette_delta_e",
    "refuse_unusable",
    "report",
    "write",
]
