"""Apply speed presets and memory plans to a loaded ``WanPipeline`` (the torch/diffusers side).

:mod:`brandstudio.generation.presets` decides *what* (pure rules, no torch); this module does
it, on the pipeline of a :class:`~brandstudio.generation.wan.WanGenerator`, through diffusers'
own APIs:

* cache hooks per expert (``ModelMixin.enable_cache``: ``MagCacheConfig``,
  ``FirstBlockCacheConfig``, ``TaylorSeerCacheConfig``), with the Wan2.2 traps handled:
  each expert's MagCache gets the number of steps *that expert* runs
  (:func:`expert_step_counts`) and magnitude ratios calibrated on those steps
  (:func:`calibrate_mag_ratios`, diffusers' own ``calibrate=True`` mode); TaylorSeer gets Wan's
  module names (:data:`WAN_TAYLORSEER_IDENTIFIERS`);
* the step-distilled LoRA of ``fast`` loaded into both experts at per-expert weights and fused
  into *both* (``fuse_lora(components=["transformer", "transformer_2"])``; diffusers' default
  fuses only ``transformer``);
* attention kernels (``set_attention_backend``), regional compilation
  (``compile_repeated_blocks``), torchao quantization (``PipelineQuantizationConfig``),
  context parallelism (``enable_parallelism`` with ``ContextParallelConfig``, under torchrun);
* memory plans: ``resident`` (``pipe.to``), ``swap`` (:class:`ExpertSwap`: forward pre-hooks
  keep one of text encoder / high-noise / low-noise expert on the device), ``group-offload``
  (``enable_group_offload``, CUDA-stream prefetch on CUDA), and VAE tiling.

Every path runs on a CPU too (onload device = CPU), except the CUDA-only kernels, compile by
default, fp8-dynamic quantization and context parallelism, which say so clearly.

Example:
    >>> from brandstudio.generation.wan import WanGenerator                   # doctest: +SKIP
    >>> gen = WanGenerator("tiny", memory="swap")                              # doctest: +SKIP
    >>> gen.runtime.record()["memory"]                                         # doctest: +SKIP
    'swap'
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from brandstudio.errors import GenerationError, LoRAError, MissingDependency, RequestError
from brandstudio.generation.presets import (
    MEMORY_PLANS,
    QUANTIZATIONS,
    CacheHook,
    FastLora,
    ModelGeometry,
    PresetSettings,
    choose_memory_plan,
    estimate_memory,
    parse_parallel,
)

if TYPE_CHECKING:  # pragma: no cover
    from brandstudio.generation.base import GenerationSpec
    from brandstudio.generation.wan import WanGenerator

__all__ = [
    "CALIBRATION_PROMPT",
    "EXPERTS",
    "WAN_TAYLORSEER_IDENTIFIERS",
    "ExpertSwap",
    "PipelineRuntime",
    "VisitingTextEncoder",
    "calibrate_mag_ratios",
    "compile_experts",
    "expert_step_counts",
    "parallel_device",
    "quantization_config",
    "resolve_attention",
]

EXPERTS = ("transformer", "transformer_2")
"""The two Wan2.2 experts: high noise, then low noise."""

WAN_TAYLORSEER_IDENTIFIERS = (r"blocks\.\d+\.attn1", r"blocks\.\d+\.attn2", r"blocks\.\d+\.ffn")
"""TaylorSeer ``cache_identifiers`` for ``WanTransformer3DModel``. diffusers' defaults
(``^blocks.*attn``, matched with ``re.fullmatch``) never match ``blocks.0.attn1``: on Wan they
hook nothing and silently change nothing."""

CALIBRATION_PROMPT = "a calm landscape at golden hour, slow camera pan, natural light"
"""The fixed prompt (seed 0) MagCache ratios are calibrated with, so that they depend only on the
model, its LoRAs and the sampler settings - never on which render happened to come first."""

_ATTENTION_BACKENDS = {"native": "native", "flash": "flash", "flash3": "_flash_3", "sage": "sage"}
_ATTENTION_PACKAGES = {
    "flash": "flash-attn",
    "flash3": "flash-attn 3 (hopper build)",
    "sage": "sageattention",
}
_CP_ATTENTION = frozenset({"native", "flash", "sage"})  # kernels diffusers can run context-parallel
_GROUP_OFFLOAD_HOOKS = ("group_offloading", "layer_execution_tracker", "lazy_prefetch_group_offloading")
_MAG_VERSION = 1


def _experts(pipe) -> dict[str, Any]:
    """The experts present, in sampling order."""
    return {name: getattr(pipe, name) for name in EXPERTS if getattr(pipe, name, None) is not None}


def _is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


@contextlib.contextmanager
def _quiet_diffusers(level: int = logging.ERROR) -> Iterator[None]:
    """Silence diffusers' 'experimental feature' warnings for the duration."""
    from diffusers.utils import logging as dlog

    old = dlog.get_verbosity()
    dlog.set_verbosity(level)
    try:
        yield
    finally:
        dlog.set_verbosity(old)


