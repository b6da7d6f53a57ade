"""Benchmark: the trained demo model (``tiny``) against random weights of the same architecture.

Prints a Markdown section for bench/RESULTS.md:

* the training run's cost and settings, read from ``brandstudio/generation/tiny_weights/training.json``
  (written by ``python -m brandstudio.generation.tiny_training``);
* the VAE's reconstruction PSNR on procedural scenes no training step drew, trained vs random;
* a generation at the demo's settings (81 frames 256x144, 4 steps, CFG 4/3): seconds, and what
  the footage is: roughness (mean step between neighbouring pixels: noise is rough, footage is
  not), motion (mean change first to last frame) and frame-to-frame jumps.

    python bench/demo_model.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_render import machine  # noqa: E402

PROMPT = "aurora film look, a soft gradient from amber to blue, soft cream shapes drifting left, a gentle white light"


def vae_psnr(pipe, scenes: int = 8) -> float:
    import torch

    from brandstudio.generation.procedural import random_scene, render_scene
    from brandstudio.generation.tiny_training import psnr

    rng = np.random.default_rng(777)  # a seed the trainer does not use
    scores = []
    with torch.no_grad():
        for _ in range(scenes):
            clip = render_scene(random_scene(rng), frames=17, width=256, height=144)
            x = torch.from_numpy(clip).permute(3, 0, 1, 2)[None] * 2 - 1
            recon = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample
            scores.append(psnr(((recon[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1).numpy(), clip))
    return float(np.mean(scores))


def generate(model_dir: Path) -> tuple[float, np.ndarray]:
    import torch
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    t0 = time.perf_counter()
    out = pipe(prompt=PROMPT, negative_prompt="blurry, low quality", width=256, height=144, num_frames=81,
               num_inference_steps=4, guidance_scale=4.0, guidance_scale_2=3.0,
               generator=torch.Generator().manual_seed(0), output_type="np")  # fmt: skip
    return time.perf_counter() - t0, out.frames[0]


def main() -> None:
    import os

    from brandstudio.generation.tiny import TINY_WEIGHTS_DIR, build_tiny_pipeline, tiny_model_dir

    os.environ.setdefault("BRANDSTUDIO_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    facts = json.loads((TINY_WEIGHTS_DIR / "training.json").read_text())
    cfg = facts["config"]
    rows = []
    for label, seed in (("trained (shipped)", None), ("random, same architecture", 0)):
        psnr_db = vae_psnr(build_tiny_pipeline(seed=seed))
        seconds, video = generate(tiny_model_dir(seed=seed))
        rough = np.abs(np.diff(video, axis=2)).mean() + np.abs(np.diff(video, axis=1)).mean()
        motion = np.abs(video[-1] - video[0]).mean()
        jumps = np.abs(np.diff(video, axis=0)).mean()
        rows.append(f"| {label} | {psnr_db:.1f} | {seconds:.2f} | {rough:.4f} | {motion:.3f} | {jumps:.4f} |")

    size = sum(p.stat().st_size for p in TINY_WEIGHTS_DIR.glob("*.safetensors"))
    print(f"### Demo model ({date.today().isoformat()}, {machine()})\n")
    print(f"Training (`python -m brandstudio.generation.tiny_training`, {facts['torch']}, {facts['threads']} threads): "
          f"{facts['seconds'] / 60:.1f} min in all: VAE {cfg['vae_still_steps']} steps on stills (batch "
          f"{cfg['vae_batch']}, {cfg['vae_size'][0]}x{cfg['vae_size'][1]}) + {cfg['vae_clip_steps']} on "
          f"{cfg['vae_frames']}-frame clips, {facts['vae']['seconds'] / 60:.1f} min; encoding "
          f"{cfg['clips']} clips {facts['encode_seconds']:.0f} s; one shared transformer {cfg['shared_steps']} "
          f"steps, then each expert {cfg['expert_steps']} steps on its noise range (batch {cfg['transformer_batch']}): "
          + ", ".join(f"{k} {v['seconds'] / 60:.1f} min (loss {v['loss_curve'][0]:.3f} → {v['loss_curve'][-1]:.3f})"
                      for k, v in facts["experts"].items())
          + f". Weights shipped: {size / 1e6:.2f} MB of safetensors. Held-out PSNR at training time: "
          f"{facts['vae']['psnr_db']} dB (min {facts['vae']['psnr_min_db']}).\n")  # fmt: skip
    print(
        "| weights | VAE PSNR, 8 unseen scenes (dB) | generate 81×256×144, 4 steps (s) "
        "| roughness | motion | frame jumps |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
