"""Attention kernels for the Wan experts: pick one (``best`` = the fastest exact kernel installed)
and switch both experts to it with diffusers' ``set_attention_backend``.

=========  ==========================================  ==================
name       kernel                                       changes pixels
=========  ==========================================  ==================
native     PyTorch SDPA (itself flash/cuDNN on CUDA)   no
flash      flash-attn 2                                no (rounding only)
flash3     flash-attn 3 (Hopper)                       no (rounding only)
sage       SageAttention (int8 Q/K)                    yes: never ``best``
=========  ==========================================  ==================

Example:
    >>> resolve_attention("best", "cpu")
    'native'
"""

from __future__ import annotations

from brandstudio.errors import GenerationError, MissingDependency, RequestError
from brandstudio.generation.devices import is_cuda
from brandstudio.generation.experts import experts_of
from brandstudio.generation.logs import quiet_diffusers

from ..registry import ATTENTION_KERNELS

__all__ = ["ATTENTION_BACKENDS", "CONTEXT_PARALLEL_ATTENTION", "resolve_attention", "set_attention"]

ATTENTION_BACKENDS = {"native": "native", "flash": "flash", "flash3": "_flash_3", "sage": "sage"}
ATTENTION_KERNELS.register("auto", None)  # the fastest one installed (resolve_attention)
for _name, _backend in ATTENTION_BACKENDS.items():
    ATTENTION_KERNELS.register(_name, _backend)
"""brandstudio's kernel names -> diffusers' attention backend names."""

_PACKAGES = {
    "flash": "flash-attn",
    "flash3": "flash-attn 3 (hopper build)",
    "sage": "sageattention",
}

CONTEXT_PARALLEL_ATTENTION = frozenset({"native", "flash", "sage"})
"""Kernels diffusers can run context-parallel."""


def resolve_attention(requested: str, device: str, *, parallel: bool = False) -> str:
    """The attention kernel to use: ``"native"``, ``"flash"``, ``"flash3"`` or ``"sage"``.

    ``"best"`` picks the fastest *exact* kernel installed on CUDA: flash-attn 3, then flash-attn
    2, else PyTorch SDPA (``native``, itself flash/cuDNN inside); with context parallelism
    flash-attn 3 is skipped (diffusers cannot run it context-parallel). SageAttention is never
    picked automatically: it quantizes Q and K to int8 and so changes the pixels.

    Raises:
        GenerationError: a forced kernel is not installed or needs CUDA.

    Example:
        >>> resolve_attention("best", "cpu")
        'native'
    """
    if requested in ("native",) or (requested == "best" and not is_cuda(device)):
        return "native"
    # diffusers imports torch
    from diffusers.utils import is_flash_attn_3_available, is_flash_attn_available, is_sageattention_available

    installed = {
        "flash3": is_flash_attn_3_available(),
        "flash": is_flash_attn_available(),
        "sage": is_sageattention_available(),
    }
    if requested == "best":
        for name in ("flash3", "flash"):
            if installed[name] and not (parallel and name not in CONTEXT_PARALLEL_ATTENTION):
                return name
        return "native"
    if requested not in ATTENTION_BACKENDS:
        raise RequestError(
            f"unknown attention kernel {requested!r}",
            field="model.attention",
            value=requested,
            fix=f"use one of auto, {', '.join(ATTENTION_BACKENDS)}",
        )
    if not is_cuda(device):
        raise GenerationError(
            f"attention kernel `{requested}` needs a CUDA GPU, but the model runs on {device}",
            field="model.attention",
            value=requested,
            fix='use attention = "auto" or "native"',
        )
    if not installed[requested]:
        raise MissingDependency(
            f"attention kernel `{requested}` is not installed",
            field="model.attention",
            value=requested,
            fix=f'install {_PACKAGES[requested]} for your CUDA and torch, or use attention = "auto"',
        )
    if parallel and requested not in CONTEXT_PARALLEL_ATTENTION:
        raise GenerationError(
            f"attention kernel `{requested}` cannot run context-parallel in diffusers",
            field="model.attention",
            value=requested,
            fix=f"use one of {', '.join(sorted(CONTEXT_PARALLEL_ATTENTION))} with `parallel`",
        )
    return requested


def set_attention(pipe, name: str) -> None:
    """Switch every expert of ``pipe`` to kernel ``name`` (a result of :func:`resolve_attention`)."""
    with quiet_diffusers():
        for expert in experts_of(pipe).values():
            try:
                expert.set_attention_backend(ATTENTION_BACKENDS[name])
            except (RuntimeError, ValueError) as e:
                raise GenerationError(
                    f"could not switch the experts to attention kernel `{name}`: {e}",
                    field="model.attention",
                    value=name,
                    fix='use attention = "native"',
                ) from e