# -- the sampler ---------------------------------------------------------------------------


def expert_step_counts(pipe, steps: int, flow_shift: float) -> dict[str, int]:
    """How many of ``steps`` each expert runs, exactly as ``WanPipeline`` will split them.

    The pipeline gives a step to ``transformer`` when its timestep is at least
    ``boundary_ratio x num_train_timesteps`` and to ``transformer_2`` otherwise; the timesteps
    come from the scheduler with this ``flow_shift``.

    Example:
        >>> expert_step_counts(pipe, 40, 12.0)                # Wan2.2 T2V-A14B   # doctest: +SKIP
        {'transformer': 26, 'transformer_2': 14}
    """
    experts = _experts(pipe)
    boundary = pipe.config.get("boundary_ratio")
    if boundary is None or len(experts) < 2:
        return {next(iter(experts)): int(steps)}
    sched = pipe.scheduler
    fresh = type(sched).from_config(sched.config, flow_shift=float(flow_shift))
    fresh.set_timesteps(int(steps), device="cpu")
    limit = float(boundary) * fresh.config.num_train_timesteps
    high = int(sum(1 for t in fresh.timesteps if float(t) >= limit))
    return {"transformer": high, "transformer_2": len(fresh.timesteps) - high}


def _pipe_kwargs(pipe, spec: GenerationSpec) -> dict[str, Any]:
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


# -- cache hooks ---------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def calibrate_mag_ratios(
    pipe, spec: GenerationSpec, counts: dict[str, int], *, needs_image: bool = False
) -> dict[str, list[float]]:
    """MagCache magnitude ratios for each expert, over the steps that expert runs.

    Runs the pipeline once (latents only, no VAE decode) at ``spec``'s size and sampler settings
    with :data:`CALIBRATION_PROMPT` and seed 0, each expert under diffusers'
    ``MagCacheConfig(calibrate=True, num_inference_steps=<its own count>)``, and collects the
    ratios diffusers reports as each expert finishes (the conditional pass; the experts run one
    after the other, so the reports come high-noise expert first). ``needs_image``: the model
    requires a start image (I2V-A14B); a flat grey one is used.

    Raises:
        GenerationError: the calibration did not report a ratio per step of each expert.

    Example:
        >>> calibrate_mag_ratios(pipe, spec, {"transformer": 1, "transformer_2": 1})  # doctest: +SKIP
        {'transformer': [1.0], 'transformer_2': [1.0]}
    """
    import torch
    from diffusers.hooks import MagCacheConfig

    experts = _experts(pipe)
    running = [name for name in experts if counts.get(name, 0) > 0]
    for name in running:
        _disable_cache(experts[name])
        experts[name].enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=counts[name]))
    collect = _Collect()
    log = logging.getLogger("diffusers.hooks.mag_cache")
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(collect)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        call, inputs = pipe, {"prompt": CALIBRATION_PROMPT, "negative_prompt": spec.negative_prompt}
        if needs_image:
            import dataclasses

            import numpy as np

            from brandstudio.generation.conditioning import image_call

            grey = np.full((spec.height, spec.width, 3), 128, np.uint8)
            call, inputs = image_call(pipe, dataclasses.replace(spec, prompt=CALIBRATION_PROMPT), grey)
        with contextlib.redirect_stdout(io.StringIO()):
            call(
                **inputs,
                generator=torch.Generator(device="cpu").manual_seed(0),
                output_type="latent",
                **_pipe_kwargs(pipe, spec),
            )
    finally:
        log.removeHandler(collect)
        log.setLevel(old_level)
        log.propagate = old_propagate
        for name in running:
            _disable_cache(experts[name])
    reports = []
    for message in collect.messages:
        if message.startswith("MagCache Calibration Results:"):
            values = json.loads(message.split(":", 1)[1].strip().replace("nan", "NaN"))
            reports.append([v if math.isfinite(v) else 1.0 for v in values])
    contexts = 2 if spec.guidance_high > 1.0 else 1  # WanPipeline runs CFG iff guidance_scale > 1
    ratios = {}
    for i, name in enumerate(running):
        ours = reports[i * contexts] if i * contexts < len(reports) else None
        if ours is None or len(ours) != counts[name]:
            raise GenerationError(
                f"MagCache calibration of `{name}` reported {0 if ours is None else len(ours)} ratios for "
                f"{counts[name]} steps",
                field="model.balanced.cache",
                value="mag",
                fix='use cache = "first-block" for this model, and report this with your diffusers version',
            )
        ratios[name] = [float(v) for v in ours]
    return ratios


