"""LoRA adapters in the Wan experts: load them, one weight per expert, and switch them per expert.

A :class:`~brandstudio.generation.base.LoraAdapter` goes into the high-noise expert with
``weight_high`` and into the low-noise expert with ``weight_low`` (a weight of 0 skips that
expert). diffusers loads into ``transformer_2`` only with a second ``load_lora_weights(...,
load_into_transformer_2=True)`` call, and each expert keeps its own active adapters and weights.

The brand's LoRAs are loaded once with the generator (:func:`load_loras`); the ``fast``
preset's step-distilled LoRA is loaded the same way and switched on and off with
:func:`activate_adapters` (:class:`~brandstudio.generation.runtime.PipelineRuntime`).
Each file is checked against the model before diffusers sees it (:mod:`brandstudio.generation.lora`),
its tensors are checked finite (:mod:`brandstudio.weights`, cached by file hash), and once loaded
its parameters are checked again in the model's dtype (an fp16 cast can overflow to inf).
:func:`guard_finite` makes every expert and the VAE decoder refuse to pass on NaN or inf, so
a model that goes non-finite stops with a :class:`~brandstudio.errors.GenerationError` naming
the likely cause (the LoRAs active in that expert) instead of rendering black frames.

Example:
    >>> adapter_key("aurora.film v2")
    'aurora_film_v2'
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

from brandstudio.errors import GenerationError, LoRAError
from brandstudio.generation.base import LoraAdapter
from brandstudio.generation.experts import experts_of
from brandstudio.generation.lora import (
    NONFINITE_LORA_FIX,
    LoraInfo,
    check_lora_file,
    check_lora_fits,
    expert_prefix,
)
from brandstudio.weights import count_nonfinite

__all__ = ["activate_adapters", "adapter_key", "expert_targets", "guard_finite", "load_loras"]

#: the labels of the pipeline's parts, as a user reads them in an error
_PART_NAMES = {
    "transformer": "the high-noise expert (`transformer`)",
    "transformer_2": "the low-noise expert (`transformer_2`)",
    "vae": "the VAE decoder",
}


def adapter_key(name: str) -> str:
    """The adapter's name inside peft, which keeps adapters in ModuleDicts (keys may not contain '.')."""
    return re.sub(r"[^0-9A-Za-z_-]", "_", name) or "lora"


def expert_targets(pipe, adapter: LoraAdapter) -> list[tuple[str, Any, bool, float]]:
    """``(label, module, load_into_transformer_2, weight)`` for each expert ``adapter`` goes into."""
    targets = []
    if pipe.transformer is not None and adapter.weight_high != 0:
        targets.append(("transformer", pipe.transformer, False, float(adapter.weight_high)))
    if pipe.transformer_2 is not None and adapter.weight_low != 0:
        targets.append(("transformer_2", pipe.transformer_2, True, float(adapter.weight_low)))
    return targets


def _check_entry(adapter: LoraAdapter, seen: dict[str, str]) -> str:
    """The adapter's peft key, after checking its name is unique and its weights are numbers."""
    key = adapter_key(adapter.name)
    if key in seen:
        raise LoRAError(
            f"two LoRAs are named `{adapter.name}` (or names that differ only in punctuation: `{seen[key]}`)",
            file=str(adapter.path),
            field="style.loras.name",
            fix="give every LoRA in the profile a unique name",
        )
    seen[key] = adapter.name
    for label, weight in (("weight_high", adapter.weight_high), ("weight_low", adapter.weight_low)):
        if not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise LoRAError(
                f"LoRA `{adapter.name}`: `{label}` must be a finite number, got {weight!r}",
                file=str(adapter.path),
                field=f"style.loras.{label}",
                fix="use a weight such as 0.8 (0 skips that expert)",
            )
    return key


def load_loras(pipe, adapters: Sequence[LoraAdapter], *, model_family: str, model_id: str) -> None:
    """Load ``adapters`` into the experts of ``pipe``, each at its per-expert weight.

    Raises:
        LoRAError: two adapters share a name, a weight is not a number, or a file does not fit
            ``model_family`` (other base model, missing modules, shapes) or fails to load.
        AssetError: a file is missing or is not safetensors.
    """
    active: dict[str, tuple[list[str], list[float]]] = {}
    seen: dict[str, str] = {}
    for adapter in adapters:
        # 1. the entry itself
        key = _check_entry(adapter, seen)
        # 2. the file (finite tensors, cached by hash), and that it fits each expert it goes into
        info = check_lora_file(adapter.path)
        targets = expert_targets(pipe, adapter)
        for label, module, _, _ in targets:
            check_lora_fits(info, module, adapter, model_family, expert=label)
        # 3. load it
        for label, module, into_2, weight in targets:
            try:
                with warnings.catch_warnings():
                    # peft warns on every adapter after the first; several adapters are intended
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    pipe.load_lora_weights(
                        _weights_for(info, label),
                        adapter_name=key,
                        use_safetensors=True,  # never fall back to unpickling
                        load_into_transformer_2=into_2,
                    )
            except Exception as e:
                raise LoRAError(
                    f"LoRA `{adapter.name}` ({adapter.path.name}) could not be loaded into `{label}` "
                    f"of `{model_id}`: {type(e).__name__}: {e}",
                    file=str(adapter.path),
                    field="style.loras",
                    fix=f"check that the LoRA was trained for `{model_family}` and is a Wan LoRA "
                    "in the diffusers, original-Wan or musubi/kohya format",
                ) from e
            _check_loaded_finite(module, key, adapter, label)
            names, weights = active.setdefault(label, ([], []))
            names.append(key)
            weights.append(weight)
    # 4. per-expert weights
    for label, (names, weights) in active.items():
        getattr(pipe, label).set_adapters(names, weights=weights)
    # 5. a model that goes non-finite stops instead of rendering black frames
    guard_finite(pipe)


