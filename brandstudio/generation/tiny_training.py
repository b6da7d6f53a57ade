"""Train the offline demo models (``tiny``, ``tiny-ti2v``) so that they make moving colour instead of noise.

The tiny Wan2.2 models of :mod:`brandstudio.generation.tiny` have the real architectures at toy
size: ``tiny`` is T2V-A14B (two experts), ``tiny-ti2v`` is TI2V-5B (one transformer, the Wan2.2
VAE, text *or* text and a start image). Random weights make noise; these weights are learned
here, on a CPU, in minutes, from procedural footage (:mod:`brandstudio.generation.procedural`:
drifting gradients, soft discs, a wandering light, with captions naming the colours and the
motion):

1. build the random pipeline (:func:`brandstudio.generation.tiny.build_tiny_pipeline`,
   :func:`~brandstudio.generation.tiny.build_tiny_ti2v_pipeline`);
2. train the VAE as an autoencoder on procedural clips and stills (L2 + L1 reconstruction of
   the posterior mean with a little noise added, so that the decoder tolerates imperfect latents);
3. measure its reconstruction PSNR on held-out scenes, and the per-channel mean and standard
   deviation of its latents (``latents_mean`` / ``latents_std``: the transformer works on unit
   variance latents, as with the real Wan VAE);
4. encode the transformer's training clips and their captions once;
5. train the transformer by flow matching (:mod:`brandstudio.generation.flow_matching`, the same
   loss ``lora train`` uses) on every noise level, with a tenth of the captions dropped so that
   classifier-free guidance has an unconditional branch; then, for ``tiny``, each expert on its
   own noise range (split at ``boundary_ratio``). ``tiny-ti2v`` (``expand_timesteps``) is told
   the timestep per token, and in a share of its draws (``first_frame_share``) latent frame 0 is
   kept clean at timestep 0 and left out of the loss, as ``WanImageToVideoPipeline`` conditions
   on a start image: one model learns to make a first shot from text and to continue from a
   frame (a long take's next segment starts from the last frame of the one before);
6. write ``text_encoder``/``vae``/``transformer``(/``transformer_2``) ``.safetensors`` and
   ``training.json`` (what was trained, how long, the losses and the PSNR) into the weights
   folder :func:`brandstudio.generation.tiny.build_tiny_model` (or ``build_tiny_ti2v_model``) loads.

The shipped weights in ``brandstudio/generation/tiny_weights/`` and ``tiny_ti2v_weights/`` were made by::

    python -m brandstudio.generation.tiny_training
    python -m brandstudio.generation.tiny_training --model tiny-ti2v

Example:
    >>> from brandstudio.generation.tiny_training import DemoModelTraining, train_demo_model
    >>> facts = train_demo_model(tmp_dir, DemoModelTraining.toy())      # doctest: +SKIP
    >>> facts["vae"]["psnr_db"] > 10                                     # doctest: +SKIP
    True
    >>> facts = train_demo_model(tmp_dir, DemoModelTraining.toy("tiny-ti2v"))  # doctest: +SKIP
    >>> list(facts["experts"])                                           # doctest: +SKIP
    ['transformer']
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from brandstudio.files import write_bytes_atomic
from brandstudio.generation.flow_matching import expert_sigma_ranges, flow_matching_loss, sample_sigmas
from brandstudio.generation.procedural import random_scene, render_scene, scene_caption
from brandstudio.generation.tiny import (
    TINY_TI2V_WEIGHTS_DIR,
    TINY_WEIGHTS_DIR,
    build_tiny_pipeline,
    build_tiny_ti2v_pipeline,
)

__all__ = ["DemoModelTraining", "psnr", "train_demo_model"]

COMPONENTS = ("text_encoder", "vae", "transformer", "transformer_2")
"""The weight files of a trained model (the tokenizer and scheduler have no weights); a
one-transformer model (``tiny-ti2v``) has no ``transformer_2``."""

FACTS_FILE = "training.json"

ENCODE_BATCH = 4
"""Clips the VAE encodes per call when the transformer's data is made."""

