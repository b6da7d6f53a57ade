"""Benchmark: Real-ESRGAN-family upscalers at their official sizes, per frame, on this machine.

The architectures of :mod:`brandstudio.post.sr` at the sizes of the official weight files
(random weights: speed does not depend on them), upscaling one frame of a 9:16 crop of the
tiny model's 256×144 generation (80×144 px) and one 480×270 frame, through
:class:`~brandstudio.post.sr.RealESRGAN` (tiled, fp32 on CPU / bf16 on CUDA), and Lanczos for
comparison. Reports seconds per frame and the projected time for an 81-frame clip.

    python bench/sr.py [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = {  # name: (architecture, constructor kwargs), as in the official files
    "RealESRGAN_x4plus (RRDBNet 64×23)": ("rrdb", {"scale": 4, "num_feat": 64, "num_block": 23}),
    "RealESRGAN_x2plus (RRDBNet 64×23, unshuffle 2)": ("rrdb", {"scale": 2, "num_feat": 64, "num_block": 23}),
    "realesr-general-x4v3 (SRVGG 64×32)": ("srvgg", {"upscale": 4, "num_feat": 64, "num_conv": 32}),
    "realesr-animevideov3 (SRVGG 64×16)": ("srvgg", {"upscale": 4, "num_feat": 64, "num_conv": 16}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    import torch
    from demo_render import machine
    from safetensors.torch import save_file

    from brandstudio.post.sr import RealESRGAN, RRDBNet, SRVGGNetCompact
    from brandstudio.post.upscale import Upscale

    rng = np.random.default_rng(0)
    sizes = {"80×144 (9:16 crop)": (144, 80), "480×270": (270, 480)}
    from datetime import date

    print(f"\n### Real-ESRGAN-family upscalers, one frame ({date.today()}, {machine()})\n")
    print("| model | input | output | s / frame | 81 frames |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (arch, kw) in MODELS.items():
            torch.manual_seed(0)
            net = RRDBNet(**kw) if arch == "rrdb" else SRVGGNetCompact(**kw)
            path = Path(tmp) / "w.safetensors"
            save_file(net.state_dict(), str(path))
            model = RealESRGAN(path, tile=256, tile_pad=16, device=args.device)
            for label, (h, w) in sizes.items():
                frame = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
                model.upscale(frame[:, :16, :16])  # warm-up
                t0 = time.perf_counter()
                out = model.upscale(frame)
                dt = time.perf_counter() - t0
                print(f"| {name} | {label} | {out.shape[2]}×{out.shape[1]} | {dt:.2f} | {81 * dt / 60:.1f} min |")
        for label, (h, w) in sizes.items():
            frames = rng.integers(0, 256, (8, h, w, 3), dtype=np.uint8)
            t0 = time.perf_counter()
            Upscale(w * 4, h * 4).apply(frames)
            dt = (time.perf_counter() - t0) / 8
            print(f"| Lanczos (PIL) | {label} | {w * 4}×{h * 4} | {dt:.3f} | {81 * dt:.1f} s |")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