def _weights_for(info: LoraInfo, expert: str):
    """What ``load_lora_weights`` gets for ``expert``: the file's path, or, for a LoRA with weights
    per expert (``transformer.*`` and ``transformer_2.*``), that expert's weights under the
    ``transformer.*`` names diffusers loads (it reads only those, into either expert)."""
    if not any(k.startswith("transformer_2.") for k in info.keys):
        return str(info.path)
    from safetensors.torch import load_file

    prefix = expert_prefix(info, expert)
    return {
        "transformer." + key[len(prefix) :]: value
        for key, value in load_file(str(info.path)).items()
        if key.startswith(prefix)
    }


def _check_loaded_finite(module, key: str, adapter: LoraAdapter, label: str) -> None:
    """The adapter's parameters as loaded into ``module`` (in its dtype: an fp16 cast of a large
    value is inf) are all finite, or :class:`~brandstudio.errors.LoRAError`."""
    for name, param in module.named_parameters():
        if f".{key}." not in f".{name}." or not ("lora_A" in name or "lora_B" in name):
            continue
        nan, inf = count_nonfinite(param.detach())
        if nan or inf:
            raise LoRAError(
                f"LoRA `{adapter.name}` ({adapter.path.name}) has non-finite values once loaded into "
                f"`{label}`: `{name}` has {nan} NaN and {inf} ±inf of {param.numel()} values "
                f"(in {str(param.dtype).removeprefix('torch.')}); it would render black frames",
                file=str(adapter.path),
                field="style.loras",
                fix=NONFINITE_LORA_FIX + "; values too large for float16 overflow to inf: use bfloat16 "
                "or float32 ([model] dtype)",
            )


def guard_finite(pipe) -> None:
    """Make each expert of ``pipe`` and its VAE decoder raise
    :class:`~brandstudio.errors.GenerationError` on a NaN or inf in their output (once per part).

    The check is one reduction per denoising step on the latents (small next to the
    transformer); it fails at the first bad step, before the rest of the clip is computed and
    long before anything is written. The error names the LoRAs active in that expert, the
    usual cause.
    """
    parts = dict(experts_of(pipe))
    decoder = getattr(getattr(pipe, "vae", None), "decoder", None)
    if decoder is not None:
        parts["vae"] = decoder
    for label, module in parts.items():
        if module is None or getattr(module, "_brandstudio_finite_guard", None) is not None:
            continue
        expert = getattr(pipe, label, None) if label != "vae" else None
        module._brandstudio_finite_guard = module.register_forward_hook(_finite_hook(label, expert))


def _finite_hook(label: str, expert):
    def hook(_module, _args, output):
        import torch  # loaded already: the hook runs inside the model

        sample = output[0] if isinstance(output, (tuple, list)) else getattr(output, "sample", output)
        if isinstance(sample, torch.Tensor) and not bool(torch.isfinite(sample).all()):
            raise _nonfinite_error(label, _active_loras(expert))

    return hook


def _active_loras(expert) -> list[str]:
    if expert is None or not getattr(expert, "peft_config", None):
        return []
    try:
        return list(expert.active_adapters())
    except Exception:  # noqa: BLE001 - peft raises when adapters are disabled
        return []


def _nonfinite_error(label: str, loras: list[str]) -> GenerationError:
    part = _PART_NAMES.get(label, f"`{label}`")
    if loras:
        cause = f"the likely cause is the LoRA weights active in it ({', '.join(f'`{n}`' for n in loras)})"
        fix = (
            "check the LoRA files in [[style.loras]] with `brandstudio profile validate` and replace a "
            "broken one; lower its weight_high/weight_low, or render without it to confirm"
        )
    else:
        cause = "no LoRA is active in it, so the likely cause is the model's precision or weights"
        fix = "run the model in bfloat16 or float32 ([model] dtype), or download the checkpoint again"
    return GenerationError(
        f"{part} produced non-finite values (NaN or inf): {cause}. The clip would be black or "
        "broken, so nothing was written",
        field="style.loras" if loras else "model",
        fix=fix,
    )


def activate_adapters(pipe, adapters: Sequence[LoraAdapter]) -> None:
    """Make exactly ``adapters`` (already loaded) active in each expert, at their per-expert
    weights; an expert with none of them runs without LoRA."""
    for label, expert in experts_of(pipe).items():
        names, weights = [], []
        for adapter in adapters:
            for target, _module, _into_2, weight in expert_targets(pipe, adapter):
                if target == label:
                    names.append(adapter_key(adapter.name))
                    weights.append(weight)
        if getattr(expert, "peft_config", None):
            if names:
                expert.enable_lora()
                expert.set_adapters(names, weights=weights)
            else:
                expert.disable_lora()
