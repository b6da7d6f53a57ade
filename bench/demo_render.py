"""Benchmark: the README demo render, stage by stage, on this machine.

Runs `BrandStudio(profile).render("product-hero", ...)` at the profile's full delivery settings
(5 s, 720p short side) for each demo profile, a cold run (model load included) and a warm
run (model loaded), and prints a Markdown table to paste into bench/RESULTS.md.

    python bench/demo_render.py [--repeat 2] [--aspect 9:16]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def machine(with_torch: bool = True) -> str:
    """The CPU model and core count (and the torch build and threads, unless ``with_torch=False``,
    for benchmarks whose memory figure must not include torch)."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if not with_torch:
        return f"{cpu}, {os.cpu_count()} cores"
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--aspect", default="9:16")
    args = ap.parse_args()

    from brandstudio import BrandStudio
    from brandstudio.generation.tiny import tiny_model_dir

    t0 = time.perf_counter()
    tiny_model_dir()
    build = time.perf_counter() - t0

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, product in (("aurora-coffee", "Night Roast"), ("qinglan-tea", "明前龙井")):
            t0 = time.perf_counter()
            # an empty scene cache, so every run generates (a hit would time the cache, not the render)
            studio = BrandStudio(REPO / "brand_profiles" / name, output_dir=tmp, cache=Path(tmp) / "scenes")
            load = time.perf_counter() - t0
            for i in range(args.repeat):
                t0 = time.perf_counter()
                r = studio.render("product-hero", product=product, aspect=args.aspect, seed=42 + i)
                total = time.perf_counter() - t0
                rows.append((name, "cold" if i == 0 else "warm", load if i == 0 else 0.0, r, total))

    # post and encode run together (a stream of chunks into ffmpeg): "post" is the time spent making
    # frames, "encode" the time spent waiting for ffmpeg, "post+encode" the wall time of both
    stages = ["prompt", "safety", "generation", "frame_safety", "music", "post", "encode", "post+encode", "qc"]
    print(f"\n### Demo render, stage by stage ({date.today()}, {machine()})\n")
    print(f"tiny model build/check: {build:.2f} s (first run on a machine builds it once)\n")
    print("| profile | run | profile load | " + " | ".join(stages) + " | total | clip |")
    print("|---|---|---|" + "---|" * len(stages) + "---|---|")
    for name, run, load, r, total in rows:
        cells = " | ".join(f"{r.timings.get(s, 0.0):.2f}" for s in stages)
        print(
            f"| {name} | {run} | {load:.2f} | {cells} | {total:.2f} | {r.width}×{r.height}, "
            f"{r.duration:.2f} s, {r.generation['num_frames']} generated frames {r.generation['width']}×"
            f"{r.generation['height']}, {r.generation['steps']} steps |"
        )
    print("\n(seconds; 'cold' includes loading the pipeline and LoRAs inside `generation`; post and encode overlap,"
          " so post+encode, their wall time, is at most their sum)")


if __name__ == "__main__":
    main()
