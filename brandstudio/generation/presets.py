"""Speed presets: the registry of presets and the pure rules that resolve one for a model family.

A **preset** says how a clip is sampled (:data:`~brandstudio.registry.SPEED_PRESETS`). Presets
change the pixels, and so enter the scene-cache key; memory plans never do
(:mod:`brandstudio.generation.memory`).

==============  ===========================================================================
preset          what it does
==============  ===========================================================================
``quality``     the official sampler settings of the model family (Wan2.2 T2V-A14B: 40 steps,
                flow shift 12, guidance 4.0 high / 3.0 low), exact attention, no caching
``balanced``    the same numbers plus a diffusers cache hook on *each expert*
                (``[model.balanced] cache``: MagCache calibrated for each expert's own step
                count, FirstBlockCache or TaylorSeer), ``compile_repeated_blocks`` on CUDA
                and the best exact attention kernel installed (flash-attn 3, flash-attn 2,
                else PyTorch SDPA)
``fast``        a step-distilled LoRA (e.g. lightx2v's, supplied by the user in
                ``[model.fast] lora``) in both experts at per-expert weights, 4 steps,
                guidance 1 (no CFG: one transformer pass per step), compile and best attention
==============  ===========================================================================

Which numbers ``quality`` uses: **the profile's explicit values win** (they are the brand's
choice: a ``steps = 4`` written in ``brand.toml`` is honoured); any of ``steps``,
``guidance_high``, ``guidance_low``, ``flow_shift`` *not written* in ``brand.toml`` takes the
official value of the loaded model family (:data:`OFFICIAL_SETTINGS`; for the offline demo
model, the settings it was trained for), or the schema default for a family without one (Wan2.1). ``balanced`` samples with the same numbers;
``fast`` takes its steps and optional shift from ``[model.fast]`` and always guidance 1.

Memory plans are in :mod:`brandstudio.generation.memory`.

Cache hooks and the diffusers traps they avoid (see :mod:`brandstudio.generation.caching`):

* MagCache counts steps per hooked model: with one config for both experts neither reaches its
  ``num_inference_steps``, the magnitude ratios are read at the wrong steps and the state is not
  reset; brandstudio gives each expert a config with *its own* step count and ratios calibrated
  on *its own* steps.
* TaylorSeer's default identifiers (``^blocks.*attn``, matched with ``re.fullmatch``) match no
  Wan module (they are named ``blocks.N.attn1`` / ``attn2``): brandstudio passes Wan's names.
* FasterCache is refused: it approximates the unconditional branch from a batch that holds both
  CFG halves, but Wan runs the conditional and unconditional passes separately.

Example:
    >>> from brandstudio.profile.schema import ModelSection
    >>> s = resolve_preset("quality", "wan2.2-ti2v-5b", ModelSection())
    >>> (s.steps, s.guidance_high, s.flow_shift)
    (50, 5.0, 5.0)
    >>> s = resolve_preset("quality", "wan2.2-ti2v-5b", ModelSection(steps=30))
    >>> s.steps, s.sources["steps"]
    (30, 'profile')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from brandstudio.errors import RequestError
from brandstudio.files import sha256_file
from brandstudio.generation.tiny import TINY_BASE_MODEL, TINY_FLOW_SHIFT
from brandstudio.registry import SPEED_PRESETS

if TYPE_CHECKING:  # pragma: no cover
    from brandstudio.profile.schema import ModelSection

__all__ = [
    "CACHE_HOOKS",
    "LOSSY_ATTENTION",
    "OFFICIAL_SETTINGS",
    "REFUSED_CACHE_HOOKS",
    "SPEED_PRESETS",
    "CacheHook",
    "FastLora",
    "OfficialSettings",
    "Preset",
    "PresetSettings",
    "check_cache_hook",
    "resolve_preset",
]


@dataclass(frozen=True)
class Preset:
    """One speed preset (an entry of :data:`~brandstudio.registry.SPEED_PRESETS`).

    Attributes:
        name: ``"quality"``, ``"balanced"`` or ``"fast"``.
        description: one line for docs and ``--help``.
        cache: use the profile's ``[model.balanced]`` cache hook.
        distilled: use the step-distilled LoRA of ``[model.fast]`` (4 steps, no CFG).
        attention: ``"native"`` (PyTorch SDPA) or ``"best"`` (the best exact kernel installed).
        compile: ``compile_repeated_blocks`` on both experts when on CUDA.
    """

    name: str
    description: str
    cache: bool = False
    distilled: bool = False
    attention: str = "native"
    compile: bool = False


SPEED_PRESETS.register(
    "quality", Preset("quality", "the model family's official sampler settings, nothing approximated")
)
SPEED_PRESETS.register(
    "balanced",
    Preset(
        "balanced",
        "official settings + a cache hook per expert, regional compile, best attention kernel",
        cache=True,
        attention="best",
        compile=True,
    ),
)
SPEED_PRESETS.register(
    "fast",
    Preset(
        "fast",
        "a step-distilled LoRA in both experts: 4 steps, no CFG, compile, best attention kernel",
        distilled=True,
        attention="best",
        compile=True,
    ),
)


@dataclass(frozen=True)
class OfficialSettings:
    """The sampler settings a model family was released with (its authors' defaults)."""

    steps: int
    guidance_high: float
    guidance_low: float
    flow_shift: float


OFFICIAL_SETTINGS: Mapping[str, OfficialSettings] = MappingProxyType(
    {
        "wan2.2-t2v-a14b": OfficialSettings(40, 4.0, 3.0, 12.0),
        "wan2.2-i2v-a14b": OfficialSettings(40, 3.5, 3.5, 5.0),
        "wan2.2-ti2v-5b": OfficialSettings(50, 5.0, 5.0, 5.0),
        # the offline demo model, as brandstudio trained it (generation/tiny_training.py)
        TINY_BASE_MODEL: OfficialSettings(4, 4.0, 3.0, TINY_FLOW_SHIFT),
    }
)
"""Official settings per model family (Wan2.2 release configs, and the demo model's own);
others use the profile's values."""

CACHE_HOOKS: tuple[str, ...] = ("mag", "first-block", "taylorseer", "none")
"""Cache hooks ``[model.balanced] cache`` accepts."""

REFUSED_CACHE_HOOKS: Mapping[str, str] = MappingProxyType(
    {
        name: (
            "FasterCache does not work with Wan: it approximates the unconditional CFG branch from a "
            "batch holding both halves, but Wan runs the conditional and unconditional passes separately"
        )
        for name in ("faster", "faster-cache", "fastercache", "faster_cache")
    }
)
"""Cache hooks that are known not to work on Wan, with the reason."""

LOSSY_ATTENTION = frozenset({"sage"})
"""Attention kernels that approximate (SageAttention quantizes Q/K to int8): they change pixels,
so they enter the scene-cache key and ``best`` never picks them."""


@dataclass(frozen=True)
class CacheHook:
    """The cache hook of a preset, applied to each expert separately.

    Attributes:
        kind: ``"none"``, ``"mag"``, ``"first-block"`` or ``"taylorseer"``.
        threshold: MagCache accumulated-error / FirstBlockCache residual threshold
            (None: diffusers' default, 0.06 / 0.05).
        retention: MagCache: fraction of each expert's own steps never skipped.
        max_skip_steps: MagCache: most consecutive skipped steps.
        interval: TaylorSeer: steps between full computations.
        warmup: TaylorSeer: full steps at the start of each expert's run.
    """

    kind: str = "none"
    threshold: float | None = None
    retention: float = 0.2
    max_skip_steps: int = 3
    interval: int = 4
    warmup: int = 2

    def key(self) -> dict[str, Any]:
        """The fields that change pixels (all of them, for an active hook)."""
        return {"kind": "none"} if self.kind == "none" else asdict(self)


@dataclass(frozen=True)
class FastLora:
    """The step-distilled LoRA of the ``fast`` preset.

    Attributes:
        path: the resolved ``.safetensors`` file inside the profile.
        sha256: its hash (from the profile loader), for the scene-cache key.
        weight_high: strength in the high-noise expert (0 skips it).
        weight_low: strength in the low-noise expert (0 skips it).
        fuse: fuse it (with the brand's LoRAs) into the weights of *both* experts.
        base_model: the model family it was trained for ("" = not declared).
    """

    path: Path
    sha256: str
    weight_high: float = 1.0
    weight_low: float = 1.0
    fuse: bool = True
    base_model: str = ""

    ADAPTER_NAME = "fast-distill"


@dataclass(frozen=True)
class PresetSettings:
    """A preset resolved for one model family and profile: what a render actually uses.

    Attributes:
        preset: the preset's name.
        steps, guidance_high, guidance_low, flow_shift: the sampler numbers.
        cache: the cache hook (``kind="none"`` for none).
        fast_lora: the step-distilled LoRA (``fast`` only).
        attention: ``"native"``, ``"best"`` or a forced kernel (``"flash3"``, ``"sage"``, ...).
        compile: ``compile_repeated_blocks`` when on CUDA (``"auto"``), always (``"on"``), never (``"off"``).
        sources: where each sampler number came from (``"profile"``, ``"official <family>"``,
            ``"default"``, ``"[model.fast]"``, ``"fast: no CFG"``).
    """

    preset: str
    steps: int
    guidance_high: float
    guidance_low: float
    flow_shift: float
    cache: CacheHook = CacheHook()
    fast_lora: FastLora | None = None
    attention: str = "native"
    compile: str = "off"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def key_fields(self) -> dict[str, Any]:
        """What about the preset changes pixels, beyond the spec's own numbers (for the scene cache).

        The preset name, the cache hook, the distilled LoRA's hash and weights, and the
        attention kernel when it approximates (SageAttention). Left out on purpose: compile,
        exact attention kernels and fusing, which change only float rounding, like the device.

        Example:
            >>> PresetSettings("quality", 40, 4.0, 3.0, 12.0).key_fields()["cache"]
            {'kind': 'none'}
        """
        lora = self.fast_lora
        return {
            "name": self.preset,
            "cache": self.cache.key(),
            "fast_lora": None
            if lora is None
            else {
                "sha256": lora.sha256,
                "weight_high": float(lora.weight_high),
                "weight_low": float(lora.weight_low),
            },
            "attention": self.attention if self.attention in LOSSY_ATTENTION else "exact",
        }

    def record(self) -> dict[str, Any]:
        """JSON-ready description for ``RenderResult.generation``."""
        lora = self.fast_lora
        return {
            "preset": self.preset,
            "cache_hook": self.cache.key(),
            "fast_lora": None
            if lora is None
            else {
                "file": lora.path.name,
                "sha256": lora.sha256,
                "weight_high": float(lora.weight_high),
                "weight_low": float(lora.weight_low),
                "fused": bool(lora.fuse),
            },
            "sources": dict(self.sources),
        }


def _fast_missing(name: str) -> RequestError:
    return RequestError(
        f"the `{name}` preset needs a step-distilled LoRA, but the profile has no `[model.fast]` with `lora`",
        file="brand.toml",
        field="model.fast.lora",
        value=None,
        fix='add to brand.toml: [model.fast] lora = "loras/lightx2v.safetensors" (the distilled LoRA for '
        "your model, copied into the profile; weight_high / weight_low / steps are optional), "
        "or use preset 'quality' or 'balanced'",
    )


def resolve_preset(
    name: str | None,
    model_family: str,
    model: ModelSection,
    *,
    fast_lora_path: Path | None = None,
    fast_lora_sha256: str | None = None,
) -> PresetSettings:
    """The effective settings of preset ``name`` for ``model_family`` and the profile's ``[model]``.

    Args:
        name: a key of :data:`~brandstudio.registry.SPEED_PRESETS`; ``None`` = the profile's ``[model] preset``.
        model_family: e.g. ``"wan2.2-t2v-a14b"`` or ``"tiny-wan2.2"`` (see ``model_family_of``).
        model: the profile's ``[model]`` section.
        fast_lora_path: the resolved ``[model.fast] lora`` (the loader's asset); needed by ``fast``.
        fast_lora_sha256: its hash (the loader's); computed from the file when not given.

    Raises:
        RequestError: an unknown preset, or ``fast`` without ``[model.fast] lora``.

    Example:
        >>> from brandstudio.profile.schema import ModelSection
        >>> resolve_preset("balanced", "tiny-wan2.2", ModelSection(steps=4)).cache.kind
        'mag'
    """
    name = model.preset if name is None else name
    preset = SPEED_PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise RequestError(
            f"unknown speed preset {name!r}",
            field="preset",
            value=name,
            fix=f"use one of {', '.join(SPEED_PRESETS)}",
        )
    # 1. the sampler numbers: explicit profile values, else the family's official ones, else defaults
    official = OFFICIAL_SETTINGS.get(model_family.lower())
    numbers: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in ("steps", "guidance_high", "guidance_low", "flow_shift"):
        if key in model.model_fields_set or official is None:
            numbers[key] = getattr(model, key)
            sources[key] = "profile" if key in model.model_fields_set else "default"
        else:
            numbers[key] = getattr(official, key)
            sources[key] = f"official {model_family.lower()}"
    # 2. per preset
    cache = CacheHook()
    fast_lora = None
    if preset.cache:
        b = model.balanced
        cache = CacheHook(
            kind=b.cache,
            threshold=b.threshold,
            retention=b.retention,
            max_skip_steps=b.max_skip_steps,
            interval=b.interval,
            warmup=b.warmup,
        )
    if preset.distilled:
        f = model.fast
        if f is None or fast_lora_path is None:
            raise _fast_missing(preset.name)
        if fast_lora_sha256 is None:
            fast_lora_sha256 = sha256_file(Path(fast_lora_path))
        fast_lora = FastLora(
            path=Path(fast_lora_path),
            sha256=fast_lora_sha256,
            weight_high=f.weight_high,
            weight_low=f.weight_low,
            fuse=f.fuse,
            base_model=f.base_model or "",
        )
        numbers["steps"], sources["steps"] = f.steps, "[model.fast]"
        numbers["guidance_high"] = numbers["guidance_low"] = 1.0
        sources["guidance_high"] = sources["guidance_low"] = "fast: no CFG"
        if f.flow_shift is not None:
            numbers["flow_shift"], sources["flow_shift"] = f.flow_shift, "[model.fast]"
    attention = model.attention if model.attention != "auto" else preset.attention
    compile_ = model.compile if model.compile != "auto" else ("auto" if preset.compile else "off")
    return PresetSettings(
        preset=preset.name,
        steps=int(numbers["steps"]),
        guidance_high=float(numbers["guidance_high"]),
        guidance_low=float(numbers["guidance_low"]),
        flow_shift=float(numbers["flow_shift"]),
        cache=cache,
        fast_lora=fast_lora,
        attention=attention,
        compile=compile_,
        sources=MappingProxyType(sources),
    )


def check_cache_hook(kind: str) -> str:
    """``kind`` if it is a cache hook brandstudio applies; a clear error otherwise.

    Example:
        >>> check_cache_hook("first-block")
        'first-block'
        >>> check_cache_hook("faster")
        Traceback (most recent call last):
        ...
        brandstudio.errors.RequestError: FasterCache does not work with Wan: ...
    """
    if kind in CACHE_HOOKS:
        return kind
    key = str(kind).lower()
    if key in REFUSED_CACHE_HOOKS:
        raise RequestError(
            REFUSED_CACHE_HOOKS[key],
            file="brand.toml",
            field="model.balanced.cache",
            value=kind,
            fix='use cache = "mag" (MagCache, calibrated per expert) or "first-block"',
        )
    raise RequestError(
        f"unknown cache hook {kind!r}",
        file="brand.toml",
        field="model.balanced.cache",
        value=kind,
        fix=f"use one of {', '.join(CACHE_HOOKS)}",
    )
