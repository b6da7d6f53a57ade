"""NSFW checks on the delivered frames: nudenet's detector on sampled frames, then block / blur / warn.

The detector is `nudenet <https://pypi.org/project/nudenet/>`_'s 320n model: a small YOLOv8
ONNX network that ships inside the PyPI wheel and runs offline on onnxruntime's CPU provider
(about 20-30 ms a frame on an idle CPU core, ~110-150 ms with six jobs sharing two cores;
nearly independent of the frame size: nudenet letterboxes
every frame to 320 x 320). It is loaded once per process, on the first check that needs it.

What is checked, and why there:

* **the delivered pixels**, after the post stage (grade, reframe, upscale, captions, logo),
  because what ships is what must be safe: a caption or logo can matter, and boxes come back
  in delivery coordinates, ready for blurring. The AI label is drawn after this check so a
  blur can never hide it. Checking the generation canvas instead would be cheaper by nothing
  (the model sees 320 px either way) and would miss what the post stage adds.
* **sampled frames**: one every ``interval`` seconds (``[safety] nsfw_interval``, default
  0.5 s) plus the first and the last frame. Generated footage changes slowly (the model
  makes 16-24 fps of smooth motion), so a half-second grid sees every shot; a 5 s clip
  costs 11 detector calls.
* **classes**: a detection counts when its class is in :data:`DEFAULT_NSFW_CLASSES` (exposed
  genitalia, breasts, buttocks, anus) or in the profile's ``[safety] nsfw_labels`` (which
  *extends* the default set: a profile can make the check stricter, e.g. add
  ``BELLY_EXPOSED`` for a family brand, never weaker) and its score is at least
  ``[safety] nsfw_threshold`` (default 0.5; nudenet itself reports from 0.2).

The policy (``[safety] nsfw``):

* ``block`` (default): any counted detection raises
  :class:`~brandstudio.errors.SafetyViolation` naming the classes, scores, frames and times;
  the render stops before encoding, so nothing is written at the output path.
* ``blur``: every counted box is pixelated (a coarse mosaic: about 8 cells across the box's
  longer side, too coarse to recover what was there) on the sampled frame and on every
  frame up to the neighbouring samples. Between two samples the union of both samples'
  boxes (each padded by 15 %) is covered, so an object moving from one box to the other
  stays hidden. The verdicts record it (``action = "blur"``); QC reports them as warnings.
* ``warn``: the frames are delivered unchanged; the verdicts record the detections.
* ``off``: no check (the detector is not even loaded).

Example:
    >>> import numpy as np
    >>> from brandstudio.safety.frames import FrameSafety, sample_indices
    >>> sample_indices(40, fps=16, interval=0.5)
    [0, 8, 16, 24, 32, 39]
    >>> check = FrameSafety(policy="block")
    >>> frames, verdicts = check.apply(np.full((17, 144, 256, 3), 128, np.uint8), fps=16)
    >>> verdicts
    []
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MissingDependency, SafetyViolation
from ..frames import check_frames
from ..post.effect import Effect
from ..registry import NSFW_CLASSES
from .rules import SafetyVerdict

__all__ = [
    "DEFAULT_NSFW_CLASSES",
    "DEFAULT_THRESHOLD",
    "DETECTOR_CLASSES",
    "Detection",
    "FrameSafety",
    "NsfwBlur",
    "detect",
    "pixelate",
    "sample_indices",
]

#: every class nudenet 3.4's 320n model reports
DETECTOR_CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)  # fmt: skip

#: the classes that always count as NSFW (a profile's ``nsfw_labels`` adds to these)
for _label in DETECTOR_CLASSES:
    NSFW_CLASSES.register(_label, _label)
DEFAULT_NSFW_CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)

#: the minimum detector score that counts (``[safety] nsfw_threshold``)
DEFAULT_THRESHOLD = 0.5
#: seconds between sampled frames (``[safety] nsfw_interval``)
DEFAULT_INTERVAL = 0.5
_PAD = 0.15  # each box grows by this fraction of its size on every side before blurring
_MOSAIC_CELLS = 8  # mosaic cells across a box's longer side

_detector = None
_detector_lock = threading.Lock()


@dataclass(frozen=True)
class Detection:
    """One box nudenet found: ``label`` (a :data:`DETECTOR_CLASSES` name), ``score``, ``box`` (x, y, w, h px)."""

    label: str
    score: float
    box: tuple[int, int, int, int]


def _load_detector():
    """nudenet's detector, created once per process (thread-safe)."""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                try:
                    from nudenet import NudeDetector
                except ImportError:
                    raise MissingDependency(
                        "the NSFW check on frames needs the package `nudenet` (with onnxruntime), "
                        "which is not installed",
                        field="safety.nsfw",
                        fix='pip install nudenet (a core dependency of brandstudio), or set `[safety] nsfw = "off"`',
                    ) from None
                _detector = NudeDetector()
    return _detector


