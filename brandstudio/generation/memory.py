"""Memory plans: where the weights live while a clip is sampled, and which plan fits a GPU.

A memory plan never changes the pixels (the same spec gives bit-identical frames under every
plan on one machine), only the peak GPU memory and the speed. This module holds the pure
rules (no torch): the plans by name (:data:`~brandstudio.registry.MEMORY_PLANS`), the memory a
generation needs under each (:func:`estimate_memory`), the plan ``auto`` picks
(:func:`choose_memory_plan`) and the advice an out-of-memory error gives (:func:`oom_advice`).
:mod:`brandstudio.generation.offload` applies a plan to a loaded pipeline.

==================  ========================================================================
memory plan         where the weights are
==================  ========================================================================
``resident``        both experts and the VAE on the GPU, the text encoder visiting it for the
                    prompt encoding only (fastest; A14B needs ~72 GB at 720p)
``swap``            one of text encoder / high-noise expert / low-noise expert on the GPU at
                    a time; the idle expert goes to the CPU when the sampler crosses the
                    expert boundary, and back at the next call (~40 GB for A14B)
``group-offload``   diffusers group offloading, one transformer block at a time, prefetched
                    on a CUDA stream (~15 GB for A14B at 720p)
``auto``            the fastest plan that fits the free GPU memory at the requested size
                    (:func:`choose_memory_plan`); on a CPU: ``resident``
==================  ========================================================================

``vae_tiling`` (decode the VAE in tiles) is independent of the plan.

Example:
    >>> choose_memory_plan(48 * GB, estimate_memory(A14B_GEOMETRY, 1280, 720, 81))
    'swap'
    >>> check_memory_plan("swap"), sorted(MEMORY_PLANS)
    ('swap', ['auto', 'group-offload', 'resident', 'swap'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from brandstudio.errors import GenerationError, RequestError
from brandstudio.registry import MEMORY_PLANS

__all__ = [
    "A14B_GEOMETRY",
    "GB",
    "MEMORY_PLANS",
    "OVERHEAD_BYTES",
    "PLAN_ORDER",
    "TI2V_5B_GEOMETRY",
    "MemoryEstimate",
    "ModelGeometry",
    "check_memory_plan",
    "choose_memory_plan",
    "estimate_memory",
    "oom_advice",
    "plan_that_fits",
]

GB = 10**9
"""Bytes in a gigabyte (decimal, like GPU marketing and ``nvidia-smi`` totals in GB)."""

MEMORY_PLANS.register("auto", "the fastest plan that fits the free GPU memory at the requested size")
MEMORY_PLANS.register("resident", "both experts and the VAE on the GPU, the text encoder visiting it")
MEMORY_PLANS.register("swap", "one of text encoder / high-noise / low-noise expert on the GPU at a time")
MEMORY_PLANS.register("group-offload", "one transformer block at a time on the GPU, prefetched")

PLAN_ORDER: tuple[str, ...] = ("resident", "swap", "group-offload")
"""Concrete plans, fastest first: ``auto`` takes the first that fits."""


def check_memory_plan(plan: str) -> str:
    """``plan`` if it is a memory plan, else a :class:`~brandstudio.errors.RequestError` listing them.

    Example:
        >>> check_memory_plan("everything-on-the-cpu")
        Traceback (most recent call last):
        ...
        brandstudio.errors.RequestError: unknown memory plan 'everything-on-the-cpu'...
    """
    if plan not in MEMORY_PLANS:
        raise RequestError(
            f"unknown memory plan {plan!r}",
            field="memory",
            value=plan,
            fix=f"use one of {', '.join(MEMORY_PLANS)}",
        )
    return plan


@dataclass(frozen=True)
class ModelGeometry:
    """Sizes of a Wan pipeline that decide its memory, from a loaded pipeline or from configs.

    Attributes:
        text_encoder: bytes of the text encoder weights (0 when prompt embeddings are given).
        experts: bytes of each transformer expert (one entry for single-model checkpoints).
        block: bytes of the largest transformer block.
        expert_rest: bytes of an expert outside its blocks (embeddings, head).
        vae: bytes of the VAE weights.
        dim, ffn_dim: the transformer's hidden and FFN widths.
        patch: the transformer's (t, h, w) patch size.
        vae_spatial, vae_temporal: the VAE's compression factors.
        vae_channels: channels of the VAE decoder at its highest resolution.
        vae_patch: the VAE's pixel patch (2 for the Wan2.2 VAE: it decodes at half resolution).
        act_bytes: bytes per activation element (2 for bf16, 4 for fp32).
    """

    text_encoder: int
    experts: tuple[int, ...]
    block: int
    expert_rest: int
    vae: int
    dim: int
    ffn_dim: int
    patch: tuple[int, int, int] = (1, 2, 2)
    vae_spatial: int = 8
    vae_temporal: int = 4
    vae_channels: int = 96
    vae_patch: int = 1
    act_bytes: int = 2

    @classmethod
    def from_pipeline(cls, pipe) -> ModelGeometry:
        """Measure a loaded ``WanPipeline`` (parameters and buffers, as stored)."""

        def nbytes(module) -> int:
            if module is None:
                return 0
            total = 0
            for t in list(module.parameters()) + list(module.buffers()):
                total += t.numel() * t.element_size()
            return total

        experts = [m for m in (pipe.transformer, pipe.transformer_2) if m is not None]
        main = experts[0]
        blocks = list(main.blocks)
        block = max((nbytes(b) for b in blocks), default=0)
        cfg = main.config
        vae_cfg = pipe.vae.config
        decoder_base = vae_cfg.get("decoder_base_dim") or vae_cfg.get("base_dim", 96)
        return cls(
            text_encoder=nbytes(pipe.text_encoder),
            experts=tuple(nbytes(m) for m in experts),
            block=block,
            expert_rest=max(nbytes(m) - sum(nbytes(b) for b in m.blocks) for m in experts),
            vae=nbytes(pipe.vae),
            dim=int(cfg.num_attention_heads * cfg.attention_head_dim),
            ffn_dim=int(cfg.ffn_dim),
            patch=tuple(int(p) for p in cfg.patch_size),
            vae_spatial=int(pipe.vae_scale_factor_spatial),
            vae_temporal=int(pipe.vae_scale_factor_temporal),
            vae_channels=int(decoder_base),
            vae_patch=int(vae_cfg.get("patch_size") or 1),
            act_bytes=next(main.parameters()).element_size() if main.dtype.is_floating_point else 2,
        )


def _wan_expert_params(layers: int, dim: int, ffn: int, in_ch: int, text_dim: int = 4096) -> tuple[int, int]:
    """(parameters per block, parameters outside the blocks) of a WanTransformer3DModel."""
    attn = 4 * (dim * dim + dim) + 2 * dim  # q, k, v, out + q/k RMS norms
    block = (
        2 * attn + 2 * dim * ffn + ffn + dim + 3 * dim + 6 * dim
    )  # self + cross attn, ffn, norm, modulation
    rest = (
        in_ch * 4 * dim
        + dim
        + text_dim * dim
        + dim * dim
        + 256 * dim
        + dim * dim
        + 6 * dim * dim
        + dim * in_ch * 4
    )
    return block, rest


def _geometry(
    layers: int, dim: int, ffn: int, in_ch: int, n_experts: int, vae_spatial: int, vae_ch: int, vae_patch: int
) -> ModelGeometry:
    block, rest = _wan_expert_params(layers, dim, ffn, in_ch)
    expert = 2 * (layers * block + rest)
    return ModelGeometry(
        text_encoder=2 * 5_680_000_000,  # umt5-xxl encoder, bf16
        experts=(expert,) * n_experts,
        block=2 * block,
        expert_rest=2 * rest,
        vae=4 * (127_000_000 if vae_ch == 96 else 705_000_000),  # float32 VAE
        dim=dim,
        ffn_dim=ffn,
        vae_spatial=vae_spatial,
        vae_channels=vae_ch,
        vae_patch=vae_patch,
    )


A14B_GEOMETRY = _geometry(40, 5120, 13824, 16, 2, 8, 96, 1)
"""Wan2.2 T2V-A14B in bf16 (two 14B experts, umt5-xxl, Wan2.1 VAE), from the reference configs."""

TI2V_5B_GEOMETRY = _geometry(30, 3072, 14336, 48, 1, 16, 256, 2)
"""Wan2.2 TI2V-5B in bf16 (one 5B model, umt5-xxl, Wan2.2 VAE), from the reference configs."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak accelerator bytes of one generation, per memory plan.

    Attributes:
        need: plan name -> bytes (``resident``, ``swap``, ``group-offload``).
        transformer_activations: peak activations of one transformer pass.
        vae_activations: peak activations of the VAE decode.
        tokens: the transformer's sequence length.
    """

    need: Mapping[str, int]
    transformer_activations: int
    vae_activations: int
    tokens: int

    def describe(self, plan: str) -> str:
        return f"~{self.need[plan] / GB:.1f} GB"


OVERHEAD_BYTES = int(1.5 * GB)
"""CUDA context, cuBLAS workspaces and allocator slack counted on top of every plan."""


def estimate_memory(
    geometry: ModelGeometry, width: int, height: int, num_frames: int, *, vae_tiling: bool = False
) -> MemoryEstimate:
    """Estimate the peak GPU memory of generating ``width x height x num_frames`` under each plan.

    Weights are counted as stored. A transformer pass keeps about ``tokens x (4 dim + ffn)``
    activations alive (q, k, v, attention output and the FFN's hidden layer; flash/SDPA
    attention never materialises the score matrix), x1.5 for temporaries. The Wan VAE decodes
    causally one latent frame (4 video frames) at a time, with a 2-frame cache, in float32:
    about ``18 x H x W x channels x 4`` bytes at its highest resolution (H/2 x W/2 for the
    patched Wan2.2 VAE), or a 256 px tile's worth when tiling. Under ``resident`` the text
    encoder is on the GPU only while nothing else runs. The decoded video (float32) and
    :data:`OVERHEAD_BYTES` come on top.

    Example:
        >>> e = estimate_memory(A14B_GEOMETRY, 1280, 720, 81)
        >>> e.tokens
        75600
        >>> 60 * GB < e.need["resident"] < 80 * GB, e.need["swap"] < 45 * GB
        (True, True)
    """
    pt, ph, pw = geometry.patch
    s, t = geometry.vae_spatial, geometry.vae_temporal
    tokens = (((num_frames - 1) // t + 1) // pt) * (height // (s * ph)) * (width // (s * pw))
    act = int(tokens * (4 * geometry.dim + geometry.ffn_dim) * geometry.act_bytes * 1.5)
    area = width * height // geometry.vae_patch**2
    area = min(area, 256 * 256) if vae_tiling else area
    vae_act = int(18 * area * geometry.vae_channels * 4)
    video = 2 * num_frames * width * height * 3 * 4
    peak_act = max(act, vae_act)
    base = geometry.vae + video + OVERHEAD_BYTES
    experts = geometry.experts
    need = {
        "resident": sum(experts) + max(geometry.text_encoder, peak_act) + base,
        "swap": max(geometry.text_encoder, max(experts)) + peak_act + base,
        "group-offload": 2 * geometry.block + geometry.expert_rest + peak_act + base,
    }
    return MemoryEstimate(
        need=MappingProxyType(need), transformer_activations=act, vae_activations=vae_act, tokens=tokens
    )


def plan_that_fits(free_bytes: int, estimate: MemoryEstimate, *, margin: float = 0.92) -> str | None:
    """The fastest concrete plan whose estimate fits in ``margin x free_bytes``, or None.

    Example:
        >>> e = estimate_memory(A14B_GEOMETRY, 1280, 720, 81)
        >>> plan_that_fits(141 * GB, e), plan_that_fits(48 * GB, e), plan_that_fits(24 * GB, e)
        ('resident', 'swap', 'group-offload')
        >>> plan_that_fits(4 * GB, e) is None
        True
    """
    for plan in PLAN_ORDER:
        if estimate.need[plan] <= free_bytes * margin:
            return plan
    return None


def choose_memory_plan(free_bytes: int | None, estimate: MemoryEstimate, *, margin: float = 0.92) -> str:
    """The plan ``auto`` uses: ``resident`` without an accelerator (``free_bytes`` None), else the
    fastest plan that fits (:func:`plan_that_fits`).

    Raises:
        GenerationError: nothing fits, naming the smallest need and what to change.

    Example:
        >>> choose_memory_plan(None, estimate_memory(A14B_GEOMETRY, 832, 480, 81))
        'resident'
        >>> choose_memory_plan(80 * GB, estimate_memory(A14B_GEOMETRY, 832, 480, 81))
        'resident'
    """
    if free_bytes is None:
        return "resident"
    plan = plan_that_fits(free_bytes, estimate, margin=margin)
    if plan is None:
        raise GenerationError(
            f"no memory plan fits: even `group-offload` needs {estimate.describe('group-offload')} and "
            f"{free_bytes / GB:.1f} GB of GPU memory are free",
            field="model.memory",
            value="auto",
            fix="render smaller (the post stage upscales), set [model] vae_tiling = true and "
            'quantization = "int8", or free the GPU (other processes hold memory)',
        )
    return plan


def oom_advice(plan: str, capacity: int | None, estimate: MemoryEstimate) -> tuple[str, str, str | None]:
    """(message, fix, suggested plan) for an out-of-memory error under ``plan``.

    ``capacity`` is the GPU memory this process can use (free + what it holds), or None when
    unknown. The suggestion is the fastest plan *slower than* ``plan`` whose estimate fits
    (``plan`` itself just failed, whatever its estimate said); None when none fits.

    Example:
        >>> e = estimate_memory(A14B_GEOMETRY, 1280, 720, 81)
        >>> oom_advice("resident", 48 * GB, e)[2]
        'swap'
        >>> oom_advice("swap", 24 * GB, e)[2]
        'group-offload'
        >>> oom_advice("group-offload", 8 * GB, e)[2] is None
        True
    """
    order = list(PLAN_ORDER)
    later = order[order.index(plan) + 1 :] if plan in order else order
    have = "an unknown amount of GPU memory" if capacity is None else f"{capacity / GB:.1f} GB usable"
    message = f"memory plan `{plan}` needs {estimate.describe(plan) if plan in order else '?'} ({have})"
    fits = [p for p in later if capacity is None or estimate.need[p] <= capacity * 0.92]
    if fits:
        choice = fits[0]
        fix = (
            f'use memory plan "{choice}" (estimated {estimate.describe(choice)}): '
            f'[model] memory = "{choice}", render(..., memory="{choice}") or --memory {choice}; '
            "or render at a lower resolution or fewer frames and upscale in the post stage"
        )
        return message, fix, choice
    fix = (
        "no memory plan fits at this size: render smaller (the post stage upscales), set [model] "
        'vae_tiling = true and quantization = "int8", or free the GPU'
    )
    return message, fix, None