DEMO_MODELS: dict[str, tuple[Callable[..., object], Path]] = {
    "tiny": (build_tiny_pipeline, TINY_WEIGHTS_DIR),
    "tiny-ti2v": (build_tiny_ti2v_pipeline, TINY_TI2V_WEIGHTS_DIR),
}
"""Each trainable demo model: its pipeline builder (``seed=`` random, ``weights=`` trained) and
the folder its shipped weights live in."""


@dataclass(frozen=True)
class DemoModelTraining:
    """How a demo model is trained (the defaults made the shipped ``tiny``, :meth:`ti2v` ``tiny-ti2v``).

    Attributes:
        model: which demo model: ``"tiny"`` or ``"tiny-ti2v"`` (:data:`DEMO_MODELS`).
        vae_still_steps, vae_clip_steps: the autoencoder's two phases (stills, then clips).
        vae_batch, vae_size, vae_lr, vae_latent_noise: its batch of stills, still size
            ``(width, height)``, learning rate, and the noise added to its latents.
        vae_frames, vae_clip_crop: frames (1 + 4k) and crop size of the second phase's clips.
        clips, clip_frames, sizes: the transformer's data: how many procedural clips, how many
            frames each (1 + 4k), and the ``(width, height)`` sizes they are drawn at (multiples of
            the VAE's spatial factor times the patch: 16 for ``tiny``, 32 for ``tiny-ti2v``).
        shared_steps: steps on every noise level: of the one transformer both experts start
            from, or all the training of a one-transformer model.
        expert_steps: steps of each expert on its own noise range after that (two experts only).
        transformer_batch, transformer_lr: batch and peak learning rate of both stages.
        caption_dropout: the share of captions replaced by the empty prompt.
        first_frame_share: the share of clip draws trained to continue from their first frame
            (image-to-video, for an ``expand_timesteps`` model; the others are text-to-video).
        held_out: scenes kept out of training for the PSNR figure.
        seed: every draw (scenes, noise, initial weights).
    """

    model: str = "tiny"
    vae_still_steps: int = 2500
    vae_clip_steps: int = 400
    vae_batch: int = 8
    vae_size: tuple[int, int] = (64, 64)
    vae_frames: int = 17
    vae_clip_crop: tuple[int, int] = (32, 32)
    vae_lr: float = 2e-3
    vae_latent_noise: float = 0.05
    clips: int = 320
    clip_frames: int = 17
    sizes: tuple[tuple[int, int], ...] = ((256, 144), (144, 256))
    shared_steps: int = 2400
    expert_steps: int = 400
    transformer_batch: int = 8
    transformer_lr: float = 1e-3
    caption_dropout: float = 0.1
    first_frame_share: float = 0.0
    held_out: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in DEMO_MODELS:
            raise ValueError(f"model must be one of {sorted(DEMO_MODELS)}, got {self.model!r}")

    @classmethod
    def ti2v(cls) -> DemoModelTraining:
        """``tiny-ti2v``'s training (made its shipped weights): about 30 minutes on 2 CPU cores.

        Its VAE compresses 4x16x16, so its sizes are multiples of 32 (both orientations of 256x160
        and 256x128, around a 16:9 profile's 256x144) and its clip crops 48x48 (32x32 would be 2x2
        latents, nearly all border). Its VAE costs a third of ``tiny``'s, and a transformer step
        half of one of ``tiny``'s even on clips twice as long (256x160x33 is 360 tokens, 256x144x17
        720 for ``tiny``), so it trains on 33-frame clips (2 s, nearer a long take's segment), on
        twice the scenes, and for 6000 steps, what fits the half hour. Half its clip draws continue
        from their first frame, the rest (and the stills) are text-to-video.
        """
        return cls(model="tiny-ti2v", vae_still_steps=3000, vae_clip_steps=400, vae_clip_crop=(48, 48),
                   clips=640, clip_frames=33, sizes=((256, 160), (160, 256), (256, 128), (128, 256)),
                   shared_steps=6000, expert_steps=0, first_frame_share=0.5)  # fmt: skip

    @classmethod
    def toy(cls, model: str = "tiny") -> DemoModelTraining:
        """A run of seconds at toy size, for tests."""
        toy = cls(vae_still_steps=4, vae_clip_steps=2, vae_batch=2, vae_size=(32, 32), vae_frames=5,
                  vae_clip_crop=(16, 16), clips=4, clip_frames=5, sizes=((64, 32),),
                  shared_steps=3, expert_steps=2, transformer_batch=2, held_out=2)  # fmt: skip
        if model == "tiny-ti2v":  # sizes in multiples of 32; one transformer; 2 latent frames
            return replace(toy, model=model, vae_clip_crop=(32, 32), sizes=((64, 32),), shared_steps=6,
                           expert_steps=0, first_frame_share=0.5)  # fmt: skip
        return replace(toy, model=model)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two float images/clips in [0, 1].

    Example:
        >>> import numpy as np
        >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 1)
        20.0
    """
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def _to_tensor(clip: np.ndarray):
    """``(T, H, W, 3)`` in [0, 1] to ``(3, T, H, W)`` in [-1, 1]."""
    import torch

    return torch.from_numpy(clip).permute(3, 0, 1, 2) * 2 - 1


def _scene_batch(rng: np.random.Generator, n: int, frames: int, size: tuple[int, int]):
    """``n`` procedural clips as one ``(n, 3, T, H, W)`` tensor, and their captions."""
    import torch

    scenes = [random_scene(rng) for _ in range(n)]
    clips = [render_scene(s, frames=frames, width=size[0], height=size[1]) for s in scenes]
    return torch.stack([_to_tensor(c) for c in clips]), [scene_caption(s) for s in scenes]


def _crop_batch(rng: np.random.Generator, n: int, frames: int, crop: tuple[int, int], sizes):
    """``n`` crops of ``crop`` size from clips rendered at the generation sizes: the VAE sees the
    scale of detail it will decode, at the cost of a small crop."""
    import torch

    out = []
    for _ in range(n):
        w, h = sizes[int(rng.integers(len(sizes)))]
        clip = render_scene(random_scene(rng), frames=frames, width=w, height=h)
        y, x = int(rng.integers(0, h - crop[1] + 1)), int(rng.integers(0, w - crop[0] + 1))
        out.append(_to_tensor(np.ascontiguousarray(clip[:, y : y + crop[1], x : x + crop[0]])))
    return torch.stack(out)


def _cosine_lr(optimizer, step: int, total: int, peak: float, warmup: int = 50) -> None:
    lr = peak * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    for group in optimizer.param_groups:
        group["lr"] = max(lr, peak * 0.02)


def _make_frames_independent(vae) -> list:
    """Make the VAE's convolutions see one frame at a time, except the temporal resamplers.

    Every 3x3x3 causal convolution keeps only its tap on the current frame (the two taps on past
    frames are zero and get no gradient): the VAE becomes an image autoencoder per frame, which
    learns colour from stills, quickly, and cannot drift over a long clip (a causal VAE trained on
    short clips compounds its error over the frames after them: 4-6 dB lost on frames 10-17 after
    training on 9). Time is carried only by the resamplers' ``time_conv`` (4 frames to 1 latent
    and back), started as "hold the frame" and learned on clips in the second phase.
    Returns those ``time_conv`` modules.
    """
    import torch
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    temporal = []
    for name, module in vae.named_modules():
        if not isinstance(module, WanCausalConv3d) or module.kernel_size[0] == 1:
            continue
        with torch.no_grad():
            if name.endswith("time_conv"):
                temporal.append(module)
                module.weight.zero_()
                module.bias.zero_()
                out_ch, in_ch = module.weight.shape[:2]
                eye = torch.eye(in_ch)
                for half in range(out_ch // in_ch):  # upsampling makes two frames of each: both the same
                    module.weight[half * in_ch : (half + 1) * in_ch, :, -1, 0, 0] = eye
                continue
            module.weight[:, :, :-1].zero_()
        mask = torch.zeros_like(module.weight)
        mask[:, :, -1] = 1.0
        module.weight.register_hook(lambda grad, mask=mask: grad * mask)
    return temporal


def _vae_step(vae, x, optimizer, params, gen, cfg: DemoModelTraining) -> float:
    """One reconstruction step (L2 + L1) through the posterior mean with a little noise."""
    import torch
    import torch.nn.functional as F

    mean = vae.encode(x).latent_dist.mean
    # the posterior mean with a little noise, relative to the latents' own spread: the decoder
    # learns to tolerate the imperfect latents a sampler ends on (a full-variance posterior
    # sample drowns the signal of a VAE this small, trained this briefly)
    noise = torch.randn(mean.shape, generator=gen) * cfg.vae_latent_noise * mean.detach().std()
    recon = vae.decode(mean + noise).sample
    mse = F.mse_loss(recon, x)
    loss = mse + 0.5 * F.l1_loss(recon, x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return mse.item()


def _train_vae(vae, cfg: DemoModelTraining, log: Callable[[str], None]) -> list[float]:
    """Step 2: the autoencoder: per-frame on stills, then its temporal resamplers on clips."""
    import torch

    rng = np.random.default_rng(cfg.seed + 1)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    # The mid-block self-attention averages over every latent position, so what it learns at the
    # training crop's 8x8 positions does not hold at the 32x18 of a generation. Its output
    # projection is held at zero (the block is residual: it passes its input through), which
    # leaves a convolutional VAE that works at any size.
    for attention in (*vae.encoder.mid_block.attentions, *vae.decoder.mid_block.attentions):
        torch.nn.init.zeros_(attention.proj.weight)
        torch.nn.init.zeros_(attention.proj.bias)
        attention.requires_grad_(False)
    temporal = _make_frames_independent(vae)
    vae.train()
    losses: list[float] = []
    # Phase 1, stills: whole scenes at the still size (detail as fine as it gets) and crops of
    # generation-size ones (the scale of detail it will decode), in turn.
    params = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.vae_lr, weight_decay=0.0)
    report = max(1, cfg.vae_still_steps // 10)
    for step in range(cfg.vae_still_steps):
        _cosine_lr(optimizer, step, cfg.vae_still_steps, cfg.vae_lr)
        if step % 2 == 0:
            x = _scene_batch(rng, cfg.vae_batch, 1, cfg.vae_size)[0]
        else:
            x = _crop_batch(rng, cfg.vae_batch, 1, cfg.vae_size, cfg.sizes)
        losses.append(_vae_step(vae, x, optimizer, params, gen, cfg))
        if (step + 1) % report == 0:
            log(f"vae stills {step + 1}/{cfg.vae_still_steps} mse {np.mean(losses[-50:]):.4f} "
                f"(about {10 * math.log10(4 / max(np.mean(losses[-50:]), 1e-8)):.1f} dB)")  # fmt: skip
    # Phase 2, clips: only the temporal resamplers learn; every frame's colour stays as learned.
    vae.requires_grad_(False)
    params = [p for module in temporal for p in module.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.vae_lr, weight_decay=0.0)
    report = max(1, cfg.vae_clip_steps // 5)
    for step in range(cfg.vae_clip_steps):
        _cosine_lr(optimizer, step, cfg.vae_clip_steps, cfg.vae_lr, warmup=10)
        x = _crop_batch(rng, max(1, cfg.vae_batch // 2), cfg.vae_frames, cfg.vae_clip_crop, cfg.sizes)
        losses.append(_vae_step(vae, x, optimizer, params, gen, cfg))
        if (step + 1) % report == 0:
            log(f"vae clips {step + 1}/{cfg.vae_clip_steps} mse {np.mean(losses[-50:]):.4f}; "
                f"a held-out clip at the generation size {_held_out_psnr(vae, cfg):.1f} dB")  # fmt: skip
            vae.train()
    vae.eval()
    return losses


def _reconstruct(vae, clip: np.ndarray) -> np.ndarray:
    """``clip`` through the VAE (posterior mean), as ``(T, H, W, 3)`` in [0, 1]."""
    import torch

    with torch.no_grad():
        z = vae.encode(_to_tensor(clip)[None]).latent_dist.mode()
        return ((vae.decode(z).sample[0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1).numpy()


def _held_out_psnr(vae, cfg: DemoModelTraining) -> float:
    """One held-out clip of 33 frames at the generation size: the progress line's check."""
    vae.eval()
    clip = render_scene(random_scene(np.random.default_rng(cfg.seed + 2)), frames=33, width=cfg.sizes[0][0],
                        height=cfg.sizes[0][1])  # fmt: skip
    return psnr(_reconstruct(vae, clip), clip)


