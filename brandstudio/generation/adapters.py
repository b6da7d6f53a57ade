"""LoRA adapters in the Wan experts: load them, one weight per expert, and switch them per expert.

A :class:`~brandstudio.generation.base.LoraAdapter` goes into the high-noise expert with
``weight_high`` and into the low-noise expert with ``weight_low`` (a weight of 0 skips that
expert). diffusers loads into ``transformer_2`` only with a second ``load_lora_weights(...,
load_into_transformer_2=True)`` call, and each expert keeps its own active adapters and weights.

The brand's LoRAs are loaded once with the generator (:func:`load_loras`); the ``fast``
preset's step-distilled LoRA is loaded the same way and switched on and off with
:func:`activate_adapters` (:class:`~brandstudio.generation.runtime.PipelineRuntime`).
Each file is checked against the model before diffusers sees it (:mod:`brandstudio.generation.lora`).

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

from brandstudio.errors import LoRAError
from brandstudio.generation.base import LoraAdapter
from brandstudio.generation.experts import experts_of
from brandstudio.generation.lora import check_lora_fits, inspect_lora

__all__ = ["activate_adapters", "adapter_key", "expert_targets", "load_loras"]


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
        # 2. the file, and that it fits each expert it goes into (before diffusers sees it)
        info = inspect_lora(adapter.path)
        targets = expert_targets(pipe, adapter)
        for _, module, _, _ in targets:
            check_lora_fits(info, module, adapter, model_family)
        # 3. load it
        for label, _module, into_2, weight in targets:
            try:
                with warnings.catch_warnings():
                    # peft warns on every adapter after the first; several adapters are intended
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    pipe.load_lora_weights(
                        str(adapter.path),
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
            names, weights = active.setdefault(label, ([], []))
            names.append(key)
            weights.append(weight)
    # 4. per-expert weights
    for label, (names, weights) in active.items():
        getattr(pipe, label).set_adapters(names, weights=weights)


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
