"""Cache hooks on the Wan experts (the ``balanced`` preset), one per expert, with the Wan2.2 traps handled.

diffusers' ``ModelMixin.enable_cache`` takes ``MagCacheConfig``, ``FirstBlockCacheConfig`` or
``TaylorSeerCacheConfig``. On a two-expert Wan2.2 pipeline:

* each expert's MagCache gets the number of steps *that expert* runs
  (:func:`~brandstudio.generation.experts.expert_step_counts`) and magnitude ratios calibrated
  on those steps (:func:`calibrate_mag_ratios`, diffusers' own ``calibrate=True`` mode), kept
  in memory and under ``$BRANDSTUDIO_HOME/magcache`` (:class:`MagRatioStore`);
* TaylorSeer gets Wan's module names (:data:`WAN_TAYLORSEER_IDENTIFIERS`);
* FasterCache is refused (:func:`~brandstudio.generation.presets.check_cache_hook`).

Example:
    >>> import re
    >>> any(re.fullmatch(p, "blocks.0.attn1") for p in WAN_TAYLORSEER_IDENTIFIERS)
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
from typing import Any

import numpy as np

from brandstudio.errors import GenerationError
from brandstudio.files import brandstudio_home, write_json_atomic
from brandstudio.generation.base import GenerationSpec
from brandstudio.generation.conditioning import image_call
from brandstudio.generation.experts import experts_of, pipeline_call_kwargs
from brandstudio.generation.logs import quiet_diffusers
from brandstudio.generation.presets import CacheHook, check_cache_hook

__all__ = [
    "CALIBRATION_PROMPT",
    "WAN_TAYLORSEER_IDENTIFIERS",
    "MagRatioStore",
    "apply_cache_hook",
    "calibrate_mag_ratios",
    "disable_cache",
    "reset_cache_state",
]

WAN_TAYLORSEER_IDENTIFIERS = (r"blocks\.\d+\.attn1", r"blocks\.\d+\.attn2", r"blocks\.\d+\.ffn")
"""TaylorSeer ``cache_identifiers`` for ``WanTransformer3DModel``. diffusers' defaults
(``^blocks.*attn``, matched with ``re.fullmatch``) never match ``blocks.0.attn1``: on Wan they
hook nothing and silently change nothing."""

CALIBRATION_PROMPT = "a calm landscape at golden hour, slow camera pan, natural light"
"""The fixed prompt (seed 0) MagCache ratios are calibrated with, so that they depend only on the
model, its LoRAs and the sampler settings - never on which render happened to come first."""

_MAG_VERSION = 1


def disable_cache(expert) -> None:
    """Take the cache hook off ``expert``, if it has one."""
    if getattr(expert, "_cache_config", None) is not None:
        expert.disable_cache()


def reset_cache_state(pipe) -> None:
    """Forget what each expert's cache hook kept from the previous call (before a new one)."""
    for expert in experts_of(pipe).values():
        if getattr(expert, "_cache_config", None) is not None:
            expert._reset_stateful_cache()


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
    # both import torch
    import torch
    from diffusers.hooks import MagCacheConfig

    experts = experts_of(pipe)
    running = [name for name in experts if counts.get(name, 0) > 0]
    for name in running:
        disable_cache(experts[name])
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
            grey = np.full((spec.height, spec.width, 3), 128, np.uint8)
            call, inputs = image_call(pipe, dataclasses.replace(spec, prompt=CALIBRATION_PROMPT), grey)
        with contextlib.redirect_stdout(io.StringIO()):
            call(
                **inputs,
                generator=torch.Generator(device="cpu").manual_seed(0),
                output_type="latent",
                **pipeline_call_kwargs(pipe, spec),
            )
    finally:
        log.removeHandler(collect)
        log.setLevel(old_level)
        log.propagate = old_propagate
        for name in running:
            disable_cache(experts[name])
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


def apply_cache_hook(pipe, hook: CacheHook, counts: dict[str, int], ratios: dict[str, list[float]]) -> None:
    """Put ``hook`` on each expert, configured for that expert (no-op for ``kind="none"``)."""
    from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig  # imports torch

    for name, expert in experts_of(pipe).items():
        disable_cache(expert)
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
            config = FirstBlockCacheConfig(**({} if hook.threshold is None else {"threshold": hook.threshold}))
        elif hook.kind == "taylorseer":
            config = TaylorSeerCacheConfig(
                cache_interval=hook.interval,
                disable_cache_before_step=hook.warmup,
                max_order=1,
                taylor_factors_dtype=expert.dtype,
                cache_identifiers=list(WAN_TAYLORSEER_IDENTIFIERS),
            )
        else:  # the schema allows nothing else; refused hooks never get here
            check_cache_hook(hook.kind)
            continue
        with quiet_diffusers():
            expert.enable_cache(config)


class MagRatioStore:
    """MagCache ratios per expert: from memory, then ``$BRANDSTUDIO_HOME/magcache/<key>.json``,
    else calibrated (:func:`calibrate_mag_ratios`) and stored for the next process.

    The key is everything the ratios depend on: the generator's cache identity, the quantization,
    the size, the sampler numbers, the negative prompt, each expert's step count and the
    distilled LoRA in use.

    Example:
        >>> store = MagRatioStore()
        >>> ratios, calibrated = store.get(pipe, spec, counts, identity=gen.cache_identity(),  # doctest: +SKIP
        ...                                quantization="none", lora=None)
    """

    def __init__(self) -> None:
        self._memo: dict[str, dict[str, list[float]]] = {}

    def get(
        self,
        pipe,
        spec: GenerationSpec,
        counts: dict[str, int],
        *,
        identity: dict[str, Any],
        quantization: str,
        lora: tuple | None,
        needs_image: bool = False,
    ) -> tuple[dict[str, list[float]], bool]:
        """``(ratios per expert, whether they were calibrated now)``; a calibration takes the
        experts' cache hooks off."""
        doc = {
            "v": _MAG_VERSION,
            "identity": identity,
            "quantization": quantization,
            "size": [spec.width, spec.height, spec.num_frames],
            "sampler": [spec.steps, spec.flow_shift, spec.guidance_high, spec.guidance_low],
            "negative": spec.negative_prompt,
            "counts": counts,
            "lora": lora,
        }
        key = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        if key in self._memo:
            return self._memo[key], False
        path = brandstudio_home() / "magcache" / f"{key}.json"
        ratios, calibrated = None, False
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))["ratios"]
            if all(len(stored.get(n, [])) == c for n, c in counts.items() if c):
                ratios = {n: [float(v) for v in stored[n]] for n, c in counts.items() if c}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            ratios = None
        if ratios is None:
            ratios, calibrated = calibrate_mag_ratios(pipe, spec, counts, needs_image=needs_image), True
            write_json_atomic(path, {"doc": doc, "ratios": ratios})
        self._memo[key] = ratios
        return ratios, calibrated
