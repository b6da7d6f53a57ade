"""Frame interpolation: the model's frame rate to any delivery rate, without repeating frames.

Wan2.2 generates at 16 fps (TI2V-5B at 24); deliveries want 24, 25, 29.97 or 30. Showing the
nearest earlier frame (``repeat``) judders on every pan; the other methods make the missing
moments:

* ``repeat``: the nearest earlier generated frame (what a plain frame-rate change does).
* ``flow``: motion-compensated. Dense optical flow both ways between the two neighbouring
  frames (OpenCV's DIS: no weights, a few milliseconds a pair on a CPU, computed on a copy at
  most :data:`FLOW_SIDE` pixels wide), the flow from the in-between moment to each frame
  estimated from them, both frames warped there, and blended by time and by visibility: a pixel
  whose forward and backward flows disagree (it is covered or uncovered between the frames) is
  taken from the frame where it is seen.
* ``rife``: the RIFE network (:mod:`brandstudio.post.rife`) on a weight file the user brings.

Time is exact: delivered frame ``i`` shows source time ``i * fps_in / (fps_out * slowmo)``, in
fractions (29.97 is ``30000/1001``), so a long clip does not drift. A multi-shot clip's cuts are
never interpolated across (the frame before a cut is held until the cut), and inside a
crossfade the frames are mixed linearly, which is what a crossfade is, rather than warped.

:func:`timeline` plans which source frames and weights make each delivered frame; an
:class:`Interpolator` makes the in-between frames of one pair of source frames;
:class:`~brandstudio.post.stream.PostChain` runs both chunk by chunk in the streamed post stage.

Example:
    >>> t = timeline(5, fps_in=16, fps_out=24, n_out=6)
    >>> t.left.tolist(), [round(float(x), 3) for x in t.alpha]
    ([0, 0, 1, 2, 2, 3], [0.0, 0.667, 0.333, 0.0, 0.667, 0.333])
    >>> import numpy as np
    >>> a, b = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 200, np.uint8)
    >>> int(INTERPOLATORS["flow"]().between(a, b, [0.5])[0, 16, 16, 0])
    100
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from brandstudio.profile.assets import ASSET_CHECKS
from brandstudio.rates import frame_rate
from brandstudio.registry import INTERPOLATION_METHODS

__all__ = [
    "FLOW_SIDE",
    "INTERPOLATORS",
    "FlowInterpolator",
    "Interpolator",
    "RepeatInterpolator",
    "Retime",
    "Timeline",
    "make_interpolator",
    "mix",
    "timeline",
]

FLOW_SIDE = 480
"""The widest image optical flow is computed on (larger frames are scaled down for the flow and
the flow scaled back up): motion at delivery sizes is smooth at this scale, and DIS costs grow
with the pixels."""
_MIN_FLOW_SIDE = 16


@dataclass(frozen=True)
class Timeline:
    """Where each delivered frame comes from: source frames ``left[i]`` and ``right[i]`` mixed at
    ``alpha[i]`` (0: exactly ``left[i]``); ``linear[i]``: mix the two as they are (inside a
    crossfade) instead of following the motion."""

    left: np.ndarray
    right: np.ndarray
    alpha: np.ndarray
    linear: np.ndarray

    def __len__(self) -> int:
        return len(self.left)

    def sources(self, i: slice | np.ndarray | None = None) -> np.ndarray:
        """The source frames the delivered frames ``i`` (default: all) read, sorted."""
        sel = slice(None) if i is None else i
        moving = self.alpha[sel] > 0
        return np.union1d(self.left[sel], self.right[sel][moving])


def timeline(
    n_source: int,
    fps_in: float | str | Fraction,
    fps_out: float | str | Fraction,
    n_out: int,
    *,
    slowmo: float = 1.0,
    cuts: Sequence[int] = (),
    crossfades: Sequence[tuple[int, int]] = (),
) -> Timeline:
    """Plan ``n_out`` delivered frames at ``fps_out`` from ``n_source`` frames at ``fps_in``.

    Args:
        slowmo: play the source this many times slower (2: twice as many in-between frames).
        cuts: source frames that start a new shot: nothing is mixed across one (the frame
            before a cut is held until it).
        crossfades: ``(first, last)`` source frames of each crossfade (both inclusive): frames
            mixed from both of those are mixed linearly, not warped.
    """
    if n_source < 1 or n_out < 1:
        raise ValueError(f"a retime needs frames: {n_source} source frames, {n_out} delivered")
    if not slowmo > 0:
        raise ValueError(f"`slowmo` must be positive, got {slowmo!r}")
    step = frame_rate(fps_in) / (frame_rate(fps_out) * Fraction(slowmo).limit_denominator(1000))
    # exact source times: numerator and denominator as integers, so frame 10 000 is still exact
    num, den = np.arange(n_out, dtype=np.int64) * step.numerator, step.denominator
    left = np.minimum(num // den, n_source - 1)
    alpha = np.where(num // den >= n_source - 1, 0, (num % den) / den).astype(np.float32)
    right = np.minimum(left + 1, n_source - 1)
    cut = np.isin(right, np.asarray(list(cuts), dtype=np.int64)) & (right > left)
    alpha[cut] = 0.0
    linear = np.zeros(n_out, dtype=bool)
    for first, last in crossfades:
        linear |= (left >= first) & (right <= last)
    return Timeline(left.astype(np.int64), right.astype(np.int64), alpha, linear)


class Interpolator(ABC):
    """Makes the frames between two source frames (subclass and register in :data:`INTERPOLATORS`)."""

    @abstractmethod
    def between(self, a: np.ndarray, b: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
        """Frames at times ``alphas`` (each in (0, 1)) between uint8 frames ``a`` and ``b``
        (``(H, W, 3)``), as ``(len(alphas), H, W, 3)`` uint8."""


def mix(a: np.ndarray, b: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """``a`` and ``b`` mixed linearly at each of ``alphas`` (a crossfade's own in-between frames)."""
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    out = np.stack([fa + (fb - fa) * float(t) for t in alphas])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class RepeatInterpolator(Interpolator):
    """The nearest earlier frame: no new moments (today's judder, kept for comparison and speed)."""

    def between(self, a, b, alphas):
        return np.repeat(a[None], len(alphas), axis=0)


class FlowInterpolator(Interpolator):
    """Motion-compensated in-between frames from DIS optical flow, occlusion-aware.

    For a time ``t`` between frames 0 and 1 with flows ``F01`` and ``F10``, the flows from the
    in-between moment back to each frame follow the usual linear-motion estimate (Jiang et al.,
    "Super SloMo", CVPR 2018)::

        Ft0 = -(1 - t) t F01 + t² F10          Ft1 = (1 - t)² F01 - t (1 - t) F10

    Each frame is warped to ``t`` along its flow, and the two are blended with weights
    ``(1 - t) v0`` and ``t v1``, where ``v`` is the frame's visibility: how well its pixel's
    forward flow and the backward flow where it lands cancel (a pixel about to be covered has
    flows that do not).

    Args:
        preset: DIS's speed/quality preset (``"fast"``, ``"medium"``: the default, ``"ultrafast"``).
        flow_side: the widest image the flow is computed on (:data:`FLOW_SIDE`).
    """

    PRESETS = ("ultrafast", "fast", "medium")

    def __init__(self, preset: str = "medium", flow_side: int = FLOW_SIDE) -> None:
        if preset not in self.PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; use one of: {', '.join(self.PRESETS)}")
        self.preset, self.flow_side = preset, int(flow_side)

    def _scale(self, h: int, w: int) -> tuple[int, int]:
        """The ``(width, height)`` the flow is computed at."""
        scale = min(1.0, self.flow_side / max(h, w))
        return max(_MIN_FLOW_SIDE, round(w * scale)), max(_MIN_FLOW_SIDE, round(h * scale))

    def flows(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward and backward flow between frames ``a`` and ``b``, at the flow size
        (``(h, w, 2)`` float32, in pixels of that size)."""
        import cv2  # OpenCV: loaded when a clip is interpolated, not with brandstudio

        h, w = a.shape[:2]
        size = self._scale(h, w)
        if min(h, w) < _MIN_FLOW_SIDE:  # too small to see motion in (DIS needs 12 px): a plain mix
            still = np.zeros((size[1], size[0], 2), np.float32)
            return still, still.copy()
        grey = [cv2.cvtColor(cv2.resize(f, size, interpolation=cv2.INTER_AREA) if size != (w, h) else f,
                             cv2.COLOR_RGB2GRAY) for f in (a, b)]  # fmt: skip
        dis = cv2.DISOpticalFlow_create(
            getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{self.preset.upper()}")
        )  # one per call: safe across threads
        return dis.calc(grey[0], grey[1], None), dis.calc(grey[1], grey[0], None)

    def between(self, a, b, alphas):
        import cv2

        h, w = a.shape[:2]
        f01, f10 = self.flows(a, b)
        fh, fw = f01.shape[:2]
        # Everything but the final warp runs at the flow size: the flows and weights are smooth,
        # and this is where the time would go at 720p.
        gx, gy = np.meshgrid(np.arange(fw, dtype=np.float32), np.arange(fh, dtype=np.float32))
        seen0, seen1 = _visibility(f01, f10, gx, gy), _visibility(f10, f01, gx, gy)
        full = (
            None
            if (fw, fh) == (w, h)
            else np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        )
        to_full = np.float32([w / fw, h / fh])
        out = np.empty((len(alphas), h, w, 3), np.uint8)
        for k, t in enumerate(alphas):
            t = float(t)
            warped, weights = [], []
            for frame, flow, seen, share in (
                (a, -(1 - t) * t * f01 + t * t * f10, seen0, 1 - t),
                (b, (1 - t) * (1 - t) * f01 - t * (1 - t) * f10, seen1, t),
            ):
                weight = share * (cv2.remap(seen, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_REPLICATE) + 1e-3)  # fmt: skip
                if full is not None:
                    flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * to_full
                    weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
                    gxf, gyf = full
                else:
                    gxf, gyf = gx, gy
                warped.append(cv2.remap(frame, gxf + flow[..., 0], gyf + flow[..., 1], cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE))  # fmt: skip
                weights.append(weight)
            out[k] = cv2.blendLinear(warped[0], warped[1], weights[0], weights[1])
        return out


def _visibility(forward: np.ndarray, backward: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """How surely each pixel of a frame is seen in the other (1: its flow there and the flow back
    cancel; towards 0: they do not, it is being covered), with a tolerance that grows with the motion."""
    import cv2

    back = cv2.remap(backward, gx + forward[..., 0], gy + forward[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    tolerance = 0.01 * ((forward**2).sum(-1) + (back**2).sum(-1)) + 0.5
    return np.exp(-((forward + back) ** 2).sum(-1) / tolerance).astype(np.float32)


def _rife(weights: Path | None = None, device: str = "auto") -> Interpolator:
    from .rife import RIFE  # torch and the network only when asked for

    if weights is None:
        raise ValueError("the rife interpolator needs a weights file (RIFE 4.x flownet)")
    return RIFE(weights, device=device)


#: interpolators by name: factories ``(weights=None, device="auto") -> Interpolator``; the
#: registry ``[output] interpolation`` and ``--interpolate`` are checked against
INTERPOLATORS = INTERPOLATION_METHODS
INTERPOLATORS.register("repeat", lambda weights=None, device="auto": RepeatInterpolator())
INTERPOLATORS.register("flow", lambda weights=None, device="auto": FlowInterpolator())
INTERPOLATORS.register("rife", _rife)


@ASSET_CHECKS.register("interpolation-weights")
def _check_rife_weights(path: Path) -> None:
    from .rife import load_ifnet  # torch: imported when RIFE weights are named

    load_ifnet(path)


def make_interpolator(method: str, weights: Path | None = None, device: str = "auto") -> Interpolator:
    """The interpolator registered as ``method`` (checked against :data:`INTERPOLATORS`)."""
    INTERPOLATION_METHODS.check(method)
    return INTERPOLATORS[method](weights=weights, device=device)


@dataclass(frozen=True, eq=False)
class Retime:
    """A :class:`Timeline` and the :class:`Interpolator` that makes its in-between frames: what
    :class:`~brandstudio.post.stream.PostChain` runs between the source and the output effects.

    Example:
        >>> import numpy as np
        >>> retime = Retime(timeline(3, 16, 32, 5), make_interpolator("flow"))
        >>> src = np.stack([np.full((32, 32, 3), v, np.uint8) for v in (0, 100, 200)])
        >>> retime.deliver(src, 0, 5)[:, 0, 0, 0].tolist()
        [0, 50, 100, 150, 200]
    """

    timeline: Timeline
    interpolator: Interpolator

    def sources(self, start: int, stop: int) -> np.ndarray:
        """The source frames delivered frames ``start .. stop - 1`` are made from."""
        return self.timeline.sources(slice(start, stop))

    def deliver(self, done, start: int, stop: int) -> np.ndarray:
        """Delivered frames ``start .. stop - 1`` from ``done[j]``, the processed source frames
        (a mapping or an array holding at least :meth:`sources`), as a new array."""
        t = self.timeline
        left, right, alpha, linear = (x[start:stop] for x in (t.left, t.right, t.alpha, t.linear))
        first = done[int(left[0])]
        out = np.empty((len(left), *first.shape), first.dtype)
        k = 0
        while k < len(left):
            if alpha[k] == 0:
                out[k] = done[int(left[k])]
                k += 1
                continue
            # the delivered frames between the same two source frames: one flow for all of them
            end = k + 1
            while end < len(left) and left[end] == left[k] and alpha[end] > 0:
                end += 1
            a, b = done[int(left[k])], done[int(right[k])]
            out[k:end] = (
                mix(a, b, alpha[k:end]) if linear[k] else self.interpolator.between(a, b, alpha[k:end])
            )
            k = end
        return out
