"""`brandstudio lora train` against a plain diffusers + peft loop, on the offline tiny model.

Both train the same LoRA (rank 8, the same target modules, AdamW, the same number of steps per
expert, both experts each on its own noise range) on the demo profile's 12 reference stills at
the model's 256x144:

- ``brandstudio``: :func:`brandstudio.style.train_lora` — latents and text embeddings computed
  once and cached, checkpoints every 100 steps (written and renamed: their cost is included);
- ``plain loop``: what a script written from the diffusers and peft docs does — every step reads
  its still, encodes it with the VAE and its caption with the text encoder, then the same
  flow-matching step; no checkpoints.

The reference trainers (musubi-tuner, ai-toolkit) are not on the package index, so they cannot be
installed here; the plain loop stands for them on the CPU. Wall time includes loading the model.

    python bench/lora_train.py [--steps 100]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from demo_render import machine

from brandstudio.generation.base import TEXT_MAX_TOKENS
from brandstudio.generation.flow_matching import (
    encode_latents,
    expert_sigma_ranges,
    flow_matching_loss,
    sample_sigmas,
)
from brandstudio.style import DEFAULT_TARGET_MODULES, LoraTrainingConfig, train_lora
from brandstudio.style.lora_data import find_items, load_pixels

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "brand_profiles" / "aurora-coffee"


def ours(steps: int) -> tuple[float, float, dict]:
    started = time.perf_counter()
    stamps = []
    with tempfile.TemporaryDirectory() as tmp:
        config = LoraTrainingConfig(rank=8, steps=steps, learning_rate=2e-3, checkpoint_every=100)
        result = train_lora(PROFILE, output=Path(tmp) / "lora.safetensors", config=config, work_dir=Path(tmp) / "run",
                            on_progress=lambda event: stamps.append(time.perf_counter()))  # fmt: skip
    loop_rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return (
        time.perf_counter() - started,
        loop_rate,
        {k: float(np.mean(v[-10:])) for k, v in result.losses.items()},
    )


def plain(steps: int) -> tuple[float, float, dict]:
    from diffusers import WanPipeline
    from peft import LoraConfig

    from brandstudio.generation.tiny import tiny_model_dir

    started = time.perf_counter()
    pipe = WanPipeline.from_pretrained(tiny_model_dir())
    items = find_items(PROFILE / "references", trigger="aurora film look")
    losses = {}
    g = torch.Generator().manual_seed(0)
    loop_seconds = 0.0
    for label, (low, high) in expert_sigma_ranges(pipe.config.boundary_ratio).items():
        module = getattr(pipe, label)
        module.requires_grad_(False)
        module.add_adapter(LoraConfig(r=8, lora_alpha=8, target_modules=list(DEFAULT_TARGET_MODULES)))
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.0)
        history = []
        loop_start = time.perf_counter()
        for _ in range(steps):
            item = items[int(torch.randint(len(items), (1,), generator=g))]
            pixels = load_pixels(item, width=256, height=144, frames=1)
            video = torch.tensor(pixels).permute(3, 0, 1, 2)[None].float().div(127.5).sub(1.0)
            with torch.no_grad():
                x0 = encode_latents(pipe.vae, video)
                text, _ = pipe.encode_prompt(item.caption, do_classifier_free_guidance=False,
                                             max_sequence_length=TEXT_MAX_TOKENS)  # fmt: skip
            sigmas = sample_sigmas(1, low=low, high=high, shift=12.0, generator=g)
            loss = flow_matching_loss(module, x0, text, sigmas, torch.randn(x0.shape, generator=g))
            loss.backward()
            opt.step()
            opt.zero_grad()
            history.append(loss.item())
        loop_seconds += time.perf_counter() - loop_start
        losses[label] = float(np.mean(history[-10:]))
    return time.perf_counter() - started, 2 * steps / loop_seconds, losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100, help="steps per expert")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for name, run in (("brandstudio", ours), ("plain loop", plain)):
        rows.append((name, *run(args.steps)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"## LoRA training on the tiny model ({date.today()}, {machine()})\n")
    print(f"{args.steps} steps per expert x 2 experts, rank 8, 12 stills at 256x144, batch 1:\n")
    print(
        "| trainer | wall s (load, data, steps) | training steps/s | final loss (high / low) | wall × ours |"
    )
    print("|---|---|---|---|---|")
    base = rows[0][1]
    for name, seconds, rate, losses in rows:
        final = " / ".join(f"{v:.3f}" for v in losses.values())
        print(f"| {name} | {seconds:.1f} | {rate:.1f} | {final} | {seconds / base:.2f} |")
    print(f"\npeak RSS of the process (both runs): {peak:.0f} MB")


if __name__ == "__main__":
    main()
