"""Benchmark: frame interpolation, ``repeat`` and ``flow`` against ffmpeg's ``minterpolate`` (mci).

A 32 fps test clip with real motion is made procedurally: a textured background panning at a
changing speed, two textured objects crossing it in different directions (one passes in front
of the other: occlusion), and a slowly rotating bar. Every other frame is dropped (16 fps, the
model's rate), each method makes the dropped moments back from the kept ones, and the re-made
frames are compared with the dropped originals: PSNR and SSIM (luma, Gaussian window, Wang et
al. 2004), and frames made per second. ffmpeg runs ``minterpolate=fps=32:mi_mode=mci`` (its
motion-compensated mode, default block matching and overlapped-block compensation) on the same
16 fps frames, raw RGB in and out through pipes, so no codec touches either side.

    python bench/interpolate.py [--size 1280x720] [--frames 64]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from datetime import date

import cv2
import numpy as np
from demo_render import machine

from brandstudio.media import ffmpeg_exe
from brandstudio.post.interpolate import INTERPOLATORS


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Colourful texture with detail at several scales (uint8 ``(h, w, 3)``)."""
    out = np.zeros((h, w, 3), np.float32)
    for sigma, weight in ((24, 1.0), (6, 0.6), (1.5, 0.35)):
        noise = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
        out += weight * blurred / (blurred.std() + 1e-6)
    out = (out - out.min()) / (out.max() - out.min())
    return (out * 255).astype(np.uint8)


def test_clip(width: int, height: int, frames: int, seed: int = 0) -> np.ndarray:
    """The 32 fps clip: pan, two crossing objects (one occludes the other) and a rotating bar."""
    rng = np.random.default_rng(seed)
    background = texture(rng, height * 2, width * 2)
    objects = [texture(rng, height // 3, height // 3) for _ in range(2)]
    yy, xx = np.mgrid[: height // 3, : height // 3]
    disc = ((yy - height / 6) ** 2 + (xx - height / 6) ** 2) < (height / 6) ** 2
    clip = np.empty((frames, height, width, 3), np.uint8)
    x = 0.0
    for i in range(frames):
        x += 4 + 3 * np.sin(i / 9)  # a pan that speeds up and slows down, 1-7 px a frame
        y = height / 2 * (1 + np.sin(i / 23)) / 2
        frame = background[int(y) : int(y) + height, int(x) % width : int(x) % width + width].copy()
        for k, (obj, vx, vy) in enumerate(((objects[0], 9.0, 2.0), (objects[1], -7.0, -1.5))):
            ox = int((width * (0.1 if k == 0 else 0.8) + vx * i) % (width - obj.shape[1]))
            oy = int(height * 0.35 + vy * i) % (height - obj.shape[0])
            region = frame[oy : oy + obj.shape[0], ox : ox + obj.shape[1]]
            region[disc] = obj[disc]
        centre = (width // 2, height // 2)
        angle = i * 2.5
        box = cv2.boxPoints((centre, (width * 0.4, height * 0.04), angle)).astype(np.int32)
        cv2.fillConvexPoly(frame, box, (240, 240, 240))
        clip[i] = frame
    return clip


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the luma of two uint8 RGB frames (Gaussian window sigma 1.5, K1 0.01, K2 0.03)."""
    x, y = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64) for f in (a, b))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(v):
        return cv2.GaussianBlur(v, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


def run_method(name: str, kept: np.ndarray) -> tuple[np.ndarray, float]:
    """The frames between each pair of kept frames (at alpha 0.5), and the seconds it took."""
    interpolator = INTERPOLATORS[name]()
    t0 = time.perf_counter()
    made = [interpolator.between(kept[i], kept[i + 1], [0.5])[0] for i in range(len(kept) - 1)]
    return np.stack(made), time.perf_counter() - t0


def run_minterpolate(kept: np.ndarray, fps_in: int) -> tuple[np.ndarray, float]:
    n, h, w, _ = kept.shape
    cmd = [ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps_in),
           "-i", "-", "-vf", f"minterpolate=fps={2 * fps_in}:mi_mode=mci", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, input=kept.tobytes(), capture_output=True, check=True).stdout
    seconds = time.perf_counter() - t0
    frames = np.frombuffer(out, np.uint8).reshape(-1, h, w, 3)
    return frames[1 : 2 * (n - 1) : 2], seconds  # output frame 2k+1 is the moment between kept k and k+1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--frames", type=int, default=64)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    clip = test_clip(width, height, args.frames + 1)
    kept, dropped = clip[0::2], clip[1::2][: len(clip[0::2]) - 1]
    rows = []
    results = {name: run_method(name, kept) for name in ("repeat", "flow")}
    results["ffmpeg minterpolate (mci)"] = run_minterpolate(kept, 16)
    for name, (made, seconds) in results.items():
        n = min(len(made), len(dropped))
        p = np.mean([psnr(made[i], dropped[i]) for i in range(n)])
        s = np.mean([ssim(made[i], dropped[i]) for i in range(n)])
        rows.append((name, p, s, n / seconds, seconds))
    flow_fps, ff_fps = rows[1][3], rows[2][3]
    print(f"### Frame interpolation, {len(dropped)} dropped frames of a 32 fps {width}x{height} clip "
          f"({date.today().isoformat()}, {machine()})\n")  # fmt: skip
    print("| method | PSNR (dB) | SSIM | frames made / s | seconds |")
    print("|---|---|---|---|---|")
    for name, p, s, fps, seconds in rows:
        print(f"| {name} | {p:.2f} | {s:.4f} | {fps:.1f} | {seconds:.2f} |")
    print(f"\n`flow` vs minterpolate: {rows[1][1] - rows[2][1]:+.2f} dB PSNR, {flow_fps / ff_fps:.1f}x the speed "
          "(minterpolate's time includes making the kept frames it passes through).")  # fmt: skip


if __name__ == "__main__":
    main()
