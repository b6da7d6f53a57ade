"""Ablation: why the demo model's experts have 2 heads of 48 rather than 4 heads of 16.

With 4 heads x 16 the trained tiny experts made a patchwork of 16-pixel blotches. Wan's 3D RoPE
gives height and width ``2 * (head_dim // 6)`` channels each, so a head of 16 has two rotary
frequencies per axis (1 and 0.01 rad per patch) and cannot tell a neighbouring patch from one
six patches away: the experts cannot separate noise at the patch scale from the picture.

Each variant is one transformer trained by flow matching on every noise level (the trainer's
shared stage, :mod:`brandstudio.generation.tiny_training`) for the same steps, on the same
latents of the shipped VAE, one thread each. Reported:

* the last 200 steps' loss;
* "token-scale energy": the mean square of the 2x2-latent patch means minus their 2x coarser
  smoothing, i.e. structure at the size of one transformer token (16 px). For the data, for the
  model's x0 prediction from real clips noised to sigma 0.875, and for samples (Euler, 20 steps,
  flow shift 3, no guidance) from pure noise;
* the same at pixel level: the mean step between neighbouring 16x16-pixel block means of the
  decoded samples (the data's own figure beside it).

    python bench/demo_model_heads.py [--steps 800] [--variants 4x16 2x32 2x48]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_render import machine  # noqa: E402


def token_energy(z):
    """Energy of ``z`` (B, C, T, H, W) at the scale of one 2x2-latent token."""
    import torch.nn.functional as F

    b, c, t, h, w = z.shape
    means = F.avg_pool2d(z.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), 2)
    coarse = F.interpolate(F.avg_pool2d(means, 2, ceil_mode=True), size=means.shape[-2:], mode="nearest")
    return float(((means - coarse) ** 2).mean())


def block_roughness(video) -> float:
    """Mean step between neighbouring 16x16-pixel block means of decoded ``video`` (B, 3, T, H, W)."""
    import torch.nn.functional as F

    blocks = F.avg_pool3d(video, (1, 16, 16))
    return float((blocks.diff(dim=-1).abs().mean() + blocks.diff(dim=-2).abs().mean()) / 2)


def train_variant(heads: int, head_dim: int, steps: int, groups, empty) -> tuple:
    import torch
    from diffusers import WanTransformer3DModel

    from brandstudio.generation.flow_matching import flow_matching_loss, sample_sigmas
    from brandstudio.generation.tiny import TINY_DIMS, TINY_FLOW_SHIFT
    from brandstudio.generation.tiny_training import _cosine_lr

    torch.manual_seed(0)
    dim = heads * head_dim
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim,
                                  in_channels=16, out_channels=16, text_dim=TINY_DIMS["text_dim"], freq_dim=64,
                                  ffn_dim=2 * dim, num_layers=TINY_DIMS["num_layers"], cross_attn_norm=True,
                                  qk_norm="rms_norm_across_heads", rope_max_seq_len=1024)  # fmt: skip
    gen, rng = torch.Generator().manual_seed(4), np.random.default_rng(5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        _cosine_lr(optimizer, step, steps, 1e-3, warmup=50)
        latents, embeds = groups[step % len(groups)]
        stills = step % 5 == 4
        pool = [i for i, z in enumerate(latents) if (z.shape[1] == 1) == stills]
        idx = rng.choice(pool, size=8, replace=False)
        text = embeds[torch.as_tensor(idx)].clone()
        text[torch.rand(len(idx), generator=gen) < 0.1] = empty
        x0 = torch.stack([latents[i] for i in idx])
        sigmas = sample_sigmas(len(idx), low=0.0, high=1.0, shift=TINY_FLOW_SHIFT, generator=gen)
        loss = flow_matching_loss(model, x0, text, sigmas, torch.randn(x0.shape, generator=gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return model, float(np.mean(losses[-200:])), time.perf_counter() - t0


def measure(model, vae, groups) -> dict:
    import torch

    from brandstudio.generation.tiny import TINY_FLOW_SHIFT

    latents, embeds = groups[0]
    clips = [i for i, z in enumerate(latents) if z.shape[1] > 1][:8]
    x0, text = torch.stack([latents[i] for i in clips]), embeds[torch.as_tensor(clips)]
    n = len(clips)
    with torch.no_grad():
        sigma = 0.875
        noisy = (1 - sigma) * x0 + sigma * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
        v = model(hidden_states=noisy, timestep=torch.full((n,), sigma * 1000), encoder_hidden_states=text,
                  return_dict=False)[0]  # fmt: skip
        x0_hat = noisy - sigma * v
        x = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
        u = torch.linspace(1, 0, 21)
        sigmas = TINY_FLOW_SHIFT * u / (1 + (TINY_FLOW_SHIFT - 1) * u)
        for i in range(20):
            v = model(hidden_states=x, timestep=torch.full((n,), float(sigmas[i]) * 1000), encoder_hidden_states=text,
                      return_dict=False)[0]  # fmt: skip
            x = x + (sigmas[i + 1] - sigmas[i]) * v
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        decoded = vae.decode(x[:2] * std + mean).sample.clamp(-1, 1)
        reference = vae.decode(x0[:2] * std + mean).sample.clamp(-1, 1)
    return {"data": token_energy(x0), "x0_hat": token_energy(x0_hat), "sample": token_energy(x),
            "rough": block_roughness(decoded), "rough_data": block_roughness(reference)}  # fmt: skip


def main() -> None:
    import torch

    from brandstudio.generation.tiny import TINY_WEIGHTS_DIR, build_tiny_pipeline
    from brandstudio.generation.tiny_training import DemoModelTraining, _encode_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--variants", nargs="+", default=["4x16", "2x32", "2x48"], help="HEADSxHEAD_DIM")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipe = build_tiny_pipeline(weights=TINY_WEIGHTS_DIR)
    stats = json.loads((TINY_WEIGHTS_DIR / "training.json").read_text())["vae"]
    groups, empty = _encode_data(pipe, DemoModelTraining(), stats, log=lambda s: None)
    rows = []
    for variant in args.variants:
        heads, head_dim = (int(v) for v in variant.split("x"))
        model, loss, seconds = train_variant(heads, head_dim, args.steps, groups, empty)
        m = measure(model, pipe.vae, groups)
        params = sum(p.numel() for p in model.parameters())
        rows.append(f"| {heads} x {head_dim} (dim {heads * head_dim}) | {params / 1e3:.0f}k | {2 * (head_dim // 6) // 2} "
                    f"| {loss:.3f} | {m['x0_hat']:.3f} | {m['sample']:.3f} | {m['rough']:.3f} | {seconds / 60:.1f} |")  # fmt: skip
    print(f"### Demo model: heads x head size, {args.steps} steps each ({date.today().isoformat()}, {machine()})\n")
    print(f"Data: token-scale energy {m['data']:.3f}; 16-px block roughness of decoded clips {m['rough_data']:.3f}.\n")
    print("| heads x size | params | rotary freqs per axis | loss | token energy, x0 at σ 0.875 "
          "| token energy, samples | block roughness, samples | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