def _disable_cache(expert) -> None:
    if getattr(expert, "_cache_config", None) is not None:
        expert.disable_cache()


def _apply_cache_hook(pipe, hook: CacheHook, counts: dict[str, int], ratios: dict[str, list[float]]) -> None:
    """Put ``hook`` on each expert, configured for that expert (no-op for ``kind="none"``)."""
    from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

    for name, expert in _experts(pipe).items():
        _disable_cache(expert)
        n = counts.get(name, 0)
        if hook.kind == "none" or n == 0:
            continue
        if hook.kind == "mag":
            extra = {} if hook.threshold is None else {"threshold": hook.threshold}
            config = MagCacheConfig(
                num_inference_steps=n,
                mag_ratios=ratios[name],
                retention_ratio=hook.retention,
                max_skip_steps=hook.max_skip_steps,
                **extra,
            )
        elif hook.kind == "first-block":
            config = FirstBlockCacheConfig(
                **({} if hook.threshold is None else {"threshold": hook.threshold})
            )
        elif hook.kind == "taylorseer":
            config = TaylorSeerCacheConfig(
                cache_interval=hook.interval,
                disable_cache_before_step=hook.warmup,
                max_order=1,
                taylor_factors_dtype=expert.dtype,
                cache_identifiers=list(WAN_TAYLORSEER_IDENTIFIERS),
            )
        else:  # the schema allows nothing else; refused hooks never get here
            from brandstudio.generation.presets import check_cache_hook

            check_cache_hook(hook.kind)
            continue
        with _quiet_diffusers():
            expert.enable_cache(config)


# -- attention, compile, quantization ------------------------------------------------------


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
    if requested in ("native",) or (requested == "best" and not _is_cuda(device)):
        return "native"
    from diffusers.utils import is_flash_attn_3_available, is_flash_attn_available, is_sageattention_available

    installed = {
        "flash3": is_flash_attn_3_available(),
        "flash": is_flash_attn_available(),
        "sage": is_sageattention_available(),
    }
    if requested == "best":
        for name in ("flash3", "flash"):
            if installed[name] and not (parallel and name not in _CP_ATTENTION):
                return name
        return "native"
    if requested not in _ATTENTION_BACKENDS:
        raise RequestError(
            f"unknown attention kernel {requested!r}",
            field="model.attention",
            value=requested,
            fix=f"use one of auto, {', '.join(_ATTENTION_BACKENDS)}",
        )
    if not _is_cuda(device):
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
            fix=f'install {_ATTENTION_PACKAGES[requested]} for your CUDA and torch, or use attention = "auto"',
        )
    if parallel and requested not in _CP_ATTENTION:
        raise GenerationError(
            f"attention kernel `{requested}` cannot run context-parallel in diffusers",
            field="model.attention",
            value=requested,
            fix=f"use one of {', '.join(sorted(_CP_ATTENTION))} with `parallel`",
        )
    return requested


def _set_attention(pipe, name: str) -> None:
    with _quiet_diffusers():
        for expert in _experts(pipe).values():
            try:
                expert.set_attention_backend(_ATTENTION_BACKENDS[name])
            except (RuntimeError, ValueError) as e:
                raise GenerationError(
                    f"could not switch the experts to attention kernel `{name}`: {e}",
                    field="model.attention",
                    value=name,
                    fix='use attention = "native"',
                ) from e


