"""The Wan2.2 experts: which are present, how the steps split between them, the call that runs them.

Wan2.2 A14B is a mixture of two experts: ``transformer`` denoises the steps whose timestep is
at least ``boundary_ratio x num_train_timesteps`` (high noise), ``transformer_2`` the rest (low
noise). Single-model checkpoints (Wan2.1, TI2V-5B) have ``transformer`` only and no boundary.
Presets, memory plans, LoRAs and progress all need to know this split; it is computed here once.

Example:
    >>> EXPERT_LABELS["transformer_2"]
    'low-noise expert'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from brandstudio.generation.base import GenerationSpec

__all__ = [
    "EXPERTS",
    "EXPERT_LABELS",
    "boundary_timestep",
    "compile_experts",
    "expert_step_counts",
    "experts_of",
    "pipeline_call_kwargs",
    "step_progress",
]

EXPERTS = ("transformer", "transformer_2")
"""The two Wan2.2 experts: high noise, then low noise."""

EXPERT_LABELS: Mapping[str, str] = {"transformer": "high-noise expert", "transformer_2": "low-noise expert"}
"""How progress events name the expert that ran a step."""


def experts_of(pipe) -> dict[str, Any]:
    """The experts present, in sampling order (``{"transformer": ..., "transformer_2": ...}``)."""
    return {name: getattr(pipe, name) for name in EXPERTS if getattr(pipe, name, None) is not None}


def boundary_timestep(pipe) -> float | None:
    """The timestep at which ``transformer_2`` takes over, or None for a single-model checkpoint."""
    boundary = pipe.config.get("boundary_ratio")
    if boundary is None or len(experts_of(pipe)) < 2:
        return None
    return float(boundary) * pipe.scheduler.config.num_train_timesteps


def expert_step_counts(pipe, steps: int, flow_shift: float) -> dict[str, int]:
    """How many of ``steps`` each expert runs, exactly as ``WanPipeline`` will split them.

    The pipeline gives a step to ``transformer`` when its timestep is at least
    ``boundary_ratio x num_train_timesteps`` and to ``transformer_2`` otherwise; the timesteps
    come from the scheduler with this ``flow_shift``.

    Example:
        >>> expert_step_counts(pipe, 40, 12.0)                # Wan2.2 T2V-A14B   # doctest: +SKIP
        {'transformer': 26, 'transformer_2': 14}
    """
    experts = experts_of(pipe)
    limit = boundary_timestep(pipe)
    if limit is None:
        return {next(iter(experts)): int(steps)}
    sched = pipe.scheduler
    fresh = type(sched).from_config(sched.config, flow_shift=float(flow_shift))
    fresh.set_timesteps(int(steps), device="cpu")
    high = int(sum(1 for t in fresh.timesteps if float(t) >= limit))
    return {"transformer": high, "transformer_2": len(fresh.timesteps) - high}


def pipeline_call_kwargs(pipe, spec: GenerationSpec) -> dict[str, Any]:
    """The size and sampler arguments of a ``WanPipeline`` call for ``spec`` (``guidance_scale_2``,
    the low-noise expert's guidance, only when the pipeline has an expert boundary)."""
    kwargs = {
        "height": int(spec.height),
        "width": int(spec.width),
        "num_frames": int(spec.num_frames),
        "num_inference_steps": int(spec.steps),
        "guidance_scale": float(spec.guidance_high),
    }
    if pipe.config.get("boundary_ratio") is not None:
        kwargs["guidance_scale_2"] = float(spec.guidance_low)
    return kwargs


def step_progress(report: Callable[[int, int, str], None], total: int) -> Callable[..., dict]:
    """A diffusers ``callback_on_step_end`` that reports each denoising step as
    ``report(step, total, detail)``, naming the expert that ran it (from the step's timestep and
    the boundary, as the pipeline itself decides; ``"denoising"`` on a single-model checkpoint),
    and after the last one (``total`` counts the decode as a step) that the VAE is ``"decoding"``.

    Example:
        >>> seen = []
        >>> on_step_end = step_progress(lambda step, total, detail: seen.append((step, detail)), 3)
        >>> on_step_end(pipe, 0, 990, {})                                # doctest: +SKIP
        {}
    """

    def on_step_end(pipe, i: int, t, callback_kwargs: dict) -> dict:
        limit = boundary_timestep(pipe)
        if limit is None:
            detail = "denoising"
        else:
            detail = EXPERT_LABELS["transformer" if float(t) >= limit else "transformer_2"]
        report(i + 1, total, detail)
        if i + 2 == total:  # the last denoising step: the VAE decode, often many seconds, starts now
            report(i + 1, total, "decoding")
        return {}  # nothing changed: the pipeline keeps its latents

    return on_step_end


def compile_experts(pipe, **compile_kwargs) -> int:
    """``compile_repeated_blocks`` on every expert (regional compilation of the Wan blocks).

    Each ``WanTransformerBlock`` is compiled once and reused by all 40 layers, so compiling
    costs seconds, not minutes. ``fullgraph`` stays False: the cache hooks call functions that
    are excluded from compilation (``torch.compiler.disable``). Returns the number of experts.

    Example:
        >>> compile_experts(pipe, backend="eager")          # doctest: +SKIP
        2
    """
    experts = experts_of(pipe)
    for expert in experts.values():
        expert.compile_repeated_blocks(**{"fullgraph": False, **compile_kwargs})
    return len(experts)
