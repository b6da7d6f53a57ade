"""Where the weights live while a clip is sampled: the torch side of the memory plans.

:mod:`brandstudio.generation.memory` decides which plan fits (pure rules); this module applies
one to a loaded pipeline, and takes it off again:

* ``resident`` on a GPU: :class:`VisitingTextEncoder` (everything on the device except the text
  encoder, which visits it for the prompt encoding only);
* ``swap``: :class:`ExpertSwap` (forward pre-hooks keep one of text encoder / high-noise /
  low-noise expert on the device);
* ``group-offload``: :func:`apply_group_offload` (diffusers' ``enable_group_offload``, one
  transformer block at a time, prefetched on a CUDA stream) and :func:`remove_group_offload`.

None of them changes a pixel: the same spec gives bit-identical frames under every plan.

Example:
    >>> swap = ExpertSwap(pipe, "cuda")       # doctest: +SKIP
    >>> swap.remove()                          # doctest: +SKIP
"""

from __future__ import annotations

from functools import partial

from brandstudio.generation.devices import is_cuda
from brandstudio.generation.experts import EXPERTS
from brandstudio.generation.logs import quiet_diffusers

__all__ = ["ExpertSwap", "VisitingTextEncoder", "apply_group_offload", "remove_group_offload"]

_GROUP_OFFLOAD_HOOKS = ("group_offloading", "layer_execution_tracker", "lazy_prefetch_group_offloading")


class ExpertSwap:
    """The ``swap`` memory plan: one of text encoder / ``transformer`` / ``transformer_2`` on the
    device at a time, moved in by a forward pre-hook when it is about to run.

    The pipeline encodes the prompt (text encoder in), denoises the high-noise steps
    (``transformer`` in, text encoder out), crosses the expert boundary (``transformer_2`` in,
    ``transformer`` out to the CPU) and decodes with the VAE, which stays on the device (it is
    small). The next call swaps back. Peak weights on the device: the largest of the three plus
    the VAE, instead of all of them.

    Attributes:
        events: ``("in", name)`` / ``("out", name)`` in the order the moves happened.

    Example:
        >>> swap = ExpertSwap(pipe, "cuda")       # doctest: +SKIP
        >>> swap.remove()                          # doctest: +SKIP
    """

    SLOT = ("text_encoder", *EXPERTS)

    def __init__(self, pipe, device: str, offload_device: str = "cpu") -> None:
        self.device, self.offload_device = device, offload_device
        self.members = {n: getattr(pipe, n) for n in self.SLOT if getattr(pipe, n, None) is not None}
        self.resident: str | None = None
        self.events: list[tuple[str, str]] = []
        for module in self.members.values():
            module.to(offload_device)
        pipe.vae.to(device)
        self._handles = [
            module.register_forward_pre_hook(partial(self._onload, name))
            for name, module in self.members.items()
        ]

    def _onload(self, name: str, module, args) -> None:
        if self.resident == name:
            return
        if self.resident is not None:
            self.members[self.resident].to(self.offload_device)
            self.events.append(("out", self.resident))
        module.to(self.device)
        self.resident = name
        self.events.append(("in", name))

    def remove(self) -> None:
        """Take the hooks off (the modules stay where they are)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


class VisitingTextEncoder:
    """Part of the ``resident`` plan on a GPU: the text encoder (umt5-xxl: 11 GB in bf16) is moved
    to the device just for the prompt encoding and back to the CPU right after, so both experts
    fit beside the VAE on an 80 GB card. Costs one transfer each way per call.

    Example:
        >>> visit = VisitingTextEncoder(pipe, "cuda")    # doctest: +SKIP
        >>> visit.remove()                                # doctest: +SKIP
    """

    def __init__(self, pipe, device: str, offload_device: str = "cpu") -> None:
        module = pipe.text_encoder
        self.visits = 0
        module.to(offload_device)
        self._handles = [
            module.register_forward_pre_hook(lambda m, args: m.to(device)),
            module.register_forward_hook(lambda m, args, out: self._leave(m, offload_device)),
        ]

    def _leave(self, module, offload_device: str) -> None:
        module.to(offload_device)
        self.visits += 1

    def remove(self) -> None:
        """Take the hooks off (the text encoder stays where it is)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def apply_group_offload(pipe, device: str) -> None:
    """The ``group-offload`` plan: text encoder and experts to the CPU, each transformer block
    brought to ``device`` when it runs (the next one prefetched on a CUDA stream); the VAE stays."""
    for name in ("text_encoder", *EXPERTS):
        module = getattr(pipe, name, None)
        if module is not None:
            module.to("cpu")
    with quiet_diffusers():
        pipe.enable_group_offload(
            onload_device=device,
            offload_device="cpu",
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=is_cuda(device),  # prefetch the next block on a CUDA stream
            exclude_modules=["vae"],
        )


def remove_group_offload(pipe) -> None:
    """Take :func:`apply_group_offload`'s hooks off every component."""
    from diffusers.hooks import HookRegistry  # diffusers imports torch

    for module in pipe.components.values():
        if hasattr(module, "_diffusers_hook"):
            registry = HookRegistry.check_if_exists_or_initialize(module)
            for name in _GROUP_OFFLOAD_HOOKS:
                registry.remove_hook(name, recurse=True)
