"""Flow-matching training of Wan experts: each expert's noise range, the noise draw and the loss.

Wan2.x is trained by rectified flow: a clean latent ``x0`` and Gaussian noise ``e`` are mixed as
``x_t = (1 - sigma) * x0 + sigma * e`` and the transformer, given ``x_t`` and the timestep
``1000 * sigma``, predicts the velocity ``e - x0`` (what ``UniPCMultistepScheduler`` with
``prediction_type="flow_prediction"`` integrates at inference). Wan2.2 A14B splits the noise
levels between two experts at ``boundary_ratio``: ``transformer`` denoises timesteps at or above
``boundary_ratio * 1000``, ``transformer_2`` those below, so each is trained on its own range
(:func:`expert_sigma_ranges`). Noise levels are drawn uniformly and then shifted with the
scheduler's ``flow_shift``, the same warp the sampler uses, so training sees the noise levels
inference visits (:func:`sample_sigmas`).

Wan2.2 TI2V-5B (``expand_timesteps``) is told the timestep per token, and makes video from text
or from a start image with the same weights: ``WanImageToVideoPipeline`` keeps the image's latent
frame clean at every step and tells its tokens timestep 0. :func:`flow_matching_loss` trains
that case too (``clean_first_frame``), with the loss on the frames the model has to make.

:mod:`brandstudio.style` (LoRA training) and the demo model's trainer
(:mod:`brandstudio.generation.tiny_training`) use these functions; they live in the generation
layer because they are facts of the model family (its noise schedule and expert split).

Example:
    >>> import torch
    >>> expert_sigma_ranges(0.875)
    {'transformer': (0.875, 1.0), 'transformer_2': (0.0, 0.875)}
    >>> s = sample_sigmas(4, low=0.875, high=1.0, shift=12.0, generator=torch.Generator().manual_seed(0))
    >>> bool(((s >= 0.875) & (s <= 1.0)).all())
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "encode_latents",
    "expert_sigma_ranges",
    "flow_matching_loss",
    "sample_sigmas",
]

NUM_TRAIN_TIMESTEPS = 1000
"""Timesteps of Wan's flow schedule: the transformer is told ``1000 * sigma``."""


def expert_sigma_ranges(boundary_ratio: float | None) -> dict[str, tuple[float, float]]:
    """The noise range ``(low, high)`` of each expert the pipeline switches between.

    ``boundary_ratio`` is the pipeline's (``WanPipeline.config.boundary_ratio``): 0.875 for
    Wan2.2 T2V-A14B. ``None`` (TI2V-5B, Wan2.1) means one transformer for every noise level.

    Example:
        >>> expert_sigma_ranges(None)
        {'transformer': (0.0, 1.0)}
    """
    if boundary_ratio is None:
        return {"transformer": (0.0, 1.0)}
    if not 0.0 < boundary_ratio < 1.0:
        raise ValueError(f"boundary_ratio must be between 0 and 1, got {boundary_ratio!r}")
    return {"transformer": (float(boundary_ratio), 1.0), "transformer_2": (0.0, float(boundary_ratio))}


def _shift(u: torch.Tensor | float, shift: float):
    """The scheduler's flow shift: ``shift * u / (1 + (shift - 1) * u)`` (monotonic on [0, 1])."""
    return shift * u / (1 + (shift - 1) * u)


def _unshift(sigma: float, shift: float) -> float:
    """The inverse of :func:`_shift`."""
    return sigma / (shift - (shift - 1) * sigma)


