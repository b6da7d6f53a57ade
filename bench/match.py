"""Benchmark: colour matching of drifting clips — how much drift is left, and what it costs.

Two synthetic "Wan-like" drifts of a textured, colourful 480×832 scene, 33 frames:

* **fade**: brightness ramps down (gain 1.0 → 0.62) while saturation decays (1.0 → 0.40);
* **pump**: brightness swells and falls (gain 1 ± 0.25, a sine over the clip) with a
  warm-to-cool cast drifting in (red ×1.08 → ×0.92, blue the other way) and grain.

Each method of :mod:`brandstudio.post.match` matches every frame to the first frame; the
script reports the drift measured by :func:`brandstudio.post.match.colour_drift` (range over
the clip of the mean L* and mean chroma C*ab; ΔE2000 of each frame's mean colour to the
first frame's), before and after, and frames per second.

    python bench/match.py [--frames 33] [--height 480] [--width 832]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def scene(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [
            0.5 + 0.4 * np.sin(x / (w / 14)),
            0.5 + 0.35 * np.cos(y / (h / 10)),
            0.45 + 0.3 * np.sin((x + y) / (w / 9)),
        ],
        -1,
    )
    img[h // 5 : h // 2, w // 8 : w // 3] = (0.85, 0.35, 0.2)
    img[h // 2 : 4 * h // 5, w // 2 : 4 * w // 5] = (0.2, 0.55, 0.75)
    return np.clip(img * 255 + rng.normal(0, 4, img.shape), 0, 255).astype(np.float32)


def fade(base: np.ndarray, t: int) -> np.ndarray:
    out = np.empty((t, *base.shape), np.uint8)
    grey = base.mean(-1, keepdims=True)
    for k in range(t):
        a = k / (t - 1)
        out[k] = np.clip(np.rint((grey + (1 - 0.6 * a) * (base - grey)) * (1 - 0.38 * a)), 0, 255)
    return out


def pump(base: np.ndarray, t: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    out = np.empty((t, *base.shape), np.uint8)
    for k in range(t):
        a = k / (t - 1)
        gain = 1 + 0.25 * np.sin(2 * np.pi * a)
        cast = np.array([1.08 - 0.16 * a, 1.0, 0.92 + 0.16 * a], np.float32)
        f = base * gain * cast + rng.normal(0, 3, base.shape)
        out[k] = np.clip(np.rint(f), 0, 255)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    args = ap.parse_args()
    from demo_render import machine

    from brandstudio.post.match import MATCHERS, ColourMatch, colour_drift

    base = scene(args.height, args.width)
    from datetime import date

    print(
        f"\n### Colour matching to the first frame, {args.frames} frames {args.width}×{args.height} "
        f"({date.today()}, {machine()})\n"
    )
    print("| drift | method | L* range | chroma range | ΔE2000 to frame 0, mean / max | frames/s |")
    print("|---|---|---|---|---|---|")
    for name, make in (("fade", fade), ("pump", pump)):
        clip = make(base, args.frames)
        d = colour_drift(clip)
        print(f"| {name} | none | {d['l_range']:.2f} | {d['chroma_range']:.2f} | "
              f"{d['delta_e_mean']:.2f} / {d['delta_e_max']:.2f} | – |")  # fmt: skip
        for method in MATCHERS:
            t0 = time.perf_counter()
            out = ColourMatch(method).apply(clip)
            dt = time.perf_counter() - t0
            a = colour_drift(out)
            print(f"| {name} | {method} | {a['l_range']:.2f} | {a['chroma_range']:.2f} | "
                  f"{a['delta_e_mean']:.2f} / {a['delta_e_max']:.2f} | {args.frames / dt:.1f} |")  # fmt: skip


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
