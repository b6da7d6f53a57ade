"""What QC decided: one :class:`Check` per guideline, and the :class:`QCReport` of a clip.

A check that cannot be made (no audio, no palette, no verdicts for a clip made elsewhere) is
``skip`` and is not counted: the **score** is checks passed over checks tested, and the
overall status is the worst of the tested checks. :func:`write` puts a report beside its
clip as ``<clip>.qc.json`` and ``<clip>.qc.html``.

Example:
    >>> checks = [grade("flicker", 3.0, 12, 30, "", "mean change"), skipped("loudness", "LUFS", "no audio")]
    >>> checks[0].status, checks[0].explanation, overall(checks)
    ('pass', 'mean change 3.0 is within 12', ('pass', 1, 1))
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brandstudio.files import write_text_atomic

from .html_report import render_html

__all__ = ["STATUSES", "Check", "QCReport", "grade", "grade_min", "overall", "skipped", "write"]

#: what a check's ``status`` can be
STATUSES = ("pass", "warn", "fail", "skip")
_RANK = {"pass": 0, "warn": 1, "fail": 2}


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
    ``(hex, share)`` pairs, ``footage`` what the frames check measured (``luma``, ``spread``,
    ``motion``: :func:`~brandstudio.qc.metrics.footage_stats`). ``thumbnails`` (JPEG bytes) go into the HTML, not the JSON.
    ``clip_model`` is the CLIP model the style and prompt checks used (None: none configured),
    ``clip_indices`` the frames it saw, ``style_similarity`` and ``prompt_score`` its per-frame
    values (:mod:`~brandstudio.qc.style`).
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
    footage: Mapping[str, float | None] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    clip_model: str | None = None
    clip_indices: tuple[int, ...] = ()
    style_similarity: tuple[float, ...] = ()
    prompt_score: tuple[float, ...] = ()
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
        """Every field but the thumbnails, as plain data."""
        d = dataclasses.asdict(self)
        d.pop("thumbnails")
        return d

    def to_json(self) -> str:
        """The report as indented JSON (no thumbnails)."""
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> QCReport:
        """The report :meth:`to_json` wrote (without its thumbnails)."""
        d = json.loads(text)
        d["checks"] = tuple(Check(**c) for c in d["checks"])
        d["safety"] = tuple(d["safety"])
        d["dominant"] = tuple(tuple((h, w) for h, w in frame) for frame in d["dominant"])
        for key in ("palette", "sample_indices", "delta_e", "flicker", "clip_indices", "style_similarity",
                    "prompt_score"):  # fmt: skip
            if key in d:  # a report written before the CLIP checks has no CLIP fields
                d[key] = tuple(d[key])
        return cls(**d)

    def to_html(self) -> str:
        """One self-contained HTML page (inline CSS, images as data: URIs)."""
        return render_html(self)

    def __str__(self) -> str:
        lines = [f"QC {self.status.upper()} {self.score}  {self.clip or ''}".rstrip()]
        for c in self.checks:
            v = "-" if c.value is None else f"{c.value:g} {c.unit}".strip()
            lines.append(f"  {c.status:<4}  {c.name:<10} {v:<16} {c.explanation}")
        return "\n".join(lines)


def grade(name: str, value: float, warn: float, fail: float, unit: str, what: str) -> Check:
    """The check ``name`` for a measurement where higher is worse: pass up to ``warn``, warn up
    to ``fail``, fail over it; ``what`` starts the explanation."""
    if value > fail:
        status, why = "fail", f"{what} {value:.1f}{unit} is over the fail threshold {fail:g}{unit}"
    elif value > warn:
        status, why = "warn", f"{what} {value:.1f}{unit} is over the warn threshold {warn:g}{unit}"
    else:
        status, why = "pass", f"{what} {value:.1f}{unit} is within {warn:g}{unit}"
    return Check(name, status, round(float(value), 3), unit.strip(), warn, fail, why)


def grade_min(
    name: str, value: float, warn: float, fail: float, unit: str, what: str, digits: int = 2
) -> Check:
    """The check ``name`` for a measurement where higher is better (a similarity): pass at or
    over ``warn``, warn under it, fail under ``fail``; ``what`` starts the explanation.

    Example:
        >>> grade_min("style", 0.61, 0.7, 0.55, "cos", "similarity").explanation
        'similarity 0.61 is under the warn threshold 0.7'
    """
    if value < fail:
        status, why = "fail", f"{what} {value:.{digits}f} is under the fail threshold {fail:g}"
    elif value < warn:
        status, why = "warn", f"{what} {value:.{digits}f} is under the warn threshold {warn:g}"
    else:
        status, why = "pass", f"{what} {value:.{digits}f} is at or over {warn:g}"
    return Check(name, status, round(float(value), 4), unit, warn, fail, why)


def skipped(name: str, unit: str, why: str, value: float | None = None) -> Check:
    """The check ``name``, not made (and not counted in the score), because ``why``."""
    return Check(name, "skip", value, unit, None, None, why)


def overall(checks: Sequence[Check]) -> tuple[str, int, int]:
    """``(status, passed, tested)``: the worst status of the tested (not skipped) checks."""
    tested = [c for c in checks if c.status != "skip"]
    passed = sum(c.status == "pass" for c in tested)
    status = max((c.status for c in tested), key=_RANK.__getitem__, default="pass")
    return status, passed, len(tested)


def write(report: QCReport, clip_path: str | Path) -> tuple[Path, Path]:
    """Write ``report`` beside its clip, atomically: ``<clip>.qc.json`` and ``<clip>.qc.html``.
    Returns both paths (JSON first)."""
    clip_path = Path(clip_path)
    json_path = write_text_atomic(clip_path.with_suffix(".qc.json"), report.to_json())
    html_path = write_text_atomic(clip_path.with_suffix(".qc.html"), report.to_html())
    return json_path, html_path
