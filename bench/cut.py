"""Benchmark: cutting shots together with brandstudio.generation.cut vs moviepy 2.

Three random uint8 shots, one 8-frame crossfade into shot 1 and a hard cut into shot 2, joined
(1) by :func:`brandstudio.generation.cut.cut_together` and (2) by moviepy 2
(``CompositeVideoClip`` of the shots at their start times, ``CrossFadeIn`` on shot 1; frames read
with ``get_frame(i / fps)``). Reports frames/s of the joined clip and moviepy's largest
difference to the exact result; then checks moviepy's frame timing at 16, 24, 25 and 30 fps with
a fade from 0 to a constant 250 (a frame after the crossfade must be exactly 250).

Prints a Markdown table to paste into bench/RESULTS.md.

    python bench/cut.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]  # this checkout's brandstudio

from demo_render import machine  # noqa: E402

from brandstudio.generation.cut import cut_together  # noqa: E402


def with_moviepy(shots: list[np.ndarray], k: int, fps: int) -> np.ndarray:
    """The same edit in moviepy 2: shot 1 starts k frames early and fades in over shot 0 (CrossFadeIn),
    shot 2 starts right after shot 1 (a cut), composited; frames read at ``i / fps``."""
    from moviepy import CompositeVideoClip, ImageSequenceClip
    from moviepy.video.fx import CrossFadeIn

    n0, n1 = len(shots[0]), len(shots[1])
    clips = [
        ImageSequenceClip(list(shots[0]), fps=fps),
        ImageSequenceClip(list(shots[1]), fps=fps).with_effects([CrossFadeIn(k / fps)]).with_start((n0 - k) / fps),
        ImageSequenceClip(list(shots[2]), fps=fps).with_start((n0 + n1 - k) / fps),
    ]
    n = sum(len(s) for s in shots) - k
    joined = CompositeVideoClip(clips).with_duration(n / fps)
    return np.stack([joined.get_frame(i / fps) for i in range(n)])


def with_moviepy_concat(shots: list[np.ndarray], k: int, fps: int) -> np.ndarray:
    """The moviepy idiom for crossfades between *all* clips: negative padding (here a fade out of
    constant shots 1 -> 2 too), for the timing check only."""
    from moviepy import ImageSequenceClip, concatenate_videoclips
    from moviepy.video.fx import CrossFadeIn

    clips = [ImageSequenceClip(list(shots[0]), fps=fps)]
    clips += [ImageSequenceClip(list(s), fps=fps).with_effects([CrossFadeIn(k / fps)]) for s in shots[1:]]
    joined = concatenate_videoclips(clips, method="compose", padding=-k / fps)
    n = sum(len(s) for s in shots) - k * (len(shots) - 1)
    return np.stack([joined.get_frame(i / fps) for i in range(n)])


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    k, fps = 8, 16
    print(f"### Cutting shots: brandstudio.generation.cut vs moviepy 2 ({date.today()}, {machine()})\n")
    print("| shots | clip frames | brandstudio (frames/s) | moviepy (frames/s) | speed-up |")
    print("|---|---|---|---|---|")
    for h, w, n in ((144, 256, 33), (480, 832, 81), (720, 1280, 81)):
        shots = [rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8) for _ in range(3)]
        total = len(cut_together(shots, [0, k, 0]))
        t_ours = best(lambda: cut_together(shots, [0, k, 0]), args.repeat)  # noqa: B023
        t_mp = best(lambda: with_moviepy(shots, k, fps), max(1, args.repeat - 1))  # noqa: B023
        print(f"| 3 × {n} @ {w}×{h} | {total} | {total / t_ours:.0f} | {total / t_mp:.0f} | {t_mp / t_ours:.0f}× |")
    print("\nFrame timing: 5-frame crossfades between constant shots 0 -> 250 -> 0. Exact")
    print("values for moviepy's convention (weight j/5): 0, 50, 100, 150, 200, then 250; out: 250, 200, 150, 100, 50, then 0.")
    print("brandstudio (weight (j+1)/6, rounded): 42, 83, 125, 167, 208, then 250, at every rate.\n")
    print("| fps | moviepy Composite: fade in, next | moviepy concatenate(padding): fade in, next | fade out, next |")
    print("|---|---|---|---|")
    for rate in (16, 24, 25, 30):
        shots = [np.full((9, 4, 4, 3), v, np.uint8) for v in (0, 250, 0)]
        ours = cut_together(shots[:2] + [np.full((9, 4, 4, 3), 250, np.uint8)], [0, 5, 0])[:, 0, 0, 0].tolist()
        assert ours[4:12] == [42, 83, 125, 167, 208, 250, 250, 250], ours
        comp = with_moviepy(shots[:2] + [np.full((9, 4, 4, 3), 250, np.uint8)], 5, rate)[:, 0, 0, 0].tolist()
        cat = with_moviepy_concat([np.full((23, 4, 4, 3), v, np.uint8) for v in (0, 250, 0)], 5, rate)
        cat = cat[:, 0, 0, 0].tolist()  # 23-frame shots: fade in at 18-22, 250 at 23-35, fade out at 36-40
        print(f"| {rate} | {', '.join(map(str, comp[4:10]))} | {', '.join(map(str, cat[18:24]))} | "
              f"{', '.join(map(str, cat[36:42]))} |")  # fmt: skip


if __name__ == "__main__":
    main()