def _measure_vae(vae, cfg: DemoModelTraining) -> dict:
    """Step 3: held-out PSNR (a still and a clip per scene at the generation size) and latent stats."""
    import torch

    rng = np.random.default_rng(cfg.seed + 2)  # scenes the training never drew
    size = cfg.sizes[0]
    frames = 33 if cfg.vae_frames >= 33 else cfg.vae_frames
    scores, latents = [], []
    with torch.no_grad():
        for _ in range(cfg.held_out):
            clip = render_scene(random_scene(rng), frames=frames, width=size[0], height=size[1])
            scores.append(psnr(_reconstruct(vae, clip), clip))
            latents.append(vae.encode(_to_tensor(clip)[None]).latent_dist.mode().flatten(2).squeeze(0))
    z = torch.cat(latents, dim=1)
    return {
        "psnr_db": round(float(np.mean(scores)), 2),
        "psnr_min_db": round(float(np.min(scores)), 2),
        "held_out": f"{cfg.held_out} procedural clips of {frames} frames at {size[0]}x{size[1]}",
        "latents_mean": [round(float(v), 5) for v in z.mean(dim=1)],
        "latents_std": [round(float(v), 5) for v in z.std(dim=1).clamp(min=1e-3)],
    }


def _encode_scenes(vae, scenes: list, frames: int, size: tuple[int, int], mean, std) -> list:
    """``scenes`` rendered at ``size`` for ``frames`` frames, as normalised latents, a few per VAE
    call: its small convolutions use the cores far better on a batch (4 clips cost about what one
    does alone)."""
    import torch

    out = []
    for start in range(0, len(scenes), ENCODE_BATCH):
        chunk = scenes[start : start + ENCODE_BATCH]
        x = torch.stack(
            [_to_tensor(render_scene(s, frames=frames, width=size[0], height=size[1])) for s in chunk]
        )
        out.extend((vae.encode(x).latent_dist.mode() - mean) / std)
    return out