def compile_experts(pipe, **compile_kwargs) -> int:
    """``compile_repeated_blocks`` on every expert (regional compilation of the Wan blocks).

    Each ``WanTransformerBlock`` is compiled once and reused by all 40 layers, so compiling
    costs seconds, not minutes. ``fullgraph`` stays False: the cache hooks call functions that
    are excluded from compilation (``torch.compiler.disable``). Returns the number of experts.

    Example:
        >>> compile_experts(pipe, backend="eager")          # doctest: +SKIP
        2
    """
    experts = _experts(pipe)
    for expert in experts.values():
        expert.compile_repeated_blocks(**{"fullgraph": False, **compile_kwargs})
    return len(experts)


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

        if not (
            _is_cuda(device) and torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
        ):
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


def parallel_device(parallel: str | None, device: str) -> str:
    """Under torchrun, each rank runs on its own GPU: ``cuda`` -> ``cuda:<LOCAL_RANK>``.

    Raises:
        GenerationError: ``parallel`` is set but the device is not CUDA (checked before loading).
    """
    spec = parse_parallel(parallel)
    if spec is None:
        return device
    if not _is_cuda(device):
        raise GenerationError(
            f"context parallelism `{parallel}` needs CUDA GPUs; the model runs on {device}",
            field="parallel",
            value=parallel,
            fix=f"run on a machine with {spec[1]} GPUs under `torchrun --nproc-per-node {spec[1]}`, "
            "or leave parallel unset",
        )
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if device == "cuda" else device


# -- memory plans --------------------------------------------------------------------------


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
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _apply_group_offload(pipe, device: str) -> None:
    for name in ("text_encoder", *EXPERTS):
        module = getattr(pipe, name, None)
        if module is not None:
            module.to("cpu")
    with _quiet_diffusers():
        pipe.enable_group_offload(
            onload_device=device,
            offload_device="cpu",
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=_is_cuda(device),  # prefetch the next block on a CUDA stream
            exclude_modules=["vae"],
        )


def _remove_group_offload(pipe) -> None:
    from diffusers.hooks import HookRegistry

    for module in pipe.components.values():
        if hasattr(module, "_diffusers_hook"):
            registry = HookRegistry.check_if_exists_or_initialize(module)
            for name in _GROUP_OFFLOAD_HOOKS:
                registry.remove_hook(name, recurse=True)


# -- the runtime ---------------------------------------------------------------------------


