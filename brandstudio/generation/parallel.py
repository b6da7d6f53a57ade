"""Context parallelism: one clip on N GPUs, both experts split with diffusers' ``enable_parallelism``.

``parallel = "ulysses:N"`` (all-to-all over attention heads) or ``"ring:N"`` (ring attention
over the sequence); the script runs under ``torchrun --nproc-per-node N``, one process per GPU,
each rank on ``cuda:<LOCAL_RANK>``. The attention kernel must be one diffusers can run
context-parallel (:data:`~brandstudio.generation.attention.CONTEXT_PARALLEL_ATTENTION`).

Example:
    >>> parse_parallel("ring:4")
    ('ring', 4)
"""

from __future__ import annotations

import os

from brandstudio.errors import GenerationError, RequestError
from brandstudio.generation.devices import is_cuda
from brandstudio.generation.experts import experts_of
from brandstudio.generation.logs import quiet_diffusers

__all__ = ["context_parallel_mesh", "enable_context_parallel", "parallel_device", "parse_parallel"]


def parse_parallel(value: str | None) -> tuple[str, int] | None:
    """``"ulysses:2"`` -> ``("ulysses", 2)``; ``None`` / ``"none"`` -> ``None``.

    Example:
        >>> parse_parallel("ring:4")
        ('ring', 4)
    """
    if value is None or value == "none":
        return None
    kind, _, degree = str(value).partition(":")
    if kind not in ("ulysses", "ring") or not degree.isdigit() or int(degree) < 2:
        raise RequestError(
            f"`parallel` must be 'ulysses:N' or 'ring:N' with N >= 2 GPUs, got {value!r}",
            field="parallel",
            value=value,
            fix="use e.g. parallel='ulysses:2' and start the script with `torchrun --nproc-per-node 2`",
        )
    return kind, int(degree)


def parallel_device(parallel: str | None, device: str) -> str:
    """Under torchrun, each rank runs on its own GPU: ``cuda`` -> ``cuda:<LOCAL_RANK>``.

    Raises:
        GenerationError: ``parallel`` is set but the device is not CUDA (checked before loading).
    """
    spec = parse_parallel(parallel)
    if spec is None:
        return device
    if not is_cuda(device):
        raise GenerationError(
            f"context parallelism `{parallel}` needs CUDA GPUs; the model runs on {device}",
            field="parallel",
            value=parallel,
            fix=f"run on a machine with {spec[1]} GPUs under `torchrun --nproc-per-node {spec[1]}`, "
            "or leave parallel unset",
        )
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if device == "cuda" else device


def context_parallel_mesh(kind: str, degree: int, device: str) -> tuple[int, int, object]:
    """Join torchrun's process group (once) and return ``(ring degree, ulysses degree, device mesh)``
    for ``degree`` GPUs.

    Raises:
        GenerationError: no CUDA, a single process (not under torchrun), or torchrun started
            another number of processes than ``degree``.
    """
    import torch

    spec = f"{kind}:{degree}"
    if not (is_cuda(device) and torch.cuda.is_available()):
        raise GenerationError(
            f"context parallelism `{spec}` needs CUDA GPUs; the model runs on {device}",
            field="parallel",
            value=spec,
            fix="run on a machine with N GPUs under `torchrun --nproc-per-node N`, or leave parallel unset",
        )
    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized() and "RANK" in os.environ:
        torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend="nccl", device_id=torch.device(device))
    if not (dist.is_available() and dist.is_initialized()):
        raise GenerationError(
            f"context parallelism `{spec}` runs one process per GPU, but this is a single process",
            field="parallel",
            value=spec,
            fix=f"start the script with `torchrun --nproc-per-node {degree} script.py`",
        )
    world = dist.get_world_size()
    if world != degree:
        raise GenerationError(
            f"context parallelism `{spec}` needs {degree} processes, torchrun started {world}",
            field="parallel",
            value=spec,
            fix=f"use `torchrun --nproc-per-node {degree}` or parallel='{kind}:{world}'",
        )
    from torch.distributed.device_mesh import init_device_mesh

    ring, ulysses = (degree, 1) if kind == "ring" else (1, degree)
    mesh = init_device_mesh("cuda", (ring, ulysses), mesh_dim_names=("ring", "ulysses"))
    return ring, ulysses, mesh


def enable_context_parallel(pipe, ring: int, ulysses: int, mesh) -> None:
    """Split every expert of ``pipe`` across ``mesh`` (from :func:`context_parallel_mesh`)."""
    from diffusers import ContextParallelConfig  # diffusers imports torch

    with quiet_diffusers():
        for expert in experts_of(pipe).values():
            expert.enable_parallelism(
                config=ContextParallelConfig(ring_degree=ring, ulysses_degree=ulysses, mesh=mesh)
            )