def _encode_data(pipe, cfg: DemoModelTraining, stats: dict, log: Callable[[str], None]):
    """Step 4: the transformer's clips as normalised latents, grouped by size, and caption embeddings."""
    import torch

    rng = np.random.default_rng(cfg.seed + 3)
    mean = torch.tensor(stats["latents_mean"]).view(1, -1, 1, 1, 1)
    std = torch.tensor(stats["latents_std"]).view(1, -1, 1, 1, 1)
    groups = []
    with torch.no_grad():
        for size in cfg.sizes:
            scenes = [random_scene(rng) for _ in range(cfg.clips // len(cfg.sizes))]
            # a fifth are stills: the LoRAs of brand profiles train on single frames
            frames = [1 if i % 5 == 4 else cfg.clip_frames for i in range(len(scenes))]
            latents = [None] * len(scenes)
            for length in sorted(set(frames)):
                same = [i for i, f in enumerate(frames) if f == length]
                encoded = _encode_scenes(pipe.vae, [scenes[i] for i in same], length, size, mean, std)
                for i, latent in zip(same, encoded, strict=True):
                    latents[i] = latent
            captions = [scene_caption(s) for s in scenes]
            embeds = pipe.encode_prompt(captions, do_classifier_free_guidance=False, max_sequence_length=512)[
                0
            ]
            groups.append((latents, embeds))
            log(f"encoded {len(latents)} clips at {size[0]}x{size[1]}")
        empty = pipe.encode_prompt([""], do_classifier_free_guidance=False, max_sequence_length=512)[0]
    return groups, empty


def _train_expert(transformer, low: float, high: float, groups, empty, shift: float, steps: int, lr: float,
                  cfg: DemoModelTraining, name: str, log: Callable[[str], None], *,
                  expand_timesteps: bool = False) -> list[float]:  # fmt: skip
    """Step 5: a transformer, by flow matching on noise levels in ``[low, high]``.

    With ``expand_timesteps`` (TI2V) the timestep is told per token, as the pipelines do, and
    ``cfg.first_frame_share`` of the clips continue from their first latent frame, kept clean.
    """
    import torch

    gen = torch.Generator().manual_seed(cfg.seed + 4)
    rng = np.random.default_rng(cfg.seed + 5)
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=lr, weight_decay=0.01)
    transformer.train()
    losses = []
    for step in range(steps):
        _cosine_lr(optimizer, step, steps, lr, warmup=min(50, max(1, steps // 10)))
        latents, embeds = groups[step % len(groups)]
        # a batch of same-shaped latents (clips and stills alternate in the data)
        stills = step % 5 == 4
        pool = [i for i, z in enumerate(latents) if (z.shape[1] == 1) == stills] or list(range(len(latents)))
        idx = rng.choice(pool, size=min(cfg.transformer_batch, len(pool)), replace=False)
        x0 = torch.stack([latents[i] for i in idx])
        text = embeds[torch.as_tensor(idx)].clone()
        drop = torch.rand(len(idx), generator=gen) < cfg.caption_dropout
        text[drop] = empty
        sigmas = sample_sigmas(len(idx), low=low, high=high, shift=shift, generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        from_image = None
        if expand_timesteps and cfg.first_frame_share and x0.shape[2] > 1:
            # image-to-video draws: a clip's first latent frame is the latent of its first frame
            # alone (the VAE is causal), just what the pipeline makes of a start image
            from_image = torch.rand(len(idx), generator=gen) < cfg.first_frame_share
        loss = flow_matching_loss(transformer, x0, text, sigmas, noise, expand_timesteps=expand_timesteps,
                                  clean_first_frame=from_image)  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"{name} step {step + 1}/{steps} loss {np.mean(losses[-50:]):.4f}")
    transformer.eval()
    return losses


def _save_weights(pipe, out_dir: Path, facts: dict, components=COMPONENTS) -> None:
    """Step 6: one safetensors file per component and the training facts, each written atomically."""
    from safetensors.torch import save

    for name in components:
        state, seen = {}, set()
        for key, tensor in getattr(pipe, name).state_dict().items():
            if tensor.data_ptr() in seen:  # a tied weight (UMT5's shared embedding): stored once
                continue
            seen.add(tensor.data_ptr())
            state[key] = tensor.detach().contiguous()
        write_bytes_atomic(out_dir / f"{name}.safetensors", save(state, metadata={"format": "pt"}))
    text = json.dumps(facts, indent=2, ensure_ascii=False) + "\n"
    write_bytes_atomic(out_dir / FACTS_FILE, text.encode("utf-8"))


def _stage_facts(before: dict | None, sigma_range, seconds: float, losses: list[float]) -> dict:
    """A training stage's facts; a resumed stage adds its time and its loss curve to the earlier run's."""
    facts = {"sigma_range": list(sigma_range), "seconds": round(seconds, 1), "steps": len(losses),
             "loss_curve": _curve(losses)}  # fmt: skip
    if before:
        facts["seconds"] = round(before["seconds"] + seconds, 1)
        facts["steps"] = before.get("steps", 0) + len(losses)
        facts["loss_curve"] = before["loss_curve"] + facts["loss_curve"]
    return facts


def _curve(losses: list[float]) -> list[float]:
    """The loss curve in 20 points (means of equal spans), for the facts file."""
    spans = np.array_split(np.asarray(losses, dtype=np.float64), min(20, len(losses)))
    return [round(float(s.mean()), 5) for s in spans]


def _check_sizes(pipe, cfg: DemoModelTraining) -> None:
    """Raise a ``ValueError`` for a training size the model cannot generate at (before minutes are spent)."""
    multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]
    bad = [f"{w}x{h}" for w, h in cfg.sizes if w % multiple or h % multiple]
    if bad:
        raise ValueError(
            f"{cfg.model} generates at multiples of {multiple} pixels; sizes {', '.join(bad)} are not"
        )
    vae_multiple = pipe.vae_scale_factor_spatial
    crops = [f"{w}x{h}" for w, h in (cfg.vae_size, cfg.vae_clip_crop) if w % vae_multiple or h % vae_multiple]
    if crops:
        raise ValueError(f"{cfg.model}'s VAE needs multiples of {vae_multiple}; {', '.join(crops)} are not")


def _components(pipe) -> list[str]:
    """The pipeline's weighted components (:data:`COMPONENTS` less a missing ``transformer_2``)."""
    return [name for name in COMPONENTS if getattr(pipe, name, None) is not None]


def train_demo_model(out_dir: Path, config: DemoModelTraining | None = None, *, keep_vae: bool = False,
                     resume_experts: bool = False, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Train a demo model's weights into ``out_dir``; returns the training facts.

    Args:
        out_dir: the folder to write ``<component>.safetensors`` and ``training.json`` into.
        config: the model and the run's sizes; ``DemoModelTraining()`` made the shipped ``tiny``
            weights, ``DemoModelTraining.ti2v()`` the ``tiny-ti2v`` ones, ``DemoModelTraining.toy()``
            (``toy("tiny-ti2v")``) runs in seconds.
        resume_experts: start the transformer(s) from the ones a previous run wrote into ``out_dir``
            (with ``keep_vae``: their latents are that VAE's) and train them on; the shared stage
            runs only if ``config.shared_steps`` asks for it. The loss curves of the runs are kept.
        keep_vae: reuse the VAE a previous run trained into ``out_dir`` (its step 2 is written
            as soon as it is done) and train the experts only.
        log: where progress lines go.
    """
    import torch
    from safetensors.torch import load_model

    cfg = config or DemoModelTraining()
    if resume_experts and not keep_vae:
        raise ValueError("resume_experts needs keep_vae: the experts were trained on that VAE's latents")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        # 1. the random pipeline of the current architecture
        build_pipeline, _ = DEMO_MODELS[cfg.model]
        pipe = build_pipeline(seed=cfg.seed)
        _check_sizes(pipe, cfg)
        pipe.text_encoder.requires_grad_(False)
        # 2. the VAE (or the one a previous run of this folder trained, with keep_vae)
        t0 = time.perf_counter()
        earlier_runs = []
        if keep_vae:
            load_model(pipe.vae, out_dir / "vae.safetensors", strict=True)
            previous = json.loads((out_dir / FACTS_FILE).read_text(encoding="utf-8"))
            vae_losses, vae_seconds = previous["vae"]["loss_curve"], previous["vae"]["seconds"]
            earlier_runs = previous.get("runs", []) if resume_experts else []
        else:
            vae_losses = _train_vae(pipe.vae, cfg, log)
            vae_seconds = time.perf_counter() - t0
            _save_weights(
                pipe,
                out_dir,
                {"vae": {"loss_curve": _curve(vae_losses), "seconds": round(vae_seconds, 1)}},
                components=("vae",),
            )  # a later failure does not cost the VAE's minutes
        # 3. its reconstruction and latent statistics
        vae_facts = _measure_vae(pipe.vae, cfg)
        log(f"vae held-out PSNR {vae_facts['psnr_db']} dB (min {vae_facts['psnr_min_db']})")
        pipe.vae.requires_grad_(False)
        # 4. the experts' data
        t0 = time.perf_counter()
        groups, empty = _encode_data(pipe, cfg, vae_facts, log)
        encode_seconds = time.perf_counter() - t0
        # 5. one transformer on every noise level, then each expert from it on its own range (as
        # Wan2.2's experts start from one Wan2.1 model): the shared stage is where the footage is
        # learned, and it costs one model's steps rather than two. A one-transformer model
        # (TI2V) is that stage alone.
        shift = float(pipe.scheduler.config.flow_shift)
        expand_timesteps = bool(pipe.config.get("expand_timesteps"))
        names = [name for name in _components(pipe) if name.startswith("transformer")]
        ranges = expert_sigma_ranges(pipe.config.boundary_ratio) if len(names) > 1 else {}
        experts = {}
        if resume_experts:
            experts = json.loads((out_dir / FACTS_FILE).read_text(encoding="utf-8"))["experts"]
            for name in names:
                load_model(getattr(pipe, name), out_dir / f"{name}.safetensors", strict=True)
        if cfg.shared_steps:
            stage = "shared" if ranges else "transformer"
            t0 = time.perf_counter()
            shared = _train_expert(pipe.transformer, 0.0, 1.0, groups, empty, shift, cfg.shared_steps,
                                   cfg.transformer_lr, cfg, stage, log,
                                   expand_timesteps=expand_timesteps)  # fmt: skip
            if ranges:
                pipe.transformer_2.load_state_dict(pipe.transformer.state_dict())
            experts[stage] = _stage_facts(experts.get(stage), (0.0, 1.0), time.perf_counter() - t0, shared)
        for name, (low, high) in ranges.items():
            t0 = time.perf_counter()
            losses = _train_expert(getattr(pipe, name), low, high, groups, empty, shift, cfg.expert_steps,
                                   cfg.transformer_lr * 0.3, cfg, name, log)  # fmt: skip
            experts[name] = _stage_facts(experts.get(name), (low, high), time.perf_counter() - t0, losses)
    # 6. the files
    data = "brandstudio.generation.procedural: drifting gradients, soft discs and a light, captioned"
    if expand_timesteps:
        data += f"; {cfg.first_frame_share:.0%} of clip draws continue from their first frame"
    runs = [*earlier_runs, {"config": asdict(cfg), "seconds": round(time.perf_counter() - began, 1)}]
    facts = {
        "config": asdict(cfg),
        "runs": runs,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # what the weights as shipped cost to train, stage by stage (a kept VAE's from its own run)
        "seconds": round(vae_seconds + encode_seconds + sum(e["seconds"] for e in experts.values()), 1),
        "vae": {
            **vae_facts,
            "seconds": round(vae_seconds, 1),
            "loss_curve": _curve(vae_losses),
            "parameters": sum(p.numel() for p in pipe.vae.parameters()),
        },  # fmt: skip
        "encode_seconds": round(encode_seconds, 1),
        "experts": experts,
        "data": data,
    }
    _save_weights(pipe, out_dir, facts, components=_components(pipe))
    return facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train an offline demo model's weights (minutes on a CPU).")
    ap.add_argument("--model", choices=sorted(DEMO_MODELS), default="tiny",
                    help="which demo model (default: tiny; tiny-ti2v takes a start image)")  # fmt: skip
    ap.add_argument(
        "--out", type=Path, default=None, help="weights folder (default: the model's shipped one)"
    )
    ap.add_argument("--toy", action="store_true", help="a run of seconds at toy size")
    ap.add_argument("--keep-vae", action="store_true", help="reuse the VAE already trained into --out")
    ap.add_argument("--resume-experts", action="store_true",
                    help="with --keep-vae: train the transformer(s) already in --out further")  # fmt: skip
    ap.add_argument("--vae-still-steps", type=int, default=None)
    ap.add_argument("--shared-steps", type=int, default=None)
    ap.add_argument("--expert-steps", type=int, default=None)
    args = ap.parse_args(argv)
    if args.toy:
        cfg = DemoModelTraining.toy(args.model)
    else:
        cfg = DemoModelTraining.ti2v() if args.model == "tiny-ti2v" else DemoModelTraining()
    for field in ("vae_still_steps", "shared_steps", "expert_steps"):
        if getattr(args, field) is not None:
            cfg = replace(cfg, **{field: getattr(args, field)})
    out = args.out or DEMO_MODELS[args.model][1]
    facts = train_demo_model(
        out,
        cfg,
        keep_vae=args.keep_vae,
        resume_experts=args.resume_experts,
        log=lambda s: print(s, flush=True),
    )
    print(f"wrote {out} in {facts['seconds']:.0f} s; VAE PSNR {facts['vae']['psnr_db']} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
