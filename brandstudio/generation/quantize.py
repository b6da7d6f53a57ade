"""Weight quantization of the Wan experts with torchao, applied while the pipeline loads.

==============  =====================================================  ===========================
name            torchao config                                          where
==============  =====================================================  ===========================
``none``        (full precision)                                        anywhere
``int8``        ``Int8WeightOnlyConfig``: half of bf16 weights          CPU or GPU
``fp8``         ``Float8WeightOnlyConfig``: the same saving, fp8        GPU
``fp8-dynamic`` ``Float8DynamicActivationFloat8WeightConfig``           Ada / Hopper (fp8 matmuls)
==============  =====================================================  ===========================

Example:
    >>> quantization_config("none", "cpu") is None
    True
"""

from __future__ import annotations

import contextlib
import io
import warnings

from brandstudio.errors import GenerationError, MissingDependency, RequestError
from brandstudio.generation.devices import is_cuda
from brandstudio.generation.experts import EXPERTS

from ..registry import QUANTIZATION_KINDS

__all__ = ["QUANTIZATIONS", "quantization_config"]

QUANTIZATIONS: tuple[str, ...] = ("none", "int8", "fp8", "fp8-dynamic")
for _kind in QUANTIZATIONS:
    QUANTIZATION_KINDS.register(_kind, _kind)
"""Expert weight quantizations (torchao): int8 / fp8 weight-only, fp8 weights and activations."""


def quantization_config(kind: str, device: str, components=EXPERTS):
    """diffusers' ``PipelineQuantizationConfig`` putting torchao on the experts, or None.

    ``int8``: ``Int8WeightOnlyConfig`` (halves bf16 weights; CPU or GPU). ``fp8``:
    ``Float8WeightOnlyConfig`` (the same saving, fp8 storage). ``fp8-dynamic``:
    ``Float8DynamicActivationFloat8WeightConfig`` (fp8 matmuls on the tensor cores of Ada /
    Hopper GPUs, compute capability >= 8.9).

    Raises:
        MissingDependency: torchao is not installed.
        GenerationError: ``fp8-dynamic`` without a GPU that has fp8 tensor cores.

    Example:
        >>> quantization_config("none", "cpu") is None
        True
    """
    if kind == "none":
        return None
    if kind not in QUANTIZATIONS:
        raise RequestError(
            f"unknown quantization {kind!r}",
            field="model.quantization",
            value=kind,
            fix=f"use one of {', '.join(QUANTIZATIONS)}",
        )
    try:
        # torchao imports torch, and prints notices about optional kernels while it does
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            import torchao.quantization as tq
    except ImportError as e:
        raise MissingDependency(
            f"quantization `{kind}` needs torchao, which is not installed",
            field="model.quantization",
            value=kind,
            fix='pip install "brandstudio[quant]"',
        ) from e
    if kind == "fp8-dynamic":
        import torch

        if not (is_cuda(device) and torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)):
            raise GenerationError(
                "quantization `fp8-dynamic` needs a GPU with fp8 tensor cores (Ada or Hopper, compute "
                f"capability >= 8.9); the model runs on {device}",
                field="model.quantization",
                value=kind,
                fix='use quantization = "fp8" (weight-only) or "int8"',
            )
    from diffusers import PipelineQuantizationConfig, TorchAoConfig

    make = {
        "int8": tq.Int8WeightOnlyConfig,
        "fp8": tq.Float8WeightOnlyConfig,
        "fp8-dynamic": tq.Float8DynamicActivationFloat8WeightConfig,
    }[kind]
    return PipelineQuantizationConfig(quant_mapping={c: TorchAoConfig(make()) for c in components})
