"""What a loaded Wan pipeline runs with, and the switches between speed presets and memory plans.

:mod:`brandstudio.generation.presets` and :mod:`brandstudio.generation.memory` decide *what*
(pure rules, no torch); :class:`PipelineRuntime` does it, on the pipeline of a
:class:`~brandstudio.generation.wan.WanGenerator`, with one helper module per concern:

* cache hooks per expert (:mod:`~brandstudio.generation.caching`: MagCache calibrated for each
  expert's own steps, FirstBlockCache, TaylorSeer with Wan's module names);
* the step-distilled LoRA of ``fast`` loaded into both experts at per-expert weights
  (:mod:`~brandstudio.generation.adapters`) and fused into *both*
  (``fuse_lora(components=["transformer", "transformer_2"])``; diffusers' default fuses only
  ``transformer``);
* attention kernels (:mod:`~brandstudio.generation.attention`), regional compilation
  (:func:`~brandstudio.generation.experts.compile_experts`), context parallelism under torchrun
  (:mod:`~brandstudio.generation.parallel`);
* memory plans (:mod:`~brandstudio.generation.offload`) and VAE tiling.

Every path runs on a CPU too (onload device = CPU), except the CUDA-only kernels, compile by
default, fp8-dynamic quantization and context parallelism, which say so clearly.

Example:
    >>> from brandstudio.generation.wan import WanGenerator                   # doctest: +SKIP
    >>> gen = WanGenerator("tiny", memory="swap")                              # doctest: +SKIP
    >>> gen.runtime.record()["memory"]                                         # doctest: +SKIP
    'swap'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from brandstudio.errors import GenerationError, LoRAError
from brandstudio.generation.adapters import activate_adapters, adapter_key, load_loras
from brandstudio.generation.attention import resolve_attention, set_attention
from brandstudio.generation.base import GenerationSpec, LoraAdapter
from brandstudio.generation.caching import MagRatioStore, apply_cache_hook, reset_cache_state
from brandstudio.generation.devices import is_cuda
from brandstudio.generation.experts import compile_experts, expert_step_counts, experts_of
from brandstudio.generation.memory import (
    ModelGeometry,
    check_memory_plan,
    choose_memory_plan,
    estimate_memory,
    oom_advice,
)
from brandstudio.generation.offload import (
    ExpertSwap,
    VisitingTextEncoder,
    apply_group_offload,
    remove_group_offload,
)
from brandstudio.generation.parallel import context_parallel_mesh, enable_context_parallel, parse_parallel
from brandstudio.generation.presets import CacheHook, FastLora, PresetSettings

__all__ = ["LoadedModel", "PipelineRuntime"]


class LoadedModel(Protocol):
    """What :class:`PipelineRuntime` needs of a generator (a ``WanGenerator``, or a bench's stand-in).

    ``model_family`` and ``image_input`` are read only when a distilled LoRA is loaded and when
    MagCache is calibrated.
    """

    pipeline: Any
    device: str
    model_id: str
    loras: Sequence[LoraAdapter]

    def cache_identity(self) -> dict: ...


class PipelineRuntime:
    """What a generator's pipeline currently runs with, and the transitions between presets and
    memory plans.

    Args:
        gen: the generator whose pipeline this configures (LoRAs already loaded).
        memory: the requested plan (a key of :data:`~brandstudio.registry.MEMORY_PLANS`).
        vae_tiling: decode the VAE in tiles.
        quantization: the quantization the pipeline was loaded with (recorded).
        parallel: ``"ulysses:N"`` / ``"ring:N"`` context parallelism under torchrun, or None.

    Example:
        >>> gen.runtime.configure(settings, memory="swap")     # doctest: +SKIP
        >>> gen.runtime.record()["memory"]                       # doctest: +SKIP
        'swap'
    """

    def __init__(
        self,
        gen: LoadedModel,
        *,
        memory: str = "auto",
        vae_tiling: bool = False,
        quantization: str = "none",
        parallel: str | None = None,
    ) -> None:
        self.gen = gen
        self.requested_plan = check_memory_plan(memory)
        self.plan: str | None = None
        self.swap: ExpertSwap | None = None
        self.visiting: VisitingTextEncoder | None = None
        self.vae_tiling = bool(vae_tiling)
        self.quantization = quantization
        self.parallel = parse_parallel(parallel)
        self.attention = "native"
        self.compiled = False
        self.cache = CacheHook()
        self.expert_steps: dict[str, int] = {}
        self.fast_loaded: tuple | None = None
        self.fast: FastLora | None = None
        self.fused = False
        self._cache_signature: tuple | None = None
        self._mag_ratios = MagRatioStore()
        # 1. VAE tiling
        if self.vae_tiling:
            gen.pipeline.vae.enable_tiling()
        # 2. the memory plan, unless `auto` must wait for the first spec's size
        self._place()
        # 3. context parallelism (both experts, placed on this rank's GPU)
        if self.parallel is not None:
            kind, degree = self.parallel
            ring, ulysses, mesh = context_parallel_mesh(kind, degree, self.gen.device)
            self._set_attention("best")  # a kernel diffusers can run context-parallel
            enable_context_parallel(self.gen.pipeline, ring, ulysses, mesh)

    # -- public ------------------------------------------------------------------------

    @staticmethod
    def place_at_load(memory: str, device: str) -> bool:
        """Whether ``from_pretrained`` should move the pipeline to ``device`` straight away: only
        without CUDA under ``resident`` / ``auto``. On CUDA the runtime places it (the text encoder
        stays on the CPU under ``resident``; ``auto`` waits for the first size)."""
        return check_memory_plan(memory) in ("resident", "auto") and not is_cuda(device)

    def configure(self, settings: PresetSettings | None = None, *, memory: str | None = None) -> None:
        """Switch to ``settings`` (a resolved preset) and/or memory plan ``memory``, in place.

        Only what differs is changed: the distilled LoRA is loaded once and then switched on
        and off with ``set_adapters`` (unfused first when fused), cache hooks are swapped per
        call in :meth:`prepare`, compiled blocks stay compiled. A plan change takes the old
        plan's hooks off and applies the new one. Nothing here changes frames that a preset
        does not (the memory plan never does).
        """
        replan = memory is not None and memory != self.requested_plan
        if memory is not None:
            self.requested_plan = check_memory_plan(memory)
        lora_change = settings is not None and self._lora_target(settings.fast_lora) != self._lora_state()
        if replan or lora_change:
            self._teardown()
        if settings is not None:
            if lora_change:
                self._set_loras(settings.fast_lora)
            self.cache = settings.cache
            self._set_attention(settings.attention)
            if not self.compiled and (
                settings.compile == "on" or (settings.compile == "auto" and is_cuda(self.gen.device))
            ):
                compile_experts(self.gen.pipeline)
                self.compiled = True
        if self.plan is None:
            self._place()

    def prepare(self, spec: GenerationSpec) -> None:
        """Just before a pipeline call: place the pipeline for ``auto`` (now that the size is
        known), put each expert's cache hook on for *its* step count, reset hook state."""
        import torch  # the free GPU memory

        pipe = self.gen.pipeline
        if self.plan is None:
            free = torch.cuda.mem_get_info(torch.device(self.gen.device))[0] if is_cuda(self.gen.device) else None
            self._apply_plan(choose_memory_plan(free, self.estimate(spec)), spec)
        counts = expert_step_counts(pipe, spec.steps, spec.flow_shift)
        self.expert_steps = counts
        ratios = self._ratios(spec, counts) if self.cache.kind == "mag" else {}
        signature = (self.cache, tuple(sorted(counts.items())), json.dumps(ratios, sort_keys=True))
        if signature != self._cache_signature:
            apply_cache_hook(pipe, self.cache, counts, ratios)
            self._cache_signature = signature
        reset_cache_state(pipe)

    def estimate(self, spec: GenerationSpec):
        """:func:`~brandstudio.generation.memory.estimate_memory` for this pipeline at ``spec``'s size."""
        geometry = ModelGeometry.from_pipeline(self.gen.pipeline)
        return estimate_memory(geometry, spec.width, spec.height, spec.num_frames, vae_tiling=self.vae_tiling)

    def record(self) -> dict[str, Any]:
        """What the last generation ran with, for ``RenderResult.generation``."""
        return {
            "memory": self.plan,
            "memory_requested": self.requested_plan,
            "attention": self.attention,
            "compiled": self.compiled,
            "cache_hook_active": self.cache.kind,
            "expert_steps": dict(self.expert_steps),
            "vae_tiling": self.vae_tiling,
            "quantization": self.quantization,
            "parallel": None if self.parallel is None else f"{self.parallel[0]}:{self.parallel[1]}",
            "lora_fused": self.fused,
        }

    def oom_error(self, spec: GenerationSpec | None, what: str) -> GenerationError:
        """A :class:`GenerationError` for an out-of-memory error, naming the plan that would fit.

        The capacity is what the GPU has free after emptying the cache plus what this process
        still holds; the estimates are :meth:`estimate`'s (at 832x480x81 when no spec is known).
        """
        import torch  # the GPU's free and reserved memory

        capacity = None
        if is_cuda(self.gen.device) and torch.cuda.is_available():
            torch.cuda.empty_cache()
            dev = torch.device(self.gen.device)
            capacity = torch.cuda.mem_get_info(dev)[0] + torch.cuda.memory_reserved(dev)
        spec = spec or GenerationSpec("", "", 0, 832, 480, 81, 1, 1.0, 1.0, 1.0)
        message, fix, _plan = oom_advice(self.plan or self.requested_plan, capacity, self.estimate(spec))
        return GenerationError(
            f"out of memory {what} with `{self.gen.model_id}` on {self.gen.device}: {message}",
            field="model.memory",
            value=self.plan or self.requested_plan,
            fix=fix,
        )

    # -- memory plans --------------------------------------------------------------------

    def _place(self) -> None:
        plan = self.requested_plan
        if plan == "auto":
            if is_cuda(self.gen.device) and self.parallel is None:
                return  # decided in prepare(), from the free memory at the requested size
            plan = "resident"  # on a CPU; and under context parallelism (it splits activations, not weights)
        self._apply_plan(plan, None)

    def _apply_plan(self, plan: str, spec: GenerationSpec | None) -> None:
        import torch  # its OutOfMemoryError, and telling modules apart

        pipe, device = self.gen.pipeline, self.gen.device
        try:
            if plan == "resident" and is_cuda(device) and getattr(pipe, "text_encoder", None) is not None:
                self.visiting = VisitingTextEncoder(pipe, device)  # to the CPU first: never all on the GPU
                for name, module in pipe.components.items():
                    if isinstance(module, torch.nn.Module) and name != "text_encoder":
                        module.to(device)
            elif plan == "resident":
                pipe.to(device)
            elif plan == "swap":
                self.swap = ExpertSwap(pipe, device)
            elif plan == "group-offload":
                apply_group_offload(pipe, device)
        except torch.OutOfMemoryError as e:
            self.plan = plan
            raise self.oom_error(spec, f"placing the model under memory plan `{plan}`") from e
        self.plan = plan

    def _teardown(self) -> None:
        if self.plan == "swap" and self.swap is not None:
            self.swap.remove()
            self.swap = None
        elif self.plan == "resident" and self.visiting is not None:
            self.visiting.remove()
            self.visiting = None
        elif self.plan == "group-offload":
            remove_group_offload(self.gen.pipeline)
        self.plan = None

    # -- LoRAs ---------------------------------------------------------------------------

    @staticmethod
    def _lora_target(fast: FastLora | None) -> tuple:
        if fast is None:
            return (None, False)
        return (
            (str(fast.path), fast.sha256, float(fast.weight_high), float(fast.weight_low)),
            bool(fast.fuse),
        )

    def _lora_state(self) -> tuple:
        if self.fast is None:
            return (None, self.fused)
        f = self.fast
        return ((str(f.path), f.sha256, float(f.weight_high), float(f.weight_low)), self.fused)

    def _set_loras(self, fast: FastLora | None) -> None:
        """Activate the brand's LoRAs plus (for ``fast``) the distilled one, per expert; fuse."""
        gen, pipe = self.gen, self.gen.pipeline
        experts = experts_of(pipe)
        if self.fused:
            pipe.unfuse_lora(components=list(experts))
            self.fused = False
        adapter = None
        if fast is not None:
            adapter = LoraAdapter(
                FastLora.ADAPTER_NAME, fast.path, fast.weight_high, fast.weight_low, fast.base_model
            )
            if any(adapter_key(lo.name) == adapter_key(adapter.name) for lo in gen.loras):
                raise LoRAError(
                    f"a style LoRA is named `{adapter.name}`, the name brandstudio gives the fast preset's LoRA",
                    field="style.loras.name",
                    fix="rename that LoRA in [[style.loras]]",
                )
            loaded_as = (str(fast.path), fast.sha256, fast.weight_high != 0, fast.weight_low != 0)
            if self.fast_loaded != loaded_as:
                if self.fast_loaded is not None:
                    self._delete_fast()
                try:
                    load_loras(pipe, [adapter], model_family=gen.model_family, model_id=gen.model_id)
                except LoRAError as e:
                    e.field, e.file = "model.fast.lora", str(fast.path)
                    raise
                self.fast_loaded = loaded_as
        activate_adapters(pipe, [*gen.loras, *([adapter] if adapter else [])])
        self.fast = fast
        if fast is not None and fast.fuse:
            fusable = [label for label, e in experts.items() if getattr(e, "peft_config", None)]
            try:
                # name both experts: diffusers' default components=["transformer"] fuses only the first
                pipe.fuse_lora(components=fusable, lora_scale=1.0)
            except Exception as e:
                raise GenerationError(
                    f"could not fuse the LoRAs into {', '.join(fusable)}: {type(e).__name__}: {e}",
                    field="model.fast.fuse",
                    value=True,
                    fix="set [model.fast] fuse = false (the LoRA then runs unfused, slightly slower)",
                ) from e
            self.fused = True

    def _delete_fast(self) -> None:
        key = adapter_key(FastLora.ADAPTER_NAME)
        for expert in experts_of(self.gen.pipeline).values():
            if key in (getattr(expert, "peft_config", None) or {}):
                expert.delete_adapters([key])
        self.fast_loaded = None

    # -- attention -----------------------------------------------------------------------

    def _set_attention(self, requested: str) -> None:
        name = resolve_attention(requested, self.gen.device, parallel=self.parallel is not None)
        if name != self.attention:
            set_attention(self.gen.pipeline, name)
            self.attention = name

    # -- MagCache ratios -----------------------------------------------------------------

    def _ratios(self, spec: GenerationSpec, counts: dict[str, int]) -> dict[str, list[float]]:
        """Each expert's MagCache ratios (:class:`~brandstudio.generation.caching.MagRatioStore`)."""
        try:
            ratios, calibrated = self._mag_ratios.get(
                self.gen.pipeline, spec, counts, identity=self.gen.cache_identity(),
                quantization=self.quantization, lora=self._lora_state()[0],
                needs_image=getattr(self.gen, "image_input", "none") == "required",
            )  # fmt: skip
        except BaseException:
            self._cache_signature = None  # a calibration took the hooks off
            raise
        if calibrated:
            self._cache_signature = None  # the calibration took the hooks off
        return ratios