def detect(frames: Iterable[np.ndarray], batch_size: int = 8) -> list[list[Detection]]:
    """Run nudenet on RGB ``uint8`` frames ``(H, W, 3)``; one list of :class:`Detection` per frame.

    Boxes are in the frame's own pixel coordinates. Every detection nudenet reports (score
    >= 0.2 after its non-maximum suppression) is returned; filtering is the caller's.
    """
    images = []
    for f in frames:
        f = np.asarray(f)
        alpha = np.full(f.shape[:2] + (1,), 255, np.uint8)
        # nudenet converts with cv2.COLOR_RGBA2BGR and swaps back to RGB for the model: give it RGBA
        images.append(np.ascontiguousarray(np.concatenate([f, alpha], axis=-1)))
    if not images:
        return []
    raw = _load_detector().detect_batch(images, batch_size=batch_size)
    return [
        [Detection(d["class"], round(float(d["score"]), 4), tuple(int(v) for v in d["box"])) for d in dets]
        for dets in raw
    ]


def sample_indices(n_frames: int, fps: float, interval: float = DEFAULT_INTERVAL) -> list[int]:
    """Frames to check: one every ``interval`` seconds from the first, plus the last.

    Example:
        >>> sample_indices(17, fps=16, interval=0.5)
        [0, 8, 16]
        >>> sample_indices(1, fps=16)
        [0]
    """
    if n_frames <= 0:
        return []
    step = max(1, round(interval * fps))
    idx = list(range(0, n_frames, step))
    if idx[-1] != n_frames - 1:
        idx.append(n_frames - 1)
    return idx


def _pad_box(box: tuple[int, int, int, int], W: int, H: int) -> tuple[int, int, int, int]:
    x, y, w, h = box
    px, py = math.ceil(w * _PAD), math.ceil(h * _PAD)
    x0, y0 = max(0, x - px), max(0, y - py)
    x1, y1 = min(W, x + w + px), min(H, y + h + py)
    return x0, y0, x1, y1


