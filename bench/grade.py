"""Benchmark: LUT grading of 8-bit 720p frames — brandstudio vs colour-science vs ffmpeg's lut3d.

All apply the same .cube (the aurora-coffee demo LUT, 33 points, tetrahedral) to the same
81 frames of 1280×720 in one run, and the script reports frames/s, the ratio to ffmpeg, and the
largest 8-bit difference to colour-science's tetrahedral result (the reference).

    python bench/grade.py [--frames 81] [--ref-frames 2] [--torch-frames 8]

Rows:

* brandstudio numpy, **cold, no table on disk**: a ``.cube`` file this process has not read is
  parsed, a fresh ``Grade`` bakes the 256³ table (and stores it in a private, empty LUT cache)
  then grades: what the first render with a new LUT pays. Importing colour-science (about a
  second, once per process, with the matplotlib it imports) happens before the timings and is
  printed on its own: a render has paid it when it loaded the profile.
* brandstudio numpy, **cold, table cached on disk**: a fresh ``Grade`` (a new render or process)
  reads the table from the disk cache (SHA-256 verified) then grades: every later render.
* brandstudio numpy, **warm**: the same ``Grade`` again (table in memory).
* brandstudio torch **CPU**: the direct tetrahedral kernel on torch tensors (the GPU path, run on
  the CPU), on ``--torch-frames`` frames.
* brandstudio torch **CUDA**: the same on a GPU, host memory to host memory (upload, grade,
  download), when torch sees one; otherwise the row says so.
* ffmpeg ``lut3d``: raw RGB frames on a pipe in, raw RGB out (no decode or encode), which is
  what the filter costs inside an ffmpeg command line.
* colour-science ``LUT3D.apply``: on ``--ref-frames`` frames (over a second per frame).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
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


def import_colour() -> float:
    """Seconds to import colour-science (and the matplotlib it imports): once per process."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour  # noqa: F401

    return time.perf_counter() - t0


def ours(frames: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    from brandstudio.post.grade import Grade, read_lut
    from brandstudio.post.lut_cache import LutCache

    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = LutCache(tmp)
        new_file = Path(tmp) / "new.cube"  # a file read_lut has not seen: the row includes parsing it
        new_file.write_bytes(LUT_PATH.read_bytes())
        t0 = time.perf_counter()
        grade = Grade(read_lut(new_file), strength=1.0, method="tetrahedral", backend="numpy", cache=cache)
        out = grade.apply(frames)  # parses the .cube, bakes the 256^3 table and stores it
        times["bake"] = time.perf_counter() - t0
        again = Path(tmp) / "again.cube"  # the same LUT as a new process sees it: parsed again, table on disk
        again.write_bytes(LUT_PATH.read_bytes())
        t0 = time.perf_counter()
        fresh = Grade(read_lut(again), strength=1.0, method="tetrahedral", backend="numpy", cache=cache)
        out2 = fresh.apply(frames)  # reads the stored table
        times["cached"] = time.perf_counter() - t0
        assert np.array_equal(out, out2)
        t0 = time.perf_counter()
        fresh.apply(frames)
        times["warm"] = time.perf_counter() - t0
    return out, times


def torch_grade(frames: np.ndarray, device: str) -> tuple[np.ndarray, float]:
    import torch

    from brandstudio.post.grade import Grade, read_lut

    grade = Grade(read_lut(LUT_PATH), strength=1.0, method="tetrahedral", backend="torch", device=device)
    grade.apply(frames[:1])  # warm-up: kernels, LUT upload
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = grade.apply(frames)
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


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
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-i",
        "pipe:0",
        "-vf",
        f"lut3d=file={LUT_PATH}:interp=tetrahedral",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=True)
    dt = time.perf_counter() - t0
    return np.frombuffer(proc.stdout, np.uint8).reshape(frames.shape), dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--ref-frames", type=int, default=2)
    ap.add_argument("--torch-frames", type=int, default=8)
    args = ap.parse_args()
    import torch
    from demo_render import machine

    frames = clip(args.frames)
    n, r = args.frames, args.ref_frames
    t_import = import_colour()
    mine, t = ours(frames)
    ff, t_ff = ffmpeg(frames)
    ref, t_ref = colour_science(frames[:r])
    tc, t_tc = torch_grade(frames[: args.torch_frames], "cpu")

    def diff(x: np.ndarray) -> int:
        return int(np.abs(x[:r].astype(int) - ref).max())

    rows = [
        ("brandstudio numpy, cold: a new .cube, no table on disk (parses, bakes, stores)", n / t["bake"], diff(mine)),
        ("brandstudio numpy, cold, table cached on disk (parses the .cube, maps + verifies the table)", n / t["cached"], diff(mine)),
        ("brandstudio numpy, warm (table in memory)", n / t["warm"], diff(mine)),
        (
            f"brandstudio torch CPU, direct kernel ({args.torch_frames} frames)",
            args.torch_frames / t_tc,
            diff(tc),
        ),
    ]
    if torch.cuda.is_available():
        tg, t_tg = torch_grade(frames, "cuda")
        rows.append((f"brandstudio torch CUDA ({torch.cuda.get_device_name()})", n / t_tg, diff(tg)))
    else:
        rows.append(("brandstudio torch CUDA", None, "not run: no GPU"))
    rows += [
        ("ffmpeg lut3d (pipe in/out)", n / t_ff, diff(ff)),
        (f"colour-science LUT3D.apply ({r} frames)", r / t_ref, 0),
    ]
    from datetime import date

    print(f"\n### LUT grade, {n} frames 1280×720 8-bit, 33-point tetrahedral ({date.today()}, {machine()})\n")
    print("| implementation | frames/s | vs ffmpeg | max diff to colour-science (8-bit levels) |")
    print("|---|---|---|---|")
    for name, v, d in rows:
        if v is None:
            print(f"| {name} | – | – | {d} |")
        else:
            print(f"| {name} | {v:.1f} | {v / (n / t_ff):.2f}× | {d} |")
    print(
        f"\ncold {t['bake']:.2f} s (parse + bake + store + grade the clip), table from disk {t['cached']:.2f} s,"
        f" warm {t['warm']:.2f} s, ffmpeg {t_ff:.2f} s (its start-up and .cube parse included)."
        f"\nNot in any row: importing colour-science, {t_import:.2f} s once per process (a render has"
        " imported it by then: loading the profile reads its LUT)."
    )


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