class PipelineRuntime:
    """What a :class:`~brandstudio.generation.wan.WanGenerator` currently runs with, and the
    transitions between presets and memory plans.

    Args:
        gen: the generator whose pipeline this configures (LoRAs already loaded).
        memory: the requested plan (a key of :data:`~brandstudio.generation.presets.MEMORY_PLANS`).
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
        gen: WanGenerator,
        *,
        memory: str = "auto",
        vae_tiling: bool = False,
        quantization: str = "none",
        parallel: str | None = None,
    ) -> None:
        self.gen = gen
        self.requested_plan = _check_plan(memory)
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
        self._mag_memo: dict[str, dict[str, list[float]]] = {}
        # 1. VAE tiling
        if self.vae_tiling:
            gen.pipeline.vae.enable_tiling()
        # 2. the memory plan, unless `auto` must wait for the first spec's size
        self._place()
        # 3. context parallelism (both experts, placed on this rank's GPU)
        if self.parallel is not None:
            self._enable_parallel()

    # -- public ------------------------------------------------------------------------

    @staticmethod
    def place_at_load(memory: str, device: str) -> bool:
        """Whether ``from_pretrained`` should move the pipeline to ``device`` straight away: only
        without CUDA under ``resident`` / ``auto``. On CUDA the runtime places it (the text encoder
        stays on the CPU under ``resident``; ``auto`` waits for the first size)."""
        return _check_plan(memory) in ("resident", "auto") and not _is_cuda(device)

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
            self.requested_plan = _check_plan(memory)
        lora_change = settings is not None and self._lora_target(settings.fast_lora) != self._lora_state()
        if replan or lora_change:
            self._teardown()
        if settings is not None:
            if lora_change:
                self._set_loras(settings.fast_lora)
            self.cache = settings.cache
            self._set_attention(settings.attention)
            if not self.compiled and (
                settings.compile == "on" or (settings.compile == "auto" and _is_cuda(self.gen.device))
            ):
                compile_experts(self.gen.pipeline)
                self.compiled = True
        if self.plan is None:
            self._place()

    def prepare(self, spec: GenerationSpec) -> None:
        """Just before a pipeline call: place the pipeline for ``auto`` (now that the size is
        known), put each expert's cache hook on for *its* step count, reset hook state."""
        import torch

        pipe = self.gen.pipeline
        if self.plan is None:
            free = (
                torch.cuda.mem_get_info(torch.device(self.gen.device))[0]
                if _is_cuda(self.gen.device)
                else None
            )
            self._apply_plan(choose_memory_plan(free, self.estimate(spec)), spec)
        counts = expert_step_counts(pipe, spec.steps, spec.flow_shift)
        self.expert_steps = counts
        ratios = self._mag_ratios(spec, counts) if self.cache.kind == "mag" else {}
        signature = (self.cache, tuple(sorted(counts.items())), json.dumps(ratios, sort_keys=True))
        if signature != self._cache_signature:
            _apply_cache_hook(pipe, self.cache, counts, ratios)
            self._cache_signature = signature
        for expert in _experts(pipe).values():
            if getattr(expert, "_cache_config", None) is not None:
                expert._reset_stateful_cache()

    def estimate(self, spec: GenerationSpec):
        """:func:`~brandstudio.generation.presets.estimate_memory` for this pipeline at ``spec``'s size."""
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
        import torch

        from brandstudio.generation.base import GenerationSpec as Spec
        from brandstudio.generation.presets import oom_advice

        capacity = None
        if _is_cuda(self.gen.device) and torch.cuda.is_available():
            torch.cuda.empty_cache()
            dev = torch.device(self.gen.device)
            capacity = torch.cuda.mem_get_info(dev)[0] + torch.cuda.memory_reserved(dev)
        spec = spec or Spec("", "", 0, 832, 480, 81, 1, 1.0, 1.0, 1.0)
        message, fix, plan = oom_advice(self.plan or self.requested_plan, capacity, self.estimate(spec))
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
            if _is_cuda(self.gen.device) and self.parallel is None:
                return  # decided in prepare(), from the free memory at the requested size
            plan = "resident"  # on a CPU; and under context parallelism (it splits activations, not weights)
        self._apply_plan(plan, None)

    def _apply_plan(self, plan: str, spec: GenerationSpec | None) -> None:
        import torch

        pipe, device = self.gen.pipeline, self.gen.device
        try:
            if plan == "resident" and _is_cuda(device) and getattr(pipe, "text_encoder", None) is not None:
                self.visiting = VisitingTextEncoder(pipe, device)  # to the CPU first: never all on the GPU
                for name, module in pipe.components.items():
                    if isinstance(module, torch.nn.Module) and name != "text_encoder":
                        module.to(device)
            elif plan == "resident":
                pipe.to(device)
            elif plan == "swap":
                self.swap = ExpertSwap(pipe, device)
            elif plan == "group-offload":
                _apply_group_offload(pipe, device)
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
            _remove_group_offload(self.gen.pipeline)
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
        from brandstudio.generation.base import LoraAdapter
        from brandstudio.generation.wan import _adapter_key

        gen, pipe = self.gen, self.gen.pipeline
        experts = _experts(pipe)
        if self.fused:
            pipe.unfuse_lora(components=list(experts))
            self.fused = False
        adapter = None
        if fast is not None:
            adapter = LoraAdapter(
                FastLora.ADAPTER_NAME, fast.path, fast.weight_high, fast.weight_low, fast.base_model
            )
            if any(_adapter_key(lo.name) == _adapter_key(adapter.name) for lo in gen.loras):
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
                    gen._load_loras([adapter])
                except LoRAError as e:
                    e.field, e.file = "model.fast.lora", str(fast.path)
                    raise
                self.fast_loaded = loaded_as
        # per-expert active adapters and weights
        for label, expert in experts.items():
            names, weights = [], []
            for lo in (*gen.loras, *([adapter] if adapter else [])):
                for lab, _module, _into2, weight in gen._experts(lo):
                    if lab == label:
                        names.append(_adapter_key(lo.name))
                        weights.append(weight)
            if getattr(expert, "peft_config", None):
                if names:
                    expert.enable_lora()
                    expert.set_adapters(names, weights=weights)
                else:
                    expert.disable_lora()
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
        from brandstudio.generation.wan import _adapter_key

        key = _adapter_key(FastLora.ADAPTER_NAME)
        for expert in _experts(self.gen.pipeline).values():
            if key in (getattr(expert, "peft_config", None) or {}):
                expert.delete_adapters([key])
        self.fast_loaded = None

    # -- attention / parallel ------------------------------------------------------------

    def _set_attention(self, requested: str) -> None:
        name = resolve_attention(requested, self.gen.device, parallel=self.parallel is not None)
        if name != self.attention:
            _set_attention(self.gen.pipeline, name)
            self.attention = name

    def _enable_parallel(self) -> None:
        import torch

        kind, degree = self.parallel
        spec = f"{kind}:{degree}"
        if not (_is_cuda(self.gen.device) and torch.cuda.is_available()):
            raise GenerationError(
                f"context parallelism `{spec}` needs CUDA GPUs; the model runs on {self.gen.device}",
                field="parallel",
                value=spec,
                fix="run on a machine with N GPUs under `torchrun --nproc-per-node N`, or leave parallel unset",
            )
        import torch.distributed as dist

        if dist.is_available() and not dist.is_initialized() and "RANK" in os.environ:
            torch.cuda.set_device(torch.device(self.gen.device))
            dist.init_process_group(backend="nccl", device_id=torch.device(self.gen.device))
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
        from diffusers import ContextParallelConfig
        from torch.distributed.device_mesh import init_device_mesh

        ring, ulysses = (degree, 1) if kind == "ring" else (1, degree)
        mesh = init_device_mesh("cuda", (ring, ulysses), mesh_dim_names=("ring", "ulysses"))
        self._set_attention("best")  # a kernel diffusers can run context-parallel
        with _quiet_diffusers():
            for expert in _experts(self.gen.pipeline).values():
                expert.enable_parallelism(
                    config=ContextParallelConfig(ring_degree=ring, ulysses_degree=ulysses, mesh=mesh)
                )

    # -- MagCache ratios -------------------------------------------------------------------

    def _mag_ratios(self, spec: GenerationSpec, counts: dict[str, int]) -> dict[str, list[float]]:
        """Ratios per expert: memory, then ``$BRANDSTUDIO_HOME/magcache/<key>.json``, else calibrate."""
        from brandstudio.files import brandstudio_home, write_json_atomic

        identity = self.gen.cache_identity()
        doc = {
            "v": _MAG_VERSION,
            "identity": identity,
            "quantization": self.quantization,
            "size": [spec.width, spec.height, spec.num_frames],
            "sampler": [spec.steps, spec.flow_shift, spec.guidance_high, spec.guidance_low],
            "negative": spec.negative_prompt,
            "counts": counts,
            "lora": self._lora_state()[0],
        }
        key = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        if key in self._mag_memo:
            return self._mag_memo[key]
        path = brandstudio_home() / "magcache" / f"{key}.json"
        ratios = None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))["ratios"]
            if all(len(stored.get(n, [])) == c for n, c in counts.items() if c):
                ratios = {n: [float(v) for v in stored[n]] for n, c in counts.items() if c}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            ratios = None
        if ratios is None:
            self._cache_signature = None  # calibration takes the hooks off
            needs_image = getattr(self.gen, "image_input", "none") == "required"
            ratios = calibrate_mag_ratios(self.gen.pipeline, spec, counts, needs_image=needs_image)
            write_json_atomic(path, {"doc": doc, "ratios": ratios})
        self._mag_memo[key] = ratios
        return ratios


def _check_plan(plan: str) -> str:
    if plan not in MEMORY_PLANS:
        raise RequestError(
            f"unknown memory plan {plan!r}",
            field="memory",
            value=plan,
            fix=f"use one of {', '.join(MEMORY_PLANS)}",
        )
    return plan