def pixelate(frame: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Pixelate ``frame[y0:y1, x0:x1]`` in place with a coarse mosaic (``box`` = x0, y0, x1, y1).

    Each cell is the mean of the pixels it covers (area resampling), drawn back with
    nearest-neighbour: about :data:`_MOSAIC_CELLS` cells across the longer side.

    Example:
        >>> import numpy as np
        >>> f = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
        >>> g = f.copy(); pixelate(g, (8, 8, 40, 40))
        >>> bool((g[:8] == f[:8]).all()), bool((g[8:40, 8:40] != f[8:40, 8:40]).any())
        (True, True)
    """
    import cv2

    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        return
    cell = max(2, math.ceil(max(w, h) / _MOSAIC_CELLS))
    small = cv2.resize(
        frame[y0:y1, x0:x1], (max(1, math.ceil(w / cell)), max(1, math.ceil(h / cell))), interpolation=cv2.INTER_AREA
    )
    frame[y0:y1, x0:x1] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


@dataclass(frozen=True)
class FrameSafety:
    """The profile's NSFW policy on delivered frames.

    Args:
        policy: ``"block"``, ``"blur"``, ``"warn"`` or ``"off"``.
        extra_classes: detector classes that count on top of :data:`DEFAULT_NSFW_CLASSES`.
        threshold: the minimum score that counts.
        interval: seconds between sampled frames.

    :meth:`apply` returns ``(frames, verdicts)``; see the module docstring for each policy.
    """

    policy: str = "block"
    extra_classes: tuple[str, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    interval: float = DEFAULT_INTERVAL

    def __post_init__(self) -> None:
        if self.policy not in ("block", "blur", "warn", "off"):
            raise ValueError(f"`policy` must be block, blur, warn or off, got {self.policy!r}")
        unknown = sorted(set(self.extra_classes) - set(DETECTOR_CLASSES))
        if unknown:
            raise ValueError(f"unknown detector classes {unknown}; use some of {list(DETECTOR_CLASSES)}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"`threshold` must be in (0, 1], got {self.threshold}")
        if not self.interval > 0:
            raise ValueError(f"`interval` must be positive, got {self.interval}")

    @classmethod
    def from_section(cls, safety) -> FrameSafety:
        """From a profile's :class:`~brandstudio.profile.schema.SafetySection`."""
        return cls(
            policy=safety.nsfw,
            extra_classes=tuple(safety.nsfw_labels),
            threshold=safety.nsfw_threshold,
            interval=safety.nsfw_interval,
        )

    @property
    def classes(self) -> frozenset[str]:
        """The classes that count."""
        return frozenset(DEFAULT_NSFW_CLASSES) | frozenset(self.extra_classes)

    def scan(self, frames: np.ndarray, fps: float) -> dict[int, list[Detection]]:
        """Counted detections per sampled frame index (every sampled index is a key)."""
        idx = sample_indices(len(frames), fps, self.interval)
        found = detect(frames[i] for i in idx)
        wanted = self.classes
        return {i: [d for d in dets if d.label in wanted and d.score >= self.threshold] for i, dets in zip(idx, found, strict=True)}

    def apply(
        self, frames: np.ndarray, fps: float, *, profile: str | None = None
    ) -> tuple[np.ndarray, list[SafetyVerdict]]:
        """Check ``frames`` (delivered, ``(T, H, W, 3)`` uint8) and apply the policy.

        Returns ``(frames, verdicts)``: the frames (a blurred copy under ``blur``, the same
        array otherwise) and one :class:`~brandstudio.safety.rules.SafetyVerdict` per class
        found. Raises :class:`~brandstudio.errors.SafetyViolation` under ``block``.
        """
        frames = check_frames(frames)
        blur, verdicts = self.check(frames, fps, profile=profile)
        return (blur.apply(frames) if blur is not None else frames), verdicts

    def check(self, clip, fps: float, *, profile: str | None = None) -> tuple[NsfwBlur | None, list[SafetyVerdict]]:
        """The policy without touching pixels: scan the sampled frames of ``clip`` and decide.

        ``clip`` is anything with ``len()`` and ``clip[i] -> (H, W, 3)`` uint8: an array, or the
        lazily rendered delivered clip of a streamed post stage
        (:meth:`brandstudio.post.stream.PostChain.frames_at`, which makes only the sampled
        frames). Returns ``(blur, verdicts)``: under ``blur`` an :class:`NsfwBlur` effect to put
        in the stream (``None`` when nothing was found or under ``warn``/``off``). Raises
        :class:`~brandstudio.errors.SafetyViolation` under ``block``.
        """
        if self.policy == "off":
            return None, []
        hits = self.scan(clip, fps)
        verdicts = _verdicts(hits, fps, self.policy, self.threshold)
        if not verdicts:
            return None, []
        if self.policy == "block":
            first = verdicts[0]
            found = "; ".join(f"{v.rule_id.removeprefix('nsfw:')} {v.matched} at {v.where}" for v in verdicts)
            raise SafetyViolation(
                f"the NSFW check blocked the render: {found}",
                rule_id=first.rule_id,
                matched=first.matched,
                verdicts=verdicts,
                profile=profile,
                file="brand.toml",
                field="safety.nsfw",
                value="block",
                fix="change the prompt or seed; or set `[safety] nsfw = \"blur\"` to pixelate the detected "
                "regions instead. Nothing was written",
            )
        if self.policy == "blur":
            H, W = clip[0].shape[:2]
            return NsfwBlur.from_hits(hits, len(clip), W, H), verdicts
        return None, verdicts


def _fmt_times(indices: Sequence[int], fps: float, limit: int = 8) -> str:
    parts = [f"frame {i} ({i / fps:.2f} s)" for i in indices[:limit]]
    more = len(indices) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def _verdicts(hits: dict[int, list[Detection]], fps: float, policy: str, threshold: float) -> list[SafetyVerdict]:
    """One verdict per class: its best score, the frames and times it was seen at."""
    by_label: dict[str, list[tuple[int, Detection]]] = {}
    for i, dets in sorted(hits.items()):
        for d in dets:
            by_label.setdefault(d.label, []).append((i, d))
    out = []
    for label, seen in sorted(by_label.items()):
        best = max(seen, key=lambda s: s[1].score)
        frames_seen = sorted({i for i, _ in seen})
        x, y, w, h = best[1].box
        done = {"block": "blocked", "blur": "pixelated", "warn": "delivered unchanged"}[policy]
        out.append(
            SafetyVerdict(
                rule_id=f"nsfw:{label}",
                action=policy,
                matched=f"score {best[1].score:.2f} (box x={x} y={y} w={w} h={h} at frame {best[0]})",
                where=_fmt_times(frames_seen, fps),
                message=f"nudenet found {label} (score >= {threshold:g}) in {len(frames_seen)} sampled "
                f"frame(s); {done}",
            )
        )
    return out


@dataclass(frozen=True, eq=False)
class NsfwBlur(Effect):
    """Pixelate given boxes on given frames: the ``blur`` policy as a post effect.

    ``boxes[t]`` lists ``(x0, y0, x1, y1)`` boxes for delivered frame ``t``. ``apply_at(frames,
    start)`` works on a block of frames ``start, start + 1, ...`` (a stream of chunks);
    ``apply(frames)`` on a whole clip. Build it with :meth:`from_hits`.
    """

    boxes: dict[int, tuple[tuple[int, int, int, int], ...]]

    @classmethod
    def from_hits(cls, hits: dict[int, list[Detection]], n_frames: int, width: int, height: int) -> NsfwBlur:
        """Boxes per frame from detections on sampled frames (see the module docstring).

        A sampled frame gets its own boxes and its neighbouring samples'; a frame between two
        samples gets the union of both samples' boxes. Every box is padded by 15 %.
        """
        samples = sorted(hits)
        padded = {i: [_pad_box(d.box, width, height) for d in hits[i]] for i in samples}
        out: dict[int, list] = {}
        for k, s in enumerate(samples):
            prev = samples[k - 1] if k > 0 else None
            nxt = samples[k + 1] if k + 1 < len(samples) else None
            around = padded[s] + (padded[prev] if prev is not None else []) + (padded[nxt] if nxt is not None else [])
            if around:
                out[s] = around
            if nxt is not None and (padded[s] or padded[nxt]):
                for t in range(s + 1, min(nxt, n_frames)):
                    out[t] = padded[s] + padded[nxt]
        return cls({t: tuple(dict.fromkeys(b)) for t, b in out.items()})

    def apply_at(self, frames: np.ndarray, start: int) -> np.ndarray:
        todo = [k for k in range(len(frames)) if start + k in self.boxes]
        if not todo:
            return frames
        out = frames.copy()
        for k in todo:
            for box in self.boxes[start + k]:
                pixelate(out[k], box)
        return out

    def apply(self, frames: np.ndarray) -> np.ndarray:
        return self.apply_at(frames, 0)
