"""Where the model runs and in which precision: ``device`` and ``dtype`` names, checked and resolved.

Example:
    >>> is_cuda("cuda:1"), is_cuda("cpu")
    (True, False)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from brandstudio.errors import RequestError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["DTYPES", "dtype_kwargs", "is_cuda", "resolve_device", "resolve_dtype"]

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
"""Accepted ``dtype`` names -> torch dtype names."""


def is_cuda(device: str) -> bool:
    """Whether ``device`` (``"cuda"``, ``"cuda:1"``, ``"cpu"``, ...) is a CUDA GPU."""
    return str(device).startswith("cuda")


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; other names are checked and kept.

    Raises:
        RequestError: not one of auto, cpu, cuda, cuda:N, mps, xpu, xpu:N.
    """
    import torch  # the CUDA check

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str) or not re.fullmatch(r"(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)", device):
        raise RequestError(
            f"`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}",
            field="device",
            value=device,
            fix="use device='auto'",
        )
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """The torch dtype of the transformer experts: ``"auto"`` is bfloat16 on CUDA, float32 elsewhere.

    Raises:
        RequestError: an unknown dtype name.
    """
    import torch

    if dtype == "auto":
        return torch.bfloat16 if is_cuda(device) else torch.float32
    if dtype not in DTYPES:
        raise RequestError(
            f"`dtype` must be 'auto' or one of {sorted(set(DTYPES.values()))}, got {dtype!r}",
            field="dtype",
            value=dtype,
            fix="use dtype='auto' (bfloat16 on CUDA, float32 on CPU)",
        )
    return getattr(torch, DTYPES[dtype])


def dtype_kwargs(dtype) -> dict:
    """diffusers 0.42 renamed ``torch_dtype`` to ``dtype`` (the old name warns); older ones need it."""
    from diffusers.utils import deprecation_utils  # diffusers imports torch

    return {"dtype": dtype} if hasattr(deprecation_utils, "_resolve_dtype") else {"torch_dtype": dtype}
