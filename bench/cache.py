"""Benchmark: scene cache hit latency vs regenerating the scene.

1. An 81-frame 1280x720 scene (random uint8 frames, 224 MB): one ``put`` into a local cache
   directory, then ``get`` (one sequential read + BLAKE2b check + ``np.frombuffer``) repeated.
2. The demo profile's ``pour-over`` scene (aurora-coffee, tiny model, 81 frames at 256x144,
   4 steps with CFG): regenerated (model loaded) vs served from the cache.

Prints a Markdown table to paste into bench/RESULTS.md.

    python bench/cache.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]  # this checkout's brandstudio

from demo_render import machine  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def row(what: str, frames: str, nbytes: int, times: list[float]) -> str:
    return (
        f"| {what} | {frames} | {nbytes / 1e6:.0f} MB | {statistics.median(times):.3f} | {min(times):.3f} "
        f"| {len(times)} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from brandstudio import BrandStudio
    from brandstudio.generation.cache import SceneCache, scene_key

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # 1. a full-size 720p scene
        cache = SceneCache(Path(tmp) / "scenes")
        frames = np.random.default_rng(0).integers(0, 256, (81, 720, 1280, 3), dtype=np.uint8)
        key = scene_key({"bench": "720p", "seed": 0})
        put = timed(lambda: cache.put(key, frames), 1)
        got = cache.get(key)
        assert got is not None and np.array_equal(got, frames)
        del got
        hits = timed(lambda: cache.get(key), args.repeat)
        size = cache.stats()["bytes"]
        rows.append(row("put (atomic write)", "81×720×1280", size, put))
        rows.append(row("**hit**: get (read + BLAKE2b check)", "81×720×1280", size, hits))
        frames = None  # free 224 MB before loading the model

        # 2. the demo scene: regenerate vs hit
        studio = BrandStudio(REPO / "brand_profiles" / "aurora-coffee", cache=Path(tmp) / "demo")
        _ = studio.generator  # load the model first: time generation only
        regen, hit = [], []
        for _ in range(max(1, args.repeat // 2)):
            report = studio.prewarm(aspect="16:9")  # two scenes: pour-over and beans-roasting
            pour = next(r for r in report if r["scene"] == "pour-over")
            (regen if pour["cache"] == "miss" else hit).append(pour["seconds"])
            if pour["cache"] == "miss":
                hit.extend(r["seconds"] for r in studio.prewarm(aspect="16:9") if r["scene"] == "pour-over")
            studio.cache.prune(0)  # empty it: the next round regenerates
        entry_bytes = 81 * 144 * 256 * 3
        rows.append(row("demo scene, regenerated (tiny model, 4 steps)", "81×144×256", entry_bytes, regen))
        rows.append(row("demo scene, **hit**", "81×144×256", entry_bytes, hit))

    print(f"### Scene cache: hit vs regeneration ({date.today()}, {machine()})\n")
    print("| operation | frames (T×H×W) | entry | median s | min s | runs |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
