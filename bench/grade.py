"""Benchmark: LUT grading of 8-bit 720p frames — brandstudio vs colour-science vs ffmpeg's lut3d.

All three apply the same .cube (the aurora-coffee demo LUT, 33 points, tetrahedral) to the same
81 frames of 1280×720 in one run, and the script reports frames/s, the ratio to ffmpeg, and the
largest 8-bit difference to colour-science's tetrahedral result (the reference).

    python bench/grade.py [--frames 81] [--ref-frames 2]

colour-science is run on only ``--ref-frames`` frames (it takes about a second per frame);
ffmpeg receives raw RGB frames on a pipe and returns them on a pipe (no decode or encode),
which is what the filter costs inside a real ffmpeg command line.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LUT_PATH = REPO / "brand_profiles/aurora-coffee/luts/aurora-warm.cube"


def clip(n: int, h: int = 720, w: int = 1280) -> np.ndarray:
    """Smooth gradients plus noise: every LUT cell is visited, like real footage."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        base = np.stack([x / w, y / h, (x + y + 40 * i) % w / w], -1) * 255
        out[i] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return out


def ours(frames: np.ndarray) -> tuple[np.ndarray, float, float]:
    from brandstudio.post.grade import Grade, read_lut

    t0 = time.perf_counter()
    grade = Grade(read_lut(LUT_PATH), strength=1.0, method="tetrahedral")
    out = grade.apply(frames)  # first call bakes the 256^3 table
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = grade.apply(frames)
    warm = time.perf_counter() - t0
    return out, cold, warm


def colour_science(frames: np.ndarray) -> tuple[np.ndarray, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
        from colour.algebra import table_interpolation_tetrahedral

        lut = colour.io.read_LUT(str(LUT_PATH))
    t0 = time.perf_counter()
    out = lut.apply(frames.astype(np.float64) / 255.0, interpolator=table_interpolation_tetrahedral)
    dt = time.perf_counter() - t0
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8), dt


def ffmpeg(frames: np.ndarray) -> tuple[np.ndarray, float]:
    import imageio_ffmpeg

    n, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-i", "pipe:0", "-vf", f"lut3d=file={LUT_PATH}:interp=tetrahedral", "-f", "rawvideo", "-pix_fmt",
           "rgb24", "pipe:1"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=True)
    dt = time.perf_counter() - t0
    return np.frombuffer(proc.stdout, np.uint8).reshape(frames.shape), dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--ref-frames", type=int, default=2)
    args = ap.parse_args()
    from demo_render import machine

    frames = clip(args.frames)
    mine, cold, warm = ours(frames)
    ff, t_ff = ffmpeg(frames)
    ref, t_ref = colour_science(frames[: args.ref_frames])
    n = args.frames
    fps = {"brandstudio (warm)": n / warm, "brandstudio (cold, bakes table)": n / cold, "ffmpeg lut3d": n / t_ff,
           "colour-science LUT3D.apply": args.ref_frames / t_ref}
    diff_ours = int(np.abs(mine[: args.ref_frames].astype(int) - ref).max())
    diff_ff = int(np.abs(ff[: args.ref_frames].astype(int) - ref).max())
    from datetime import date

    print(f"\n### LUT grade, {n} frames 1280×720 8-bit, 33-point tetrahedral ({date.today()}, {machine()})\n")
    print("| implementation | frames/s | vs ffmpeg | max diff to colour-science (8-bit levels) |")
    print("|---|---|---|---|")
    for name, v in fps.items():
        d = diff_ours if name.startswith("brandstudio") else diff_ff if name.startswith("ffmpeg") else 0
        print(f"| {name} | {v:.1f} | {v / fps['ffmpeg lut3d']:.2f}× | {d} |")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