def sample_sigmas(
    n: int, *, low: float, high: float, shift: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` noise levels in ``[low, high]``, uniform before the scheduler's shift.

    The uniform draw is restricted to the pre-image of ``[low, high]`` under the shift, so an
    expert trained on its range sees its noise levels as often as the shifted schedule does.
    Levels are kept a hair away from 0 (a clean input teaches nothing).

    Example:
        >>> import torch
        >>> sample_sigmas(2, low=0.0, high=1.0, shift=1.0, generator=torch.Generator().manual_seed(1)).shape
        torch.Size([2])
    """
    import torch

    u_low, u_high = _unshift(low, shift), _unshift(high, shift)
    u = u_low + (u_high - u_low) * torch.rand(n, generator=generator)
    return _shift(u, shift).clamp(min=max(low, 1e-3), max=high)


def encode_latents(vae: torch.nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Encode ``video`` (``(B, 3, T, H, W)`` in [-1, 1]) into the latents the transformer sees.

    The VAE's posterior mean, normalised with ``latents_mean``/``latents_std`` from the VAE
    config: the exact inverse of what ``WanPipeline`` does before decoding.
    """
    import torch

    dist = vae.encode(video.to(vae.dtype)).latent_dist
    z = dist.mode() if hasattr(dist, "mode") else dist.mean
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, dtype=z.dtype, device=z.device).view(shape)
    std = torch.tensor(vae.config.latents_std, dtype=z.dtype, device=z.device).view(shape)
    return (z - mean) / std


def flow_matching_loss(
    transformer: torch.nn.Module,
    latents: torch.Tensor,
    text_embeds: torch.Tensor,
    sigmas: torch.Tensor,
    noise: torch.Tensor,
    *,
    expand_timesteps: bool = False,
    clean_first_frame: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error between the transformer's velocity and ``noise - latents``.

    Args:
        transformer: a ``WanTransformer3DModel`` (an expert, with or without LoRA layers).
        latents: clean latents ``(B, C, T, H, W)`` from :func:`encode_latents`.
        text_embeds: the text encoder's output ``(B, L, D)`` (as ``WanPipeline.encode_prompt``).
        sigmas: noise levels ``(B,)`` from :func:`sample_sigmas`.
        noise: standard Gaussian noise shaped like ``latents``.
        expand_timesteps: tell the timestep per token, ``(B, seq_len)``, as ``WanPipeline`` and
            ``WanImageToVideoPipeline`` do for a checkpoint with ``expand_timesteps`` (Wan2.2 TI2V).
        clean_first_frame: ``(B,)`` bools, with ``expand_timesteps``: where true the sample is
            image-to-video, as ``WanImageToVideoPipeline`` makes it: latent frame 0 is the clean
            latent of the start image, its tokens' timestep is 0, and the loss leaves that frame
            out (the pipeline puts the image latent back after every step, so what the model
            predicts there is never used).

    Returns:
        A scalar float32 loss.
    """
    import torch
    import torch.nn.functional as F

    if clean_first_frame is not None and not expand_timesteps:
        raise ValueError(
            "clean_first_frame needs expand_timesteps: only then is the timestep given per token"
        )
    if clean_first_frame is not None and latents.shape[2] < 2:
        raise ValueError("clean_first_frame needs latents of two frames or more: a still has nothing to make")
    s = sigmas.to(latents.device, latents.dtype).view(-1, 1, 1, 1, 1)
    noisy = (1.0 - s) * latents + s * noise
    timestep = (sigmas * NUM_TRAIN_TIMESTEPS).to(latents.device)
    frames_in_loss = None
    if expand_timesteps:
        frame_timesteps = timestep.view(-1, 1).repeat(1, latents.shape[2])  # (B, T)
        if clean_first_frame is not None:
            keep = clean_first_frame.to(latents.device).view(-1)
            noisy[:, :, 0] = torch.where(keep.view(-1, 1, 1, 1), latents[:, :, 0], noisy[:, :, 0])
            frame_timesteps[keep, 0] = 0.0
            frames_in_loss = torch.ones_like(frame_timesteps)
            frames_in_loss[keep, 0] = 0.0
        # the tokens are (frame, row, column) in order, as the transformer flattens its patches
        p_t, p_h, p_w = transformer.config.patch_size
        per_frame = (latents.shape[3] // p_h) * (latents.shape[4] // p_w)
        timestep = frame_timesteps[:, ::p_t].repeat_interleave(per_frame, dim=1)
    # the model's compute dtype (diffusers' ModelMixin.dtype skips the modules it keeps in float32)
    dtype = getattr(transformer, "dtype", None) or next(transformer.parameters()).dtype
    velocity = transformer(
        hidden_states=noisy.to(dtype),
        timestep=timestep,
        encoder_hidden_states=text_embeds.to(dtype),
        return_dict=False,
    )[0]
    target = noise - latents
    if frames_in_loss is None:
        return F.mse_loss(velocity.float(), target.float())
    weight = frames_in_loss.view(-1, 1, latents.shape[2], 1, 1).expand_as(target)
    return ((velocity.float() - target.float()) ** 2 * weight).sum() / weight.sum()
